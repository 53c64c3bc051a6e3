//! A served model version: its graph loaded on a backend, its contract resolved against the
//! graph, warmed up, and its inference workers running. It runs only what its contract gate
//! ([`super::admission`]) admitted.
//!
//! Loading does every check that can be done before a request arrives (the manifest against
//! the graph, a warm-up inference through the same path a request takes, the output guards), so
//! a version that is served has already answered once correctly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::Value;
use sha2::{Digest, Sha256};
use warden_contract::RowSource;
use warden_runtime::graph_facts::inspect;
use warden_runtime::{Backend, LoadOptions, LoadedModel, Signature, TensorSpec};

use super::admission::{Admitted, Gate, TensorRequest};
use super::contract::{ModelContract, example_row, resolve_contract};
use super::drift::{DriftMonitor, monitor};
use super::explain::Explainer;
use super::guards::check_outputs;
use super::load_error::{LoadError, unsupported_operator};
use super::predict_error::PredictError;
use super::repository::ModelSource;
use super::scheduler::{Answer, Counters, Lane, Scheduler, SchedulerOptions};

/// A loaded, checked, warmed-up model version.
#[derive(Debug)]
pub struct ModelVersion {
    /// Unique in the process: which version admitted a request's inputs.
    id: u64,
    pub name: String,
    pub version: u64,
    /// `version` as text, as every metric label and answer names it (made once, not per request).
    pub version_label: String,
    pub sha256: String,
    pub platform: &'static str,
    pub signature: Signature,
    pub contract: ModelContract,
    /// Answers withheld because the output failed its guards (for metrics).
    pub invalid_outputs: AtomicU64,
    /// Inputs and predictions against the manifest's `[baseline]`; `None` without one.
    pub drift: Option<DriftMonitor>,
    /// Explanations against the manifest's background set; `None` without one.
    explainer: Option<Explainer>,
    worker: Scheduler,
}

/// How a version's workers hold its graph on ONNX Runtime (tract's workers always share one
/// plan and run it at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OnnxRuntimeSessions {
    /// One session per version, run by its workers in turn: the memory of one copy of the
    /// graph whatever the number of workers (a large forest's session is tens of MB).
    #[default]
    Shared,
    /// A session per worker, run at once: more memory, and runs of one version overlap.
    PerWorker,
}

/// How versions are served: worker threads per version and engine threads per worker.
#[derive(Debug, Clone, Copy)]
pub struct Serving {
    pub workers: usize,
    /// Threads one run may use inside the engine.
    pub intra_op_threads: usize,
    /// Whether the workers share one ONNX Runtime session.
    pub onnxruntime_sessions: OnnxRuntimeSessions,
    /// Refuse versions whose manifest pins no sha256.
    pub require_checksum: bool,
}

impl Default for Serving {
    fn default() -> Serving {
        Serving {
            workers: 1,
            intra_op_threads: 1,
            onnxruntime_sessions: OnnxRuntimeSessions::Shared,
            require_checksum: false,
        }
    }
}

/// A version's graph loaded on one engine, its contract resolved against the graph, not yet
/// warmed up or served: the first step of [`ModelVersion::load`], and what `warden init` runs
/// its candidate example rows on (through [`super::Backends::first_passing_example`]), so
/// trying a row costs one inference, not a load.
pub(super) struct Opened {
    id: u64,
    bytes: Vec<u8>,
    sha256: String,
    options: LoadOptions,
    model: Box<dyn LoadedModel>,
    signature: Signature,
    contract: ModelContract,
}

