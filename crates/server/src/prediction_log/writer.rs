//! The prediction log's writer: a bounded queue the request path hands records to without ever
//! waiting, and one background thread that writes them as Parquet files, publishes each file
//! whole, rotates and deletes old files.
//!
//! - **Bounded**: the queue holds at most `queue_bytes` bytes of records (and
//!   [`MAX_QUEUED_RECORDS`]); a record that does not fit is dropped and counted, so a slow disk
//!   costs records, never a request's latency or the server's memory.
//! - **Never torn**: a file is written under a hidden temporary name (`.<name>.<pid>.tmp`) and
//!   published by fsync, rename and an fsync of the directory, so a reader (or a `kill -9`)
//!   never sees a partial `.parquet` file. Temporary files left by a dead process are removed at
//!   start (their records were never published).
//! - **Rotated and retained** per model: a file is published once it holds `rotate_bytes` or is
//!   `rotate_seconds` old; before each publication the model's oldest files are deleted until
//!   the new one fits `retain_files` and `retain_bytes`, so the limits hold at every moment.
//! - **Failures are counted, never fatal**: a full disk or a vanished directory loses the
//!   records of the file being written (counted as `write_error`, logged), and the next record
//!   starts a new file; serving goes on.
//! - **Flushed on shutdown**: [`Writer::close`] publishes every open file.
//! - **Never woken by a request**: the writer drains the queue every 20 ms instead of waiting
//!   on it, so handing a record over costs a request no wake-up and no context switch.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::schema::{Record, VersionLog};
use super::stats::{DropReason, Stats};
use super::upload::Uploader;
use super::{join_within, lock};

/// Records in the queue at most, whatever their size.
pub const MAX_QUEUED_RECORDS: usize = 65_536;
/// Rows gathered before they are encoded into the open file.
const BATCH_ROWS: usize = 4096;
/// Rows per Parquet row group at most (a group is also ended at [`ROW_GROUP_BYTES`]).
const ROW_GROUP_ROWS: usize = 65_536;
/// Encoded bytes a row group may buffer in memory before it is written out.
const ROW_GROUP_BYTES: usize = 8 * 1024 * 1024;
/// How often the writer takes what the queue holds.
const DRAIN_EVERY: Duration = Duration::from_millis(20);
/// How often pending rows are encoded and old files rotated, whatever arrives.
const TICK: Duration = Duration::from_millis(250);
/// One failure line per model at most this often (the rest are counted).
const ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// A queued record and its size as counted in the queue's bytes.
type Queued = (Box<Record>, usize);

