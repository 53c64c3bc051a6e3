//! The Open Inference Protocol (KServe V2) REST wire format: inference requests decoded into
//! graph tensors and checked against the graph's signature, and responses encoded.
//!
//! Decoding never coerces: a tensor's `datatype` must be the graph's, every element must be a
//! JSON value of that type and in its range, and the shape must match both the data and the
//! graph. Every problem is reported with its location, so a client sees all of them at once.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use warden_contract::{LocSegment, Violation, ViolationType};
use warden_runtime::{DataType, NamedTensor, Signature, Tensor, TensorData, TensorSpec};

/// Bad elements reported per input before the rest are summarised, so a huge tensor of
/// garbage yields a readable answer.
const MAX_ELEMENT_VIOLATIONS: usize = 10;

#[derive(Debug, Deserialize)]
struct RequestBody {
    id: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    parameters: Option<Map<String, Value>>,
    inputs: Vec<RequestInput>,
    outputs: Option<Vec<RequestOutput>>,
}

#[derive(Debug, Deserialize)]
struct RequestInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    #[allow(dead_code)]
    parameters: Option<Map<String, Value>>,
    data: Value,
}

#[derive(Debug, Deserialize)]
struct RequestOutput {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    parameters: Option<Map<String, Value>>,
}

/// A request decoded and checked against the signature.
#[derive(Debug)]
pub struct InferRequest {
    pub id: Option<String>,
    pub inputs: Vec<NamedTensor>,
    /// Requested outputs in order; empty means every graph output.
    pub outputs: Vec<String>,
    /// The batch dimension (first dim) shared by the inputs.
    pub rows: usize,
}

/// Decodes a V2 inference request body and checks it against `signature`.
pub fn decode_request(body: Value, signature: &Signature) -> Result<InferRequest, Vec<Violation>> {
    let request: RequestBody = serde_json::from_value(body).map_err(|err| {
        vec![Violation::new(
            vec![],
            ViolationType::TypeError,
            format!("the body does not follow the inference protocol: {err}"),
        )]
    })?;
    let mut violations = Vec::new();
    let mut inputs = Vec::new();
    for (index, input) in request.inputs.iter().enumerate() {
        let loc = |key: &str| vec![LocSegment::from("inputs"), index.into(), key.into()];
        if request.inputs[..index]
            .iter()
            .any(|earlier| earlier.name == input.name)
        {
            violations.push(Violation::new(
                loc("name"),
                ViolationType::ExtraForbidden,
                format!("input `{}` is given more than once", input.name),
            ));
            continue;
        }
        let Some(spec) = signature.input(&input.name) else {
            violations.push(Violation::new(
                loc("name"),
                ViolationType::ExtraForbidden,
                format!(
                    "unknown input `{}`; the model's inputs are: {}",
                    input.name,
                    names(&signature.inputs)
                ),
            ));
            continue;
        };
        match decode_input(input, spec, index) {
            Ok(tensor) => inputs.push(NamedTensor {
                name: input.name.clone(),
                tensor,
            }),
            Err(mut problems) => violations.append(&mut problems),
        }
    }
    for spec in &signature.inputs {
        if !request.inputs.iter().any(|input| input.name == spec.name) {
            violations.push(Violation::new(
                vec!["inputs".into()],
                ViolationType::Missing,
                format!(
                    "input `{}` is required ({} {:?})",
                    spec.name, spec.data_type, spec.shape
                ),
            ));
        }
    }
    let mut outputs = Vec::new();
    for (index, output) in request.outputs.iter().flatten().enumerate() {
        if signature.output(&output.name).is_none() {
            violations.push(Violation::new(
                vec!["outputs".into(), index.into(), "name".into()],
                ViolationType::ExtraForbidden,
                format!(
                    "unknown output `{}`; the model's outputs are: {}",
                    output.name,
                    names(&signature.outputs)
                ),
            ));
        } else if !outputs.contains(&output.name) {
            outputs.push(output.name.clone());
        }
    }
    let batch_sizes: Vec<usize> = inputs
        .iter()
        .filter_map(|input| input.tensor.shape.first().copied())
        .collect();
    if violations.is_empty()
        && let Some(&first) = batch_sizes.first()
        && batch_sizes.iter().any(|&rows| rows != first)
    {
        violations.push(Violation::new(
            vec!["inputs".into()],
            ViolationType::ShapeMismatch,
            format!("every input must have the same first (batch) dimension; got {batch_sizes:?}"),
        ));
    }
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(InferRequest {
        id: request.id,
        inputs,
        outputs,
        rows: batch_sizes.first().copied().unwrap_or(1),
    })
}

