//! One answered request as the access log and the metrics record it, whatever protocol it
//! came by, and the model version that answered it.

use std::sync::Arc;

use crate::outcome::error::ErrorCode;
use crate::serving::{ModelVersion, Timings};

/// Which model version answered (its name, version and hash: every answer names them), held
/// by reference so naming it costs no copy of its strings.
#[derive(Debug, Clone)]
pub struct ServedBy {
    pub model: Arc<ModelVersion>,
    /// Where an inference's time went (absent for metadata routes).
    pub timings: Option<Timings>,
}

impl ServedBy {
    /// `model`, with where an inference's time went when one ran.
    pub fn of(model: &Arc<ModelVersion>, timings: Option<Timings>) -> ServedBy {
        ServedBy {
            model: Arc::clone(model),
            timings,
        }
    }
}

/// One answered request, as the log and the metrics record it, whatever protocol it came by.
#[derive(Debug)]
pub(crate) struct Answered<'a> {
    pub request_id: &'a str,
    /// `http` or `grpc`.
    pub protocol: &'static str,
    /// The HTTP method (`POST` for every gRPC call).
    pub method: &'a str,
    /// The path asked for (the gRPC method's full name).
    pub path: &'a str,
    /// The HTTP route template or the gRPC method: a bounded set, never a raw path.
    pub route: &'a str,
    /// The HTTP status or the gRPC status name.
    pub status: &'a str,
    pub served: Option<&'a ServedBy>,
    pub code: Option<ErrorCode>,
    /// The distinct violation types of an `invalid_input` answer.
    pub violation_types: &'a [&'static str],
    pub elapsed: std::time::Duration,
}