impl Opened {
    /// Reads `source`'s graph, checks its pinned hash, loads it on `backend` and resolves the
    /// contract.
    pub(super) fn open(
        source: &ModelSource,
        backend: &dyn Backend,
        serving: &Serving,
    ) -> Result<Opened, LoadError> {
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
            share_session: serving.onnxruntime_sessions == OnnxRuntimeSessions::Shared,
        };
        let model = backend
            .load(&bytes, &source.graph, &options)
            .map_err(|err| unsupported_operator(err, &nodes, &source.graph))?;
        let signature = model.signature().clone();
        let contract = resolve_contract(source, &signature)?;
        let id = NEXT_VERSION_ID.fetch_add(1, Ordering::Relaxed);
        Ok(Opened {
            id,
            bytes,
            sha256,
            options,
            model,
            signature,
            contract,
        })
    }

    /// The warm-up inference of `example`, on this thread, through the same encode and guard
    /// path a request takes. [`LoadError::WarmUp`] when the row breaks the contract or the
    /// answer fails its guards; [`LoadError::EngineRun`] when the engine cannot run the graph.
    pub(super) fn warm_up(
        &mut self,
        source: &ModelSource,
        example: Value,
    ) -> Result<(), LoadError> {
        let warm_up = |reason: String| LoadError::WarmUp {
            model: source.name.clone(),
            reason,
        };
        let gate = Gate {
            name: &source.name,
            id: self.id,
            contract: &self.contract,
            signature: &self.signature,
        };
        let admitted = gate
            .rows(&vec![example])
            .map_err(|err| warm_up(err.to_string()))?;
        let (inputs, _, _) = admitted
            .into_parts(self.id)
            .ok_or_else(|| warm_up("admitted by another version".into()))?;
        // An engine that cannot run the graph fails every row alike: say so, so the caller
        // tries another engine (or init stops looking for another example row).
        let outputs = self
            .model
            .run(inputs, &[])
            .map_err(|err| LoadError::EngineRun {
                model: source.name.clone(),
                reason: err.to_string(),
            })?;
        check_outputs(&outputs, &self.contract.outputs)
            .map_err(|problems| warm_up(problems.join("; ")))
    }

    /// Starts serving: one copy of the graph per worker, the scheduler, the drift monitor.
    fn serve(
        self,
        source: &ModelSource,
        backend: &dyn Backend,
        serving: &Serving,
    ) -> Result<ModelVersion, LoadError> {
        let Opened {
            id,
            bytes,
            sha256,
            options,
            model,
            signature,
            contract,
        } = self;
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
        // A copy for the idle lane (shadow runs): one sharing the loaded graph when shared
        // handles run at once (tract); else, for a model whose manifest rolls a version out,
        // a copy of its own, so an idle-priority run never holds a lock a request waits on.
        // Without either, its shadow runs go through the workers' queue.
        let spare = match model.share() {
            Some(shared) if model.shares_run_at_once() => Some(shared),
            _ if source
                .manifest
                .as_ref()
                .is_some_and(|m| m.rollout.is_some()) =>
            {
                Some(backend.load(&bytes, &source.graph, &options)?)
            }
            _ => None,
        };
        // The explain thread's own handle: shared where shared handles run at once (tract),
        // else a copy, so an explanation's engine runs never hold a lock a request waits on.
        let explains = source
            .manifest
            .as_ref()
            .is_some_and(|m| m.explain.background.is_some());
        let explain_model = match model.share() {
            Some(shared) if explains && model.shares_run_at_once() => Some(shared),
            _ if explains => Some(backend.load(&bytes, &source.graph, &options)?),
            _ => None,
        };
        models.insert(0, model);
        let gate = Gate {
            name: &source.name,
            id,
            contract: &contract,
            signature: &signature,
        };
        let explainer = Explainer::start(source, &gate, &bytes, || {
            explain_model.ok_or_else(|| LoadError::EngineRun {
                model: source.name.clone(),
                reason: "no handle for the explain thread".into(),
            })
        })?;
        let worker =
            Scheduler::spawn(&source.name, models, spare, scheduler_options).map_err(|err| {
                LoadError::Worker {
                    model: source.name.clone(),
                    source: err,
                }
            })?;
        let drift = source.manifest.as_ref().and_then(|manifest| {
            // The manifest was checked when read, its baseline with it.
            let baseline = manifest.baseline().ok().flatten();
            monitor(
                &source.name,
                source.version,
                &manifest.drift,
                baseline,
                contract.features.as_ref(),
                &contract.outputs,
            )
        });
        Ok(ModelVersion {
            id,
            drift,
            name: source.name.clone(),
            version: source.version,
            version_label: source.version.to_string(),
            sha256,
            platform: backend.platform(),
            signature,
            contract,
            invalid_outputs: AtomicU64::new(0),
            explainer,
            worker,
        })
    }
}

