//! The document `GET /v1/models/{m}[/versions/{v}]/openapi.json` answers (its routes are in
//! `openapi`): an OpenAPI 3.1 document of one model's row API, typed from its contract, so `openapi-generator` or `datamodel-code-generator` gives a
//! data scientist a client with a class per model.
//!
//! The main document (`/openapi.json`) declares rows generically, as any JSON object, because it
//! describes every model at once. Here the request's row is the contract itself: a property per
//! feature with its JSON type, `minimum`/`maximum`, an `enum` of a category's values, `null`
//! where the feature is nullable, every feature required and no other property allowed, and the
//! manifest's example row as the example. The answer's prediction has the label as an `enum` of
//! the class labels and a probability per class in [0, 1], or a regression value. Error answers
//! are the main document's, from the one error table. Schema names start with the model's name
//! in PascalCase (`CreditRow`, `CreditPrediction`), which generators turn into class names.

use serde_json::{Map, Value, json};
use warden_contract::{Feature, FeatureType, OutputKind};

use crate::serving::ModelVersion;

/// `credit-risk_v2` → `CreditRiskV2`.
fn pascal_case(name: &str) -> String {
    let mut out = String::new();
    for part in name.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "Model");
    }
    out
}

/// One feature's JSON Schema.
fn feature_schema(feature: &Feature) -> Value {
    let kind = match feature.kind {
        FeatureType::Float => "number",
        FeatureType::Int => "integer",
        FeatureType::Bool => "boolean",
        FeatureType::String | FeatureType::Category => "string",
    };
    let mut schema = Map::new();
    schema.insert(
        "type".into(),
        if feature.nullable {
            json!([kind, "null"])
        } else {
            json!(kind)
        },
    );
    if let Some(min) = feature.min {
        schema.insert("minimum".into(), json!(min));
    }
    if let Some(max) = feature.max {
        schema.insert("maximum".into(), json!(max));
    }
    if let Some(values) = &feature.values {
        let mut values: Vec<Value> = values.iter().map(|v| json!(v)).collect();
        if feature.nullable {
            values.push(Value::Null);
        }
        schema.insert("enum".into(), Value::Array(values));
    }
    if let Some(description) = &feature.description {
        schema.insert("description".into(), json!(description));
    }
    Value::Object(schema)
}

/// The values per row of a graph output (1 for `[N]` or `[N, 1]`; `None` when dynamic).
fn per_row(model: &ModelVersion, output: &str) -> Option<i64> {
    let spec = model.signature.output(output)?;
    spec.shape
        .iter()
        .skip(1)
        .try_fold(1i64, |n, &d| (d >= 0).then_some(n * d))
}

