//! The gRPC wire format of an inference, as a codec for the front door: a `ModelInferRequest`'s
//! tensors (typed `contents`, or `raw_input_contents` in the binary layout Triton's clients
//! always send) into tensors checked against the graph by the same rules as REST
//! ([`super::decode`]), and the outputs back into a `ModelInferResponse`, raw when the request
//! was raw, else typed.

use prost::bytes::Bytes;
use warden_contract::{LocSegment, Violation, ViolationType, Violations, clip};
use warden_runtime::{NamedTensor, Signature, TensorData};

use super::contributions::{CONTRIBUTIONS, ContributionsAsk};
use super::decode::{
    DecodeError, Payload, RequestedOutputs, TypedContents, WireInput, batch_rows, check_batch,
    decode_inputs, requested_outputs,
};
use super::encode::append_binary;
use super::inference::infer_parameter::ParameterChoice;
use super::inference::model_infer_response::InferOutputTensor;
use super::inference::{
    InferParameter, InferTensorContents, ModelInferRequest, ModelInferResponse,
};
use crate::front_door::{Codec, Inputs};
use crate::outcome::error::ApiError;
use crate::serving::{ExplainAsk, Explanation, ModelVersion, PredictError, TensorRequest};

/// One gRPC `ModelInfer` call.
#[derive(Debug)]
pub struct GrpcCodec {
    request: ModelInferRequest,
    /// Whether the inputs came as `raw_input_contents` (the outputs then go out raw too).
    raw: bool,
    id: String,
    contributions: ContributionsAsk,
}

impl GrpcCodec {
    pub fn new(request: ModelInferRequest) -> GrpcCodec {
        GrpcCodec {
            raw: !request.raw_input_contents.is_empty(),
            id: request.id.clone(),
            request,
            contributions: ContributionsAsk::default(),
        }
    }
}

impl Codec for GrpcCodec {
    type Answer = ModelInferResponse;

    fn decode(&mut self, model: &ModelVersion) -> Result<Inputs<'_>, PredictError> {
        let (mut request, requested) = decode(
            &self.request,
            &model.signature,
            model.contract.max_request_rows,
        )
        .map_err(|err| err.for_model(&model.name))?;
        request.outputs = self.contributions.engine_outputs(
            model,
            request.outputs,
            requested.contributions,
            requested.listed_any,
        );
        Ok(Inputs::Tensors(request))
    }

    fn release(&mut self) {
        self.request = ModelInferRequest::default();
    }

    fn explain(&self) -> Option<&ExplainAsk> {
        self.contributions.ask.as_ref()
    }

    fn attach(&mut self, explanation: Explanation) {
        self.contributions.explanation = Some(explanation);
    }

    fn encode(
        self,
        model: &ModelVersion,
        outputs: Vec<NamedTensor>,
        _rows: usize,
    ) -> Result<ModelInferResponse, ApiError> {
        let (outputs, described) = self.contributions.finish(outputs);
        let mut response = encode(&model.name, model.version, self.id, outputs, self.raw);
        if let Some(described) = described
            && let Some(output) = response
                .outputs
                .iter_mut()
                .find(|o| o.name == CONTRIBUTIONS)
        {
            output.parameters = described
                .into_iter()
                .map(|(key, value)| {
                    // A list is sent as its JSON text (a parameter holds no list).
                    let choice = match value {
                        serde_json::Value::String(text) => ParameterChoice::StringParam(text),
                        serde_json::Value::Number(n) if n.is_i64() => {
                            ParameterChoice::Int64Param(n.as_i64().unwrap_or_default())
                        }
                        serde_json::Value::Number(n) => {
                            ParameterChoice::DoubleParam(n.as_f64().unwrap_or_default())
                        }
                        other => ParameterChoice::StringParam(other.to_string()),
                    };
                    (
                        key,
                        InferParameter {
                            parameter_choice: Some(choice),
                        },
                    )
                })
                .collect();
        }
        Ok(response)
    }
}

