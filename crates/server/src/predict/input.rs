//! The rows of an input file, read a batch at a time (never the whole file): CSV with a header
//! row, or JSON Lines of objects. Each row becomes the JSON object a client would send for it,
//! typed as the contract types its features (a CSV cell of a float feature that is not a
//! number stays text, and the contract refuses it as it would a client's string; an empty cell
//! is `null`), so the contract gate checks it exactly as the server checks a request. Columns
//! that are not features (an id, the label) are left out of the row.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use warden_contract::{Feature, FeatureType};

/// One row of the file: its number (1 for the first data row) and what it holds.
#[derive(Debug)]
pub(super) struct InputRow {
    pub number: u64,
    /// The row as a request's row, or why the line could not be read as one.
    pub row: Result<Value, String>,
    /// The carried columns' values, as text (`None`: empty or absent).
    pub carried: Vec<Option<String>>,
}

/// Why the file cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{}: {reason}", path.display(), line.map_or_else(String::new, |l| format!(", line {l}")))]
    Format {
        path: PathBuf,
        line: Option<u64>,
        reason: String,
    },
}

/// A file's rows, a batch at a time.
pub(super) enum Rows {
    Csv {
        path: PathBuf,
        reader: csv::Reader<File>,
        /// Each feature's column in the file.
        columns: Vec<(Feature, usize)>,
        /// Each carried column's place in the file.
        carried: Vec<usize>,
        next: u64,
    },
    JsonLines {
        path: PathBuf,
        lines: std::io::Lines<BufReader<File>>,
        features: Vec<Feature>,
        carried: Vec<String>,
        next: u64,
        line: u64,
    },
}

impl Rows {
    /// Opens `path` (by its extension: `.csv`, or `.jsonl`/`.ndjson`) for `features`, with the
    /// columns `carry` carried through to the output.
    pub(super) fn open(
        path: &Path,
        features: &[Feature],
        carry: &[String],
    ) -> Result<Rows, InputError> {
        let read = |source| InputError::Read {
            path: path.to_path_buf(),
            source,
        };
        let extension = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match extension.as_str() {
            "csv" => {
                let file = File::open(path).map_err(read)?;
                let mut reader = csv::Reader::from_reader(file);
                let headers: Vec<String> = reader
                    .headers()
                    .map_err(|err| InputError::Format {
                        path: path.to_path_buf(),
                        line: Some(1),
                        reason: err.to_string(),
                    })?
                    .iter()
                    .map(|h| h.trim().to_owned())
                    .collect();
                let mut columns = Vec::new();
                let mut missing = Vec::new();
                for feature in features {
                    match headers.iter().position(|h| *h == feature.name) {
                        Some(index) => columns.push((feature.clone(), index)),
                        None => missing.push(feature.name.as_str()),
                    }
                }
                let mut carried = Vec::new();
                for name in carry {
                    match headers.iter().position(|h| h == name) {
                        Some(index) => carried.push(index),
                        None => {
                            return Err(InputError::Format {
                                path: path.to_path_buf(),
                                line: Some(1),
                                reason: format!(
                                    "--carry names `{name}`, which the header does not have (its columns are: {})",
                                    headers.join(", ")
                                ),
                            });
                        }
                    }
                }
                if !missing.is_empty() {
                    return Err(InputError::Format {
                        path: path.to_path_buf(),
                        line: Some(1),
                        reason: format!(
                            "the header has no column for the feature{} {} (its columns are: {})",
                            if missing.len() == 1 { "" } else { "s" },
                            missing.join(", "),
                            headers.join(", ")
                        ),
                    });
                }
                Ok(Rows::Csv {
                    path: path.to_path_buf(),
                    reader,
                    columns,
                    carried,
                    next: 1,
                })
            }
            "jsonl" | "ndjson" => {
                let file = File::open(path).map_err(read)?;
                Ok(Rows::JsonLines {
                    path: path.to_path_buf(),
                    lines: BufReader::new(file).lines(),
                    features: features.to_vec(),
                    carried: carry.to_vec(),
                    next: 1,
                    line: 0,
                })
            }
            other => Err(InputError::Format {
                path: path.to_path_buf(),
                line: None,
                reason: format!(
                    "the extension {other:?} is not one warden predict reads: use .csv (with a \
                     header row) or .jsonl (one JSON object per line)"
                ),
            }),
        }
    }

