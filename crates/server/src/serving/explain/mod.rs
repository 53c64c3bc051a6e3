//! Explanations of a version's predictions: exact interventional Shapley values of each row's
//! output, per raw feature of the contract, against the version's background set.
//!
//! The method follows the graph ([`warden_runtime::attribution`] computes): a graph that is one
//! tree ensemble or linear model on its packed input is explained from its own structure
//! (TreeSHAP, the linear closed form) on its raw score; any other graph, pipelines included,
//! by enumerating every coalition of the contract's features, its hybrid rows scored on the
//! engine, on the probability (classifiers) or value (regressors) output, up to
//! `max_exact_features` features and `max_evaluations` engine rows per request.
//!
//! Explanations never take a prediction's place: each version with a background set has its
//! own bounded queue (`queue_capacity`, full: `overloaded`) and one thread, below the request
//! workers' priority (`SCHED_BATCH`, nice 10), with its own handle on the graph (shared with the workers only where the engine runs shared handles at once),
//! so an explanation's engine runs never wait in, or hold, the workers' queue or lock. Each
//! request has its own deadline (`timeout_ms`, within the request's own), checked between
//! engine runs, and a row limit (`max_rows`).

mod background;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde_json::Value;
use tokio::sync::oneshot;
use warden_contract::{Binding, Explain, OutputKind};
use warden_runtime::attribution::{
    Attribution, InputFeatures, Scale, Structural, coalition_rows, shapley_values,
};
use warden_runtime::{LoadedModel, NamedTensor, Tensor, TensorData};

use super::admission::Gate;
use super::contract::ModelContract;
use super::load_error::LoadError;
use super::repository::ModelSource;
use super::scheduler::{batch_priority, split_rows};
use crate::stage::{self, Stage};

/// Engine rows per run of the coalition method: large enough to amortise a run, small enough
/// that a deadline is checked often.
const ROWS_PER_RUN: usize = 16_384;

/// Which method a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MethodChoice {
    /// The structural method where the graph has one, else the coalition method.
    #[default]
    Auto,
    Tree,
    Linear,
    Exact,
}

impl MethodChoice {
    pub fn parse(text: &str) -> Option<MethodChoice> {
        Some(match text {
            "auto" => MethodChoice::Auto,
            "tree" | "tree_shap" => MethodChoice::Tree,
            "linear" => MethodChoice::Linear,
            "exact" | "exact_shapley" => MethodChoice::Exact,
            _ => return None,
        })
    }
}

/// What a request asks to have explained.
#[derive(Debug, Clone, Default)]
pub struct ExplainAsk {
    /// The class explained (a label); default: the second of two, else each row's predicted.
    pub class: Option<String>,
    pub method: MethodChoice,
}

/// One row's explanation.
#[derive(Debug, Clone)]
pub struct RowExplanation {
    /// The class explained (classifiers).
    pub class: Option<String>,
    pub attribution: Attribution,
    /// The row's value of each feature, as JSON.
    pub values: Vec<Value>,
}

/// A request's explanations.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub method: &'static str,
    pub scale: Scale,
    pub features: Arc<[String]>,
    pub background_rows: usize,
    pub rows: Vec<RowExplanation>,
    /// The largest `|base + Σ attributions - output|` of any row.
    pub additivity_max_error: f64,
    /// Rows the engine scored for it (the coalition method's cost).
    pub evaluations: u64,
}

/// Why a request was not explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    TooCostly(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{rows} rows to explain; at most {max} per request (`max_rows` under [explain])")]
    TooManyRows { rows: usize, max: usize },
    #[error("the explanation queue is full")]
    Overloaded,
    #[error("the explanation did not finish within its deadline ({0} ms)")]
    Deadline(u128),
    #[error("the engine failed: {0}")]
    Engine(String),
}

/// What a version's explanations have cost, for metrics.
#[derive(Debug, Default)]
pub struct ExplainCounters {
    /// Requests waiting or running now.
    pub in_flight: AtomicUsize,
    pub requests: AtomicU64,
    pub rows: AtomicU64,
    pub evaluations: AtomicU64,
    /// Time spent explaining, in microseconds.
    pub busy_micros: AtomicU64,
    pub refused_overloaded: AtomicU64,
    pub refused_deadline: AtomicU64,
}

