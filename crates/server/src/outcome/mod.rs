//! What a request's outcome is, whatever protocol carried it: the one table of client-visible
//! errors (`error`: codes, their HTTP and gRPC statuses, meanings), the mapping of failures
//! below onto it (`failure`), the counting of every answered request (`accounting`, of an
//! `answered::Answered`) and its access-log line (`access_log`). The HTTP layer (`api`) and the
//! gRPC layer (`grpc`) each turn these into their own wire form.

mod access_log;
mod accounting;
mod answered;
pub mod error;
mod failure;

pub(crate) use accounting::record;
pub(crate) use answered::Answered;
pub use answered::ServedBy;
pub(crate) use failure::{body_refusal, explain_error, explain_unavailable, predict_error};
