//! Serving configuration: the settings declared in [`super::settings`], layered file <
//! environment < flags there, turned here into one checked [`ServeConfig`]: defaults applied,
//! bounds checked, the token files read, every problem listed (each naming the flag, variable
//! or config-file key its value came from), before anything is loaded or bound.
//!
//! The environment is read through [`EnvSource`], never through process-global state, so tests
//! hand in a map instead of mutating the process's environment.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use warden_runtime::onnxruntime::ExplicitLibrary;

use super::settings::{self, ConfigFile, Layered, Origin, Set, non_empty};
pub use super::settings::{EnvSource, Flags, GrpcPort, ProcessEnv};
pub use crate::auth::AuthConfig;
use crate::prediction_log::{self, LogConfig};
pub use crate::serving::{OnnxRuntimeSessions, WatchMode};
use crate::state::DEFAULT_BODY_LIMIT_BYTES;
use crate::transport::connections;

/// Everything `warden serve` needs, resolved and checked.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// A model repository or a single `.onnx` file.
    pub model_path: PathBuf,
    pub host: IpAddr,
    pub port: u16,
    /// The port of the gRPC listener (same host), or none.
    pub grpc_port: GrpcPort,
    /// Places the user named for the ONNX Runtime library, highest precedence first.
    pub onnxruntime_libs: Vec<ExplicitLibrary>,
    /// Largest request body accepted.
    pub body_limit_bytes: usize,
    /// Serve the models that load and report the others as not ready, instead of exiting.
    pub allow_partial: bool,
    /// A request's deadline when it sets no `x-timeout-ms`.
    pub request_timeout: Duration,
    /// Inference worker threads per model version; `None`: one per CPU this process may use.
    pub workers: Option<usize>,
    /// Whether a version's workers share one ONNX Runtime session.
    pub onnxruntime_sessions: OnnxRuntimeSessions,
    /// Refuse any version whose manifest pins no `sha256`.
    pub require_checksum: bool,
    /// Bearer tokens, when the API requires them.
    pub auth: Option<AuthConfig>,
    /// How the repository is watched for changes to reload.
    pub watch: WatchMode,
    /// How often the polling fallback rescans the repository.
    pub poll_interval: Duration,
    /// From a request's first byte until its head is complete.
    pub header_timeout: Duration,
    /// From the end of a request's head until the end of its body.
    pub body_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections open at once; `None`: the open-files limit less a reserve.
    pub max_connections: Option<usize>,
    /// The memory budget for request bodies in flight; `None`: from the memory limit.
    pub body_budget_bytes: Option<usize>,
    /// How long shutdown waits for requests in flight before cutting them.
    pub shutdown_grace: Duration,
    /// The prediction log, when one is kept.
    pub prediction_log: Option<LogConfig>,
}

/// The polling fallback's default interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);

impl ServeConfig {
    /// A configuration with the defaults, serving `model_path` on 127.0.0.1:8000.
    pub fn new(model_path: impl Into<PathBuf>) -> ServeConfig {
        ServeConfig {
            model_path: model_path.into(),
            host: DEFAULT_HOST,
            port: DEFAULT_PORT,
            grpc_port: GrpcPort::Port(DEFAULT_GRPC_PORT),
            onnxruntime_libs: Vec::new(),
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            allow_partial: false,
            request_timeout: crate::state::DEFAULT_REQUEST_TIMEOUT,
            workers: None,
            onnxruntime_sessions: OnnxRuntimeSessions::Shared,
            require_checksum: false,
            auth: None,
            watch: WatchMode::Events,
            poll_interval: DEFAULT_POLL_INTERVAL,
            header_timeout: connections::DEFAULT_HEADER_TIMEOUT,
            body_timeout: crate::state::DEFAULT_BODY_TIMEOUT,
            idle_timeout: connections::DEFAULT_IDLE_TIMEOUT,
            max_connections: None,
            body_budget_bytes: None,
            shutdown_grace: connections::DEFAULT_SHUTDOWN_GRACE,
            prediction_log: None,
        }
    }
}