fn names(specs: &[TensorSpec]) -> String {
    specs
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn decode_input(
    input: &RequestInput,
    spec: &TensorSpec,
    index: usize,
) -> Result<Tensor, Vec<Violation>> {
    let loc = |key: &str| vec![LocSegment::from("inputs"), index.into(), key.into()];
    let Some(dtype) = DataType::from_protocol_name(&input.datatype) else {
        return Err(vec![Violation::new(
            loc("datatype"),
            ViolationType::DatatypeMismatch,
            format!(
                "unknown datatype `{}`; input `{}` is {}",
                input.datatype, input.name, spec.data_type
            ),
        )]);
    };
    if dtype != spec.data_type {
        return Err(vec![Violation::new(
            loc("datatype"),
            ViolationType::DatatypeMismatch,
            format!(
                "input `{}` is {} in the model; got {dtype}",
                input.name, spec.data_type
            ),
        )]);
    }
    let Some(shape) = input
        .shape
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<Vec<usize>>>()
    else {
        return Err(vec![Violation::new(
            loc("shape"),
            ViolationType::ShapeMismatch,
            format!("shape {:?} has a negative dimension", input.shape),
        )]);
    };
    let mut elements = Vec::new();
    flatten(&input.data, &mut elements);
    let expected: usize = shape.iter().product();
    if expected != elements.len() {
        return Err(vec![Violation::new(
            loc("shape"),
            ViolationType::ShapeMismatch,
            format!(
                "shape {shape:?} holds {expected} elements but `data` has {}",
                elements.len()
            ),
        )]);
    }
    if !spec.accepts_shape(&shape) {
        return Err(vec![Violation::new(
            loc("shape"),
            ViolationType::ShapeMismatch,
            format!(
                "input `{}` has shape {:?} in the model (-1 = any); got {shape:?}",
                input.name, spec.shape
            ),
        )]);
    }
    let data = decode_elements(dtype, &elements, index)?;
    Ok(Tensor { shape, data })
}

fn flatten<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| flatten(item, out)),
        other => out.push(other),
    }
}

fn decode_elements(
    dtype: DataType,
    elements: &[&Value],
    index: usize,
) -> Result<TensorData, Vec<Violation>> {
    let mut violations = Vec::new();
    let mut bad = 0usize;
    let mut note = |position: usize, value: &Value, expected: &str| {
        bad += 1;
        if bad <= MAX_ELEMENT_VIOLATIONS {
            violations.push(Violation::new(
                vec![
                    "inputs".into(),
                    index.into(),
                    "data".into(),
                    position.into(),
                ],
                ViolationType::TypeError,
                format!("expected {expected} for {dtype}, got {value}"),
            ));
        }
    };
    macro_rules! collect {
        ($variant:ident, $expected:expr, $convert:expr) => {{
            let mut values = Vec::with_capacity(elements.len());
            for (position, value) in elements.iter().enumerate() {
                match $convert(*value) {
                    Some(x) => values.push(x),
                    None => note(position, value, $expected),
                }
            }
            TensorData::$variant(values)
        }};
    }
    fn int<T: TryFrom<i64> + TryFrom<u64>>(value: &Value) -> Option<T> {
        match value {
            Value::Number(n) => n
                .as_i64()
                .and_then(|x| T::try_from(x).ok())
                .or_else(|| n.as_u64().and_then(|x| T::try_from(x).ok())),
            _ => None,
        }
    }
    let data = match dtype {
        DataType::Bool => collect!(Bool, "a boolean", |v: &Value| v.as_bool()),
        DataType::U8 => collect!(U8, "an integer in range", int::<u8>),
        DataType::U16 => collect!(U16, "an integer in range", int::<u16>),
        DataType::U32 => collect!(U32, "an integer in range", int::<u32>),
        DataType::U64 => collect!(U64, "an integer in range", int::<u64>),
        DataType::I8 => collect!(I8, "an integer in range", int::<i8>),
        DataType::I16 => collect!(I16, "an integer in range", int::<i16>),
        DataType::I32 => collect!(I32, "an integer in range", int::<i32>),
        DataType::I64 => collect!(I64, "an integer in range", int::<i64>),
        DataType::F32 => collect!(F32, "a number", |v: &Value| v
            .as_f64()
            .map(|x| x as f32)
            .filter(|x| x.is_finite())),
        DataType::F64 => collect!(F64, "a number", |v: &Value| v.as_f64()),
        DataType::String => collect!(String, "a string", |v: &Value| v
            .as_str()
            .map(str::to_owned)),
    };
    if bad > MAX_ELEMENT_VIOLATIONS {
        violations.push(Violation::new(
            vec!["inputs".into(), index.into(), "data".into()],
            ViolationType::TypeError,
            format!(
                "{} more elements are not valid {dtype}",
                bad - MAX_ELEMENT_VIOLATIONS
            ),
        ));
    }
    if violations.is_empty() {
        Ok(data)
    } else {
        Err(violations)
    }
}

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

