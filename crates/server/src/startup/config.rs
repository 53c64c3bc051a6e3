//! Serving configuration: a TOML file (`--config`), `WARDEN_*` environment variables and flags,
//! in that order of precedence, resolved into one [`ServeConfig`] and validated in full —
//! every problem listed, not only the first — before anything is loaded or bound.
//!
//! The environment is read through [`EnvSource`], never through process-global state, so tests
//! hand in a map instead of mutating the process's environment.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use warden_runtime::onnxruntime::ExplicitLibrary;

pub use crate::auth::AuthConfig;
pub use crate::serving::WatchMode;
use crate::transport::connections;

/// Somewhere environment variables can be read from.
pub trait EnvSource {
    /// The variable's value, if set and valid UTF-8.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

use crate::state::DEFAULT_BODY_LIMIT_BYTES;

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
        }
    }
}

/// The keys a configuration file may hold; unknown keys are rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    models: Option<PathBuf>,
    host: Option<String>,
    port: Option<u16>,
    grpc_port: Option<GrpcPort>,
    max_body_bytes: Option<usize>,
    onnxruntime_lib: Option<PathBuf>,
    allow_partial: Option<bool>,
    request_timeout_ms: Option<u64>,
    workers: Option<usize>,
    require_checksum: Option<bool>,
    auth_tokens_file: Option<PathBuf>,
    admin_tokens_file: Option<PathBuf>,
    public_metrics: Option<bool>,
    watch: Option<WatchMode>,
    poll_interval_ms: Option<u64>,
    header_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
    max_body_bytes_in_flight: Option<usize>,
    shutdown_grace_ms: Option<u64>,
}

/// What the command line said; `None` where a flag was not given.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub models: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub host: Option<IpAddr>,
    pub port: Option<u16>,
    pub grpc_port: Option<GrpcPort>,
    pub max_body_bytes: Option<usize>,
    pub onnxruntime_lib: Option<PathBuf>,
    pub allow_partial: bool,
    pub request_timeout_ms: Option<u64>,
    pub workers: Option<usize>,
    pub require_checksum: bool,
    pub auth_tokens_file: Option<PathBuf>,
    pub admin_tokens_file: Option<PathBuf>,
    pub public_metrics: bool,
    pub watch: Option<WatchMode>,
    pub poll_interval_ms: Option<u64>,
    pub header_timeout_ms: Option<u64>,
    pub body_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_body_bytes_in_flight: Option<usize>,
    pub shutdown_grace_ms: Option<u64>,
}

/// Where to listen, from the flags, then the environment: `WARDEN_HOST`; `WARDEN_PORT`, then
/// `PORT`, which is how Cloud Run, Azure Container Apps and Heroku tell a container where to
/// listen (below warden's own settings, above the config file: the platform knows its routing).
/// What `serve` resolves before the config file, and all that `warden health` reads.
pub fn listen_settings(
    host: Option<IpAddr>,
    port: Option<u16>,
    env: &dyn EnvSource,
    problems: &mut Vec<String>,
) -> (Option<IpAddr>, Option<u16>) {
    let host = setting(
        host,
        env,
        problems,
        "WARDEN_HOST",
        "an IP address (e.g. 127.0.0.1 or 0.0.0.0)",
    );
    let port = setting(
        port,
        env,
        problems,
        "WARDEN_PORT",
        "a port number (0 to 65535)",
    )
    .or_else(|| setting(None, env, problems, "PORT", "a port number (0 to 65535)"));
    (host, port)
}

/// The address `serve` listens on when nothing says otherwise.
pub const DEFAULT_HOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
/// The port `serve` listens on when nothing says otherwise.
pub const DEFAULT_PORT: u16 = 8000;
/// The port of the gRPC listener when nothing says otherwise: Triton's and KServe's.
pub const DEFAULT_GRPC_PORT: u16 = 8001;

/// Where the gRPC listener listens: a port (0: any free one) or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcPort {
    Port(u16),
    Off,
}

impl FromStr for GrpcPort {
    type Err = ();
    fn from_str(text: &str) -> Result<GrpcPort, ()> {
        match text.trim() {
            off if off.eq_ignore_ascii_case("off") => Ok(GrpcPort::Off),
            port => port.parse().map(GrpcPort::Port).map_err(|_| ()),
        }
    }
}

