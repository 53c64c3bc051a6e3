//! `SVMClassifier` and `SVMRegressor` (ONNX-ML) for the tract backend, which has neither.
//!
//! scikit-learn's `SVC`, `NuSVC`, `SVR`, `NuSVR` and `OneClassSVM` export to these two
//! operators, so without them a support-vector model could only be served on ONNX Runtime.
//! [`register`] adds both to tract's ONNX operator registry: the parser reads the node's
//! attributes into an [`Svm`] (checked once, at load) and the graph gets one op (a
//! [`crate::onnx_ml::MlOperator`]) that computes the kernel values, the one-vs-one decision values and votes, Platt's pairwise
//! probabilities coupled as libsvm and ONNX Runtime do, and the post-transform.
//!
//! The arithmetic follows ONNX Runtime's kernels (`svmclassifier.cc`, `ml_common.h`), the
//! reference every exported model was checked against: inputs cast to `f32`; the pairwise sums
//! accumulated in `f64` from `f32` products; a label from the votes, first class on a tie;
//! probabilities clamped to [1e-7, 1 - 1e-7] before coupling, and the coupling's iteration and
//! stopping rule in `f32`; and the binary layouts of the score output (`[-d, d]` without
//! probabilities). `tests/svms.rs` holds random models of every kernel, class count and mode to
//! ONNX Runtime's answers within 1e-5.

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use crate::onnx_ml::{Labels, MlOperator, PostTransform, expand_operator, logistic, probit};

/// Adds `SVMClassifier` and `SVMRegressor` to tract's ONNX operators.
pub(crate) fn register(registry: &mut OnnxOpRegister) {
    registry.insert("SVMClassifier", parse_classifier);
    registry.insert("SVMRegressor", parse_regressor);
}

/// The function of a support vector and a row (`kernel_type`, `kernel_params`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kernel {
    Linear,
    /// `(gamma · <x, v> + coef0) ^ degree`
    Poly {
        gamma: f32,
        coef0: f32,
        degree: f32,
    },
    /// `exp(-gamma · |x - v|²)`
    Rbf {
        gamma: f32,
    },
    /// `tanh(gamma · <x, v> + coef0)`
    Sigmoid {
        gamma: f32,
        coef0: f32,
    },
}

impl Kernel {
    fn parse(node: &NodeProto) -> TractResult<Kernel> {
        let params: Vec<f32> = node.get_attr_opt_vec("kernel_params")?.unwrap_or_default();
        let param = |i: usize| params.get(i).copied().unwrap_or(0.0);
        let (gamma, coef0, degree) = (param(0), param(1), param(2));
        Ok(
            match node
                .get_attr_opt::<&str>("kernel_type")?
                .unwrap_or("LINEAR")
            {
                "LINEAR" => Kernel::Linear,
                "POLY" => Kernel::Poly {
                    gamma,
                    coef0,
                    degree,
                },
                "RBF" => Kernel::Rbf { gamma },
                "SIGMOID" => Kernel::Sigmoid { gamma, coef0 },
                other => bail!("unknown kernel_type {other:?}"),
            },
        )
    }

    #[inline]
    fn apply(self, x: &[f32], v: &[f32]) -> f32 {
        let dot = || x.iter().zip(v).map(|(a, b)| a * b).sum::<f32>();
        match self {
            Kernel::Linear => dot(),
            Kernel::Poly {
                gamma,
                coef0,
                degree,
            } => {
                let base = gamma * dot() + coef0;
                match degree {
                    2.0 => base * base,
                    3.0 => base * base * base,
                    _ => base.powf(degree),
                }
            }
            Kernel::Rbf { gamma } => {
                let distance: f32 = x.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum();
                (-gamma * distance).exp()
            }
            Kernel::Sigmoid { gamma, coef0 } => (gamma * dot() + coef0).tanh(),
        }
    }
}

