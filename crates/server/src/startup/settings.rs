//! Every setting of `warden serve` and `warden check`, declared once: its field, flag, environment
//! variables, config-file key, default, help text and what a valid value looks like, in one
//! [`settings!`] table. From that table come the clap flags ([`Flags`], so `--help`), the
//! config-file keys and their checks, the layering file < environment < flags ([`Layered`]),
//! the names of where a value came from in every configuration error ([`Origin`]), and the
//! README's settings table ([`markdown_table`], held equal to the README by a test).
//!
//! The layering is hand-written rather than clap's `env` attribute because clap stops at the
//! first bad variable and reads the process environment, while warden lists every problem at
//! once and reads the environment through [`EnvSource`] (tests hand in a map). What the values
//! mean, their bounds and how they combine is [`super::config`]'s.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::serving::{OnnxRuntimeSessions, WatchMode};

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

/// A variable's value when it is set to something (an empty variable counts as unset).
pub fn non_empty(env: &dyn EnvSource, name: &str) -> Option<String> {
    env.var(name).filter(|value| !value.is_empty())
}

/// One declared setting, as `--help`, the README and the error messages name it.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The field in [`Flags`] and [`Layered`], and clap's id of the flag.
    pub field: &'static str,
    /// What it does (one paragraph; `--help` and the README's first column).
    pub help: &'static str,
    /// Its environment variables, the first set one winning.
    pub env: &'static [&'static str],
    /// Its key in the config file.
    pub key: &'static str,
    /// The default, as a user reads it.
    pub default: &'static str,
    /// What a valid value is, completing "… is not ___".
    pub what: &'static str,
}

/// Variables read only from the environment (secrets, the log filter): `--help` lists them
/// after the flags and the README after the settings.
pub const ENVIRONMENT_ONLY: &[(&str, &str)] = &[
    (
        "WARDEN_AUTH_TOKENS",
        "API bearer tokens inline, comma-separated (instead of a token file; a file given as a \
         flag or in WARDEN_AUTH_TOKENS_FILE wins, and this wins over the config file's)",
    ),
    (
        "WARDEN_ADMIN_TOKENS",
        "repository-API tokens inline, comma-separated (the same precedence)",
    ),
    (
        "WARDEN_PREDICTION_LOG_KEY",
        "the key of the prediction log's hashed features (a manifest's `[prediction_log] hash`): \
         HMAC-SHA256 under this key, so the same value always hashes alike and no one without it \
         can test a guess; required when a served model hashes a feature",
    ),
    (
        "WARDEN_LOG",
        "the log filter, as RUST_LOG is written (default `info`; e.g. `warn` or \
         `warden_server=debug`)",
    ),
];

/// The config file's own setting: where the others may come from, so it has no key there.
pub const CONFIG_FILE_ENV: &str = "WARDEN_CONFIG";

/// Declares the settings: each becomes a flag of [`Flags`], a field of [`Layered`], an entry of
/// [`SETTINGS`], a config-file key and an arm of [`Layered::layer`].
macro_rules! settings {
    ($(
        $field:ident: $ty:ty {
            help: $help:literal,
            arg: ($($arg:tt)*),
            env: [$env:literal $(, $more_env:literal)*],
            key: $key:literal,
            default: $default:literal,
            what: $what:literal $(,)?
        }
    )+) => {
        /// What the command line said: `None` where a flag was not given. The clap flags of
        /// `serve` and `check`; `--help` shows each setting's variables, key and default.
        #[derive(Debug, Clone, Default, clap::Args)]
        #[command(after_long_help = environment_only_help())]
        pub struct Flags {
            $(
                #[arg(
                    $($arg)*,
                    help = concat!($help, " [env: ", $env, $(", then ", $more_env,)* "] [config: ",
                        $key, "] [default: ", $default, "]")
                )]
                pub $field: Option<$ty>,
            )+
            /// A TOML config file (keys: the [config: …] names above); the environment and
            /// flags override it [env: WARDEN_CONFIG]
            #[arg(long, value_name = "FILE")]
            pub config: Option<PathBuf>,
        }

        /// Every setting, in the order `--help` and the README list them.
        pub const SETTINGS: &[Setting] = &[$(
            Setting {
                field: stringify!($field),
                help: $help,
                env: &[$env $(, $more_env)*],
                key: $key,
                default: $default,
                what: $what,
            },
        )+];

        /// Each setting's value and where it came from, after layering file < environment <
        /// flags; `None` where nothing set it (the default applies).
        #[derive(Debug, Clone, Default)]
        pub struct Layered {
            $(pub $field: Option<Set<$ty>>,)+
        }

        impl Layered {
            /// Layers the flags over the environment over the config file's values, one
            /// declared setting at a time; a value that does not parse is a problem naming
            /// where it was.
            pub fn layer(
                flags: &Flags,
                env: &dyn EnvSource,
                file: &ConfigFile,
                problems: &mut Vec<String>,
            ) -> Layered {
                let mut declared = SETTINGS.iter();
                Layered {$(
                    $field: pick(
                        flags.$field.clone(),
                        declared.next().expect("one entry per setting"),
                        env,
                        file,
                        problems,
                    ),
                )+}
            }
        }
    };
}

