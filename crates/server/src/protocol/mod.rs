//! The wire protocols as codecs for the front door (`crate::front_door::Codec`): each decodes a
//! request body into what the contract gate checks, and encodes the answer for its clients.
//! KServe V2 over REST (JSON and the binary tensor extension) and over gRPC ([`v2`]), and the
//! row API ([`rows`]) and its explain verb ([`explain`]); the strict JSON both HTTP protocols accept ([`json`]).

pub mod explain;
mod json;
pub mod rows;
pub mod v2;
