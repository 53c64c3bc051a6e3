//! `warden init`: a servable model folder (`NAME/warden.toml` and `NAME/1/model.onnx`) written
//! from a graph and, optionally, its training data, so nobody has to write a manifest by hand.
//!
//! From the graph come the features (one per column input, or the columns of one `[N, F]`
//! input), the outputs and their class labels, and which features are `nullable`: only those
//! the graph can take a missing value for (an `Imputer`, or trees that track missing values),
//! never merely those with blanks in the data, since a `null` anywhere else would get a
//! confident, meaningless answer. From a CSV of training data come each feature's observed
//! `min`/`max`, the category `values`, an `[example]` row the model answers soundly (the
//! complete row nearest the medians that passes the warm-up), and a `[baseline]` of quantiles
//! or category frequencies (and the target's distribution) for drift monitoring. The graph is
//! read on the engines `warden serve` would use, in the same order with the same fallback.
//!
//! The folder is built in a hidden folder inside the repository, loaded exactly as `warden
//! serve` would load it, and only then renamed into place, so what `init` writes is known to
//! serve and a failure leaves nothing behind. An existing folder is replaced as a whole, and
//! only with `--force` (refused before the data is read, naming what it would remove), so no
//! version folder of the old one is left to be served under the new manifest.
//!
//! This module is the command (what was asked, why nothing was written, the steps in order)
//! and the manifest's assembly; each step's concern is a module of its own: `table` reads the
//! CSV, `features` infers the features from the graph and the CSV's columns, `profile`
//! measures them (ranges, categories, the baseline), `example` chooses the `[example]` row,
//! `render` writes the manifest's text and `staging` is the transaction that puts the folder
//! in place.

mod background;
mod example;
mod features;
mod profile;
mod render;
mod staging;
mod summary;
mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use warden_contract::baseline::{BaselineTable, ColumnStats};
use warden_contract::{
    BackendChoice, Batching, Drift, FeatureType, Manifest, OutputKind, VersionEntry,
};
use warden_runtime::graph_facts::{class_labels, has_float64_input, inspect};
use warden_runtime::{RuntimeError, Signature};

use crate::serving::{Backends, LoadError, MANIFEST_FILE, MODEL_FILE, Refusal};
use crate::serving::{graph_inputs, sha256_hex};

use example::{Example, check_with_example, example_candidates};
use features::{GraphFacts, drop_rows_with_blanks, feature_columns, graph_facts, outputs};
use profile::{numbers, profile_feature};
use staging::Staging;
use table::{Table, read_csv};

pub(crate) use summary::Written;
/// What `warden init` was asked to do.
#[derive(Debug, Clone)]
pub(crate) struct InitRequest {
    pub model: PathBuf,
    pub name: String,
    pub repository: PathBuf,
    pub data: Option<PathBuf>,
    pub target: Option<String>,
    /// Overwrite an existing manifest.
    pub force: bool,
    /// Training rows to store as the background set for explanations (0: none).
    pub background_rows: usize,
}

/// Why `warden init` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{path} does not fit the model ({} {})", problems.len(), if problems.len() == 1 { "problem" } else { "problems" })]
    Data {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error("{0}")]
    Graph(String),
    #[error(
        "{path} already exists; pass --force to overwrite it{}",
        replaced(others)
    )]
    Exists {
        path: PathBuf,
        /// What the folder holds besides what init writes, which `--force` removes.
        others: Vec<String>,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The graph or the folder would not serve: no engine loads it, or the load check failed.
    #[error("{0}")]
    Check(NotServable),
}

/// Why what `init` built would not serve: the headline, the file, and the lines under it (each
/// engine's reason, the failed rows, and a `hint: ` line with the fix).
#[derive(Debug)]
pub struct NotServable {
    pub reason: String,
    pub path: Option<PathBuf>,
    pub details: Vec<String>,
}