/// Where to listen, from the flags, then the environment (`WARDEN_HOST`; `WARDEN_PORT`, then
/// `PORT`): what `serve` layers over the config file, and all that `warden health` reads.
pub fn listen_settings(
    host: Option<IpAddr>,
    port: Option<u16>,
    env: &dyn EnvSource,
    problems: &mut Vec<String>,
) -> (Option<IpAddr>, Option<u16>) {
    let host = host.or_else(|| {
        settings::from_env(settings::setting("host"), env, problems).map(|set: Set<_>| set.value)
    });
    let port = port.or_else(|| {
        settings::from_env(settings::setting("port"), env, problems).map(|set: Set<_>| set.value)
    });
    (host, port)
}

/// The address `serve` listens on when nothing says otherwise.
pub const DEFAULT_HOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
/// The port `serve` listens on when nothing says otherwise.
pub const DEFAULT_PORT: u16 = 8000;
/// The port of the gRPC listener when nothing says otherwise: Triton's and KServe's.
pub const DEFAULT_GRPC_PORT: u16 = 8001;

/// Resolves file < environment < flags into a configuration, or lists every problem.
pub fn resolve(flags: Flags, env: &dyn EnvSource) -> Result<ServeConfig, Vec<String>> {
    let mut problems = Vec::new();
    let config_path = flags
        .config
        .clone()
        .or_else(|| non_empty(env, settings::CONFIG_FILE_ENV).map(PathBuf::from));
    let (file, file_unreadable) = match &config_path {
        Some(path) => match read_file(path, &mut problems) {
            Ok(file) => (file, false),
            Err(exists) => (ConfigFile::none(), exists),
        },
        None => (ConfigFile::none(), false),
    };
    let set = Layered::layer(&flags, env, &file, &mut problems);

    let mut config = ServeConfig::new(value(&set.models).unwrap_or_default());
    if set.models.is_none() && !file_unreadable {
        problems.push(
            "no model repository given: pass PATH, set WARDEN_MODELS, or set `models` in the \
             config file"
                .to_owned(),
        );
    }
    if let Some(host) = value(&set.host) {
        config.host = host;
    }
    if let Some(port) = value(&set.port) {
        config.port = port;
    }
    if let Some(grpc_port) = value(&set.grpc_port) {
        config.grpc_port = grpc_port;
    }
    if config.grpc_port == GrpcPort::Port(config.port) && config.port != 0 {
        problems.push(format!(
            "the gRPC port ({}) is the HTTP port {} ({}); give one of them another port, 0 for \
             any free one, or set the gRPC port off",
            origin_or_default(&set.grpc_port),
            config.port,
            origin_or_default(&set.port),
        ));
    }
    if let Some(bytes) = at_least_one(
        &set.max_body_bytes,
        "the body limit",
        " byte",
        &mut problems,
    ) {
        config.body_limit_bytes = bytes;
    }
    config.allow_partial = value(&set.allow_partial).unwrap_or(false);
    if let Some(ms) = at_least_one(
        &set.request_timeout_ms,
        "the request timeout",
        " ms",
        &mut problems,
    ) {
        config.request_timeout = Duration::from_millis(ms);
    }
    config.workers = at_least_one(&set.workers, "workers", "", &mut problems);
    config.onnxruntime_sessions = value(&set.onnxruntime_sessions).unwrap_or_default();
    config.require_checksum = value(&set.require_checksum).unwrap_or(false);
    config.watch = value(&set.watch).unwrap_or(WatchMode::Events);
    config.prediction_log = prediction_log_config(&set, env, &mut problems);
    if let Some(ms) = at_least_one(
        &set.poll_interval_ms,
        "the poll interval",
        " ms",
        &mut problems,
    ) {
        config.poll_interval = Duration::from_millis(ms);
    }
    let tokens = token_list(
        set.auth_tokens_file,
        env,
        "WARDEN_AUTH_TOKENS",
        &mut problems,
    );
    let admin_tokens = token_list(
        set.admin_tokens_file,
        env,
        "WARDEN_ADMIN_TOKENS",
        &mut problems,
    );
    config.auth = match (tokens, admin_tokens) {
        (None, None) => None,
        (None, Some(_)) => {
            problems.push(
                "admin tokens are set but no API tokens: set WARDEN_AUTH_TOKENS or \
                 --auth-tokens-file too (the admin tokens only guard /v2/repository)"
                    .to_owned(),
            );
            None
        }
        (Some(tokens), admin_tokens) => Some(AuthConfig {
            tokens,
            admin_tokens: admin_tokens.unwrap_or_default(),
            public_metrics: value(&set.public_metrics).unwrap_or(false),
        }),
    };
    let timeouts = [
        (
            &mut config.header_timeout,
            &set.header_timeout_ms,
            "the header timeout",
        ),
        (
            &mut config.body_timeout,
            &set.body_timeout_ms,
            "the body timeout",
        ),
        (
            &mut config.idle_timeout,
            &set.idle_timeout_ms,
            "the idle timeout",
        ),
        (
            &mut config.shutdown_grace,
            &set.shutdown_grace_ms,
            "the shutdown grace period",
        ),
    ];
    for (target, ms, what) in timeouts {
        if let Some(ms) = at_least_one(ms, what, " ms", &mut problems) {
            *target = Duration::from_millis(ms);
        }
    }
    config.max_connections =
        at_least_one(&set.max_connections, "max connections", "", &mut problems);
    config.body_budget_bytes = value(&set.max_body_bytes_in_flight);
    if let Some(budget) = &set.max_body_bytes_in_flight
        && budget.value / 2 < config.body_limit_bytes
    {
        problems.push(format!(
            "the memory budget for bodies in flight ({}) is {} bytes, less than twice the \
             largest body allowed ({} bytes, {}; an eighth of the budget is kept for small \
             bodies): raise it or lower the body limit",
            budget.origin,
            budget.value,
            config.body_limit_bytes,
            origin_or_default(&set.max_body_bytes),
        ));
    }
    // Every place named for the library is tried in turn, not only the one that wins.
    config.onnxruntime_libs = onnxruntime_libraries(flags.onnxruntime_lib, env);
    let from_file = match &set.onnxruntime_lib {
        Some(set) if matches!(set.origin, Origin::File { .. }) => Some(set.clone()),
        Some(_) => file.value(settings::setting("onnxruntime_lib"), &mut problems),
        None => None,
    };
    if let Some(set) = from_file {
        config.onnxruntime_libs.push(ExplicitLibrary {
            source: format!("{} (onnxruntime_lib)", file.path()),
            path: set.value,
        });
    }

    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

/// The prediction log's configuration, when a directory is given; its other settings without
/// one are a problem (they would do nothing).
fn prediction_log_config(
    set: &Layered,
    env: &dyn EnvSource,
    problems: &mut Vec<String>,
) -> Option<LogConfig> {
    let Some(directory) = value(&set.prediction_log) else {
        let given: Vec<String> = [
            set.prediction_log_sample
                .as_ref()
                .map(|s| s.origin.to_string()),
            set.prediction_log_queue_bytes
                .as_ref()
                .map(|s| s.origin.to_string()),
            set.prediction_log_rotate_bytes
                .as_ref()
                .map(|s| s.origin.to_string()),
            set.prediction_log_rotate_seconds
                .as_ref()
                .map(|s| s.origin.to_string()),
            set.prediction_log_retain_bytes
                .as_ref()
                .map(|s| s.origin.to_string()),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !given.is_empty() {
            problems.push(format!(
                "prediction log settings are given ({}) but no prediction log directory: set \
                 --prediction-log, WARDEN_PREDICTION_LOG or `prediction_log`",
                given.join(", ")
            ));
        }
        return None;
    };
    let mut defaults = prediction_log::Settings::default();
    if let Some(sample) = &set.prediction_log_sample {
        if (0.0..=1.0).contains(&sample.value) {
            defaults.sample = sample.value;
        } else {
            problems.push(format!(
                "the prediction log's sample ({}) must be a share between 0 and 1, not {}",
                sample.origin, sample.value
            ));
        }
    }
    if let Some(bytes) = &set.prediction_log_rotate_bytes {
        if bytes.value < warden_contract::MIN_ROTATE_BYTES {
            problems.push(format!(
                "the prediction log's rotation size ({}) must be at least {} bytes, not {}",
                bytes.origin,
                warden_contract::MIN_ROTATE_BYTES,
                bytes.value
            ));
        }
        defaults.rotate_bytes = bytes.value;
    }
    if let Some(seconds) = at_least_one(
        &set.prediction_log_rotate_seconds,
        "the prediction log's rotation age",
        " second",
        problems,
    ) {
        defaults.rotate_seconds = seconds;
    }
    if let Some(bytes) = at_least_one(
        &set.prediction_log_retain_bytes,
        "the prediction log's retention",
        " byte",
        problems,
    ) {
        defaults.retain_bytes = Some(bytes);
    }
    let queue_bytes = at_least_one(
        &set.prediction_log_queue_bytes,
        "the prediction log's queue",
        " byte",
        problems,
    )
    .unwrap_or(DEFAULT_PREDICTION_LOG_QUEUE_BYTES);
    let upload = set.prediction_log_upload.as_ref().and_then(|url| {
        prediction_log::UploadTarget::parse(&url.value)
            .map_err(|why| {
                problems.push(format!(
                    "the prediction log's upload ({}): {why}",
                    url.origin
                ))
            })
            .ok()
    });
    Some(LogConfig {
        directory,
        defaults,
        queue_bytes,
        upload,
        key: non_empty(env, prediction_log::KEY_ENV).map(|key| key.into_bytes().into()),
    })
}

/// The prediction log's queue bound when none is set.
pub const DEFAULT_PREDICTION_LOG_QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// A layered setting's value.
fn value<T: Clone>(set: &Option<Set<T>>) -> Option<T> {
    set.as_ref().map(|set| set.value.clone())
}

/// Where a setting's value came from, or that it is the default.
fn origin_or_default<T>(set: &Option<Set<T>>) -> String {
    set.as_ref()
        .map_or_else(|| "the default".to_owned(), |set| set.origin.to_string())
}

/// A count, size or duration that must not be 0: a 0 is a problem naming where it was set.
fn at_least_one<T: Copy + Default + PartialEq>(
    set: &Option<Set<T>>,
    what: &str,
    unit: &str,
    problems: &mut Vec<String>,
) -> Option<T> {
    let set = set.as_ref()?;
    if set.value == T::default() {
        problems.push(format!("{what} ({}) must be at least 1{unit}", set.origin));
    }
    Some(set.value)
}

/// The ONNX Runtime library paths named by `--onnxruntime-lib`, `WARDEN_ONNXRUNTIME_LIB` and
/// `ORT_DYLIB_PATH`, in that order of precedence, each with where it came from.
pub fn onnxruntime_libraries(flag: Option<PathBuf>, env: &dyn EnvSource) -> Vec<ExplicitLibrary> {
    let declared = settings::setting("onnxruntime_lib");
    let from_flag = flag.map(|path| ExplicitLibrary {
        source: settings::flag_name(declared.field),
        path,
    });
    let from_env = declared.env.iter().filter_map(|name| {
        Some(ExplicitLibrary {
            source: (*name).to_owned(),
            path: non_empty(env, name)?.into(),
        })
    });
    from_flag.into_iter().chain(from_env).collect()
}

/// The config file, or whether it exists when it cannot be used (a file that exists but
/// cannot be read or parsed may have set anything, so what it might have set is not reported
/// missing); the problems are listed.
fn read_file(path: &Path, problems: &mut Vec<String>) -> Result<ConfigFile, bool> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            problems.push(format!("the config file {} does not exist", path.display()));
            return Err(false);
        }
        Err(err) => {
            problems.push(format!(
                "cannot read the config file {}: {err}",
                path.display()
            ));
            return Err(true);
        }
    };
    ConfigFile::parse(path, text, problems).ok_or(true)
}

