//! The signals warden acts on, registered before it reports `listening`.

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::startup::diagnostics::StartupError;

/// The signals warden acts on: SIGTERM and SIGINT (finish in-flight requests, then exit) and
/// SIGHUP (rescan the repository). Registered before the server reports `listening`, so a
/// signal sent right after start-up is never met by the default action (death mid-request).
#[derive(Debug)]
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
    /// Each SIGHUP received.
    pub hangup: Signal,
}

impl Signals {
    /// Registers the handlers; needs a running tokio runtime.
    pub fn install() -> Result<Signals, StartupError> {
        let register = |kind: SignalKind, name: &str| {
            signal(kind)
                .map_err(|err| StartupError::Internal(format!("cannot handle {name}: {err}")))
        };
        Ok(Signals {
            terminate: register(SignalKind::terminate(), "SIGTERM")?,
            interrupt: register(SignalKind::interrupt(), "SIGINT")?,
            hangup: register(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// Splits into the shutdown future (SIGTERM or SIGINT) and the SIGHUP stream.
    pub fn split(self) -> (impl Future<Output = ()> + Send + 'static, Signal) {
        let Signals {
            mut terminate,
            mut interrupt,
            hangup,
        } = self;
        let shutdown = async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT received: finishing in-flight requests"),
                _ = terminate.recv() => tracing::info!("SIGTERM received: finishing in-flight requests"),
            }
        };
        (shutdown, hangup)
    }
}
