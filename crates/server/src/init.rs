//! `warden init`: a servable model folder (`NAME/warden.toml` and `NAME/1/model.onnx`) written
//! from a graph and, optionally, its training data, so nobody has to write a manifest by hand.
//!
//! From the graph come the features (one per column input, or the columns of one `[N, F]`
//! input), the outputs and their class labels. From a CSV of training data come each feature's
//! observed `min`/`max`, the category `values`, an `[example]` row, and a `[baseline]` of
//! quantiles or category frequencies (and the target's distribution) for drift monitoring.
//! The folder is then loaded exactly as `warden serve` would load it, so what `init` writes is
//! known to serve.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use warden_contract::{
    BackendChoice, Batching, Feature, FeatureType, GraphElement, GraphInput, Manifest, Output,
    OutputKind, VersionEntry,
};
use warden_runtime::graph_facts::class_labels;
use warden_runtime::{DataType, LoadOptions, RuntimeError, Signature, TensorSpec};

use crate::backends::Backends;
use crate::model::{graph_inputs, sha256_hex};
use crate::repository::{MANIFEST_FILE, MODEL_FILE, ModelSource};

/// Category columns with more distinct values than this are declared `string` instead.
const MAX_CATEGORY_VALUES: usize = 64;
/// Violations reported per CSV column before the rest are summarised.
const MAX_CELL_PROBLEMS: usize = 5;

/// What `warden init` was asked to do.
#[derive(Debug, Clone)]
pub struct InitRequest {
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
    #[error("the folder was written but does not load: {0}")]
    Check(String),
}