/// How the decision values are made.
#[derive(Debug, Clone, PartialEq)]
enum Mode {
    /// liblinear: one weight row per class, `[classes, features]`, and one bias for all.
    Linear { weights: Vec<f32>, bias: f32 },
    /// libsvm: support vectors grouped by class, one-vs-one.
    Svc(Box<Svc>),
}

#[derive(Debug, Clone, PartialEq)]
struct Svc {
    /// `[vectors, features]`
    vectors: Vec<f32>,
    /// Where each class's support vectors start, and how many it has.
    groups: Vec<(usize, usize)>,
    /// `[classes - 1, vectors]`: libsvm's dual coefficients.
    coefficients: Vec<f32>,
    /// One intercept per pair of classes, in the order (0,1), (0,2), …, (1,2), …
    rho: Vec<f32>,
    /// Platt's sigmoid per pair (`prob_a`, `prob_b`), when the model has probabilities.
    platt: Option<(Vec<f32>, Vec<f32>)>,
}

/// An `SVMClassifier`, checked.
#[derive(Debug, Clone, PartialEq)]
struct Svm {
    kernel: Kernel,
    mode: Mode,
    features: usize,
    labels: Labels,
    post_transform: PostTransform,
    /// liblinear's binary label rule differs when every weight is positive.
    weights_all_positive: bool,
}

fn parse_classifier(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let labels = Labels::parse(node, "classlabels_ints")?;
    let classes = labels.len();
    node.expect(classes >= 2, "at least two class labels")?;
    let coefficients: Vec<f32> = node.get_attr_vec("coefficients")?;
    let rho: Vec<f32> = node.get_attr_vec("rho")?;
    let vectors: Vec<f32> = node
        .get_attr_opt_vec("support_vectors")?
        .unwrap_or_default();
    let per_class: Vec<i64> = node
        .get_attr_opt_vec("vectors_per_class")?
        .unwrap_or_default();
    let prob_a: Vec<f32> = node.get_attr_opt_vec("prob_a")?.unwrap_or_default();
    let prob_b: Vec<f32> = node.get_attr_opt_vec("prob_b")?.unwrap_or_default();
    node.expect(prob_a.len() == prob_b.len(), "as many prob_a as prob_b")?;
    node.expect(!coefficients.is_empty(), "coefficients")?;
    node.expect(!rho.is_empty(), "rho")?;
    let weights_all_positive = coefficients.iter().all(|&c| c >= 0.0);
    let count: i64 = per_class.iter().sum();
    let pairs = classes * (classes - 1) / 2;
    let (mode, features, kernel) = if count > 0 {
        let count = count as usize;
        node.expect(
            per_class.len() == classes && per_class.iter().all(|&n| n >= 0),
            "one vectors_per_class entry per class",
        )?;
        node.expect(
            !vectors.is_empty() && vectors.len().is_multiple_of(count),
            "support_vectors of [vectors, features]",
        )?;
        node.expect(
            coefficients.len() >= (classes - 1) * count,
            "coefficients of [classes - 1, vectors]",
        )?;
        node.expect(rho.len() >= pairs, "one rho per pair of classes")?;
        node.expect(
            prob_a.is_empty() || prob_a.len() >= pairs,
            "one prob_a and prob_b per pair of classes",
        )?;
        let mut start = 0;
        let groups = per_class
            .iter()
            .map(|&n| {
                let group = (start, n as usize);
                start += n as usize;
                group
            })
            .collect();
        let features = vectors.len() / count;
        let svc = Svc {
            vectors,
            groups,
            coefficients,
            rho,
            platt: (!prob_a.is_empty()).then_some((prob_a, prob_b)),
        };
        (Mode::Svc(Box::new(svc)), features, Kernel::parse(node)?)
    } else {
        node.expect(
            coefficients.len().is_multiple_of(classes),
            "coefficients of [classes, features]",
        )?;
        let features = coefficients.len() / classes;
        let mode = Mode::Linear {
            weights: coefficients,
            bias: rho[0],
        };
        (mode, features, Kernel::Linear)
    };
    node.expect(features > 0, "at least one feature")?;
    let svm = Svm {
        kernel,
        mode,
        features,
        labels,
        post_transform: PostTransform::parse(node)?,
        weights_all_positive,
    };
    Ok((expand_operator(Machine::Classifier(svm)), vec![]))
}

