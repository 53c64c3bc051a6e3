//! When a request must be answered, fixed once when it arrives: its arrival plus the client's
//! own timeout (`x-timeout-ms`, gRPC's `grpc-timeout`) or the server's request timeout. Every
//! wait a request makes (its body, a decode permit, the model's queue and inference) is bounded
//! by this one instant, so a client that allows 100 ms is answered within about 100 ms whatever
//! it waits for. The protocols parse their own header into the timeout; this owns the rest.

use std::time::{Duration, Instant};

/// A request's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// When the request arrived (its head was read).
    pub arrived: Instant,
    /// When it must be answered.
    pub at: Instant,
    /// Whether `at` is the client's own deadline rather than the server's default: passing it
    /// is then `deadline_exceeded`, the client's choice, rather than the server being slow.
    pub clients: bool,
}

impl Deadline {
    /// The deadline of a request that arrived at `arrived`, asked for `asked` (its timeout
    /// header, if any) and would otherwise get the server's `default`.
    pub fn new(arrived: Instant, asked: Option<Duration>, default: Duration) -> Deadline {
        let timeout = asked.unwrap_or(default);
        Deadline {
            arrived,
            at: arrived.checked_add(timeout).unwrap_or(arrived + default),
            clients: asked.is_some(),
        }
    }

    /// The sooner of this deadline and `limit` after arrival (the body timeout), and whether
    /// that is the request's deadline rather than the limit, for a body read.
    pub fn within(&self, limit: Duration) -> (Instant, bool) {
        let server = self.arrived + limit;
        if self.at < server {
            (self.at, true)
        } else {
            (server, false)
        }
    }
}

/// The instant a request arrived, stamped by the first layer that sees it (the HTTP access
/// log, the gRPC message reader) for the layers after it, as a request extension.
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub Instant);