/// The output explanations score: a classifier's probabilities or a regressor's value.
#[derive(Debug, Clone)]
struct ScoreOutput {
    name: String,
    /// Class labels (empty for a regressor).
    labels: Vec<String>,
}

/// What the explain thread needs, shared with the version.
#[derive(Debug)]
struct Shared {
    features: Arc<[String]>,
    inputs: Vec<InputFeatures>,
    background: Vec<NamedTensor>,
    background_rows: usize,
    structural: Option<Structural>,
    /// The packed input the structural method reads.
    packed: Option<String>,
    score: ScoreOutput,
    limits: Explain,
    counters: Arc<ExplainCounters>,
}

/// One request waiting for the explain thread.
struct Job {
    inputs: Vec<NamedTensor>,
    rows: usize,
    /// Each row's class index.
    classes: Vec<usize>,
    /// The answer's score output (`[rows, width]`, flat), which each row's output on a
    /// probability or value scale is checked against.
    answered: Option<Vec<f64>>,
    method: Method,
    deadline: Instant,
    reply: oneshot::Sender<Result<Explanation, ExplainError>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Structural,
    Exact,
}

/// A version's explainer: its background set, its method and its queue.
#[derive(Debug)]
pub struct Explainer {
    shared: Arc<Shared>,
    queue: Sender<Job>,
}

