//! The explain verb's codec (KServe's V1 `:explain`): the row API's body with three optional
//! members (`top_k`, `class`, `method`), decoded as the row API decodes rows; the answer holds,
//! per row, the prediction the row API would give, the class and scale explained, the base
//! value, one attribution per feature and, with `top_k`, the strongest reasons with their signs.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use warden_contract::{Violation, ViolationType, Violations, clip};
use warden_runtime::NamedTensor;

use crate::front_door::{Codec, Inputs};
use crate::outcome::error::ApiError;
use crate::protocol::rows::{RowsCodec, predictions};
use crate::serving::{ExplainAsk, Explanation, MethodChoice, ModelVersion, PredictError};

/// The most reasons `top_k` may ask for.
pub const MAX_TOP_K: usize = 1000;

/// One explain request, for the front door.
#[derive(Debug)]
pub struct ExplainCodec {
    rows: RowsCodec,
    body: Option<Bytes>,
    ask: ExplainAsk,
    top_k: Option<usize>,
    explanation: Option<Explanation>,
}

impl ExplainCodec {
    pub fn new(body: Bytes) -> ExplainCodec {
        ExplainCodec {
            rows: RowsCodec::new(body.clone()),
            body: Some(body),
            ask: ExplainAsk::default(),
            top_k: None,
            explanation: None,
        }
    }

    /// Reads `top_k`, `class` and `method` from the (strict) body.
    fn read_options(&mut self, body: &[u8]) -> Result<(), ApiError> {
        #[derive(serde::Deserialize)]
        struct Options {
            top_k: Option<Value>,
            class: Option<Value>,
            method: Option<Value>,
        }
        let Ok(options) = serde_json::from_slice::<Options>(body) else {
            // Not an object: the rows' own check says what is wrong with the body.
            return Ok(());
        };
        let mut violations = Violations::new();
        let mut refuse = |key: &str, msg: String| {
            violations.push(Violation::new(
                vec![key.into()],
                ViolationType::TypeError,
                msg,
            ));
        };
        match options.top_k {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_u64().is_some_and(|k| k <= MAX_TOP_K as u64) => {
                self.top_k = n.as_u64().map(|k| k as usize);
            }
            Some(other) => refuse(
                "top_k",
                format!(
                    "expected an integer from 0 to {MAX_TOP_K}; got {}",
                    clip(&other.to_string())
                ),
            ),
        }
        match options.class {
            None | Some(Value::Null) => {}
            Some(Value::String(class)) => self.ask.class = Some(class),
            // Integer class labels are named as the model's labels spell them.
            Some(Value::Number(n)) => self.ask.class = Some(n.to_string()),
            Some(other) => refuse(
                "class",
                format!("expected a class label; got {}", clip(&other.to_string())),
            ),
        }
        match options.method {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) if MethodChoice::parse(&text).is_some() => {
                self.ask.method = MethodChoice::parse(&text).unwrap_or_default();
            }
            Some(other) => refuse(
                "method",
                format!(
                    "expected one of auto, tree, linear, exact; got {}",
                    clip(&other.to_string())
                ),
            ),
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_input(violations))
        }
    }
}

impl Codec for ExplainCodec {
    type Answer = ExplainAnswer;

    fn check(&mut self) -> Result<(), ApiError> {
        self.rows.check()?;
        if let Some(body) = self.body.take() {
            self.read_options(&body)?;
        }
        Ok(())
    }

    fn decode(&mut self, model: &ModelVersion) -> Result<Inputs<'_>, PredictError> {
        self.rows.decode(model)
    }

    fn release(&mut self) {
        self.rows.release();
    }

    fn explain(&self) -> Option<&ExplainAsk> {
        Some(&self.ask)
    }

    fn attach(&mut self, explanation: Explanation) {
        self.explanation = Some(explanation);
    }

    fn encode(
        self,
        model: &ModelVersion,
        outputs: Vec<NamedTensor>,
        rows: usize,
    ) -> Result<ExplainAnswer, ApiError> {
        let explanation = self
            .explanation
            .ok_or_else(|| ApiError::internal(&"an explain request was answered unexplained"))?;
        let predictions = predictions(&outputs, &model.contract.outputs, rows);
        Ok(ExplainAnswer::of(explanation, predictions, self.top_k))
    }
}

/// The answer of `:explain`, without the model's identity (the handler adds it).
#[derive(Debug, Serialize, ToSchema)]
pub struct ExplainAnswer {
    /// `tree_shap`, `linear` or `exact_shapley`.
    pub method: &'static str,
    /// What the attributions add up to: `probability`, `margin` (a classifier's raw score,
    /// log-odds for two classes) or `value`.
    pub scale: &'static str,
    /// The features, in the model's order.
    pub features: Vec<String>,
    /// Rows of the background set the attributions are computed against.
    pub background_rows: usize,
    /// The largest `|base_value + Σ attributions - output|` of any row in the answer.
    pub additivity_max_error: f64,
    pub explanations: Vec<RowExplanationAnswer>,
}

/// One row's explanation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RowExplanationAnswer {
    /// The class explained (classifiers): the one asked for, else the second of two classes,
    /// else the row's predicted class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The prediction, as `:predict` gives it.
    #[schema(value_type = Object)]
    pub prediction: Value,
    /// The mean output over the background set.
    pub base_value: f64,
    /// The model's output for the row on the stated scale: `base_value + Σ attributions`.
    pub output: f64,
    /// One attribution per feature, in the model's order.
    #[schema(value_type = Object)]
    pub attributions: Map<String, Value>,
    /// With `top_k`: the strongest attributions, by magnitude.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top: Option<Vec<Reason>>,
}

/// A reason: a feature, the row's value of it and how far it moved the output.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reason {
    pub feature: String,
    #[schema(value_type = Object)]
    pub value: Value,
    pub attribution: f64,
    /// `raises` or `lowers` the output.
    pub effect: &'static str,
}

impl ExplainAnswer {
    fn of(
        explanation: Explanation,
        predictions: Vec<Value>,
        top_k: Option<usize>,
    ) -> ExplainAnswer {
        let features = explanation.features.to_vec();
        let number = |x: f64| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
        let explanations = explanation
            .rows
            .into_iter()
            .zip(predictions)
            .map(|(row, prediction)| {
                let attributions = features
                    .iter()
                    .zip(&row.attribution.values)
                    .map(|(f, &v)| (f.clone(), number(v)))
                    .collect();
                let top = top_k.map(|k| {
                    let mut order: Vec<usize> = (0..features.len()).collect();
                    order.sort_by(|&a, &b| {
                        let (a, b) = (row.attribution.values[a], row.attribution.values[b]);
                        b.abs().total_cmp(&a.abs())
                    });
                    order
                        .into_iter()
                        .take(k)
                        .map(|i| Reason {
                            feature: features[i].clone(),
                            value: row.values.get(i).cloned().unwrap_or(Value::Null),
                            attribution: row.attribution.values[i],
                            effect: if row.attribution.values[i] < 0.0 {
                                "lowers"
                            } else {
                                "raises"
                            },
                        })
                        .collect()
                });
                RowExplanationAnswer {
                    class: row.class,
                    prediction,
                    base_value: row.attribution.base,
                    output: row.attribution.output,
                    attributions,
                    top,
                }
            })
            .collect();
        ExplainAnswer {
            method: explanation.method,
            scale: explanation.scale.as_str(),
            features,
            background_rows: explanation.background_rows,
            additivity_max_error: explanation.additivity_max_error,
            explanations,
        }
    }
}
