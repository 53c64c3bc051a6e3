//! Drift monitoring of a served version: how its inputs and predictions are distributed over
//! sliding windows of time, compared with the training baseline of its manifest.
//!
//! Every admitted request's values are counted into fixed bins (the baseline's, see
//! `warden_contract::baseline`): per feature, its bins plus nulls and values outside the
//! training range; for the prediction, the class shares or the target's bins plus the sum of
//! predicted values. Nothing of a request is kept. A window (default 5 minutes and 1 hour, the
//! manifest's `[drift] windows`) is a ring of ten slots of a tenth of its span; a slot older than
//! the window is cleared when its turn comes again, so memory is a few counters per bin whatever
//! the traffic, and a window holds between 90% and 100% of its span. Time-based rather than
//! count-based windows, because "the last five minutes" means the same thing at 10 and at
//! 10,000 requests per second, and an alert on it can be read against a clock.
//!
//! Figures are computed when asked (the drift endpoint, a metrics scrape) and, at most once a
//! second while requests arrive; each time, each window is judged against the manifest's PSI
//! bands, and a column that enters `warn` or `alert`, or leaves it, is logged once per crossing. A window
//! with fewer than `min_rows` rows is `insufficient_data`, never judged.

use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use warden_contract::baseline::{Baseline, Distribution, NumericBaseline, psi};
use warden_contract::{Binding, Drift, Feature, Output, OutputKind};
use warden_runtime::{NamedTensor, TensorData};

use crate::metrics::DriftFigure;

/// Slots per window.
const SLOTS: u64 = 10;

/// Where a feature's values sit in the graph inputs.
#[derive(Debug, Clone)]
struct Source {
    tensor: String,
    column: usize,
    width: usize,
}

/// A monitored feature.
#[derive(Debug)]
struct FeatureProbe {
    name: String,
    source: Source,
    distribution: Distribution,
    nullable: bool,
    /// Its first counter in a slot: `bins`, then nulls, then values outside the training range.
    offset: usize,
    /// A numeric baseline's inner edges and range at float32, for float32 inputs (see
    /// `NumericBaseline::bin_f32`); empty for a category.
    edges32: Vec<f32>,
    range32: (f32, f32),
}

/// Where the predicted value of a row comes from.
#[derive(Debug)]
enum PredictionSource {
    /// A label output: the label's text, or an integer class index into `labels` (as the row
    /// API reads it).
    Label { output: String, labels: Vec<String> },
    /// A probability output: the label of the highest probability.
    Argmax { output: String, labels: Vec<String> },
    /// A regression value: the first value of each row.
    Value { output: String },
}

/// The monitored prediction.
#[derive(Debug)]
struct PredictionProbe {
    target: String,
    source: PredictionSource,
    distribution: Distribution,
    offset: usize,
}

/// One tenth of a window: counters for the rows that arrived during it.
#[derive(Debug, Clone)]
struct Slot {
    /// Which tenth of time (since the monitor started) the counters are for.
    epoch: u64,
    rows: u64,
    predictions: u64,
    prediction_sum: f64,
    counts: Vec<u64>,
}

#[derive(Debug)]
struct Window {
    label: String,
    seconds: u64,
    slot_seconds: u64,
    slots: Vec<Slot>,
}

impl Window {
    /// The slot for time `now` (seconds), cleared if it last counted an older tenth.
    fn slot(&mut self, now: u64) -> &mut Slot {
        let epoch = now / self.slot_seconds;
        let slot = &mut self.slots[(epoch % SLOTS) as usize];
        if slot.epoch != epoch {
            slot.epoch = epoch;
            slot.rows = 0;
            slot.predictions = 0;
            slot.prediction_sum = 0.0;
            slot.counts.iter_mut().for_each(|c| *c = 0);
        }
        slot
    }

    /// The sum of the slots inside the window at time `now`.
    fn total(&self, now: u64) -> Slot {
        let epoch = now / self.slot_seconds;
        let mut total = Slot {
            epoch,
            rows: 0,
            predictions: 0,
            prediction_sum: 0.0,
            counts: vec![0; self.slots[0].counts.len()],
        };
        for slot in &self.slots {
            if slot.epoch <= epoch && epoch - slot.epoch < SLOTS {
                total.rows += slot.rows;
                total.predictions += slot.predictions;
                total.prediction_sum += slot.prediction_sum;
                for (sum, count) in total.counts.iter_mut().zip(&slot.counts) {
                    *sum += count;
                }
            }
        }
        total
    }
}