settings! {
    models: PathBuf {
        help: "A model repository (NAME/warden.toml + NAME/VERSION/model.onnx) or a single .onnx file",
        arg: (value_name = "PATH"),
        env: ["WARDEN_MODELS"],
        key: "models",
        default: "(required)",
        what: "a path",
    }
    host: IpAddr {
        help: "Address to listen on",
        arg: (long),
        env: ["WARDEN_HOST"],
        key: "host",
        default: "127.0.0.1",
        what: "an IP address (e.g. 127.0.0.1 or 0.0.0.0)",
    }
    port: u16 {
        help: "Port to listen on; 0 picks a free one. PORT is how Cloud Run, Azure Container Apps and Heroku tell a container where to listen",
        arg: (long),
        env: ["WARDEN_PORT", "PORT"],
        key: "port",
        default: "8000",
        what: "a port number (0 to 65535)",
    }
    grpc_port: GrpcPort {
        help: "Port of the KServe V2 gRPC listener (same host); 0 picks a free one (printed and logged), `off` disables it",
        arg: (long, value_name = "PORT|off", value_parser = parse_grpc_port),
        env: ["WARDEN_GRPC_PORT"],
        key: "grpc_port",
        default: "8001",
        what: "a port number (0 to 65535) or off",
    }
    onnxruntime_lib: PathBuf {
        help: "The ONNX Runtime shared library (libonnxruntime.so); every place named is tried, flag first, then the usual places are searched",
        arg: (long, value_name = "FILE"),
        env: ["WARDEN_ONNXRUNTIME_LIB", "ORT_DYLIB_PATH"],
        key: "onnxruntime_lib",
        default: "searched",
        what: "a path",
    }
    max_body_bytes: usize {
        help: "Largest request body (or gRPC message) accepted, in bytes",
        arg: (long, value_name = "BYTES"),
        env: ["WARDEN_MAX_BODY_BYTES"],
        key: "max_body_bytes",
        default: "8388608 (8 MiB)",
        what: "a number of bytes",
    }
    max_body_bytes_in_flight: usize {
        help: "The memory budget for request bodies in flight, all connections and protocols together; a body that would pass it is refused at once with 503 (gRPC RESOURCE_EXHAUSTED)",
        arg: (long, value_name = "BYTES"),
        env: ["WARDEN_MAX_BODY_BYTES_IN_FLIGHT"],
        key: "max_body_bytes_in_flight",
        default: "a quarter of the memory limit, at most 256 MiB, at least twice the body limit",
        what: "a number of bytes",
    }
    allow_partial: bool {
        help: "Serve the models that load; report the others as not ready instead of exiting",
        arg: (long, num_args = 0, default_missing_value = "true"),
        env: ["WARDEN_ALLOW_PARTIAL"],
        key: "allow_partial",
        default: "off: any broken model stops start-up",
        what: "true or false",
    }
    request_timeout_ms: u64 {
        help: "A request's deadline when it sends none (x-timeout-ms, grpc-timeout), in milliseconds, counted from its arrival",
        arg: (long, value_name = "MS"),
        env: ["WARDEN_REQUEST_TIMEOUT_MS"],
        key: "request_timeout_ms",
        default: "30000",
        what: "a number of milliseconds",
    }
    workers: usize {
        help: "Inference threads per model version",
        arg: (long, value_name = "N"),
        env: ["WARDEN_WORKERS"],
        key: "workers",
        default: "the CPUs this process may use (cgroup-aware)",
        what: "a number of threads",
    }
    onnxruntime_sessions: OnnxRuntimeSessions {
        help: "On ONNX Runtime, whether a version's workers share one session and run it in turn (shared: the memory of one copy of the graph) or each hold their own and run at once (per-worker: a copy per worker)",
        arg: (long, value_enum, value_name = "MODE"),
        env: ["WARDEN_ONNXRUNTIME_SESSIONS"],
        key: "onnxruntime_sessions",
        default: "shared",
        what: "shared or per-worker",
    }
    require_checksum: bool {
        help: "Refuse any model version whose manifest pins no sha256 under [versions.N] (a pinned sha256 is always checked)",
        arg: (long, num_args = 0, default_missing_value = "true"),
        env: ["WARDEN_REQUIRE_CHECKSUM"],
        key: "require_checksum",
        default: "off",
        what: "true or false",
    }
    auth_tokens_file: PathBuf {
        help: "Require a bearer token from this file (one per line; blank lines and # comments skipped) on every route but health",
        arg: (long, value_name = "FILE"),
        env: ["WARDEN_AUTH_TOKENS_FILE"],
        key: "auth_tokens_file",
        default: "none: no auth",
        what: "a path",
    }
    admin_tokens_file: PathBuf {
        help: "Tokens for the repository API (/v2/repository/...) only",
        arg: (long, value_name = "FILE"),
        env: ["WARDEN_ADMIN_TOKENS_FILE"],
        key: "admin_tokens_file",
        default: "none: API tokens suffice",
        what: "a path",
    }
    public_metrics: bool {
        help: "Serve /metrics without a token when tokens are required",
        arg: (long, num_args = 0, default_missing_value = "true"),
        env: ["WARDEN_PUBLIC_METRICS"],
        key: "public_metrics",
        default: "off",
        what: "true or false",
    }
    watch: WatchMode {
        help: "How to watch the repository for new versions: events (inotify, falling back to polling), poll (network file systems), or off (SIGHUP and the repository API still reload)",
        arg: (long, value_enum, value_name = "MODE"),
        env: ["WARDEN_WATCH"],
        key: "watch",
        default: "events",
        what: "events, poll or off",
    }
    poll_interval_ms: u64 {
        help: "How often to rescan the repository when file events are unavailable, in milliseconds",
        arg: (long, value_name = "MS"),
        env: ["WARDEN_POLL_INTERVAL_MS"],
        key: "poll_interval_ms",
        default: "2000",
        what: "a number of milliseconds",
    }
    header_timeout_ms: u64 {
        help: "Close a connection whose request head (request line and headers) is not complete this long after its first byte, in milliseconds",
        arg: (long, value_name = "MS"),
        env: ["WARDEN_HEADER_TIMEOUT_MS"],
        key: "header_timeout_ms",
        default: "10000",
        what: "a number of milliseconds",
    }
    body_timeout_ms: u64 {
        help: "Answer 408 request_timeout when a request's body has not fully arrived this long after its head, in milliseconds",
        arg: (long, value_name = "MS"),
        env: ["WARDEN_BODY_TIMEOUT_MS"],
        key: "body_timeout_ms",
        default: "30000",
        what: "a number of milliseconds",
    }
    idle_timeout_ms: u64 {
        help: "Close a kept-alive connection that sends no new request for this long, in milliseconds",
        arg: (long, value_name = "MS"),
        env: ["WARDEN_IDLE_TIMEOUT_MS"],
        key: "idle_timeout_ms",
        default: "75000 (longer than load balancers' usual 60 s)",
        what: "a number of milliseconds",
    }
    max_connections: usize {
        help: "Connections open at once; at the cap the longest-idle one is closed for a new one, and when none is idle the new one is answered 503",
        arg: (long, value_name = "N"),
        env: ["WARDEN_MAX_CONNECTIONS"],
        key: "max_connections",
        default: "the open-files limit less 64, at most 10000",
        what: "a number of connections",
    }
    shutdown_grace_ms: u64 {
        help: "On SIGTERM, how long requests in flight may take before their connections are cut, in milliseconds",
        arg: (long, value_name = "MS"),
        env: ["WARDEN_SHUTDOWN_GRACE_MS"],
        key: "shutdown_grace_ms",
        default: "10000 (well under Kubernetes' 30 s)",
        what: "a number of milliseconds",
    }
    prediction_log: PathBuf {
        help: "Keep a prediction log in this directory: sampled requests and their answers as typed Parquet files, one folder per model (a manifest's [prediction_log] tunes its model's)",
        arg: (long, value_name = "DIR"),
        env: ["WARDEN_PREDICTION_LOG"],
        key: "prediction_log",
        default: "none: no log",
        what: "a path",
    }
    prediction_log_sample: f64 {
        help: "The share of requests the prediction log keeps, chosen by request id (a manifest's sample wins for its model)",
        arg: (long, value_name = "SHARE"),
        env: ["WARDEN_PREDICTION_LOG_SAMPLE"],
        key: "prediction_log_sample",
        default: "1.0",
        what: "a share between 0 and 1",
    }
    prediction_log_queue_bytes: usize {
        help: "Bytes of records waiting for the prediction log's writer at most; beyond, records are dropped and counted (warden_prediction_log_dropped_total)",
        arg: (long, value_name = "BYTES"),
        env: ["WARDEN_PREDICTION_LOG_QUEUE_BYTES"],
        key: "prediction_log_queue_bytes",
        default: "67108864 (64 MiB)",
        what: "a number of bytes",
    }
    prediction_log_rotate_bytes: u64 {
        help: "Publish a prediction log file once it holds this many bytes",
        arg: (long, value_name = "BYTES"),
        env: ["WARDEN_PREDICTION_LOG_ROTATE_BYTES"],
        key: "prediction_log_rotate_bytes",
        default: "134217728 (128 MiB)",
        what: "a number of bytes, at least 65536",
    }
    prediction_log_rotate_seconds: u64 {
        help: "Publish a prediction log file once it is this old, in seconds",
        arg: (long, value_name = "SECONDS"),
        env: ["WARDEN_PREDICTION_LOG_ROTATE_SECONDS"],
        key: "prediction_log_rotate_seconds",
        default: "3600",
        what: "a number of seconds",
    }
    prediction_log_upload: String {
        help: "Also upload each published prediction log file to S3-compatible object storage at this s3://bucket/prefix (credentials, region and endpoint from the standard AWS_* variables)",
        arg: (long, value_name = "URL"),
        env: ["WARDEN_PREDICTION_LOG_UPLOAD"],
        key: "prediction_log_upload",
        default: "none: files stay on disk",
        what: "an s3://bucket/prefix address",
    }
    prediction_log_retain_bytes: u64 {
        help: "Delete a model's oldest prediction log files while its files hold more than this many bytes",
        arg: (long, value_name = "BYTES"),
        env: ["WARDEN_PREDICTION_LOG_RETAIN_BYTES"],
        key: "prediction_log_retain_bytes",
        default: "1073741824 (1 GiB)",
        what: "a number of bytes",
    }
}