impl Explainer {
    /// The explainer of a version whose manifest has a background set (`None` without one):
    /// the set read and admitted, the method chosen from `graph`, the thread started with
    /// `model`, its own handle on the graph.
    pub(super) fn start(
        source: &ModelSource,
        gate: &Gate<'_>,
        graph: &[u8],
        model: impl FnOnce() -> Result<Box<dyn LoadedModel>, LoadError>,
    ) -> Result<Option<Explainer>, LoadError> {
        let Some(background) = background::read(source, gate)? else {
            return Ok(None);
        };
        let contract = gate.contract;
        let fail = |reason: &str| LoadError::Background {
            model: source.name.clone(),
            path: source.graph.clone(),
            reason: reason.to_owned(),
        };
        let Some((features, binding)) = &contract.features else {
            return Err(fail("the model declares no named features to explain"));
        };
        let score = score_output(contract)
            .ok_or_else(|| fail("the model has no probability or value output to explain"))?;
        let (inputs, packed) = match binding {
            Binding::PerColumn => (
                features
                    .iter()
                    .enumerate()
                    .map(|(i, f)| InputFeatures {
                        name: f.name.clone(),
                        features: vec![i],
                    })
                    .collect(),
                None,
            ),
            Binding::Packed { input } => (
                vec![InputFeatures {
                    name: input.clone(),
                    features: (0..features.len()).collect(),
                }],
                Some(input.clone()),
            ),
        };
        let structural = packed.as_ref().and_then(|input| {
            let rows = floats(&background.inputs, input)?;
            Structural::of(graph, input, features.len(), rows)
        });
        let limits = source
            .manifest
            .as_ref()
            .map(|m| m.explain.clone())
            .unwrap_or_default();
        let shared = Arc::new(Shared {
            features: features.iter().map(|f| f.name.clone()).collect(),
            inputs,
            background_rows: background.rows,
            background: background.inputs,
            structural,
            packed,
            score,
            counters: Arc::new(ExplainCounters::default()),
            limits,
        });
        let (queue, jobs) = crossbeam_channel::bounded::<Job>(shared.limits.queue_capacity());
        let mut model = model()?;
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("explain-{}", source.name))
            .stack_size(16 << 20)
            .spawn(move || {
                stage::enter(Stage::Infer);
                if let Err(err) = batch_priority() {
                    tracing::warn!(
                        error = %err,
                        "the explain thread could not lower its priority; explanations compete with requests for CPU"
                    );
                }
                work(&thread_shared, model.as_mut(), &jobs)
            })
            .map_err(|err| LoadError::Worker {
                model: source.name.clone(),
                source: err,
            })?;
        tracing::info!(
            model = %source.name,
            version = source.version,
            background_rows = shared.background_rows,
            method = shared.structural.as_ref().map_or("exact_shapley", |s| s.method()),
            "explanations on"
        );
        Ok(Some(Explainer { shared, queue }))
    }

    /// The most rows one request may explain.
    pub fn max_rows(&self) -> usize {
        self.shared.limits.max_rows()
    }

    /// What its explanations have cost, for a metrics scrape.
    pub fn figures(&self) -> crate::metrics::ExplainFigures {
        let c = &self.shared.counters;
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        crate::metrics::ExplainFigures {
            in_flight: c.in_flight.load(Ordering::Relaxed) as u64,
            requests: load(&c.requests),
            rows: load(&c.rows),
            evaluations: load(&c.evaluations),
            busy_seconds: load(&c.busy_micros) as f64 / 1e6,
            refused_overloaded: load(&c.refused_overloaded),
            refused_deadline: load(&c.refused_deadline),
        }
    }

    /// The method an answer would state for `choice`.
    pub fn method_name(&self, choice: MethodChoice) -> &'static str {
        match self.method(choice) {
            Ok(Method::Structural) => self
                .shared
                .structural
                .as_ref()
                .map_or("exact_shapley", |s| s.method()),
            _ => "exact_shapley",
        }
    }

    /// The graph output explanations read the class and the answered score from.
    pub fn score_output(&self) -> &str {
        &self.shared.score.name
    }

    /// Rows of its background set.
    pub fn background_rows(&self) -> usize {
        self.shared.background_rows
    }

    /// The feature names, in order.
    pub fn features(&self) -> &Arc<[String]> {
        &self.shared.features
    }

    fn method(&self, choice: MethodChoice) -> Result<Method, ExplainError> {
        let structural = self.shared.structural.as_ref().map(|s| s.method());
        match (choice, structural) {
            (MethodChoice::Auto, Some(_)) => Ok(Method::Structural),
            (MethodChoice::Auto | MethodChoice::Exact, _) => Ok(Method::Exact),
            (MethodChoice::Tree, Some("tree_shap")) | (MethodChoice::Linear, Some("linear")) => {
                Ok(Method::Structural)
            }
            (asked, _) => Err(ExplainError::Invalid(format!(
                "method `{}` does not apply to this model: it is {}; ask for `exact` or leave `method` out",
                match asked {
                    MethodChoice::Tree => "tree",
                    _ => "linear",
                },
                match structural {
                    Some("tree_shap") => "a tree ensemble (method `tree`)",
                    Some(_) => "a linear model (method `linear`)",
                    None => "not one tree ensemble or linear model reading its inputs directly",
                }
            ))),
        }
    }

    /// Explains `rows` admitted rows (`inputs`, as the engine got them), whose prediction is
    /// `outputs`, before `deadline` (or the explainer's own timeout, if sooner).
    pub async fn explain(
        &self,
        inputs: Vec<NamedTensor>,
        outputs: &[NamedTensor],
        rows: usize,
        ask: &ExplainAsk,
        deadline: Instant,
    ) -> Result<Explanation, ExplainError> {
        let shared = &self.shared;
        let method = self.check(ask, rows)?;
        // The answer's scores: each row's class when none is asked, and what its output is
        // held to.
        let answered = outputs
            .iter()
            .find(|o| o.name == shared.score.name)
            .and_then(|o| f64s(&o.tensor));
        let classes = self.classes(ask, answered.as_deref(), rows)?;
        let started = Instant::now();
        let deadline = deadline.min(started + Duration::from_millis(shared.limits.timeout_ms()));
        let (reply, answer) = oneshot::channel();
        let job = Job {
            inputs,
            rows,
            classes,
            answered,
            method,
            deadline,
            reply,
        };
        let counters = &shared.counters;
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = self.queue.try_send(job) {
            counters.in_flight.fetch_sub(1, Ordering::Relaxed);
            counters.refused_overloaded.fetch_add(1, Ordering::Relaxed);
            return Err(match err {
                TrySendError::Full(_) => ExplainError::Overloaded,
                TrySendError::Disconnected(_) => {
                    ExplainError::Engine("the explain thread stopped".into())
                }
            });
        }
        let waited = tokio::time::timeout_at(deadline.into(), answer).await;
        let result = match waited {
            Err(_) => Err(ExplainError::Deadline(started.elapsed().as_millis())),
            Ok(Err(_)) => Err(ExplainError::Engine("the explain thread stopped".into())),
            Ok(Ok(result)) => result,
        };
        if matches!(result, Err(ExplainError::Deadline(_))) {
            counters.refused_deadline.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Refuses, before anything runs, a request over the row limit, for a method that does
    /// not apply, or (the coalition method) over the feature or engine-row limit; else the
    /// method it will run.
    fn check(&self, ask: &ExplainAsk, rows: usize) -> Result<Method, ExplainError> {
        let max = self.shared.limits.max_rows();
        if rows > max {
            return Err(ExplainError::TooManyRows { rows, max });
        }
        let method = self.method(ask.method)?;
        if method == Method::Exact {
            self.check_cost(rows)?;
        }
        Ok(method)
    }

    /// [`Explainer::check`], for the front door before the prediction runs.
    pub fn admit(&self, ask: &ExplainAsk, rows: usize) -> Result<(), ExplainError> {
        self.check(ask, rows).map(|_| ())
    }

    /// Refuses a coalition request over the feature or engine-row limit.
    fn check_cost(&self, rows: usize) -> Result<(), ExplainError> {
        let shared = &self.shared;
        let features = shared.features.len();
        let limit = shared.limits.max_exact_features();
        if features > limit {
            return Err(ExplainError::TooCostly(format!(
                "exact Shapley values of this model enumerate all 2^{features} coalitions of its \
                 {features} features; the limit is {limit} (`max_exact_features` under [explain]). \
                 Explain a model whose graph is one tree ensemble or linear model on its inputs \
                 (computed from its structure), or raise the limit"
            )));
        }
        let evaluations = (rows as u64)
            .saturating_mul(1u64 << features)
            .saturating_mul(shared.background_rows as u64);
        let budget = shared.limits.max_evaluations();
        if evaluations > budget {
            return Err(ExplainError::TooCostly(format!(
                "explaining {rows} rows costs {evaluations} engine rows ({rows} × 2^{features} \
                 coalitions × {} background rows); the limit is {budget} (`max_evaluations` under \
                 [explain]): send fewer rows per request",
                shared.background_rows
            )));
        }
        Ok(())
    }

    /// Each row's class index: the one asked for, else the second of two, else the predicted.
    fn classes(
        &self,
        ask: &ExplainAsk,
        answered: Option<&[f64]>,
        rows: usize,
    ) -> Result<Vec<usize>, ExplainError> {
        let labels = &self.shared.score.labels;
        if labels.is_empty() {
            return match &ask.class {
                Some(class) => Err(ExplainError::Invalid(format!(
                    "`class` {class:?} given, but the model is a regressor"
                ))),
                None => Ok(vec![0; rows]),
            };
        }
        if let Some(class) = &ask.class {
            let index = labels.iter().position(|l| l == class).ok_or_else(|| {
                ExplainError::Invalid(format!(
                    "`class` must be one of {}; got {:?}",
                    labels.join(", "),
                    warden_contract::clip(class)
                ))
            })?;
            return Ok(vec![index; rows]);
        }
        if labels.len() == 2 {
            return Ok(vec![1; rows]);
        }
        let scores = answered
            .ok_or_else(|| ExplainError::Engine("no probabilities in the prediction".into()))?;
        let width = labels.len();
        Ok((0..rows)
            .map(|r| {
                let row = &scores[r * width..(r + 1) * width];
                (0..width).fold(0, |best, c| if row[c] > row[best] { c } else { best })
            })
            .collect())
    }
}

/// The contract's score output: probabilities (with their labels) or a value.
fn score_output(contract: &ModelContract) -> Option<ScoreOutput> {
    let find = |kind| contract.outputs.iter().find(|o| o.kind == kind);
    if let Some(p) = find(OutputKind::Probability) {
        return Some(ScoreOutput {
            name: p.name.clone(),
            labels: p.labels.clone()?,
        });
    }
    find(OutputKind::Value).map(|v| ScoreOutput {
        name: v.name.clone(),
        labels: Vec::new(),
    })
}

/// The explain thread: one job at a time until the queue closes (the version dropped).
fn work(shared: &Shared, model: &mut dyn LoadedModel, jobs: &Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        let started = Instant::now();
        // A client gone, or a deadline passed while queued: nothing to run for.
        let result = if job.reply.is_closed() || started >= job.deadline {
            Err(ExplainError::Deadline(0))
        } else {
            run(shared, model, &job)
        };
        let counters = &shared.counters;
        counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        counters
            .busy_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        if let Ok(explanation) = &result {
            counters.requests.fetch_add(1, Ordering::Relaxed);
            counters.rows.fetch_add(job.rows as u64, Ordering::Relaxed);
            counters
                .evaluations
                .fetch_add(explanation.evaluations, Ordering::Relaxed);
        }
        let _ = job.reply.send(result);
    }
}

