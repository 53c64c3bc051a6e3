//! Explanations over V2: a request that names the output `contributions` (a name no graph
//! output takes) gets, beside the outputs it asked for, one more output tensor of shape
//! `[N, F + 1]` (FP64): each row's attribution per feature in the model's order, the base
//! value last, as XGBoost's `pred_contribs` lays them out; the output's parameters name the
//! features, the method, the scale, the class explained per row and the additivity check.
//! Over REST and gRPC alike; what this module holds is what both share.

use serde_json::{Map, Value};
use warden_runtime::{NamedTensor, Tensor, TensorData};

use crate::serving::{ExplainAsk, Explanation, ModelVersion};

/// The output name that asks for explanations.
pub const CONTRIBUTIONS: &str = "contributions";

/// What a V2 request asked about explanations, and which of the computed outputs it shows.
#[derive(Debug, Default)]
pub(crate) struct ContributionsAsk {
    pub ask: Option<ExplainAsk>,
    /// With an explanation: the outputs the client named besides `contributions` (`None`:
    /// every output computed).
    pub shown: Option<Vec<String>>,
    pub explanation: Option<Explanation>,
}

impl ContributionsAsk {
    /// The outputs the engine computes for a request that named `named` outputs besides
    /// `contributions` (`asked`, with its options): those, plus the score output explanations check their
    /// class and answer against; every output when the client named none.
    pub(crate) fn engine_outputs(
        &mut self,
        model: &ModelVersion,
        named: Vec<String>,
        asked: Option<ExplainAsk>,
        listed_any: bool,
    ) -> Vec<String> {
        if asked.is_none() {
            return named;
        }
        self.ask = asked;
        if !listed_any {
            return named;
        }
        self.shown = Some(named.clone());
        let mut outputs = named;
        if !outputs.is_empty()
            && let Some(score) = model.explainer().map(|e| e.score_output())
            && !outputs.iter().any(|o| o == score)
        {
            outputs.push(score.to_owned());
        }
        outputs
    }

    /// The outputs to answer with: those shown, then `contributions`, and its parameters.
    pub(crate) fn finish(
        self,
        mut outputs: Vec<NamedTensor>,
    ) -> (Vec<NamedTensor>, Option<Map<String, Value>>) {
        let Some(explanation) = self.explanation else {
            return (outputs, None);
        };
        if let Some(shown) = &self.shown {
            outputs.retain(|o| shown.contains(&o.name));
        }
        let (tensor, parameters) = tensor(&explanation);
        outputs.push(tensor);
        (outputs, Some(parameters))
    }
}

/// The `contributions` tensor of an explanation and its parameters.
fn tensor(explanation: &Explanation) -> (NamedTensor, Map<String, Value>) {
    let features = explanation.features.len();
    let rows = explanation.rows.len();
    let mut data = Vec::with_capacity(rows * (features + 1));
    for row in &explanation.rows {
        data.extend_from_slice(&row.attribution.values);
        data.push(row.attribution.base);
    }
    let tensor = NamedTensor {
        name: CONTRIBUTIONS.to_owned(),
        tensor: Tensor {
            shape: vec![rows, features + 1],
            data: TensorData::F64(data),
        },
    };
    let mut names: Vec<Value> = explanation
        .features
        .iter()
        .map(|f| Value::from(f.as_str()))
        .collect();
    names.push(Value::from("bias"));
    let mut parameters = Map::new();
    parameters.insert("feature_names".into(), Value::Array(names));
    parameters.insert("method".into(), Value::from(explanation.method));
    parameters.insert("scale".into(), Value::from(explanation.scale.as_str()));
    if explanation.rows.iter().any(|r| r.class.is_some()) {
        let classes = explanation
            .rows
            .iter()
            .map(|r| r.class.clone().map_or(Value::Null, Value::from))
            .collect();
        parameters.insert("classes".into(), Value::Array(classes));
    }
    parameters.insert(
        "background_rows".into(),
        Value::from(explanation.background_rows),
    );
    parameters.insert(
        "additivity_max_error".into(),
        serde_json::Number::from_f64(explanation.additivity_max_error)
            .map_or(Value::Null, Value::Number),
    );
    (tensor, parameters)
}
