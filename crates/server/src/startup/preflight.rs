//! The start-up checks, shared by `warden serve` (which stops at the first failure) and
//! `warden check` (which runs every check it can and prints them as a checklist), so the two
//! cannot disagree: same checks, same order, same first failure, same exit code.
//!
//! Order: configuration, resources, repository, ONNX Runtime, memory fit, each model (load,
//! contract against graph, warm-up, output guards), and the listening address.

use crate::transport::connections::{
    ConnectionLimits, Http2Windows, RESERVED_FDS, default_max_connections,
};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::prediction_log::{LogConfig, PredictionLog};
use crate::serving;
use crate::serving::Serving;
use crate::serving::{
    Backends, MethodChoice, ModelSource, ModelVersion, VersionSet, load_to_serve,
};
use crate::serving::{ModelEntry, ModelRegistry};
use crate::startup;
use crate::startup::config::{self, EnvSource, Flags, GrpcPort, ServeConfig};
use crate::startup::diagnostics::StartupError;
use crate::startup::resources::{self, human_bytes};
use crate::state::{AppState, ReloadFrom, StateOptions};

/// Whether the checks stop at the first failure (`serve`) or go on (`check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    Check,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    Skipped,
}

/// One line of the checklist. Its JSON form is `warden check --format json`'s, and stable.
#[derive(Debug, Clone, Serialize)]
pub struct CheckItem {
    /// What was checked, e.g. `model credit version 1`.
    pub check: String,
    pub status: Status,
    /// What was found, or what went wrong.
    pub detail: String,
    /// Each problem, place searched or failed model, when there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// Everything serving needs, when every check passed.
#[derive(Debug)]
pub struct Prepared {
    pub config: ServeConfig,
    /// The connection timeouts and cap, the cap resolved against the open-files limit.
    pub connections: ConnectionLimits,
    pub state: AppState,
    /// The bound listener (`serve`); `None` for `check`, which only probes the address.
    pub listener: Option<TcpListener>,
    /// The bound gRPC listener; `None` for `check` and when gRPC is off.
    pub grpc_listener: Option<TcpListener>,
}

/// The checklist and, when a check failed, the failure `serve` exits with.
#[derive(Debug)]
pub struct Outcome {
    pub items: Vec<CheckItem>,
    pub result: Result<Prepared, StartupError>,
}

struct Checklist {
    mode: Mode,
    items: Vec<CheckItem>,
    first_failure: Option<StartupError>,
}

impl Checklist {
    /// Binds `address` as the check `check`: the listener, or `None` with the failure listed.
    fn bind(&mut self, check: &str, address: SocketAddr) -> Option<TcpListener> {
        match startup::bind(address) {
            Ok(listener) => {
                self.ok(check, format!("{address} is free"));
                Some(listener)
            }
            Err(err) => {
                self.failed(check, err);
                None
            }
        }
    }

    fn ok(&mut self, check: impl Into<String>, detail: impl Into<String>) {
        self.items.push(CheckItem {
            check: check.into(),
            status: Status::Ok,
            detail: detail.into(),
            problems: Vec::new(),
            hint: None,
        });
    }

    fn skipped(&mut self, check: impl Into<String>, detail: impl Into<String>) {
        self.items.push(CheckItem {
            check: check.into(),
            status: Status::Skipped,
            detail: detail.into(),
            problems: Vec::new(),
            hint: None,
        });
    }

    /// Records a failure; true when the caller must stop (serve mode).
    fn failed(&mut self, check: impl Into<String>, err: StartupError) -> bool {
        let mut detail = err.to_string();
        if let Some(location) = err.location()
            && !detail.contains(&location)
        {
            detail.push_str(&format!(" ({location})"));
        }
        self.items.push(CheckItem {
            check: check.into(),
            status: Status::Failed,
            detail,
            problems: err.details(),
            hint: err.hint(),
        });
        if self.first_failure.is_none() {
            self.first_failure = Some(err);
        }
        self.mode == Mode::Serve
    }

