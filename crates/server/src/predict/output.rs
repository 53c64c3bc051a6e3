//! What `warden predict` writes: the scored rows as Parquet in the prediction log's schema (so
//! logged and batch-scored data concatenate) plus `input_row`, each row's number in the input
//! file; and the refused rows as JSON Lines, each with its number and the error body the server
//! answers for it. Both are written under a temporary name beside their destination and renamed
//! into place only when the whole file was scored, so an interrupted run never leaves a file that
//! looks finished.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;

use crate::prediction_log::{Record, VersionLog, parquet_properties};

/// A file being written under a temporary name: renamed into place by [`Pending::publish`],
/// removed when dropped unpublished (an error, Ctrl-C), so nothing is left that looks finished.
struct Pending {
    temporary: PathBuf,
    destination: PathBuf,
    published: bool,
}

impl Pending {
    /// Creates the temporary file beside `destination`.
    fn create(destination: &Path) -> Result<(Pending, File), WriteError> {
        let name = destination
            .file_name()
            .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
        let temporary =
            destination.with_file_name(format!(".{name}.{}.partial", std::process::id()));
        let handle =
            File::create(&temporary).map_err(|err| failed(&temporary, &err, Some(err.kind())))?;
        let pending = Pending {
            temporary,
            destination: destination.to_path_buf(),
            published: false,
        };
        Ok((pending, handle))
    }

    fn publish(mut self) -> Result<(), WriteError> {
        std::fs::rename(&self.temporary, &self.destination)
            .map_err(|err| failed(&self.destination, &err, Some(err.kind())))?;
        self.published = true;
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// Why an output could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {reason}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    pub reason: String,
    pub io: Option<std::io::ErrorKind>,
}

fn failed(path: &Path, reason: impl ToString, io: Option<std::io::ErrorKind>) -> WriteError {
    WriteError {
        path: path.to_path_buf(),
        reason: reason.to_string(),
        io,
    }
}

/// The scored rows' Parquet file.
pub(super) struct ScoredFile {
    writer: ArrowWriter<File>,
    schema: Arc<Schema>,
    file: Pending,
}

impl ScoredFile {
    /// The file for `log`'s columns, `input_row` and the `carry` columns (as text; a name the
    /// log's columns already use is written `input.<name>`).
    pub(super) fn create(
        destination: &Path,
        log: &VersionLog,
        carry: &[String],
    ) -> Result<ScoredFile, WriteError> {
        let mut fields: Vec<Field> = log
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("input_row", DataType::Int64, false));
        for name in carry {
            let taken = fields.iter().any(|f| f.name() == name);
            let name = if taken {
                format!("input.{name}")
            } else {
                name.clone()
            };
            fields.push(Field::new(name, DataType::Utf8, true));
        }
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            log.schema.metadata().clone(),
        ));
        let (file, handle) = Pending::create(destination)?;
        let writer = ArrowWriter::try_new(
            handle,
            Arc::clone(&schema),
            Some(parquet_properties(&schema)),
        )
        .map_err(|err| failed(destination, err, None))?;
        Ok(ScoredFile {
            writer,
            schema,
            file,
        })
    }

    /// Appends a scored batch (`record`, through `log`), whose rows are `numbers` of the input
    /// with `carried` values.
    pub(super) fn write(
        &mut self,
        log: &VersionLog,
        record: &Record,
        numbers: &[u64],
        carried: &[Vec<Option<String>>],
    ) -> Result<(), WriteError> {
        let destination = &self.file.destination;
        let batch = log
            .batch(std::slice::from_ref(record))
            .map_err(|err| failed(destination, err, None))?;
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.push(Arc::new(Int64Array::from_iter_values(
            numbers
                .iter()
                .map(|&n| i64::try_from(n).unwrap_or(i64::MAX)),
        )));
        let carry = self.schema.fields().len() - columns.len();
        for c in 0..carry {
            columns.push(Arc::new(StringArray::from_iter(
                carried.iter().map(|row| row.get(c).cloned().flatten()),
            )));
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(|err| failed(destination, err, None))?;
        self.writer
            .write(&batch)
            .map_err(|err| failed(destination, err, None))
    }

    /// Closes the file and renames it into place.
    pub(super) fn publish(self) -> Result<(), WriteError> {
        let ScoredFile { writer, file, .. } = self;
        writer
            .close()
            .map_err(|err| failed(&file.destination, err, None))?;
        file.publish()
    }
}

/// The refused rows' JSON Lines file.
pub(super) struct RejectsFile {
    writer: BufWriter<File>,
    file: Pending,
    pub count: u64,
}

impl RejectsFile {
    pub(super) fn create(destination: &Path) -> Result<RejectsFile, WriteError> {
        let (file, handle) = Pending::create(destination)?;
        Ok(RejectsFile {
            writer: BufWriter::new(handle),
            file,
            count: 0,
        })
    }

    /// Appends input row `number`'s refusal: `{"input_row": n, "carried": {...}, "code",
    /// "error", "details"}` (`carried` with `--carry`).
    pub(super) fn write(
        &mut self,
        number: u64,
        carried: &[(String, Option<String>)],
        error: &serde_json::Value,
    ) -> Result<(), WriteError> {
        let mut line = serde_json::Map::new();
        line.insert("input_row".into(), number.into());
        if !carried.is_empty() {
            let values = carried
                .iter()
                .map(|(name, value)| {
                    let value = value.clone().map_or(serde_json::Value::Null, Into::into);
                    (name.clone(), value)
                })
                .collect();
            line.insert("carried".into(), serde_json::Value::Object(values));
        }
        if let serde_json::Value::Object(body) = error {
            line.extend(body.clone());
        }
        let destination = &self.file.destination;
        serde_json::to_writer(&mut self.writer, &line)
            .map_err(|err| failed(destination, err, None))?;
        self.writer
            .write_all(b"\n")
            .map_err(|err| failed(destination, &err, Some(err.kind())))?;
        self.count += 1;
        Ok(())
    }

    /// Flushes the file and renames it into place.
    pub(super) fn publish(self) -> Result<(), WriteError> {
        let RejectsFile {
            mut writer, file, ..
        } = self;
        writer
            .flush()
            .map_err(|err| failed(&file.destination, &err, Some(err.kind())))?;
        drop(writer);
        file.publish()
    }
}