    /// Up to `count` more rows; empty at the end of the file.
    pub(super) fn batch(&mut self, count: usize) -> Result<Vec<InputRow>, InputError> {
        let mut rows = Vec::with_capacity(count);
        match self {
            Rows::Csv {
                path,
                reader,
                columns,
                carried,
                next,
            } => {
                let mut record = csv::StringRecord::new();
                while rows.len() < count {
                    let more =
                        reader
                            .read_record(&mut record)
                            .map_err(|err| InputError::Format {
                                path: path.clone(),
                                line: err.position().map(csv::Position::line),
                                reason: err.to_string(),
                            })?;
                    if !more {
                        break;
                    }
                    let row: Map<String, Value> = columns
                        .iter()
                        .map(|(feature, index)| {
                            let cell = record.get(*index).unwrap_or("").trim();
                            (feature.name.clone(), typed(feature, cell))
                        })
                        .collect();
                    let carried = carried
                        .iter()
                        .map(|&i| {
                            record
                                .get(i)
                                .map(str::trim)
                                .filter(|c| !c.is_empty())
                                .map(str::to_owned)
                        })
                        .collect();
                    rows.push(InputRow {
                        number: *next,
                        row: Ok(Value::Object(row)),
                        carried,
                    });
                    *next += 1;
                }
            }
            Rows::JsonLines {
                path,
                lines,
                features,
                carried,
                next,
                line,
            } => {
                while rows.len() < count {
                    let Some(text) = lines.next() else {
                        break;
                    };
                    *line += 1;
                    let text = text.map_err(|source| InputError::Read {
                        path: path.clone(),
                        source,
                    })?;
                    if text.trim().is_empty() {
                        continue;
                    }
                    let mut values = vec![None; carried.len()];
                    let row = match warden_contract::parse_strict(text.as_bytes()) {
                        Ok(Value::Object(mut object)) => {
                            for (value, name) in values.iter_mut().zip(carried.iter()) {
                                *value = object.get(name).and_then(|v| match v {
                                    Value::Null => None,
                                    Value::String(text) => Some(text.clone()),
                                    other => Some(other.to_string()),
                                });
                            }
                            // Columns that are not features (an id, the label) stay out.
                            object.retain(|key, _| features.iter().any(|f| f.name == *key));
                            Ok(Value::Object(object))
                        }
                        Ok(_) => Err(format!("line {line}: not a JSON object")),
                        Err(err) => Err(format!("line {line}: not valid JSON: {err}")),
                    };
                    rows.push(InputRow {
                        number: *next,
                        row,
                        carried: values,
                    });
                    *next += 1;
                }
            }
        }
        Ok(rows)
    }
}

/// A CSV cell as the JSON value a client would send for `feature`.
fn typed(feature: &Feature, cell: &str) -> Value {
    if cell.is_empty() {
        return Value::Null;
    }
    let number = |text: &str| {
        text.parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
    };
    match feature.kind {
        FeatureType::Float => number(cell).unwrap_or_else(|| Value::from(cell)),
        FeatureType::Int => cell
            .parse::<i64>()
            .map(Value::from)
            .ok()
            .or_else(|| number(cell))
            .unwrap_or_else(|| Value::from(cell)),
        FeatureType::Bool => match cell {
            "true" | "True" | "TRUE" => Value::Bool(true),
            "false" | "False" | "FALSE" => Value::Bool(false),
            other => Value::from(other),
        },
        FeatureType::String | FeatureType::Category => Value::from(cell),
    }
}
