//! The command line: `warden serve PATH [--host H] [--port P] [--onnxruntime-lib FILE]`, and
//! its resolution with `WARDEN_*` variables (flags win) into a [`ServeConfig`].

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand};

use crate::config::{EnvSource, ServeConfig};
use crate::startup::StartupError;

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
    /// Write a model folder (NAME/warden.toml + NAME/1/model.onnx) from a graph and its
    /// training data; the folder serves without edits.
    Init(InitArgs),
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
pub struct ServeArgs {
    /// A model repository (NAME/warden.toml + NAME/VERSION/model.onnx) or a single .onnx file.
    pub path: PathBuf,
    /// Address to listen on [env: WARDEN_HOST] [default: 127.0.0.1]
    #[arg(long)]
    pub host: Option<IpAddr>,
    /// Port to listen on; 0 picks a free one [env: WARDEN_PORT] [default: 8000]
    #[arg(long)]
    pub port: Option<u16>,
    /// The ONNX Runtime shared library (libonnxruntime.so) [env: WARDEN_ONNXRUNTIME_LIB]
    #[arg(long, value_name = "FILE")]
    pub onnxruntime_lib: Option<PathBuf>,
    /// Largest request body accepted, in bytes [env: WARDEN_MAX_BODY_BYTES] [default: 8 MiB]
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
}

impl ServeArgs {
    /// Resolves flags over `WARDEN_*` variables over defaults, reporting every bad value.
    pub fn resolve(self, env: &dyn EnvSource) -> Result<ServeConfig, StartupError> {
        let mut problems = Vec::new();
        let mut config = ServeConfig::new(self.path);
        if let Some(host) = setting(
            self.host,
            env,
            &mut problems,
            "WARDEN_HOST",
            "an IP address (e.g. 127.0.0.1 or 0.0.0.0)",
        ) {
            config.host = host;
        }
        if let Some(port) = setting(
            self.port,
            env,
            &mut problems,
            "WARDEN_PORT",
            "a port number (0 to 65535)",
        ) {
            config.port = port;
        }
        if let Some(bytes) = setting(
            self.max_body_bytes,
            env,
            &mut problems,
            "WARDEN_MAX_BODY_BYTES",
            "a number of bytes",
        ) {
            config.body_limit_bytes = bytes;
        }
        config.onnxruntime_lib = self.onnxruntime_lib;
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(StartupError::Config(problems))
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
    let value = env.var(name).filter(|value| !value.is_empty())?;
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
    use std::collections::BTreeMap;

    use super::*;

    fn args(argv: &[&str]) -> ServeArgs {
        match Cli::parse_from(argv).command {
            Command::Serve(args) => args,
            Command::Init(_) => panic!("expected serve"),
        }
    }

    #[test]
    fn flags_win_over_the_environment_and_bad_variables_are_named() {
        let env: BTreeMap<String, String> = [
            ("WARDEN_PORT".to_owned(), "abc".to_owned()),
            ("WARDEN_HOST".to_owned(), "0.0.0.0".to_owned()),
        ]
        .into();
        let config = args(&["warden", "serve", "m", "--port", "9000"])
            .resolve(&env)
            .unwrap();
        assert_eq!(
            (config.host.to_string().as_str(), config.port),
            ("0.0.0.0", 9000)
        );
        let err = args(&["warden", "serve", "m"]).resolve(&env).unwrap_err();
        assert!(err.to_string().contains("WARDEN_PORT=\"abc\""), "{err}");
    }
}
