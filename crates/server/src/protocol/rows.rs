//! The row API's codec (TF Serving's REST convention): the request body's `instances`, found in
//! its text and handed to validation a row at a time ([`RowsBody`]), and the answer's one
//! prediction object per row, shaped by the output kinds the manifest declares
//! (`label`, `probabilities`, `value`, ...).

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use warden_contract::{
    Output, OutputKind, RowSource, Violation, ViolationType, Violations, not_rows, parse_strict,
};
use warden_runtime::{NamedTensor, Tensor, TensorData};

use crate::front_door::{Codec, Inputs};
use crate::outcome::error::ApiError;
use crate::protocol::json::strict_text;
use crate::serving::{ModelVersion, PredictError};

/// One row-API request, for the front door: its body as it came, then (once checked to be strict
/// JSON) with its rows found; answered with one prediction object per row.
#[derive(Debug)]
pub struct RowsCodec {
    body: RowsState,
}

#[derive(Debug)]
enum RowsState {
    Unchecked(Bytes),
    Checked(RowsBody),
    Released,
}

impl RowsCodec {
    pub fn new(body: Bytes) -> RowsCodec {
        RowsCodec {
            body: RowsState::Unchecked(body),
        }
    }
}

impl Codec for RowsCodec {
    type Answer = Vec<Value>;

    fn check(&mut self) -> Result<(), ApiError> {
        if let RowsState::Unchecked(text) = std::mem::replace(&mut self.body, RowsState::Released) {
            self.body = RowsState::Checked(RowsBody::split(strict_text(text)?));
        }
        Ok(())
    }

    fn decode(&mut self, _model: &ModelVersion) -> Result<Inputs<'_>, PredictError> {
        match &self.body {
            RowsState::Checked(rows) => rows
                .source()
                .map(Inputs::Rows)
                .map_err(PredictError::Invalid),
            // The door checks every body before it decodes it.
            _ => Err(PredictError::Encode("the body was not checked".into())),
        }
    }

    fn release(&mut self) {
        self.body = RowsState::Released;
    }

    fn encode(
        self,
        model: &ModelVersion,
        outputs: Vec<NamedTensor>,
        rows: usize,
    ) -> Result<Vec<Value>, ApiError> {
        Ok(predictions(&outputs, &model.contract.outputs, rows))
    }
}

/// A row request's body kept as its JSON text (already checked to be strict JSON), with where
/// each row of `instances` lies in it. Rows are parsed one at a time as they are validated
/// ([`RowSource`]), so a body of 800,000 rows costs its text and 8 bytes a row until then, not
/// a JSON tree many times its size; and a request over the batch limit is refused on its row
/// count before any row is parsed.
#[derive(Debug)]
pub struct RowsBody {
    text: Bytes,
    /// Each row's start and end in `text`, or why `instances` holds no rows.
    rows: Result<Vec<(u32, u32)>, Violations>,
}

impl RowsBody {
    /// Finds the rows of `{"instances": [row, ...]}` in `text`.
    pub fn split(text: Bytes) -> RowsBody {
        let rows = if u32::try_from(text.len()).is_err() {
            Err(Violation::new(
                vec![],
                ViolationType::ShapeMismatch,
                "the body is too large for the row API (4 GiB at most)",
            )
            .into())
        } else {
            let mut reader = serde_json::Deserializer::from_slice(&text);
            match (Top { base: &text }).deserialize(&mut reader) {
                Ok(Some(Instances::Rows(rows))) => Ok(rows),
                Ok(Some(Instances::Other(value))) => Err(not_rows("instances", &value)),
                Ok(None) | Err(_) => Err(missing()),
            }
        };
        RowsBody { text, rows }
    }

    /// The rows, or the violation of a body with none (no `instances`, or not an array).
    pub fn source(&self) -> Result<&dyn RowSource, Violations> {
        match &self.rows {
            Ok(_) => Ok(self),
            Err(violations) => Err(violations.clone()),
        }
    }
}

impl RowSource for RowsBody {
    fn rows(&self) -> usize {
        self.rows.as_ref().map_or(0, Vec::len)
    }

