//! Which engine serves each model version: the manifest's `backend` (`auto` by default),
//! what this process has (ONNX Runtime when its library was found; tract when built with the
//! `tract` feature), and a fallback to the other engine when the first cannot load the graph.
//!
//! `auto` prefers ONNX Runtime (the reference implementation of every ONNX-ML operator, and
//! multi-threaded) and uses tract when the library is absent, so a single binary with no C++
//! library still serves scikit-learn, XGBoost and LightGBM exports. `warden init` opens a bare
//! graph through the same order and fallback, so it describes a graph on the engine `serve`
//! would serve it on.

use std::path::Path;
use std::sync::Arc;

use warden_contract::BackendChoice;
use warden_runtime::graph_facts::NodeFacts;
use warden_runtime::{Backend, LoadOptions, LoadedModel};

use crate::serving::load_error::{LoadError, unsupported_operator};
use crate::serving::model::{ModelVersion, Opened, Serving};
use crate::serving::repository::ModelSource;

/// An engine to try, and why it is tried.
type Candidate = (Arc<dyn Backend>, &'static str);

/// The engines this process can use.
#[derive(Debug, Clone, Default)]
pub struct Backends {
    pub onnxruntime: Option<Arc<dyn Backend>>,
    /// Which library and version, for `warden check`.
    pub onnxruntime_detail: Option<String>,
    /// Why ONNX Runtime is absent, for messages.
    pub onnxruntime_missing: Option<String>,
    pub tract: Option<Arc<dyn Backend>>,
    /// Workers per version and engine threads per worker.
    pub serving: Serving,
}

impl Backends {
    /// ONNX Runtime (if given) and, when built in, tract.
    pub fn new(
        onnxruntime: Option<Arc<dyn Backend>>,
        onnxruntime_missing: Option<String>,
    ) -> Backends {
        Backends {
            onnxruntime,
            onnxruntime_detail: None,
            onnxruntime_missing,
            tract: built_in_tract(),
            serving: Serving::default(),
        }
    }

    /// Exactly one engine (tests, and `warden init` which checks with what it found).
    pub fn only(backend: Arc<dyn Backend>) -> Backends {
        Backends {
            onnxruntime: Some(backend),
            onnxruntime_detail: None,
            onnxruntime_missing: None,
            tract: None,
            serving: Serving::default(),
        }
    }

    /// The engines to try for `choice`, in order, with why each is there.
    fn candidates(&self, choice: BackendChoice) -> Result<Vec<Candidate>, LoadError> {
        let unavailable = |backend: &'static str, reason: String| LoadError::BackendUnavailable {
            backend,
            reason,
        };
        match choice {
            BackendChoice::Onnxruntime => match &self.onnxruntime {
                Some(ort) => Ok(vec![(ort.clone(), "the manifest asks for onnxruntime")]),
                None => Err(unavailable(
                    "onnxruntime",
                    self.onnxruntime_missing
                        .clone()
                        .unwrap_or_else(|| "its library was not found".into()),
                )),
            },
            BackendChoice::Tract => match &self.tract {
                Some(tract) => Ok(vec![(tract.clone(), "the manifest asks for tract")]),
                None => Err(unavailable(
                    "tract",
                    "this warden was built without the `tract` feature".into(),
                )),
            },
            BackendChoice::Auto => {
                let mut order = Vec::new();
                if let Some(ort) = &self.onnxruntime {
                    order.push((ort.clone(), "auto: ONNX Runtime is present"));
                }
                if let Some(tract) = &self.tract {
                    order.push((
                        tract.clone(),
                        if order.is_empty() {
                            "auto: no ONNX Runtime library, so the pure-Rust engine"
                        } else {
                            "auto: fallback, ONNX Runtime could not load the graph"
                        },
                    ));
                }
                if order.is_empty() {
                    return Err(unavailable(
                        "auto",
                        self.onnxruntime_missing
                            .clone()
                            .unwrap_or_else(|| "no inference engine is available".into()),
                    ));
                }
                Ok(order)
            }
        }
    }

    /// Loads `source` on the first engine that can, logging the choice and the reason.
    pub fn load(&self, source: &ModelSource) -> Result<ModelVersion, LoadError> {
        let choice = source
            .manifest
            .as_ref()
            .map_or(BackendChoice::Auto, |m| m.backend);
        let mut first_error = None;
        for (backend, reason) in self.candidates(choice)? {
            match ModelVersion::load(source, backend.as_ref(), &self.serving) {
                Ok(model) => {
                    tracing::info!(
                        model = %source.name,
                        version = source.version,
                        platform = backend.platform(),
                        reason,
                        "backend chosen"
                    );
                    return Ok(model);
                }
                // Only a graph the engine cannot load or run falls back; a broken contract or a
                // warm-up answer that fails its guards would fail the same way on any engine.
                Err(
                    err @ (LoadError::Backend(_)
                    | LoadError::UnsupportedOperator { .. }
                    | LoadError::EngineRun { .. }),
                ) => {
                    tracing::warn!(
                        model = %source.name,
                        platform = backend.platform(),
                        error = %err,
                        "this engine cannot load the graph"
                    );
                    first_error.get_or_insert(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(first_error.unwrap_or(LoadError::BackendUnavailable {
            backend: "auto",
            reason: "no engine could load the graph".into(),
        }))
    }
}

/// Which of the candidate example rows a model answers soundly (see
/// [`Backends::first_passing_example`]).
#[derive(Debug)]
pub struct ExampleTrial {
    /// The index of the first row that passed the warm-up, if one did.
    pub passed: Option<usize>,
    /// Each row tried before it, with why its warm-up failed.
    pub failures: Vec<(usize, LoadError)>,
}

impl Backends {
    /// Loads `source` once, on the engine [`Backends::load`] would choose, and runs `examples`
    /// in order through the warm-up that load runs (the contract, the engine, the output
    /// guards) until one passes: for `warden init`, which keeps the first that does as the
    /// manifest's `[example]`. A row is tried on the engine that would serve it: when an engine
    /// cannot run the graph, the next is loaded and the trial goes on from that row, as a load
    /// with that row would fall back. Any other load error is returned as `load` returns it.
    pub fn first_passing_example(
        &self,
        source: &ModelSource,
        examples: &[serde_json::Value],
    ) -> Result<ExampleTrial, LoadError> {
        let choice = source
            .manifest
            .as_ref()
            .map_or(BackendChoice::Auto, |m| m.backend);
        let mut failures = Vec::new();
        let mut next = 0;
        let mut first_error = None;
        'engines: for (backend, reason) in self.candidates(choice)? {
            let mut opened = match Opened::open(source, backend.as_ref(), &self.serving) {
                Ok(opened) => opened,
                Err(err @ (LoadError::Backend(_) | LoadError::UnsupportedOperator { .. })) => {
                    tracing::warn!(
                        model = %source.name,
                        platform = backend.platform(),
                        error = %err,
                        "this engine cannot load the graph"
                    );
                    first_error.get_or_insert(err);
                    continue;
                }
                Err(err) => return Err(err),
            };
            while let Some(example) = examples.get(next) {
                match opened.warm_up(source, example.clone()) {
                    Ok(()) => {
                        tracing::info!(
                            model = %source.name,
                            version = source.version,
                            platform = backend.platform(),
                            reason,
                            "backend chosen"
                        );
                        return Ok(ExampleTrial {
                            passed: Some(next),
                            failures,
                        });
                    }
                    Err(err @ LoadError::WarmUp { .. }) => {
                        failures.push((next, err));
                        next += 1;
                    }
                    Err(err @ LoadError::EngineRun { .. }) => {
                        tracing::warn!(
                            model = %source.name,
                            platform = backend.platform(),
                            error = %err,
                            "this engine cannot load the graph"
                        );
                        first_error.get_or_insert(err);
                        continue 'engines;
                    }
                    Err(err) => return Err(err),
                }
            }
            return Ok(ExampleTrial {
                passed: None,
                failures,
            });
        }
        Err(first_error.unwrap_or(LoadError::BackendUnavailable {
            backend: "auto",
            reason: "no engine could load the graph".into(),
        }))
    }
}

/// An engine that could not load a graph, and why.
#[derive(Debug)]
pub struct Refusal {
    /// The engine's platform name (`onnxruntime_onnx`, `tract_onnx`), or `auto` when there was
    /// no engine to try.
    pub engine: &'static str,
    pub error: LoadError,
}

impl Backends {
    /// Loads a bare graph, with no contract and no warm-up, on the first engine `auto` would
    /// use that can (the same order and fallback as [`Backends::load`]), for `warden init`,
    /// which reads the signature before there is a manifest. `nodes` are the graph's, to name
    /// an operator an engine lacks. Every engine's refusal when none can.
    pub fn open(
        &self,
        bytes: &[u8],
        origin: &Path,
        nodes: &[NodeFacts],
    ) -> Result<(Box<dyn LoadedModel>, &'static str), Vec<Refusal>> {
        let candidates = self.candidates(BackendChoice::Auto).map_err(|error| {
            vec![Refusal {
                engine: "auto",
                error,
            }]
        })?;
        let mut refusals = Vec::new();
        for (backend, _) in candidates {
            match backend.load(bytes, origin, &LoadOptions::default()) {
                Ok(model) => return Ok((model, backend.platform())),
                Err(err) => refusals.push(Refusal {
                    engine: backend.platform(),
                    error: unsupported_operator(err, nodes, origin),
                }),
            }
        }
        Err(refusals)
    }
}

#[cfg(feature = "tract")]
fn built_in_tract() -> Option<Arc<dyn Backend>> {
    Some(Arc::new(warden_runtime::tract::Tract))
}

#[cfg(not(feature = "tract"))]
fn built_in_tract() -> Option<Arc<dyn Backend>> {
    None
}

#[cfg(all(test, feature = "tract"))]
#[allow(clippy::unwrap_used)] // test helpers outside #[test] functions
mod tests {
    use std::path::{Path, PathBuf};

    use warden_runtime::tract::Tract;
    use warden_runtime::{LoadOptions, LoadedModel, RuntimeError};

    use super::*;
    use crate::serving::repository;

    /// An engine that cannot load anything, standing in for ONNX Runtime failing on a graph.
    #[derive(Debug)]
    struct Refuses;

    impl Backend for Refuses {
        fn platform(&self) -> &'static str {
            "onnxruntime_onnx"
        }

        fn load(
            &self,
            _: &[u8],
            origin: &Path,
            _: &LoadOptions,
        ) -> Result<Box<dyn LoadedModel>, RuntimeError> {
            Err(RuntimeError::Load {
                path: origin.to_path_buf(),
                reason: "no kernel for this graph".into(),
            })
        }
    }

    fn iris(backend: &str) -> ModelSource {
        let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/models");
        let mut source = repository::scan(&examples)
            .unwrap()
            .into_iter()
            .find(|s| s.name == "iris")
            .unwrap();
        if let Some(manifest) = source.manifest.as_mut() {
            manifest.backend = match backend {
                "onnxruntime" => BackendChoice::Onnxruntime,
                "tract" => BackendChoice::Tract,
                _ => BackendChoice::Auto,
            };
        }
        source
    }

    fn backends(onnxruntime: Option<Arc<dyn Backend>>) -> Backends {
        Backends {
            onnxruntime,
            onnxruntime_detail: None,
            onnxruntime_missing: Some("not found".into()),
            tract: Some(Arc::new(Tract)),
            serving: Serving::default(),
        }
    }

    #[test]
    fn auto_uses_tract_when_there_is_no_onnx_runtime() {
        let model = backends(None).load(&iris("auto")).unwrap();
        assert_eq!(model.platform, "tract_onnx");
    }

    #[test]
    fn auto_falls_back_when_the_first_engine_cannot_load_the_graph() {
        let model = backends(Some(Arc::new(Refuses)))
            .load(&iris("auto"))
            .unwrap();
        assert_eq!(model.platform, "tract_onnx");
    }

    /// tract, counting its loads.
    #[derive(Debug, Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    impl Backend for Counting {
        fn platform(&self) -> &'static str {
            "tract_onnx"
        }

        fn load(
            &self,
            bytes: &[u8],
            origin: &Path,
            options: &LoadOptions,
        ) -> Result<Box<dyn LoadedModel>, RuntimeError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Tract.load(bytes, origin, options)
        }
    }

    #[test]
    fn example_rows_are_tried_on_one_load() {
        let counting = Arc::new(Counting::default());
        let backends = Backends {
            onnxruntime: None,
            onnxruntime_detail: None,
            onnxruntime_missing: Some("not found".into()),
            tract: Some(counting.clone()),
            serving: Serving::default(),
        };
        let row = |sepal_length: serde_json::Value| {
            serde_json::json!({
                "sepal_length": sepal_length, "sepal_width": 2.9,
                "petal_length": 4.2, "petal_width": 1.3,
            })
        };
        // Two rows the contract refuses (a string, a value below the range), then a sound one.
        let rows = [
            row("tall".into()),
            row((-1.0).into()),
            row(5.7.into()),
            row(6.0.into()),
        ];
        let trial = backends
            .first_passing_example(&iris("auto"), &rows)
            .unwrap();
        assert_eq!(trial.passed, Some(2));
        let failed: Vec<usize> = trial.failures.iter().map(|(rank, _)| *rank).collect();
        assert_eq!(failed, [0, 1]);
        assert!(
            trial
                .failures
                .iter()
                .all(|(_, err)| matches!(err, LoadError::WarmUp { .. })),
            "{:?}",
            trial.failures
        );
        assert_eq!(counting.0.load(std::sync::atomic::Ordering::Relaxed), 1);

        let none = backends
            .first_passing_example(&iris("auto"), &rows[..2])
            .unwrap();
        assert_eq!((none.passed, none.failures.len()), (None, 2));
    }

    #[test]
    fn an_explicit_engine_gets_no_fallback() {
        let err = backends(Some(Arc::new(Refuses)))
            .load(&iris("onnxruntime"))
            .unwrap_err();
        assert!(
            err.to_string().contains("no kernel for this graph"),
            "{err}"
        );
        let err = backends(None).load(&iris("onnxruntime")).unwrap_err();
        assert!(
            matches!(
                err,
                LoadError::BackendUnavailable {
                    backend: "onnxruntime",
                    ..
                }
            ),
            "{err}"
        );
        let model = backends(Some(Arc::new(Refuses)))
            .load(&iris("tract"))
            .unwrap();
        assert_eq!(model.platform, "tract_onnx");
    }
}

/// Loads one model version to serve it, logging what a user should know about it: that it has
/// no manifest, that a guard is relaxed, that it loaded (with its hash and engine).
pub fn load_to_serve(source: &ModelSource, backends: &Backends) -> Result<ModelVersion, LoadError> {
    if source.manifest.is_none() {
        tracing::info!(
            model = %source.name,
            path = %source.graph.display(),
            "no manifest: serving the contract the graph declares (names, dtypes, shapes); \
             no ranges or categories are checked"
        );
    }
    let model = backends.load(source)?;
    for output in &model.contract.outputs {
        for guard in &output.relax {
            tracing::warn!(
                model = %model.name,
                output = %output.name,
                guard = ?guard,
                "output guard relaxed by the manifest: this check does not run"
            );
        }
    }
    tracing::info!(
        model = %model.name,
        version = model.version,
        sha256 = %model.sha256,
        platform = model.platform,
        "model loaded and warmed up"
    );
    Ok(model)
}