impl ModelVersion {
    /// Loads `source` on `backend` (one copy per worker), resolves its contract and warms it up
    /// before the model is handed to its worker.
    pub fn load(
        source: &ModelSource,
        backend: &dyn Backend,
        serving: &Serving,
    ) -> Result<ModelVersion, LoadError> {
        let mut opened = Opened::open(source, backend, serving)?;
        if let Some(example) = example_row(source, &opened.contract) {
            opened.warm_up(source, example)?;
        }
        opened.serve(source, backend, serving)
    }

    /// The identity that marks inputs this version admitted: unique in the process, a
    /// reloaded version has a new one.
    pub fn id(&self) -> u64 {
        self.id
    }

    fn gate(&self) -> Gate<'_> {
        Gate {
            name: &self.name,
            id: self.id,
            contract: &self.contract,
            signature: &self.signature,
        }
    }

    /// Admits rows, read one at a time from `rows` (a row body kept as text, or rows already
    /// parsed): validated against the features and encoded as graph inputs. The CPU-bound half
    /// of a row request, which a handler may run off the async runtime.
    pub fn admit_rows(&self, rows: &dyn RowSource) -> Result<Admitted, PredictError> {
        self.gate().rows(rows)
    }

    /// Admits decoded tensors: checked against the signature and the features' value rules.
    pub fn admit_tensors(&self, request: TensorRequest) -> Result<Admitted, PredictError> {
        self.gate().tensors(request)
    }

    /// The version's explainer, when its manifest has a background set.
    pub fn explainer(&self) -> Option<&Explainer> {
        self.explainer.as_ref()
    }

    /// The scheduler's counters (queue depth, abandoned requests).
    pub fn counters(&self) -> &Counters {
        self.worker.counters()
    }

    /// Runs inputs this version admitted before `deadline` and guards the outputs.
    pub async fn infer(
        &self,
        admitted: Admitted,
        deadline: Instant,
    ) -> Result<Answer, PredictError> {
        self.infer_on(Lane::Request, admitted, deadline).await
    }

    /// As [`ModelVersion::infer`], for work no client waits on (a rollout's shadow run): on the
    /// scheduler's idle lane, which runs only on CPU time the requests leave idle.
    pub(super) async fn infer_idle(
        &self,
        admitted: Admitted,
        deadline: Instant,
    ) -> Result<Answer, PredictError> {
        self.infer_on(Lane::Idle, admitted, deadline).await
    }

    async fn infer_on(
        &self,
        lane: Lane,
        admitted: Admitted,
        deadline: Instant,
    ) -> Result<Answer, PredictError> {
        let (inputs, outputs, rows) = admitted.into_parts(self.id).ok_or_else(|| {
            PredictError::Encode(format!(
                "inputs checked against another version were sent to model `{}` version {}",
                self.name, self.version
            ))
        })?;
        if let Some(drift) = &self.drift {
            drift.observe_inputs(&inputs, rows);
        }
        let answer = self
            .worker
            .infer(lane, inputs, outputs, rows, deadline)
            .await?;
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
        if let Some(drift) = &self.drift {
            drift.observe_outputs(&answer.outputs, rows);
        }
        Ok(answer)
    }
}

/// Each loaded version's identity, so inputs admitted by one are never run on another.
static NEXT_VERSION_ID: AtomicU64 = AtomicU64::new(1);

/// The SHA-256 of `bytes` as lowercase hex, as manifests and responses show it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
