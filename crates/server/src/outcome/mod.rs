//! What a request's outcome is, whatever protocol carried it: the one table of client-visible
//! errors (`error`: codes, their HTTP and gRPC statuses, meanings), the mapping of failures
//! below onto it (`failure`), the counting of every answered request (`accounting`) and its
//! access-log line (`access_log`). The HTTP layer (`api`) and the gRPC layer (`grpc`) each turn
//! these into their own wire form.

mod access_log;
mod accounting;
pub mod error;
mod failure;

pub use accounting::ServedBy;
pub(crate) use accounting::{Answered, record};
pub(crate) use failure::{body_refusal, predict_error};