impl<'de> Deserialize<'de> for GrpcPort {
    /// A port number, or the string `"off"` (a port given as a string is taken too).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<GrpcPort, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u16),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(port) => Ok(GrpcPort::Port(port)),
            Raw::Text(text) => text.parse().map_err(|()| {
                serde::de::Error::custom(format!(
                    "grpc_port = {text:?} is not a port number (0 to 65535) or \"off\""
                ))
            }),
        }
    }
}

/// Resolves file < environment < flags into a configuration, or lists every problem.
pub fn resolve(flags: Flags, env: &dyn EnvSource) -> Result<ServeConfig, Vec<String>> {
    let mut problems = Vec::new();
    let config_path = flags
        .config
        .clone()
        .or_else(|| non_empty(env, "WARDEN_CONFIG").map(PathBuf::from));
    let (file, file_unreadable) = match &config_path {
        Some(path) => match read_file(path) {
            Ok(file) => (file, false),
            Err((problem, exists)) => {
                problems.push(problem);
                (ConfigFile::default(), exists)
            }
        },
        None => (ConfigFile::default(), false),
    };
    let file_source = config_path
        .as_deref()
        .map_or_else(String::new, |p| p.display().to_string());

    let models = flags
        .models
        .or_else(|| non_empty(env, "WARDEN_MODELS").map(PathBuf::from))
        .or(file.models);
    let mut config = ServeConfig::new(models.clone().unwrap_or_default());
    if models.is_none() && !file_unreadable {
        problems.push(
            "no model repository given: pass PATH, set WARDEN_MODELS, or set `models` in the \
             config file"
                .to_owned(),
        );
    }
    let file_host = file.host.and_then(|host| match host.parse() {
        Ok(host) => Some(host),
        Err(_) => {
            problems.push(format!(
                "{file_source}: host = {host:?} is not an IP address (e.g. 127.0.0.1 or 0.0.0.0)"
            ));
            None
        }
    });
    let (host, port) = listen_settings(flags.host, flags.port, env, &mut problems);
    if let Some(host) = host.or(file_host) {
        config.host = host;
    }
    if let Some(port) = port.or(file.port) {
        config.port = port;
    }
    let grpc_port = setting(
        flags.grpc_port,
        env,
        &mut problems,
        "WARDEN_GRPC_PORT",
        "a port number (0 to 65535) or off",
    );
    if let Some(grpc_port) = grpc_port.or(file.grpc_port) {
        config.grpc_port = grpc_port;
    }
    if config.grpc_port == GrpcPort::Port(config.port) && config.port != 0 {
        problems.push(format!(
            "the gRPC port (--grpc-port, WARDEN_GRPC_PORT, grpc_port) is the HTTP port {}; give \
             it another port, 0 for any free one, or off",
            config.port
        ));
    }
    let body = setting(
        flags.max_body_bytes,
        env,
        &mut problems,
        "WARDEN_MAX_BODY_BYTES",
        "a number of bytes",
    );
    if let Some(bytes) = body.or(file.max_body_bytes) {
        if bytes == 0 {
            problems.push(
                "the body limit (--max-body-bytes, WARDEN_MAX_BODY_BYTES, max_body_bytes) must be \
                 at least 1 byte"
                    .to_owned(),
            );
        }
        config.body_limit_bytes = bytes;
    }
    let allow_partial = setting(
        flags.allow_partial.then_some(Switch(true)),
        env,
        &mut problems,
        "WARDEN_ALLOW_PARTIAL",
        "true or false",
    );
    config.allow_partial = allow_partial
        .map(|s| s.0)
        .or(file.allow_partial)
        .unwrap_or(false);

    let timeout = setting(
        flags.request_timeout_ms,
        env,
        &mut problems,
        "WARDEN_REQUEST_TIMEOUT_MS",
        "a number of milliseconds",
    );
    if let Some(ms) = timeout.or(file.request_timeout_ms) {
        if ms == 0 {
            problems.push("the request timeout must be at least 1 ms".to_owned());
        }
        config.request_timeout = Duration::from_millis(ms);
    }
    let workers = setting(
        flags.workers,
        env,
        &mut problems,
        "WARDEN_WORKERS",
        "a number of threads",
    );
    config.workers = workers.or(file.workers);
    if config.workers == Some(0) {
        problems.push("workers must be at least 1".to_owned());
    }
    let switch = |flag: bool, name: &str, file: Option<bool>, problems: &mut Vec<String>| {
        setting(
            flag.then_some(Switch(true)),
            env,
            problems,
            name,
            "true or false",
        )
        .map(|s| s.0)
        .or(file)
        .unwrap_or(false)
    };
    config.require_checksum = switch(
        flags.require_checksum,
        "WARDEN_REQUIRE_CHECKSUM",
        file.require_checksum,
        &mut problems,
    );
    let public_metrics = switch(
        flags.public_metrics,
        "WARDEN_PUBLIC_METRICS",
        file.public_metrics,
        &mut problems,
    );
    let watch = setting(
        flags.watch,
        env,
        &mut problems,
        "WARDEN_WATCH",
        "events, poll or off",
    );
    config.watch = watch.or(file.watch).unwrap_or(WatchMode::Events);
    let poll = setting(
        flags.poll_interval_ms,
        env,
        &mut problems,
        "WARDEN_POLL_INTERVAL_MS",
        "a number of milliseconds",
    );
    if let Some(ms) = poll.or(file.poll_interval_ms) {
        if ms == 0 {
            problems.push("the poll interval must be at least 1 ms".to_owned());
        }
        config.poll_interval = Duration::from_millis(ms);
    }
    let tokens = token_list(
        flags.auth_tokens_file.or(file.auth_tokens_file),
        "--auth-tokens-file",
        non_empty(env, "WARDEN_AUTH_TOKENS_FILE").map(PathBuf::from),
        non_empty(env, "WARDEN_AUTH_TOKENS"),
        "WARDEN_AUTH_TOKENS",
        &mut problems,
    );
    let admin_tokens = token_list(
        flags.admin_tokens_file.or(file.admin_tokens_file),
        "--admin-tokens-file",
        non_empty(env, "WARDEN_ADMIN_TOKENS_FILE").map(PathBuf::from),
        non_empty(env, "WARDEN_ADMIN_TOKENS"),
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
            public_metrics,
        }),
    };
    let connection_timeouts = [
        (
            &mut config.header_timeout,
            flags.header_timeout_ms,
            "WARDEN_HEADER_TIMEOUT_MS",
            file.header_timeout_ms,
            "header timeout",
        ),
        (
            &mut config.body_timeout,
            flags.body_timeout_ms,
            "WARDEN_BODY_TIMEOUT_MS",
            file.body_timeout_ms,
            "body timeout",
        ),
        (
            &mut config.idle_timeout,
            flags.idle_timeout_ms,
            "WARDEN_IDLE_TIMEOUT_MS",
            file.idle_timeout_ms,
            "idle timeout",
        ),
        (
            &mut config.shutdown_grace,
            flags.shutdown_grace_ms,
            "WARDEN_SHUTDOWN_GRACE_MS",
            file.shutdown_grace_ms,
            "shutdown grace period",
        ),
    ];
    for (target, flag, name, from_file, what) in connection_timeouts {
        let ms = setting(flag, env, &mut problems, name, "a number of milliseconds").or(from_file);
        if let Some(ms) = ms {
            if ms == 0 {
                problems.push(format!("the {what} ({name}) must be at least 1 ms"));
            }
            *target = Duration::from_millis(ms);
        }
    }
    let max_connections = setting(
        flags.max_connections,
        env,
        &mut problems,
        "WARDEN_MAX_CONNECTIONS",
        "a number of connections",
    );
    config.max_connections = max_connections.or(file.max_connections);
    if config.max_connections == Some(0) {
        problems.push("max connections (WARDEN_MAX_CONNECTIONS) must be at least 1".to_owned());
    }
    let budget = setting(
        flags.max_body_bytes_in_flight,
        env,
        &mut problems,
        "WARDEN_MAX_BODY_BYTES_IN_FLIGHT",
        "a number of bytes",
    );
    config.body_budget_bytes = budget.or(file.max_body_bytes_in_flight);
    if let Some(budget) = config.body_budget_bytes
        && budget / 2 < config.body_limit_bytes
    {
        problems.push(format!(
            "the memory budget for bodies in flight (--max-body-bytes-in-flight, \
             WARDEN_MAX_BODY_BYTES_IN_FLIGHT, max_body_bytes_in_flight) is {budget} bytes, less \
             than twice the largest body allowed ({} bytes, --max-body-bytes; an eighth of the \
             budget is kept for small bodies): raise it or lower the body limit",
            config.body_limit_bytes
        ));
    }
    config.onnxruntime_libs = onnxruntime_libraries(flags.onnxruntime_lib, env);
    if let Some(path) = file.onnxruntime_lib {
        config.onnxruntime_libs.push(ExplicitLibrary {
            source: format!("{file_source} (onnxruntime_lib)"),
            path,
        });
    }

    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