/// The declared setting `field`.
pub fn setting(field: &str) -> &'static Setting {
    SETTINGS
        .iter()
        .find(|setting| setting.field == field)
        .expect("a declared setting")
}

/// A setting's value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set<T> {
    pub value: T,
    pub origin: Origin,
}

/// Where a setting's value came from, as configuration errors name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A flag (`--port`, or `PATH` for the positional one).
    Flag(String),
    /// An environment variable.
    Env(&'static str),
    /// A key of the config file.
    File { key: &'static str, path: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => f.write_str(flag),
            Origin::Env(name) => f.write_str(name),
            Origin::File { key, path } => write!(f, "{key} in {path}"),
        }
    }
}

/// A value a setting can hold: how the environment spells it (the config file's TOML goes
/// through serde).
pub trait SettingValue: Sized + Clone + DeserializeOwned {
    fn from_env(text: &str) -> Option<Self>;
}

macro_rules! from_str_values {
    ($($ty:ty),+) => {$(
        impl SettingValue for $ty {
            fn from_env(text: &str) -> Option<Self> {
                text.trim().parse().ok()
            }
        }
    )+};
}

from_str_values!(u16, u64, usize, f64, String, IpAddr, PathBuf, GrpcPort);

/// The settings whose values are a `clap::ValueEnum`: the environment spells them as the flag
/// does (any case).
macro_rules! value_enum_values {
    ($($ty:ty),+) => {$(
        impl SettingValue for $ty {
            fn from_env(text: &str) -> Option<Self> {
                <$ty as clap::ValueEnum>::from_str(text.trim(), true).ok()
            }
        }
    )+};
}

