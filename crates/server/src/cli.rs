//! The command line: `warden serve`, `warden check`, `warden init` and `warden health`. Parsing only; the
//! settings are resolved with the environment and the config file in [`crate::startup::config`].

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::startup::config::{Flags, GrpcPort, WatchMode};

/// warden: a model server that cannot fail silently.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a model repository (or one .onnx file) over HTTP: KServe V2 and a row API.
    Serve(ServeArgs),
    /// Run every start-up check `serve` runs, without serving, and print them as a checklist;
    /// exits with the code `serve` would.
    Check(CheckArgs),
    /// Write a model folder (NAME/warden.toml + NAME/1/model.onnx) from a graph and its
    /// training data; the folder serves without edits.
    Init(InitArgs),
    /// Ask a warden running on this machine whether it is ready (GET /v2/health/ready): exit 0
    /// when it answers 200, 69 otherwise. For container health checks in images without curl.
    Health(HealthArgs),
}

/// The settings `serve` and `check` share.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A model repository (NAME/warden.toml + NAME/VERSION/model.onnx) or a single .onnx file
    /// [env: WARDEN_MODELS] [config: models]
    pub path: Option<PathBuf>,
    /// A TOML config file (keys: the [config: …] names below); the environment and flags
    /// override it [env: WARDEN_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [env: WARDEN_HOST] [default: 127.0.0.1]
    #[arg(long)]
    pub host: Option<IpAddr>,
    /// Port to listen on; 0 picks a free one [env: WARDEN_PORT] [default: 8000]
    #[arg(long)]
    pub port: Option<u16>,
    /// Port of the KServe V2 gRPC listener (same host); 0 picks a free one, `off` disables it
    /// [env: WARDEN_GRPC_PORT] [config: grpc_port] [default: 8001]
    #[arg(long, value_name = "PORT|off", value_parser = parse_grpc_port)]
    pub grpc_port: Option<GrpcPort>,
    /// The ONNX Runtime shared library (libonnxruntime.so) [env: WARDEN_ONNXRUNTIME_LIB]
    #[arg(long, value_name = "FILE")]
    pub onnxruntime_lib: Option<PathBuf>,
    /// Largest request body accepted, in bytes [env: WARDEN_MAX_BODY_BYTES] [default: 8 MiB]
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Serve the models that load; report the others as not ready instead of exiting
    /// [env: WARDEN_ALLOW_PARTIAL]
    #[arg(long)]
    pub allow_partial: bool,
    /// A request's deadline when it sends no x-timeout-ms header, in milliseconds
    /// [env: WARDEN_REQUEST_TIMEOUT_MS] [default: 30000]
    #[arg(long, value_name = "MS")]
    pub request_timeout_ms: Option<u64>,
    /// Inference threads per model version [env: WARDEN_WORKERS] [default: the CPUs this
    /// process may use, cgroup-aware]
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Refuse any model version whose manifest pins no sha256 under [versions.N]
    /// [env: WARDEN_REQUIRE_CHECKSUM] [config: require_checksum]
    #[arg(long)]
    pub require_checksum: bool,
    /// Require a bearer token from this file (one per line) on every route but health
    /// [env: WARDEN_AUTH_TOKENS_FILE, or WARDEN_AUTH_TOKENS=tok1,tok2] [config: auth_tokens_file]
    #[arg(long, value_name = "FILE")]
    pub auth_tokens_file: Option<PathBuf>,
    /// Tokens for the repository API (/v2/repository/...) only
    /// [env: WARDEN_ADMIN_TOKENS_FILE, or WARDEN_ADMIN_TOKENS] [config: admin_tokens_file]
    #[arg(long, value_name = "FILE")]
    pub admin_tokens_file: Option<PathBuf>,
    /// Serve /metrics without a token when tokens are required
    /// [env: WARDEN_PUBLIC_METRICS] [config: public_metrics]
    #[arg(long)]
    pub public_metrics: bool,
    /// How to watch the repository for new versions: file events (falling back to polling),
    /// polling only (network file systems), or off (SIGHUP and the repository API still reload)
    /// [env: WARDEN_WATCH] [config: watch] [default: events]
    #[arg(long, value_enum, value_name = "MODE")]
    pub watch: Option<WatchMode>,
    /// How often to rescan the repository when file events are unavailable, in milliseconds
    /// [env: WARDEN_POLL_INTERVAL_MS] [config: poll_interval_ms] [default: 2000]
    #[arg(long, value_name = "MS")]
    pub poll_interval_ms: Option<u64>,
    /// Close a connection whose request head (request line and headers) is not complete this
    /// long after its first byte, in milliseconds
    /// [env: WARDEN_HEADER_TIMEOUT_MS] [config: header_timeout_ms] [default: 10000]
    #[arg(long, value_name = "MS")]
    pub header_timeout_ms: Option<u64>,
    /// Answer 408 when a request's body has not fully arrived this long after its head, in
    /// milliseconds [env: WARDEN_BODY_TIMEOUT_MS] [config: body_timeout_ms] [default: 30000]
    #[arg(long, value_name = "MS")]
    pub body_timeout_ms: Option<u64>,
    /// Close a kept-alive connection that sends no new request for this long, in milliseconds
    /// [env: WARDEN_IDLE_TIMEOUT_MS] [config: idle_timeout_ms] [default: 75000]
    #[arg(long, value_name = "MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Connections open at once; at the cap the longest-idle one is closed for a new one, and
    /// when none is idle the new one is answered 503 [env: WARDEN_MAX_CONNECTIONS]
    /// [config: max_connections] [default: the open-files limit less 64, at most 10000]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// The memory budget for request bodies in flight, all connections and protocols together;
    /// a body that would pass it is refused at once with 503 (gRPC RESOURCE_EXHAUSTED)
    /// [env: WARDEN_MAX_BODY_BYTES_IN_FLIGHT] [config: max_body_bytes_in_flight]
    /// [default: a quarter of the memory limit, at most 256 MiB, at least twice --max-body-bytes]
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes_in_flight: Option<usize>,
    /// On SIGTERM, how long requests in flight may take before their connections are cut, in
    /// milliseconds [env: WARDEN_SHUTDOWN_GRACE_MS] [config: shutdown_grace_ms] [default: 10000]
    #[arg(long, value_name = "MS")]
    pub shutdown_grace_ms: Option<u64>,
}