fn numbers(count: Option<i64>) -> Value {
    match count {
        Some(1) => json!({"type": "number"}),
        Some(n) => {
            json!({"type": "array", "items": {"type": "number"}, "minItems": n, "maxItems": n})
        }
        None => {
            json!({"oneOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}}]})
        }
    }
}

fn by_label(labels: &[String], value: Value) -> Value {
    json!({
        "type": "object",
        "properties": labels.iter().map(|l| (l.clone(), value.clone())).collect::<Map<_, _>>(),
        "required": labels,
        "additionalProperties": false,
    })
}

/// A prediction's JSON Schema, from the declared outputs (as `protocol::rows` writes it).
fn prediction_schema(model: &ModelVersion) -> Value {
    let mut properties = Map::new();
    for output in &model.contract.outputs {
        let labels = output.labels.clone().unwrap_or_default();
        let (key, schema) = match output.kind {
            OutputKind::Label => (
                "label",
                json!({"type": "string", "enum": labels, "description": "The predicted class"}),
            ),
            OutputKind::Probability => (
                "probabilities",
                by_label(
                    &labels,
                    json!({"type": "number", "minimum": 0, "maximum": 1}),
                ),
            ),
            OutputKind::Score if !labels.is_empty() => {
                ("scores", by_label(&labels, json!({"type": "number"})))
            }
            OutputKind::Score => ("score", numbers(per_row(model, &output.name))),
            OutputKind::Value => ("value", numbers(per_row(model, &output.name))),
        };
        properties.insert(key.to_owned(), schema);
    }
    if model.contract.outputs.is_empty() {
        // Without declared outputs each graph output appears under its own name.
        for output in &model.signature.outputs {
            properties.insert(output.name.clone(), json!({}));
        }
    }
    let required: Vec<String> = properties.keys().cloned().collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// The document for `model`, its error answers taken from `main`, the main document.
pub(super) fn document(model: &ModelVersion, main: &Value) -> Value {
    let prefix = pascal_case(&model.name);
    let schema_ref = |name: &str| json!({"$ref": format!("#/components/schemas/{prefix}{name}")});
    let mut schemas = Map::new();
    // The error answers, as the main document declares them.
    for name in ["ErrorBody", "ErrorCode", "Violation"] {
        schemas.insert(name.to_owned(), main["components"]["schemas"][name].clone());
    }
    let mut paths = Map::new();
    let description;
    match &model.contract.features {
        Some((features, _)) => {
            let mut row = json!({
                "type": "object",
                "description": format!("One row of model `{}`'s features", model.name),
                "properties": features
                    .iter()
                    .map(|f| (f.name.clone(), feature_schema(f)))
                    .collect::<Map<_, _>>(),
                "required": features.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
                "additionalProperties": false,
            });
            let example = model.contract.example.clone().map(Value::Object);
            if let Some(example) = &example {
                row["examples"] = json!([example]);
            }
            schemas.insert(format!("{prefix}Row"), row);
            schemas.insert(
                format!("{prefix}Request"),
                json!({
                    "type": "object",
                    "properties": {"instances": {
                        "type": "array",
                        "items": schema_ref("Row"),
                        "minItems": 1,
                        "maxItems": model.contract.max_request_rows,
                    }},
                    "required": ["instances"],
                }),
            );
            schemas.insert(format!("{prefix}Prediction"), prediction_schema(model));
            schemas.insert(
                format!("{prefix}Response"),
                json!({
                    "type": "object",
                    "properties": {
                        "predictions": {"type": "array", "items": schema_ref("Prediction")},
                        "model": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string", "const": model.name},
                                "version": {"type": "string"},
                                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                            },
                            "required": ["name", "version", "sha256"],
                        },
                    },
                    "required": ["predictions", "model"],
                }),
            );
            let generic = &main["paths"]["/v1/models/{model}:predict"]["post"];
            let mut responses = generic["responses"].clone();
            responses["200"] = json!({
                "description": "One prediction per row, in order, and the version that made them",
                "content": {"application/json": {"schema": schema_ref("Response")}},
            });
            let mut body = json!({"schema": schema_ref("Request")});
            if let Some(example) = example {
                body["example"] = json!({"instances": [example]});
            }
            let operation = |id: String| {
                json!({
                    "operationId": id,
                    "summary": format!("Predict with model `{}`", model.name),
                    "tags": [model.name],
                    "requestBody": {"required": true, "content": {"application/json": body.clone()}},
                    "responses": responses.clone(),
                    "security": generic["security"].clone(),
                })
            };
            paths.insert(
                format!("/v1/models/{}:predict", model.name),
                json!({"post": operation(format!("predict{prefix}"))}),
            );
            paths.insert(
                format!(
                    "/v1/models/{}/versions/{}:predict",
                    model.name, model.version
                ),
                json!({"post": operation(format!("predict{prefix}V{}", model.version))}),
            );
            description = format!(
                "The row API of model `{}` version {} (sha256 {}), typed from its contract. \
                 Rows outside it are refused with 400 `invalid_input`, each violation located.",
                model.name, model.version, model.sha256
            );
        }
        None => {
            description = format!(
                "Model `{}` declares no named features, so it has no row API; use the KServe V2 \
                 API (`/openapi.json`).",
                model.name
            );
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("warden: model {}", model.name),
            "version": model.version.to_string(),
            "description": description,
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": main["components"]["securitySchemes"].clone(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::pascal_case;

    #[test]
    fn model_names_become_class_names() {
        assert_eq!(pascal_case("credit"), "Credit");
        assert_eq!(pascal_case("credit-risk_v2"), "CreditRiskV2");
        assert_eq!(pascal_case("2025"), "Model2025");
    }
}
