//! How a manifest's features map onto a graph's inputs, resolved once at load.
//!
//! scikit-learn exports come in two shapes: one `[N, F]` numeric tensor (all-numeric models such
//! as iris), or one `[N, 1]` input per column (mixed types, as skl2onnx emits them so strings stay
//! strings). [`bind_features`] decides which one a graph uses and checks every feature against
//! it, so a manifest that disagrees with its graph fails at load, never at request time.

use crate::manifest::{Feature, FeatureType, HandleUnknown};

/// The element kinds the contract distinguishes in a graph input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphElement {
    Float,
    Integer,
    Bool,
    Text,
}

impl GraphElement {
    fn name(self) -> &'static str {
        match self {
            GraphElement::Float => "floating-point",
            GraphElement::Integer => "integer",
            GraphElement::Bool => "boolean",
            GraphElement::Text => "string",
        }
    }
}

/// A graph input as the contract sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphInput {
    pub name: String,
    pub element: GraphElement,
    /// Declared dims, `-1` where dynamic.
    pub shape: Vec<i64>,
}

impl GraphInput {
    /// `[N]` or `[N, 1]`: one value per row.
    fn is_column(&self) -> bool {
        match self.shape.as_slice() {
            [_] => true,
            [_, width] => *width == 1 || *width < 0,
            _ => false,
        }
    }
}

/// The resolved mapping from features to graph inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// Each feature is the graph input of the same name, shaped `[N]` or `[N, 1]`.
    PerColumn,
    /// All features, in manifest order, are the columns of one `[N, F]` graph input.
    Packed { input: String },
}

/// Resolves how `features` map onto `inputs`, or lists every disagreement.
pub fn bind_features(features: &[Feature], inputs: &[GraphInput]) -> Result<Binding, Vec<String>> {
    let mut problems = Vec::new();
    let by_name = |name: &str| inputs.iter().find(|input| input.name == name);
    let all_named = features.iter().all(|f| by_name(&f.name).is_some())
        && inputs
            .iter()
            .all(|input| features.iter().any(|f| f.name == input.name));
    if all_named {
        for feature in features {
            let Some(input) = by_name(&feature.name) else {
                continue;
            };
            if !input.is_column() {
                problems.push(format!(
                    "graph input `{}` has shape {:?}, but a per-column feature needs [N] or [N, 1]",
                    input.name, input.shape
                ));
            }
            check_element(feature, input, &mut problems);
        }
        return if problems.is_empty() {
            Ok(Binding::PerColumn)
        } else {
            Err(problems)
        };
    }
    if let [input] = inputs
        && input.shape.len() == 2
        && !input.is_column_named_like(features)
    {
        let width = input.shape[1];
        if width >= 0 && width as usize != features.len() {
            problems.push(format!(
                "graph input `{}` has {width} columns but the manifest declares {} features",
                input.name,
                features.len()
            ));
        }
        for feature in features {
            check_element(feature, input, &mut problems);
        }
        return if problems.is_empty() {
            Ok(Binding::Packed {
                input: input.name.clone(),
            })
        } else {
            Err(problems)
        };
    }
    let graph_names: Vec<&str> = inputs.iter().map(|input| input.name.as_str()).collect();
    for feature in features {
        if by_name(&feature.name).is_none() {
            problems.push(format!(
                "feature `{}` is not a graph input (the graph's inputs are: {})",
                feature.name,
                graph_names.join(", ")
            ));
        }
    }
    for input in inputs {
        if !features.iter().any(|f| f.name == input.name) {
            problems.push(format!(
                "graph input `{}` has no feature of that name in the manifest",
                input.name
            ));
        }
    }
    Err(problems)
}

impl GraphInput {
    /// A single `[N, 1]` input named like the only feature is a per-column binding, not a
    /// packed one; this keeps the two shapes from being confused.
    fn is_column_named_like(&self, features: &[Feature]) -> bool {
        features.len() == 1 && features[0].name == self.name
    }
}

fn check_element(feature: &Feature, input: &GraphInput, problems: &mut Vec<String>) {
    let compatible = match feature.kind {
        FeatureType::Float => input.element == GraphElement::Float,
        FeatureType::Int => matches!(input.element, GraphElement::Float | GraphElement::Integer),
        FeatureType::Bool => input.element != GraphElement::Text,
        FeatureType::String | FeatureType::Category => input.element == GraphElement::Text,
    };
    if !compatible {
        problems.push(format!(
            "feature `{}` is declared {} but graph input `{}` holds {} values",
            feature.name,
            feature.kind.name(),
            input.name,
            input.element.name()
        ));
    }
}

