//! Decoding a KServe V2 inference request: the JSON header and, with the binary tensor
//! extension, the bytes after it, into named tensors checked against the graph's signature.
//!
//! Decoding never coerces: a tensor's `datatype` must be the graph's, every element must be a
//! JSON value of that type and in its range, and the shape must match both the data and the
//! graph. Every problem is reported with its location, so a client sees all of them at once.
//!
//! A float tensor's missing value is NaN: `null` in JSON `data` (JSON has no NaN), NaN in binary
//! data and gRPC contents, as Triton's clients send it. Infinity is refused here; whether a
//! missing value may be sent at all is the contract gate's to decide (nullable features only).

use super::contributions::CONTRIBUTIONS;
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use warden_contract::{
    LocSegment, Violation, ViolationType, Violations, clip, is_bare_token, list_names,
    non_finite_spelling,
};
use warden_runtime::{DataType, NamedTensor, Signature, Tensor, TensorData, TensorSpec};

use crate::serving::{ExplainAsk, MethodChoice, PredictError};

/// Bad elements reported per input before the rest are summarised, so a huge tensor of
/// garbage yields a readable answer.
const MAX_ELEMENT_VIOLATIONS: usize = 10;

/// Why a request cannot be run.
#[derive(Debug)]
pub enum DecodeError {
    /// It breaks the protocol or the graph's signature.
    Invalid(Violations),
    /// An input's first (batch) dimension is over the model's `max_request_rows`; found before
    /// any element is looked at, so a huge tensor costs nothing but its parse.
    BatchTooLarge { rows: usize, max: usize },
}

impl DecodeError {
    /// The same refusal as a prediction failure of model `model`.
    pub fn for_model(self, model: &str) -> PredictError {
        match self {
            DecodeError::Invalid(violations) => PredictError::Invalid(violations),
            DecodeError::BatchTooLarge { rows, max } => PredictError::BatchTooLarge {
                model: model.to_owned(),
                rows,
                max,
            },
        }
    }
}

impl From<Violations> for DecodeError {
    fn from(violations: Violations) -> DecodeError {
        DecodeError::Invalid(violations)
    }
}

/// A KServe V2 inference request (its JSON part).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = InferRequest, example = json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}))]
pub(crate) struct RequestBody<'a> {
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(borrow)]
    inputs: Vec<RequestInput<'a>>,
    outputs: Option<Vec<RequestOutput>>,
}

/// One input tensor: `data` flat or nested in row-major order, or, with the binary tensor
/// extension, `parameters.binary_data_size` bytes after the JSON part.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = InferRequestInput)]
pub(crate) struct RequestInput<'a> {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    /// Absent when the data travels as binary after the JSON header. Kept as its text until the
    /// datatype and shape are checked, then decoded element by element (never as a JSON tree).
    #[serde(borrow, default)]
    #[schema(value_type = Option<Object>)]
    data: Option<&'a RawValue>,
}

impl RequestInput<'_> {
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
    /// Explanations, when `contributions` is among them (with its options), and whether any
    /// output was listed.
    pub contributions: Option<ExplainAsk>,
    pub listed_any: bool,
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

