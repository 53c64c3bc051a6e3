//! What warden's own ONNX-ML operators for tract share: ONNX Runtime's arithmetic for the
//! `post_transform` functions and the class labels, and [`expand_operator`], the one wiring of a
//! [`MlOperator`] (an operator that takes `[rows, features]` and computes its outputs itself) into
//! tract's graph: type and shape inference, the cast to f32, the typed op that runs it. warden's own operators for tract ([`crate::svm`],
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

/// An ONNX-ML operator warden computes itself: a `[rows, features]` input (cast to f32) in,
/// its outputs out. [`expand_operator`] makes it a node tract can parse, type and run.
pub(crate) trait MlOperator: std::fmt::Debug + PartialEq + Send + Sync + 'static {
    /// The ONNX operator it implements (`SVMClassifier`, ...).
    fn onnx_name(&self) -> &'static str;
    /// The name of the typed op in tract's plan.
    fn op_name(&self) -> &'static str;
    /// Refuses a row width the operator cannot read.
    fn check_width(&self, width: usize) -> TractResult<()>;
    /// Each output's element type and width (`None`: one value per row, `[rows]`).
    fn outputs(&self) -> Vec<(DatumType, Option<usize>)>;
    /// The outputs of `rows` rows of `width` values.
    fn eval(&self, input: &[f32], rows: usize, width: usize) -> TractResult<TVec<Tensor>>;
}

/// An operator as tract's parser takes it.
pub(crate) fn expand_operator<K: MlOperator>(operator: K) -> Box<dyn InferenceOp> {
    expand(OperatorExpansion(Arc::new(operator)))
}

/// The parsed node: types and shapes for tract's inference, then one [`OperatorOp`].
#[derive(Debug)]
struct OperatorExpansion<K>(Arc<K>);

impl<K> Clone for OperatorExpansion<K> {
    fn clone(&self) -> Self {
        OperatorExpansion(Arc::clone(&self.0))
    }
}

impl<K: MlOperator> Expansion for OperatorExpansion<K> {
    fn name(&self) -> StaticName {
        self.0.onnx_name().into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.0.outputs().len())
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        let declared = self.0.outputs();
        check_output_arity(outputs, declared.len())?;
        s.equals(&inputs[0].rank, 2)?;
        for (output, (datum_type, width)) in outputs.iter().zip(declared) {
            s.equals(&output.datum_type, datum_type)?;
            s.equals(&output.shape[0], &inputs[0].shape[0])?;
            match width {
                None => s.equals(&output.rank, 1)?,
                Some(width) => {
                    s.equals(&output.rank, 2)?;
                    s.equals(&output.shape[1], width.to_dim())?;
                }
            }
        }
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let mut x = inputs[0];
        let fact = model.outlet_fact(x)?.clone();
        if let Some(width) = fact.shape.last().and_then(|d| d.to_usize().ok()) {
            self.0.check_width(width)?;
        }
        if fact.datum_type != f32::datum_type() {
            x = model.wire_node(
                format!("{prefix}.to_f32"),
                tract_core::ops::cast::cast(f32::datum_type()),
                &[x],
            )?[0];
        }
        model.wire_node(prefix, OperatorOp(Arc::clone(&self.0)), &[x])
    }
}

/// The typed op: `[rows, features]` f32 in, the operator's outputs out.
#[derive(Debug)]
struct OperatorOp<K>(Arc<K>);

impl<K> Clone for OperatorOp<K> {
    fn clone(&self) -> Self {
        OperatorOp(Arc::clone(&self.0))
    }
}

// Equality as tract compares ops (deduplication): the same operator.
impl<K: PartialEq> PartialEq for OperatorOp<K> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<K: PartialEq> Eq for OperatorOp<K> {}

impl<K: MlOperator> Op for OperatorOp<K> {
    fn name(&self) -> StaticName {
        self.0.op_name().into()
    }

    op_as_typed_op!();
}

impl<K: MlOperator> EvalOp for OperatorOp<K> {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let [rows, width] = *input.shape() else {
            bail!("{} takes [rows, features]", self.0.onnx_name())
        };
        self.0.check_width(width)?;
        let values = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let outputs = self.0.eval(values, rows, width)?;
        Ok(outputs.into_iter().map(Tensor::into_tvalue).collect())
    }
}

impl<K: MlOperator> TypedOp for OperatorOp<K> {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let rows = inputs[0].shape[0].clone();
        Ok(self
            .0
            .outputs()
            .into_iter()
            .map(|(datum_type, width)| match width {
                None => datum_type.fact(std::slice::from_ref(&rows)),
                Some(width) => datum_type.fact(&[rows.clone(), width.to_dim()]),
            })
            .collect())
    }

    as_op!();
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
