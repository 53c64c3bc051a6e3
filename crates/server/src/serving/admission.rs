//! The contract gate: the only place that turns a request's inputs into [`Admitted`] inputs,
//! and [`Admitted`] is the only thing a model version runs (`ModelVersion::infer`). A codec
//! (rows, KServe V2, any later protocol) decodes its wire format into rows or tensors; it cannot
//! reach inference without passing here, so no route can skip the contract: that is a compile
//! error, not a convention.
//!
//! Rows are validated feature by feature (types, ranges, categories, nullability) and encoded
//! as the graph's inputs. Tensors are checked against the graph's signature (every input once,
//! its element type, its shape, one batch size) and, when a manifest declares the features,
//! against the same value rules as rows, each violation located in the request.

use warden_contract::{
    LocSegment, RowSource, Violation, ViolationType, Violations, check_columns, validate_rows,
};
use warden_runtime::{NamedTensor, Signature, TensorData};

use super::binding;
use super::contract::ModelContract;
use super::predict_error::PredictError;

/// Inputs that passed the contract of one model version, ready to run on it.
#[derive(Debug)]
pub struct Admitted {
    inputs: Vec<NamedTensor>,
    outputs: Vec<String>,
    rows: usize,
    /// The identity of the version that admitted them (see [`Admitted::into_parts`]).
    admitted_by: u64,
}

impl Admitted {
    /// The rows in this batch.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The admitted inputs, as the engine will get them.
    pub fn inputs(&self) -> &[NamedTensor] {
        &self.inputs
    }

    /// A copy of these inputs for another version (its graph's `signature` and identity
    /// `version_id`) whose graph takes the same inputs (a rollout's pair, checked when the pair
    /// is made), asking for all its outputs. `None` when that graph's inputs differ.
    pub(super) fn copy_for(&self, signature: &Signature, version_id: u64) -> Option<Admitted> {
        let accepts = self.inputs.iter().all(|tensor| {
            signature.inputs.iter().any(|spec| {
                spec.name == tensor.name && spec.data_type == tensor.tensor.data.data_type()
            })
        });
        accepts.then(|| Admitted {
            inputs: self.inputs.clone(),
            outputs: Vec::new(),
            rows: self.rows,
            admitted_by: version_id,
        })
    }

    /// The inputs, the outputs asked for and the row count, for the version whose identity is
    /// `version_id`; `None` if another version admitted them (whose contract may differ).
    pub(super) fn into_parts(
        self,
        version_id: u64,
    ) -> Option<(Vec<NamedTensor>, Vec<String>, usize)> {
        (self.admitted_by == version_id).then_some((self.inputs, self.outputs, self.rows))
    }
}

/// A request's inputs as tensors, decoded but not yet checked.
#[derive(Debug)]
pub struct TensorRequest {
    pub inputs: Vec<NamedTensor>,
    /// The outputs asked for; empty: all.
    pub outputs: Vec<String>,
    pub rows: usize,
}

/// What a version's gate needs to know about it.
pub(super) struct Gate<'a> {
    pub(super) name: &'a str,
    pub(super) id: u64,
    pub(super) contract: &'a ModelContract,
    pub(super) signature: &'a Signature,
}