value_enum_values!(WatchMode, OnnxRuntimeSessions);

impl SettingValue for bool {
    /// As environment variables spell a switch: 1/0, true/false, yes/no, on/off.
    fn from_env(text: &str) -> Option<bool> {
        match text.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" => Some(false),
            _ => None,
        }
    }
}

/// One setting layered: the flag, else the first of its variables that is set, else the file.
fn pick<T: SettingValue>(
    flag: Option<T>,
    setting: &'static Setting,
    env: &dyn EnvSource,
    file: &ConfigFile,
    problems: &mut Vec<String>,
) -> Option<Set<T>> {
    if let Some(value) = flag {
        return Some(Set {
            value,
            origin: Origin::Flag(flag_name(setting.field)),
        });
    }
    if let Some(set) = from_env(setting, env, problems) {
        return Some(set);
    }
    file.value(setting, problems)
}

/// The setting from the first of its variables that is set; one that does not parse is a
/// problem (and the next variable is tried).
pub fn from_env<T: SettingValue>(
    setting: &'static Setting,
    env: &dyn EnvSource,
    problems: &mut Vec<String>,
) -> Option<Set<T>> {
    for name in setting.env {
        let Some(text) = non_empty(env, name) else {
            continue;
        };
        match T::from_env(&text) {
            Some(value) => {
                return Some(Set {
                    value,
                    origin: Origin::Env(name),
                });
            }
            None => problems.push(format!("{name}={text:?} is not {}", setting.what)),
        }
    }
    None
}