/// A judgement of one figure in one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatus {
    InsufficientData,
    Ok,
    Warn,
    Alert,
}

impl DriftStatus {
    /// As the JSON and the log name it.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftStatus::InsufficientData => "insufficient_data",
            DriftStatus::Ok => "ok",
            DriftStatus::Warn => "warn",
            DriftStatus::Alert => "alert",
        }
    }

    /// As a gauge: -1 insufficient data, 0 ok, 1 warn, 2 alert.
    pub fn level(self) -> i64 {
        match self {
            DriftStatus::InsufficientData => -1,
            DriftStatus::Ok => 0,
            DriftStatus::Warn => 1,
            DriftStatus::Alert => 2,
        }
    }
}

#[derive(Debug)]
struct State {
    windows: Vec<Window>,
    /// Per window, per feature then the prediction: the last judgement.
    statuses: Vec<Vec<DriftStatus>>,
    next_evaluation: u64,
}

/// The drift monitor of one served version.
#[derive(Debug)]
pub struct DriftMonitor {
    /// Counters per slot: every feature's, then the prediction's.
    counters: usize,
    model: String,
    version: u64,
    settings: Drift,
    features: Vec<FeatureProbe>,
    prediction: Option<PredictionProbe>,
    started: Instant,
    state: Mutex<State>,
}

/// What a version's manifest gives the monitor, or why there is nothing to monitor.
pub(super) fn monitor(
    model: &str,
    version: u64,
    settings: &Drift,
    baseline: Option<Baseline>,
    features: Option<&(Vec<Feature>, Binding)>,
    outputs: &[Output],
) -> Option<DriftMonitor> {
    let baseline = baseline?;
    let mut offset = 0;
    let mut probes = Vec::new();
    if let Some((features, binding)) = features {
        for (index, feature) in features.iter().enumerate() {
            let Some(distribution) = baseline.features.get(&feature.name) else {
                continue;
            };
            let source = match binding {
                Binding::PerColumn => Source {
                    tensor: feature.name.clone(),
                    column: 0,
                    width: 1,
                },
                Binding::Packed { input } => Source {
                    tensor: input.clone(),
                    column: index,
                    width: features.len(),
                },
            };
            let (edges32, range32) = match distribution {
                Distribution::Numeric(n) => (
                    n.edges.iter().map(|&e| e as f32).collect(),
                    (n.min as f32, n.max as f32),
                ),
                Distribution::Categorical(_) => (Vec::new(), (0.0, 0.0)),
            };
            probes.push(FeatureProbe {
                name: feature.name.clone(),
                source,
                distribution: distribution.clone(),
                nullable: feature.nullable,
                offset,
                edges32,
                range32,
            });
            offset += distribution.bins() + 2;
        }
    }
    let prediction = baseline.target.and_then(|(target, distribution)| {
        let source = prediction_source(&distribution, outputs)?;
        let probe = PredictionProbe {
            target,
            source,
            offset,
            distribution,
        };
        offset += probe.distribution.bins();
        Some(probe)
    });
    if probes.is_empty() && prediction.is_none() {
        return None;
    }
    let windows = settings
        .window_seconds()
        .into_iter()
        .zip(&settings.windows)
        .filter_map(|(seconds, label)| {
            let seconds = seconds?;
            Some(Window {
                label: label.clone(),
                seconds,
                slot_seconds: seconds.div_ceil(SLOTS).max(1),
                slots: vec![
                    Slot {
                        epoch: u64::MAX,
                        rows: 0,
                        predictions: 0,
                        prediction_sum: 0.0,
                        counts: vec![0; offset],
                    };
                    SLOTS as usize
                ],
            })
        })
        .collect::<Vec<_>>();
    let judged = probes.len() + usize::from(prediction.is_some());
    let statuses = vec![vec![DriftStatus::InsufficientData; judged]; windows.len()];
    Some(DriftMonitor {
        counters: offset,
        model: model.to_owned(),
        version,
        settings: settings.clone(),
        features: probes,
        prediction,
        started: Instant::now(),
        state: Mutex::new(State {
            windows,
            statuses,
            next_evaluation: 0,
        }),
    })
}

