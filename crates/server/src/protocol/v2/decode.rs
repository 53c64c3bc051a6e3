//! Decoding a KServe V2 inference request: the JSON header and, with the binary tensor
//! extension, the bytes after it, into named tensors checked against the graph's signature.
//!
//! Decoding never coerces: a tensor's `datatype` must be the graph's, every element must be a
//! JSON value of that type and in its range, and the shape must match both the data and the
//! graph. Every problem is reported with its location, so a client sees all of them at once.

use serde::Deserialize;
use serde_json::{Map, Value};
use warden_contract::{
    LocSegment, Violation, ViolationType, Violations, clip, is_bare_token, list_names,
    non_finite_spelling,
};
use warden_runtime::{DataType, NamedTensor, Signature, Tensor, TensorData, TensorSpec};

/// Bad elements reported per input before the rest are summarised, so a huge tensor of
/// garbage yields a readable answer.
const MAX_ELEMENT_VIOLATIONS: usize = 10;

/// Why a request cannot be run.
#[derive(Debug)]
pub enum DecodeError {
    /// It breaks the protocol or the graph's signature.
    Invalid(Violations),
    /// An input's first (batch) dimension is over the model's `max_batch_size`; found before
    /// any element is looked at, so a huge tensor costs nothing but its parse.
    BatchTooLarge { rows: usize, max: usize },
}

impl From<Violations> for DecodeError {
    fn from(violations: Violations) -> DecodeError {
        DecodeError::Invalid(violations)
    }
}

/// A KServe V2 inference request (its JSON part).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = InferRequest, example = json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}))]
pub(crate) struct RequestBody {
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    inputs: Vec<RequestInput>,
    outputs: Option<Vec<RequestOutput>>,
}

/// One input tensor: `data` flat or nested in row-major order, or, with the binary tensor
/// extension, `parameters.binary_data_size` bytes after the JSON part.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = InferRequestInput)]
pub(crate) struct RequestInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    /// Absent when the data travels as binary after the JSON header.
    data: Option<Value>,
}

impl RequestInput {
    /// `parameters.binary_data_size`, when the data travels as binary.
    fn binary_data_size(&self) -> Option<Result<usize, ()>> {
        let size = self.parameters.as_ref()?.get("binary_data_size")?;
        Some(
            size.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(()),
        )
    }
}

/// An output the client asks for (`parameters.binary_data` for binary).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = InferRequestOutput)]
pub(crate) struct RequestOutput {
    name: String,
    #[serde(default)]
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
    /// Which outputs the client asked to receive as binary (the binary tensor extension).
    pub binary_outputs: BinaryOutputs,
}

/// The client's choice of binary or JSON per output: an output's own `binary_data` parameter,
/// else the request's `binary_data_output`, else JSON.
#[derive(Debug, Clone, Default)]
pub struct BinaryOutputs {
    default: bool,
    per_output: Vec<(String, bool)>,
}

impl BinaryOutputs {
    /// Whether output `name` goes out as binary.
    pub fn wants(&self, name: &str) -> bool {
        self.per_output
            .iter()
            .find(|(output, _)| output == name)
            .map_or(self.default, |(_, binary)| *binary)
    }
}

fn flag(parameters: Option<&Map<String, Value>>, key: &str) -> Option<bool> {
    parameters?.get(key)?.as_bool()
}