/// The ONNX Runtime library paths named by `--onnxruntime-lib`, `WARDEN_ONNXRUNTIME_LIB` and
/// `ORT_DYLIB_PATH`, in that order of precedence, each with where it came from.
pub fn onnxruntime_libraries(flag: Option<PathBuf>, env: &dyn EnvSource) -> Vec<ExplicitLibrary> {
    let named = [
        ("--onnxruntime-lib", flag),
        (
            "WARDEN_ONNXRUNTIME_LIB",
            non_empty(env, "WARDEN_ONNXRUNTIME_LIB").map(PathBuf::from),
        ),
        (
            "ORT_DYLIB_PATH",
            non_empty(env, "ORT_DYLIB_PATH").map(PathBuf::from),
        ),
    ];
    named
        .into_iter()
        .filter_map(|(source, path)| {
            Some(ExplicitLibrary {
                source: source.to_owned(),
                path: path?,
            })
        })
        .collect()
}

/// The config file, or the problem with it and whether the file exists (whose settings are
/// then unknown, so what it might have set is not reported missing).
fn read_file(path: &Path) -> Result<ConfigFile, (String, bool)> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            (
                format!("the config file {} does not exist", path.display()),
                false,
            )
        } else {
            (
                format!("cannot read the config file {}: {err}", path.display()),
                true,
            )
        }
    })?;
    toml::from_str(&text).map_err(|err| {
        (
            format!("{}: {}", path.display(), err.to_string().trim_end()),
            true,
        )
    })
}

