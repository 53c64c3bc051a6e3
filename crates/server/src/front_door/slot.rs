//! Where a request's CPU-heavy decoding runs. A small body is decoded in place. A large one is
//! decoded on the blocking pool, so it never stalls the runtime's few threads (and with them
//! every other connection), and only under one of a few permits (one per CPU), held from its
//! parse until its body is dropped: however many clients send megabytes at once, only that many
//! large bodies are decoded, and held parsed in memory, at a time. The wait for a permit is
//! bounded by the request's deadline.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::outcome::error::{ApiError, ErrorCode};
use crate::transport::deadline::Deadline;

/// Bodies from this size on are large: a few megabytes of JSON take a tenth of a second or
/// more to parse and check, and tens of megabytes once parsed. Smaller ones are decoded in
/// place, as a thread hop would cost more than their decoding.
pub const LARGE_BODY_BYTES: usize = 64 * 1024;

/// Where one body is decoded: in place, or on the blocking pool under a permit.
#[derive(Debug)]
pub(super) struct DecodeSlot(Option<OwnedSemaphorePermit>);

impl DecodeSlot {
    /// The slot for a body of `size` bytes; a large one waits for a permit until the request's
    /// deadline: then `deadline_exceeded` when the deadline is the client's own, else
    /// `overloaded` (the server is busy decoding other large bodies).
    pub(super) async fn acquire(
        permits: &Arc<Semaphore>,
        size: usize,
        deadline: Deadline,
    ) -> Result<DecodeSlot, ApiError> {
        if size < LARGE_BODY_BYTES {
            return Ok(DecodeSlot(None));
        }
        let permit = Arc::clone(permits).acquire_owned();
        match tokio::time::timeout_at(deadline.at.into(), permit).await {
            Ok(Ok(permit)) => Ok(DecodeSlot(Some(permit))),
            Ok(Err(closed)) => Err(ApiError::internal(&closed)),
            Err(_) if deadline.clients => Err(ApiError::new(
                ErrorCode::DeadlineExceeded,
                "the request's own deadline passed while it waited to be decoded (other large \
                 request bodies were being decoded)",
            )),
            Err(_) => Err(ApiError::new(
                ErrorCode::Overloaded,
                "too many large request bodies are being decoded; retry after the Retry-After delay",
            )),
        }
    }

    /// Runs `work` (which should own, and so drop, the body it decodes) where this slot says.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        if self.0.is_none() {
            return Ok(work());
        }
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|err| ApiError::internal(&err))
    }
}
