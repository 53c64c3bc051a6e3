//! A served model version: its graph loaded on a backend, its contract resolved against the
//! graph, warmed up, and its inference worker running.
//!
//! Loading does every check that can be done before a request arrives (the manifest against
//! the graph, a warm-up inference through the same path a request takes, the output guards), so
//! a version that is served has already answered once correctly.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::Value;
use sha2::{Digest, Sha256};
use warden_contract::{
    Binding, Feature, FeatureType, GraphElement, GraphInput, Output, OutputKind, Violations,
    bind_features, check_columns, features_from_graph, validate_instances,
};
use warden_runtime::graph_facts::{NodeFacts, NotOnnx, inspect};
use warden_runtime::{
    Backend, DataType, LoadOptions, NamedTensor, RuntimeError, Signature, TensorSpec,
};

use crate::protocol::rows;
use crate::serving::guards::check_outputs;
use crate::serving::repository::ModelSource;
use crate::serving::scheduler::{Answer, InferError, Scheduler, SchedulerOptions, Timings};

/// The contract a version is served under.
#[derive(Debug, Clone)]
pub struct ModelContract {
    /// The features the row API accepts, in model order; `None` when the graph's inputs cannot
    /// be described as named features (only the V2 API serves it then).
    pub features: Option<(Vec<Feature>, Binding)>,
    pub outputs: Vec<Output>,
    /// True when a manifest declared the contract, false when it was read off the graph.
    pub declared: bool,
    pub max_batch_size: usize,
}

/// A loaded, checked, warmed-up model version.
#[derive(Debug)]
pub struct ModelVersion {
    pub name: String,
    pub version: u64,
    pub sha256: String,
    pub platform: &'static str,
    pub signature: Signature,
    pub contract: ModelContract,
    /// Answers withheld because the output failed its guards (for metrics).
    pub invalid_outputs: AtomicU64,
    worker: Scheduler,
}

/// Why a version could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} {}", kind.sentence())]
    NotOnnx { path: PathBuf, kind: NotOnnx },
    #[error("{path}: operator `{operator}`{} of node `{node}` is not supported by the engine", if domain.is_empty() { String::new() } else { format!(" (domain `{domain}`)") })]
    UnsupportedOperator {
        path: PathBuf,
        operator: String,
        domain: String,
        node: String,
    },
    #[error(transparent)]
    Backend(#[from] RuntimeError),
    #[error("the `{backend}` backend is not available: {reason}")]
    BackendUnavailable {
        backend: &'static str,
        reason: String,
    },
    #[error("the manifest of model `{model}` does not match its graph: {}", problems.join("; "))]
    Contract {
        model: String,
        problems: Vec<String>,
    },
    #[error(
        "model `{model}` version {version} pins no sha256 in its manifest, and the server requires one (--require-checksum)"
    )]
    ChecksumMissing { model: String, version: u64 },
    #[error(
        "model `{model}` version {version}: the graph's sha256 is {actual}, but the manifest pins {expected}"
    )]
    ChecksumMismatch {
        model: String,
        version: u64,
        expected: String,
        actual: String,
    },
    #[error("warm-up inference of model `{model}` failed: {reason}")]
    WarmUp { model: String, reason: String },
    #[error("cannot start the inference thread of model `{model}`: {source}")]
    Worker {
        model: String,
        source: std::io::Error,
    },
}

/// Why a request could not be answered with predictions.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error("{}", describe_violations(.0))]
    Invalid(Violations),
    #[error("the request has {rows} rows; model `{model}` accepts at most {max} per request")]
    BatchTooLarge {
        model: String,
        rows: usize,
        max: usize,
    },
    #[error("model `{0}` declares no named features; use the V2 inference API")]
    NoRowContract(String),
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error("model output failed its guards: {}", .0.join("; "))]
    InvalidOutput(Vec<String>),
    #[error("could not encode the request: {0}")]
    Encode(String),
}

