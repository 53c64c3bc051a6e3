//! The prediction log's schema (version 1), and how records become Arrow record batches.
//!
//! One log row per request row: the request's identity and outcome (request id, the row's
//! index, timestamp in UTC µs, model, version, sha256, protocol, role, status, error JSON,
//! latency, sampling weight, the rollout comparison), then one column per contract feature in
//! the type the model was given it (a float in the graph input's own width, so values read back
//! bit-exact; a category dictionary-encoded; a missing value null), then the outputs as the row
//! API names them (`label`, `probability_<class>`, `score_<class>`, `score`, `value`, or the
//! graph output's name). A redacted feature's column is absent (`drop`) or holds the hex
//! HMAC-SHA256 of the value's text (`hash`). A refused request is one row with its error and
//! no feature or output values.
//!
//! The schema of a version is fixed when it is first logged (from its contract and graph), so
//! every file holds one schema; `warden predict` writes the same columns.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    StringDictionaryBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, DictionaryArray, Int32Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType as ArrowType, Field, Schema, TimeUnit};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use warden_contract::{Binding, FeatureType, OutputKind};
use warden_runtime::{DataType, NamedTensor, TensorData};

use crate::serving::ModelVersion;

use super::Settings;

/// The schema's version, in every file's key-value metadata (`warden.prediction_log.schema`).
pub const SCHEMA_VERSION: &str = "1";

/// Which answer a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The answer the client got.
    Primary,
    /// A rollout's shadow run, compared and discarded.
    Shadow,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Shadow => "shadow",
        }
    }
}

/// One logged request: what the version was given and answered, or why it refused.
#[derive(Debug)]
pub struct Record {
    pub log: Arc<VersionLog>,
    pub request_id: String,
    /// Microseconds since the Unix epoch (UTC).
    pub timestamp_us: i64,
    pub latency_us: i64,
    pub protocol: &'static str,
    pub role: Role,
    /// The rows answered (0 for a refused request, logged as one row).
    pub rows: usize,
    /// The admitted inputs, shared with any other observer of the request.
    pub inputs: Arc<[NamedTensor]>,
    pub outputs: Vec<NamedTensor>,
    /// The error's code and JSON body, for a request that was not answered.
    pub error: Option<(&'static str, String)>,
    /// A shadow record's primary version and whether the two answers agreed, per row.
    pub compared: Option<(u64, Vec<bool>)>,
}

impl Record {
    /// Its size in the queue, in bytes (an estimate within a small factor).
    pub fn size(&self) -> usize {
        let tensors: usize = self
            .inputs
            .iter()
            .chain(self.outputs.iter())
            .map(|t| tensor_bytes(&t.tensor.data))
            .sum();
        256 + self.request_id.len()
            + tensors
            + self.error.as_ref().map_or(0, |(_, json)| json.len())
            + self.compared.as_ref().map_or(0, |(_, agreed)| agreed.len())
    }

    /// Log rows it becomes.
    pub fn log_rows(&self) -> usize {
        self.rows.max(1)
    }
}

fn tensor_bytes(data: &TensorData) -> usize {
    match data {
        TensorData::String(values) => values.iter().map(|s| s.len() + 24).sum(),
        TensorData::Bool(v) => v.len(),
        TensorData::U8(v) => v.len(),
        TensorData::I8(v) => v.len(),
        TensorData::U16(v) => v.len() * 2,
        TensorData::I16(v) => v.len() * 2,
        TensorData::U32(v) => v.len() * 4,
        TensorData::I32(v) => v.len() * 4,
        TensorData::F32(v) => v.len() * 4,
        other => other.len() * 8,
    }
}

/// Where a column's values come from.
#[derive(Debug, Clone)]
enum Source {
    /// Element `column` of each row (of `width`) of the input or output tensor `tensor`.
    Input {
        tensor: String,
        column: usize,
        width: usize,
    },
    Output {
        tensor: String,
        column: usize,
        width: usize,
    },
}

/// How a column's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    F32,
    F64,
    I64,
    Bool,
    Text,
    /// Text, dictionary-encoded (categories, labels).
    Category,
    /// The hex HMAC-SHA256 of the value's text.
    Hashed,
    /// A label: the class name when the value is an index into `labels`, else its text.
    Label,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: Kind,
    source: Source,
    /// NaN is a missing value (a nullable feature): written as null.
    nan_is_null: bool,
}