fn run(
    shared: &Shared,
    model: &mut dyn LoadedModel,
    job: &Job,
) -> Result<Explanation, ExplainError> {
    let mut rows = Vec::with_capacity(job.rows);
    let mut evaluations = 0u64;
    let features = shared.features.len();
    let (method, scale) = match (job.method, &shared.structural) {
        (Method::Structural, Some(structural)) => (structural.method(), structural.scale()),
        _ => (
            "exact_shapley",
            if shared.score.labels.is_empty() {
                Scale::Value
            } else {
                Scale::Probability
            },
        ),
    };
    let packed = match (job.method, &shared.packed) {
        (Method::Structural, Some(input)) => Some(
            floats(&job.inputs, input)
                .ok_or_else(|| ExplainError::Engine("the packed input is not numeric".into()))?,
        ),
        _ => None,
    };
    // One-row inputs, cut as the scheduler cuts a large request into runs.
    let singles =
        split_rows(job.inputs.clone(), &vec![1; job.rows]).map_err(ExplainError::Engine)?;
    for (r, row) in singles.into_iter().enumerate() {
        if Instant::now() >= job.deadline {
            return Err(ExplainError::Deadline(0));
        }
        let class = job.classes[r];
        let attribution = match (&packed, &shared.structural) {
            (Some(packed), Some(structural)) => {
                structural.explain(&packed[r * features..(r + 1) * features], class)
            }
            _ => {
                let (attribution, cost) = exact(shared, model, &row, class, job.deadline)?;
                evaluations += cost;
                attribution
            }
        };
        rows.push(RowExplanation {
            class: shared.score.labels.get(class).cloned(),
            values: values_of(shared, &row),
            attribution,
        });
    }
    // Where the scale is what the answer holds (a probability, a value), each row's output is
    // also held to the answer the client got, so the check covers the method's reading of
    // the model, not only its arithmetic.
    let answered_error = |r: usize, row: &RowExplanation, class: usize| -> f64 {
        let Some(answered) = job.answered.as_deref() else {
            return 0.0;
        };
        if scale == Scale::Margin {
            return 0.0;
        }
        let width = answered.len() / job.rows.max(1);
        let column = if shared.score.labels.is_empty() {
            0
        } else {
            class
        };
        match answered.get(r * width + column) {
            Some(&value) if column < width => (row.attribution.output - value).abs(),
            _ => 0.0,
        }
    };
    let additivity_max_error = rows
        .iter()
        .enumerate()
        .map(|(r, row)| {
            row.attribution
                .additivity_error()
                .max(answered_error(r, row, job.classes[r]))
        })
        .fold(0.0, f64::max);
    Ok(Explanation {
        method,
        scale,
        features: Arc::clone(&shared.features),
        background_rows: shared.background_rows,
        rows,
        additivity_max_error,
        evaluations,
    })
}

