//! The `warden` binary: parse, install logging, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use warden_server::cli::Cli;
use warden_server::config::ProcessEnv;
use warden_server::startup::{Diagnostic, exit};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version are not errors; anything else clap rejects is a usage error.
            let code = if err.use_stderr() { exit::USAGE } else { 0 };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    warden_server::telemetry::init(&ProcessEnv);
    match warden_server::run(cli, &ProcessEnv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let diagnostic = Diagnostic(&err).to_string();
            tracing::error!(exit_code = err.exit_code(), error = %diagnostic.trim_end(), "start-up failed");
            eprint!("{diagnostic}");
            ExitCode::from(err.exit_code())
        }
    }
}