/// Decodes a V2 inference request (its JSON header, already checked to be strict JSON, and the
/// binary tensor data after it, empty when there is none) and checks it against `signature`
/// and `max_rows`, the model's `max_request_rows`. The batch size is checked on the shapes before
/// any `data` is read.
pub fn decode_request(
    json: &[u8],
    binary: &[u8],
    signature: &Signature,
    max_rows: usize,
) -> Result<InferRequest, DecodeError> {
    let request: RequestBody<'_> = serde_json::from_slice(json).map_err(|err| {
        // Where in the body is of no help for a missing or mistyped member: say which.
        let text = err.to_string();
        let text = text
            .rsplit_once(" at line ")
            .map_or(text.as_str(), |(what, _)| what);
        Violations::from(Violation::new(
            vec![],
            ViolationType::TypeError,
            format!("the body does not follow the inference protocol: {text}"),
        ))
    })?;
    check_batch(
        request.inputs.iter().map(|input| input.shape.as_slice()),
        max_rows,
    )?;
    let mut violations = Violations::new();
    let mut binary_offset = 0usize;
    let mut wire = Vec::with_capacity(request.inputs.len());
    for (index, input) in request.inputs.iter().enumerate() {
        let binary_loc = || {
            vec![
                LocSegment::from("inputs"),
                index.into(),
                "parameters".into(),
                "binary_data_size".into(),
            ]
        };
        // Binary chunks follow the inputs' order, so claim this input's bytes before anything
        // else can skip it.
        let payload = match (input.binary_data_size(), input.data) {
            (None, Some(data)) => Ok(Payload::Json(data)),
            (None, None) => Err(Violation::new(
                vec!["inputs".into(), index.into(), "data".into()],
                ViolationType::Missing,
                format!(
                    "input `{}` has neither `data` nor a binary_data_size",
                    clip(&input.name)
                ),
            )),
            (Some(Err(())), _) => Err(Violation::new(
                binary_loc(),
                ViolationType::TypeError,
                "binary_data_size must be a non-negative integer",
            )),
            (Some(Ok(size)), _) => {
                let end = binary_offset.saturating_add(size);
                match binary.get(binary_offset..end) {
                    Some(bytes) => {
                        binary_offset = end;
                        Ok(Payload::Binary {
                            bytes,
                            loc: vec!["inputs".into(), index.into(), "parameters".into()],
                        })
                    }
                    None => Err(Violation::new(
                        binary_loc(),
                        ViolationType::ShapeMismatch,
                        format!(
                            "input `{}` claims {size} bytes at offset {binary_offset}, but the binary data after the JSON header has {} bytes",
                            clip(&input.name),
                            binary.len()
                        ),
                    )),
                }
            }
        };
        wire.push(WireInput {
            name: &input.name,
            shape: &input.shape,
            datatype: &input.datatype,
            payload,
        });
    }
    let inputs = decode_inputs(&wire, signature, &mut violations);
    let listed = request.outputs.as_deref().unwrap_or_default();
    let outputs = requested_outputs(
        listed.iter().map(|o| o.name.as_str()),
        |index, key| {
            let value = listed[index].parameters.as_ref()?.get(key)?;
            Some(value.as_str().map(str::to_owned))
        },
        signature,
        &mut violations,
    );
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
    let rows = batch_rows(&inputs, &mut violations);
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
        outputs: outputs.names,
        contributions: outputs.contributions,
        listed_any: outputs.listed_any,
        rows,
        binary_outputs,
    })
}

/// One input as a wire format gave it, before any check: the REST JSON's `inputs[i]` or a gRPC
/// `ModelInferRequest`'s.
#[derive(Debug)]
pub(super) struct WireInput<'a> {
    pub name: &'a str,
    pub shape: &'a [i64],
    pub datatype: &'a str,
    /// Where its elements are, or why they cannot be found.
    pub payload: Result<Payload<'a>, Violation>,
}

/// Where an input's elements are.
#[derive(Debug)]
pub(super) enum Payload<'a> {
    /// JSON `data`, flat or nested, as its text.
    Json(&'a RawValue),
    /// Little-endian elements back to back (Triton's binary extension, gRPC's
    /// `raw_input_contents`); problems are reported at `loc`.
    Binary {
        bytes: &'a [u8],
        loc: Vec<LocSegment>,
    },
    /// Elements a typed wire format already carries as values (gRPC's `contents`).
    Typed(TypedContents<'a>),
}

/// The typed element lists of a gRPC `InferTensorContents`, one per protocol field; the
/// datatype says which one holds the elements.
#[derive(Debug, Default)]
pub(super) struct TypedContents<'a> {
    pub bool_contents: &'a [bool],
    pub int_contents: &'a [i32],
    pub int64_contents: &'a [i64],
    pub uint_contents: &'a [u32],
    pub uint64_contents: &'a [u64],
    pub fp32_contents: &'a [f32],
    pub fp64_contents: &'a [f64],
    pub bytes_contents: Vec<&'a [u8]>,
}

