//! warden-server's integration tests, in one binary (one link of ort, tract and axum instead of
//! one per file): each module drives the real router on a socket bound to port 0, the router
//! in-process, or the real binary.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod api;
mod binary;
#[path = "../../../../tests/zoo/cases.rs"]
mod cases;
mod catalogue;
mod common;
mod errors;
mod explain;
mod front_door;
mod fuzz_decoders;
mod grpc;
mod guards;
mod in_process;
mod init;
mod layers;
mod predict;
mod reload;
mod scheduler;
mod zoo;
