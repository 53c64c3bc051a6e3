//! Load-time rewrites of ONNX graphs, so that what scikit-learn, XGBoost and LightGBM export
//! runs on engines that lack some ONNX-ML operators.
//!
//! Each rewrite is a small function from a graph to an equivalent graph built from operators
//! tract does run (`ZipMap`, which both engines need cut, is cut before, by [`crate::zipmap`]):
//! - `Scaler` becomes `Cast` + `Sub` + `Mul` (`y = (x - offset) * scale`).
//! - `OneHotEncoder` on strings becomes `CategoryMapper` + `Reshape` + `Equal` + `Cast`.
//! - `Imputer` becomes `Where(IsNaN(x), imputed, x)` (or `Equal` for a non-NaN marker).
//! - A `LinearClassifier` with string class labels predicts the class index instead, and a
//!   `CategoryMapper` turns the index into the label (tract's only produces numeric labels).
//!
//! Tree ensembles and SVMs are not rewritten: warden registers its own operators for them in
//! tract ([`crate::trees`], [`crate::svm`]).

use std::borrow::Cow;

use prost::Message;
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, attribute_proto::AttributeType,
    tensor_proto::DataType,
};

const ML: &str = "ai.onnx.ml";

/// Parses ONNX bytes into the protobuf model.
pub fn parse(bytes: &[u8]) -> Result<ModelProto, String> {
    ModelProto::decode(bytes).map_err(|err| format!("not a readable ONNX model: {err}"))
}

/// Every rewrite tract needs, applied in place; returns the names of the rewrites applied.
pub fn for_tract(model: &mut ModelProto) -> Vec<&'static str> {
    // Rewrites add standard operators; a pure ONNX-ML graph may not import the default domain.
    if !model
        .opset_import
        .iter()
        .any(|o| o.domain.is_empty() || o.domain == "ai.onnx")
    {
        model.opset_import.push(tract_onnx::pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        });
    }
    let Some(graph) = model.graph.as_mut() else {
        return Vec::new();
    };
    let mut applied = Vec::new();
    if scaler_to_arithmetic(graph) {
        applied.push("Scaler");
    }
    if one_hot_strings_to_category_mapper(graph) {
        applied.push("OneHotEncoder");
    }
    if imputer_to_where(graph) {
        applied.push("Imputer");
    }
    if string_labels_to_indices(graph) {
        applied.push("classlabels_strings");
    }
    applied
}

fn is(node: &NodeProto, op: &str) -> bool {
    node.op_type == op && node.domain == ML
}

fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn ints_attr(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Ints as i32,
        ints,
        ..AttributeProto::default()
    }
}

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Int as i32,
        i,
        ..AttributeProto::default()
    }
}

fn strings_attr(name: &str, strings: Vec<Vec<u8>>) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Strings as i32,
        strings,
        ..AttributeProto::default()
    }
}

fn node(
    op: &str,
    domain: &str,
    name: String,
    input: Vec<String>,
    output: Vec<String>,
) -> NodeProto {
    NodeProto {
        input,
        output,
        name,
        op_type: op.to_owned(),
        domain: domain.to_owned(),
        ..NodeProto::default()
    }
}

fn float_tensor(name: String, values: Vec<f32>) -> TensorProto {
    TensorProto {
        dims: vec![values.len() as i64],
        data_type: DataType::Float as i32,
        float_data: values,
        name,
        ..TensorProto::default()
    }
}

fn int64_tensor(name: String, values: Vec<i64>) -> TensorProto {
    TensorProto {
        dims: vec![values.len() as i64],
        data_type: DataType::Int64 as i32,
        int64_data: values,
        name,
        ..TensorProto::default()
    }
}