    fn row(&self, index: usize) -> Result<Cow<'_, Value>, Violation> {
        let (start, end) = self.rows.as_ref().map_or((0, 0), |rows| rows[index]);
        parse_strict(&self.text[start as usize..end as usize])
            .map(Cow::Owned)
            .map_err(|err| {
                Violation::new(
                    vec!["instances".into(), index.into()],
                    ViolationType::TypeError,
                    format!("the row could not be read: {err}"),
                )
            })
    }
}

fn missing() -> Violations {
    Violation::new(
        vec!["instances".into()],
        ViolationType::Missing,
        "the body must be {\"instances\": [row, ...]}",
    )
    .into()
}

/// The body's top level: only `instances` is read; other members are skipped (TF Serving's
/// `signature_name`, say). Anything but an object has no `instances`.
struct Top<'t> {
    base: &'t [u8],
}

enum Instances {
    Rows(Vec<(u32, u32)>),
    /// Not an array: what it is, for the message (an object or array as an empty one).
    Other(Value),
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = Option<Instances>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = Option<Instances>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("{\"instances\": [row, ...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut instances = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "instances" {
                instances = Some(map.next_value_seed(Rows { base: self.base })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(instances)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// The value of `instances`: an array's rows as places in the text, else what it is.
struct Rows<'t> {
    base: &'t [u8],
}

impl<'de> DeserializeSeed<'de> for Rows<'_> {
    type Value = Instances;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Instances, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_> {
    type Value = Instances;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an array of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Instances, A::Error> {
        let base = self.base.as_ptr() as usize;
        let mut rows = Vec::new();
        while let Some(row) = seq.next_element::<&'de RawValue>()? {
            // A borrowed row is a slice of the text: its place is its distance from the start.
            let start = row.get().as_ptr() as usize - base;
            let end = start + row.get().len();
            rows.push((start as u32, end as u32));
        }
        Ok(Instances::Rows(rows))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Instances, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Instances::Other(Value::Object(Map::new())))
    }