/// The output the prediction is read from: a label output for a categorical target, else a
/// probability output's argmax; a value output for a numeric target.
fn prediction_source(target: &Distribution, outputs: &[Output]) -> Option<PredictionSource> {
    let find = |kind: OutputKind| outputs.iter().find(|o| o.kind == kind);
    match target {
        Distribution::Categorical(_) => find(OutputKind::Label)
            .map(|o| PredictionSource::Label {
                output: o.name.clone(),
                labels: o.labels.clone().unwrap_or_default(),
            })
            .or_else(|| {
                let o = find(OutputKind::Probability)?;
                Some(PredictionSource::Argmax {
                    output: o.name.clone(),
                    labels: o.labels.clone()?,
                })
            }),
        Distribution::Numeric(_) => find(OutputKind::Value).map(|o| PredictionSource::Value {
            output: o.name.clone(),
        }),
    }
}

fn number_at(data: &TensorData, index: usize) -> Option<f64> {
    Some(match data {
        TensorData::F32(v) => f64::from(*v.get(index)?),
        TensorData::F64(v) => *v.get(index)?,
        TensorData::I64(v) => *v.get(index)? as f64,
        TensorData::I32(v) => f64::from(*v.get(index)?),
        TensorData::I16(v) => f64::from(*v.get(index)?),
        TensorData::I8(v) => f64::from(*v.get(index)?),
        TensorData::U64(v) => *v.get(index)? as f64,
        TensorData::U32(v) => f64::from(*v.get(index)?),
        TensorData::U16(v) => f64::from(*v.get(index)?),
        TensorData::U8(v) => f64::from(*v.get(index)?),
        TensorData::Bool(v) => f64::from(u8::from(*v.get(index)?)),
        TensorData::String(_) => return None,
    })
}

/// The bin of a categorical value held in a tensor (text, or an integer label).
fn category_bin(distribution: &Distribution, data: &TensorData, index: usize) -> Option<usize> {
    let Distribution::Categorical(categories) = distribution else {
        return None;
    };
    Some(match data {
        TensorData::String(v) => categories.bin(v.get(index)?),
        TensorData::I64(v) => categories.bin(&v.get(index)?.to_string()),
        TensorData::I32(v) => categories.bin(&v.get(index)?.to_string()),
        _ => return None,
    })
}

fn find<'a>(tensors: &'a [NamedTensor], name: &str) -> Option<&'a TensorData> {
    tensors
        .iter()
        .find(|t| t.name == name)
        .map(|t| &t.tensor.data)
}

