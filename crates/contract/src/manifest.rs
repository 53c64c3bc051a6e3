//! The manifest, `warden.toml`: a model's declared contract (features, outputs), its batching
//! bounds, an example row for warm-up, and per-version facts. Unknown keys are rejected so a
//! typo never silently turns a check off.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::baseline::{Baseline, BaselineTable};
use crate::explain::Explain;
use crate::prediction_log::PredictionLog;
use crate::rollout::{Rollout, VersionPolicy};

/// Which engine runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// The server picks (today: ONNX Runtime).
    #[default]
    Auto,
    Onnxruntime,
    Tract,
}

/// A feature's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureType {
    Float,
    Int,
    Bool,
    String,
    Category,
}

impl FeatureType {
    /// How the type is named in messages.
    pub fn name(self) -> &'static str {
        match self {
            FeatureType::Float => "float",
            FeatureType::Int => "int",
            FeatureType::Bool => "bool",
            FeatureType::String => "string",
            FeatureType::Category => "category",
        }
    }

    /// Whether values of this type are numbers (and may have `min`/`max`).
    pub fn is_numeric(self) -> bool {
        matches!(self, FeatureType::Float | FeatureType::Int)
    }
}

/// One model input feature, in the order the model expects.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FeatureType,
    /// The lowest value served; below it a request is refused.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "whole_as_integer"
    )]
    pub min: Option<f64>,
    /// The highest value served; above it a request is refused.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "whole_as_integer"
    )]
    pub max: Option<f64>,
    /// The allowed values of a `category` feature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nullable: bool,
    /// What a `category` feature does with a value outside `values`: refuse it (the default),
    /// or pass it to the model (for a pipeline built to handle unseen categories, such as a
    /// OneHotEncoder with `handle_unknown="ignore"`).
    #[serde(default, skip_serializing_if = "HandleUnknown::is_refuse")]
    pub handle_unknown: HandleUnknown,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A bound written as the number a person would write: `8`, not `8.0` (TOML reads either back
/// as the same bound).
fn whole_as_integer<S: serde::Serializer>(
    value: &Option<f64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => serializer.serialize_some(&(*x as i64)),
        other => other.serialize(serializer),
    }
}

/// What a `category` feature does with a value it does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandleUnknown {
    /// A value outside `values` is a `category_error`.
    #[default]
    Refuse,
    /// Any text is served; the drift monitor still counts the values outside `values`.
    Pass,
}

impl HandleUnknown {
    fn is_refuse(&self) -> bool {
        *self == HandleUnknown::Refuse
    }
}

/// What a graph output means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// Per-class probabilities, one column per label.
    Probability,
    /// The predicted class label.
    Label,
    /// An unbounded per-class or single score.
    Score,
    /// A regression value (`raw` is accepted as a synonym).
    #[serde(alias = "raw")]
    Value,
}

/// An output guard that a manifest may switch off for one output. Non-finite values are
/// always refused: there is no guard to relax for NaN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelaxableGuard {
    /// Probabilities must lie within [0, 1].
    ProbabilityRange,
    /// Each probability row must sum to 1 ± 1e-3.
    ProbabilitySum,
    /// Labels must be among the declared labels.
    KnownLabels,
}

/// One graph output the manifest describes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// The graph output's name.
    pub name: String,
    pub kind: OutputKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Guards switched off for this output (the server says so at start).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relax: Vec<RelaxableGuard>,
}

/// Batching and queueing bounds for one model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Batching {
    /// Rows the engine runs at once; a larger request is cut into batches of this size.
    #[serde(default = "Batching::default_max_batch_size")]
    pub max_batch_size: usize,
    /// The most rows one request may hold (bounded as well by the body limit).
    #[serde(default = "Batching::default_max_request_rows")]
    pub max_request_rows: usize,
    #[serde(default = "Batching::default_max_queue_delay_ms")]
    pub max_queue_delay_ms: u64,
    #[serde(default = "Batching::default_queue_capacity")]
    pub queue_capacity: usize,
}