/// An `SVMRegressor`, checked: one output per row.
#[derive(Debug, Clone, PartialEq)]
struct SvmRegressor {
    kernel: Kernel,
    /// `[vectors, features]`; empty for a linear model, whose weights are the coefficients.
    vectors: Vec<f32>,
    coefficients: Vec<f32>,
    bias: f32,
    features: usize,
    /// `OneClassSVM`: the sign of the decision value, as ±1.
    one_class: bool,
}

fn parse_regressor(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let coefficients: Vec<f32> = node.get_attr_vec("coefficients")?;
    let rho: Vec<f32> = node.get_attr_vec("rho")?;
    let supports: i64 = node.get_attr_opt("n_supports")?.unwrap_or(0);
    node.expect(!coefficients.is_empty(), "coefficients")?;
    node.expect(!rho.is_empty(), "rho")?;
    node.expect(supports >= 0, "n_supports >= 0")?;
    let one_class = node.get_attr_opt::<i64>("one_class")?.unwrap_or(0) != 0;
    let regressor = if supports > 0 {
        let supports = supports as usize;
        let vectors: Vec<f32> = node.get_attr_vec("support_vectors")?;
        node.expect(
            !vectors.is_empty() && vectors.len().is_multiple_of(supports),
            "support_vectors of [n_supports, features]",
        )?;
        node.expect(
            coefficients.len() >= supports,
            "one coefficient per support vector",
        )?;
        SvmRegressor {
            kernel: Kernel::parse(node)?,
            features: vectors.len() / supports,
            vectors,
            coefficients,
            bias: rho[0],
            one_class,
        }
    } else {
        SvmRegressor {
            kernel: Kernel::Linear,
            features: coefficients.len(),
            vectors: Vec::new(),
            coefficients,
            bias: rho[0],
            one_class,
        }
    };
    Ok((expand_operator(Machine::Regressor(regressor)), vec![]))
}

/// Either operator, as the graph's op holds it.
#[derive(Debug, Clone, PartialEq)]
enum Machine {
    Classifier(Svm),
    Regressor(SvmRegressor),
}

impl Machine {
    fn features(&self) -> usize {
        match self {
            Machine::Classifier(svm) => svm.features,
            Machine::Regressor(regressor) => regressor.features,
        }
    }
}

impl Svm {
    fn classes(&self) -> usize {
        self.labels.len()
    }

    /// Columns of the score output: one per class, except a libsvm model without
    /// probabilities, which answers its pairwise decision values (two columns for two classes).
    fn score_columns(&self) -> usize {
        let classes = self.classes();
        match &self.mode {
            Mode::Svc(svc) if svc.platt.is_none() => {
                if classes > 2 {
                    classes * (classes - 1) / 2
                } else {
                    2
                }
            }
            _ => classes,
        }
    }

    /// The labels' class indices and the `[rows, score_columns]` scores.
    fn eval(&self, input: &[f32], rows: usize) -> (Vec<usize>, Vec<f32>) {
        let columns = self.score_columns();
        let mut scores = vec![0f32; rows * columns];
        let mut classes = Vec::with_capacity(rows);
        for (row, out) in input
            .chunks_exact(self.features)
            .zip(scores.chunks_mut(columns))
        {
            let class = match &self.mode {
                Mode::Linear { weights, bias } => self.linear(row, weights, *bias, out),
                Mode::Svc(svc) => self.svc(svc, row, out),
            };
            classes.push(class);
        }
        (classes, scores)
    }