/// The queue's sending side and the writer thread.
#[derive(Debug)]
pub struct Writer {
    sender: Mutex<Option<Sender<Queued>>>,
    capacity_bytes: usize,
    stats: Arc<Stats>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    /// Starts the writer thread over `directory` (which exists and is writable: start-up
    /// checked it).
    pub fn start(
        directory: PathBuf,
        capacity_bytes: usize,
        stats: Arc<Stats>,
        uploader: Option<Arc<Uploader>>,
    ) -> std::io::Result<Writer> {
        remove_stale_temporaries(&directory);
        let (sender, receiver) = crossbeam_channel::bounded(MAX_QUEUED_RECORDS);
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("prediction-log".into())
            .spawn(move || {
                let mut files = Files {
                    directory,
                    instance: format!("{:08x}", fastrand::u32(..)),
                    sequence: 0,
                    open: HashMap::new(),
                    stats: thread_stats,
                    last_error_log: HashMap::new(),
                    uploader,
                };
                files.run(&receiver);
            })?;
        Ok(Writer {
            sender: Mutex::new(Some(sender)),
            capacity_bytes,
            stats,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hands a record to the writer, or drops it (counted) when the queue is full. Never waits.
    pub fn push(&self, record: Record) {
        let size = record.size();
        let queued = &self.stats.queued_bytes;
        let refused = if queued.fetch_add(size, Ordering::Relaxed) + size > self.capacity_bytes {
            Some(record)
        } else {
            match lock(&self.sender).as_ref() {
                Some(sender) => sender
                    .try_send((Box::new(record), size))
                    .err()
                    .map(|refused| *refused.into_inner().0),
                None => Some(record),
            }
        };
        if let Some(record) = refused {
            queued.fetch_sub(size, Ordering::Relaxed);
            self.stats
                .dropped(&record.log.model, DropReason::QueueFull, 1);
        }
    }

    /// Stops taking records, writes what is queued, publishes every open file and waits for
    /// the writer at most `timeout`.
    pub fn close(&self, timeout: Duration) {
        lock(&self.sender).take();
        let Some(thread) = lock(&self.thread).take() else {
            return;
        };
        if !join_within(thread, timeout) {
            tracing::error!(
                timeout_ms = timeout.as_millis() as u64,
                "the prediction log did not finish writing before the shutdown deadline; \
                 its open files stay unpublished"
            );
        }
    }
}

/// One file being written.
struct OpenFile {
    log: Arc<VersionLog>,
    temporary: PathBuf,
    published: PathBuf,
    writer: ArrowWriter<File>,
    opened: Instant,
    pending: Vec<Record>,
    pending_rows: usize,
    /// Records and rows written into the file so far (lost if it fails).
    records: u64,
    rows: u64,
}

/// The writer thread's state: the files open, one per logged version.
struct Files {
    directory: PathBuf,
    /// Tells this process's files from another's in a shared directory.
    instance: String,
    sequence: u64,
    /// By version log (its address: one per loaded version and settings).
    open: HashMap<usize, OpenFile>,
    stats: Arc<Stats>,
    last_error_log: HashMap<String, Instant>,
    /// Where published files go next, when they are uploaded.
    uploader: Option<Arc<Uploader>>,
}

impl Files {
    /// Wakes every [`DRAIN_EVERY`] and takes what the queue holds: a request's thread never
    /// wakes the writer (one wake-up per record would cost a context switch per request).
    fn run(&mut self, receiver: &Receiver<Queued>) {
        let mut next_tick = Instant::now() + TICK;
        loop {
            std::thread::sleep(DRAIN_EVERY);
            loop {
                match receiver.try_recv() {
                    Ok((record, size)) => {
                        self.stats.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                        self.add(*record);
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.publish_all();
                        return;
                    }
                }
            }
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + TICK;
            }
        }
    }

    fn add(&mut self, record: Record) {
        let key = Arc::as_ptr(&record.log) as usize;
        if !self.open.contains_key(&key) {
            match self.open_file(&record.log) {
                Ok(file) => {
                    self.open.insert(key, file);
                }
                Err(err) => {
                    let model = record.log.model.clone();
                    self.failed(&model, &format!("cannot start a file: {err}"), 1);
                    return;
                }
            }
        }
        let Some(file) = self.open.get_mut(&key) else {
            return;
        };
        file.pending_rows += record.log_rows();
        file.pending.push(record);
        if file.pending_rows >= BATCH_ROWS {
            self.write_pending(key);
        }
    }

    /// Encodes a file's pending records; then publishes it if it is due.
    fn write_pending(&mut self, key: usize) {
        let Some(file) = self.open.get_mut(&key) else {
            return;
        };
        if file.pending.is_empty() {
            return;
        }
        let records = std::mem::take(&mut file.pending);
        let rows = std::mem::take(&mut file.pending_rows);
        let written = file
            .log
            .batch(&records)
            .map_err(|e| e.to_string())
            .and_then(|batch| {
                file.writer.write(&batch).map_err(|e| e.to_string())?;
                if file.writer.in_progress_size() >= ROW_GROUP_BYTES {
                    file.writer.flush().map_err(|e| e.to_string())?;
                }
                Ok(())
            });
        match written {
            Ok(()) => {
                file.records += records.len() as u64;
                file.rows += rows as u64;
            }
            Err(err) => {
                let lost = file.records + records.len() as u64;
                self.abandon(key, &format!("cannot write: {err}"), lost);
                return;
            }
        }
        let due = file.writer.bytes_written() + file.writer.in_progress_size()
            >= file.log.settings.rotate_bytes as usize;
        if due {
            self.publish(key);
        }
    }

    /// Encodes pending rows of every file and publishes the files that are old enough.
    fn tick(&mut self) {
        let keys: Vec<usize> = self.open.keys().copied().collect();
        for key in keys {
            self.write_pending(key);
            let old = self.open.get(&key).is_some_and(|file| {
                file.opened.elapsed() >= Duration::from_secs(file.log.settings.rotate_seconds)
            });
            if old {
                self.publish(key);
            }
        }
    }

    fn publish_all(&mut self) {
        let keys: Vec<usize> = self.open.keys().copied().collect();
        for key in keys {
            self.write_pending(key);
            self.publish(key);
        }
    }

    /// Closes a file, makes it durable and gives it its published name; then applies the
    /// model's retention.
    fn publish(&mut self, key: usize) {
        let Some(file) = self.open.remove(&key) else {
            return;
        };
        let OpenFile {
            log,
            temporary,
            published,
            writer,
            records,
            rows,
            ..
        } = file;
        let closed = writer
            .into_inner()
            .map_err(|e| e.to_string())
            .and_then(|mut inner| {
                use std::io::Write;
                inner.flush().map_err(|e| e.to_string())?;
                inner.sync_all().map_err(|e| e.to_string())?;
                Ok(inner.metadata().map_or(0, |m| m.len()))
            })
            .map(|incoming| {
                // Room first, so the retention holds at every moment a reader looks.
                self.make_room(&log, incoming);
            })
            .and_then(|()| std::fs::rename(&temporary, &published).map_err(|e| e.to_string()))
            .and_then(|()| sync_directory(published.parent()).map_err(|e| e.to_string()));
        if let Err(err) = closed {
            let _ = std::fs::remove_file(&temporary);
            self.failed(
                &log.model,
                &format!("cannot publish {}: {err}", published.display()),
                records,
            );
            return;
        }
        let bytes = std::fs::metadata(&published).map_or(0, |m| m.len());
        {
            let mut models = lock(&self.stats.models);
            let stats = models.entry(log.model.clone()).or_default();
            *stats.records.entry(log.version).or_default() += records;
            *stats.rows.entry(log.version).or_default() += rows;
            stats.files_published += 1;
            stats.bytes_published += bytes;
            stats.files += 1;
            stats.bytes += bytes;
        }
        tracing::debug!(model = %log.model, version = log.version, file = %published.display(), records, rows, bytes, "prediction log file published");
        if let Some(uploader) = &self.uploader {
            uploader.publish(published.clone(), &log.model);
        }
    }

    /// Deletes the model's oldest published files until one more of `incoming` bytes fits its
    /// retention (a file larger than `retain_bytes` alone is still published).
    fn make_room(&mut self, log: &VersionLog, incoming: u64) {
        let folder = self.directory.join(&log.model);
        let mut files: Vec<(String, u64)> = match std::fs::read_dir(&folder) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let published = name.ends_with(".parquet") && !name.starts_with('.');
                    published.then(|| Some((name, e.metadata().ok()?.len())))?
                })
                .collect(),
            Err(_) => return,
        };
        // Names begin with the UTC time the file was started: oldest first.
        files.sort();
        let mut count = files.len() as u64;
        let mut total: u64 = files.iter().map(|(_, b)| b).sum();
        let mut deleted = 0;
        for (name, bytes) in &files {
            let over_count = log.settings.retain_files.is_some_and(|max| count + 1 > max);
            let over_bytes = log
                .settings
                .retain_bytes
                .is_some_and(|max| total + incoming > max);
            if !over_count && !over_bytes {
                break;
            }
            if std::fs::remove_file(folder.join(name)).is_ok() {
                count -= 1;
                total -= bytes;
                deleted += 1;
            }
        }
        let mut models = lock(&self.stats.models);
        let stats = models.entry(log.model.clone()).or_default();
        stats.files_deleted += deleted;
        stats.files = count;
        stats.bytes = total;
    }

    fn open_file(&mut self, log: &Arc<VersionLog>) -> Result<OpenFile, String> {
        let folder = self.directory.join(&log.model);
        std::fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        self.sequence += 1;
        let name = format!(
            "{}-v{}-{}-{:06}.parquet",
            utc_stamp(SystemTime::now()),
            log.version,
            self.instance,
            self.sequence
        );
        let temporary = folder.join(format!(".{name}.{}.tmp", std::process::id()));
        let published = folder.join(&name);
        let file = File::create(&temporary).map_err(|e| format!("{}: {e}", temporary.display()))?;
        let properties = parquet_properties(&log.schema);
        let writer = ArrowWriter::try_new(file, Arc::clone(&log.schema), Some(properties))
            .map_err(|e| e.to_string())?;
        Ok(OpenFile {
            log: Arc::clone(log),
            temporary,
            published,
            writer,
            opened: Instant::now(),
            pending: Vec::new(),
            pending_rows: 0,
            records: 0,
            rows: 0,
        })
    }

    /// Gives up a file that failed: its temporary file is removed and its records counted lost.
    fn abandon(&mut self, key: usize, why: &str, records: u64) {
        if let Some(file) = self.open.remove(&key) {
            let _ = std::fs::remove_file(&file.temporary);
            let model = file.log.model.clone();
            self.failed(&model, why, records);
        }
    }

    /// Counts `records` lost to a failure and logs it (at most once per model per
    /// [`ERROR_LOG_EVERY`]).
    fn failed(&mut self, model: &str, why: &str, records: u64) {
        self.stats.dropped(model, DropReason::WriteError, records);
        {
            let mut models = lock(&self.stats.models);
            let at = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            models.entry(model.to_owned()).or_default().last_error = Some((why.to_owned(), at));
        }
        let due = self
            .last_error_log
            .get(model)
            .is_none_or(|at| at.elapsed() >= ERROR_LOG_EVERY);
        if due {
            self.last_error_log.insert(model.to_owned(), Instant::now());
            tracing::error!(
                model,
                error = why,
                lost_records = records,
                "prediction log write failed; serving goes on"
            );
        }
    }
}