/// Tokens from a file (its flag, its variable or its config-file key) or an inline variable
/// (comma-separated); `None` when neither is set. The inline variable wins over the config
/// file's file and loses to the flag's and the variable's. A file holds one token per line;
/// blank lines and lines starting with `#` are skipped. Problems never quote a token.
fn token_list(
    file: Option<Set<PathBuf>>,
    env: &dyn EnvSource,
    inline_name: &str,
    problems: &mut Vec<String>,
) -> Option<Vec<String>> {
    let inline = non_empty(env, inline_name);
    let file = file.filter(|set| inline.is_none() || !matches!(set.origin, Origin::File { .. }));
    let (tokens, source) = if let Some(Set {
        value: path,
        origin,
    }) = file
    {
        match std::fs::read_to_string(&path) {
            Ok(text) => (
                text.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && !line.starts_with('#'))
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
                format!("the token file {} ({origin})", path.display()),
            ),
            Err(err) => {
                problems.push(format!(
                    "cannot read the token file {} ({origin}): {err}",
                    path.display()
                ));
                return None;
            }
        }
    } else {
        (
            inline?
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            inline_name.to_owned(),
        )
    };
    if tokens.is_empty() {
        problems.push(format!("{source} holds no token"));
        return None;
    }
    if let Some(short) = tokens.iter().position(|t| t.len() < 16) {
        problems.push(format!(
            "{source}: token {} is shorter than 16 characters; use a random token \
             (e.g. `openssl rand -hex 32`)",
            short + 1
        ));
        return None;
    }
    Some(tokens)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_declared_defaults_are_the_ones_applied() {
        let config = ServeConfig::new("m");
        let declared = |field: &str| {
            let text = settings::setting(field).default;
            text.split(' ').next().unwrap_or(text).to_owned()
        };
        assert_eq!(declared("host"), config.host.to_string());
        assert_eq!(declared("port"), config.port.to_string());
        assert_eq!(config.grpc_port, GrpcPort::Port(DEFAULT_GRPC_PORT));
        assert_eq!(declared("grpc_port"), DEFAULT_GRPC_PORT.to_string());
        assert_eq!(
            declared("max_body_bytes"),
            config.body_limit_bytes.to_string()
        );
        assert_eq!(declared("watch"), "events");
        assert_eq!(config.watch, WatchMode::Events);
        for (field, duration) in [
            ("request_timeout_ms", config.request_timeout),
            ("poll_interval_ms", config.poll_interval),
            ("header_timeout_ms", config.header_timeout),
            ("body_timeout_ms", config.body_timeout),
            ("idle_timeout_ms", config.idle_timeout),
            ("shutdown_grace_ms", config.shutdown_grace),
        ] {
            assert_eq!(declared(field), duration.as_millis().to_string(), "{field}");
        }
    }

    #[test]
    fn the_grpc_port_is_a_port_or_off_and_never_the_http_port() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warden.toml");
        std::fs::write(&file, "models = \"m\"\ngrpc_port = \"off\"\n").unwrap();
        let flags = Flags {
            config: Some(file.clone()),
            ..Flags::default()
        };
        assert_eq!(
            resolve(flags.clone(), &env(&[])).unwrap().grpc_port,
            GrpcPort::Off
        );
        assert_eq!(
            resolve(flags.clone(), &env(&[("WARDEN_GRPC_PORT", "9001")]))
                .unwrap()
                .grpc_port,
            GrpcPort::Port(9001)
        );
        let flagged = Flags {
            grpc_port: Some(GrpcPort::Port(0)),
            ..flags.clone()
        };
        assert_eq!(
            resolve(flagged, &env(&[("WARDEN_GRPC_PORT", "9001")]))
                .unwrap()
                .grpc_port,
            GrpcPort::Port(0)
        );
        let defaults = Flags {
            models: Some("m".into()),
            ..Flags::default()
        };
        assert_eq!(
            resolve(defaults.clone(), &env(&[])).unwrap().grpc_port,
            GrpcPort::Port(DEFAULT_GRPC_PORT)
        );
        let problems =
            resolve(defaults.clone(), &env(&[("WARDEN_GRPC_PORT", "grpc")])).unwrap_err();
        assert_eq!(
            problems,
            vec!["WARDEN_GRPC_PORT=\"grpc\" is not a port number (0 to 65535) or off".to_owned()]
        );
        let problems = resolve(defaults, &env(&[("WARDEN_GRPC_PORT", "8000")])).unwrap_err();
        assert!(problems[0].starts_with("the gRPC port"), "{problems:?}");
        std::fs::write(&file, "models = \"m\"\ngrpc_port = \"on\"\n").unwrap();
        let problems = resolve(flags, &env(&[])).unwrap_err();
        assert!(
            problems[0].contains("grpc_port = \"on\" is not a port number"),
            "{problems:?}"
        );
    }

    #[test]
    fn file_then_environment_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warden.toml");
        std::fs::write(
            &file,
            "models = \"m\"\nport = 7000\nhost = \"0.0.0.0\"\nallow_partial = true\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(file),
            ..Flags::default()
        };
        assert_eq!(
            resolve(flags.clone(), &env(&[("PORT", "9090")]))
                .unwrap()
                .port,
            9090,
            "the platform's PORT beats the file"
        );
        let config = resolve(
            flags.clone(),
            &env(&[("WARDEN_PORT", "7001"), ("PORT", "9090")]),
        )
        .unwrap();
        assert_eq!(config.model_path, PathBuf::from("m"));
        assert_eq!(
            (config.host.to_string().as_str(), config.port),
            ("0.0.0.0", 7001)
        );
        assert!(config.allow_partial);
        let flagged = Flags {
            port: Some(7002),
            ..flags
        };
        assert_eq!(
            resolve(flagged, &env(&[("WARDEN_PORT", "7001")]))
                .unwrap()
                .port,
            7002
        );
    }

    #[test]
    fn every_problem_is_listed_naming_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warden.toml");
        std::fs::write(&file, "models = \"m\"\nprot = 7000\n").unwrap();
        let flags = Flags {
            config: Some(file),
            ..Flags::default()
        };
        let problems = resolve(
            flags,
            &env(&[
                ("WARDEN_PORT", "abc"),
                ("WARDEN_HOST", "localhost:80"),
                ("WARDEN_ALLOW_PARTIAL", "maybe"),
            ]),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].contains("unknown field `prot`") && problems[0].contains("`port`"));
        assert!(problems[1].contains("WARDEN_HOST=\"localhost:80\""));
        assert!(problems[2].contains("WARDEN_PORT=\"abc\" is not a port number"));
        assert!(problems[3].contains("WARDEN_ALLOW_PARTIAL=\"maybe\""));
    }

    #[test]
    fn a_missing_config_file_and_a_missing_model_path_are_problems() {
        let flags = Flags {
            config: Some("/nonexistent/warden.toml".into()),
            ..Flags::default()
        };
        let problems = resolve(flags, &env(&[])).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].contains("/nonexistent/warden.toml does not exist"));
        assert!(problems[1].contains("no model repository given"));
    }

    #[test]
    fn connection_settings_and_their_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warden.toml");
        std::fs::write(
            &file,
            "models = \"m\"\nheader_timeout_ms = 500\nidle_timeout_ms = 9000\nmax_connections = 50\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(file),
            shutdown_grace_ms: Some(2500),
            ..Flags::default()
        };
        let config = resolve(flags, &env(&[("WARDEN_BODY_TIMEOUT_MS", "700")])).unwrap();
        assert_eq!(config.header_timeout, Duration::from_millis(500));
        assert_eq!(config.body_timeout, Duration::from_millis(700));
        assert_eq!(config.idle_timeout, Duration::from_millis(9000));
        assert_eq!(config.max_connections, Some(50));
        assert_eq!(config.shutdown_grace, Duration::from_millis(2500));

        let flags = Flags {
            models: Some("m".into()),
            max_body_bytes: Some(0),
            max_connections: Some(0),
            header_timeout_ms: Some(0),
            ..Flags::default()
        };
        let problems = resolve(flags, &env(&[])).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].contains("body limit"), "{problems:#?}");
        assert!(problems[1].contains("header timeout"), "{problems:#?}");
        assert!(problems[2].contains("max connections"), "{problems:#?}");
    }

    #[test]
    fn library_paths_keep_their_precedence_and_sources() {
        let flags = Flags {
            models: Some("m".into()),
            onnxruntime_lib: Some("/flag/lib.so".into()),
            ..Flags::default()
        };
        let config = resolve(flags, &env(&[("ORT_DYLIB_PATH", "/ort/lib.so")])).unwrap();
        let sources: Vec<_> = config
            .onnxruntime_libs
            .iter()
            .map(|lib| lib.source.as_str())
            .collect();
        assert_eq!(sources, vec!["--onnxruntime-lib", "ORT_DYLIB_PATH"]);
    }

    #[test]
    fn auth_watch_and_checksum_settings() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, "# ops\n\nfile-token-0123456789\n").unwrap();
        let flags = Flags {
            models: Some("m".into()),
            auth_tokens_file: Some(tokens),
            watch: Some(WatchMode::Poll),
            ..Flags::default()
        };
        let config = resolve(
            flags,
            &env(&[
                (
                    "WARDEN_ADMIN_TOKENS",
                    "admin-token-0123456789, admin-token-abcdefghij",
                ),
                ("WARDEN_REQUIRE_CHECKSUM", "yes"),
                ("WARDEN_POLL_INTERVAL_MS", "250"),
            ]),
        )
        .unwrap();
        let auth = config.auth.clone().unwrap();
        assert_eq!(auth.tokens, vec!["file-token-0123456789"]);
        assert_eq!(auth.admin_tokens.len(), 2);
        assert!(config.require_checksum);
        assert_eq!(config.watch, WatchMode::Poll);
        assert_eq!(config.poll_interval, Duration::from_millis(250));
        assert!(
            !format!("{config:?}").contains("token-0123456789"),
            "Debug shows no token"
        );

        let problems = resolve(
            Flags {
                models: Some("m".into()),
                ..Flags::default()
            },
            &env(&[
                ("WARDEN_AUTH_TOKENS", "short"),
                ("WARDEN_WATCH", "sometimes"),
                ("WARDEN_POLL_INTERVAL_MS", "0"),
            ]),
        )
        .unwrap_err();
        assert_eq!(
            problems,
            vec![
                "WARDEN_WATCH=\"sometimes\" is not events, poll or off".to_owned(),
                "the poll interval (WARDEN_POLL_INTERVAL_MS) must be at least 1 ms".to_owned(),
                "WARDEN_AUTH_TOKENS: token 1 is shorter than 16 characters; use a random token \
                 (e.g. `openssl rand -hex 32`)"
                    .to_owned(),
            ]
        );
        let admin_only = resolve(
            Flags {
                models: Some("m".into()),
                ..Flags::default()
            },
            &env(&[("WARDEN_ADMIN_TOKENS", "admin-token-0123456789")]),
        )
        .unwrap_err();
        assert!(admin_only[0].starts_with("admin tokens are set but no API tokens"));
    }
}
