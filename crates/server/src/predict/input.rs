//! The rows of an input file, read a batch at a time (never the whole file): CSV with a header
//! row, JSON Lines of objects, or Parquet (a record batch at a time). Each row becomes the JSON object a client would send for it,
//! typed as the contract types its features (a CSV cell of a float feature that is not a
//! number stays text, and the contract refuses it as it would a client's string; an empty cell
//! is `null`), so the contract gate checks it exactly as the server checks a request. Columns
//! that are not features (an id, the label) are left out of the row.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType as ArrowType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
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
    Parquet {
        path: PathBuf,
        reader: ParquetRecordBatchReader,
        /// Rows in the file (its metadata's count).
        total: u64,
        /// Each feature's column in the file.
        columns: Vec<(Feature, usize)>,
        carried: Vec<usize>,
        /// The record batch being read, and the next row of it.
        current: Option<(RecordBatch, usize)>,
        next: u64,
    },
    Csv {
        path: PathBuf,
        reader: csv::Reader<File>,
        /// The file's size.
        size: u64,
        /// Each feature's column in the file.
        columns: Vec<(Feature, usize)>,
        /// Each carried column's place in the file.
        carried: Vec<usize>,
        next: u64,
    },
    JsonLines {
        path: PathBuf,
        lines: std::io::Lines<BufReader<File>>,
        /// Bytes read so far, and the file's size.
        bytes: (u64, u64),
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
                let size = file.metadata().map_or(0, |m| m.len());
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
                    size,
                    columns,
                    carried,
                    next: 1,
                })
            }
            "parquet" | "pq" => {
                let file = File::open(path).map_err(read)?;
                let format = |reason: String| InputError::Format {
                    path: path.to_path_buf(),
                    line: None,
                    reason,
                };
                let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|err| format(format!("not a readable Parquet file: {err}")))?;
                let schema = Arc::clone(builder.schema());
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                let mut columns = Vec::new();
                let mut missing = Vec::new();
                for feature in features {
                    match names.iter().position(|n| *n == feature.name) {
                        Some(index) => columns.push((feature.clone(), index)),
                        None => missing.push(feature.name.as_str()),
                    }
                }
                if !missing.is_empty() {
                    return Err(format(format!(
                        "it has no column for the feature{} {} (its columns are: {})",
                        if missing.len() == 1 { "" } else { "s" },
                        missing.join(", "),
                        names.join(", ")
                    )));
                }
                let mut carried = Vec::new();
                for name in carry {
                    let index = names.iter().position(|n| n == name).ok_or_else(|| {
                        format(format!(
                            "--carry names `{name}`, which it does not have (its columns are: {})",
                            names.join(", ")
                        ))
                    })?;
                    carried.push(index);
                }
                for &(ref feature, index) in &columns {
                    let kind = schema.field(index).data_type();
                    if !readable(kind) {
                        return Err(format(format!(
                            "column `{}` is {kind}, which warden predict does not read (numbers, \
                             booleans and strings, dictionary-encoded or not)",
                            feature.name
                        )));
                    }
                }
                let total =
                    u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
                let reader = builder
                    .with_batch_size(4096)
                    .build()
                    .map_err(|err| format(format!("not a readable Parquet file: {err}")))?;
                Ok(Rows::Parquet {
                    path: path.to_path_buf(),
                    reader,
                    total,
                    columns,
                    carried,
                    current: None,
                    next: 1,
                })
            }
            "jsonl" | "ndjson" => {
                let file = File::open(path).map_err(read)?;
                let size = file.metadata().map_or(0, |m| m.len());
                Ok(Rows::JsonLines {
                    path: path.to_path_buf(),
                    lines: BufReader::new(file).lines(),
                    bytes: (0, size),
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
                     header row), .jsonl (one JSON object per line) or .parquet"
                ),
            }),
        }
    }

    /// How far the reading is: done and total, in bytes (CSV, JSON Lines) or rows (Parquet).
    pub(super) fn progress(&self) -> (u64, u64) {
        match self {
            Rows::Parquet { total, next, .. } => (next.saturating_sub(1), *total),
            Rows::Csv { reader, size, .. } => (reader.position().byte(), *size),
            Rows::JsonLines { bytes, .. } => *bytes,
        }
    }

    /// Up to `count` more rows; empty at the end of the file.
    pub(super) fn batch(&mut self, count: usize) -> Result<Vec<InputRow>, InputError> {
        let mut rows = Vec::with_capacity(count);
        match self {
            Rows::Parquet {
                path,
                reader,
                total: _,
                columns,
                carried,
                current,
                next,
            } => {
                while rows.len() < count {
                    let (batch, at) = match current.take() {
                        Some((batch, at)) if at < batch.num_rows() => (batch, at),
                        _ => match reader.next() {
                            None => break,
                            Some(Ok(batch)) => (batch, 0),
                            Some(Err(err)) => {
                                return Err(InputError::Format {
                                    path: path.clone(),
                                    line: None,
                                    reason: format!(
                                        "row {} and after cannot be read: {err}",
                                        *next
                                    ),
                                });
                            }
                        },
                    };
                    let end = batch.num_rows().min(at + count - rows.len());
                    for r in at..end {
                        let row: Map<String, Value> = columns
                            .iter()
                            .map(|(feature, index)| {
                                (feature.name.clone(), cell(batch.column(*index), r))
                            })
                            .collect();
                        let carried = carried
                            .iter()
                            .map(|&i| match cell(batch.column(i), r) {
                                Value::Null => None,
                                Value::String(text) => Some(text),
                                other => Some(other.to_string()),
                            })
                            .collect();
                        rows.push(InputRow {
                            number: *next,
                            row: Ok(Value::Object(row)),
                            carried,
                        });
                        *next += 1;
                    }
                    *current = Some((batch, end));
                }
            }
            Rows::Csv {
                path,
                reader,
                size: _,
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
                bytes,
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
                    bytes.0 += text.len() as u64 + 1;
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

/// Whether `kind` is a column type whose cells become JSON values a row can hold.
fn readable(kind: &ArrowType) -> bool {
    match kind {
        ArrowType::Dictionary(_, value) => readable(value),
        other => matches!(
            other,
            ArrowType::Boolean
                | ArrowType::Utf8
                | ArrowType::LargeUtf8
                | ArrowType::Utf8View
                | ArrowType::Float32
                | ArrowType::Float64
                | ArrowType::Int8
                | ArrowType::Int16
                | ArrowType::Int32
                | ArrowType::Int64
                | ArrowType::UInt8
                | ArrowType::UInt16
                | ArrowType::UInt32
                | ArrowType::UInt64
        ),
    }
}

/// Row `r` of a Parquet column as the JSON value a client would send (a float NaN as the text
/// `NaN`, which the contract refuses as it refuses a client's).
fn cell(array: &ArrayRef, r: usize) -> Value {
    if array.is_null(r) {
        return Value::Null;
    }
    let float = |x: f64| {
        serde_json::Number::from_f64(x).map_or_else(|| Value::from(x.to_string()), Value::Number)
    };
    match array.data_type() {
        ArrowType::Float64 => float(array.as_primitive::<Float64Type>().value(r)),
        ArrowType::Float32 => {
            // The shortest decimal that reads back as the same f32.
            let x = array.as_primitive::<Float32Type>().value(r);
            x.to_string().parse::<f64>().map_or(Value::Null, float)
        }
        ArrowType::Boolean => Value::Bool(array.as_boolean().value(r)),
        ArrowType::Utf8 => Value::from(array.as_string::<i32>().value(r)),
        ArrowType::LargeUtf8 => Value::from(array.as_string::<i64>().value(r)),
        ArrowType::Utf8View => Value::from(array.as_string_view().value(r)),
        ArrowType::Dictionary(..) => {
            let Some(dictionary) = array.as_any_dictionary_opt() else {
                return Value::Null;
            };
            let key = dictionary.normalized_keys()[r];
            cell(dictionary.values(), key)
        }
        ArrowType::Int8 => Value::from(array.as_primitive::<Int8Type>().value(r)),
        ArrowType::Int16 => Value::from(array.as_primitive::<Int16Type>().value(r)),
        ArrowType::Int32 => Value::from(array.as_primitive::<Int32Type>().value(r)),
        ArrowType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(r)),
        ArrowType::UInt8 => Value::from(array.as_primitive::<UInt8Type>().value(r)),
        ArrowType::UInt16 => Value::from(array.as_primitive::<UInt16Type>().value(r)),
        ArrowType::UInt32 => Value::from(array.as_primitive::<UInt32Type>().value(r)),
        ArrowType::UInt64 => Value::from(array.as_primitive::<UInt64Type>().value(r)),
        _ => Value::Null,
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