impl Feature {
    /// A feature of the type a graph element holds, with no bounds, categories or description:
    /// what a graph alone says about an input.
    pub fn plain(name: impl Into<String>, element: GraphElement) -> Feature {
        Feature {
            name: name.into(),
            kind: match element {
                GraphElement::Float => FeatureType::Float,
                GraphElement::Integer => FeatureType::Int,
                GraphElement::Bool => FeatureType::Bool,
                GraphElement::Text => FeatureType::String,
            },
            min: None,
            max: None,
            values: None,
            nullable: false,
            handle_unknown: HandleUnknown::Refuse,
            description: None,
        }
    }
}

/// The contract a bare graph declares, for a model served without a manifest: one feature per
/// column input, or `<input>_<i>` for the columns of a single `[N, F]` input of fixed width.
/// `None` when the graph's inputs cannot be described as named features.
pub fn features_from_graph(inputs: &[GraphInput]) -> Option<Vec<Feature>> {
    let feature = |name: String, element: GraphElement| Feature::plain(name, element);
    if let [input] = inputs
        && let [_, width] = input.shape.as_slice()
        && *width > 1
    {
        return Some(
            (0..*width)
                .map(|i| feature(format!("{}_{i}", input.name), input.element))
                .collect(),
        );
    }
    inputs.iter().all(GraphInput::is_column).then(|| {
        inputs
            .iter()
            .map(|input| feature(input.name.clone(), input.element))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(name: &str, kind: FeatureType) -> Feature {
        Feature {
            name: name.into(),
            kind,
            min: None,
            max: None,
            values: (kind == FeatureType::Category).then(|| vec!["US".into()]),
            nullable: false,
            handle_unknown: HandleUnknown::Refuse,
            description: None,
        }
    }

    fn input(name: &str, element: GraphElement, shape: &[i64]) -> GraphInput {
        GraphInput {
            name: name.into(),
            element,
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn one_wide_float_input_is_packed() {
        let features: Vec<_> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| feature(n, FeatureType::Float))
            .collect();
        let inputs = [input("float_input", GraphElement::Float, &[-1, 4])];
        assert_eq!(
            bind_features(&features, &inputs),
            Ok(Binding::Packed {
                input: "float_input".into()
            })
        );
    }

    #[test]
    fn one_input_per_column_binds_by_name() {
        let features = [
            feature("age", FeatureType::Float),
            feature("country", FeatureType::Category),
        ];
        let inputs = [
            input("country", GraphElement::Text, &[-1, 1]),
            input("age", GraphElement::Float, &[-1, 1]),
        ];
        assert_eq!(bind_features(&features, &inputs), Ok(Binding::PerColumn));
    }

    #[test]
    fn width_and_type_disagreements_are_all_reported() {
        let features = [
            feature("a", FeatureType::Float),
            feature("b", FeatureType::Category),
        ];
        let inputs = [input("x", GraphElement::Float, &[-1, 3])];
        let problems = bind_features(&features, &inputs).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("3 columns"), "{problems:?}");
        assert!(
            problems[1].contains("feature `b` is declared category"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_feature_missing_from_the_graph_is_named() {
        let features = [
            feature("age", FeatureType::Float),
            feature("country", FeatureType::Category),
        ];
        let inputs = [
            input("age", GraphElement::Float, &[-1, 1]),
            input("employment", GraphElement::Text, &[-1, 1]),
        ];
        let problems = bind_features(&features, &inputs).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("feature `country` is not a graph input"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("graph input `employment` has no feature"))
        );
    }

    #[test]
    fn a_bare_graph_declares_its_features() {
        let packed = features_from_graph(&[input("x", GraphElement::Float, &[-1, 2])]).unwrap();
        assert_eq!(packed[1].name, "x_1");
        let columns = features_from_graph(&[
            input("age", GraphElement::Float, &[-1, 1]),
            input("country", GraphElement::Text, &[-1, 1]),
        ])
        .unwrap();
        assert_eq!(columns[1].kind, FeatureType::String);
        assert!(features_from_graph(&[input("x", GraphElement::Float, &[-1, -1, 3])]).is_none());
    }
}