/// What one node is replaced with: the nodes, in order, and the initializers they read.
#[derive(Debug, Default)]
struct Replacement {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

/// Replaces, in place, each node of `graph` that `replace` answers for by the nodes it
/// answers, and adds their initializers; the new nodes are not visited again. `replace` gets
/// the node and a prefix for the names it makes up: the node's name, or `{stem}{index}` when
/// it has none. Returns whether any node was replaced.
fn replace_each(
    graph: &mut GraphProto,
    stem: &str,
    mut replace: impl FnMut(&NodeProto, &str) -> Option<Replacement>,
) -> bool {
    let mut changed = false;
    let mut index = 0;
    while index < graph.node.len() {
        let node = &graph.node[index];
        let prefix = if node.name.is_empty() {
            Cow::Owned(format!("{stem}{index}"))
        } else {
            Cow::Borrowed(node.name.as_str())
        };
        let Some(Replacement {
            nodes,
            initializers,
        }) = replace(node, &prefix)
        else {
            index += 1;
            continue;
        };
        let count = nodes.len();
        graph.node.splice(index..=index, nodes);
        graph.initializer.extend(initializers);
        index += count;
        changed = true;
    }
    changed
}

/// Scaler: `y = (float(x) - offset) * scale`.
pub fn scaler_to_arithmetic(graph: &mut GraphProto) -> bool {
    replace_each(graph, "scaler", |scaler, prefix| {
        if !is(scaler, "Scaler") {
            return None;
        }
        let offset = attribute(scaler, "offset")
            .map(|a| a.floats.clone())
            .unwrap_or_else(|| vec![0.0]);
        let scale = attribute(scaler, "scale")
            .map(|a| a.floats.clone())
            .unwrap_or_else(|| vec![1.0]);
        let mut cast = node(
            "Cast",
            "",
            format!("{prefix}_cast"),
            scaler.input.clone(),
            vec![format!("{prefix}_float")],
        );
        cast.attribute.push(int_attr("to", DataType::Float as i64));
        let sub = node(
            "Sub",
            "",
            format!("{prefix}_sub"),
            vec![format!("{prefix}_float"), format!("{prefix}_offset")],
            vec![format!("{prefix}_centred")],
        );
        let mul = node(
            "Mul",
            "",
            format!("{prefix}_mul"),
            vec![format!("{prefix}_centred"), format!("{prefix}_scale")],
            scaler.output.clone(),
        );
        Some(Replacement {
            nodes: vec![cast, sub, mul],
            initializers: vec![
                float_tensor(format!("{prefix}_offset"), offset),
                float_tensor(format!("{prefix}_scale"), scale),
            ],
        })
    })
}

/// OneHotEncoder over strings: each string's category index (CategoryMapper, -1 if unknown),
/// compared with every index, as floats: `[N, F]` strings → `[N, F, C]` floats.
pub fn one_hot_strings_to_category_mapper(graph: &mut GraphProto) -> bool {
    replace_each(graph, "onehot", |encoder, prefix| {
        if !is(encoder, "OneHotEncoder") {
            return None;
        }
        let categories = attribute(encoder, "cats_strings")?.strings.clone();
        let count = categories.len() as i64;
        let mut mapper = node(
            "CategoryMapper",
            ML,
            format!("{prefix}_mapper"),
            encoder.input.clone(),
            vec![format!("{prefix}_index")],
        );
        mapper
            .attribute
            .push(strings_attr("cats_strings", categories));
        mapper
            .attribute
            .push(ints_attr("cats_int64s", (0..count).collect()));
        mapper.attribute.push(int_attr("default_int64", -1));
        let reshape = node(
            "Reshape",
            "",
            format!("{prefix}_reshape"),
            vec![format!("{prefix}_index"), format!("{prefix}_column")],
            vec![format!("{prefix}_index3")],
        );
        let equal = node(
            "Equal",
            "",
            format!("{prefix}_equal"),
            vec![format!("{prefix}_index3"), format!("{prefix}_categories")],
            vec![format!("{prefix}_hot")],
        );
        let mut cast = node(
            "Cast",
            "",
            format!("{prefix}_cast"),
            vec![format!("{prefix}_hot")],
            encoder.output.clone(),
        );
        cast.attribute.push(int_attr("to", DataType::Float as i64));
        Some(Replacement {
            nodes: vec![mapper, reshape, equal, cast],
            initializers: vec![
                int64_tensor(format!("{prefix}_column"), vec![0, 0, 1]),
                int64_tensor(format!("{prefix}_categories"), (0..count).collect()),
            ],
        })
    })
}

/// A LinearClassifier with string labels answers the label's index, mapped back to the string by a
/// CategoryMapper under the original output name.
pub fn string_labels_to_indices(graph: &mut GraphProto) -> bool {
    replace_each(graph, "classifier", |candidate, _| {
        let position = candidate
            .attribute
            .iter()
            .position(|a| a.name == "classlabels_strings")?;
        if !is(candidate, "LinearClassifier") || candidate.output.is_empty() {
            return None;
        }
        let mut classifier = candidate.clone();
        let labels = classifier.attribute.remove(position).strings;
        let count = labels.len() as i64;
        classifier
            .attribute
            .push(ints_attr("classlabels_ints", (0..count).collect()));
        let label_output = classifier.output[0].clone();
        let indices = format!("{label_output}_index");
        classifier.output[0] = indices.clone();
        // Named after the classifier's own name, even an empty one, as it always was.
        let mut mapper = node(
            "CategoryMapper",
            ML,
            format!("{}_labels", classifier.name),
            vec![indices],
            vec![label_output],
        );
        mapper
            .attribute
            .push(ints_attr("cats_int64s", (0..count).collect()));
        mapper.attribute.push(strings_attr("cats_strings", labels));
        mapper.attribute.push(AttributeProto {
            name: "default_string".into(),
            r#type: AttributeType::String as i32,
            s: Vec::new(),
            ..AttributeProto::default()
        });
        Some(Replacement {
            nodes: vec![classifier, mapper],
            initializers: Vec::new(),
        })
    })
}

/// Imputer over floats: each value equal to the marker (NaN by default in skl2onnx exports)
/// is replaced by its column's imputed value.
pub fn imputer_to_where(graph: &mut GraphProto) -> bool {
    replace_each(graph, "imputer", |imputer, prefix| {
        if !is(imputer, "Imputer") {
            return None;
        }
        let imputed = attribute(imputer, "imputed_value_floats")?.floats.clone();
        if imputed.is_empty() {
            return None;
        }
        let marker = attribute(imputer, "replaced_value_float").map_or(0.0, |a| a.f);
        let mut initializers = vec![float_tensor(format!("{prefix}_imputed"), imputed)];
        let missing = format!("{prefix}_missing");
        let test = if marker.is_nan() {
            node(
                "IsNaN",
                "",
                format!("{prefix}_isnan"),
                imputer.input.clone(),
                vec![missing.clone()],
            )
        } else {
            initializers.push(float_tensor(format!("{prefix}_marker"), vec![marker]));
            node(
                "Equal",
                "",
                format!("{prefix}_equal"),
                vec![imputer.input[0].clone(), format!("{prefix}_marker")],
                vec![missing.clone()],
            )
        };
        let choose = node(
            "Where",
            "",
            format!("{prefix}_where"),
            vec![
                missing,
                format!("{prefix}_imputed"),
                imputer.input[0].clone(),
            ],
            imputer.output.clone(),
        );
        Some(Replacement {
            nodes: vec![test, choose],
            initializers,
        })
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test helpers outside #[test] functions
mod tests {
    use super::*;

    fn zoo(name: &str) -> ModelProto {
        let path = format!("{}/../../tests/zoo/{name}.onnx", env!("CARGO_MANIFEST_DIR"));
        parse(&std::fs::read(path).unwrap()).unwrap()
    }

    fn ops(model: &ModelProto) -> Vec<String> {
        model
            .graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .map(|n| n.op_type.clone())
            .collect()
    }

    /// Applies `rewrite` to the zoo model `name`: `old` is gone, `new` are there, the graph's
    /// outputs keep their names. (The zoo tests check the rewritten graphs' answers.)
    fn check(name: &str, rewrite: fn(&mut GraphProto) -> bool, old: &str, new: &[&str]) {
        let mut model = zoo(name);
        let outputs: Vec<String> = model
            .graph
            .as_ref()
            .unwrap()
            .output
            .iter()
            .map(|o| o.name.clone())
            .collect();
        assert!(
            ops(&model).iter().any(|op| op == old),
            "{name} has no {old}"
        );
        assert!(rewrite(model.graph.as_mut().unwrap()));
        let after = ops(&model);
        assert!(
            !after.iter().any(|op| op == old),
            "{old} is still in {after:?}"
        );
        for op in new {
            assert!(after.iter().any(|o| o == op), "{op} missing from {after:?}");
        }
        let kept: Vec<String> = model
            .graph
            .as_ref()
            .unwrap()
            .output
            .iter()
            .map(|o| o.name.clone())
            .collect();
        assert_eq!(kept, outputs);
        assert!(
            !rewrite(model.graph.as_mut().unwrap()),
            "a second pass finds nothing to do"
        );
    }

    #[test]
    fn scaler_becomes_arithmetic() {
        check(
            "pipeline_impute_scale_onehot",
            scaler_to_arithmetic,
            "Scaler",
            &["Sub", "Mul"],
        );
    }

    #[test]
    fn string_one_hot_becomes_category_mapper_and_equal() {
        check(
            "pipeline_impute_scale_onehot",
            one_hot_strings_to_category_mapper,
            "OneHotEncoder",
            &["CategoryMapper", "Equal"],
        );
    }

    #[test]
    fn imputer_becomes_where_isnan() {
        check(
            "pipeline_impute_scale_onehot",
            imputer_to_where,
            "Imputer",
            &["IsNaN", "Where"],
        );
    }

    #[test]
    fn string_labels_become_indices_mapped_back() {
        let mut model = zoo("pipeline_impute_scale_onehot");
        assert!(string_labels_to_indices(model.graph.as_mut().unwrap()));
        assert!(ops(&model).contains(&"CategoryMapper".to_owned()));
    }
}
