//! warden's server: configuration, the model repository, model loading and inference workers,
//! the HTTP API (KServe V2 and the row API), telemetry and start-up diagnostics.
//!
//! `main.rs` only parses the command line, installs logging, calls [`run`] and maps its error to
//! an exit code; everything else lives here so tests drive the same code.

pub mod api;
pub mod cli;
pub mod config;
pub mod guards;
pub mod init;
pub mod model;
pub mod registry;
pub mod repository;
pub mod rows;
pub mod startup;
pub mod telemetry;
pub mod v2_protocol;
pub mod worker;

use cli::{Cli, Command};
use config::EnvSource;
use startup::StartupError;

/// Runs the command the user asked for.
pub fn run(cli: Cli, env: &dyn EnvSource) -> Result<(), StartupError> {
    match cli.command {
        Command::Serve(args) => {
            let config = args.resolve(env)?;
            let runtime = startup::init_onnxruntime(config.onnxruntime_lib.as_deref(), env)?;
            let state = startup::load_models(&config.model_path, runtime.as_ref())?;
            let listener = startup::bind(&config)?;
            let tokio = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|err| StartupError::Internal(format!("cannot start tokio: {err}")))?;
            tokio.block_on(startup::serve(
                state,
                listener,
                config.body_limit_bytes,
                startup::shutdown_signal(),
            ))
        }
        Command::Init(args) => {
            let runtime = startup::init_onnxruntime(args.onnxruntime_lib.as_deref(), env)?;
            let request = init::InitRequest {
                model: args.model,
                name: args.name,
                repository: args.repository,
                data: args.data,
                target: args.target,
                force: args.force,
            };
            let written = init::init(&request, runtime.as_ref())?;
            tracing::info!(
                manifest = %written.display(),
                "model folder written; it loads and passes its warm-up"
            );
            Ok(())
        }
    }
}
