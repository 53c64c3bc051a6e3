//! ONNX Runtime's arithmetic for what the ONNX-ML classifiers share: the `post_transform`
//! functions and the class labels. warden's own operators for tract ([`crate::svm`],
//! [`crate::trees`]) must answer as ONNX Runtime does, the engine every exported model was
//! checked against, so its definitions are followed where they are approximate: `PROBIT` is
//! Winitzki's closed form for erf⁻¹ (a = 0.147), not the exact inverse, and `SOFTMAX_ZERO`
//! leaves zero scores near zero.

use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::tract_ndarray::Array1;

/// `post_transform`, as ONNX Runtime applies it to a row of scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

impl PostTransform {
    pub(crate) fn parse(node: &NodeProto) -> TractResult<PostTransform> {
        Ok(
            match node
                .get_attr_opt::<&str>("post_transform")?
                .unwrap_or("NONE")
            {
                "NONE" => PostTransform::None,
                "LOGISTIC" => PostTransform::Logistic,
                "SOFTMAX" => PostTransform::Softmax,
                "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
                "PROBIT" => PostTransform::Probit,
                other => bail!("unknown post_transform {other:?}"),
            },
        )
    }

    /// Transforms a row of two scores or more in place.
    pub(crate) fn apply(self, scores: &mut [f32]) {
        match self {
            PostTransform::None => {}
            PostTransform::Logistic => scores.iter_mut().for_each(|s| *s = logistic(*s)),
            PostTransform::Probit => scores.iter_mut().for_each(|s| *s = probit(*s)),
            PostTransform::Softmax => {
                let max = scores.iter().copied().fold(-f32::MAX, f32::max);
                let mut sum = 0.0;
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    sum += *s;
                }
                scores.iter_mut().for_each(|s| *s /= sum);
            }
            PostTransform::SoftmaxZero => {
                // Zero scores (no evidence) stay near zero instead of taking exp(0)'s share.
                let max = scores.iter().copied().fold(-f32::MAX, f32::max);
                let zero_scale = (-max).exp();
                let mut sum = 0.0;
                for s in scores.iter_mut() {
                    if s.abs() > 1e-7 {
                        *s = (*s - max).exp();
                        sum += *s;
                    } else {
                        *s *= zero_scale;
                    }
                }
                scores.iter_mut().for_each(|s| *s /= sum);
            }
        }
    }
}

pub(crate) fn logistic(x: f32) -> f32 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

/// `√2 · erf⁻¹(2x - 1)` with the approximation ONNX Runtime uses (Winitzki's, a = 0.147).
pub(crate) fn probit(x: f32) -> f32 {
    let y = 2.0 * x - 1.0;
    let sign = if y < 0.0 { -1.0 } else { 1.0 };
    let ln = ((1.0 - y) * (1.0 + y)).ln();
    let v = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * ln;
    let v2 = ln / 0.147;
    std::f32::consts::SQRT_2 * sign * (-v + (v * v - v2).sqrt()).sqrt()
}

/// The class labels: `classlabels_ints` or `classlabels_strings`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Labels {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

impl Labels {
    /// `classlabels_strings`, else the integer labels (named `ints_attribute`, which differs
    /// between operators).
    pub(crate) fn parse(node: &NodeProto, ints_attribute: &str) -> TractResult<Labels> {
        Ok(
            match node.get_attr_opt_vec::<String>("classlabels_strings")? {
                Some(strings) if !strings.is_empty() => Labels::Strings(strings),
                _ => Labels::Ints(
                    node.get_attr_opt_vec::<i64>(ints_attribute)?
                        .unwrap_or_default(),
                ),
            },
        )
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Labels::Ints(v) => v.len(),
            Labels::Strings(v) => v.len(),
        }
    }

    pub(crate) fn datum_type(&self) -> DatumType {
        match self {
            Labels::Ints(_) => i64::datum_type(),
            Labels::Strings(_) => String::datum_type(),
        }
    }

    /// The `[rows]` label tensor of each row's class index.
    pub(crate) fn tensor_of_classes(&self, classes: &[usize]) -> Tensor {
        match self {
            Labels::Ints(v) => Array1::from_iter(classes.iter().map(|&c| v[c])).into_tensor(),
            Labels::Strings(v) => {
                Array1::from_iter(classes.iter().map(|&c| v[c].clone())).into_tensor()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probit_inverts_the_normal_distribution() {
        assert!(probit(0.5).abs() < 1e-6);
        assert!((probit(0.975) - 1.959_964).abs() < 5e-3);
        assert!((probit(0.025) + 1.959_964).abs() < 5e-3);
    }

    #[test]
    fn softmax_zero_leaves_zero_scores_out() {
        let mut scores = [0.0, 1.0, 2.0];
        PostTransform::SoftmaxZero.apply(&mut scores);
        assert!(scores[0] < 1e-6, "{scores:?}");
        assert!((scores[1] + scores[2] - 1.0).abs() < 1e-6, "{scores:?}");
    }
}