/// Violations in one line, for logs and start-up messages: `sepal_length: expected …; …`.
fn describe_violations(violations: &Violations) -> String {
    violations
        .listed()
        .iter()
        .map(|v| {
            let field = v
                .loc
                .last()
                .map_or_else(String::new, |segment| match segment {
                    warden_contract::LocSegment::Key(key) => format!("{key}: "),
                    warden_contract::LocSegment::Index(index) => format!("[{index}]: "),
                });
            format!("{field}{}", v.msg)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A row request checked against the contract and encoded as graph inputs.
#[derive(Debug)]
pub struct EncodedRows {
    inputs: Vec<NamedTensor>,
    rows: usize,
}

/// Predictions for a row request.
#[derive(Debug)]
pub struct RowPredictions {
    pub predictions: Vec<Value>,
    pub timings: Timings,
}

/// How versions are served: worker threads per version and engine threads per worker.
#[derive(Debug, Clone, Copy)]
pub struct Serving {
    pub workers: usize,
    pub intra_op_threads: usize,
    /// Refuse versions whose manifest pins no sha256.
    pub require_checksum: bool,
}

impl Default for Serving {
    fn default() -> Serving {
        Serving {
            workers: 1,
            intra_op_threads: 1,
            require_checksum: false,
        }
    }
}

impl ModelVersion {
    /// Loads `source` on `backend` (one copy per worker), resolves its contract and warms it up.
    pub fn load(
        source: &ModelSource,
        backend: &dyn Backend,
        serving: &Serving,
    ) -> Result<ModelVersion, LoadError> {
        let bytes = std::fs::read(&source.graph).map_err(|err| LoadError::Read {
            path: source.graph.clone(),
            source: err,
        })?;
        let sha256 = sha256_hex(&bytes);
        let nodes = inspect(&bytes).map_err(|kind| LoadError::NotOnnx {
            path: source.graph.clone(),
            kind,
        })?;
        // After the format check, so a pickle dropped in place is named as one.
        match source.pinned_sha256() {
            Some(expected) if !expected.eq_ignore_ascii_case(&sha256) => {
                return Err(LoadError::ChecksumMismatch {
                    model: source.name.clone(),
                    version: source.version,
                    expected: expected.to_owned(),
                    actual: sha256,
                });
            }
            None if serving.require_checksum => {
                return Err(LoadError::ChecksumMissing {
                    model: source.name.clone(),
                    version: source.version,
                });
            }
            _ => {}
        }
        let options = LoadOptions {
            intra_op_threads: Some(serving.intra_op_threads.max(1)),
        };
        let mut model = backend
            .load(&bytes, &source.graph, &options)
            .map_err(|err| unsupported_operator(err, &nodes, &source.graph))?;
        let signature = model.signature().clone();
        let contract = resolve_contract(source, &signature)?;
        // Warm up on this thread, through the same encode and guard path a request takes,
        // before the model is handed to its worker.
        let warm_up = |reason: String| LoadError::WarmUp {
            model: source.name.clone(),
            reason,
        };
        if let Some(example) = example_row(source, &contract) {
            let (inputs, _) = encode_rows(
                &source.name,
                &contract,
                &signature,
                &Value::Array(vec![example]),
            )
            .map_err(|err| warm_up(err.to_string()))?;
            let outputs = model
                .run(inputs, &[])
                .map_err(|err| warm_up(err.to_string()))?;
            check_outputs(&outputs, &contract.outputs)
                .map_err(|problems| warm_up(problems.join("; ")))?;
        }
        let batching = source
            .manifest
            .as_ref()
            .map(|m| m.batching.clone())
            .unwrap_or_default();
        let batch_major = |specs: &[TensorSpec]| {
            specs
                .iter()
                .all(|s| s.shape.first().is_some_and(|&d| d < 0))
        };
        let scheduler_options = SchedulerOptions {
            queue_capacity: batching.queue_capacity,
            max_batch_size: batching.max_batch_size,
            max_queue_delay: std::time::Duration::from_millis(batching.max_queue_delay_ms),
            batchable: batch_major(&signature.inputs) && batch_major(&signature.outputs),
        };
        let mut models = Vec::with_capacity(serving.workers.max(1));
        for _ in 1..serving.workers.max(1) {
            models.push(match model.share() {
                Some(shared) => shared,
                None => backend.load(&bytes, &source.graph, &options)?,
            });
        }
        models.insert(0, model);
        let worker = Scheduler::spawn(&source.name, models, scheduler_options).map_err(|err| {
            LoadError::Worker {
                model: source.name.clone(),
                source: err,
            }
        })?;
        Ok(ModelVersion {
            name: source.name.clone(),
            version: source.version,
            sha256,
            platform: backend.platform(),
            signature,
            contract,
            invalid_outputs: AtomicU64::new(0),
            worker,
        })
    }

    /// Validates row instances against the contract and encodes them as graph inputs: the
    /// CPU-bound half of a row request, which a handler may run off the async runtime.
    pub fn encode_rows(&self, instances: &Value) -> Result<EncodedRows, PredictError> {
        let (inputs, rows) = encode_rows(&self.name, &self.contract, &self.signature, instances)?;
        Ok(EncodedRows { inputs, rows })
    }

    /// Answers encoded rows: infer, guard, decode.
    pub async fn predict_rows(
        &self,
        encoded: EncodedRows,
        deadline: Instant,
    ) -> Result<RowPredictions, PredictError> {
        let EncodedRows { inputs, rows } = encoded;
        let answer = self.infer(inputs, Vec::new(), rows, deadline).await?;
        let outputs = answer.outputs;
        Ok(RowPredictions {
            predictions: rows::predictions(&outputs, &self.contract.outputs, rows),
            timings: answer.timings,
        })
    }

    /// Checks decoded V2 input tensors against the declared features' value rules (ranges,
    /// categories, integral ints, NaN), locating each violation in the request.
    pub fn check_inputs(&self, inputs: &[NamedTensor]) -> Result<(), PredictError> {
        if !self.contract.declared {
            return Ok(());
        }
        let Some((features, binding)) = &self.contract.features else {
            return Ok(());
        };
        let Some(columns) = rows::decode_columns(features, binding, inputs) else {
            return Ok(());
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

    /// The scheduler's counters (queue depth, abandoned requests).
    pub fn counters(&self) -> &crate::serving::scheduler::Counters {
        self.worker.counters()
    }

    /// Runs already-checked graph inputs of `rows` rows before `deadline` and guards the
    /// outputs.
    pub async fn infer(
        &self,
        inputs: Vec<NamedTensor>,
        outputs: Vec<String>,
        rows: usize,
        deadline: Instant,
    ) -> Result<Answer, PredictError> {
        if rows > self.contract.max_batch_size {
            return Err(PredictError::BatchTooLarge {
                model: self.name.clone(),
                rows,
                max: self.contract.max_batch_size,
            });
        }
        let answer = self.worker.infer(inputs, outputs, rows, deadline).await?;
        if let Err(problems) = check_outputs(&answer.outputs, &self.contract.outputs) {
            let count = self.invalid_outputs.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                model = %self.name,
                version = self.version,
                problems = %problems.join("; "),
                invalid_outputs_total = count,
                "model output failed its guards; answer withheld"
            );
            return Err(PredictError::InvalidOutput(problems));
        }
        Ok(answer)
    }
}

/// The manifest's example row, or one synthesised from the contract (the lower bound or zero,
/// the first category) when there is none.
fn example_row(source: &ModelSource, contract: &ModelContract) -> Option<Value> {
    if let Some(example) = source.manifest.as_ref().and_then(|m| m.example.clone()) {
        return Some(Value::Object(example));
    }
    let (features, _) = contract.features.as_ref()?;
    Some(Value::Object(
        features
            .iter()
            .map(|f| {
                let value = match f.kind {
                    FeatureType::Float => Value::from(f.min.unwrap_or(0.0)),
                    FeatureType::Int => Value::from(f.min.unwrap_or(0.0) as i64),
                    FeatureType::Bool => Value::Bool(false),
                    FeatureType::String => Value::from(""),
                    FeatureType::Category => Value::from(
                        f.values
                            .as_ref()
                            .and_then(|v| v.first())
                            .cloned()
                            .unwrap_or_default(),
                    ),
                };
                (f.name.clone(), value)
            })
            .collect(),
    ))
}

/// Validates row instances against the contract and encodes them as graph inputs.
fn encode_rows(
    model: &str,
    contract: &ModelContract,
    signature: &Signature,
    instances: &Value,
) -> Result<(Vec<NamedTensor>, usize), PredictError> {
    let (features, binding) = contract
        .features
        .as_ref()
        .ok_or_else(|| PredictError::NoRowContract(model.to_owned()))?;
    if let Value::Array(rows) = instances
        && rows.len() > contract.max_batch_size
    {
        return Err(PredictError::BatchTooLarge {
            model: model.to_owned(),
            rows: rows.len(),
            max: contract.max_batch_size,
        });
    }
    let columns =
        validate_instances(features, instances, "instances").map_err(PredictError::Invalid)?;
    let inputs = rows::encode(&columns, binding, signature).map_err(PredictError::Encode)?;
    Ok((inputs, columns.rows))
}

/// An engine's load failure that names one of the graph's operators becomes a failure naming
/// that operator and its node; any other stays as the engine said it.
pub(crate) fn unsupported_operator(
    err: RuntimeError,
    nodes: &[NodeFacts],
    path: &std::path::Path,
) -> LoadError {
    if let RuntimeError::Load { reason, .. } = &err {
        let unsupported = [
            "not a registered function/op",
            "Could not find an implementation",
            "not implemented",
        ];
        if unsupported.iter().any(|phrase| reason.contains(phrase))
            && let Some(node) = nodes.iter().find(|n| {
                let qualified = format!("{}:{}(", n.domain, n.op_type);
                reason.contains(&qualified) || reason.contains(&format!(" {}(", n.op_type))
            })
        {
            return LoadError::UnsupportedOperator {
                path: path.to_path_buf(),
                operator: node.op_type.clone(),
                domain: node.domain.clone(),
                node: node.name.clone(),
            };
        }
    }
    LoadError::Backend(err)
}

/// The graph's inputs in the contract's vocabulary.
pub fn graph_inputs(signature: &Signature) -> Vec<GraphInput> {
    signature
        .inputs
        .iter()
        .map(|spec| GraphInput {
            name: spec.name.clone(),
            element: match spec.data_type {
                DataType::String => GraphElement::Text,
                DataType::Bool => GraphElement::Bool,
                dtype if dtype.is_float() => GraphElement::Float,
                _ => GraphElement::Integer,
            },
            shape: spec.shape.clone(),
        })
        .collect()
}

fn resolve_contract(
    source: &ModelSource,
    signature: &Signature,
) -> Result<ModelContract, LoadError> {
    let graph_inputs = graph_inputs(signature);
    let contract_error = |problems: Vec<String>| LoadError::Contract {
        model: source.name.clone(),
        problems,
    };
    let Some(manifest) = &source.manifest else {
        let features = features_from_graph(&graph_inputs).and_then(|features| {
            let binding = bind_features(&features, &graph_inputs).ok()?;
            Some((features, binding))
        });
        return Ok(ModelContract {
            features,
            outputs: outputs_from_graph(signature),
            declared: false,
            // The manifest's default, so the contract's limit and the scheduler's are one.
            max_batch_size: warden_contract::Batching::default().max_batch_size,
        });
    };
    let binding = bind_features(&manifest.features, &graph_inputs).map_err(contract_error)?;
    let mut problems = Vec::new();
    for output in &manifest.outputs {
        match signature.output(&output.name) {
            None => problems.push(format!(
                "output `{}` is not a graph output (the graph's outputs are: {})",
                output.name,
                signature
                    .outputs
                    .iter()
                    .map(|o| o.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(spec) => {
                let labels = output.labels.as_ref().map_or(0, Vec::len);
                if let (Some(&width), [_, _]) = (spec.shape.last(), spec.shape.as_slice())
                    && width > 0
                    && labels > 0
                    && width as usize != labels
                    && output.kind == OutputKind::Probability
                {
                    problems.push(format!(
                        "output `{}` has {width} columns but declares {labels} labels",
                        output.name
                    ));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(contract_error(problems));
    }
    Ok(ModelContract {
        features: Some((manifest.features.clone(), binding)),
        outputs: manifest.outputs.clone(),
        declared: true,
        max_batch_size: manifest.batching.max_batch_size,
    })
}

/// What a bare graph's outputs say about themselves. One float output of one value per row,
/// beside no label output, is a regressor's answer, so it reads `{"value": x}` as it would
/// under a manifest; a classifier (a label output) or anything else keeps its graph names, since
/// guessing which column is which would be worse than saying nothing.
fn outputs_from_graph(signature: &Signature) -> Vec<Output> {
    let has_label = signature
        .outputs
        .iter()
        .any(|o| o.data_type == DataType::String || o.data_type.is_integer());
    let per_row: Vec<&TensorSpec> = signature
        .outputs
        .iter()
        .filter(|o| o.data_type.is_float() && matches!(o.shape.as_slice(), [_] | [_, 1]))
        .collect();
    match per_row.as_slice() {
        [value] if !has_label => vec![Output {
            name: value.name.clone(),
            kind: OutputKind::Value,
            labels: None,
            relax: Vec::new(),
        }],
        _ => Vec::new(),
    }
}

/// The SHA-256 of `bytes` as lowercase hex, as manifests and responses show it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
