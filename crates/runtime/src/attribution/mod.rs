//! Exact Shapley attributions: the algorithms, free of any server concern.
//!
//! Three methods, all interventional (a feature left out of a coalition takes a background
//! row's value, averaged over the background set), all exact:
//! - [`Structural`]: a graph that is one tree ensemble or one linear model reading the packed
//!   `[N, F]` input (through casts at most), explained from its own structure: interventional
//!   TreeSHAP over warden's tree layout (`tree_shap`) or the linear closed form (`linear`),
//!   on the model's raw score ([`Scale`]).
//! - Coalition enumeration for any graph (`shapley`, with [`coalition_rows`] building the
//!   hybrid rows the engine scores): every coalition of the contract's raw features, so a
//!   pipeline's one-hot columns are explained as the one column a client sent.
//!
//! The server chooses the method, runs the engine and bounds the cost; this module only
//! computes.

mod linear;
mod shapley;
mod tree_shap;

pub use shapley::{shapley_values, weight};

use crate::{NamedTensor, Tensor, TensorData};
use linear::LinearModel;
use tree_shap::TreeModel;

/// The scale attributions add up on: the model's output they explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// A class's probability.
    Probability,
    /// A classifier's raw score before its link (log-odds for two classes).
    Margin,
    /// A regressor's value.
    Value,
}

impl Scale {
    pub fn as_str(self) -> &'static str {
        match self {
            Scale::Probability => "probability",
            Scale::Margin => "margin",
            Scale::Value => "value",
        }
    }
}

/// One row's attributions for one class: `base + Σ values = output` up to rounding.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    /// The mean output over the background set.
    pub base: f64,
    /// One per feature, in feature order.
    pub values: Vec<f64>,
    /// The model's output for the row, on the same scale.
    pub output: f64,
}

impl Attribution {
    /// `|base + Σ values - output|`: how far the attributions are from adding up.
    pub fn additivity_error(&self) -> f64 {
        (self.base + self.values.iter().sum::<f64>() - self.output).abs()
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Trees { model: TreeModel, base: Vec<f64> },
    Linear { model: LinearModel, means: Vec<f64> },
}

/// A model explained from its own structure, with its background set.
#[derive(Debug, Clone)]
pub struct Structural {
    kind: Kind,
    width: usize,
    background: Vec<f32>,
}

/// Graph nodes a value passes through unchanged (as far as its order goes).
const TRANSPARENT: [&str; 2] = ["Cast", "Identity"];

impl Structural {
    /// The structural explainer of `graph` (ONNX bytes) when it holds exactly one tree
    /// ensemble or linear model and that model reads the graph input `input` (`[N, width]`)
    /// directly, with `background` its rows (`[rows, width]`, row-major); `None` otherwise
    /// (the coalition method then applies).
    pub fn of(graph: &[u8], input: &str, width: usize, background: Vec<f32>) -> Option<Structural> {
        let model = crate::rewrite::parse(graph).ok()?;
        let graph = model.graph?;
        let models: Vec<_> = graph
            .node
            .iter()
            .filter(|n| {
                matches!(
                    n.op_type.as_str(),
                    "TreeEnsembleClassifier"
                        | "TreeEnsembleRegressor"
                        | "LinearClassifier"
                        | "LinearRegressor"
                        | "SVMClassifier"
                        | "SVMRegressor"
                )
            })
            .collect();
        let [node] = models.as_slice() else {
            return None;
        };
        // The model's input must be the graph's input, through casts at most.
        let mut name = node.input.first()?.clone();
        while name != input {
            let producer = graph.node.iter().find(|n| n.output.contains(&name))?;
            if !TRANSPARENT.contains(&producer.op_type.as_str()) {
                return None;
            }
            name = producer.input.first()?.clone();
        }
        if width == 0 || background.is_empty() || !background.len().is_multiple_of(width) {
            return None;
        }
        let kind = match node.op_type.as_str() {
            "LinearClassifier" | "LinearRegressor" => {
                let model = LinearModel::parse(node, width).ok()??;
                let rows = (background.len() / width) as f64;
                let mut means = vec![0.0; width];
                for z in background.chunks(width) {
                    for (mean, &v) in means.iter_mut().zip(z) {
                        *mean += f64::from(v) / rows;
                    }
                }
                Kind::Linear { model, means }
            }
            "TreeEnsembleClassifier" | "TreeEnsembleRegressor" => {
                let ensemble = crate::trees::parse_ensemble(node).ok()?;
                if ensemble.forest().features > width {
                    return None;
                }
                let model = TreeModel::of(ensemble)?;
                let base = model.base(&background, width);
                Kind::Trees { model, base }
            }
            _ => return None,
        };
        Some(Structural {
            kind,
            width,
            background,
        })
    }

    /// The method's name, as answers state it.
    pub fn method(&self) -> &'static str {
        match self.kind {
            Kind::Trees { .. } => "tree_shap",
            Kind::Linear { .. } => "linear",
        }
    }

