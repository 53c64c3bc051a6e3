//! How two versions' answers to the same rows are compared: what a row's answer is (a class
//! label with its probabilities, or a value), and the counters one comparison adds to a window.
//!
//! Classifiers: label agreement, the confusion counts of the primary's label × the other's, and
//! per class the |Δ probability| in logarithmic bins (eight per decade from 1e-9 to 1e9, so a
//! quantile is reported as its bin's upper edge, within a factor 1.34, and the maximum exactly).
//! Regressors: |Δ| in the same bins and the sum of signed differences (other − primary). For
//! both, the two versions' score distributions (labels, or values in signed logarithmic bins,
//! two per decade) for a PSI between them. Counters only: nothing of a row is kept.

use serde::Serialize;
use warden_contract::baseline::psi;
use warden_contract::{Output, OutputKind};
use warden_runtime::{DataType, NamedTensor, Signature, TensorData};

/// |Δ| bins: exact zero, then eight per decade from 1e-9 to 1e9 (the last holds anything above).
const DELTA_BINS: usize = 2 + 8 * 18;
/// Signed value bins for a regressor's PSI: two per decade either side of zero.
const VALUE_BINS: usize = 2 * 37 + 1;
/// Classes beyond which no confusion matrix is kept (agreement still is).
pub(super) const MAX_CONFUSION_CLASSES: usize = 64;

/// What a row's answer is, read from a version's outputs as the contract declares them.
#[derive(Debug, Clone)]
pub(super) enum Reader {
    /// A classifier: the label from a label output (text or class index) or, without one, the
    /// highest probability; and the probabilities when there is a probability output.
    Classes {
        labels: Vec<String>,
        label: Option<String>,
        probabilities: Option<String>,
    },
    /// A regressor (or any numeric output): the first value of each row.
    Value { output: String },
}

/// One version's answers to a batch of rows, as compared.
#[derive(Debug, Clone, Default)]
pub(super) struct Predictions {
    /// Per row, the class index (`None`: a label outside the declared ones).
    labels: Vec<Option<usize>>,
    /// Rows × classes, when the model answers probabilities.
    probabilities: Vec<f64>,
    /// Per row, a regressor's value.
    values: Vec<f64>,
}

impl Reader {
    /// The reader of a version's answers: its declared outputs, or the first numeric output
    /// of the graph when it declares none.
    pub(super) fn of(outputs: &[Output], signature: &Signature) -> Option<Reader> {
        let find = |kind: OutputKind| outputs.iter().find(|o| o.kind == kind);
        let probability = find(OutputKind::Probability);
        let label = find(OutputKind::Label);
        if let Some(labels) = probability
            .or(label)
            .and_then(|o| o.labels.clone())
            .filter(|l| !l.is_empty())
        {
            return Some(Reader::Classes {
                labels,
                label: label.map(|o| o.name.clone()),
                probabilities: probability.map(|o| o.name.clone()),
            });
        }
        let value = find(OutputKind::Value)
            .or_else(|| find(OutputKind::Score))
            .map(|o| o.name.clone())
            .or_else(|| {
                signature
                    .outputs
                    .iter()
                    .find(|s| matches!(s.data_type, DataType::F32 | DataType::F64))
                    .map(|s| s.name.clone())
            })?;
        Some(Reader::Value { output: value })
    }

    /// The classes compared (empty for a regressor).
    pub(super) fn labels(&self) -> &[String] {
        match self {
            Reader::Classes { labels, .. } => labels,
            Reader::Value { .. } => &[],
        }
    }

    /// Reads `rows` answers from `outputs`; `Err` names what is missing (an output the request
    /// did not ask for, or of an unexpected shape).
    pub(super) fn read(
        &self,
        outputs: &[NamedTensor],
        rows: usize,
    ) -> Result<Predictions, &'static str> {
        let find = |name: &str| {
            outputs
                .iter()
                .find(|t| t.name == name)
                .map(|t| &t.tensor.data)
        };
        match self {
            Reader::Classes {
                labels,
                label,
                probabilities,
            } => {
                let classes = labels.len();
                let mut read = Predictions::default();
                if let Some(name) = probabilities {
                    let data = find(name).ok_or("output_missing")?;
                    if data.len() != rows * classes {
                        return Err("output_shape");
                    }
                    read.probabilities = (0..rows * classes)
                        .map(|i| number_at(data, i).unwrap_or(f64::NAN))
                        .collect();
                }
                read.labels = match label
                    .as_deref()
                    .map(|name| find(name).ok_or("output_missing"))
                {
                    Some(data) => {
                        let data = data?;
                        if data.len() != rows {
                            return Err("output_shape");
                        }
                        (0..rows).map(|row| class_at(data, row, labels)).collect()
                    }
                    None => read
                        .probabilities
                        .chunks(classes.max(1))
                        .map(argmax)
                        .collect(),
                };
                Ok(read)
            }
            Reader::Value { output } => {
                let data = find(output).ok_or("output_missing")?;
                if rows == 0 || data.len() % rows != 0 {
                    return Err("output_shape");
                }
                let width = data.len() / rows;
                Ok(Predictions {
                    values: (0..rows)
                        .map(|row| number_at(data, row * width).unwrap_or(f64::NAN))
                        .collect(),
                    ..Predictions::default()
                })
            }
        }
    }
}