impl DriftMonitor {
    fn now(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while counting leaves counters, never a broken invariant worth refusing.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts the values of `rows` admitted rows.
    pub(super) fn observe_inputs(&self, inputs: &[NamedTensor], rows: usize) {
        self.observe_inputs_at(inputs, rows, self.now());
    }

    fn observe_inputs_at(&self, inputs: &[NamedTensor], rows: usize, now: u64) {
        // The request's counts, made before taking the lock and once for all windows; then
        // added to each window's slot in one dense pass.
        let mut counts = vec![0u32; self.counters];
        for probe in &self.features {
            let Some(data) = find(inputs, &probe.source.tensor) else {
                continue;
            };
            let bins = probe.distribution.bins();
            let (null, outside) = (probe.offset + bins, probe.offset + bins + 1);
            let indices = (0..rows).map(|row| row * probe.source.width + probe.source.column);
            match (&probe.distribution, data) {
                (Distribution::Numeric(_), TensorData::F32(values)) => {
                    for index in indices {
                        let Some(&x) = values.get(index) else {
                            continue;
                        };
                        if x.is_nan() {
                            counts[null] += 1;
                            continue;
                        }
                        // The edges below x, counted without branches: the bin.
                        let bin: usize = probe.edges32.iter().map(|&e| usize::from(e < x)).sum();
                        counts[probe.offset + bin] += 1;
                        counts[outside] += u32::from(x < probe.range32.0 || x > probe.range32.1);
                    }
                }
                (Distribution::Numeric(numeric), _) => {
                    for index in indices {
                        let Some(x) = number_at(data, index) else {
                            continue;
                        };
                        if x.is_nan() {
                            counts[null] += 1;
                            continue;
                        }
                        counts[probe.offset + numeric.bin(x)] += 1;
                        counts[outside] += u32::from(numeric.outside(x));
                    }
                }
                (categorical, _) => {
                    for index in indices {
                        if let Some(bin) = category_bin(categorical, data, index) {
                            counts[probe.offset + bin] += 1;
                        }
                    }
                }
            }
        }
        let mut state = self.lock();
        for window in &mut state.windows {
            let slot = window.slot(now);
            slot.rows += rows as u64;
            for (total, &count) in slot.counts.iter_mut().zip(&counts) {
                *total += u64::from(count);
            }
        }
    }

    /// Counts the predictions of an answer, and judges the windows if a second has passed.
    pub(super) fn observe_outputs(&self, outputs: &[NamedTensor], rows: usize) {
        self.observe_outputs_at(outputs, rows, self.now());
    }

    fn observe_outputs_at(&self, outputs: &[NamedTensor], rows: usize, now: u64) {
        let mut state = self.lock();
        if let Some(probe) = &self.prediction {
            let bins = probe_bins(probe, outputs, rows);
            for window in &mut state.windows {
                let slot = window.slot(now);
                for &(bin, value) in &bins {
                    slot.counts[probe.offset + bin] += 1;
                    slot.predictions += 1;
                    slot.prediction_sum += value;
                }
            }
        }
        if now >= state.next_evaluation {
            state.next_evaluation = now + 1;
            self.judge(&mut state, now);
        }
    }

    /// Judges every window and logs each crossing of a band.
    fn judge(&self, state: &mut State, now: u64) {
        let reports: Vec<WindowReport> = state
            .windows
            .iter()
            .map(|w| self.window_report(w, now))
            .collect();
        for (report, statuses) in reports.iter().zip(&mut state.statuses) {
            let judged = report
                .features
                .iter()
                .map(|f| (f.name.as_str(), f.psi, f.status))
                .chain(
                    report
                        .prediction
                        .iter()
                        .map(|p| (p.target.as_str(), p.psi, p.status)),
                );
            for ((name, value, status), last) in judged.zip(statuses.iter_mut()) {
                if status == *last || status == DriftStatus::InsufficientData {
                    continue;
                }
                let before = *last;
                *last = status;
                let psi = value.unwrap_or(0.0);
                match status {
                    DriftStatus::Warn | DriftStatus::Alert => tracing::warn!(
                        model = %self.model,
                        version = self.version,
                        column = name,
                        window = %report.window,
                        psi = format!("{psi:.4}"),
                        from = before.as_str(),
                        to = status.as_str(),
                        rows = report.rows,
                        "drift: `{name}` crossed into {} over the last {}",
                        status.as_str(),
                        report.window
                    ),
                    _ if before != DriftStatus::InsufficientData => tracing::info!(
                        model = %self.model,
                        version = self.version,
                        column = name,
                        window = %report.window,
                        psi = format!("{psi:.4}"),
                        from = before.as_str(),
                        to = status.as_str(),
                        "drift: `{name}` is back within its band over the last {}",
                        report.window
                    ),
                    _ => {}
                }
            }
        }
    }

    /// The figures of every window now (judging them, so a crossing is logged even when it
    /// happened within the last second of traffic).
    pub fn report(&self) -> DriftReport {
        self.report_at(self.now())
    }

    fn report_at(&self, now: u64) -> DriftReport {
        let mut state = self.lock();
        self.judge(&mut state, now);
        DriftReport {
            model: self.model.clone(),
            version: self.version,
            psi_warn: self.settings.psi_warn,
            psi_alert: self.settings.psi_alert,
            min_rows: self.settings.min_rows,
            windows: state
                .windows
                .iter()
                .map(|w| self.window_report(w, now))
                .collect(),
        }
    }

    fn judge_psi(&self, value: Option<f64>, rows: u64) -> DriftStatus {
        match value {
            _ if rows < self.settings.min_rows => DriftStatus::InsufficientData,
            None => DriftStatus::InsufficientData,
            Some(v) if v >= self.settings.psi_alert => DriftStatus::Alert,
            Some(v) if v >= self.settings.psi_warn => DriftStatus::Warn,
            Some(_) => DriftStatus::Ok,
        }
    }

    fn window_report(&self, window: &Window, now: u64) -> WindowReport {
        let total = window.total(now);
        let share = |count: u64, of: u64| {
            if of == 0 {
                0.0
            } else {
                count as f64 / of as f64
            }
        };
        let features = self
            .features
            .iter()
            .map(|probe| {
                let bins = probe.distribution.bins();
                let counts = &total.counts[probe.offset..probe.offset + bins];
                let nulls = total.counts[probe.offset + bins];
                let outside = total.counts[probe.offset + bins + 1];
                let values: u64 = counts.iter().sum();
                let value = psi(&probe.distribution.expected(), counts);
                FeatureReport {
                    name: probe.name.clone(),
                    kind: kind(&probe.distribution),
                    psi: value,
                    status: self.judge_psi(value, values),
                    values,
                    null_share: probe.nullable.then(|| share(nulls, values + nulls)),
                    out_of_range_share: matches!(probe.distribution, Distribution::Numeric(_))
                        .then(|| share(outside, values)),
                    bins: bin_names(&probe.distribution),
                    expected: probe.distribution.expected(),
                    served: counts.iter().map(|&c| share(c, values)).collect(),
                }
            })
            .collect();
        let prediction = self.prediction.as_ref().map(|probe| {
            let bins = probe.distribution.bins();
            let counts = &total.counts[probe.offset..probe.offset + bins];
            let value = psi(&probe.distribution.expected(), counts);
            let mean =
                (total.predictions > 0).then(|| total.prediction_sum / total.predictions as f64);
            let (expected_mean, std) = match &probe.distribution {
                Distribution::Numeric(NumericBaseline { mean, std, .. }) => (*mean, *std),
                Distribution::Categorical(_) => (None, None),
            };
            let mean_status = match (mean, expected_mean, std) {
                _ if total.predictions < self.settings.min_rows => None,
                (Some(m), Some(mu), Some(sigma)) => Some(if (m - mu).abs() > 2.0 * sigma {
                    DriftStatus::Alert
                } else {
                    DriftStatus::Ok
                }),
                _ => None,
            };
            PredictionReport {
                target: probe.target.clone(),
                kind: kind(&probe.distribution),
                psi: value,
                status: self.judge_psi(value, total.predictions),
                rows: total.predictions,
                mean: matches!(probe.distribution, Distribution::Numeric(_))
                    .then_some(mean)
                    .flatten(),
                expected_mean,
                expected_std: std,
                mean_status,
                bins: bin_names(&probe.distribution),
                expected: probe.distribution.expected(),
                served: counts
                    .iter()
                    .map(|&c| share(c, total.predictions))
                    .collect(),
            }
        });
        WindowReport {
            window: window.label.clone(),
            seconds: window.seconds,
            rows: total.rows,
            features,
            prediction,
        }
    }
}

/// Each row's prediction bin and value (the value is 0 for a class).
fn probe_bins(probe: &PredictionProbe, outputs: &[NamedTensor], rows: usize) -> Vec<(usize, f64)> {
    let mut bins = Vec::with_capacity(rows);
    match &probe.source {
        PredictionSource::Label { output, labels } => {
            let (Some(data), Distribution::Categorical(categories)) =
                (find(outputs, output), &probe.distribution)
            else {
                return bins;
            };
            for r in 0..rows {
                let label = match data {
                    TensorData::String(v) => v.get(r).map(String::as_str),
                    _ => number_at(data, r)
                        .filter(|x| *x >= 0.0)
                        .and_then(|x| labels.get(x as usize))
                        .map(String::as_str),
                };
                if let Some(label) = label {
                    bins.push((categories.bin(label), 0.0));
                }
            }
        }
        PredictionSource::Argmax { output, labels } => {
            let (Some(data), Distribution::Categorical(categories)) =
                (find(outputs, output), &probe.distribution)
            else {
                return bins;
            };
            let width = labels.len();
            for r in 0..rows {
                let best = (0..width)
                    .filter_map(|c| Some((c, number_at(data, r * width + c)?)))
                    .fold(None, |best: Option<(usize, f64)>, (c, p)| match best {
                        Some((_, q)) if q >= p => best,
                        _ => Some((c, p)),
                    });
                if let Some((class, _)) = best {
                    bins.push((categories.bin(&labels[class]), 0.0));
                }
            }
        }
        PredictionSource::Value { output } => {
            let (Some(data), Distribution::Numeric(numeric)) =
                (find(outputs, output), &probe.distribution)
            else {
                return bins;
            };
            let width = data.len().checked_div(rows).unwrap_or(1).max(1);
            for r in 0..rows {
                let bin = match data {
                    TensorData::F32(values) => values
                        .get(r * width)
                        .filter(|x| x.is_finite())
                        .map(|&x| (numeric.bin_f32(x), f64::from(x))),
                    _ => number_at(data, r * width)
                        .filter(|x| x.is_finite())
                        .map(|x| (numeric.bin(x), x)),
                };
                bins.extend(bin);
            }
        }
    }
    bins
}

fn kind(distribution: &Distribution) -> &'static str {
    match distribution {
        Distribution::Numeric(_) => "numeric",
        Distribution::Categorical(_) => "categorical",
    }
}