/// The coalition method for one row: every coalition's mean output over the background,
/// scored on the engine in runs of about [`ROWS_PER_RUN`] rows, then the Shapley values.
fn exact(
    shared: &Shared,
    model: &mut dyn LoadedModel,
    row: &[NamedTensor],
    class: usize,
    deadline: Instant,
) -> Result<(Attribution, u64), ExplainError> {
    let features = shared.features.len();
    let coalitions = 1u64 << features;
    let background = shared.background_rows;
    let per_run = (ROWS_PER_RUN / background).max(1) as u64;
    let mut values = Vec::with_capacity(coalitions as usize);
    let mut evaluations = 0u64;
    let mut start = 0u64;
    while start < coalitions {
        if Instant::now() >= deadline {
            return Err(ExplainError::Deadline(0));
        }
        let masks: Vec<u64> = (start..coalitions.min(start + per_run)).collect();
        let mixed = coalition_rows(&shared.inputs, row, &shared.background, &masks)
            .map_err(ExplainError::Engine)?;
        let outputs = model
            .run(mixed, std::slice::from_ref(&shared.score.name))
            .map_err(|err| ExplainError::Engine(err.to_string()))?;
        let scores = outputs
            .first()
            .and_then(|o| f64s(&o.tensor))
            .ok_or_else(|| ExplainError::Engine("the score output is not numeric".into()))?;
        let n = masks.len() * background;
        let width = scores.len() / n.max(1);
        if width == 0 || class >= width.max(1) && !shared.score.labels.is_empty() {
            return Err(ExplainError::Engine(
                "the score output has no column for the class".into(),
            ));
        }
        let column = class.min(width - 1);
        for k in 0..masks.len() {
            let sum: f64 = (0..background)
                .map(|b| scores[(k * background + b) * width + column])
                .sum();
            values.push(sum / background as f64);
        }
        evaluations += n as u64;
        start += masks.len() as u64;
    }
    let phi = shapley_values(&values, features);
    Ok((
        Attribution {
            base: values[0],
            output: values[values.len() - 1],
            values: phi,
        },
        evaluations,
    ))
}

