//! Where the work that must see every served request attaches (a shadow version, the
//! prediction log, explanations): an [`Observer`] is told about each request the front door
//! answered, once, whatever protocol it came by, with the model version, its inputs (when it
//! asks for them) and the outcome.
//!
//! Observers run on the request's task, after inference and before the answer is encoded: they
//! must be quick and never block; anything slow is handed to a bounded queue of their own. A
//! request whose client went away before its answer (its task dropped) is not answered, and not
//! observed; the scheduler counts it as abandoned.

use std::sync::Arc;
use std::time::Duration;

use warden_runtime::NamedTensor;

use crate::outcome::error::ApiError;
use crate::serving::{ModelVersion, Timings};

/// The protocol a request came by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// KServe V2 over HTTP (JSON, or the binary tensor extension).
    RestV2,
    /// The row API (`/v1/models/{m}:predict`).
    Rows,
    /// KServe V2 over gRPC.
    Grpc,
}

impl Protocol {
    /// Its name in logs and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::RestV2 => "rest_v2",
            Protocol::Rows => "rows",
            Protocol::Grpc => "grpc",
        }
    }
}

/// One request the front door answered, as an observer sees it.
#[derive(Debug)]
pub struct Observed<'a> {
    pub protocol: Protocol,
    pub request_id: &'a str,
    /// The version that admitted (or would have admitted) it; `None` when the lookup failed or
    /// the request was refused before it (a malformed body, no decode permit in time).
    pub model: Option<&'a ModelVersion>,
    /// The admitted inputs, when an observer asked for them ([`Observer::wants_inputs`]) and
    /// the request was admitted; shared, so an observer keeps them without a copy.
    pub inputs: Option<&'a Arc<[NamedTensor]>>,
    /// The rows admitted (0 if none were).
    pub rows: usize,
    /// The outputs the model gave (through the guards), or the error the client gets.
    pub outcome: Result<&'a [NamedTensor], &'a ApiError>,
    /// Where the inference's time went, when it ran.
    pub timings: Option<Timings>,
    /// From arrival to now.
    pub elapsed: Duration,
}

/// Sees every request the front door answers, exactly once.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// Whether it needs this request's admitted inputs (asked once the version admitted them):
    /// they are then copied once, before they go to the engine.
    fn wants_inputs(&self, _request_id: &str, _model: &ModelVersion) -> bool {
        false
    }

    /// Called once per request the front door answered, with its outcome.
    fn observe(&self, request: &Observed<'_>);
}
