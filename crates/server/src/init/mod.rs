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
//! serve and a failure leaves nothing behind.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use warden_contract::baseline::bin_shares;
use warden_contract::{
    BackendChoice, Batching, Drift, Feature, FeatureType, GraphElement, GraphInput, Manifest,
    Output, OutputKind, VersionEntry,
};
use warden_runtime::graph_facts::{
    InputColumns, class_labels, has_float64_input, inspect, missing_value_columns,
};
use warden_runtime::{DataType, RuntimeError, Signature, TensorSpec};

use crate::serving::LoadError;
use crate::serving::graph_inputs;
use crate::serving::sha256_hex;
use crate::serving::{Backends, Refusal};
use crate::serving::{MANIFEST_FILE, MODEL_FILE, ModelSource};

/// Category columns with more distinct values than this are declared `string` instead.
const MAX_CATEGORY_VALUES: usize = 64;
/// Violations reported per CSV column before the rest are summarised.
const MAX_CELL_PROBLEMS: usize = 5;
/// Candidate `[example]` rows tried before giving up: a model that answers none of the rows
/// nearest the medians soundly is broken, and each try is a full load.
const MAX_EXAMPLE_TRIES: usize = 50;
/// Failed candidate rows quoted when none passes.
const MAX_EXAMPLE_FAILURES_SHOWN: usize = 3;

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
    #[error("{path} already exists; pass --force to overwrite it")]
    Exists { path: PathBuf },
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
            | InitError::Exists { path }
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

/// Writes the model folder and checks that it serves; returns the manifest's path.
pub(crate) fn init(request: &InitRequest, backends: &Backends) -> Result<PathBuf, InitError> {
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
    let folder = request.repository.join(&request.name);
    let manifest_path = folder.join(MANIFEST_FILE);
    if manifest_path.exists() && !request.force {
        return Err(InitError::Exists {
            path: manifest_path,
        });
    }
    let staging = Staging::create(&request.repository, &request.name)?;
    let graph_path = staging.path.join("1").join(MODEL_FILE);
    std::fs::create_dir(staging.path.join("1")).map_err(write_error(&staging.path))?;
    std::fs::write(&graph_path, &bytes).map_err(write_error(&graph_path))?;
    let text = check_with_example(request, backends, &graph_path, manifest, &examples)?;
    let staged_manifest = staging.path.join(MANIFEST_FILE);
    std::fs::write(&staged_manifest, text).map_err(write_error(&staged_manifest))?;
    staging.commit(&folder)?;
    Ok(manifest_path)
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

/// A model folder built beside its final place. Its name starts with a dot, which the
/// repository scan passes over, so a `warden serve --watch` on the repository never sees it
/// half-written; being in the repository's own directory makes the final rename atomic. It is
/// removed unless committed.
struct Staging {
    path: PathBuf,
    committed: bool,
    /// The repository folder, when `init` made it: removed with the staging folder if empty.
    made_repository: Option<PathBuf>,
}

impl Staging {
    fn create(repository: &Path, name: &str) -> Result<Staging, InitError> {
        let made_repository = (!repository.exists()).then(|| repository.to_path_buf());
        std::fs::create_dir_all(repository).map_err(write_error(repository))?;
        let mut attempt = 0;
        loop {
            let path = repository.join(format!(".{name}.init-{}-{attempt}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    return Ok(Staging {
                        path,
                        committed: false,
                        made_repository,
                    });
                }
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(source) => return Err(InitError::Write { path, source }),
            }
        }
    }

    /// Moves what was built to `folder`: by one rename when `folder` is new; file by file (each
    /// a rename) into an existing one (`--force`), so its other version folders are kept.
    fn commit(mut self, folder: &Path) -> Result<(), InitError> {
        if !folder.exists() {
            std::fs::rename(&self.path, folder).map_err(write_error(folder))?;
            self.committed = true;
            return Ok(());
        }
        let version = folder.join("1");
        std::fs::create_dir_all(&version).map_err(write_error(&version))?;
        for file in [
            Path::new("1").join(MODEL_FILE),
            PathBuf::from(MANIFEST_FILE),
        ] {
            let target = folder.join(&file);
            std::fs::rename(self.path.join(&file), &target).map_err(write_error(&target))?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.path);
            if let Some(repository) = &self.made_repository {
                let _ = std::fs::remove_dir(repository);
            }
        }
    }
}

