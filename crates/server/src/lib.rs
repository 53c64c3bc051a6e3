//! warden's server. The layers, top down; each names only those below it (a test,
//! `tests/server/layers.rs`, holds every `crate::` path to this):
//!
//! - [`startup`]: where start-up decides: configuration, the checks in order, and
//!   [`startup::assemble`], the one assembly of the serving state (`serve`, `check`, tests).
//! - `init`: `warden init`, a manifest from a graph and its training data.
//! - [`api`]: HTTP: routes, body extractors, auth middleware, the access log; [`grpc`]: the same
//!   over gRPC (the inference service, health, reflection). Both only translate headers and
//!   statuses: every inference goes through the front door.
//! - [`protocol`]: the wire codecs (KServe V2 over REST and gRPC, rows): bytes to tensors or
//!   rows, answers to bytes, each a [`front_door::Codec`].
//! - [`state`]: what every handler reaches.
//! - [`front_door`]: the one inference pipeline every protocol goes through (deadline, decode
//!   slot, decode, admission, inference, observers, encode), and where observers of every
//!   served request attach.
//! - [`outcome`]: the error table, the mapping of failures onto it, and the one record (log
//!   line and metrics) of every answered request.
//! - [`transport`]: connections, their timeouts and cap, HTTP/2 streams, the memory budget for
//!   request bodies, bounded body reads and request deadlines, for every protocol.
//! - [`serving`]: where a request is admitted (the contract gate), waits (the scheduler) and
//!   runs (model versions on their engines); the registry, repository and reloads.
//! - `auth`, `metrics`, [`exit`], `probe`, [`stage`]: leaves: the token policy, Prometheus, exit
//!   codes, the `warden health` client, the marker of a request's stage for allocation counts.
//!
//! `main.rs` only parses the command line, installs logging, calls [`run`] and maps its error to
//! an exit code; everything else lives here so tests drive the same code.

#![forbid(unsafe_code)]

pub mod api;
mod auth;
pub mod cli;
pub mod exit;
pub mod front_door;
pub mod grpc;
mod init;
mod metrics;
pub mod outcome;
pub mod predict;
pub mod prediction_log;
mod probe;
pub mod protocol;
pub mod serving;
pub mod stage;
pub mod startup;
pub mod state;
pub mod transport;

use std::sync::Arc;

use cli::{CheckFormat, Cli, Command};
use startup::config::{self, EnvSource};
use startup::diagnostics::StartupError;
use startup::preflight::{self, Engines, Mode, Status};