/// `BatchTooLarge` for the first batch dimension over `max_rows` among the inputs' shapes:
/// checked before any element is looked at, so a huge tensor costs nothing but its parse.
pub(super) fn check_batch<'a>(
    mut shapes: impl Iterator<Item = &'a [i64]>,
    max_rows: usize,
) -> Result<(), DecodeError> {
    let oversized = shapes.find_map(|shape| {
        shape
            .first()
            .and_then(|&rows| usize::try_from(rows).ok())
            .filter(|&rows| rows > max_rows)
    });
    match oversized {
        Some(rows) => Err(DecodeError::BatchTooLarge {
            rows,
            max: max_rows,
        }),
        None => Ok(()),
    }
}

/// The inputs checked against the signature and decoded: each named once, known to the graph,
/// of its datatype and shape, with valid elements; and every graph input given. Every problem
/// goes into `violations`; the tensors that passed are returned.
pub(super) fn decode_inputs(
    wire: &[WireInput<'_>],
    signature: &Signature,
    violations: &mut Violations,
) -> Vec<NamedTensor> {
    let mut inputs = Vec::with_capacity(wire.len());
    for (index, input) in wire.iter().enumerate() {
        let loc = |key: &str| vec![LocSegment::from("inputs"), index.into(), key.into()];
        let payload = match &input.payload {
            Ok(payload) => payload,
            Err(violation) => {
                violations.push(violation.clone());
                continue;
            }
        };
        if wire[..index]
            .iter()
            .any(|earlier| earlier.name == input.name)
        {
            violations.push(Violation::new(
                loc("name"),
                ViolationType::ExtraForbidden,
                format!("input `{}` is given more than once", clip(input.name)),
            ));
            continue;
        }
        let Some(spec) = signature.input(input.name) else {
            violations.push(Violation::new(
                loc("name"),
                ViolationType::ExtraForbidden,
                format!(
                    "unknown input `{}`; the model's inputs are: {}",
                    clip(input.name),
                    names(&signature.inputs)
                ),
            ));
            continue;
        };
        match decode_input(input, payload, spec, index) {
            Ok(tensor) => inputs.push(NamedTensor {
                name: input.name.to_owned(),
                tensor,
            }),
            Err(problems) => violations.append(problems),
        }
    }
    for spec in &signature.inputs {
        if !wire.iter().any(|input| input.name == spec.name) {
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
    inputs
}

/// The outputs a client asked for, each known to the graph, in order and without repeats
/// (empty: every output); `parameter(i, key)` reads output `i`'s parameter `key` as text
/// (`Some(None)`: there, but not a string), for `contributions`' options.
pub(super) fn requested_outputs<'a>(
    requested: impl Iterator<Item = &'a str>,
    parameter: impl Fn(usize, &str) -> Option<Option<String>>,
    signature: &Signature,
    violations: &mut Violations,
) -> RequestedOutputs {
    let mut outputs: Vec<String> = Vec::new();
    let mut contributions = None;
    let mut listed_any = false;
    for (index, name) in requested.enumerate() {
        listed_any = true;
        if name == CONTRIBUTIONS && signature.output(name).is_none() {
            contributions = Some(contributions_options(index, &parameter, violations));
        } else if signature.output(name).is_none() {
            violations.push(Violation::new(
                vec!["outputs".into(), index.into(), "name".into()],
                ViolationType::ExtraForbidden,
                format!(
                    "unknown output `{}`; the model's outputs are: {}",
                    clip(name),
                    names(&signature.outputs)
                ),
            ));
        } else if !outputs.iter().any(|known| known == name) {
            outputs.push(name.to_owned());
        }
    }
    RequestedOutputs {
        names: outputs,
        contributions,
        listed_any,
    }
}

/// The `class` and `method` parameters of the `contributions` output (output `index`).
fn contributions_options(
    index: usize,
    parameter: &impl Fn(usize, &str) -> Option<Option<String>>,
    violations: &mut Violations,
) -> ExplainAsk {
    let mut ask = ExplainAsk::default();
    let mut refuse = |key: &str, msg: String| {
        violations.push(Violation::new(
            vec![
                "outputs".into(),
                index.into(),
                "parameters".into(),
                key.into(),
            ],
            ViolationType::TypeError,
            msg,
        ));
    };
    match parameter(index, "class") {
        None => {}
        Some(Some(class)) => ask.class = Some(class),
        Some(None) => refuse("class", "expected a class label as a string".to_owned()),
    }
    match parameter(index, "method").map(|m| m.as_deref().and_then(MethodChoice::parse)) {
        None => {}
        Some(Some(method)) => ask.method = method,
        Some(None) => refuse(
            "method",
            "expected one of auto, tree, linear, exact (a string)".to_owned(),
        ),
    }
    ask
}

/// The outputs a request names: graph outputs, and what it asks of `contributions`.
#[derive(Debug, Default)]
pub(super) struct RequestedOutputs {
    /// Graph outputs in order, without repeats (empty: every output).
    pub names: Vec<String>,
    /// Explanations, when `contributions` is named, with its options.
    pub contributions: Option<ExplainAsk>,
    /// Whether the request listed any output at all.
    pub listed_any: bool,
}

/// The batch dimension the decoded inputs share (1 for none); when they differ, a violation.
pub(super) fn batch_rows(inputs: &[NamedTensor], violations: &mut Violations) -> usize {
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
    batch_sizes.first().copied().unwrap_or(1)
}

fn names(specs: &[TensorSpec]) -> String {
    list_names(specs.iter().map(|s| s.name.as_str()))
}

fn decode_input(
    input: &WireInput<'_>,
    payload: &Payload<'_>,
    spec: &TensorSpec,
    index: usize,
) -> Result<Tensor, Violations> {
    let loc = |key: &str| vec![LocSegment::from("inputs"), index.into(), key.into()];
    let one = |loc: Vec<LocSegment>, kind: ViolationType, msg: String| {
        Err(Violations::from(Violation::new(loc, kind, msg)))
    };
    let Some(dtype) = DataType::from_protocol_name(input.datatype) else {
        return one(
            loc("datatype"),
            ViolationType::DatatypeMismatch,
            format!(
                "unknown datatype `{}`; input `{}` is {}",
                clip(input.datatype),
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
        Payload::Json(data) => decode_json_data(data, dtype, &shape, expected, index)?,
        Payload::Binary { bytes, loc } => decode_binary(dtype, bytes, expected).map_err(|msg| {
            Violations::from(Violation::new(
                loc.clone(),
                ViolationType::ShapeMismatch,
                msg,
            ))
        })?,
        Payload::Typed(contents) => decode_typed(dtype, contents, expected, index)?,
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
                "{expected} {dtype} elements take {expected}×{N} bytes; the binary data has {}",
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
            if let Some(position) = values.iter().position(|x| x.is_infinite()) {
                return Err(format!(
                    "element {position} is {}, not a finite number (NaN is a missing value)",
                    values[position]
                ));
            }
            TensorData::F32(values)
        }
        DataType::F64 => {
            let values = fixed(bytes, expected, dtype, f64::from_le_bytes)?;
            if let Some(position) = values.iter().position(|x| x.is_infinite()) {
                return Err(format!(
                    "element {position} is {}, not a finite number (NaN is a missing value)",
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

/// Takes the elements of a typed payload from the field the datatype names (INT8 to INT32 in
/// `int_contents`, UINT8 to UINT32 in `uint_contents`, as the protocol says): the count must be
/// the shape's, narrow integers in range, floats finite and BYTES UTF-8 text.
fn decode_typed(
    dtype: DataType,
    contents: &TypedContents<'_>,
    expected: usize,
    index: usize,
) -> Result<TensorData, Violations> {
    let field = match dtype {
        DataType::Bool => "bool_contents",
        DataType::I8 | DataType::I16 | DataType::I32 => "int_contents",
        DataType::I64 => "int64_contents",
        DataType::U8 | DataType::U16 | DataType::U32 => "uint_contents",
        DataType::U64 => "uint64_contents",
        DataType::F32 => "fp32_contents",
        DataType::F64 => "fp64_contents",
        DataType::String => "bytes_contents",
    };
    let loc = |position: Option<usize>| {
        let mut loc = vec![
            LocSegment::from("inputs"),
            index.into(),
            "contents".into(),
            field.into(),
        ];
        loc.extend(position.map(LocSegment::from));
        loc
    };
    let lengths = [
        ("bool_contents", contents.bool_contents.len()),
        ("int_contents", contents.int_contents.len()),
        ("int64_contents", contents.int64_contents.len()),
        ("uint_contents", contents.uint_contents.len()),
        ("uint64_contents", contents.uint64_contents.len()),
        ("fp32_contents", contents.fp32_contents.len()),
        ("fp64_contents", contents.fp64_contents.len()),
        ("bytes_contents", contents.bytes_contents.len()),
    ];
    let filled: Vec<&str> = lengths
        .iter()
        .filter(|&&(name, len)| len > 0 && name != field)
        .map(|&(name, _)| name)
        .collect();
    if !filled.is_empty() {
        return Err(Violations::from(Violation::new(
            vec!["inputs".into(), index.into(), "contents".into()],
            ViolationType::DatatypeMismatch,
            format!(
                "a {dtype} input's elements go in `{field}`; this one fills {}",
                filled.join(", ")
            ),
        )));
    }
    let mut violations = Violations::new();
    let mut bad = 0usize;
    let mut note = |position: usize, kind: ViolationType, msg: String| {
        bad += 1;
        if bad <= MAX_ELEMENT_VIOLATIONS {
            violations.push(Violation::new(loc(Some(position)), kind, msg));
        }
    };
    let count = lengths
        .iter()
        .find(|&&(name, _)| name == field)
        .map_or(0, |&(_, len)| len);
    if count != expected {
        return Err(Violations::from(Violation::new(
            loc(None),
            ViolationType::ShapeMismatch,
            format!("shape holds {expected} elements but `{field}` has {count}"),
        )));
    }
    macro_rules! narrow {
        ($variant:ident, $values:expr) => {{
            let mut out = Vec::with_capacity($values.len());
            for (position, &value) in $values.iter().enumerate() {
                match value.try_into() {
                    Ok(narrowed) => out.push(narrowed),
                    Err(_) => note(
                        position,
                        ViolationType::TypeError,
                        format!("expected an integer in range for {dtype}, got {value}"),
                    ),
                }
            }
            TensorData::$variant(out)
        }};
    }
    macro_rules! not_infinite {
        ($variant:ident, $values:expr) => {{
            for (position, value) in $values.iter().enumerate() {
                // NaN is a missing value, checked against the features by the contract gate.
                if value.is_infinite() {
                    note(
                        position,
                        ViolationType::ValueError,
                        format!("expected a finite number for {dtype}, got {value}"),
                    );
                }
            }
            TensorData::$variant($values.to_vec())
        }};
    }
    let data = match dtype {
        DataType::Bool => TensorData::Bool(contents.bool_contents.to_vec()),
        DataType::I8 => narrow!(I8, contents.int_contents),
        DataType::I16 => narrow!(I16, contents.int_contents),
        DataType::I32 => TensorData::I32(contents.int_contents.to_vec()),
        DataType::I64 => TensorData::I64(contents.int64_contents.to_vec()),
        DataType::U8 => narrow!(U8, contents.uint_contents),
        DataType::U16 => narrow!(U16, contents.uint_contents),
        DataType::U32 => TensorData::U32(contents.uint_contents.to_vec()),
        DataType::U64 => TensorData::U64(contents.uint64_contents.to_vec()),
        DataType::F32 => not_infinite!(F32, contents.fp32_contents),
        DataType::F64 => not_infinite!(F64, contents.fp64_contents),
        DataType::String => {
            let mut strings = Vec::with_capacity(contents.bytes_contents.len());
            for (position, bytes) in contents.bytes_contents.iter().enumerate() {
                match std::str::from_utf8(bytes) {
                    Ok(text) => strings.push(text.to_owned()),
                    Err(_) => note(
                        position,
                        ViolationType::TypeError,
                        "expected UTF-8 text for BYTES".to_owned(),
                    ),
                }
            }
            TensorData::String(strings)
        }
    };
    elements_checked(data, violations, bad, loc(None), dtype)
}

/// Decodes JSON `data` (one flat array, or arrays nested as `shape` says) into `expected`
/// elements of `dtype`, each converted as it is read: the elements never exist as a JSON tree
/// (tens of bytes per number), only as the typed values they become.
fn decode_json_data(
    data: &RawValue,
    dtype: DataType,
    shape: &[usize],
    expected: usize,
    index: usize,
) -> Result<TensorData, Violations> {
    let loc = |key: &str| vec![LocSegment::from("inputs"), index.into(), key.into()];
    // Every element takes at least two bytes of text ("0,"): no larger a claim is believed.
    let capacity = expected.min(data.get().len() / 2 + 1);
    let mut walk = DataWalk {
        shape,
        nested: false,
        follows_shape: true,
        count: 0,
        sink: ElementSink::new(dtype, capacity, index),
    };
    let mut reader = serde_json::Deserializer::from_str(data.get());
    if let Err(err) = (Level {
        walk: &mut walk,
        depth: 0,
    })
    .deserialize(&mut reader)
    {
        // The body was checked as JSON before; this is only a guard.
        return Err(Violations::from(Violation::new(
            loc("data"),
            ViolationType::TypeError,
            format!("`data` could not be read: {err}"),
        )));
    }
    if walk.nested && !walk.follows_shape {
        return Err(Violations::from(Violation::new(
            loc("data"),
            ViolationType::ShapeMismatch,
            format!(
                "nested `data` must follow the shape {shape:?} level by level (or be one flat array)"
            ),
        )));
    }
    if walk.count != expected {
        return Err(Violations::from(Violation::new(
            loc("shape"),
            ViolationType::ShapeMismatch,
            format!(
                "shape {shape:?} holds {expected} elements but `data` has {}",
                walk.count
            ),
        )));
    }
    walk.sink.finish()
}

/// What a walk through `data` has seen: whether arrays nest in the top one, whether the
/// nesting follows the shape level by level, and the elements (leaves) in row-major order.
struct DataWalk<'s> {
    shape: &'s [usize],
    nested: bool,
    follows_shape: bool,
    count: usize,
    sink: ElementSink,
}

/// One level of `data`, at `depth` (0: `data` itself).
struct Level<'w, 's> {
    walk: &'w mut DataWalk<'s>,
    depth: usize,
}

impl Level<'_, '_> {
    fn leaf(self, value: Value) {
        if self.depth != self.walk.shape.len() {
            self.walk.follows_shape = false;
        }
        self.walk.sink.push(self.walk.count, value);
        self.walk.count += 1;
    }
}

impl<'de> DeserializeSeed<'de> for Level<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Level<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("tensor data")
    }

    fn visit_bool<E>(self, value: bool) -> Result<(), E> {
        self.leaf(Value::Bool(value));
        Ok(())
    }

    fn visit_i64<E>(self, value: i64) -> Result<(), E> {
        self.leaf(Value::from(value));
        Ok(())
    }

    fn visit_u64<E>(self, value: u64) -> Result<(), E> {
        self.leaf(Value::from(value));
        Ok(())
    }

    fn visit_f64<E>(self, value: f64) -> Result<(), E> {
        self.leaf(Value::from(value));
        Ok(())
    }

    fn visit_str<E>(self, value: &str) -> Result<(), E> {
        self.leaf(Value::String(value.to_owned()));
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.leaf(Value::Null);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.leaf(Value::Object(Map::new()));
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Level { walk, depth } = self;
        if depth == 1 {
            walk.nested = true;
        }
        let mut length = 0usize;
        while seq
            .next_element_seed(Level {
                walk: &mut *walk,
                depth: depth + 1,
            })?
            .is_some()
        {
            length += 1;
        }
        if walk.shape.get(depth) != Some(&length) {
            walk.follows_shape = false;
        }
        Ok(())
    }
}

/// The elements of one input as they are decoded: the typed values, and the first
/// [`MAX_ELEMENT_VIOLATIONS`] that are not valid for the datatype (the rest counted).
struct ElementSink {
    dtype: DataType,
    data: TensorData,
    violations: Violations,
    bad: usize,
    index: usize,
}

impl ElementSink {
    fn new(dtype: DataType, capacity: usize, index: usize) -> ElementSink {
        let data = match dtype {
            DataType::Bool => TensorData::Bool(Vec::with_capacity(capacity)),
            DataType::U8 => TensorData::U8(Vec::with_capacity(capacity)),
            DataType::U16 => TensorData::U16(Vec::with_capacity(capacity)),
            DataType::U32 => TensorData::U32(Vec::with_capacity(capacity)),
            DataType::U64 => TensorData::U64(Vec::with_capacity(capacity)),
            DataType::I8 => TensorData::I8(Vec::with_capacity(capacity)),
            DataType::I16 => TensorData::I16(Vec::with_capacity(capacity)),
            DataType::I32 => TensorData::I32(Vec::with_capacity(capacity)),
            DataType::I64 => TensorData::I64(Vec::with_capacity(capacity)),
            DataType::F32 => TensorData::F32(Vec::with_capacity(capacity)),
            DataType::F64 => TensorData::F64(Vec::with_capacity(capacity)),
            DataType::String => TensorData::String(Vec::with_capacity(capacity)),
        };
        ElementSink {
            dtype,
            data,
            violations: Violations::new(),
            bad: 0,
            index,
        }
    }

    /// Element `position` of the input: kept when it is a valid `dtype` value, noted if not.
    fn push(&mut self, position: usize, value: Value) {
        fn int<T: TryFrom<i64> + TryFrom<u64>>(value: &Value) -> Option<T> {
            match value {
                Value::Number(n) => n
                    .as_i64()
                    .and_then(|x| T::try_from(x).ok())
                    .or_else(|| n.as_u64().and_then(|x| T::try_from(x).ok())),
                _ => None,
            }
        }
        fn keep<T>(values: &mut Vec<T>, value: Option<T>) -> bool {
            value.map(|x| values.push(x)).is_some()
        }
        let kept = match &mut self.data {
            TensorData::Bool(v) => keep(v, value.as_bool()),
            TensorData::U8(v) => keep(v, int(&value)),
            TensorData::U16(v) => keep(v, int(&value)),
            TensorData::U32(v) => keep(v, int(&value)),
            TensorData::U64(v) => keep(v, int(&value)),
            TensorData::I8(v) => keep(v, int(&value)),
            TensorData::I16(v) => keep(v, int(&value)),
            TensorData::I32(v) => keep(v, int(&value)),
            TensorData::I64(v) => keep(v, int(&value)),
            // JSON has no NaN: `null` is a float tensor's missing value (NaN in the tensor),
            // which the contract gate accepts for nullable features only.
            TensorData::F32(v) => keep(
                v,
                match value {
                    Value::Null => Some(f32::NAN),
                    _ => value.as_f64().map(|x| x as f32).filter(|x| x.is_finite()),
                },
            ),
            TensorData::F64(v) => keep(
                v,
                match value {
                    Value::Null => Some(f64::NAN),
                    _ => value.as_f64(),
                },
            ),
            TensorData::String(v) => match value {
                // Moved, not copied: a BYTES element costs one string, not two.
                Value::String(text) if !is_bare_token(&text) => {
                    v.push(text);
                    return;
                }
                _ => false,
            },
        };
        if !kept {
            self.note(position, &value);
        }
    }

    fn note(&mut self, position: usize, value: &Value) {
        self.bad += 1;
        if self.bad > MAX_ELEMENT_VIOLATIONS {
            return;
        }
        let dtype = self.dtype;
        let expected = match dtype {
            DataType::Bool => "a boolean",
            DataType::F32 | DataType::F64 => "a number",
            DataType::String => "a string",
            _ => "an integer in range",
        };
        let spelling = value.as_str().and_then(non_finite_spelling);
        let (kind, msg) = match spelling {
            Some(spelling) if dtype.is_float() => (
                ViolationType::ValueError,
                format!(
                    "expected a finite number for {dtype}, got {spelling}; a missing value is \
                     sent as null"
                ),
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
        self.violations.push(Violation::new(
            vec![
                "inputs".into(),
                self.index.into(),
                "data".into(),
                position.into(),
            ],
            kind,
            msg,
        ));
    }

    fn finish(self) -> Result<TensorData, Violations> {
        elements_checked(
            self.data,
            self.violations,
            self.bad,
            vec!["inputs".into(), self.index.into(), "data".into()],
            self.dtype,
        )
    }
}

/// The decoded elements, or the violations found among them: the first
/// [`MAX_ELEMENT_VIOLATIONS`] each at its position, the rest (of `bad` in all) summed up at `loc`.
fn elements_checked(
    data: TensorData,
    mut violations: Violations,
    bad: usize,
    loc: Vec<LocSegment>,
    dtype: DataType,
) -> Result<TensorData, Violations> {
    if bad > MAX_ELEMENT_VIOLATIONS {
        violations.push(Violation::new(
            loc,
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
        match decode_request(body.to_string().as_bytes(), &[], &signature(), 64) {
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
        let violations = invalid(decode_request(
            body.to_string().as_bytes(),
            &[],
            &signature(),
            64,
        ));
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
        let follows = |data: Value, shape: &[usize]| {
            let raw = serde_json::value::to_raw_value(&data).unwrap();
            let expected = shape.iter().product();
            match decode_json_data(&raw, DataType::F32, shape, expected, 0) {
                Ok(_) => true,
                Err(violations) => !violations.listed()[0].msg.starts_with("nested `data`"),
            }
        };
        assert!(follows(json!([[1], [2]]), &[2, 1]));
        assert!(follows(json!([1, 2]), &[2, 1]), "flat data is always taken");
        assert!(!follows(json!([[1, 2], [3]]), &[2, 2]));
        assert!(!follows(json!([[1], 2]), &[2, 1]));
        assert!(!follows(json!([[[1]], [[2]]]), &[2, 1]));
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
        let request = decode_request(body.to_string().as_bytes(), &[], &signature(), 64).unwrap();
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
        let violations = invalid(decode_request(
            body.to_string().as_bytes(),
            &[],
            &signature(),
            64,
        ));
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
        let violations = invalid(decode_request(
            body.to_string().as_bytes(),
            &[],
            &signature(),
            64,
        ));
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
        let request =
            decode_request(body.to_string().as_bytes(), &binary, &signature(), 64).unwrap();
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
        let short = invalid(decode_request(
            body.to_string().as_bytes(),
            &[0; 4],
            &signature(),
            64,
        ));
        assert_eq!(
            short.listed()[0].kind,
            ViolationType::ShapeMismatch,
            "{short:?}"
        );
        let long = invalid(decode_request(
            body.to_string().as_bytes(),
            &[0; 12],
            &signature(),
            64,
        ));
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
        let violations = invalid(decode_request(
            body.to_string().as_bytes(),
            &[],
            &signature(),
            64,
        ));
        assert_eq!(violations.total(), 2, "{violations:?}");
        assert_eq!(violations.listed()[0].kind, ViolationType::ShapeMismatch);
        assert_eq!(violations.listed()[1].kind, ViolationType::Missing);
    }
}