    fn linear(&self, row: &[f32], weights: &[f32], bias: f32, out: &mut [f32]) -> usize {
        for (score, w) in out.iter_mut().zip(weights.chunks_exact(self.features)) {
            *score = Kernel::Linear.apply(row, w) + bias;
        }
        let (best, &max) =
            out.iter().enumerate().fold(
                (0, &out[0]),
                |best, (i, s)| if *s > *best.1 { (i, s) } else { best },
            );
        let class = if self.classes() == 2 {
            let binary =
                self.weights_all_positive && max >= 0.5 || !self.weights_all_positive && max > 0.0;
            if binary { 1 } else { best }
        } else {
            best
        };
        self.post_transform.apply(out);
        class
    }

    fn svc(&self, svc: &Svc, row: &[f32], out: &mut [f32]) -> usize {
        let classes = self.classes();
        let count = svc.vectors.len() / self.features;
        let kernels: Vec<f32> = svc
            .vectors
            .chunks_exact(self.features)
            .map(|v| self.kernel.apply(row, v))
            .collect();
        let mut votes = vec![0u32; classes];
        let mut decisions = Vec::with_capacity(classes * (classes - 1) / 2);
        for i in 0..classes {
            for j in i + 1..classes {
                let side = |class: usize, row_of_coefficients: usize| -> f64 {
                    let (start, n) = svc.groups[class];
                    let coefficients = &svc.coefficients[row_of_coefficients * count..];
                    (start..start + n)
                        .map(|v| f64::from(coefficients[v] * kernels[v]))
                        .sum()
                };
                let sum = side(i, j - 1) + side(j, i) + f64::from(svc.rho[decisions.len()]);
                decisions.push(sum as f32);
                votes[if sum > 0.0 { i } else { j }] += 1;
            }
        }
        let class = votes
            .iter()
            .enumerate()
            .fold(0, |best, (c, &v)| if v > votes[best] { c } else { best });
        match &svc.platt {
            Some((a, b)) => {
                let mut pairwise = vec![0f32; classes * classes];
                let mut index = 0;
                for i in 0..classes {
                    for j in i + 1..classes {
                        let p = (1.0 - logistic(decisions[index] * a[index] + b[index]))
                            .clamp(1e-7, 1.0 - 1e-7);
                        pairwise[i * classes + j] = p;
                        pairwise[j * classes + i] = 1.0 - p;
                        index += 1;
                    }
                }
                couple(classes, &pairwise, out);
                self.post_transform.apply(out);
            }
            None if classes > 2 => {
                out.copy_from_slice(&decisions);
                self.post_transform.apply(out);
            }
            None => {
                let d = decisions[0];
                match self.post_transform {
                    PostTransform::None => out.copy_from_slice(&[-d, d]),
                    PostTransform::Probit => out.copy_from_slice(&[probit(d), 0.0]),
                    _ => out.copy_from_slice(&[1.0 - d, d]),
                }
            }
        }
        class
    }
}