/// Runs the command the user asked for. `out` receives what a command prints for the user
/// (`check`'s checklist); logs go to stderr.
pub fn run(
    cli: Cli,
    env: &dyn EnvSource,
    out: &mut dyn std::io::Write,
) -> Result<(), StartupError> {
    match cli.command {
        Command::Serve(args) => {
            let outcome = startup::assemble(args, env, Mode::Serve, Engines::Locate);
            let prepared = outcome.result?;
            let listener = prepared
                .listener
                .ok_or_else(|| StartupError::Internal("no listener after the checks".into()))?;
            // In plain text as well as in the JSON log: with `--port 0` this is how a user
            // learns the port.
            if let Ok(address) = listener.local_addr() {
                let _ = writeln!(out, "warden listening on http://{address}")
                    .and_then(|()| out.flush());
            }
            if let Some(Ok(address)) = prepared.grpc_listener.as_ref().map(|l| l.local_addr()) {
                let _ =
                    writeln!(out, "warden gRPC listening on {address}").and_then(|()| out.flush());
            }
            let tokio = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|err| StartupError::Internal(format!("cannot start tokio: {err}")))?;
            tokio.block_on(async {
                let (shutdown, hangup) = startup::Signals::install()?.split();
                if let Some(reloader) = &prepared.state.reloader {
                    serving::watch_repository(
                        Arc::clone(reloader),
                        hangup,
                        prepared.config.watch,
                        prepared.config.poll_interval,
                    );
                }
                let prediction_log = prepared.state.prediction_log.clone();
                let grace = prepared.connections.shutdown_grace;
                let served = startup::serve(
                    prepared.state,
                    listener,
                    prepared.grpc_listener,
                    prepared.connections,
                    shutdown,
                )
                .await;
                // The requests are answered: what the log holds is written and published.
                if let Some(log) = prediction_log {
                    let _ = tokio::task::spawn_blocking(move || log.close(grace)).await;
                }
                served
            })
        }
        Command::Check(args) => {
            let outcome = startup::assemble(args.serve, env, Mode::Check, Engines::Locate);
            let exit_code = outcome
                .result
                .as_ref()
                .err()
                .map_or(0, StartupError::exit_code);
            let printed = match args.format {
                CheckFormat::Text => write_checklist(out, &outcome.items, exit_code),
                CheckFormat::Json => serde_json::to_writer_pretty(
                    &mut *out,
                    &serde_json::json!({
                        "ok": exit_code == 0,
                        "exit_code": exit_code,
                        "checks": outcome.items,
                    }),
                )
                .map_err(std::io::Error::other)
                .and_then(|()| writeln!(out)),
            };
            printed.map_err(|err| StartupError::Internal(format!("cannot print: {err}")))?;
            outcome.result.map(|_| ())
        }
        Command::Health(args) => {
            // Where `serve` would listen, read the way `serve` reads it (no config file).
            let mut problems = Vec::new();
            let (host, port) = config::listen_settings(args.host, args.port, env, &mut problems);
            if !problems.is_empty() {
                return Err(StartupError::Config(problems));
            }
            let host = host.unwrap_or(config::DEFAULT_HOST);
            let port = port.unwrap_or(config::DEFAULT_PORT);
            let timeout = std::time::Duration::from_millis(args.timeout_ms);
            probe::ready(host, port, &args.path, timeout).map_err(StartupError::Unhealthy)?;
            writeln!(out, "ready")
                .map_err(|err| StartupError::Internal(format!("cannot print: {err}")))
        }
        Command::Predict(args) => {
            let explicit = config::onnxruntime_libraries(args.onnxruntime_lib, env);
            let backends = startup::backends(&explicit)?;
            let request = predict::PredictRequest {
                model: args.model,
                input: args.input,
                output: args.output,
                rejects: args.rejects,
                fail_on_reject: args.fail_on_reject,
                batch_rows: args.batch_rows,
                carry: args.carry,
            };
            let summary = predict::predict(&request, &backends)?;
            summary
                .write(out)
                .and_then(|()| out.flush())
                .map_err(|err| StartupError::Internal(format!("cannot print: {err}")))
        }
        Command::Init(args) => {
            let explicit = config::onnxruntime_libraries(args.onnxruntime_lib, env);
            let backends = startup::backends(&explicit)?;
            let request = init::InitRequest {
                model: args.model,
                name: args.name,
                repository: args.repository,
                data: args.data,
                target: args.target,
                force: args.force,
                background_rows: args.background_rows as usize,
            };
            let written = init::init(&request, &backends)?;
            write!(out, "{}", written.summary(&request.repository))
                .and_then(|()| out.flush())
                .map_err(|err| StartupError::Internal(format!("cannot print: {err}")))
        }
    }
}

/// `warden check`'s text checklist: one line per check, problems and hints under it.
fn write_checklist(
    out: &mut dyn std::io::Write,
    items: &[preflight::CheckItem],
    exit_code: u8,
) -> std::io::Result<()> {
    for item in items {
        let mark = match item.status {
            Status::Ok => "ok  ",
            Status::Failed => "FAIL",
            Status::Skipped => "skip",
        };
        writeln!(out, "{mark}  {}: {}", item.check, item.detail)?;
        for problem in &item.problems {
            writeln!(out, "        = {problem}")?;
        }
        if let Some(hint) = &item.hint {
            writeln!(out, "        = hint: {hint}")?;
        }
    }
    let failed = items.iter().filter(|i| i.status == Status::Failed).count();
    if failed == 0 {
        writeln!(
            out,
            "all {} checks passed; `warden serve` would start",
            items.len()
        )
    } else {
        writeln!(
            out,
            "{failed} of {} checks failed; `warden serve` would exit with code {exit_code}",
            items.len()
        )
    }
}
