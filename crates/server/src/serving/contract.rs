//! A version's contract: the manifest resolved against the graph (features bound to graph
//! inputs, outputs checked to exist and to fit their labels) or, without a manifest, what the
//! graph declares; and the example row its warm-up runs.

use serde_json::Value;
use warden_contract::{
    Binding, Feature, FeatureType, GraphElement, GraphInput, Output, OutputKind, bind_features,
    features_from_graph,
};
use warden_runtime::{DataType, Signature, TensorSpec};

use super::load_error::LoadError;
use super::repository::ModelSource;

/// The contract a version is served under.
#[derive(Debug, Clone)]
pub struct ModelContract {
    /// The features the row API accepts, in model order; `None` when the graph's inputs cannot
    /// be described as named features (only the V2 API serves it then).
    pub features: Option<(Vec<Feature>, Binding)>,
    pub outputs: Vec<Output>,
    /// True when a manifest declared the contract, false when it was read off the graph.
    pub declared: bool,
    /// The most rows one request may hold (`[batching] max_request_rows`).
    pub max_request_rows: usize,
    /// The manifest's example row, when it has one (the docs show it).
    pub example: Option<serde_json::Map<String, Value>>,
    /// The manifest's `[prediction_log]` (what of this model the log keeps, and how).
    pub prediction_log: warden_contract::PredictionLog,
}

/// The manifest's example row, or one synthesised from the contract (the lower bound or zero,
/// the first category) when there is none.
pub(super) fn example_row(source: &ModelSource, contract: &ModelContract) -> Option<Value> {
    if let Some(example) = source.manifest.as_ref().and_then(|m| m.example.clone()) {
        return Some(Value::Object(example));
    }
    let (features, _) = contract.features.as_ref()?;
    Some(Value::Object(
        features
            .iter()
            .map(|f| {
                let value = match f.kind {
                    FeatureType::Float => Value::from(f.min.unwrap_or(0.0)),
                    FeatureType::Int => Value::from(f.min.unwrap_or(0.0) as i64),
                    FeatureType::Bool => Value::Bool(false),
                    FeatureType::String => Value::from(""),
                    FeatureType::Category => Value::from(
                        f.values
                            .as_ref()
                            .and_then(|v| v.first())
                            .cloned()
                            .unwrap_or_default(),
                    ),
                };
                (f.name.clone(), value)
            })
            .collect(),
    ))
}

/// The graph's inputs in the contract's vocabulary.
pub fn graph_inputs(signature: &Signature) -> Vec<GraphInput> {
    signature
        .inputs
        .iter()
        .map(|spec| GraphInput {
            name: spec.name.clone(),
            element: match spec.data_type {
                DataType::String => GraphElement::Text,
                DataType::Bool => GraphElement::Bool,
                dtype if dtype.is_float() => GraphElement::Float,
                _ => GraphElement::Integer,
            },
            shape: spec.shape.clone(),
        })
        .collect()
}

pub(super) fn resolve_contract(
    source: &ModelSource,
    signature: &Signature,
) -> Result<ModelContract, LoadError> {
    let graph_inputs = graph_inputs(signature);
    let contract_error = |problems: Vec<String>| LoadError::Contract {
        model: source.name.clone(),
        problems,
    };
    let Some(manifest) = &source.manifest else {
        let features = features_from_graph(&graph_inputs).and_then(|features| {
            let binding = bind_features(&features, &graph_inputs).ok()?;
            Some((features, binding))
        });
        return Ok(ModelContract {
            features,
            outputs: outputs_from_graph(signature),
            declared: false,
            // The manifest's default, so the contract's limit and the scheduler's are one.
            max_request_rows: warden_contract::Batching::default_max_request_rows(),
            example: None,
            prediction_log: Default::default(),
        });
    };
    let binding = bind_features(&manifest.features, &graph_inputs).map_err(contract_error)?;
    let mut problems = Vec::new();
    for output in &manifest.outputs {
        match signature.output(&output.name) {
            None => problems.push(format!(
                "output `{}` is not a graph output (the graph's outputs are: {})",
                output.name,
                signature
                    .outputs
                    .iter()
                    .map(|o| o.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(spec) => {
                let labels = output.labels.as_ref().map_or(0, Vec::len);
                if let (Some(&width), [_, _]) = (spec.shape.last(), spec.shape.as_slice())
                    && width > 0
                    && labels > 0
                    && width as usize != labels
                    && output.kind == OutputKind::Probability
                {
                    problems.push(format!(
                        "output `{}` has {width} columns but declares {labels} labels",
                        output.name
                    ));
                }
            }
        }
    }
    // With features declared the manifest itself checked these names; without, they name
    // graph inputs.
    if manifest.features.is_empty() {
        let log = &manifest.prediction_log;
        for name in log.drop.iter().chain(&log.hash) {
            if signature.input(name).is_none() {
                problems.push(format!(
                    "`prediction_log` names `{name}`, which is not a graph input"
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(contract_error(problems));
    }
    Ok(ModelContract {
        features: Some((manifest.features.clone(), binding)),
        outputs: manifest.outputs.clone(),
        declared: true,
        max_request_rows: manifest.batching.max_request_rows,
        example: manifest.example.clone(),
        prediction_log: manifest.prediction_log.clone(),
    })
}

/// What a bare graph's outputs say about themselves. One float output of one value per row,
/// beside no label output, is a regressor's answer, so it reads `{"value": x}` as it would
/// under a manifest; a classifier (a label output) or anything else keeps its graph names, since
/// guessing which column is which would be worse than saying nothing.
fn outputs_from_graph(signature: &Signature) -> Vec<Output> {
    let has_label = signature
        .outputs
        .iter()
        .any(|o| o.data_type == DataType::String || o.data_type.is_integer());
    let per_row: Vec<&TensorSpec> = signature
        .outputs
        .iter()
        .filter(|o| o.data_type.is_float() && matches!(o.shape.as_slice(), [_] | [_, 1]))
        .collect();
    match per_row.as_slice() {
        [value] if !has_label => vec![Output {
            name: value.name.clone(),
            kind: OutputKind::Value,
            labels: None,
            relax: Vec::new(),
        }],
        _ => Vec::new(),
    }
}