/// Class probabilities from pairwise ones: the second method of Wu, Lin and Weng (2004),
/// "Probability estimates for multi-class classification by pairwise coupling", as libsvm's
/// `multiclass_probability`, in `f32` with ONNX Runtime's stopping rule.
fn couple(k: usize, r: &[f32], p: &mut [f32]) {
    let mut q = vec![0f32; k * k];
    let mut qp = vec![0f32; k];
    for i in 0..k {
        p[i] = 1.0 / k as f32;
        for j in 0..i {
            q[i * k + i] += r[j * k + i] * r[j * k + i];
            q[i * k + j] = q[j * k + i];
        }
        for j in i + 1..k {
            q[i * k + i] += r[j * k + i] * r[j * k + i];
            q[i * k + j] = -r[j * k + i] * r[i * k + j];
        }
    }
    let epsilon = 0.005 / k as f32;
    for _ in 0..100 {
        let mut pqp = 0f32;
        for i in 0..k {
            qp[i] = (0..k).map(|j| q[i * k + j] * p[j]).fold(0.0, |a, b| a + b);
            pqp += p[i] * qp[i];
        }
        let max_error = qp.iter().map(|v| (v - pqp).abs()).fold(0f32, f32::max);
        if max_error < epsilon {
            break;
        }
        for i in 0..k {
            let diff = (-qp[i] + pqp) / q[i * k + i];
            p[i] += diff;
            pqp = (pqp + diff * (diff * q[i * k + i] + 2.0 * qp[i])) / (1.0 + diff) / (1.0 + diff);
            for j in 0..k {
                qp[j] = (qp[j] + diff * q[i * k + j]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
}

impl SvmRegressor {
    fn eval(&self, input: &[f32]) -> Vec<f32> {
        input
            .chunks_exact(self.features)
            .map(|row| {
                let value = if self.vectors.is_empty() {
                    Kernel::Linear.apply(row, &self.coefficients) + self.bias
                } else {
                    self.vectors
                        .chunks_exact(self.features)
                        .zip(&self.coefficients)
                        .map(|(v, c)| self.kernel.apply(row, v) * c)
                        .sum::<f32>()
                        + self.bias
                };
                match self.one_class {
                    true if value > 0.0 => 1.0,
                    true => -1.0,
                    false => value,
                }
            })
            .collect()
    }
}

impl MlOperator for Machine {
    fn onnx_name(&self) -> &'static str {
        match self {
            Machine::Classifier(_) => "SVMClassifier",
            Machine::Regressor(_) => "SVMRegressor",
        }
    }

    fn op_name(&self) -> &'static str {
        "WardenSvm"
    }

    fn check_width(&self, width: usize) -> TractResult<()> {
        ensure!(
            width == self.features(),
            "the input has {width} features; the support vectors have {}",
            self.features()
        );
        Ok(())
    }

    fn outputs(&self) -> Vec<(DatumType, Option<usize>)> {
        match self {
            Machine::Classifier(svm) => vec![
                (svm.labels.datum_type(), None),
                (f32::datum_type(), Some(svm.score_columns())),
            ],
            Machine::Regressor(_) => vec![(f32::datum_type(), Some(1))],
        }
    }

    fn eval(&self, input: &[f32], rows: usize, _width: usize) -> TractResult<TVec<Tensor>> {
        Ok(match self {
            Machine::Classifier(svm) => {
                let (classes, scores) = svm.eval(input, rows);
                tvec!(
                    svm.labels.tensor_of_classes(&classes),
                    Tensor::from_shape(&[rows, svm.score_columns()], &scores)?
                )
            }
            Machine::Regressor(regressor) => {
                tvec!(Tensor::from_shape(&[rows, 1], &regressor.eval(input))?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coupling_two_classes_returns_the_pairwise_probability() {
        let mut p = [0.0; 2];
        couple(2, &[0.0, 0.8, 0.2, 0.0], &mut p);
        assert!(
            (p[0] - 0.8).abs() < 1e-3 && (p[1] - 0.2).abs() < 1e-3,
            "{p:?}"
        );
    }

    #[test]
    fn coupling_solves_wu_lin_weng_to_its_stopping_tolerance() {
        // 0 beats 1 (0.9) and 2 (0.8); 1 beats 2 (0.7). The exact minimiser of
        // Σ (r_ji p_i - r_ij p_j)² on the simplex, by numpy's linear solve, is below.
        let r = [0.0, 0.9, 0.8, 0.1, 0.0, 0.7, 0.2, 0.3, 0.0];
        let mut p = [0.0; 3];
        couple(3, &r, &mut p);
        let exact = [0.753_512_4, 0.113_284_7, 0.133_202_9];
        for (got, want) in p.iter().zip(exact) {
            assert!((got - want).abs() < 0.005 / 3.0, "{p:?}");
        }
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{p:?}");
    }
}