impl Batching {
    fn default_max_batch_size() -> usize {
        64
    }
    /// Far above a batch: a client scoring a file's worth of rows sends them in one request,
    /// and the server cuts it into batches. Ten thousand rows of twenty features is ~2 MB of
    /// JSON, inside the default 8 MiB body limit.
    pub fn default_max_request_rows() -> usize {
        10_000
    }
    /// No waiting for company by default: at low load a request runs at once, and under load
    /// batches form from what queued while the workers were busy.
    fn default_max_queue_delay_ms() -> u64 {
        0
    }
    fn default_queue_capacity() -> usize {
        256
    }
}

impl Default for Batching {
    fn default() -> Self {
        Batching {
            max_batch_size: Batching::default_max_batch_size(),
            max_request_rows: Batching::default_max_request_rows(),
            max_queue_delay_ms: Batching::default_max_queue_delay_ms(),
            queue_capacity: Batching::default_queue_capacity(),
        }
    }
}

/// Drift monitoring settings (`[drift]`): the windows served values are compared over, and the
/// PSI bands that warn and alert (see [`crate::baseline`] for the bands' source).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Drift {
    /// Sliding windows, as `"30s"`, `"5m"`, `"1h"`: each is compared with the baseline.
    #[serde(default = "Drift::default_windows")]
    pub windows: Vec<String>,
    /// PSI from which a feature is reported as drifting (`warn`).
    #[serde(default = "Drift::default_psi_warn")]
    pub psi_warn: f64,
    /// PSI from which a feature is reported as drifted (`alert`).
    #[serde(default = "Drift::default_psi_alert")]
    pub psi_alert: f64,
    /// Rows a window must hold before its figures are judged (fewer: `insufficient_data`).
    #[serde(default = "Drift::default_min_rows")]
    pub min_rows: u64,
}

impl Default for Drift {
    fn default() -> Drift {
        Drift {
            windows: Drift::default_windows(),
            psi_warn: Drift::default_psi_warn(),
            psi_alert: Drift::default_psi_alert(),
            min_rows: Drift::default_min_rows(),
        }
    }
}

impl Drift {
    fn default_windows() -> Vec<String> {
        vec!["5m".into(), "1h".into()]
    }
    fn default_psi_warn() -> f64 {
        0.1
    }
    fn default_psi_alert() -> f64 {
        0.25
    }
    fn default_min_rows() -> u64 {
        100
    }
    fn is_default(&self) -> bool {
        *self == Drift::default()
    }

    /// The windows in seconds, in the order given; `None` for one that does not parse.
    pub fn window_seconds(&self) -> Vec<Option<u64>> {
        self.windows.iter().map(|w| parse_span(w)).collect()
    }

    fn problems(&self, problems: &mut Vec<String>) {
        if self.windows.is_empty() || self.windows.len() > 4 {
            problems.push("`drift.windows` must list one to four windows".to_owned());
        }
        for (text, seconds) in self.windows.iter().zip(self.window_seconds()) {
            match seconds {
                Some(s) if (10..=86_400).contains(&s) => {}
                _ => problems.push(format!(
                    "`drift.windows` entry {text:?} must be a span from 10s to 24h, as \"30s\", \"5m\" or \"1h\""
                )),
            }
        }
        let spans: BTreeSet<Option<u64>> = self.window_seconds().into_iter().collect();
        if spans.len() != self.windows.len() {
            problems.push("`drift.windows` lists the same window twice".to_owned());
        }
        if !(self.psi_warn > 0.0 && self.psi_warn < self.psi_alert && self.psi_alert.is_finite()) {
            problems.push(format!(
                "`drift.psi_warn` ({}) must be above 0 and below `drift.psi_alert` ({})",
                self.psi_warn, self.psi_alert
            ));
        }
        if self.min_rows == 0 {
            problems.push("`drift.min_rows` must be at least 1".to_owned());
        }
    }
}

