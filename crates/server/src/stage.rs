//! Which stage of a request the current thread is working on: a marker set where a request
//! crosses from one stage to the next (arrival and reading, decoding, admission, inference,
//! encoding, the log line and metrics, and the transport around them), so a counting allocator
//! in a test or bench build (`tests/allocations.rs`) can tell where each heap allocation of a
//! request was made.
//!
//! The marker is one thread-local byte, written a handful of times per request; nothing reads
//! it in the server itself. It is exact while one request is in flight (the allocation test
//! sends one at a time); with many, tasks interleave on a thread and an allocation is counted
//! in the stage of whichever request last set the marker there. Inference workers are marked
//! `Infer` for their whole life.

use std::cell::Cell;

/// A request's stages, in the order a request goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    /// The connection's own work: hyper reading the head and writing the answer, tokio.
    Transport = 0,
    /// From arrival to the front door: request id, routing, the body read.
    Read = 1,
    /// The codec's check and decode of the body into tensors or rows.
    Decode = 2,
    /// The contract gate.
    Admit = 3,
    /// The queue, the batch and the engine (and the output guards and drift monitor).
    Infer = 4,
    /// The codec's encode and the answer's headers.
    Encode = 5,
    /// The access-log line and the metrics.
    Log = 6,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 7] = [
        Stage::Transport,
        Stage::Read,
        Stage::Decode,
        Stage::Admit,
        Stage::Infer,
        Stage::Encode,
        Stage::Log,
    ];

    /// Its name in a report.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Transport => "transport",
            Stage::Read => "read",
            Stage::Decode => "decode",
            Stage::Admit => "admit",
            Stage::Infer => "infer",
            Stage::Encode => "encode",
            Stage::Log => "log",
        }
    }
}

thread_local! {
    static CURRENT: Cell<Stage> = const { Cell::new(Stage::Transport) };
}

/// Marks the current thread as working on `stage`.
pub fn enter(stage: Stage) {
    // `try_with`: a thread being torn down has no marker left; nothing to mark then.
    let _ = CURRENT.try_with(|current| current.set(stage));
}

/// The stage the current thread is working on (`Transport` on a thread being torn down).
pub fn current() -> Stage {
    CURRENT.try_with(Cell::get).unwrap_or(Stage::Transport)
}