/// Decodes and checks a request's tensors against `signature` and `max_rows`; also what it
/// asked of the outputs.
fn decode(
    request: &ModelInferRequest,
    signature: &Signature,
    max_rows: usize,
) -> Result<(TensorRequest, RequestedOutputs), DecodeError> {
    check_batch(
        request.inputs.iter().map(|input| input.shape.as_slice()),
        max_rows,
    )?;
    let mut violations = Violations::new();
    let raw = !request.raw_input_contents.is_empty();
    if raw && request.raw_input_contents.len() != request.inputs.len() {
        violations.push(Violation::new(
            vec!["raw_input_contents".into()],
            ViolationType::ShapeMismatch,
            format!(
                "raw_input_contents has {} entries for {} inputs; give one per input, in order, \
                 or none and use `contents`",
                request.raw_input_contents.len(),
                request.inputs.len()
            ),
        ));
        return Err(DecodeError::Invalid(violations));
    }
    let wire: Vec<WireInput<'_>> = request
        .inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let payload = match (raw, &input.contents) {
                (true, Some(_)) => Err(Violation::new(
                    vec!["inputs".into(), index.into(), "contents".into()],
                    ViolationType::ExtraForbidden,
                    format!(
                        "input `{}` has `contents` but the request sends raw_input_contents; \
                         use one or the other for every input",
                        clip(&input.name)
                    ),
                )),
                (true, None) => Ok(Payload::Binary {
                    bytes: &request.raw_input_contents[index],
                    loc: vec![LocSegment::from("raw_input_contents"), index.into()],
                }),
                (false, Some(contents)) => Ok(Payload::Typed(typed(contents))),
                (false, None) => Err(Violation::new(
                    vec!["inputs".into(), index.into(), "contents".into()],
                    ViolationType::Missing,
                    format!(
                        "input `{}` has no `contents` and the request no raw_input_contents",
                        clip(&input.name)
                    ),
                )),
            };
            WireInput {
                name: &input.name,
                shape: &input.shape,
                datatype: &input.datatype,
                payload,
            }
        })
        .collect();
    let inputs = decode_inputs(&wire, signature, &mut violations);
    let mut outputs = requested_outputs(
        request.outputs.iter().map(|output| output.name.as_str()),
        |index, key| {
            let value = request.outputs[index].parameters.get(key)?;
            Some(match &value.parameter_choice {
                Some(ParameterChoice::StringParam(text)) => Some(text.clone()),
                _ => None,
            })
        },
        signature,
        &mut violations,
    );
    let rows = batch_rows(&inputs, &mut violations);
    if !violations.is_empty() {
        return Err(DecodeError::Invalid(violations));
    }
    let names = std::mem::take(&mut outputs.names);
    Ok((
        TensorRequest {
            inputs,
            outputs: names,
            rows,
        },
        outputs,
    ))
}

fn typed(contents: &InferTensorContents) -> TypedContents<'_> {
    TypedContents {
        bool_contents: &contents.bool_contents,
        int_contents: &contents.int_contents,
        int64_contents: &contents.int64_contents,
        uint_contents: &contents.uint_contents,
        uint64_contents: &contents.uint64_contents,
        fp32_contents: &contents.fp32_contents,
        fp64_contents: &contents.fp64_contents,
        bytes_contents: contents.bytes_contents.iter().map(Bytes::as_ref).collect(),
    }
}

/// The answer: every output named, typed and shaped; its elements in `raw_output_contents`
/// (the binary layout, one entry per output) when `raw`, else in typed `contents`.
fn encode(
    model_name: &str,
    model_version: u64,
    id: String,
    outputs: Vec<NamedTensor>,
    raw: bool,
) -> ModelInferResponse {
    let mut response = ModelInferResponse {
        model_name: model_name.to_owned(),
        model_version: model_version.to_string(),
        id,
        ..ModelInferResponse::default()
    };
    for output in outputs {
        let tensor = output.tensor;
        let datatype = tensor.data_type().protocol_name().to_owned();
        let shape = tensor.shape.iter().map(|&d| d as i64).collect();
        let contents = if raw {
            let mut bytes = Vec::new();
            append_binary(&tensor.data, &mut bytes);
            response.raw_output_contents.push(Bytes::from(bytes));
            None
        } else {
            Some(contents_of(tensor.data))
        };
        response.outputs.push(InferOutputTensor {
            name: output.name,
            datatype,
            shape,
            parameters: Default::default(),
            contents,
        });
    }
    response
}

/// Tensor data in the `contents` field its datatype belongs in (narrow integers widened).
fn contents_of(data: TensorData) -> InferTensorContents {
    let mut contents = InferTensorContents::default();
    match data {
        TensorData::Bool(v) => contents.bool_contents = v,
        TensorData::I8(v) => contents.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::I16(v) => contents.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::I32(v) => contents.int_contents = v,
        TensorData::I64(v) => contents.int64_contents = v,
        TensorData::U8(v) => contents.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::U16(v) => contents.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::U32(v) => contents.uint_contents = v,
        TensorData::U64(v) => contents.uint64_contents = v,
        TensorData::F32(v) => contents.fp32_contents = v,
        TensorData::F64(v) => contents.fp64_contents = v,
        TensorData::String(v) => {
            contents.bytes_contents = v.into_iter().map(Bytes::from).collect();
        }
    }
    contents
}

#[cfg(test)]
mod tests {
    use super::super::inference::model_infer_request::InferInputTensor;
    use super::*;
    use warden_runtime::{DataType, TensorSpec};

    fn signature() -> Signature {
        Signature {
            inputs: vec![TensorSpec {
                name: "x".into(),
                data_type: DataType::F32,
                shape: vec![-1, 2],
            }],
            outputs: vec![TensorSpec {
                name: "y".into(),
                data_type: DataType::I64,
                shape: vec![-1],
            }],
        }
    }

    fn input(contents: Option<InferTensorContents>) -> InferInputTensor {
        InferInputTensor {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![2, 2],
            parameters: Default::default(),
            contents,
        }
    }