/// Removes temporary files a dead process left (their records were never published).
fn remove_stale_temporaries(directory: &Path) {
    let Ok(models) = std::fs::read_dir(directory) else {
        return;
    };
    let mut removed = 0;
    for folder in models.filter_map(Result::ok) {
        let Ok(entries) = std::fs::read_dir(folder.path()) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = temporary_owner(&name) else {
                continue;
            };
            let alive = pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists();
            if !alive && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        tracing::warn!(
            files = removed,
            directory = %directory.display(),
            "removed unpublished prediction log files an earlier process left (it stopped without flushing)"
        );
    }
}

/// The process id in a temporary file's name (`.<name>.parquet.<pid>.tmp`).
fn temporary_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (file, pid) = rest.rsplit_once('.')?;
    file.ends_with(".parquet").then_some(())?;
    pid.parse().ok()
}

/// `time` in UTC as `YYYYMMDDTHHMMSS.ffffffZ`: file names sort in time order.
fn utc_stamp(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since.as_secs();
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's days-to-civil algorithm, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}.{:06}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since.subsec_micros()
    )
}

/// Makes a rename in `folder` durable.
fn sync_directory(folder: Option<&Path>) -> std::io::Result<()> {
    match folder {
        Some(folder) => File::open(folder)?.sync_all(),
        None => Ok(()),
    }
}

