//! Linear models (`LinearClassifier`, `LinearRegressor`) in closed form: with the features
//! independent of each other against the background set, feature `i`'s interventional
//! Shapley value of `w·x + b` is `w_i (x_i - mean_i)`, where `mean_i` is its mean over the
//! background, and the base value is `w·mean + b` (what shap's `LinearExplainer` computes).
//! The scale is the linear score: the margin of a classifier, the value of a regressor.

use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::{Attribution, Scale};

/// One linear score per class (or target), read off the graph's node.
#[derive(Debug, Clone)]
pub(super) struct LinearModel {
    /// `[scores, features]`, row-major.
    coefficients: Vec<f64>,
    intercepts: Vec<f64>,
    features: usize,
    /// Two classes scored by one row (`score` for the second, `-score` for the first).
    single_binary: bool,
    scale: Scale,
}

impl LinearModel {
    /// The model of a `LinearClassifier` (with `classes` class labels) or `LinearRegressor`
    /// reading `features` columns; `None` when warden cannot state its score per class.
    pub(super) fn parse(node: &NodeProto, features: usize) -> TractResult<Option<LinearModel>> {
        let coefficients: Vec<f32> = node.get_attr_vec("coefficients")?;
        let intercepts: Vec<f32> = node.get_attr_opt_vec("intercepts")?.unwrap_or_default();
        ensure!(
            features > 0 && coefficients.len().is_multiple_of(features),
            "coefficients of {features} features"
        );
        let scores = coefficients.len() / features;
        let intercepts: Vec<f64> = if intercepts.is_empty() {
            vec![0.0; scores]
        } else {
            intercepts.iter().map(|&b| f64::from(b)).collect()
        };
        ensure!(intercepts.len() == scores, "one intercept per score");
        let (scale, classes) = match node.op_type.as_str() {
            "LinearClassifier" => {
                let ints: Option<Vec<i64>> = node.get_attr_opt_vec("classlabels_ints")?;
                let strings: Option<Vec<String>> = node.get_attr_opt_vec("classlabels_strings")?;
                let classes = strings
                    .map(|s| s.len())
                    .filter(|&n| n > 0)
                    .or(ints.map(|i| i.len()))
                    .unwrap_or(0);
                (Scale::Margin, classes)
            }
            "LinearRegressor" => {
                let post: Option<&str> = node.get_attr_opt("post_transform")?;
                if post.is_some_and(|p| p != "NONE") || scores != 1 {
                    return Ok(None);
                }
                (Scale::Value, 1)
            }
            _ => return Ok(None),
        };
        let single_binary = scale == Scale::Margin && classes == 2 && scores == 1;
        if scale == Scale::Margin && !single_binary && scores != classes {
            return Ok(None);
        }
        Ok(Some(LinearModel {
            coefficients: coefficients.iter().map(|&w| f64::from(w)).collect(),
            intercepts,
            features,
            single_binary,
            scale,
        }))
    }

    pub(super) fn scale(&self) -> Scale {
        self.scale
    }

    /// The coefficients and intercept of class (or target) `class`'s score.
    fn score(&self, class: usize) -> (Vec<f64>, f64) {
        let (row, sign) = if self.single_binary {
            (0, if class == 0 { -1.0 } else { 1.0 })
        } else {
            (class, 1.0)
        };
        let w = &self.coefficients[row * self.features..(row + 1) * self.features];
        (
            w.iter().map(|&w| sign * w).collect(),
            sign * self.intercepts[row],
        )
    }

    /// The attribution of `row` for class `class`, against the background's column `means`.
    pub(super) fn explain(&self, row: &[f32], means: &[f64], class: usize) -> Attribution {
        let (w, b) = self.score(class);
        let values: Vec<f64> = (0..self.features)
            .map(|i| w[i] * (f64::from(row[i]) - means[i]))
            .collect();
        let base = b + (0..self.features).map(|i| w[i] * means[i]).sum::<f64>();
        let output = b
            + (0..self.features)
                .map(|i| w[i] * f64::from(row[i]))
                .sum::<f64>();
        Attribution {
            base,
            values,
            output,
        }
    }
}