/// Decodes a V2 inference request (its JSON header and the binary tensor data after it, empty
/// when there is none) and checks it against `signature` and `max_rows`, the model's
/// `max_batch_size`.
pub fn decode_request(
    body: Value,
    binary: &[u8],
    signature: &Signature,
    max_rows: usize,
) -> Result<InferRequest, DecodeError> {
    let request: RequestBody = serde_json::from_value(body).map_err(|err| {
        Violations::from(Violation::new(
            vec![],
            ViolationType::TypeError,
            format!("the body does not follow the inference protocol: {err}"),
        ))
    })?;
    if let Some(rows) = request
        .inputs
        .iter()
        .filter_map(|input| input.shape.first())
        .filter_map(|&rows| usize::try_from(rows).ok())
        .find(|&rows| rows > max_rows)
    {
        return Err(DecodeError::BatchTooLarge {
            rows,
            max: max_rows,
        });
    }
    let mut violations = Violations::new();
    let mut inputs = Vec::new();
    let mut binary_offset = 0usize;
    for (index, input) in request.inputs.iter().enumerate() {
        let loc = |key: &str| vec![LocSegment::from("inputs"), index.into(), key.into()];
        // Binary chunks follow the inputs' order, so claim this input's bytes before anything
        // else can skip it.
        let payload = match (input.binary_data_size(), &input.data) {
            (None, Some(data)) => Payload::Json(data),
            (None, None) => {
                violations.push(Violation::new(
                    loc("data"),
                    ViolationType::Missing,
                    format!(
                        "input `{}` has neither `data` nor a binary_data_size",
                        clip(&input.name)
                    ),
                ));
                continue;
            }
            (Some(Err(())), _) => {
                violations.push(Violation::new(
                    vec![
                        "inputs".into(),
                        index.into(),
                        "parameters".into(),
                        "binary_data_size".into(),
                    ],
                    ViolationType::TypeError,
                    "binary_data_size must be a non-negative integer",
                ));
                continue;
            }
            (Some(Ok(size)), _) => {
                let end = binary_offset.saturating_add(size);
                let Some(bytes) = binary.get(binary_offset..end) else {
                    violations.push(Violation::new(
                        vec!["inputs".into(), index.into(), "parameters".into(), "binary_data_size".into()],
                        ViolationType::ShapeMismatch,
                        format!(
                            "input `{}` claims {size} bytes at offset {binary_offset}, but the binary data after the JSON header has {} bytes",
                            clip(&input.name),
                            binary.len()
                        ),
                    ));
                    continue;
                };
                binary_offset = end;
                Payload::Binary(bytes)
            }
        };
        if request.inputs[..index]
            .iter()
            .any(|earlier| earlier.name == input.name)
        {
            violations.push(Violation::new(
                loc("name"),
                ViolationType::ExtraForbidden,
                format!("input `{}` is given more than once", clip(&input.name)),
            ));
            continue;
        }
        let Some(spec) = signature.input(&input.name) else {
            violations.push(Violation::new(
                loc("name"),
                ViolationType::ExtraForbidden,
                format!(
                    "unknown input `{}`; the model's inputs are: {}",
                    clip(&input.name),
                    names(&signature.inputs)
                ),
            ));
            continue;
        };
        match decode_input(input, payload, spec, index) {
            Ok(tensor) => inputs.push(NamedTensor {
                name: input.name.clone(),
                tensor,
            }),
            Err(problems) => violations.append(problems),
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
                    clip(&output.name),
                    names(&signature.outputs)
                ),
            ));
        } else if !outputs.contains(&output.name) {
            outputs.push(output.name.clone());
        }
    }
    if violations.is_empty() && binary_offset != binary.len() {
        violations.push(Violation::new(
            vec!["inputs".into()],
            ViolationType::ShapeMismatch,
            format!(
                "{} bytes of binary data follow the JSON header but the inputs claim {binary_offset}",
                binary.len()
            ),
        ));
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
        return Err(violations.into());
    }
    let binary_outputs = BinaryOutputs {
        default: flag(request.parameters.as_ref(), "binary_data_output").unwrap_or(false),
        per_output: request
            .outputs
            .iter()
            .flatten()
            .filter_map(|o| Some((o.name.clone(), flag(o.parameters.as_ref(), "binary_data")?)))
            .collect(),
    };
    Ok(InferRequest {
        id: request.id,
        inputs,
        outputs,
        rows: batch_sizes.first().copied().unwrap_or(1),
        binary_outputs,
    })
}

fn names(specs: &[TensorSpec]) -> String {
    list_names(specs.iter().map(|s| s.name.as_str()))
}

