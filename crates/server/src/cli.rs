//! The command line: `warden serve`, `warden check`, `warden init` and `warden health`. Parsing only;
//! the serve settings' flags are declared with the rest of each setting in
//! [`crate::startup::settings`] and resolved with the environment and the config file in
//! [`crate::startup::config`].

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::startup::settings::Flags;

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
    Serve(Flags),
    /// Run every start-up check `serve` runs, without serving, and print them as a checklist;
    /// exits with the code `serve` would.
    Check(CheckArgs),
    /// Write a model folder (NAME/warden.toml + NAME/1/model.onnx) from a graph and its
    /// training data; the folder serves without edits.
    Init(InitArgs),
    /// Score a file offline (CSV, JSON Lines or Parquet) with the same model, contract, engine and output
    /// guards as `serve`: the answers as Parquet in the prediction log's schema, the refused rows
    /// with the server's error in a rejects file. Exit 65 with --fail-on-reject when any row was
    /// refused; 130 when interrupted (nothing is written).
    Predict(PredictArgs),
    /// Ask a warden running on this machine whether it is ready (GET /v2/health/ready): exit 0
    /// when it answers 200, 69 otherwise. For container health checks in images without curl.
    Health(HealthArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub serve: Flags,
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
    /// Training rows to store as the background set explanations are computed against
    /// (background.jsonl, pinned in `[explain]`); 0 stores none.
    #[arg(long, value_name = "N", default_value_t = warden_contract::DEFAULT_BACKGROUND_ROWS as u64,
          requires = "data", value_parser = clap::value_parser!(u64).range(0..=5000))]
    pub background_rows: u64,
    /// The ONNX Runtime shared library (libonnxruntime.so) [env: WARDEN_ONNXRUNTIME_LIB]
    #[arg(long, value_name = "FILE")]
    pub onnxruntime_lib: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The model: its folder (holding warden.toml), a repository holding one model, or a .onnx.
    pub model: PathBuf,
    /// The rows to score: .csv (a header row naming the features), .jsonl (one object per line)
    /// or .parquet.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// The scored rows, as Parquet (written under a temporary name, renamed when complete).
    #[arg(long, value_name = "FILE.parquet")]
    pub output: PathBuf,
    /// The refused rows, as JSON Lines [default: OUTPUT's name with .rejects.jsonl]
    #[arg(long, value_name = "FILE.jsonl")]
    pub rejects: Option<PathBuf>,
    /// Exit 65 when any row was refused (the files are written all the same).
    #[arg(long)]
    pub fail_on_reject: bool,
    /// An input column written beside each answer (and in its reject), as text: an id. Repeatable.
    #[arg(long, value_name = "COLUMN")]
    pub carry: Vec<String>,
    /// Rows read and scored at a time (at most the model's `max_request_rows`).
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub batch_rows: usize,
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