/// Each feature's value in a one-row input, as JSON.
fn values_of(shared: &Shared, row: &[NamedTensor]) -> Vec<Value> {
    let mut values = vec![Value::Null; shared.features.len()];
    for input in &shared.inputs {
        let Some(tensor) = row.iter().find(|t| t.name == input.name) else {
            continue;
        };
        for (j, &feature) in input.features.iter().enumerate() {
            values[feature] = element(&tensor.tensor.data, j);
        }
    }
    values
}

fn element(data: &TensorData, i: usize) -> Value {
    let number = |x: f64| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
    match data {
        TensorData::Bool(v) => Value::Bool(v[i]),
        TensorData::U8(v) => v[i].into(),
        TensorData::U16(v) => v[i].into(),
        TensorData::U32(v) => v[i].into(),
        TensorData::U64(v) => v[i].into(),
        TensorData::I8(v) => v[i].into(),
        TensorData::I16(v) => v[i].into(),
        TensorData::I32(v) => v[i].into(),
        TensorData::I64(v) => v[i].into(),
        // The shortest decimal that reads back as the same f32 (0.3, not 0.30000001192…).
        TensorData::F32(v) => v[i].to_string().parse::<f64>().map_or(Value::Null, number),
        TensorData::F64(v) => number(v[i]),
        TensorData::String(v) => Value::String(v[i].clone()),
    }
}

/// A numeric tensor's values as `f64`.
fn f64s(tensor: &Tensor) -> Option<Vec<f64>> {
    Some(match &tensor.data {
        TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::F64(v) => v.clone(),
        TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        _ => return None,
    })
}

/// The packed input named `input` as `f32` (the type the tree and linear operators read).
fn floats(inputs: &[NamedTensor], input: &str) -> Option<Vec<f32>> {
    let tensor = &inputs.iter().find(|t| t.name == input)?.tensor;
    Some(match &tensor.data {
        TensorData::F32(v) => v.clone(),
        TensorData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        _ => return None,
    })
}