/// One output tensor on the wire.
#[derive(Debug, Serialize)]
pub struct ResponseOutput<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [usize],
    data: FlatData<'a>,
}

/// An inference response on the wire.
#[derive(Debug, Serialize)]
pub struct InferResponse<'a> {
    pub model_name: &'a str,
    pub model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<ResponseOutput<'a>>,
}

/// Encodes outputs for the wire.
pub fn response_outputs(outputs: &[NamedTensor]) -> Vec<ResponseOutput<'_>> {
    outputs
        .iter()
        .map(|output| ResponseOutput {
            name: &output.name,
            datatype: output.tensor.data_type().protocol_name(),
            shape: &output.tensor.shape,
            data: FlatData(&output.tensor.data),
        })
        .collect()
}

/// One tensor's metadata on the wire.
#[derive(Debug, Serialize)]
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn signature() -> Signature {
        let spec = |name: &str, data_type, shape: &[i64]| TensorSpec {
            name: name.into(),
            data_type,
            shape: shape.to_vec(),
        };
        Signature {
            inputs: vec![
                spec("age", DataType::F32, &[-1, 1]),
                spec("country", DataType::String, &[-1, 1]),
            ],
            outputs: vec![spec("label", DataType::String, &[-1])],
        }
    }

    #[test]
    fn nested_and_flat_data_decode_alike() {
        let body = json!({"id": "r1", "inputs": [
            {"name": "age", "shape": [2, 1], "datatype": "FP32", "data": [[42], [30.5]]},
            {"name": "country", "shape": [2, 1], "datatype": "BYTES", "data": ["US", "DE"]}
        ], "outputs": [{"name": "label", "parameters": {"binary_data": false}}]});
        let request = decode_request(body, &signature()).unwrap();
        assert_eq!(request.id.as_deref(), Some("r1"));
        assert_eq!(request.rows, 2);
        assert_eq!(
            request.inputs[0].tensor.data,
            TensorData::F32(vec![42.0, 30.5])
        );
        assert_eq!(request.outputs, vec!["label".to_owned()]);
    }

    #[test]
    fn every_protocol_violation_is_reported() {
        let body = json!({"inputs": [
            {"name": "age", "shape": [2, 1], "datatype": "FP64", "data": [1, 2]},
            {"name": "country", "shape": [3, 1], "datatype": "BYTES", "data": ["US", "DE"]},
            {"name": "colour", "shape": [1], "datatype": "BYTES", "data": ["red"]}
        ], "outputs": [{"name": "nope"}]});
        let violations = decode_request(body, &signature()).unwrap_err();
        let kinds: Vec<_> = violations.iter().map(|v| v.kind).collect();
        assert_eq!(
            kinds,
            vec![
                ViolationType::DatatypeMismatch,
                ViolationType::ShapeMismatch,
                ViolationType::ExtraForbidden,
                ViolationType::ExtraForbidden,
            ]
        );
        assert_eq!(
            violations[0].msg,
            "input `age` is FP32 in the model; got FP64"
        );
    }

    #[test]
    fn elements_of_the_wrong_json_type_are_located() {
        let body = json!({"inputs": [
            {"name": "age", "shape": [1, 1], "datatype": "FP32", "data": ["42"]},
            {"name": "country", "shape": [1, 1], "datatype": "BYTES", "data": [3]}
        ]});
        let violations = decode_request(body, &signature()).unwrap_err();
        assert_eq!(
            serde_json::to_value(&violations).unwrap(),
            json!([
                {"loc": ["inputs", 0, "data", 0], "msg": "expected a number for FP32, got \"42\"", "type": "type_error"},
                {"loc": ["inputs", 1, "data", 0], "msg": "expected a string for BYTES, got 3", "type": "type_error"}
            ])
        );
    }

    #[test]
    fn a_missing_input_and_a_graph_shape_mismatch_are_reported() {
        let body = json!({"inputs": [
            {"name": "age", "shape": [2], "datatype": "FP32", "data": [1, 2]}
        ]});
        let violations = decode_request(body, &signature()).unwrap_err();
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert_eq!(violations[0].kind, ViolationType::ShapeMismatch);
        assert_eq!(violations[1].kind, ViolationType::Missing);
    }
}