/// The counters of comparisons in one slot of time (or since the rollout began).
#[derive(Debug, Clone)]
pub(super) struct PairCounts {
    pub(super) rows: u64,
    pub(super) agreed: u64,
    /// Primary label × other label, row-major; empty when there are too many classes.
    confusion: Vec<u64>,
    /// Per class (or once for a regressor), the |Δ| bins.
    delta: Vec<u64>,
    delta_max: Vec<f64>,
    signed_sum: f64,
    /// Per version, its score distribution (labels, or value bins): primary, then other.
    scores: [Vec<u64>; 2],
}

impl PairCounts {
    pub(super) fn new(reader: &Reader) -> PairCounts {
        let classes = reader.labels().len();
        let (deltas, score_bins) = match reader {
            Reader::Classes { .. } => (classes, classes + 1),
            Reader::Value { .. } => (1, VALUE_BINS),
        };
        let confusion = if classes <= MAX_CONFUSION_CLASSES {
            // One more row and column for a label outside the declared ones.
            vec![0; (classes + 1) * (classes + 1)]
        } else {
            Vec::new()
        };
        PairCounts {
            rows: 0,
            agreed: 0,
            confusion,
            delta: vec![0; deltas * DELTA_BINS],
            delta_max: vec![0.0; deltas],
            signed_sum: 0.0,
            scores: [vec![0; score_bins], vec![0; score_bins]],
        }
    }

    pub(super) fn clear(&mut self) {
        self.rows = 0;
        self.agreed = 0;
        self.signed_sum = 0.0;
        for counts in [&mut self.confusion, &mut self.delta]
            .into_iter()
            .chain(self.scores.iter_mut())
        {
            counts.iter_mut().for_each(|c| *c = 0);
        }
        self.delta_max.iter_mut().for_each(|m| *m = 0.0);
    }

    pub(super) fn add(&mut self, other: &PairCounts) {
        self.rows += other.rows;
        self.agreed += other.agreed;
        self.signed_sum += other.signed_sum;
        let sum = |into: &mut Vec<u64>, from: &Vec<u64>| {
            into.iter_mut().zip(from).for_each(|(a, b)| *a += b);
        };
        sum(&mut self.confusion, &other.confusion);
        sum(&mut self.delta, &other.delta);
        sum(&mut self.scores[0], &other.scores[0]);
        sum(&mut self.scores[1], &other.scores[1]);
        for (a, b) in self.delta_max.iter_mut().zip(&other.delta_max) {
            *a = a.max(*b);
        }
    }

    /// Whether each row's answers agree, as [`PairCounts::compare`] counts them: equal labels
    /// (a classifier) or equal values (a regressor).
    pub(super) fn agreements(
        reader: &Reader,
        primary: &Predictions,
        other: &Predictions,
    ) -> Vec<bool> {
        match reader {
            Reader::Classes { .. } => primary
                .labels
                .iter()
                .zip(&other.labels)
                .map(|(p, o)| p.is_some() && p == o)
                .collect(),
            Reader::Value { .. } => primary
                .values
                .iter()
                .zip(&other.values)
                .map(|(p, o)| p == o)
                .collect(),
        }
    }

    /// Counts the comparison of `primary`'s answers with `other`'s on the same rows.
    pub(super) fn compare(&mut self, reader: &Reader, primary: &Predictions, other: &Predictions) {
        match reader {
            Reader::Classes { labels, .. } => {
                let classes = labels.len();
                let slot = |label: Option<usize>| label.unwrap_or(classes);
                for (&p, &o) in primary.labels.iter().zip(&other.labels) {
                    self.rows += 1;
                    self.agreed += u64::from(p.is_some() && p == o);
                    if !self.confusion.is_empty() {
                        self.confusion[slot(p) * (classes + 1) + slot(o)] += 1;
                    }
                    self.scores[0][slot(p)] += 1;
                    self.scores[1][slot(o)] += 1;
                }
                if primary.probabilities.len() == other.probabilities.len() {
                    for (i, (p, o)) in primary
                        .probabilities
                        .iter()
                        .zip(&other.probabilities)
                        .enumerate()
                    {
                        self.delta_at(i % classes.max(1), (o - p).abs());
                    }
                }
            }
            Reader::Value { .. } => {
                for (&p, &o) in primary.values.iter().zip(&other.values) {
                    self.rows += 1;
                    self.agreed += u64::from(p == o);
                    self.signed_sum += o - p;
                    self.delta_at(0, (o - p).abs());
                    self.scores[0][value_bin(p)] += 1;
                    self.scores[1][value_bin(o)] += 1;
                }
            }
        }
    }