/// Tokens from a file (flag or config file, else `*_FILE` variable) or an inline variable
/// (comma-separated); `None` when neither is set. A file holds one token per line; blank lines
/// and lines starting with `#` are skipped. Problems never quote a token.
fn token_list(
    file: Option<PathBuf>,
    file_flag: &str,
    env_file: Option<PathBuf>,
    inline: Option<String>,
    inline_name: &str,
    problems: &mut Vec<String>,
) -> Option<Vec<String>> {
    let (tokens, source) = if let Some(path) = file.or(env_file) {
        match std::fs::read_to_string(&path) {
            Ok(text) => (
                text.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && !line.starts_with('#'))
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
                format!("the token file {} ({file_flag})", path.display()),
            ),
            Err(err) => {
                problems.push(format!(
                    "cannot read the token file {} ({file_flag}): {err}",
                    path.display()
                ));
                return None;
            }
        }
    } else {
        let inline = inline?;
        (
            inline
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

fn non_empty(env: &dyn EnvSource, name: &str) -> Option<String> {
    env.var(name).filter(|value| !value.is_empty())
}

/// A boolean as environment variables spell it.
#[derive(Debug, Clone, Copy)]
struct Switch(bool);

impl FromStr for Switch {
    type Err = ();
    fn from_str(text: &str) -> Result<Switch, ()> {
        match text.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Switch(true)),
            "0" | "false" | "no" | "off" => Ok(Switch(false)),
            _ => Err(()),
        }
    }
}

/// A flag's value, else the environment variable's, parsed; a variable that does not parse is
/// recorded as a problem naming it.
fn setting<T: FromStr>(
    flag: Option<T>,
    env: &dyn EnvSource,
    problems: &mut Vec<String>,
    name: &str,
    what: &str,
) -> Option<T> {
    if flag.is_some() {
        return flag;
    }
    let value = non_empty(env, name)?;
    match value.parse() {
        Ok(parsed) => Some(parsed),
        Err(_) => {
            problems.push(format!("{name}={value:?} is not {what}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
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
                "the poll interval must be at least 1 ms".to_owned(),
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