    fn visit_bool<E>(self, value: bool) -> Result<Instances, E> {
        Ok(Instances::Other(Value::Bool(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Instances, E> {
        Ok(Instances::Other(Value::from(value)))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Instances, E> {
        Ok(Instances::Other(Value::from(value)))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Instances, E> {
        Ok(Instances::Other(Value::from(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Instances, E> {
        Ok(Instances::Other(Value::String(value.to_owned())))
    }

    fn visit_unit<E>(self) -> Result<Instances, E> {
        Ok(Instances::Other(Value::Null))
    }
}

/// One JSON prediction per row. With declared outputs, a classifier's row is
/// `{"label": ..., "probabilities": {label: p}}` and a regressor's `{"value": x}`; without, each
/// graph output appears under its own name.
pub fn predictions(outputs: &[NamedTensor], declared: &[Output], rows: usize) -> Vec<Value> {
    (0..rows)
        .map(|row| {
            let mut prediction = Map::new();
            for output in outputs {
                let values = row_values(&output.tensor, row, rows);
                match declared.iter().find(|d| d.name == output.name) {
                    Some(spec) => {
                        let labels = spec.labels.as_deref().unwrap_or_default();
                        let (key, value) = match spec.kind {
                            OutputKind::Label => ("label", label_value(values, labels)),
                            OutputKind::Probability => ("probabilities", by_label(values, labels)),
                            OutputKind::Score if !labels.is_empty() => {
                                ("scores", by_label(values, labels))
                            }
                            OutputKind::Score => ("score", scalar_or_array(values)),
                            OutputKind::Value => ("value", scalar_or_array(values)),
                        };
                        prediction.insert(key.to_owned(), value);
                    }
                    None => {
                        prediction.insert(output.name.clone(), scalar_or_array(values));
                    }
                }
            }
            Value::Object(prediction)
        })
        .collect()
}

/// The elements of `tensor` that belong to `row`, as JSON.
fn row_values(tensor: &Tensor, row: usize, rows: usize) -> Vec<Value> {
    let per_row = tensor.data.len().checked_div(rows).unwrap_or(0);
    let range = row * per_row..(row + 1) * per_row;
    match &tensor.data {
        TensorData::Bool(v) => v[range].iter().map(|&x| Value::Bool(x)).collect(),
        TensorData::U8(v) => v[range].iter().map(|&x| Value::from(x)).collect(),
        TensorData::U16(v) => v[range].iter().map(|&x| Value::from(x)).collect(),
        TensorData::U32(v) => v[range].iter().map(|&x| Value::from(x)).collect(),
        TensorData::U64(v) => v[range].iter().map(|&x| Value::from(x)).collect(),
        TensorData::I8(v) => v[range].iter().map(|&x| Value::from(x)).collect(),
        TensorData::I16(v) => v[range].iter().map(|&x| Value::from(x)).collect(),
        TensorData::I32(v) => v[range].iter().map(|&x| Value::from(x)).collect(),
        TensorData::I64(v) => v[range].iter().map(|&x| Value::from(x)).collect(),
        TensorData::F32(v) => v[range].iter().map(|&x| f32_json(x)).collect(),
        TensorData::F64(v) => v[range].iter().map(|&x| Value::from(x)).collect(),
        TensorData::String(v) => v[range].iter().map(|x| Value::from(x.as_str())).collect(),
    }
}

/// An `f32` as the shortest decimal that reads back as the same `f32` (0.9, not
/// 0.8999999761581421), which is what the model computed.
pub fn f32_json(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn scalar_or_array(mut values: Vec<Value>) -> Value {
    if values.len() == 1 {
        values.remove(0)
    } else {
        Value::Array(values)
    }
}

/// A label output: strings as they are; an integer class index as its declared label.
fn label_value(values: Vec<Value>, labels: &[String]) -> Value {
    match scalar_or_array(values) {
        Value::Number(n) => n
            .as_u64()
            .and_then(|i| labels.get(i as usize))
            .map_or(Value::Number(n), |label| Value::from(label.as_str())),
        other => other,
    }
}

fn by_label(values: Vec<Value>, labels: &[String]) -> Value {
    if values.len() != labels.len() {
        return Value::Array(values);
    }
    Value::Object(labels.iter().cloned().zip(values).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rows_of(text: &str) -> Result<Vec<Value>, Violations> {
        let body = RowsBody::split(Bytes::from(text.to_owned()));
        let source = body.source()?;
        Ok((0..source.rows())
            .map(|i| source.row(i).unwrap().into_owned())
            .collect())
    }

    #[test]
    fn rows_are_found_in_the_text_and_parsed_one_at_a_time() {
        assert_eq!(
            rows_of(r#"{"signature_name": {"x": [1]}, "instances": [{"a": 1}, [2, 3], "x"]}"#)
                .unwrap(),
            vec![json!({"a": 1}), json!([2, 3]), json!("x")]
        );
        assert_eq!(
            rows_of(r#"{"instances": []}"#).unwrap(),
            Vec::<Value>::new()
        );
    }

    #[test]
    fn a_body_without_rows_says_what_it_has() {
        let message = |text: &str| rows_of(text).unwrap_err().listed()[0].msg.clone();
        assert_eq!(
            message(r#"{"rows": []}"#),
            "the body must be {\"instances\": [row, ...]}"
        );
        assert_eq!(
            message(r#"[1, 2]"#),
            "the body must be {\"instances\": [row, ...]}"
        );
        assert_eq!(
            message(r#"{"instances": {"a": 1}}"#),
            "expected an array of rows, got an object"
        );
        assert_eq!(
            message(r#"{"instances": 3}"#),
            "expected an array of rows, got integer 3"
        );
    }

    #[test]
    fn classifier_outputs_become_label_and_probabilities_per_row() {
        let labels = Some(vec!["approve".to_owned(), "reject".to_owned()]);
        let declared = [
            Output {
                name: "label".into(),
                kind: OutputKind::Label,
                labels: labels.clone(),
                relax: vec![],
            },
            Output {
                name: "probabilities".into(),
                kind: OutputKind::Probability,
                labels,
                relax: vec![],
            },
        ];
        let outputs = [
            NamedTensor {
                name: "label".into(),
                tensor: Tensor::new(vec![1], TensorData::String(vec!["reject".into()])).unwrap(),
            },
            NamedTensor {
                name: "probabilities".into(),
                tensor: Tensor::new(vec![1, 2], TensorData::F32(vec![0.1, 0.9])).unwrap(),
            },
        ];
        assert_eq!(
            predictions(&outputs, &declared, 1),
            vec![json!({"label": "reject", "probabilities": {"approve": 0.1, "reject": 0.9}})]
        );
    }
}
