//! The row API's codec (TF Serving's REST convention): the request body's `instances`, and the
//! answer's one prediction object per row, shaped by the output kinds the manifest declares
//! (`label`, `probabilities`, `value`, ...).

use serde_json::{Map, Value};
use warden_contract::{Output, OutputKind, Violation, ViolationType, Violations};
use warden_runtime::{NamedTensor, Tensor, TensorData};

/// The rows of a row request: its `instances` member.
pub fn instances(body: &Value) -> Result<&Value, Violations> {
    body.get("instances").ok_or_else(|| {
        Violation::new(
            vec!["instances".into()],
            ViolationType::Missing,
            "the body must be {\"instances\": [row, ...]}",
        )
        .into()
    })
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