impl Gate<'_> {
    fn batch_limit(&self, rows: usize) -> Result<(), PredictError> {
        if rows > self.contract.max_request_rows {
            return Err(PredictError::BatchTooLarge {
                model: self.name.to_owned(),
                rows,
                max: self.contract.max_request_rows,
            });
        }
        Ok(())
    }

    /// Validates rows against the features and encodes them as graph inputs; the row count is
    /// checked against the batch limit before any row is read.
    pub(super) fn rows(&self, source: &dyn RowSource) -> Result<Admitted, PredictError> {
        let (features, binding) = self
            .contract
            .features
            .as_ref()
            .ok_or_else(|| PredictError::NoRowContract(self.name.to_owned()))?;
        self.batch_limit(source.rows())?;
        let columns =
            validate_rows(features, source, "instances").map_err(PredictError::Invalid)?;
        let inputs =
            binding::encode(&columns, binding, self.signature).map_err(PredictError::Encode)?;
        Ok(Admitted {
            inputs,
            outputs: Vec::new(),
            rows: columns.rows,
            admitted_by: self.id,
        })
    }

    /// Checks decoded tensors against the signature and the features' value rules.
    pub(super) fn tensors(&self, request: TensorRequest) -> Result<Admitted, PredictError> {
        self.batch_limit(request.rows)?;
        self.signature_check(&request)?;
        self.value_check(&request.inputs)?;
        Ok(Admitted {
            inputs: request.inputs,
            outputs: request.outputs,
            rows: request.rows,
            admitted_by: self.id,
        })
    }

    /// Every graph input exactly once, in its element type and a shape the graph accepts, all
    /// with the request's row count when batched; every output asked for exists. A codec checks
    /// these as it decodes, with its own locations; this is the gate's own guarantee.
    fn signature_check(&self, request: &TensorRequest) -> Result<(), PredictError> {
        let mut violations = Violations::new();
        let mut problem = |name: &str, kind: ViolationType, msg: String| {
            violations.push(Violation::new(
                vec![LocSegment::from("inputs"), LocSegment::from(name)],
                kind,
                msg,
            ));
        };
        for spec in &self.signature.inputs {
            let count = request
                .inputs
                .iter()
                .filter(|i| i.name == spec.name)
                .count();
            if count != 1 {
                let (kind, msg) = if count == 0 {
                    (
                        ViolationType::Missing,
                        "the model needs this input".to_owned(),
                    )
                } else {
                    (ViolationType::ValueError, format!("given {count} times"))
                };
                problem(&spec.name, kind, msg);
            }
        }
        for input in &request.inputs {
            let Some(spec) = self.signature.input(&input.name) else {
                problem(
                    &input.name,
                    ViolationType::ExtraForbidden,
                    "not an input of the model".into(),
                );
                continue;
            };
            let tensor = &input.tensor;
            let filled = tensor
                .shape
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d));
            if tensor.data_type() != spec.data_type {
                problem(
                    &input.name,
                    ViolationType::DatatypeMismatch,
                    format!("expected {}, got {}", spec.data_type, tensor.data_type()),
                );
            } else if !spec.accepts_shape(&tensor.shape) || filled != Some(tensor.data.len()) {
                problem(
                    &input.name,
                    ViolationType::ShapeMismatch,
                    format!("shape {:?} does not fit {:?}", tensor.shape, spec.shape),
                );
            } else if spec.shape.first().is_some_and(|&d| d < 0)
                && tensor.shape.first() != Some(&request.rows)
            {
                problem(
                    &input.name,
                    ViolationType::ShapeMismatch,
                    format!(
                        "{} rows where the request has {}",
                        tensor.shape[0], request.rows
                    ),
                );
            }
        }
        for output in &request.outputs {
            if self.signature.output(output).is_none() {
                violations.push(Violation::new(
                    vec![
                        LocSegment::from("outputs"),
                        LocSegment::from(output.as_str()),
                    ],
                    ViolationType::ExtraForbidden,
                    "not an output of the model",
                ));
            }
        }
        violations.into_result(()).map_err(PredictError::Invalid)
    }

    /// The declared features' value rules (ranges, categories, integral ints, missing values) on
    /// tensors, each violation located at its flat index in its input's data. Without declared
    /// features no value may be missing: nothing says the model handles one.
    fn value_check(&self, inputs: &[NamedTensor]) -> Result<(), PredictError> {
        let declared = self
            .contract
            .features
            .as_ref()
            .filter(|_| self.contract.declared);
        let Some((features, binding)) = declared else {
            return missing_values(inputs).map_err(PredictError::Invalid);
        };
        let Some(columns) = binding::decode_columns(features, binding, inputs) else {
            return missing_values(inputs).map_err(PredictError::Invalid);
        };
        let (values, places): (Vec<_>, Vec<_>) = columns
            .into_iter()
            .map(|(values, input, layout)| (values, (input, layout)))
            .unzip();
        let violations = check_columns(features, &values, |feature, row| {
            let (input, layout) = places[feature];
            vec![
                "inputs".into(),
                input.into(),
                "data".into(),
                layout.flat_index(row).into(),
            ]
        });
        violations.into_result(()).map_err(PredictError::Invalid)
    }
}

/// Refuses every missing value (NaN in a float tensor) of inputs no declared feature covers,
/// each at its flat index (the violations list the first ones and count the rest).
fn missing_values(inputs: &[NamedTensor]) -> Result<(), Violations> {
    let mut violations = Violations::new();
    for (index, input) in inputs.iter().enumerate() {
        let nans: Vec<usize> = match &input.tensor.data {
            TensorData::F32(values) => positions(values, |x| x.is_nan()),
            TensorData::F64(values) => positions(values, |x| x.is_nan()),
            _ => continue,
        };
        for flat in nans {
            violations.push_with(|| {
                Violation::new(
                    vec!["inputs".into(), index.into(), "data".into(), flat.into()],
                    ViolationType::ValueError,
                    "got a missing value (null or NaN), which only a feature declared `nullable = \
                     true` in the model's manifest (warden.toml) accepts",
                )
            });
        }
    }
    violations.into_result(())
}

/// The positions of the values that pass `test`.
fn positions<T: Copy>(values: &[T], test: impl Fn(T) -> bool) -> Vec<usize> {
    values
        .iter()
        .enumerate()
        .filter(|&(_, &x)| test(x))
        .map(|(flat, _)| flat)
        .collect()
}