    fn delta_at(&mut self, column: usize, delta: f64) {
        let delta = if delta.is_nan() { f64::INFINITY } else { delta };
        self.delta[column * DELTA_BINS + delta_bin(delta)] += 1;
        let max = &mut self.delta_max[column];
        *max = max.max(delta);
    }

    /// The figures of these counters.
    pub(super) fn report(&self, reader: &Reader) -> ComparisonFigures {
        let quantiles = |column: usize| {
            let bins = &self.delta[column * DELTA_BINS..(column + 1) * DELTA_BINS];
            DeltaQuantiles::of(bins, self.delta_max[column])
        };
        let shares = |counts: &[u64]| {
            let total: u64 = counts.iter().sum();
            counts
                .iter()
                .map(|&c| c as f64 / total.max(1) as f64)
                .collect::<Vec<_>>()
        };
        let psi = (self.rows > 0)
            .then(|| psi(&shares(&self.scores[0]), &self.scores[1]))
            .flatten();
        match reader {
            Reader::Classes { labels, .. } => {
                let classes = labels.len();
                let confusion = (!self.confusion.is_empty()).then(|| {
                    let mut names = labels.clone();
                    let outside = self.confusion[classes * (classes + 1)..]
                        .iter()
                        .sum::<u64>()
                        + (0..classes)
                            .map(|r| self.confusion[r * (classes + 1) + classes])
                            .sum::<u64>();
                    let size = if outside > 0 {
                        names.push("(other)".to_owned());
                        classes + 1
                    } else {
                        classes
                    };
                    Confusion {
                        counts: (0..size)
                            .map(|r| {
                                (0..size)
                                    .map(|c| self.confusion[r * (classes + 1) + c])
                                    .collect()
                            })
                            .collect(),
                        labels: names,
                    }
                });
                ComparisonFigures {
                    rows: self.rows,
                    agreed: self.agreed,
                    agreement: (self.rows > 0).then(|| self.agreed as f64 / self.rows as f64),
                    confusion,
                    probability_delta: (self.delta.iter().any(|&c| c > 0)).then(|| {
                        labels
                            .iter()
                            .enumerate()
                            .map(|(i, label)| (label.clone(), quantiles(i)))
                            .collect()
                    }),
                    delta: None,
                    mean_signed_difference: None,
                    psi,
                }
            }
            Reader::Value { .. } => ComparisonFigures {
                rows: self.rows,
                agreed: self.agreed,
                agreement: (self.rows > 0).then(|| self.agreed as f64 / self.rows as f64),
                confusion: None,
                probability_delta: None,
                delta: (self.rows > 0).then(|| quantiles(0)),
                mean_signed_difference: (self.rows > 0).then(|| self.signed_sum / self.rows as f64),
                psi,
            },
        }
    }
}

/// What a comparison of two versions found, as reports and metrics show it.
#[derive(Debug, Clone, Serialize)]
pub struct ComparisonFigures {
    /// Rows answered by both.
    pub rows: u64,
    /// Rows whose labels (classifiers) or values (regressors) are equal.
    pub agreed: u64,
    pub agreement: Option<f64>,
    /// Primary label (rows) × other label (columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confusion: Option<Confusion>,
    /// Per class, |Δ probability| quantiles (in JSON an object by class, in label order).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "by_class")]
    pub probability_delta: Option<Vec<(String, DeltaQuantiles)>>,
    /// A regressor's |Δ| quantiles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaQuantiles>,
    /// A regressor's mean of other − primary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_signed_difference: Option<f64>,
    /// PSI of the other version's score distribution against the primary's.
    pub psi: Option<f64>,
}

/// Per-class figures as a JSON object keyed by class, in label order.
fn by_class<S: serde::Serializer>(
    classes: &Option<Vec<(String, DeltaQuantiles)>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let classes = classes.iter().flatten();
    serializer.collect_map(classes.map(|(class, quantiles)| (class, quantiles)))
}

/// The confusion counts: `counts[i][j]` rows the primary labelled `labels[i]` and the other
/// `labels[j]`.
#[derive(Debug, Clone, Serialize)]
pub struct Confusion {
    pub labels: Vec<String>,
    pub counts: Vec<Vec<u64>>,
}

