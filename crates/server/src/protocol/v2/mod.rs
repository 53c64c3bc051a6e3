//! The Open Inference Protocol (KServe V2) REST wire format, as a codec: requests decoded
//! (`decode`) into tensors for the contract gate, answers encoded (`encode`).
//!
//! Tensor data comes as JSON (`data`, flat or nested) or, with Triton's binary tensor
//! extension (the default of Triton's own clients), as raw little-endian bytes after the JSON
//! header, whose length the `Inference-Header-Content-Length` header gives; each such input
//! names its byte count in `parameters.binary_data_size`. Responses are always JSON.

mod decode;
mod encode;

pub use decode::{BinaryOutputs, DecodeError, InferRequest, decode_request};
pub(crate) use decode::{
    Payload, RequestBody, TypedContents, WireInput, batch_rows, check_batch, decode_inputs,
    requested_outputs,
};
pub use encode::{EncodedResponse, TensorMetadata, encode_response, tensor_metadata};
pub(crate) use encode::{ResponseHeader, append_binary};