/// A readable name per bin: `<= 4.2`, `4.2 – 7`, `> 7`; a category's value, and `(other)`.
fn bin_names(distribution: &Distribution) -> Vec<String> {
    match distribution {
        Distribution::Numeric(n) => {
            let mut names = Vec::with_capacity(n.edges.len() + 1);
            for (i, edge) in n.edges.iter().enumerate() {
                names.push(match i {
                    0 => format!("<= {edge}"),
                    _ => format!("{} – {edge}", n.edges[i - 1]),
                });
            }
            names.push(match n.edges.last() {
                Some(last) => format!("> {last}"),
                None => "all".to_owned(),
            });
            names
        }
        Distribution::Categorical(c) => {
            let mut names = c.values.clone();
            names.push("(other)".into());
            names
        }
    }
}

impl DriftReport {
    /// The figures as the metrics show them: per window, each feature, then the prediction.
    pub fn figures(&self) -> Vec<DriftFigure> {
        let mut figures = Vec::new();
        for window in &self.windows {
            for feature in &window.features {
                figures.push(DriftFigure {
                    window: window.window.clone(),
                    column: feature.name.clone(),
                    prediction: false,
                    rows: window.rows,
                    psi: feature.psi,
                    status: feature.status.level(),
                    out_of_range_share: feature.out_of_range_share,
                    null_share: feature.null_share,
                    mean: None,
                });
            }
            if let Some(prediction) = &window.prediction {
                figures.push(DriftFigure {
                    window: window.window.clone(),
                    column: prediction.target.clone(),
                    prediction: true,
                    rows: prediction.rows,
                    psi: prediction.psi,
                    status: prediction.status.level(),
                    out_of_range_share: None,
                    null_share: None,
                    mean: prediction.mean,
                });
            }
        }
        figures
    }
}