/// Quantiles of |Δ|: each the upper edge of its bin (an upper bound within a factor 1.34),
/// the maximum exact.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DeltaQuantiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl DeltaQuantiles {
    fn of(bins: &[u64], max: f64) -> DeltaQuantiles {
        let total: u64 = bins.iter().sum();
        let at = |q: f64| {
            let rank = ((q * total as f64).ceil() as u64).max(1);
            let mut seen = 0;
            for (bin, &count) in bins.iter().enumerate() {
                seen += count;
                if seen >= rank {
                    return bin_upper_edge(bin).min(max);
                }
            }
            max
        };
        DeltaQuantiles {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max,
        }
    }
}

/// The bin of |Δ| (`delta` ≥ 0): 0 for exactly zero, then eight per decade from 1e-9.
fn delta_bin(delta: f64) -> usize {
    if delta == 0.0 {
        return 0;
    }
    let step = (8.0 * (delta.log10() + 9.0)).ceil();
    1 + (step.max(0.0) as usize).min(DELTA_BINS - 2)
}

fn bin_upper_edge(bin: usize) -> f64 {
    if bin == 0 {
        0.0
    } else {
        10f64.powf((bin - 1) as f64 / 8.0 - 9.0)
    }
}

/// A value's signed logarithmic bin, two per decade from 1e-9 to 1e9 either side of zero.
fn value_bin(value: f64) -> usize {
    const HALF: usize = 37;
    if value == 0.0 || !value.is_finite() && value.is_nan() {
        return HALF;
    }
    let step = (2.0 * (value.abs().log10() + 9.0)).floor().clamp(0.0, 35.0) as usize + 1;
    if value > 0.0 {
        HALF + step
    } else {
        HALF - step
    }
}

fn argmax(row: &[f64]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, &p) in row.iter().enumerate() {
        if !p.is_nan() && best.is_none_or(|(_, b)| p > b) {
            best = Some((i, p));
        }
    }
    best.map(|(i, _)| i)
}

/// The class of a label held in a tensor: its text, or an integer class index.
fn class_at(data: &TensorData, row: usize, labels: &[String]) -> Option<usize> {
    match data {
        TensorData::String(v) => {
            let label = v.get(row)?;
            labels.iter().position(|l| l == label)
        }
        TensorData::I64(v) => usize::try_from(*v.get(row)?)
            .ok()
            .filter(|&i| i < labels.len()),
        TensorData::I32(v) => usize::try_from(*v.get(row)?)
            .ok()
            .filter(|&i| i < labels.len()),
        _ => None,
    }
}

fn number_at(data: &TensorData, index: usize) -> Option<f64> {
    Some(match data {
        TensorData::F32(v) => f64::from(*v.get(index)?),
        TensorData::F64(v) => *v.get(index)?,
        TensorData::I64(v) => *v.get(index)? as f64,
        TensorData::I32(v) => f64::from(*v.get(index)?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_bins_are_ordered_and_their_edges_bound_them() {
        for delta in [1e-12, 1e-9, 3e-7, 0.01, 0.5, 1.0, 7.0, 1e12] {
            let bin = delta_bin(delta);
            assert!((1..DELTA_BINS).contains(&bin), "{delta}");
            if (1e-9..=1e9).contains(&delta) {
                assert!(bin_upper_edge(bin) >= delta * (1.0 - 1e-12), "{delta}");
                assert!(bin_upper_edge(bin) < delta * 1.34, "{delta}");
            }
        }
        assert_eq!(delta_bin(0.0), 0);
        assert!(value_bin(-5.0) < value_bin(0.0) && value_bin(0.0) < value_bin(5.0));
    }

    #[test]
    fn labels_are_compared_into_agreement_and_confusion() {
        let reader = Reader::Classes {
            labels: vec!["a".into(), "b".into()],
            label: None,
            probabilities: Some("p".into()),
        };
        let primary = Predictions {
            labels: vec![Some(0), Some(1), Some(1)],
            probabilities: vec![0.9, 0.1, 0.2, 0.8, 0.4, 0.6],
            values: Vec::new(),
        };
        let other = Predictions {
            labels: vec![Some(0), Some(0), Some(1)],
            probabilities: vec![0.9, 0.1, 0.6, 0.4, 0.4, 0.6],
            values: Vec::new(),
        };
        let mut counts = PairCounts::new(&reader);
        counts.compare(&reader, &primary, &other);
        let figures = counts.report(&reader);
        assert_eq!((figures.rows, figures.agreed), (3, 2));
        let confusion = figures.confusion.unwrap();
        assert_eq!(confusion.counts, vec![vec![1, 0], vec![1, 1]]);
        let deltas = figures.probability_delta.unwrap();
        assert!((deltas[0].1.max - 0.4).abs() < 1e-12);
        assert_eq!(deltas[0].1.p50, 0.0);
    }
}