/// `"30s"`, `"5m"`, `"2h"` in seconds.
fn parse_span(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(scale)
}

/// Facts pinned for one version folder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VersionEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A parsed `warden.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub backend: BackendChoice,
    /// The default version (it answers requests that name none); default: the highest
    /// version folder loaded, other than a rollout's candidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Which other version folders are loaded and reachable by number; default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_policy: Option<VersionPolicy>,
    #[serde(default)]
    pub features: Vec<Feature>,
    #[serde(default)]
    pub outputs: Vec<Output>,
    #[serde(default)]
    pub batching: Batching,
    /// One valid row: used for the warm-up inference and in docs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, VersionEntry>,
    /// How served inputs and predictions are compared with the baseline.
    #[serde(default, skip_serializing_if = "Drift::is_default")]
    pub drift: Drift,
    /// Training statistics for drift (read by [`Manifest::baseline`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineTable>,
    /// A candidate version rolled out beside the default one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Which requests the prediction log keeps, and how (the server's defaults otherwise).
    #[serde(default, skip_serializing_if = "PredictionLog::is_default")]
    pub prediction_log: PredictionLog,
    /// The background set explanations are computed against, and their limits.
    #[serde(default, skip_serializing_if = "Explain::is_default")]
    pub explain: Explain,
}