/// A logged version: its identity, its resolved settings and its columns.
#[derive(Debug)]
pub struct VersionLog {
    pub model: String,
    pub version: u64,
    pub sha256: String,
    pub settings: Settings,
    columns: Vec<Column>,
    labels: Vec<String>,
    pub schema: Arc<Schema>,
    key: Option<Arc<[u8]>>,
}

/// The identity and outcome columns every file begins with.
const META: [(&str, ArrowType, bool); 14] = [
    ("request_id", ArrowType::Utf8, false),
    ("row", ArrowType::Int32, true),
    ("timestamp", ArrowType::Null, false), // replaced by the UTC timestamp type
    ("model", ArrowType::Null, false),     // dictionary
    ("version", ArrowType::Int64, false),
    ("sha256", ArrowType::Null, false),   // dictionary
    ("protocol", ArrowType::Null, false), // dictionary
    ("role", ArrowType::Null, false),     // dictionary
    ("status", ArrowType::Null, false),   // dictionary
    ("error", ArrowType::Utf8, true),
    ("latency_us", ArrowType::Int64, false),
    ("sample_weight", ArrowType::Float64, false),
    ("other_version", ArrowType::Int64, true),
    ("agreed", ArrowType::Boolean, true),
];

fn dictionary() -> ArrowType {
    ArrowType::Dictionary(Box::new(ArrowType::Int32), Box::new(ArrowType::Utf8))
}