impl InitError {
    /// The file the error is about, when there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            InitError::Read { path, .. }
            | InitError::Data { path, .. }
            | InitError::Exists { path }
            | InitError::Write { path, .. } => Some(path),
            _ => None,
        }
    }

    /// Each problem, for a diagnostic that lists them one per line.
    pub fn problems(&self) -> &[String] {
        match self {
            InitError::Data { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// Writes the model folder and checks that it serves; returns the manifest's path.
pub fn init(request: &InitRequest, backends: &Backends) -> Result<PathBuf, InitError> {
    let backend = backends
        .onnxruntime
        .clone()
        .or_else(|| backends.tract.clone())
        .ok_or_else(|| InitError::Graph("no inference engine is available".into()))?;
    let bytes = std::fs::read(&request.model).map_err(|source| InitError::Read {
        path: request.model.clone(),
        source,
    })?;
    let signature = backend
        .load(&bytes, &request.model, &LoadOptions::default())?
        .signature()
        .clone();
    let classes = class_labels(&bytes);
    let table = match &request.data {
        Some(path) => Some(read_csv(path)?),
        None => None,
    };
    let mut manifest = describe(&signature, classes.as_deref(), table.as_ref(), request)?;
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
    let text = render(&manifest, request)?;
    let graph_path = folder.join("1").join(MODEL_FILE);
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InitError::Write { path, source }
    };
    std::fs::create_dir_all(folder.join("1")).map_err(write_error(&folder))?;
    let same_file =
        std::fs::canonicalize(&graph_path).ok() == std::fs::canonicalize(&request.model).ok();
    if !same_file {
        std::fs::write(&graph_path, &bytes).map_err(write_error(&graph_path))?;
    }
    std::fs::write(&manifest_path, text).map_err(write_error(&manifest_path))?;
    // Load it as `warden serve` would: the contract against the graph, warm-up, output guards.
    let source = ModelSource {
        name: request.name.clone(),
        version: 1,
        graph: graph_path,
        manifest: Some(manifest),
    };
    backends
        .load(&source)
        .map_err(|err| InitError::Check(err.to_string()))?;
    Ok(manifest_path)
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
    let mut text = format!(
        "# The contract of model `{name}`, written by `warden init`\n\
         # from {from}.\n\
         # Edit freely. `min`/`max` are the range seen in training: a request outside it is\n\
         # refused, so widen them if real inputs may go further.\n\n{toml}",
        name = request.name
    );
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// A CSV file: its header and its rows, as text.
#[derive(Debug)]
struct Table {
    path: PathBuf,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn column(&self, name: &str) -> Option<Vec<&str>> {
        let index = self.headers.iter().position(|h| h == name)?;
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
    for record in reader.records() {
        let record = record.map_err(|err| data_error(err.to_string()))?;
        rows.push(record.iter().map(|cell| cell.trim().to_owned()).collect());
    }
    if rows.is_empty() {
        return Err(data_error("it has a header but no rows".into()));
    }
    Ok(Table {
        path: path.to_path_buf(),
        headers,
        rows,
    })
}

/// The manifest for `signature`, profiled from `table` when there is one.
fn describe(
    signature: &Signature,
    classes: Option<&[String]>,
    table: Option<&Table>,
    request: &InitRequest,
) -> Result<Manifest, InitError> {
    let inputs = graph_inputs(signature);
    let mut problems = Vec::new();
    if let (Some(table), Some(target)) = (table, request.target.as_deref())
        && !table.headers.iter().any(|h| h == target)
    {
        problems.push(format!(
            "the target column `{target}` is not in the file (its columns are: {})",
            table.headers.join(", ")
        ));
    }
    let columns = match feature_columns(&inputs, table, request.target.as_deref()) {
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
    let mut features = Vec::new();
    let mut example = serde_json::Map::new();
    let mut baseline = toml::Table::new();
    let example_row = table.and_then(|t| first_complete_row(t, &columns));
    for (name, element) in &columns {
        let cells = table.and_then(|t| t.column(name));
        let profile = profile_feature(name, *element, cells.as_deref(), &mut problems);
        if let (Some(row), Some(cells)) = (example_row, &cells) {
            example.insert(name.clone(), example_value(&profile.feature, cells[row]));
        }
        if let Some(stats) = profile.baseline {
            baseline.insert(name.clone(), toml::Value::Table(stats));
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
                    numbers(target, &cells, &mut problems)
                        .map_or_else(toml::Table::new, |v| quantiles(&v))
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
    Ok(Manifest {
        backend: BackendChoice::Auto,
        version: None,
        features,
        outputs: outputs(&signature.outputs, classes),
        batching: Batching::default(),
        example: (!example.is_empty()).then_some(example),
        versions: BTreeMap::new(),
        baseline: (!baseline.is_empty()).then_some(baseline),
    })
}

/// The feature names and their graph element, in model order, checked against the CSV.
fn feature_columns(
    inputs: &[GraphInput],
    table: Option<&Table>,
    target: Option<&str>,
) -> Result<Vec<(String, GraphElement)>, InitError> {
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
                    .map(|c| (c.clone(), input.element))
                    .collect())
            }
            None if *width > 0 => Ok((0..*width)
                .map(|i| (format!("{}_{i}", input.name), input.element))
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
    Ok(inputs.iter().map(|i| (i.name.clone(), i.element)).collect())
}

struct FeatureProfile {
    feature: Feature,
    baseline: Option<toml::Table>,
}

fn profile_feature(
    name: &str,
    element: GraphElement,
    cells: Option<&[&str]>,
    problems: &mut Vec<String>,
) -> FeatureProfile {
    let mut feature = Feature::plain(name, element);
    let Some(cells) = cells else {
        return FeatureProfile {
            feature,
            baseline: None,
        };
    };
    let baseline = match feature.kind {
        FeatureType::Float | FeatureType::Int => {
            feature.nullable = cells.iter().any(|c| c.is_empty());
            let present: Vec<&str> = cells.iter().copied().filter(|c| !c.is_empty()).collect();
            numbers(name, &present, problems).map(|values| {
                feature.min = values.first().copied();
                feature.max = values.last().copied();
                quantiles(&values)
            })
        }
        FeatureType::String => {
            let distinct: BTreeSet<&str> = cells.iter().copied().collect();
            (distinct.len() <= MAX_CATEGORY_VALUES).then(|| {
                feature.kind = FeatureType::Category;
                feature.values = Some(distinct.iter().map(|v| (*v).to_owned()).collect());
                frequencies(cells)
            })
        }
        FeatureType::Bool | FeatureType::Category => None,
    };
    FeatureProfile { feature, baseline }
}

/// The column's numbers, sorted; every cell that is not one is a problem.
fn numbers(name: &str, cells: &[&str], problems: &mut Vec<String>) -> Option<Vec<f64>> {
    let mut values = Vec::with_capacity(cells.len());
    let mut bad = Vec::new();
    for (row, cell) in cells.iter().enumerate() {
        match cell.parse::<f64>() {
            Ok(x) if x.is_finite() => values.push(x),
            _ => bad.push(format!("line {} has {cell:?}", row + 2)),
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

/// Deciles by nearest rank: eleven values seen in training, from the minimum to the maximum.
fn quantiles(sorted: &[f64]) -> toml::Table {
    let last = sorted.len() - 1;
    let points = (0..=10)
        .map(|k| toml::Value::Float(sorted[(k * last + 5) / 10]))
        .collect();
    toml::Table::from_iter([("quantiles".to_owned(), toml::Value::Array(points))])
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

/// The first row with no empty feature cell, for the `[example]`.
fn first_complete_row(table: &Table, columns: &[(String, GraphElement)]) -> Option<usize> {
    let indices: Vec<usize> = columns
        .iter()
        .filter_map(|(name, _)| table.headers.iter().position(|h| h == name))
        .collect();
    table
        .rows
        .iter()
        .position(|row| indices.iter().all(|&i| !row[i].is_empty()))
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