/// Where an input's elements are.
enum Payload<'a> {
    Json(&'a Value),
    Binary(&'a [u8]),
}

fn decode_input(
    input: &RequestInput,
    payload: Payload<'_>,
    spec: &TensorSpec,
    index: usize,
) -> Result<Tensor, Violations> {
    let loc = |key: &str| vec![LocSegment::from("inputs"), index.into(), key.into()];
    let one = |loc: Vec<LocSegment>, kind: ViolationType, msg: String| {
        Err(Violations::from(Violation::new(loc, kind, msg)))
    };
    let Some(dtype) = DataType::from_protocol_name(&input.datatype) else {
        return one(
            loc("datatype"),
            ViolationType::DatatypeMismatch,
            format!(
                "unknown datatype `{}`; input `{}` is {}",
                clip(&input.datatype),
                input.name,
                spec.data_type
            ),
        );
    };
    if dtype != spec.data_type {
        return one(
            loc("datatype"),
            ViolationType::DatatypeMismatch,
            format!(
                "input `{}` is {} in the model; got {dtype}",
                input.name, spec.data_type
            ),
        );
    }
    let Some(shape) = input
        .shape
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<Vec<usize>>>()
    else {
        return one(
            loc("shape"),
            ViolationType::ShapeMismatch,
            format!(
                "shape {} has a negative dimension",
                clip(&format!("{:?}", input.shape))
            ),
        );
    };
    if shape.first() == Some(&0) {
        // As the row API refuses `"instances": []`: a request of no rows is a client's bug.
        return one(
            loc("shape"),
            ViolationType::ValueError,
            "expected at least one row; the first (batch) dimension is 0".to_owned(),
        );
    }
    if !spec.accepts_shape(&shape) {
        // Same rank, a different fixed row width: the client sends the wrong number of features.
        if let ([_, declared], [_, given]) = (spec.shape.as_slice(), shape.as_slice())
            && *declared >= 0
        {
            return one(
                loc("shape"),
                ViolationType::WidthMismatch,
                format!(
                    "input `{}` takes {declared} values per row; got {given}",
                    input.name
                ),
            );
        }
        return one(
            loc("shape"),
            ViolationType::ShapeMismatch,
            format!(
                "input `{}` has shape {:?} in the model (-1 = any); got {}",
                input.name,
                spec.shape,
                clip(&format!("{shape:?}"))
            ),
        );
    }
    let Some(expected) = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) else {
        return one(
            loc("shape"),
            ViolationType::ShapeMismatch,
            format!("shape {shape:?} holds more elements than can exist"),
        );
    };
    let data = match payload {
        Payload::Json(data) => {
            if is_nested(data) && !nesting_matches(data, &shape) {
                return one(
                    loc("data"),
                    ViolationType::ShapeMismatch,
                    format!(
                        "nested `data` must follow the shape {shape:?} level by level (or be one flat array)"
                    ),
                );
            }
            let mut elements = Vec::new();
            flatten(data, &mut elements);
            if expected != elements.len() {
                return one(
                    loc("shape"),
                    ViolationType::ShapeMismatch,
                    format!(
                        "shape {shape:?} holds {expected} elements but `data` has {}",
                        elements.len()
                    ),
                );
            }
            decode_elements(dtype, &elements, index)?
        }
        Payload::Binary(bytes) => decode_binary(dtype, bytes, expected).map_err(|msg| {
            Violations::from(Violation::new(
                loc("parameters"),
                ViolationType::ShapeMismatch,
                msg,
            ))
        })?,
    };
    Ok(Tensor { shape, data })
}

/// Decodes Triton's binary tensor layout: little-endian elements back to back; BOOL one byte
/// each; BYTES each a 4-byte little-endian length and then the bytes (which must be UTF-8).
fn decode_binary(dtype: DataType, bytes: &[u8], expected: usize) -> Result<TensorData, String> {
    fn fixed<const N: usize, T>(
        bytes: &[u8],
        expected: usize,
        dtype: DataType,
        convert: fn([u8; N]) -> T,
    ) -> Result<Vec<T>, String> {
        if expected.checked_mul(N) != Some(bytes.len()) {
            return Err(format!(
                "{expected} {dtype} elements take {expected}×{N} bytes; binary_data_size is {}",
                bytes.len()
            ));
        }
        Ok(bytes
            .chunks_exact(N)
            .map(|chunk| {
                let mut array = [0u8; N];
                array.copy_from_slice(chunk);
                convert(array)
            })
            .collect())
    }
    Ok(match dtype {
        DataType::Bool => TensorData::Bool(fixed::<1, _>(bytes, expected, dtype, |b| b[0] != 0)?),
        DataType::U8 => TensorData::U8(fixed(bytes, expected, dtype, u8::from_le_bytes)?),
        DataType::U16 => TensorData::U16(fixed(bytes, expected, dtype, u16::from_le_bytes)?),
        DataType::U32 => TensorData::U32(fixed(bytes, expected, dtype, u32::from_le_bytes)?),
        DataType::U64 => TensorData::U64(fixed(bytes, expected, dtype, u64::from_le_bytes)?),
        DataType::I8 => TensorData::I8(fixed(bytes, expected, dtype, i8::from_le_bytes)?),
        DataType::I16 => TensorData::I16(fixed(bytes, expected, dtype, i16::from_le_bytes)?),
        DataType::I32 => TensorData::I32(fixed(bytes, expected, dtype, i32::from_le_bytes)?),
        DataType::I64 => TensorData::I64(fixed(bytes, expected, dtype, i64::from_le_bytes)?),
        DataType::F32 => {
            let values = fixed(bytes, expected, dtype, f32::from_le_bytes)?;
            if let Some(position) = values.iter().position(|x| !x.is_finite()) {
                return Err(format!(
                    "element {position} is {}, not a finite number",
                    values[position]
                ));
            }
            TensorData::F32(values)
        }
        DataType::F64 => {
            let values = fixed(bytes, expected, dtype, f64::from_le_bytes)?;
            if let Some(position) = values.iter().position(|x| !x.is_finite()) {
                return Err(format!(
                    "element {position} is {}, not a finite number",
                    values[position]
                ));
            }
            TensorData::F64(values)
        }
        DataType::String => {
            let mut strings = Vec::with_capacity(expected);
            let mut rest = bytes;
            while !rest.is_empty() {
                let (length, tail) = rest
                    .split_first_chunk::<4>()
                    .ok_or("a BYTES element is cut short before its 4-byte length")?;
                let length = u32::from_le_bytes(*length) as usize;
                let value = tail
                    .get(..length)
                    .ok_or("a BYTES element is shorter than its length prefix says")?;
                let text = std::str::from_utf8(value)
                    .map_err(|_| format!("BYTES element {} is not UTF-8 text", strings.len()))?;
                strings.push(text.to_owned());
                rest = &tail[length..];
            }
            if strings.len() != expected {
                return Err(format!(
                    "shape holds {expected} elements but the binary data has {}",
                    strings.len()
                ));
            }
            TensorData::String(strings)
        }
    })
}