    pub fn scale(&self) -> Scale {
        match &self.kind {
            Kind::Trees { model, .. } => model.scale(),
            Kind::Linear { model, .. } => model.scale(),
        }
    }

    /// Rows of the background set.
    pub fn background_rows(&self) -> usize {
        self.background.len() / self.width
    }

    /// The attribution of `row` (`width` values) for class `class` (0 for a regressor).
    pub fn explain(&self, row: &[f32], class: usize) -> Attribution {
        match &self.kind {
            Kind::Trees { model, base } => {
                model.explain(row, &self.background, self.width, base, class)
            }
            Kind::Linear { model, means } => model.explain(row, means, class),
        }
    }
}

/// Which feature each column of one graph input holds (one entry for a `[N, 1]` column input,
/// `F` for a packed `[N, F]` one).
#[derive(Debug, Clone)]
pub struct InputFeatures {
    pub name: String,
    pub features: Vec<usize>,
}

/// The hybrid rows of every coalition in `masks` against every background row: for coalition
/// `masks[k]` and background row `b`, row `k * rows + b` takes feature `f` from `row` (one
/// row) where bit `f` of the mask is set and from `background` row `b` otherwise. `row` and
/// `background` are the graph inputs `inputs` names, in that order.
pub fn coalition_rows(
    inputs: &[InputFeatures],
    row: &[NamedTensor],
    background: &[NamedTensor],
    masks: &[u64],
) -> Result<Vec<NamedTensor>, String> {
    let mut out = Vec::with_capacity(inputs.len());
    for input in inputs {
        fn find<'t>(
            tensors: &'t [NamedTensor],
            input: &InputFeatures,
        ) -> Result<&'t Tensor, String> {
            tensors
                .iter()
                .find(|t| t.name == input.name)
                .map(|t| &t.tensor)
                .ok_or_else(|| format!("no input `{}`", input.name))
        }
        let (x, z) = (find(row, input)?, find(background, input)?);
        let width = input.features.len().max(1);
        let rows = z.data.len() / width;
        let data = mix(&x.data, &z.data, &input.features, rows, masks)?;
        let mut shape = z.shape.clone();
        if let Some(first) = shape.first_mut() {
            *first = masks.len() * rows;
        }
        out.push(NamedTensor {
            name: input.name.clone(),
            tensor: Tensor::new(shape, data)?,
        });
    }
    Ok(out)
}

fn mix(
    x: &TensorData,
    z: &TensorData,
    features: &[usize],
    rows: usize,
    masks: &[u64],
) -> Result<TensorData, String> {
    fn gather<T: Clone>(
        x: &[T],
        z: &[T],
        features: &[usize],
        rows: usize,
        masks: &[u64],
    ) -> Vec<T> {
        let width = features.len();
        let mut out = Vec::with_capacity(masks.len() * rows * width);
        for &mask in masks {
            for b in 0..rows {
                for (j, &f) in features.iter().enumerate() {
                    out.push(if mask >> f & 1 == 1 {
                        x[j].clone()
                    } else {
                        z[b * width + j].clone()
                    });
                }
            }
        }
        out
    }
    macro_rules! each {
        ($($variant:ident),*) => {
            match (x, z) {
                $((TensorData::$variant(x), TensorData::$variant(z)) => {
                    Ok(TensorData::$variant(gather(x, z, features, rows, masks)))
                })*
                _ => Err("the row and the background differ in type".to_owned()),
            }
        };
    }
    each!(Bool, U8, U16, U32, U64, I8, I16, I32, I64, F32, F64, String)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalition_rows_take_the_masked_features_from_the_row() {
        let packed = InputFeatures {
            name: "x".into(),
            features: vec![0, 1],
        };
        let column = InputFeatures {
            name: "c".into(),
            features: vec![2],
        };
        let t = |name: &str, shape: Vec<usize>, data: TensorData| NamedTensor {
            name: name.into(),
            tensor: Tensor::new(shape, data).unwrap(),
        };
        let row = [
            t("x", vec![1, 2], TensorData::F32(vec![1.0, 2.0])),
            t("c", vec![1, 1], TensorData::String(vec!["row".into()])),
        ];
        let background = [
            t(
                "x",
                vec![2, 2],
                TensorData::F32(vec![10.0, 20.0, 30.0, 40.0]),
            ),
            t(
                "c",
                vec![2, 1],
                TensorData::String(vec!["b0".into(), "b1".into()]),
            ),
        ];
        let mixed = coalition_rows(&[packed, column], &row, &background, &[0b000, 0b101]).unwrap();
        assert_eq!(mixed[0].tensor.shape, vec![4, 2]);
        assert_eq!(
            mixed[0].tensor.data,
            TensorData::F32(vec![10.0, 20.0, 30.0, 40.0, 1.0, 20.0, 1.0, 40.0])
        );
        assert_eq!(
            mixed[1].tensor.data,
            TensorData::String(["b0", "b1", "row", "row"].map(String::from).to_vec())
        );
    }
}
