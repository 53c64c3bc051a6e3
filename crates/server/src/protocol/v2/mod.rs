//! The Open Inference Protocol (KServe V2), as codecs for the front door: over REST ([`rest`]:
//! JSON, or Triton's binary tensor extension) and over gRPC ([`grpc`]: typed `contents` or
//! `raw_input_contents`), both decoding into tensors checked against the graph by the same
//! rules ([`decode`]) and encoding the outputs back ([`encode`]).
//!
//! Over REST, tensor data comes as JSON (`data`, flat or nested) or, with the binary tensor
//! extension (the default of Triton's own clients), as raw little-endian bytes after the JSON
//! header, whose length the `Inference-Header-Content-Length` header gives; each such input
//! names its byte count in `parameters.binary_data_size`. Responses are JSON unless the client
//! asks for binary outputs.
//!
//! [`inference`] holds the prost messages and tonic service generated from
//! `proto/open_inference_grpc.proto` by `scripts/grpc-codegen` (checked in: the build needs no
//! `protoc`).

mod contributions;
mod decode;
mod encode;
mod grpc;
mod rest;

#[path = "generated/inference.rs"]
#[allow(
    unused_qualifications,
    unreachable_pub,
    missing_debug_implementations,
    clippy::enum_variant_names,
    clippy::all
)]
pub mod inference;

/// The encoded `FileDescriptorSet` of the inference service, for reflection.
pub const INFERENCE_DESCRIPTOR: &[u8] = include_bytes!("generated/inference_descriptor.bin");

pub use contributions::CONTRIBUTIONS;
pub(crate) use decode::RequestBody;
pub use decode::{BinaryOutputs, DecodeError, InferRequest, decode_request};
pub(crate) use encode::ResponseHeader;
pub use encode::{EncodedResponse, TensorMetadata, encode_response, tensor_metadata};
pub use grpc::GrpcCodec;
pub use rest::RestCodec;
