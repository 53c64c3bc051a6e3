//! Where start-up decides. The configuration is resolved (file < environment < flags,
//! [`config`]); the checks run in order and the serving state is assembled by [`assemble`],
//! the one start-up path of `warden serve`, `warden check` and the tests; the engines are found
//! (`engines`), the address bound; then [`serve`] runs until SIGTERM or SIGINT and finishes
//! the requests in flight.

pub mod config;
pub mod diagnostics;
mod engines;
pub mod preflight;
pub mod resources;
pub mod settings;
mod signals;
pub mod telemetry;

pub use engines::{backends, init_onnxruntime};
pub use preflight::{Engines, Mode, Outcome, Prepared, assemble};
pub use signals::Signals;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::api::{canned_answers, router};
use crate::grpc;
use crate::startup::diagnostics::StartupError;
use crate::state::AppState;
use crate::transport::connections::{self, ConnectionLimits};

/// Binds an address (the HTTP or the gRPC one).
pub fn bind(address: SocketAddr) -> Result<std::net::TcpListener, StartupError> {
    let listener = std::net::TcpListener::bind(address)
        .map_err(|source| StartupError::Bind { address, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| StartupError::Bind { address, source })?;
    Ok(listener)
}

/// Serves `state` over HTTP on `listener` and, when given, over gRPC on `grpc_listener`,
/// until `shutdown` resolves; then finishes in-flight requests on both for at most the grace
/// period in `limits`.
pub async fn serve(
    state: AppState,
    listener: std::net::TcpListener,
    grpc_listener: Option<std::net::TcpListener>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let adopt = |listener: std::net::TcpListener, protocol: &str| {
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|err| {
            StartupError::Internal(format!("cannot adopt the {protocol} listener: {err}"))
        })?;
        let address = listener.local_addr().map_err(|err| {
            StartupError::Internal(format!("cannot read the bound address: {err}"))
        })?;
        tracing::info!(
            address = %address,
            protocol,
            max_connections = limits.max_connections,
            header_timeout_ms = limits.header_timeout.as_millis() as u64,
            idle_timeout_ms = limits.idle_timeout.as_millis() as u64,
            "listening"
        );
        Ok::<_, StartupError>(listener)
    };
    let mut listeners = vec![(adopt(listener, "http")?, router(state.clone()))];
    if let Some(grpc_listener) = grpc_listener {
        listeners.push((adopt(grpc_listener, "grpc")?, grpc::router(state.clone())));
    }
    let metrics = Arc::clone(&state.metrics);
    connections::serve(listeners, limits, canned_answers(), metrics, shutdown).await;
    Ok(())
}
