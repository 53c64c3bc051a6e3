//! Encoding a KServe V2 answer (JSON, or the JSON header and binary tensor data after it) and
//! the tensor metadata of the model metadata route.

use serde::Serialize;
use serde_json::{Map, Value};
use warden_runtime::{NamedTensor, TensorData, TensorSpec};

use super::decode::BinaryOutputs;

/// A tensor's data serialised as a flat JSON array (f32 printed as f32, so 0.9 stays 0.9).
#[derive(Debug)]
struct FlatData<'a>(&'a TensorData);

impl Serialize for FlatData<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            TensorData::Bool(v) => v.serialize(serializer),
            TensorData::U8(v) => v.serialize(serializer),
            TensorData::U16(v) => v.serialize(serializer),
            TensorData::U32(v) => v.serialize(serializer),
            TensorData::U64(v) => v.serialize(serializer),
            TensorData::I8(v) => v.serialize(serializer),
            TensorData::I16(v) => v.serialize(serializer),
            TensorData::I32(v) => v.serialize(serializer),
            TensorData::I64(v) => v.serialize(serializer),
            TensorData::F32(v) => v.serialize(serializer),
            TensorData::F64(v) => v.serialize(serializer),
            TensorData::String(v) => v.serialize(serializer),
        }
    }
}

/// One output tensor on the wire: its data inline as JSON, or its byte count in the binary part.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = InferResponseOutput)]
pub(crate) struct ResponseOutput<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<OutputParameters<'a>>,
    /// The values, flat in row-major order; absent when sent as binary.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Value>>)]
    data: Option<FlatData<'a>>,
}

/// An output's parameters: its byte count when sent as binary, and what an output warden adds
/// says of itself (`contributions`: the feature names, the method, the scale).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct OutputParameters<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    binary_data_size: Option<usize>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    described: Option<&'a Map<String, Value>>,
}

/// A KServe V2 inference response (its JSON part).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = InferResponse)]
pub(crate) struct ResponseHeader<'a> {
    model_name: &'a str,
    #[schema(value_type = String)]
    model_version: VersionText,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<ResponseOutput<'a>>,
}

/// A version number written as the JSON string V2 wants, straight into the output.
#[derive(Debug)]
struct VersionText(u64);

impl Serialize for VersionText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// An encoded inference response: the JSON part and the binary part after it (empty when no
/// output was asked for as binary; then there is no `Inference-Header-Content-Length`).
#[derive(Debug)]
pub struct EncodedResponse {
    pub json: Vec<u8>,
    pub binary: Vec<u8>,
}

/// Encodes an inference response, each output as JSON or binary as the request asked;
/// `described` gives one output's parameters (`contributions`'s).
pub fn encode_response(
    model_name: &str,
    model_version: u64,
    request_id: Option<&str>,
    outputs: &[NamedTensor],
    binary_outputs: &BinaryOutputs,
    described: Option<(&str, &Map<String, Value>)>,
) -> Result<EncodedResponse, serde_json::Error> {
    let mut binary = Vec::new();
    let mut wire = Vec::with_capacity(outputs.len());
    for output in outputs {
        let described = described
            .filter(|(name, _)| *name == output.name)
            .map(|(_, parameters)| parameters);
        let (binary_data_size, data) = if binary_outputs.wants(&output.name) {
            let before = binary.len();
            append_binary(&output.tensor.data, &mut binary);
            (Some(binary.len() - before), None)
        } else {
            (None, Some(FlatData(&output.tensor.data)))
        };
        let parameters =
            (binary_data_size.is_some() || described.is_some()).then_some(OutputParameters {
                binary_data_size,
                described,
            });
        wire.push(ResponseOutput {
            name: &output.name,
            datatype: output.tensor.data_type().protocol_name(),
            shape: &output.tensor.shape,
            parameters,
            data,
        });
    }
    // Sized for the answer up front (a number takes at most ~16 bytes of JSON, a string its
    // length and quotes), so the buffer is not regrown as it fills.
    let inline_bytes: usize = wire
        .iter()
        .filter_map(|output| output.data.as_ref())
        .map(|data| match data.0 {
            TensorData::String(texts) => texts.iter().map(|t| t.len() + 3).sum(),
            other => other.len() * 16,
        })
        .sum();
    let mut json = Vec::with_capacity(256 + model_name.len() + 96 * wire.len() + inline_bytes);
    serde_json::to_writer(
        &mut json,
        &ResponseHeader {
            model_name,
            model_version: VersionText(model_version),
            id: request_id,
            outputs: wire,
        },
    )?;
    Ok(EncodedResponse { json, binary })
}

/// Appends tensor data in the binary tensor layout (the inverse of [`decode_binary`]).
pub(super) fn append_binary(data: &TensorData, out: &mut Vec<u8>) {
    match data {
        TensorData::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        TensorData::U8(v) => out.extend_from_slice(v),
        TensorData::U16(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        TensorData::U32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        TensorData::U64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        TensorData::I8(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        TensorData::I16(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        TensorData::I32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        TensorData::I64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        TensorData::F32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        TensorData::F64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        TensorData::String(v) => v.iter().for_each(|text| {
            // Strings longer than 4 GiB cannot come out of a request under the body limit.
            out.extend((text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }),
    }
}

/// One tensor's metadata on the wire.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TensorMetadata<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [i64],
}

/// Tensor metadata for every spec.
pub fn tensor_metadata(specs: &[TensorSpec]) -> Vec<TensorMetadata<'_>> {
    specs
        .iter()
        .map(|spec| TensorMetadata {
            name: &spec.name,
            datatype: spec.data_type.protocol_name(),
            shape: &spec.shape,
        })
        .collect()
}