impl ServeArgs {
    /// The flags, for [`crate::startup::config::resolve`].
    pub fn flags(self) -> Flags {
        Flags {
            models: self.path,
            config: self.config,
            host: self.host,
            port: self.port,
            grpc_port: self.grpc_port,
            max_body_bytes: self.max_body_bytes,
            onnxruntime_lib: self.onnxruntime_lib,
            allow_partial: self.allow_partial,
            request_timeout_ms: self.request_timeout_ms,
            workers: self.workers,
            require_checksum: self.require_checksum,
            auth_tokens_file: self.auth_tokens_file,
            admin_tokens_file: self.admin_tokens_file,
            public_metrics: self.public_metrics,
            watch: self.watch,
            poll_interval_ms: self.poll_interval_ms,
            header_timeout_ms: self.header_timeout_ms,
            body_timeout_ms: self.body_timeout_ms,
            idle_timeout_ms: self.idle_timeout_ms,
            max_connections: self.max_connections,
            max_body_bytes_in_flight: self.max_body_bytes_in_flight,
            shutdown_grace_ms: self.shutdown_grace_ms,
        }
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// How to print the checklist.
    #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
    pub format: CheckFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The ONNX graph to serve.
    pub model: PathBuf,
    /// The model's name: its folder and its URL segment.
    #[arg(long)]
    pub name: String,
    /// The model repository to write NAME/ into.
    #[arg(long, value_name = "DIR")]
    pub repository: PathBuf,
    /// Training data as CSV (a header row): ranges, categories, an example and a baseline.
    #[arg(long, value_name = "TRAIN.csv")]
    pub data: Option<PathBuf>,
    /// The CSV's label column (not a feature): its classes are checked against the model's.
    #[arg(long, value_name = "COLUMN", requires = "data")]
    pub target: Option<String>,
    /// Overwrite an existing manifest.
    #[arg(long)]
    pub force: bool,
    /// The ONNX Runtime shared library (libonnxruntime.so) [env: WARDEN_ONNXRUNTIME_LIB]
    #[arg(long, value_name = "FILE")]
    pub onnxruntime_lib: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The port warden listens on [env: WARDEN_PORT, then PORT] [default: 8000]
    #[arg(long)]
    pub port: Option<u16>,
    /// The address warden listens on; 0.0.0.0 is asked on 127.0.0.1 [env: WARDEN_HOST]
    /// [default: 127.0.0.1]
    #[arg(long)]
    pub host: Option<IpAddr>,
    /// The route to ask.
    #[arg(long, default_value = "/v2/health/ready")]
    pub path: String,
    /// How long to wait for the answer, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub timeout_ms: u64,
}

fn parse_grpc_port(text: &str) -> Result<GrpcPort, String> {
    text.parse()
        .map_err(|()| format!("{text:?} is not a port number (0 to 65535) or off"))
}