    fn finish(self, prepared: Option<Prepared>) -> Outcome {
        let result = match (self.first_failure, prepared) {
            (Some(err), _) => Err(err),
            (None, Some(prepared)) => Ok(prepared),
            (None, None) => Err(StartupError::Internal(
                "the checks stopped without a cause".into(),
            )),
        };
        Outcome {
            items: self.items,
            result,
        }
    }
}

/// Where the inference engines come from.
#[derive(Debug)]
pub enum Engines {
    /// Locate ONNX Runtime as configured (flags, environment, Python, `.venv`) and add tract.
    Locate,
    /// These engines (the tests: ONNX Runtime allows one environment per process, so they share
    /// one, or a scripted engine). The configured library is then not looked for.
    Given(Backends),
}

/// Runs the start-up checks and assembles the serving state: the one start-up path of
/// `warden serve`, `warden check` and the tests.
pub fn assemble(flags: Flags, env: &dyn EnvSource, mode: Mode, engines: Engines) -> Outcome {
    let mut list = Checklist {
        mode,
        items: Vec::new(),
        first_failure: None,
    };
    let config = match config::resolve(flags, env) {
        Ok(config) => config,
        Err(problems) => {
            list.failed("configuration", StartupError::Config(problems));
            return list.finish(None);
        }
    };
    list.ok(
        "configuration",
        format!(
            "models from {}, listening on {}",
            config.model_path.display(),
            SocketAddr::new(config.host, config.port)
        ),
    );

    let limits = resources::detect(Path::new("/"));
    let memory = limits
        .memory_bytes
        .map_or_else(|| "unknown".to_owned(), human_bytes);
    tracing::info!(
        cpus = limits.cpus,
        cpu_source = limits.cpu_source,
        memory_limit_bytes = limits.memory_bytes,
        memory_source = limits.memory_source,
        "resources"
    );
    let body_budget_bytes = config
        .body_budget_bytes
        .unwrap_or_else(|| default_body_budget(limits.memory_bytes, config.body_limit_bytes));
    let connections = ConnectionLimits {
        header_timeout: config.header_timeout,
        idle_timeout: config.idle_timeout,
        max_connections: config
            .max_connections
            .unwrap_or_else(|| default_max_connections(limits.open_files)),
        shutdown_grace: config.shutdown_grace,
        http2_windows: Http2Windows::from_budget(body_budget_bytes),
    };
    let mut detail = format!(
        "{} CPUs ({}), memory limit {memory} ({}), {} connections at most (open files {}), \
         {} for request bodies in flight",
        limits.cpus,
        limits.cpu_source,
        limits.memory_source,
        connections.max_connections,
        limits
            .open_files
            .map_or_else(|| "unlimited".to_owned(), |n| n.to_string()),
        human_bytes(body_budget_bytes as u64)
    );
    if let Some(warning) = descriptor_warning(connections.max_connections, limits.open_files) {
        tracing::warn!(
            max_connections = connections.max_connections,
            open_files = limits.open_files,
            "{warning}"
        );
        detail.push_str(&format!("; warning: {warning}"));
    }
    list.ok("resources", detail);

    let sources = match serving::scan_repository(&config.model_path) {
        Ok(sources) => sources,
        Err(err) => {
            list.failed("model repository", err.into());
            return list.finish(None);
        }
    };
    let names: Vec<String> = sources
        .iter()
        .map(|s| format!("{} version {}", s.name, s.version))
        .collect();
    list.ok(
        "model repository",
        format!("{}: {}", config.model_path.display(), names.join(", ")),
    );

    // Workers × engine threads fill the CPUs this process may use, and no more. A shared ONNX
    // Runtime session keeps the same threads per run: more would let a tree ensemble sum its
    // trees in another order for a large batch than for one row (answers 1e-7 apart), and it
    // measured no faster (heavy 32 rows, 2 workers: 0.86× per-worker with 2 threads, 0.88× with 1).
    let cpus = (limits.cpus.floor() as usize).max(1);
    let workers = config.workers.unwrap_or(cpus);
    let serving = Serving {
        workers,
        intra_op_threads: (cpus / workers).max(1),
        onnxruntime_sessions: config.onnxruntime_sessions,
        require_checksum: config.require_checksum,
    };
    tracing::info!(
        workers = serving.workers,
        intra_op_threads = serving.intra_op_threads,
        onnxruntime_sessions = ?serving.onnxruntime_sessions,
        "inference threads per model version"
    );
    let located = match engines {
        Engines::Locate => startup::backends(&config.onnxruntime_libs),
        Engines::Given(backends) => Ok(backends),
    };
    let backends: Option<Backends> = match located {
        Ok(mut backends) => {
            backends.serving = serving;
            match (&backends.onnxruntime, &backends.onnxruntime_missing) {
                (Some(_), _) => list.ok(
                    "ONNX Runtime",
                    backends.onnxruntime_detail.clone().unwrap_or_default(),
                ),
                (None, missing) => list.skipped(
                    "ONNX Runtime",
                    format!(
                        "{}; models load on tract, the built-in pure-Rust engine",
                        missing.as_deref().unwrap_or("not found")
                    ),
                ),
            }
            Some(backends)
        }
        Err(err) => {
            if list.failed("ONNX Runtime", err) {
                return list.finish(None);
            }
            None
        }
    };

    let sizes: Vec<(String, u64)> = sources
        .iter()
        .filter_map(|s| Some((s.name.clone(), std::fs::metadata(&s.graph).ok()?.len())))
        .collect();
    for (name, bytes) in &sizes {
        tracing::info!(model = %name, bytes, size = %human_bytes(*bytes), "model size");
    }
    match resources::check_fit(limits.memory_bytes, &sizes) {
        Ok(()) => list.ok(
            "memory",
            format!(
                "models take {} of {memory}",
                human_bytes(sizes.iter().map(|(_, b)| b).sum())
            ),
        ),
        Err(detail) => {
            if list.failed("memory", StartupError::Memory { detail }) {
                return list.finish(None);
            }
        }
    }

    let mut models = BTreeMap::new();
    let mut failures = Vec::new();
    let mut loaded: BTreeMap<String, Vec<Arc<ModelVersion>>> = BTreeMap::new();
    for source in &sources {
        if models.contains_key(&source.name) {
            // An earlier version of this model failed: the model is not served.
            continue;
        }
        let check = format!("model {} version {}", source.name, source.version);
        let Some(backends) = &backends else {
            list.skipped(check, "needs an inference engine");
            continue;
        };
        match load_to_serve(source, backends) {
            Ok(model) => {
                let explains = model.explainer().map_or_else(String::new, |e| {
                    format!(
                        ", explained by {} against {} background rows",
                        e.method_name(MethodChoice::Auto),
                        e.background_rows()
                    )
                });
                list.ok(
                    check,
                    format!(
                        "{}, {} contract, warm-up passed, sha256 {}{explains}",
                        model.platform,
                        if model.contract.declared {
                            "declared"
                        } else {
                            "graph-only"
                        },
                        &model.sha256[..12]
                    ),
                );
                loaded
                    .entry(source.name.clone())
                    .or_default()
                    .push(Arc::new(model));
            }
            Err(err) => {
                tracing::error!(model = %source.name, error = %err, "model failed to load");
                list.items.push(CheckItem {
                    check,
                    status: Status::Failed,
                    detail: err.to_string(),
                    problems: Vec::new(),
                    hint: err.hint(),
                });
                models.insert(
                    source.name.clone(),
                    ModelEntry::Unavailable {
                        reason: format!("failed to load (exit code {})", err.exit_code()),
                    },
                );
                failures.push((source.name.clone(), err));
            }
        }
    }
    // Each model whose versions all loaded is served as one set (its default and rollout).
    for (name, versions) in loaded {
        if models.contains_key(&name) {
            continue;
        }
        let of_model: Vec<ModelSource> =
            sources.iter().filter(|s| s.name == name).cloned().collect();
        match VersionSet::of_sources(&of_model, versions) {
            Ok(set) => {
                if let Some(rollout) = set.rollout() {
                    let [default, candidate] = rollout.versions();
                    list.ok(
                        format!("model {name} rollout"),
                        format!(
                            "candidate version {} beside default version {}: canary {}, shadow {}",
                            candidate.version,
                            default.version,
                            rollout.canary_share(),
                            rollout.shadow_share()
                        ),
                    );
                }
                models.insert(name, ModelEntry::Ready(Arc::new(set)));
            }
            Err(err) => {
                tracing::error!(model = %name, error = %err, "model failed to load");
                list.items.push(CheckItem {
                    check: format!("model {name} rollout"),
                    status: Status::Failed,
                    detail: err.to_string(),
                    problems: Vec::new(),
                    hint: err.hint(),
                });
                models.insert(
                    name.clone(),
                    ModelEntry::Unavailable {
                        reason: format!("failed to load (exit code {})", err.exit_code()),
                    },
                );
                failures.push((name, err));
            }
        }
    }
    let model_count = sources
        .iter()
        .map(|s| s.name.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if !failures.is_empty() {
        if config.allow_partial && failures.len() < model_count {
            tracing::warn!(
                failed = failures.len(),
                total = model_count,
                "--allow-partial: serving the models that loaded; the others report not ready"
            );
        } else {
            let total = model_count;
            // The per-model lines are already on the list; record the failure without a new line.
            if list.first_failure.is_none() {
                list.first_failure = Some(StartupError::Models { total, failures });
            }
            if mode == Mode::Serve {
                return list.finish(None);
            }
        }
    }

    let prediction_log = match prediction_log(&mut list, &config, &sources) {
        Ok(log) => log,
        Err(()) => return list.finish(None),
    };
    let Some(listener) = list.bind("address", SocketAddr::new(config.host, config.port)) else {
        return list.finish(None);
    };
    let grpc_listener = match config.grpc_port {
        GrpcPort::Off => None,
        GrpcPort::Port(port) => {
            let Some(listener) = list.bind("gRPC address", SocketAddr::new(config.host, port))
            else {
                return list.finish(None);
            };
            Some(listener)
        }
    };
    let options = StateOptions {
        request_timeout: config.request_timeout,
        body_timeout: config.body_timeout,
        body_limit_bytes: config.body_limit_bytes,
        body_budget_bytes,
        // One large body decoded at a time per CPU this process may use (cgroup-aware).
        decode_permits: limits.cpus.ceil().max(1.0) as usize,
        auth: config.auth.clone(),
        reload: backends.map(|backends| ReloadFrom {
            repository: config.model_path.clone(),
            backends,
            sources,
        }),
        observers: Vec::new(),
        prediction_log: match (mode, prediction_log) {
            (Mode::Serve, Some(log)) => match PredictionLog::start(log.clone()) {
                Ok(log) => Some(Arc::new(log)),
                Err(source) => {
                    list.failed(
                        "prediction log",
                        StartupError::PredictionLog {
                            directory: log.directory.clone(),
                            source,
                        },
                    );
                    return list.finish(None);
                }
            },
            _ => None,
        },
    };
    let state = AppState::new(ModelRegistry::new(models, config.allow_partial), options);
    let (listener, grpc_listener) = match mode {
        Mode::Serve => (Some(listener), grpc_listener),
        Mode::Check => (None, None),
    };
    list.finish(Some(Prepared {
        config,
        connections,
        state,
        listener,
        grpc_listener,
    }))
}

/// Checks the prediction log's directory and, when a served model hashes features, its key;
/// `Err` when serve must stop.
fn prediction_log(
    list: &mut Checklist,
    config: &ServeConfig,
    sources: &[ModelSource],
) -> Result<Option<LogConfig>, ()> {
    let Some(log) = &config.prediction_log else {
        list.skipped("prediction log", "off (no --prediction-log directory)");
        return Ok(None);
    };
    if let Err(source) = crate::prediction_log::check_directory(&log.directory) {
        let stop = list.failed(
            "prediction log",
            StartupError::PredictionLog {
                directory: log.directory.clone(),
                source,
            },
        );
        return if stop { Err(()) } else { Ok(None) };
    }
    let mut hashing: Vec<&str> = sources
        .iter()
        .filter(|s| {
            s.manifest
                .as_ref()
                .is_some_and(|m| !m.prediction_log.hash.is_empty())
        })
        .map(|s| s.name.as_str())
        .collect();
    hashing.dedup();
    if !hashing.is_empty() && log.key.is_none() {
        let stop = list.failed(
            "prediction log",
            StartupError::Config(vec![format!(
                "{} hash features in the prediction log (`[prediction_log] hash`) but {} is not \
                 set: set it to a secret key (the same on every replica)",
                hashing.join(", "),
                crate::prediction_log::KEY_ENV
            )]),
        );
        return if stop { Err(()) } else { Ok(None) };
    }
    let defaults = &log.defaults;
    list.ok(
        "prediction log",
        format!(
            "{}: sample {} by request id, refused requests {}, files published at {} or {} s, \
             {} kept per model, queue {}{}",
            log.directory.display(),
            defaults.sample,
            if defaults.refused {
                "logged"
            } else {
                "not logged"
            },
            human_bytes(defaults.rotate_bytes),
            defaults.rotate_seconds,
            defaults
                .retain_bytes
                .map_or_else(|| "everything".to_owned(), human_bytes),
            human_bytes(log.queue_bytes as u64),
            log.upload
                .as_ref()
                .map_or_else(String::new, |target| format!(", uploaded to {target}"))
        ),
    );
    Ok(Some(log.clone()))
}

/// The memory budget for request bodies in flight when none is configured: a quarter of the
/// memory limit, at most 256 MiB, and never less than twice the largest body allowed (an eighth
/// is kept for small bodies, and at least one largest body must fit in the rest).
fn default_body_budget(memory_limit: Option<u64>, body_limit: usize) -> usize {
    let quarter = memory_limit.map_or(usize::MAX, |bytes| {
        usize::try_from(bytes / 4).unwrap_or(usize::MAX)
    });
    quarter
        .min(crate::state::DEFAULT_BODY_BUDGET_BYTES)
        .max(body_limit.saturating_mul(2))
}

/// A warning when the connection cap is more than the open-files limit can hold: past it,
/// `accept` fails (EMFILE) before the cap is reached, and warden's own files may fail to open.
fn descriptor_warning(max_connections: usize, open_files: Option<u64>) -> Option<String> {
    let open_files = usize::try_from(open_files?).ok()?;
    let room = open_files.saturating_sub(RESERVED_FDS);
    (max_connections > room).then(|| {
        format!(
            "--max-connections {max_connections} is more than the open-files limit ({open_files}) \
             leaves for connections ({room}, {RESERVED_FDS} kept for the server's own files); \
             raise the limit (`ulimit -n`, the container's nofile) or lower the cap"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_body_budget_follows_the_memory_limit() {
        let mib = 1024 * 1024;
        assert_eq!(default_body_budget(None, 8 * mib), 256 * mib);
        assert_eq!(default_body_budget(Some(24 << 30), 8 * mib), 256 * mib);
        assert_eq!(
            default_body_budget(Some(512 * mib as u64), 8 * mib),
            128 * mib
        );
        assert_eq!(
            default_body_budget(Some(16 * mib as u64), 8 * mib),
            16 * mib
        );
    }

    #[test]
    fn a_cap_over_the_descriptor_limit_is_warned_about() {
        assert_eq!(descriptor_warning(448, Some(512)), None);
        let warning = descriptor_warning(2000, Some(512)).unwrap();
        assert!(warning.contains("--max-connections 2000"), "{warning}");
        assert!(warning.contains("(448,"), "{warning}");
        assert_eq!(descriptor_warning(2000, None), None);
    }
}