/// The flag of the setting `field` as `--help` shows it (`--port`, or `PATH`).
pub fn flag_name(field: &str) -> String {
    static NAMES: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let command = <Flags as clap::Args>::augment_args(clap::Command::new("serve"));
        command
            .get_arguments()
            .map(|arg| {
                let name = match arg.get_long() {
                    Some(long) => format!("--{long}"),
                    None => arg
                        .get_value_names()
                        .and_then(|names| names.first())
                        .map_or_else(|| arg.get_id().to_string(), ToString::to_string),
                };
                (arg.get_id().to_string(), name)
            })
            .collect()
    });
    names
        .get(field)
        .cloned()
        .unwrap_or_else(|| field.to_owned())
}

/// The config file's keys, each with the line it is on; read as TOML and checked key by key
/// as settings are layered, so every bad or unknown key is reported, not only the first.
#[derive(Debug, Default)]
pub struct ConfigFile {
    path: String,
    text: String,
    keys: BTreeMap<String, toml::Spanned<toml::Value>>,
}

impl ConfigFile {
    /// No config file.
    pub fn none() -> ConfigFile {
        ConfigFile::default()
    }

    /// Parses `text`, read from `path`; every key that is not a declared setting's is a
    /// problem. `Err` when the text is not a TOML table at all.
    pub fn parse(path: &Path, text: String, problems: &mut Vec<String>) -> Option<ConfigFile> {
        let path = path.display().to_string();
        let keys: BTreeMap<String, toml::Spanned<toml::Value>> = match toml::from_str(&text) {
            Ok(keys) => keys,
            Err(err) => {
                problems.push(format!("{path}: {}", err.to_string().trim_end()));
                return None;
            }
        };
        let file = ConfigFile { path, text, keys };
        let mut unknown: Vec<_> = file
            .keys
            .iter()
            .filter(|(key, _)| !SETTINGS.iter().any(|setting| setting.key == key.as_str()))
            .collect();
        unknown.sort_by_key(|(_, value)| value.span().start);
        for (key, value) in unknown {
            problems.push(format!(
                "{}: unknown field `{key}`, expected one of {}",
                file.place(value.span().start),
                SETTINGS
                    .iter()
                    .map(|setting| format!("`{}`", setting.key))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Some(file)
    }

    /// Where the file is, for the messages of the settings it set.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// "PATH line N", for a byte offset into the file.
    fn place(&self, offset: usize) -> String {
        let line = self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1;
        format!("{} line {line}", self.path)
    }

    /// The setting's value in the file, if the file sets it; a value of the wrong kind is a
    /// problem naming the line, the key and what the key takes.
    pub(crate) fn value<T: SettingValue>(
        &self,
        setting: &'static Setting,
        problems: &mut Vec<String>,
    ) -> Option<Set<T>> {
        let spanned = self.keys.get(setting.key)?;
        let raw = spanned.get_ref().clone();
        match raw.clone().try_into::<T>() {
            Ok(value) => Some(Set {
                value,
                origin: Origin::File {
                    key: setting.key,
                    path: self.path.clone(),
                },
            }),
            Err(_) => {
                problems.push(format!(
                    "{}: {} = {raw} is not {}",
                    self.place(spanned.span().start),
                    setting.key,
                    setting.what
                ));
                None
            }
        }
    }
}

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
                    "{text:?} is not a port number (0 to 65535) or \"off\""
                ))
            }),
        }
    }
}