impl std::fmt::Display for NotServable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl InitError {
    /// The file the error is about, when there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            InitError::Read { path, .. }
            | InitError::Data { path, .. }
            | InitError::Exists { path, .. }
            | InitError::Write { path, .. } => Some(path),
            InitError::Check(failure) => failure.path.as_deref(),
            _ => None,
        }
    }

    /// Each problem, for a diagnostic that lists them one per line.
    pub fn problems(&self) -> &[String] {
        match self {
            InitError::Data { problems, .. } => problems,
            InitError::Check(failure) => &failure.details,
            _ => &[],
        }
    }
}

/// What `--force` would remove besides the manifest and the graph, for [`InitError::Exists`].
fn replaced(others: &[String]) -> String {
    if others.is_empty() {
        String::new()
    } else {
        format!(
            " (--force replaces the model folder as a whole, so its {} would go too)",
            others.join(", ")
        )
    }
}

/// Writes the model folder and checks that it serves; returns what it wrote.
pub(crate) fn init(request: &InitRequest, backends: &Backends) -> Result<Written, InitError> {
    // Refused before anything is read: a large CSV is not profiled only to be refused.
    let folder = request.repository.join(&request.name);
    let manifest_path = folder.join(MANIFEST_FILE);
    let others = staging::others(&folder)?;
    if !request.force {
        if manifest_path.exists() {
            return Err(InitError::Exists {
                path: manifest_path,
                others,
            });
        }
        if !others.is_empty() {
            return Err(InitError::Exists {
                path: folder,
                others,
            });
        }
    }
    // Without --force, a folder that is there holds at most the graph being described.
    let replace = request.force || folder.is_dir();
    let bytes = std::fs::read(&request.model).map_err(|source| InitError::Read {
        path: request.model.clone(),
        source,
    })?;
    let nodes = inspect(&bytes).map_err(|kind| {
        let err = LoadError::NotOnnx {
            path: request.model.clone(),
            kind,
        };
        InitError::Check(NotServable {
            reason: err.to_string(),
            path: None,
            details: err
                .hint()
                .map(|hint| vec![format!("hint: {hint}")])
                .unwrap_or_default(),
        })
    })?;
    let (model, platform) = backends
        .open(&bytes, &request.model, &nodes)
        .map_err(|refusals| refused(&request.model, &bytes, &refusals))?;
    if backends.onnxruntime.is_some() && platform != "onnxruntime_onnx" {
        tracing::warn!(
            platform,
            "ONNX Runtime cannot load the graph, so it is described and checked on {}, \
             the engine `warden serve` falls back to",
            engine_name(platform)
        );
    }
    let signature = model.signature().clone();
    drop(model);
    let classes = class_labels(&bytes);
    let mut table = match &request.data {
        Some(path) => Some(read_csv(path)?),
        None => None,
    };
    let Description {
        mut manifest,
        examples,
        ignores_unseen,
        background,
    } = describe(
        &signature,
        &bytes,
        classes.as_deref(),
        table.as_mut(),
        request,
    )?;
    manifest.versions.insert(
        "1".into(),
        VersionEntry {
            sha256: Some(sha256_hex(&bytes)),
        },
    );
    let staging = Staging::create(&request.repository, &request.name)?;
    let graph_path = staging.path.join("1").join(MODEL_FILE);
    std::fs::create_dir(staging.path.join("1")).map_err(write_error(&staging.path))?;
    std::fs::write(&graph_path, &bytes).map_err(write_error(&graph_path))?;
    if let Some((text, explain)) = background {
        let path = staging.path.join(background::BACKGROUND_FILE);
        std::fs::write(&path, text).map_err(write_error(&path))?;
        manifest.explain = explain;
    }
    let (text, written) = check_with_example(request, backends, &graph_path, manifest, &examples)?;
    let staged_manifest = staging.path.join(MANIFEST_FILE);
    std::fs::write(&staged_manifest, text).map_err(write_error(&staged_manifest))?;
    staging.commit(&folder, replace)?;
    if !others.is_empty() {
        tracing::warn!(
            folder = %folder.display(),
            removed = %others.join(", "),
            "--force replaced the model folder as a whole, removing {}",
            others.join(", ")
        );
    }
    tracing::info!(
        manifest = %manifest_path.display(),
        "model folder written; it loads and passes its warm-up"
    );
    Ok(Written {
        folder,
        manifest: written,
        engine: engine_name(platform).to_owned(),
        onnxruntime_found: backends.onnxruntime.is_some(),
        with_data: request.data.is_some(),
        ignores_unseen,
    })
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + use<> {
    let path = path.to_path_buf();
    move |source| InitError::Write { path, source }
}

/// How an engine is named to a person.
fn engine_name(platform: &str) -> &str {
    match platform {
        "onnxruntime_onnx" => "ONNX Runtime",
        "tract_onnx" => "tract",
        other => other,
    }
}

/// No engine loads the graph: each engine's reason, and what to do about it. A float64 graph
/// gets its own hint, since the engine's words for it ("Type (tensor(double)) … does not match
/// expected type (tensor(float))", "Could not find an implementation for SVMRegressor(1)") do
/// not say that exporting with float32 is the fix.
fn refused(model: &Path, bytes: &[u8], refusals: &[Refusal]) -> InitError {
    let mut details: Vec<String> = refusals
        .iter()
        .map(|r| format!("{}: {}", engine_name(r.engine), r.error))
        .collect();
    let onnxruntime_refused = refusals.iter().any(|r| r.engine == "onnxruntime_onnx");
    let tract_refused = refusals.iter().any(|r| r.engine == "tract_onnx");
    let hint = if onnxruntime_refused && has_float64_input(bytes) {
        format!(
            "the graph computes in float64 (skl2onnx's DoubleTensorType), and ONNX Runtime's \
             ONNX-ML operators (tree ensembles, SVMs) take float32: export with float32 inputs \
             (FloatTensorType, skl2onnx's default){}",
            if tract_refused {
                ""
            } else {
                ", or use the `tract` backend (built into warden by its default `tract` feature)"
            }
        )
    } else {
        refusals
            .iter()
            .find_map(|r| r.error.hint())
            .unwrap_or_else(|| {
                "check that the file loads in Python with onnxruntime.InferenceSession, and \
                 export it again with standard ONNX and ONNX-ML operators"
                    .to_owned()
            })
    };
    details.push(format!("hint: {hint}"));
    InitError::Check(NotServable {
        reason: format!(
            "no inference engine can load {}",
            model.file_name().map_or_else(
                || model.display().to_string(),
                |n| n.to_string_lossy().into_owned()
            )
        ),
        path: Some(model.to_path_buf()),
        details,
    })
}

/// The load check failed for a reason other than the example row.
fn would_not_serve(request: &InitRequest, err: &LoadError) -> InitError {
    let hint = match err {
        // Without data the warm-up row is made up, so the stock advice (fix the example) misleads.
        LoadError::WarmUp { .. } if request.data.is_none() => Some(
            "without --data the warm-up row is made up (each feature's lower bound or 0, the \
             first category); pass --data train.csv so init picks a training row the model \
             answers soundly"
                .to_owned(),
        ),
        other => other.hint(),
    };
    InitError::Check(NotServable {
        reason: format!(
            "model `{}` would not serve, so nothing was written: {err}",
            request.name
        ),
        path: None,
        details: hint.map(|h| vec![format!("hint: {h}")]).unwrap_or_default(),
    })
}

/// What `describe` found: the manifest (without its `[example]`) and the candidate example
/// rows, best first.
struct Description {
    manifest: Manifest,
    examples: Vec<Example>,
    /// The category features whose graph ignores values it was not fitted on (reported; the
    /// manifest still refuses them unless the user says `handle_unknown = "pass"`).
    ignores_unseen: Vec<String>,
    /// The background set's text and its `[explain]` table (`--data`).
    background: Option<(String, warden_contract::Explain)>,
}

/// The manifest for `signature`, profiled from `table` when there is one (rows with a blank
/// where the graph cannot take one are dropped from it).
fn describe(
    signature: &Signature,
    graph: &[u8],
    classes: Option<&[String]>,
    mut table: Option<&mut Table>,
    request: &InitRequest,
) -> Result<Description, InitError> {
    let inputs = graph_inputs(signature);
    let mut problems = Vec::new();
    if let (Some(table), Some(target)) = (table.as_deref(), request.target.as_deref())
        && table.index(target).is_none()
    {
        problems.push(format!(
            "the target column `{target}` is not in the file (its columns are: {})",
            table.headers.join(", ")
        ));
    }
    let columns = match feature_columns(&inputs, table.as_deref(), request.target.as_deref()) {
        Ok(columns) => columns,
        Err(InitError::Data {
            path,
            problems: more,
        }) => {
            problems.extend(more);
            return Err(InitError::Data { path, problems });
        }
        Err(other) => return Err(other),
    };
    let GraphFacts {
        nullable,
        ignores_unseen,
    } = graph_facts(graph, &inputs, &columns);
    if let Some(table) = table.as_deref_mut() {
        drop_rows_with_blanks(table, &columns, &nullable)?;
    }
    let table = table.as_deref();
    let mut features = Vec::new();
    let mut baseline = BaselineTable::default();
    for (column, &nullable) in columns.iter().zip(&nullable) {
        let data = table.and_then(|t| Some((t.column(&column.name)?, t.lines.as_slice())));
        let profile = profile_feature(column, nullable, data, &mut problems);
        if let Some(stats) = profile.baseline {
            baseline.columns.insert(column.name.clone(), stats);
        }
        features.push(profile.feature);
    }
    if let (Some(table), Some(target)) = (table, request.target.as_deref()) {
        match table.column(target) {
            None => {}
            Some(cells) => {
                let observed: BTreeSet<&str> = cells.iter().copied().collect();
                if let Some(classes) = classes {
                    let declared: BTreeSet<&str> = classes.iter().map(String::as_str).collect();
                    if observed != declared {
                        problems.push(format!(
                            "the target column `{target}` holds the classes {observed:?}, but the model's classifier has {declared:?}"
                        ));
                    }
                }
                let stats = if classes.is_some() {
                    ColumnStats::categorical(&cells).map(ColumnStats::target)
                } else {
                    numbers(target, &cells, &table.lines, &mut problems)
                        .and_then(|values| ColumnStats::numeric_target(&values))
                };
                if let Some(stats) = stats {
                    baseline.columns.insert(target.to_owned(), stats);
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(InitError::Data {
            path: table.map(|t| t.path.clone()).unwrap_or_default(),
            problems,
        });
    }
    let examples = table.map_or_else(Vec::new, |t| example_candidates(t, &features));
    let outputs = outputs(&signature.outputs, classes);
    // Explanations read a probability (with its labels) or a value output.
    let explainable = outputs.iter().any(|o| match o.kind {
        OutputKind::Probability => o.labels.is_some(),
        OutputKind::Value => true,
        _ => false,
    });
    let background = table
        .filter(|_| explainable && !features.is_empty())
        .and_then(|t| background::sample(t, &features, request.background_rows));
    let ignores_unseen = features
        .iter()
        .zip(&ignores_unseen)
        .filter(|(feature, ignores)| **ignores && feature.kind == FeatureType::Category)
        .map(|(feature, _)| feature.name.clone())
        .collect();
    Ok(Description {
        manifest: Manifest {
            backend: BackendChoice::Auto,
            version: None,
            version_policy: None,
            rollout: None,
            features,
            outputs,
            batching: Batching::default(),
            example: None,
            versions: BTreeMap::new(),
            drift: Drift::default(),
            baseline: (!baseline.columns.is_empty()).then_some(baseline),
            prediction_log: Default::default(),
            explain: Default::default(),
        },
        examples,
        ignores_unseen,
        background,
    })
}
