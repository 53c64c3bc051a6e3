//! The wire protocols as codecs: each decodes a request body into what the serving layer
//! checks, and encodes the serving layer's answer for its clients. KServe V2 (JSON and the
//! binary tensor extension) and the row API.

pub mod rows;
pub mod v2;