fn parse_grpc_port(text: &str) -> Result<GrpcPort, String> {
    text.parse()
        .map_err(|()| format!("{text:?} is not {}", setting("grpc_port").what))
}

/// The environment-only variables, as `--help` lists them after the flags.
fn environment_only_help() -> String {
    let mut help = String::from("Read from the environment only:\n");
    for (name, what) in ENVIRONMENT_ONLY {
        help.push_str(&format!("  {name}\n          {what}\n"));
    }
    help
}

/// The README's settings table: one row per setting (and the config file's own), then the
/// variables read from the environment only.
pub fn markdown_table() -> String {
    let code = |text: &str| format!("`{text}`");
    let mut table = String::from(
        "| setting | flag | environment | config file key | default |\n|---|---|---|---|---|\n",
    );
    for setting in SETTINGS {
        let env = setting
            .env
            .iter()
            .map(|name| code(name))
            .collect::<Vec<_>>()
            .join(", then ");
        table.push_str(&format!(
            "| {} | {} | {env} | {} | {} |\n",
            setting.help,
            code(&flag_name(setting.field)),
            code(setting.key),
            setting.default
        ));
    }
    table.push_str(&format!(
        "| a TOML config file of the keys above | `--config` | `{CONFIG_FILE_ENV}` | | none |\n"
    ));
    for (name, what) in ENVIRONMENT_ONLY {
        table.push_str(&format!("| {what} | | `{name}` | | |\n"));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's table between its two markers is the one the declaration renders.
    #[test]
    fn the_readme_settings_table_is_the_declared_one() {
        let readme = include_str!("../../../../README.md");
        let begin = "<!-- settings: generated from crates/server/src/startup/settings.rs -->\n";
        let end = "<!-- settings: end -->";
        let start = readme.find(begin).expect("the README's settings marker") + begin.len();
        let stop = start + readme[start..].find(end).expect("the end marker");
        let expected = markdown_table();
        assert!(
            readme[start..stop] == expected,
            "the README's settings table differs from the declaration; replace it with:\n\n{expected}"
        );
    }

    #[test]
    fn every_setting_has_a_flag_variables_and_a_key_of_its_own() {
        let mut keys = std::collections::BTreeSet::new();
        let mut vars = std::collections::BTreeSet::new();
        for setting in SETTINGS {
            assert!(keys.insert(setting.key), "{} twice", setting.key);
            for name in setting.env {
                assert!(vars.insert(*name), "{name} twice");
            }
            let flag = flag_name(setting.field);
            assert!(
                flag.starts_with("--") || flag == "PATH",
                "{}: {flag}",
                setting.field
            );
        }
        assert_eq!(flag_name("max_body_bytes"), "--max-body-bytes");
        assert_eq!(flag_name("models"), "PATH");
    }

    #[test]
    fn switches_are_flags_without_a_value() {
        use clap::Parser;
        #[derive(Parser)]
        struct Command {
            #[command(flatten)]
            flags: Flags,
        }
        let parsed = Command::try_parse_from(["serve", "m", "--allow-partial", "--port", "0"])
            .unwrap()
            .flags;
        assert_eq!(parsed.allow_partial, Some(true));
        assert_eq!(parsed.require_checksum, None);
        assert_eq!(parsed.port, Some(0));
        assert_eq!(parsed.models, Some(PathBuf::from("m")));
    }

    #[test]
    fn a_config_file_reports_every_unknown_key_and_bad_value_with_its_line() {
        let mut problems = Vec::new();
        let file = ConfigFile::parse(
            Path::new("w.toml"),
            "models = \"m\"\nprot = 1\nport = \"abc\"\nworkrs = 2\n".to_owned(),
            &mut problems,
        )
        .unwrap();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].starts_with(
            "w.toml line 2: unknown field `prot`, expected one of `models`, `host`, `port`"
        ));
        assert!(problems[1].starts_with("w.toml line 4: unknown field `workrs`"));
        let port: Option<Set<u16>> = file.value(setting("port"), &mut problems);
        assert_eq!(port, None);
        assert_eq!(
            problems[2],
            "w.toml line 3: port = \"abc\" is not a port number (0 to 65535)"
        );
        let models: Option<Set<PathBuf>> = file.value(setting("models"), &mut problems);
        assert_eq!(models.unwrap().origin.to_string(), "models in w.toml");
    }
}