fn timestamp() -> ArrowType {
    ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The name under which a feature is written: its own, unless an identity or output column
/// already has it (then `feature.<name>`).
fn feature_column_name(name: &str, taken: &[String]) -> String {
    if taken.iter().any(|t| t == name) {
        format!("feature.{name}")
    } else {
        name.to_owned()
    }
}

impl VersionLog {
    /// The columns of `model`'s log under `settings`; `key` hashes the `hash` features.
    pub fn of(model: &ModelVersion, settings: Settings, key: Option<Arc<[u8]>>) -> VersionLog {
        let mut columns = Vec::new();
        let mut labels = Vec::new();
        // Outputs first (their names are fixed), features after them (renamed on a clash).
        let mut outputs = Vec::new();
        for spec in &model.signature.outputs {
            let width = row_width(&spec.shape);
            let declared = model.contract.outputs.iter().find(|o| o.name == spec.name);
            let numeric = numeric_kind(spec.data_type);
            match declared {
                Some(output) => {
                    let class_names = output.labels.clone().unwrap_or_default();
                    match output.kind {
                        OutputKind::Label => {
                            labels = class_names;
                            outputs.push(Column {
                                name: "label".into(),
                                kind: Kind::Label,
                                source: output_source(&spec.name, 0, 1),
                                nan_is_null: false,
                            });
                        }
                        OutputKind::Probability | OutputKind::Score if !class_names.is_empty() => {
                            let prefix = if output.kind == OutputKind::Probability {
                                "probability"
                            } else {
                                "score"
                            };
                            for (i, class) in class_names.iter().enumerate() {
                                outputs.push(Column {
                                    name: format!("{prefix}_{class}"),
                                    kind: numeric,
                                    source: output_source(&spec.name, i, class_names.len()),
                                    nan_is_null: false,
                                });
                            }
                            if labels.is_empty() {
                                labels = class_names;
                            }
                        }
                        kind => {
                            let name = match kind {
                                OutputKind::Value => "value",
                                _ => "score",
                            };
                            outputs.extend(plain_columns(
                                name,
                                &spec.name,
                                width.unwrap_or(1),
                                numeric,
                            ));
                        }
                    }
                }
                None => outputs.extend(plain_columns(
                    &spec.name,
                    &spec.name,
                    width.unwrap_or(1),
                    if spec.data_type == DataType::String {
                        Kind::Text
                    } else {
                        numeric
                    },
                )),
            }
        }
        let mut taken: Vec<String> = META.iter().map(|(n, _, _)| (*n).to_owned()).collect();
        taken.extend(outputs.iter().map(|c| c.name.clone()));
        let redacted = |name: &str| settings.drop.iter().any(|d| d == name);
        let hashed = |name: &str| settings.hash.iter().any(|d| d == name);
        match &model.contract.features {
            Some((features, binding)) => {
                for (index, feature) in features.iter().enumerate() {
                    if redacted(&feature.name) {
                        continue;
                    }
                    let (source, data_type) = match binding {
                        Binding::Packed { input } => (
                            Source::Input {
                                tensor: input.clone(),
                                column: index,
                                width: features.len(),
                            },
                            model.signature.input(input).map(|s| s.data_type),
                        ),
                        Binding::PerColumn => (
                            Source::Input {
                                tensor: feature.name.clone(),
                                column: 0,
                                width: 1,
                            },
                            model.signature.input(&feature.name).map(|s| s.data_type),
                        ),
                    };
                    let kind = if hashed(&feature.name) {
                        Kind::Hashed
                    } else {
                        match feature.kind {
                            FeatureType::Float => match data_type {
                                Some(DataType::F32) => Kind::F32,
                                _ => Kind::F64,
                            },
                            FeatureType::Int => Kind::I64,
                            FeatureType::Bool => Kind::Bool,
                            FeatureType::String => Kind::Text,
                            FeatureType::Category => Kind::Category,
                        }
                    };
                    columns.push(Column {
                        name: feature_column_name(&feature.name, &taken),
                        kind,
                        source,
                        nan_is_null: feature.nullable,
                    });
                }
            }
            None => {
                for spec in &model.signature.inputs {
                    if redacted(&spec.name) {
                        continue;
                    }
                    let kind = if hashed(&spec.name) {
                        Kind::Hashed
                    } else if spec.data_type == DataType::String {
                        Kind::Text
                    } else {
                        numeric_kind(spec.data_type)
                    };
                    let width = row_width(&spec.shape).unwrap_or(1);
                    for mut column in plain_columns(&spec.name, &spec.name, width, kind) {
                        column.source = match column.source {
                            Source::Output {
                                tensor,
                                column,
                                width,
                            } => Source::Input {
                                tensor,
                                column,
                                width,
                            },
                            other => other,
                        };
                        column.name = feature_column_name(&column.name, &taken);
                        columns.push(column);
                    }
                }
            }
        }
        columns.extend(outputs);
        let mut fields: Vec<Field> = META
            .iter()
            .map(|(name, data_type, nullable)| {
                let data_type = match *name {
                    "timestamp" => timestamp(),
                    "model" | "sha256" | "protocol" | "role" | "status" => dictionary(),
                    _ => data_type.clone(),
                };
                Field::new(*name, data_type, *nullable)
            })
            .collect();
        fields.extend(columns.iter().map(|c| {
            let data_type = match c.kind {
                Kind::F32 => ArrowType::Float32,
                Kind::F64 => ArrowType::Float64,
                Kind::I64 => ArrowType::Int64,
                Kind::Bool => ArrowType::Boolean,
                Kind::Text | Kind::Hashed => ArrowType::Utf8,
                Kind::Category | Kind::Label => dictionary(),
            };
            Field::new(&c.name, data_type, true)
        }));
        let metadata: std::collections::HashMap<String, String> = [
            ("warden.prediction_log.schema", SCHEMA_VERSION),
            ("warden.model", model.name.as_str()),
            ("warden.version", model.version_label.as_str()),
            ("warden.sha256", model.sha256.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        VersionLog {
            model: model.name.clone(),
            version: model.version,
            sha256: model.sha256.clone(),
            settings,
            columns,
            labels,
            schema: Arc::new(Schema::new_with_metadata(fields, metadata)),
            key,
        }
    }

    /// The records (all of this version) as one record batch.
    pub fn batch(&self, records: &[Record]) -> Result<RecordBatch, ArrowError> {
        let rows: usize = records.iter().map(Record::log_rows).sum();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        // Identity and outcome.
        let mut request_id = StringBuilder::with_capacity(rows, rows * 36);
        let mut row = Int32Builder::with_capacity(rows);
        let mut time = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
        let mut version = Int64Builder::with_capacity(rows);
        let mut protocol = SmallDictionary::default();
        let mut role = SmallDictionary::default();
        let mut status = SmallDictionary::default();
        let mut error = StringBuilder::new();
        let mut latency = Int64Builder::with_capacity(rows);
        let mut weight = Float64Builder::with_capacity(rows);
        let mut other_version = Int64Builder::with_capacity(rows);
        let mut agreed = BooleanBuilder::with_capacity(rows);
        let share = self.settings.sample;
        for record in records {
            for r in 0..record.log_rows() {
                request_id.append_value(&record.request_id);
                if record.error.is_some() && record.rows == 0 {
                    row.append_null();
                } else {
                    row.append_value(i32::try_from(r).unwrap_or(i32::MAX));
                }
                time.append_value(record.timestamp_us);
                version.append_value(i64::try_from(self.version).unwrap_or(i64::MAX));
                protocol.push(record.protocol);
                role.push(record.role.as_str());
                match &record.error {
                    Some((code, json)) => {
                        status.push(code);
                        error.append_value(json);
                    }
                    None => {
                        status.push("ok");
                        error.append_null();
                    }
                }
                latency.append_value(record.latency_us);
                weight.append_value(if share > 0.0 { 1.0 / share } else { 0.0 });
                match &record.compared {
                    Some((primary, agreements)) => {
                        other_version.append_value(i64::try_from(*primary).unwrap_or(i64::MAX));
                        agreed.append_option(agreements.get(r).copied());
                    }
                    None => {
                        other_version.append_null();
                        agreed.append_null();
                    }
                }
            }
        }
        arrays.push(Arc::new(request_id.finish()));
        arrays.push(Arc::new(row.finish()));
        arrays.push(Arc::new(time.finish()));
        arrays.push(constant(&self.model, rows)?);
        arrays.push(Arc::new(version.finish()));
        arrays.push(constant(&self.sha256, rows)?);
        arrays.push(protocol.finish()?);
        arrays.push(role.finish()?);
        arrays.push(status.finish()?);
        arrays.push(Arc::new(error.finish()));
        arrays.push(Arc::new(latency.finish()));
        arrays.push(Arc::new(weight.finish()));
        arrays.push(Arc::new(other_version.finish()));
        arrays.push(Arc::new(agreed.finish()));
        for column in &self.columns {
            arrays.push(self.column(column, records, rows));
        }
        RecordBatch::try_new(Arc::clone(&self.schema), arrays)
    }

    fn column(&self, column: &Column, records: &[Record], rows: usize) -> ArrayRef {
        // Each log row's cell: None (null) when the record has no such value.
        let cells = records.iter().flat_map(|record| {
            let source = if record.rows == 0 {
                None
            } else {
                source_of(&column.source, record)
            };
            (0..record.log_rows()).map(move |r| source.and_then(|(d, c, w)| cell(d, r * w + c)))
        });
        match column.kind {
            Kind::F32 => {
                let mut b = Float32Builder::with_capacity(rows);
                for c in cells {
                    match c {
                        Some(Cell::F32(x)) if !(column.nan_is_null && x.is_nan()) => {
                            b.append_value(x)
                        }
                        Some(Cell::F64(x)) if !(column.nan_is_null && x.is_nan()) => {
                            b.append_value(x as f32)
                        }
                        Some(Cell::I64(x)) => b.append_value(x as f32),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            Kind::F64 => {
                let mut b = Float64Builder::with_capacity(rows);
                for c in cells {
                    match c.and_then(Cell::as_f64) {
                        Some(x) if !(column.nan_is_null && x.is_nan()) => b.append_value(x),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            Kind::I64 => {
                let mut b = Int64Builder::with_capacity(rows);
                for c in cells {
                    match c {
                        Some(Cell::I64(x)) => b.append_value(x),
                        Some(Cell::Bool(x)) => b.append_value(i64::from(x)),
                        Some(other) => match other.as_f64() {
                            Some(x) if x.is_finite() => b.append_value(x as i64),
                            _ => b.append_null(),
                        },
                        None => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            Kind::Bool => {
                let mut b = BooleanBuilder::with_capacity(rows);
                for c in cells {
                    match c {
                        Some(Cell::Bool(x)) => b.append_value(x),
                        Some(other) => match other.as_f64() {
                            Some(x) if !x.is_nan() => b.append_value(x != 0.0),
                            _ => b.append_null(),
                        },
                        None => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            Kind::Text | Kind::Hashed => {
                let mut b = StringBuilder::new();
                for c in cells {
                    match c {
                        Some(cell) if !(column.nan_is_null && cell.is_nan()) => {
                            let text = cell.text();
                            if column.kind == Kind::Hashed {
                                b.append_value(self.hash(&text));
                            } else {
                                b.append_value(text);
                            }
                        }
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            Kind::Category | Kind::Label => {
                let mut b = StringDictionaryBuilder::<Int32Type>::new();
                for c in cells {
                    match c {
                        Some(Cell::I64(i)) if column.kind == Kind::Label => {
                            match usize::try_from(i).ok().and_then(|i| self.labels.get(i)) {
                                Some(label) => b.append_value(label),
                                None => b.append_value(i.to_string()),
                            }
                        }
                        Some(cell) if !cell.is_nan() => b.append_value(cell.text()),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
        }
    }

    /// The hex HMAC-SHA256 of `text` under the server's key.
    fn hash(&self, text: &str) -> String {
        let key: &[u8] = self.key.as_deref().unwrap_or_default();
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
        mac.update(text.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The tensor a column reads in `record`, with the column's place in each row (`cell` checks
/// each index, so a tensor narrower than its declared width is never read past its end).
fn source_of<'r>(source: &Source, record: &'r Record) -> Option<(&'r TensorData, usize, usize)> {
    let (tensors, name, column, width) = match source {
        Source::Input {
            tensor,
            column,
            width,
        } => (&record.inputs[..], tensor, *column, *width),
        Source::Output {
            tensor,
            column,
            width,
        } => (&record.outputs[..], tensor, *column, *width),
    };
    let found = tensors.iter().find(|t| &t.name == name)?;
    Some((&found.tensor.data, column, width))
}

/// A dictionary column holding `value` in every one of `rows` rows.
fn constant(value: &str, rows: usize) -> Result<ArrayRef, ArrowError> {
    let keys = Int32Array::from(vec![0; rows]);
    let values: ArrayRef = Arc::new(StringArray::from(vec![value]));
    Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(
        keys, values,
    )?))
}

/// A dictionary column of a few distinct `&'static str` values (protocol, role, status),
/// built without hashing each row.
#[derive(Default)]
struct SmallDictionary {
    values: Vec<&'static str>,
    keys: Vec<i32>,
}

impl SmallDictionary {
    fn push(&mut self, value: &'static str) {
        let key = match self
            .values
            .iter()
            .position(|v| std::ptr::eq(*v, value) || *v == value)
        {
            Some(key) => key,
            None => {
                self.values.push(value);
                self.values.len() - 1
            }
        };
        self.keys.push(i32::try_from(key).unwrap_or(i32::MAX));
    }

    fn finish(self) -> Result<ArrayRef, ArrowError> {
        let values: ArrayRef = Arc::new(StringArray::from(self.values));
        Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(
            Int32Array::from(self.keys),
            values,
        )?))
    }
}

/// One value of a tensor.
#[derive(Debug, Clone, Copy)]
enum Cell<'a> {
    F32(f32),
    F64(f64),
    I64(i64),
    U64(u64),
    Bool(bool),
    Str(&'a str),
}

impl Cell<'_> {
    fn as_f64(self) -> Option<f64> {
        match self {
            Cell::F32(x) => Some(f64::from(x)),
            Cell::F64(x) => Some(x),
            Cell::I64(x) => Some(x as f64),
            Cell::U64(x) => Some(x as f64),
            Cell::Bool(x) => Some(f64::from(u8::from(x))),
            Cell::Str(_) => None,
        }
    }

    fn is_nan(self) -> bool {
        self.as_f64().is_some_and(f64::is_nan)
    }

    /// The value's text: a number as the shortest text that reads back to it.
    fn text(self) -> String {
        match self {
            Cell::F32(x) => ryu::Buffer::new().format(x).to_owned(),
            Cell::F64(x) => ryu::Buffer::new().format(x).to_owned(),
            Cell::I64(x) => x.to_string(),
            Cell::U64(x) => x.to_string(),
            Cell::Bool(x) => x.to_string(),
            Cell::Str(s) => s.to_owned(),
        }
    }
}

fn cell(data: &TensorData, index: usize) -> Option<Cell<'_>> {
    Some(match data {
        TensorData::F32(v) => Cell::F32(*v.get(index)?),
        TensorData::F64(v) => Cell::F64(*v.get(index)?),
        TensorData::I8(v) => Cell::I64(i64::from(*v.get(index)?)),
        TensorData::I16(v) => Cell::I64(i64::from(*v.get(index)?)),
        TensorData::I32(v) => Cell::I64(i64::from(*v.get(index)?)),
        TensorData::I64(v) => Cell::I64(*v.get(index)?),
        TensorData::U8(v) => Cell::I64(i64::from(*v.get(index)?)),
        TensorData::U16(v) => Cell::I64(i64::from(*v.get(index)?)),
        TensorData::U32(v) => Cell::I64(i64::from(*v.get(index)?)),
        TensorData::U64(v) => Cell::U64(*v.get(index)?),
        TensorData::Bool(v) => Cell::Bool(*v.get(index)?),
        TensorData::String(v) => Cell::Str(v.get(index)?),
    })
}

/// Elements per row of a `[N, ...]` shape; `None` when a dimension after the first is dynamic.
fn row_width(shape: &[i64]) -> Option<usize> {
    shape
        .iter()
        .skip(1)
        .try_fold(1usize, |acc, &d| usize::try_from(d).ok().map(|d| acc * d))
}

fn numeric_kind(data_type: DataType) -> Kind {
    match data_type {
        DataType::F32 => Kind::F32,
        DataType::Bool => Kind::Bool,
        DataType::String => Kind::Text,
        dt if dt.is_float() => Kind::F64,
        DataType::U64 => Kind::F64,
        _ => Kind::I64,
    }
}

fn output_source(tensor: &str, column: usize, width: usize) -> Source {
    Source::Output {
        tensor: tensor.to_owned(),
        column,
        width,
    }
}

/// `width` columns for a tensor's rows: `name` alone when one wide, else `name_0`, `name_1`….
fn plain_columns(name: &str, tensor: &str, width: usize, kind: Kind) -> Vec<Column> {
    (0..width)
        .map(|i| Column {
            name: if width == 1 {
                name.to_owned()
            } else {
                format!("{name}_{i}")
            },
            kind,
            source: output_source(tensor, i, width),
            nan_is_null: false,
        })
        .collect()
}