/// Loads the folder as `warden serve` would (the manifest as written and read back, the
/// contract against the graph, the warm-up, the output guards), trying the candidate
/// `[example]` rows in order until one passes; returns the manifest's text.
fn check_with_example(
    request: &InitRequest,
    backends: &Backends,
    graph: &Path,
    mut manifest: Manifest,
    examples: &[Example],
) -> Result<String, InitError> {
    let load = |manifest: &Manifest| -> Result<Result<String, LoadError>, InitError> {
        let text = render(manifest, request)?;
        let written = Manifest::from_toml(&text).map_err(|err| {
            InitError::Graph(format!("the manifest init wrote does not read back: {err}"))
        })?;
        let source = ModelSource {
            name: request.name.clone(),
            version: 1,
            graph: graph.to_path_buf(),
            manifest: Some(written),
        };
        Ok(backends.load(&source).map(|_| text))
    };
    if examples.is_empty() {
        manifest.example = None;
        return load(&manifest)?.map_err(|err| would_not_serve(request, &err));
    }
    let mut failures = Vec::new();
    for (rank, example) in examples.iter().enumerate() {
        manifest.example = Some(example.row.clone());
        match load(&manifest)? {
            Ok(text) => {
                if rank > 0 {
                    tracing::info!(
                        line = example.line,
                        skipped = rank,
                        "[example] is line {} of the data: the model answered the {rank} rows \
                         nearer the medians invalidly",
                        example.line
                    );
                }
                return Ok(text);
            }
            Err(err @ LoadError::WarmUp { .. }) => {
                tracing::debug!(line = example.line, error = %err, "not a usable [example] row");
                failures.push((example.line, err));
            }
            Err(err) => return Err(would_not_serve(request, &err)),
        }
    }
    let mut details: Vec<String> = failures
        .iter()
        .take(MAX_EXAMPLE_FAILURES_SHOWN)
        .map(|(line, err)| format!("line {line}: {err}"))
        .collect();
    if failures.len() > MAX_EXAMPLE_FAILURES_SHOWN {
        details.push(format!(
            "and {} more rows",
            failures.len() - MAX_EXAMPLE_FAILURES_SHOWN
        ));
    }
    details.push(
        "hint: the model answers NaN, infinity or a broken probability for ordinary training \
         rows; check the model (and that the data is the one it was trained on)"
            .to_owned(),
    );
    let candidates = match examples.len() {
        1 => "the one complete row".to_owned(),
        n if n < MAX_EXAMPLE_TRIES => format!("the {n} complete rows"),
        n => format!("the {n} complete rows nearest the medians"),
    };
    Err(InitError::Check(NotServable {
        reason: format!(
            "model `{}` answers none of {candidates} validly, so there is no [example] row for \
             its warm-up; nothing was written",
            request.name
        ),
        path: request.data.clone(),
        details,
    }))
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

/// The manifest as written: a header saying where it came from, then the TOML.
fn render(manifest: &Manifest, request: &InitRequest) -> Result<String, InitError> {
    let file_name = |path: &Path| {
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    let mut from = format!("the graph {}", file_name(&request.model));
    if let Some(data) = &request.data {
        from.push_str(&format!(" and the training data {}", file_name(data)));
    }
    let toml = manifest
        .to_toml()
        .map_err(|err| InitError::Graph(format!("cannot render the manifest: {err}")))?;
    let mut advice = if request.data.is_some() {
        "# Edit freely. `min`/`max` are the range seen in training: a request outside it is\n\
         # refused, so widen them if real inputs may go further.\n"
            .to_owned()
    } else {
        "# Edit freely. Without training data it declares no ranges or categories; run\n\
         # `warden init --data train.csv` to have them, an example row and a drift\n\
         # baseline written.\n"
            .to_owned()
    };
    if manifest.features.iter().any(|f| f.nullable) {
        advice.push_str(
            "# `nullable` features are those the graph can take a missing value for (an Imputer,\n\
             # or trees that track missing values); `null` for any other is refused.\n",
        );
    }
    let mut text = format!(
        "# The contract of model `{name}`, written by `warden init`\n\
         # from {from}.\n\
         {advice}\n{toml}",
        name = request.name
    );
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// A CSV file: its header and its rows, as text, each row with its line in the file.
#[derive(Debug)]
struct Table {
    path: PathBuf,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    lines: Vec<u64>,
}

impl Table {
    fn index(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    fn column(&self, name: &str) -> Option<Vec<&str>> {
        let index = self.index(name)?;
        Some(self.rows.iter().map(|row| row[index].as_str()).collect())
    }
}

fn read_csv(path: &Path) -> Result<Table, InitError> {
    let data_error = |problem: String| InitError::Data {
        path: path.to_path_buf(),
        problems: vec![problem],
    };
    let mut reader = csv::Reader::from_path(path).map_err(|err| match err.into_kind() {
        csv::ErrorKind::Io(source) => InitError::Read {
            path: path.to_path_buf(),
            source,
        },
        other => data_error(format!("{other:?}")),
    })?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|err| data_error(err.to_string()))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|err| data_error(err.to_string()))?;
        lines.push(
            record
                .position()
                .map_or(rows.len() as u64 + 2, csv::Position::line),
        );
        rows.push(record.iter().map(|cell| cell.trim().to_owned()).collect());
    }
    if rows.is_empty() {
        return Err(data_error("it has a header but no rows".into()));
    }
    Ok(Table {
        path: path.to_path_buf(),
        headers,
        rows,
        lines,
    })
}

/// One feature: its name, the graph element it feeds, and where: which graph input, which
/// column of it.
#[derive(Debug, Clone)]
struct FeatureColumn {
    name: String,
    element: GraphElement,
    input: String,
    column: usize,
}

/// What `describe` found: the manifest (without its `[example]`) and the candidate example
/// rows, best first.
struct Description {
    manifest: Manifest,
    examples: Vec<Example>,
}

/// A candidate `[example]` row and its line in the data.
struct Example {
    line: u64,
    row: serde_json::Map<String, Value>,
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
    let nullable = nullable_features(graph, &inputs, &columns);
    if let Some(table) = table.as_deref_mut() {
        drop_rows_with_blanks(table, &columns, &nullable)?;
    }
    let table = table.as_deref();
    let mut features = Vec::new();
    let mut baseline = toml::Table::new();
    for (column, &nullable) in columns.iter().zip(&nullable) {
        let data = table.and_then(|t| Some((t.column(&column.name)?, t.lines.as_slice())));
        let profile = profile_feature(column, nullable, data, &mut problems);
        if let Some(stats) = profile.baseline {
            baseline.insert(column.name.clone(), toml::Value::Table(stats));
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
                let mut stats = if classes.is_some() {
                    frequencies(&cells)
                } else {
                    numbers(target, &cells, &table.lines, &mut problems)
                        .map_or_else(toml::Table::new, |v| target_numbers(&v))
                };
                stats.insert("role".into(), toml::Value::String("target".into()));
                baseline.insert(target.to_owned(), toml::Value::Table(stats));
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
    Ok(Description {
        manifest: Manifest {
            backend: BackendChoice::Auto,
            version: None,
            features,
            outputs: outputs(&signature.outputs, classes),
            batching: Batching::default(),
            example: None,
            versions: BTreeMap::new(),
            drift: Drift::default(),
            baseline: (!baseline.is_empty()).then_some(baseline),
        },
        examples,
    })
}

/// Whether each feature is nullable: a float the graph can take a missing value for. The
/// contract sends `null` to the graph as NaN, and only an `Imputer` or a tree that tracks
/// missing values turns a NaN into a meaningful answer; blanks in the training data say
/// nothing about that.
fn nullable_features(graph: &[u8], inputs: &[GraphInput], columns: &[FeatureColumn]) -> Vec<bool> {
    let described: Vec<InputColumns<'_>> = inputs
        .iter()
        .map(|input| InputColumns {
            name: &input.name,
            rank: input.shape.len(),
            width: columns.iter().filter(|c| c.input == input.name).count(),
        })
        .collect();
    let taking = missing_value_columns(graph, &described);
    columns
        .iter()
        .map(|c| c.element == GraphElement::Float && taking.contains(&(c.input.clone(), c.column)))
        .collect()
}

/// Drops the rows with a blank in a feature the graph cannot take a missing value for, saying
/// how many per column: such a row is not an input the model can be asked about, so it must
/// not shape the ranges, the categories (a blank is not the category ""), the example or the
/// baseline.
fn drop_rows_with_blanks(
    table: &mut Table,
    columns: &[FeatureColumn],
    nullable: &[bool],
) -> Result<(), InitError> {
    let strict: Vec<(usize, &str)> = columns
        .iter()
        .zip(nullable)
        .filter(|(_, nullable)| !**nullable)
        .filter_map(|(c, _)| Some((table.index(&c.name)?, c.name.as_str())))
        .collect();
    let mut blank_columns = Vec::new();
    for &(index, name) in &strict {
        let blanks = table
            .rows
            .iter()
            .filter(|row| row[index].is_empty())
            .count();
        if blanks > 0 {
            tracing::warn!(
                column = name,
                blank_rows = blanks,
                "column `{name}` has {blanks} blank {}, but the graph cannot take a missing \
                 value for it (no Imputer, no tree that tracks missing values): those rows are \
                 left out of the statistics, and a request with null for `{name}` is refused",
                if blanks == 1 { "cell" } else { "cells" }
            );
            blank_columns.push(name);
        }
    }
    if blank_columns.is_empty() {
        return Ok(());
    }
    let keep: Vec<bool> = table
        .rows
        .iter()
        .map(|row| strict.iter().all(|&(index, _)| !row[index].is_empty()))
        .collect();
    let mut kept = keep.iter();
    table.rows.retain(|_| kept.next().copied().unwrap_or(false));
    let mut kept = keep.iter();
    table
        .lines
        .retain(|_| kept.next().copied().unwrap_or(false));
    if table.rows.is_empty() {
        return Err(InitError::Data {
            path: table.path.clone(),
            problems: vec![format!(
                "every row has a blank in {}, which the graph cannot take a missing value for",
                blank_columns
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )],
        });
    }
    Ok(())
}
/// The features in model order, each with its graph input and column, checked against the CSV.
fn feature_columns(
    inputs: &[GraphInput],
    table: Option<&Table>,
    target: Option<&str>,
) -> Result<Vec<FeatureColumn>, InitError> {
    let data_columns: Option<Vec<&String>> = table.map(|t| {
        t.headers
            .iter()
            .filter(|h| Some(h.as_str()) != target)
            .collect()
    });
    let data_error = |problems: Vec<String>| InitError::Data {
        path: table.map(|t| t.path.clone()).unwrap_or_default(),
        problems,
    };
    if let [input] = inputs
        && let [_, width] = input.shape.as_slice()
        && *width != 1
    {
        // One [N, F] input: the CSV's column names name its columns.
        return match data_columns {
            Some(columns) => {
                if *width > 0 && columns.len() != *width as usize {
                    return Err(data_error(vec![format!(
                        "graph input `{}` has {width} columns but the file has {} feature columns ({}){}",
                        input.name,
                        columns.len(),
                        columns
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        if target.is_none() {
                            "; name the label column with --target"
                        } else {
                            ""
                        }
                    )]));
                }
                Ok(columns
                    .into_iter()
                    .enumerate()
                    .map(|(column, name)| FeatureColumn {
                        name: name.clone(),
                        element: input.element,
                        input: input.name.clone(),
                        column,
                    })
                    .collect())
            }
            None if *width > 0 => Ok((0..*width as usize)
                .map(|column| FeatureColumn {
                    name: format!("{}_{column}", input.name),
                    element: input.element,
                    input: input.name.clone(),
                    column,
                })
                .collect()),
            None => Err(InitError::Graph(format!(
                "graph input `{}` has a dynamic number of columns; pass --data so the CSV's columns name them",
                input.name
            ))),
        };
    }
    let mut problems = Vec::new();
    for input in inputs {
        let is_column = matches!(input.shape.as_slice(), [_] | [_, 1] | [_, -1]);
        if !is_column {
            problems.push(format!(
                "graph input `{}` has shape {:?}; warden describes one [N, F] input or [N, 1] inputs",
                input.name, input.shape
            ));
        }
    }
    if !problems.is_empty() {
        return Err(InitError::Graph(problems.join("; ")));
    }
    if let Some(columns) = &data_columns {
        for input in inputs {
            if !columns.iter().any(|c| **c == input.name) {
                problems.push(format!(
                    "graph input `{}` has no column in the file",
                    input.name
                ));
            }
        }
        for column in columns {
            if !inputs.iter().any(|input| input.name == **column) {
                problems.push(format!(
                    "column `{column}` is not a graph input (the graph's inputs are: {}){}",
                    inputs
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if target.is_none() {
                        "; if it is the label, pass --target"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(data_error(problems));
    }
    Ok(inputs
        .iter()
        .map(|i| FeatureColumn {
            name: i.name.clone(),
            element: i.element,
            input: i.name.clone(),
            column: 0,
        })
        .collect())
}

struct FeatureProfile {
    feature: Feature,
    baseline: Option<toml::Table>,
}

/// The feature's declaration and baseline from its column of the data (`cells`, with each row's
/// line in the file), when there is data.
fn profile_feature(
    column: &FeatureColumn,
    nullable: bool,
    data: Option<(Vec<&str>, &[u64])>,
    problems: &mut Vec<String>,
) -> FeatureProfile {
    let mut feature = Feature::plain(&column.name, column.element);
    feature.nullable = nullable;
    let Some((cells, lines)) = data else {
        return FeatureProfile {
            feature,
            baseline: None,
        };
    };
    // Blanks left are missing values of a nullable feature (the others' rows were dropped):
    // they describe no value, so the statistics leave them out.
    let (present, present_lines): (Vec<&str>, Vec<u64>) = cells
        .iter()
        .zip(lines)
        .filter(|(cell, _)| !cell.is_empty())
        .map(|(cell, line)| (*cell, *line))
        .unzip();
    let baseline = match feature.kind {
        FeatureType::Float | FeatureType::Int => {
            numbers(&column.name, &present, &present_lines, problems).map(|values| {
                feature.min = values.first().copied();
                feature.max = values.last().copied();
                quantiles(&values)
            })
        }
        FeatureType::String => {
            let distinct: BTreeSet<&str> = present.iter().copied().collect();
            (!distinct.is_empty() && distinct.len() <= MAX_CATEGORY_VALUES).then(|| {
                feature.kind = FeatureType::Category;
                feature.values = Some(distinct.iter().map(|v| (*v).to_owned()).collect());
                frequencies(&present)
            })
        }
        FeatureType::Bool | FeatureType::Category => None,
    };
    FeatureProfile { feature, baseline }
}

/// The column's numbers, sorted; every cell that is not one is a problem, named by its line.
fn numbers(
    name: &str,
    cells: &[&str],
    lines: &[u64],
    problems: &mut Vec<String>,
) -> Option<Vec<f64>> {
    let mut values = Vec::with_capacity(cells.len());
    let mut bad = Vec::new();
    for (cell, line) in cells.iter().zip(lines) {
        match cell.parse::<f64>() {
            Ok(x) if x.is_finite() => values.push(x),
            _ => bad.push(format!("line {line} has {cell:?}")),
        }
    }
    if !bad.is_empty() {
        let more = bad.len().saturating_sub(MAX_CELL_PROBLEMS);
        bad.truncate(MAX_CELL_PROBLEMS);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        problems.push(format!(
            "column `{name}` must hold numbers: {}{tail}",
            bad.join(", ")
        ));
        return None;
    }
    values.sort_by(f64::total_cmp);
    (!values.is_empty()).then_some(values)
}

/// Deciles by nearest rank (eleven values seen in training, from the minimum to the maximum)
/// and the exact share of the rows in each bin they cut (see `warden_contract::baseline`).
fn quantiles(sorted: &[f64]) -> toml::Table {
    let last = sorted.len() - 1;
    let points: Vec<f64> = (0..=10).map(|k| sorted[(k * last + 5) / 10]).collect();
    let shares = bin_shares(&points, sorted);
    let floats =
        |values: Vec<f64>| toml::Value::Array(values.into_iter().map(toml::Value::Float).collect());
    toml::Table::from_iter([
        ("quantiles".to_owned(), floats(points)),
        ("shares".to_owned(), floats(shares)),
    ])
}

/// A numeric target's deciles and shares, with its mean and standard deviation (for the
/// mean-prediction alert), rounded to six significant decimals.
fn target_numbers(sorted: &[f64]) -> toml::Table {
    let mut table = quantiles(sorted);
    let n = sorted.len() as f64;
    let mean = sorted.iter().sum::<f64>() / n;
    let std = (sorted.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
    let round = |x: f64| (x * 1e6).round() / 1e6;
    table.insert("mean".into(), toml::Value::Float(round(mean)));
    table.insert("std".into(), toml::Value::Float(round(std)));
    table
}

/// Each value's share of the rows, rounded to six decimals.
fn frequencies(cells: &[&str]) -> toml::Table {
    let mut counts = BTreeMap::<&str, usize>::new();
    for cell in cells {
        *counts.entry(cell).or_default() += 1;
    }
    let shares = counts
        .into_iter()
        .map(|(value, count)| {
            let share = (count as f64 / cells.len() as f64 * 1e6).round() / 1e6;
            (value.to_owned(), toml::Value::Float(share))
        })
        .collect();
    toml::Table::from_iter([("frequencies".to_owned(), toml::Value::Table(shares))])
}

/// The rows with no blank feature cell, nearest the typical row first, as candidate
/// `[example]` rows (at most [`MAX_EXAMPLE_TRIES`]). Near the medians is where a model is
/// surest to answer soundly, and it shows a reader an ordinary input. Distance: for a number,
/// its distance from the median as a share of the observed range, squared; for anything else,
/// 1 unless it is the most frequent value. Ties keep the file's order.
fn example_candidates(table: &Table, features: &[Feature]) -> Vec<Example> {
    enum Centre<'a> {
        Number {
            median: f64,
            range: f64,
        },
        Mode(&'a str),
        /// No value at all in the data (a nullable feature left blank throughout).
        Unknown,
    }
    let mut measured = Vec::new();
    for feature in features {
        let Some(index) = table.index(&feature.name) else {
            continue;
        };
        let cells: Vec<&str> = table
            .rows
            .iter()
            .map(|row| row[index].as_str())
            .filter(|c| !c.is_empty())
            .collect();
        let centre = if feature.kind.is_numeric() {
            let mut values: Vec<f64> = cells.iter().filter_map(|c| c.parse().ok()).collect();
            values.sort_by(f64::total_cmp);
            match (values.first(), values.last()) {
                (Some(first), Some(last)) => Centre::Number {
                    median: values[values.len() / 2],
                    range: last - first,
                },
                _ => Centre::Unknown,
            }
        } else {
            let mut counts = BTreeMap::<&str, usize>::new();
            for cell in &cells {
                *counts.entry(cell).or_default() += 1;
            }
            // The first of the most frequent, in sorted order, so ties are deterministic.
            let top = counts.values().max().copied().unwrap_or(0);
            counts
                .iter()
                .find(|(_, n)| **n == top)
                .map_or(Centre::Unknown, |(mode, _)| Centre::Mode(mode))
        };
        measured.push((feature, index, centre));
    }
    let mut ranked: Vec<(f64, usize)> = table
        .rows
        .iter()
        .enumerate()
        .filter(|(_, row)| measured.iter().all(|(_, i, _)| !row[*i].is_empty()))
        .map(|(r, row)| {
            let distance = measured
                .iter()
                .map(|(_, i, centre)| match centre {
                    Centre::Number { median, range } => {
                        let x: f64 = row[*i].parse().unwrap_or(f64::INFINITY);
                        if *range > 0.0 {
                            ((x - median) / range).powi(2)
                        } else {
                            0.0
                        }
                    }
                    Centre::Mode(mode) => f64::from(u8::from(row[*i] != *mode)),
                    Centre::Unknown => 0.0,
                })
                .sum();
            (distance, r)
        })
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    ranked
        .into_iter()
        .take(MAX_EXAMPLE_TRIES)
        .map(|(_, r)| Example {
            line: table.lines[r],
            row: measured
                .iter()
                .map(|(feature, i, _)| {
                    (
                        feature.name.clone(),
                        example_value(feature, &table.rows[r][*i]),
                    )
                })
                .collect(),
        })
        .collect()
}

fn example_value(feature: &Feature, cell: &str) -> Value {
    match feature.kind {
        FeatureType::Float => cell.parse::<f64>().map_or(Value::Null, Value::from),
        FeatureType::Int => cell
            .parse::<f64>()
            .map_or(Value::Null, |x| Value::from(x as i64)),
        FeatureType::Bool => Value::Bool(matches!(cell, "1" | "true" | "True" | "TRUE")),
        FeatureType::String | FeatureType::Category => Value::from(cell),
    }
}

/// What each graph output means: a string (or integer) label, per-class probabilities when the
/// width matches the classifier's classes, otherwise a value or scores.
fn outputs(specs: &[TensorSpec], classes: Option<&[String]>) -> Vec<Output> {
    let labels = classes.map(<[String]>::to_vec);
    specs
        .iter()
        .filter_map(|spec| {
            let width = match spec.shape.as_slice() {
                [_] => Some(1),
                [_, width] => Some(*width),
                _ => None,
            };
            let kind = match (spec.data_type, width, classes) {
                (DataType::String, Some(1), Some(_)) => OutputKind::Label,
                (dtype, Some(1), Some(_)) if dtype.is_integer() => OutputKind::Label,
                (dtype, Some(w), Some(classes))
                    if dtype.is_float() && w == classes.len() as i64 =>
                {
                    OutputKind::Probability
                }
                (dtype, Some(1), _) if dtype.is_float() => OutputKind::Value,
                (dtype, _, _) if dtype.is_float() => OutputKind::Score,
                _ => return None,
            };
            Some(Output {
                name: spec.name.clone(),
                kind,
                labels: matches!(kind, OutputKind::Label | OutputKind::Probability)
                    .then(|| labels.clone())
                    .flatten(),
                relax: Vec::new(),
            })
        })
        .collect()
}
