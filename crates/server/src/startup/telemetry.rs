//! Logging: one JSON object per line on stderr (stdout stays free for command output), level
//! from `WARDEN_LOG` (a tracing filter such as `info` or `warden_server=debug`), default `info`.
//! Lines logged while a request is handled carry its `span.request_id`.

use tracing_subscriber::EnvFilter;

use crate::startup::config::EnvSource;

/// Installs the global JSON subscriber. Call once, first thing in `main`.
pub fn init(env: &dyn EnvSource) {
    let filter = env
        .var("WARDEN_LOG")
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