/// Whether `data` nests arrays (rather than being one flat array of elements).
fn is_nested(data: &Value) -> bool {
    matches!(data, Value::Array(items) if items.iter().any(Value::is_array))
}

/// Whether nested `data` has exactly `shape`'s structure: `shape[0]` arrays of `shape[1]` ...
/// (JSON nesting is bounded by the parser's recursion limit, so this recursion is too).
fn nesting_matches(data: &Value, shape: &[usize]) -> bool {
    match (data, shape.split_first()) {
        (Value::Array(items), Some((&len, rest))) => {
            items.len() == len && items.iter().all(|item| nesting_matches(item, rest))
        }
        (Value::Array(_), None) => false,
        (_, rest) => rest.is_none(),
    }
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
) -> Result<TensorData, Violations> {
    let mut violations = Violations::new();
    let mut bad = 0usize;
    let mut note = |position: usize, value: &Value, expected: &str| {
        bad += 1;
        if bad <= MAX_ELEMENT_VIOLATIONS {
            let spelling = value.as_str().and_then(non_finite_spelling);
            let (kind, msg) = match spelling {
                Some(spelling) if dtype.is_float() => (
                    ViolationType::ValueError,
                    format!("expected a finite number for {dtype}, got {spelling}"),
                ),
                _ => {
                    let shown = match value {
                        Value::String(text) if is_bare_token(text) => text[1..].to_owned(),
                        Value::String(text) => Value::String(clip(text).into_owned()).to_string(),
                        Value::Array(_) | Value::Object(_) => "a JSON container".to_owned(),
                        _ => value.to_string(),
                    };
                    (
                        ViolationType::TypeError,
                        format!("expected {expected} for {dtype}, got {shown}"),
                    )
                }
            };
            violations.push(Violation::new(
                vec![
                    "inputs".into(),
                    index.into(),
                    "data".into(),
                    position.into(),
                ],
                kind,
                msg,
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
            .filter(|text| !is_bare_token(text))
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::encode::append_binary;
    use super::*;

    fn invalid(result: Result<InferRequest, DecodeError>) -> Violations {
        match result {
            Err(DecodeError::Invalid(violations)) => violations,
            other => panic!("expected violations, got {other:?}"),
        }
    }

    #[test]
    fn the_batch_size_is_checked_before_any_element() {
        let body = json!({"inputs": [
            {"name": "age", "shape": [1_000_000, 1], "datatype": "FP32", "data": [1, 2, 3]},
            {"name": "country", "shape": [1, 1], "datatype": "BYTES", "data": ["US"]}
        ]});
        match decode_request(body, &[], &signature(), 64) {
            Err(DecodeError::BatchTooLarge { rows, max }) => {
                assert_eq!((rows, max), (1_000_000, 64))
            }
            other => panic!("expected batch_too_large, got {other:?}"),
        }
    }

    #[test]
    fn nesting_must_follow_the_shape_and_zero_rows_are_refused() {
        let body = json!({"inputs": [
            {"name": "age", "shape": [2, 1], "datatype": "FP32", "data": [[1, 2], []]},
            {"name": "country", "shape": [0, 1], "datatype": "BYTES", "data": []}
        ]});
        let violations = invalid(decode_request(body, &[], &signature(), 64));
        let found: Vec<_> = violations
            .listed()
            .iter()
            .map(|v| (serde_json::to_value(&v.loc).unwrap(), v.kind))
            .collect();
        assert_eq!(
            found,
            vec![
                (json!(["inputs", 0, "data"]), ViolationType::ShapeMismatch),
                (json!(["inputs", 1, "shape"]), ViolationType::ValueError),
            ]
        );
        assert!(nesting_matches(&json!([[1], [2]]), &[2, 1]));
        assert!(!nesting_matches(&json!([[1, 2], [3]]), &[2, 2]));
        assert!(!nesting_matches(&json!([[1], 2]), &[2, 1]));
    }

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
        let request = decode_request(body, &[], &signature(), 64).unwrap();
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
        let violations = invalid(decode_request(body, &[], &signature(), 64));
        let kinds: Vec<_> = violations.listed().iter().map(|v| v.kind).collect();
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
            violations.listed()[0].msg,
            "input `age` is FP32 in the model; got FP64"
        );
    }

    #[test]
    fn elements_of_the_wrong_json_type_are_located() {
        let body = json!({"inputs": [
            {"name": "age", "shape": [1, 1], "datatype": "FP32", "data": ["42"]},
            {"name": "country", "shape": [1, 1], "datatype": "BYTES", "data": [3]}
        ]});
        let violations = invalid(decode_request(body, &[], &signature(), 64));
        assert_eq!(
            serde_json::to_value(violations.listed()).unwrap(),
            json!([
                {"loc": ["inputs", 0, "data", 0], "msg": "expected a number for FP32, got \"42\"", "type": "type_error"},
                {"loc": ["inputs", 1, "data", 0], "msg": "expected a string for BYTES, got 3", "type": "type_error"}
            ])
        );
    }

    #[test]
    fn binary_tensor_data_round_trips() {
        let mut binary = Vec::new();
        append_binary(&TensorData::F32(vec![42.0, 30.5]), &mut binary);
        let floats = binary.len();
        append_binary(
            &TensorData::String(vec!["US".into(), "DE".into()]),
            &mut binary,
        );
        let body = json!({"inputs": [
            {"name": "age", "shape": [2, 1], "datatype": "FP32", "parameters": {"binary_data_size": floats}},
            {"name": "country", "shape": [2, 1], "datatype": "BYTES", "parameters": {"binary_data_size": binary.len() - floats}}
        ], "parameters": {"binary_data_output": true}});
        let request = decode_request(body, &binary, &signature(), 64).unwrap();
        assert_eq!(
            request.inputs[0].tensor.data,
            TensorData::F32(vec![42.0, 30.5])
        );
        assert_eq!(
            request.inputs[1].tensor.data,
            TensorData::String(vec!["US".into(), "DE".into()])
        );
        assert!(request.binary_outputs.wants("label"));
    }

    #[test]
    fn binary_data_that_does_not_add_up_is_rejected() {
        let body = json!({"inputs": [
            {"name": "age", "shape": [2, 1], "datatype": "FP32", "parameters": {"binary_data_size": 8}},
            {"name": "country", "shape": [1, 1], "datatype": "BYTES", "data": ["US"]}
        ]});
        let short = invalid(decode_request(body.clone(), &[0; 4], &signature(), 64));
        assert_eq!(
            short.listed()[0].kind,
            ViolationType::ShapeMismatch,
            "{short:?}"
        );
        let long = invalid(decode_request(body, &[0; 12], &signature(), 64));
        assert!(
            long.listed()[0].msg.contains("12 bytes of binary data"),
            "{long:?}"
        );
    }

    #[test]
    fn a_missing_input_and_a_graph_shape_mismatch_are_reported() {
        let body = json!({"inputs": [
            {"name": "age", "shape": [2], "datatype": "FP32", "data": [1, 2]}
        ]});
        let violations = invalid(decode_request(body, &[], &signature(), 64));
        assert_eq!(violations.total(), 2, "{violations:?}");
        assert_eq!(violations.listed()[0].kind, ViolationType::ShapeMismatch);
        assert_eq!(violations.listed()[1].kind, ViolationType::Missing);
    }
}