/// A manifest that cannot be used, with every problem found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ManifestError {
    /// Not valid TOML, or a key or value of the wrong shape (the message has line and column).
    #[error("{0}")]
    Syntax(String),
    /// Well-formed, but inconsistent: each entry is one problem.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl Manifest {
    /// Parses and checks a manifest.
    pub fn from_toml(text: &str) -> Result<Manifest, ManifestError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|err| ManifestError::Syntax(err.to_string()))?;
        let problems = manifest.problems();
        if problems.is_empty() {
            Ok(manifest)
        } else {
            Err(ManifestError::Invalid(problems))
        }
    }

    /// The manifest as TOML that [`Manifest::from_toml`] reads back to an equal manifest.
    pub fn to_toml(&self) -> Result<String, ManifestError> {
        toml::to_string(self).map_err(|err| ManifestError::Syntax(err.to_string()))
    }

    /// The manifest without what says which versions are served and how they are rolled out:
    /// two manifests with equal contracts here serve a loaded version alike, so a change of
    /// only the default, the policy or the rollout does not reload any graph.
    pub fn contract_part(&self) -> Manifest {
        Manifest {
            version: None,
            version_policy: None,
            rollout: None,
            ..self.clone()
        }
    }

    /// The training baseline, typed; `None` when the manifest has none.
    pub fn baseline(&self) -> Result<Option<Baseline>, Vec<String>> {
        self.baseline.as_ref().map(Baseline::from_table).transpose()
    }

    /// Every inconsistency in the manifest, in reading order.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for feature in &self.features {
            let name = &feature.name;
            if !seen.insert(name.as_str()) {
                problems.push(format!("feature `{name}` is declared twice"));
            }
            match (&feature.values, feature.kind) {
                (None, FeatureType::Category) => problems.push(format!(
                    "feature `{name}` is a category but declares no `values`"
                )),
                (Some(values), FeatureType::Category) if values.is_empty() => {
                    problems.push(format!("feature `{name}` declares an empty `values` list"))
                }
                (Some(_), kind) if kind != FeatureType::Category => problems.push(format!(
                    "feature `{name}` is of type {} and cannot declare `values` (only a category can)",
                    kind.name()
                )),
                _ => {}
            }
            if feature.handle_unknown != HandleUnknown::Refuse
                && feature.kind != FeatureType::Category
            {
                problems.push(format!(
                    "feature `{name}` is of type {} and cannot declare `handle_unknown` (only a \
                     category can)",
                    feature.kind.name()
                ));
            }
            if !feature.kind.is_numeric() && (feature.min.is_some() || feature.max.is_some()) {
                problems.push(format!(
                    "feature `{name}` is of type {} and cannot declare `min`/`max`",
                    feature.kind.name()
                ));
            }
            if let (Some(min), Some(max)) = (feature.min, feature.max)
                && min > max
            {
                problems.push(format!(
                    "feature `{name}` has min {min} greater than max {max}"
                ));
            }
        }
        for output in &self.outputs {
            let needs_labels = matches!(output.kind, OutputKind::Probability | OutputKind::Label);
            if needs_labels && output.labels.as_ref().is_none_or(Vec::is_empty) {
                problems.push(format!(
                    "output `{}` is a {:?} output and must declare its `labels`",
                    output.name, output.kind
                ));
            }
        }
        if self.batching.max_batch_size == 0 {
            problems.push("`batching.max_batch_size` must be at least 1".to_owned());
        }
        if self.batching.max_request_rows == 0 {
            problems.push("`batching.max_request_rows` must be at least 1".to_owned());
        }
        if self.batching.queue_capacity == 0 {
            problems.push("`batching.queue_capacity` must be at least 1".to_owned());
        }
        for key in self.versions.keys() {
            if key.parse::<u64>().is_err() {
                problems.push(format!("`versions.{key}` is not a version number"));
            }
        }
        self.drift.problems(&mut problems);
        if let Some(VersionPolicy::Latest(0)) = self.version_policy {
            problems.push("`version_policy` `latest` must be at least 1".to_owned());
        }
        if let Some(rollout) = &self.rollout {
            problems.extend(rollout.problems(self.version));
        }
        if let Err(baseline) = self.baseline() {
            problems.extend(baseline);
        }
        let names: Vec<&str> = self.features.iter().map(|f| f.name.as_str()).collect();
        self.prediction_log.problems(&names, &mut problems);
        self.explain.problems(&mut problems);
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREDIT: &str = r#"
        [[features]]
        name = "age"
        type = "float"
        min = 18.0

        [[features]]
        name = "country"
        type = "category"
        values = ["US", "DE"]

        [[outputs]]
        name = "label"
        kind = "label"
        labels = ["approve", "reject"]

        [example]
        age = 42.0
        country = "US"
    "#;

    #[test]
    fn parses_a_manifest_with_defaults() {
        let manifest = Manifest::from_toml(CREDIT).unwrap();
        assert_eq!(manifest.backend, BackendChoice::Auto);
        assert_eq!(manifest.features.len(), 2);
        assert_eq!(manifest.features[1].kind, FeatureType::Category);
        assert_eq!(manifest.batching, Batching::default());
        let example = manifest.example.unwrap();
        assert_eq!(example["country"], "US");
    }

    #[test]
    fn a_manifest_written_as_toml_reads_back_equal() {
        let mut manifest = Manifest::from_toml(CREDIT).unwrap();
        manifest.versions.insert(
            "1".into(),
            VersionEntry {
                sha256: Some("ab".repeat(32)),
            },
        );
        let text = manifest.to_toml().unwrap();
        assert_eq!(Manifest::from_toml(&text).unwrap(), manifest, "{text}");
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_valid_ones_named() {
        let err = Manifest::from_toml("backnd = \"auto\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `backnd`"), "{err}");
        assert!(err.contains("`backend`"), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn every_inconsistency_is_reported() {
        let text = r#"
            [[features]]
            name = "a"
            type = "category"
            [[features]]
            name = "a"
            type = "string"
            min = 1.0
            [[outputs]]
            name = "p"
            kind = "probability"
        "#;
        let ManifestError::Invalid(problems) = Manifest::from_toml(text).unwrap_err() else {
            panic!("expected an invalid manifest");
        };
        assert_eq!(problems.len(), 4, "{problems:?}");
    }
}