    fn violations(
        result: Result<(TensorRequest, RequestedOutputs), DecodeError>,
    ) -> Vec<(String, String)> {
        match result {
            Err(DecodeError::Invalid(violations)) => violations
                .listed()
                .iter()
                .map(|v| (format!("{:?}", v.loc), v.msg.clone()))
                .collect(),
            other => panic!("expected violations, got {other:?}"),
        }
    }

    #[test]
    fn typed_and_raw_contents_decode_to_the_same_tensor() {
        let values = [1.5f32, -2.0, 0.25, 4.0];
        let typed = ModelInferRequest {
            inputs: vec![input(Some(InferTensorContents {
                fp32_contents: values.to_vec(),
                ..Default::default()
            }))],
            ..Default::default()
        };
        let raw = ModelInferRequest {
            inputs: vec![input(None)],
            raw_input_contents: vec![Bytes::from(
                values
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>(),
            )],
            ..Default::default()
        };
        let typed = decode(&typed, &signature(), 64).unwrap().0;
        let raw = decode(&raw, &signature(), 64).unwrap().0;
        assert_eq!(typed.inputs, raw.inputs);
        assert_eq!(typed.rows, 2);
        assert_eq!(
            typed.inputs[0].tensor.data,
            TensorData::F32(values.to_vec())
        );
    }

    #[test]
    fn a_wrong_field_a_short_list_and_nan_are_each_named() {
        let wrong_field = ModelInferRequest {
            inputs: vec![input(Some(InferTensorContents {
                int64_contents: vec![1, 2, 3, 4],
                ..Default::default()
            }))],
            ..Default::default()
        };
        assert_eq!(
            violations(decode(&wrong_field, &signature(), 64)),
            vec![(
                r#"[Key("inputs"), Index(0), Key("contents")]"#.to_owned(),
                "a FP32 input's elements go in `fp32_contents`; this one fills int64_contents"
                    .to_owned()
            )]
        );
        let short = ModelInferRequest {
            inputs: vec![input(Some(InferTensorContents {
                fp32_contents: vec![1.0, 2.0, 3.0],
                ..Default::default()
            }))],
            ..Default::default()
        };
        assert_eq!(
            violations(decode(&short, &signature(), 64))[0].1,
            "shape holds 4 elements but `fp32_contents` has 3"
        );
        // NaN is a missing value (the contract gate decides whether a feature takes one);
        // infinity is never a value.
        let with = |value: f32| ModelInferRequest {
            inputs: vec![input(Some(InferTensorContents {
                fp32_contents: vec![1.0, value, 3.0, 4.0],
                ..Default::default()
            }))],
            ..Default::default()
        };
        assert!(decode(&with(f32::NAN), &signature(), 64).is_ok());
        assert_eq!(
            violations(decode(&with(f32::INFINITY), &signature(), 64)),
            vec![(
                r#"[Key("inputs"), Index(0), Key("contents"), Key("fp32_contents"), Index(1)]"#
                    .to_owned(),
                "expected a finite number for FP32, got inf".to_owned()
            )]
        );
    }

    #[test]
    fn raw_contents_must_be_one_per_input_and_the_batch_is_bounded() {
        let missing = ModelInferRequest {
            inputs: vec![input(None)],
            ..Default::default()
        };
        assert_eq!(
            violations(decode(&missing, &signature(), 64))[0].1,
            "input `x` has no `contents` and the request no raw_input_contents"
        );
        let two_raw = ModelInferRequest {
            inputs: vec![input(None)],
            raw_input_contents: vec![Bytes::new(), Bytes::new()],
            ..Default::default()
        };
        assert!(
            violations(decode(&two_raw, &signature(), 64))[0]
                .1
                .starts_with("raw_input_contents has 2 entries for 1 inputs")
        );
        assert!(matches!(
            decode(&missing, &signature(), 1),
            Err(DecodeError::BatchTooLarge { rows: 2, max: 1 })
        ));
    }

    #[test]
    fn outputs_go_raw_or_typed_as_the_request_came() {
        let outputs = || {
            vec![NamedTensor {
                name: "y".into(),
                tensor: warden_runtime::Tensor::new(vec![2], TensorData::I64(vec![7, -1])).unwrap(),
            }]
        };
        let raw = encode("m", 3, "id-1".into(), outputs(), true);
        assert_eq!(raw.model_version, "3");
        assert_eq!(raw.outputs[0].datatype, "INT64");
        assert_eq!(raw.outputs[0].shape, vec![2]);
        assert!(raw.outputs[0].contents.is_none());
        let expected: Vec<u8> = [7i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(raw.raw_output_contents, vec![Bytes::from(expected)]);
        let typed = encode("m", 3, String::new(), outputs(), false);
        assert!(typed.raw_output_contents.is_empty());
        assert_eq!(
            typed.outputs[0].contents.as_ref().unwrap().int64_contents,
            vec![7, -1]
        );
    }
}