/// How the log's files are written (and `warden predict`'s): snappy, dictionary pages only for
/// the dictionary columns (ids, labels, categories: trying them on every float column costs
/// the writer more than it saves), chunk statistics, row groups of at most 65,536 rows or 8 MiB.
pub fn parquet_properties(schema: &arrow_schema::Schema) -> WriterProperties {
    let mut properties = WriterProperties::builder()
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::Chunk);
    for field in schema.fields() {
        if matches!(field.data_type(), arrow_schema::DataType::Dictionary(..)) {
            properties = properties
                .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), true);
        }
    }
    properties
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .set_created_by(format!("warden {}", env!("CARGO_PKG_VERSION")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stamps_are_utc_and_sort_in_time_order() {
        let at = |s: u64, us: u32| {
            utc_stamp(
                SystemTime::UNIX_EPOCH + Duration::from_secs(s) + Duration::from_micros(us.into()),
            )
        };
        assert_eq!(at(0, 0), "19700101T000000.000000Z");
        // 2026-12-06T02:35:07.000042Z
        assert_eq!(at(1_796_524_507, 42), "20261206T023507.000042Z");
        // 2024-02-29T23:59:59Z (a leap day)
        assert_eq!(at(1_709_251_199, 0), "20240229T235959.000000Z");
        assert!(at(1_709_251_199, 0) < at(1_709_251_200, 0));
    }

    #[test]
    fn a_temporary_name_gives_its_owner() {
        assert_eq!(
            temporary_owner(".20261206T010203.000001Z-v1-0a0b0c0d-000001.parquet.4242.tmp"),
            Some(4242)
        );
        assert_eq!(temporary_owner("20261206T010203Z-v1.parquet"), None);
        assert_eq!(temporary_owner(".notes.txt.12.tmp"), None);
    }
}