/// A version's drift figures, per window (the body of `GET /v1/models/{m}/drift`).
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub model: String,
    pub version: u64,
    pub psi_warn: f64,
    pub psi_alert: f64,
    pub min_rows: u64,
    pub windows: Vec<WindowReport>,
}

/// One window's figures.
#[derive(Debug, Clone, Serialize)]
pub struct WindowReport {
    /// As the manifest names it (`"5m"`).
    pub window: String,
    pub seconds: u64,
    /// Rows admitted in the window.
    pub rows: u64,
    pub features: Vec<FeatureReport>,
    pub prediction: Option<PredictionReport>,
}

/// One feature in one window.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureReport {
    pub name: String,
    pub kind: &'static str,
    /// `None` before any value.
    pub psi: Option<f64>,
    pub status: DriftStatus,
    /// Values counted (nulls apart).
    pub values: u64,
    /// Nullable features: the share of nulls among the rows.
    pub null_share: Option<f64>,
    /// Numeric features: the share of values outside the training range.
    pub out_of_range_share: Option<f64>,
    pub bins: Vec<String>,
    pub expected: Vec<f64>,
    pub served: Vec<f64>,
}

/// The prediction in one window, against the target's training distribution.
#[derive(Debug, Clone, Serialize)]
pub struct PredictionReport {
    pub target: String,
    pub kind: &'static str,
    pub psi: Option<f64>,
    pub status: DriftStatus,
    pub rows: u64,
    /// A regressor's mean prediction, and the training target's mean and standard deviation.
    pub mean: Option<f64>,
    pub expected_mean: Option<f64>,
    pub expected_std: Option<f64>,
    /// `alert` when the mean prediction is more than two standard deviations from the
    /// training mean; `None` when there is no mean to judge.
    pub mean_status: Option<DriftStatus>,
    pub bins: Vec<String>,
    pub expected: Vec<f64>,
    pub served: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use warden_contract::{Manifest, Output, OutputKind};
    use warden_runtime::Tensor;

    use super::*;

    /// A regressor's monitor: one feature `x` (deciles 0..=10), target `y` (deciles 0..=10,
    /// mean 5, std 1), answered by the value output `v`.
    fn regressor() -> DriftMonitor {
        let manifest = Manifest::from_toml(
            r#"
            [[features]]
            name = "x"
            type = "float"

            [baseline.x]
            quantiles = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]

            [baseline.y]
            role = "target"
            quantiles = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
            mean = 5.0
            std = 1.0
            "#,
        )
        .unwrap();
        let outputs = [Output {
            name: "v".into(),
            kind: OutputKind::Value,
            labels: None,
            relax: Vec::new(),
        }];
        let features = (manifest.features.clone(), Binding::PerColumn);
        monitor(
            "m",
            1,
            &manifest.drift,
            manifest.baseline().unwrap(),
            Some(&features),
            &outputs,
        )
        .unwrap()
    }

    fn column(name: &str, values: Vec<f32>) -> Vec<NamedTensor> {
        let rows = values.len();
        vec![NamedTensor {
            name: name.into(),
            tensor: Tensor::new(vec![rows, 1], TensorData::F32(values)).unwrap(),
        }]
    }

    #[test]
    fn a_mean_prediction_beyond_two_deviations_alerts() {
        let monitor = regressor();
        monitor.observe_outputs_at(&column("v", vec![5.5; 150]), 150, 0);
        let prediction = monitor.report_at(0).windows[0].prediction.clone().unwrap();
        assert_eq!(prediction.mean, Some(5.5));
        assert_eq!(prediction.mean_status, Some(DriftStatus::Ok));
        monitor.observe_outputs_at(&column("v", vec![9.5; 600]), 600, 0);
        let prediction = monitor.report_at(0).windows[0].prediction.clone().unwrap();
        // (150 × 5.5 + 600 × 9.5) / 750 = 8.7: more than 5 ± 2.
        assert!((prediction.mean.unwrap() - 8.7).abs() < 1e-9);
        assert_eq!(prediction.mean_status, Some(DriftStatus::Alert));
        assert_eq!(prediction.status, DriftStatus::Alert);
    }

    #[test]
    fn rows_leave_a_window_when_it_has_passed_them() {
        let monitor = regressor();
        let values: Vec<f32> = (0..200).map(|i| (i % 10) as f32 + 0.5).collect();
        monitor.observe_inputs_at(&column("x", values), 200, 0);
        let report = monitor.report_at(0);
        assert_eq!(report.windows[0].rows, 200);
        let x = &report.windows[0].features[0];
        assert!(x.psi.unwrap().abs() < 1e-12, "{x:?}");
        assert_eq!(x.status, DriftStatus::Ok);
        // Five minutes later the 5m window (slots of 30 s) no longer holds them; 1h does.
        let later = monitor.report_at(300);
        assert_eq!(later.windows[0].rows, 0);
        assert_eq!(
            later.windows[0].features[0].status,
            DriftStatus::InsufficientData
        );
        assert_eq!(later.windows[1].rows, 200);
    }

    #[test]
    fn nulls_and_values_outside_training_are_counted_apart() {
        let monitor = regressor();
        let mut values = vec![5.5f32; 100];
        values.extend([f32::NAN, 11.0, -1.0, 4.0]);
        monitor.observe_inputs_at(&column("x", values), 104, 0);
        let x = monitor.report_at(0).windows[0].features[0].clone();
        assert_eq!(x.values, 103);
        assert!((x.out_of_range_share.unwrap() - 2.0 / 103.0).abs() < 1e-12);
        // `x` is not nullable: no null share is reported (the contract refuses nulls for it).
        assert_eq!(x.null_share, None);
    }
}
