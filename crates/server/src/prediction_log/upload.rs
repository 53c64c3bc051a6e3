//! Upload of published prediction log files to S3-compatible object storage
//! (`--prediction-log-upload s3://bucket/prefix`), through the `object_store` crate with the
//! standard AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT` for another S3 server, `AWS_ALLOW_HTTP`).
//!
//! The writer hands each file it published to a bounded queue (never waiting: a full queue is
//! counted and logged, the file stays on disk); one thread with its own small async runtime
//! uploads them in order to `<prefix>/<model>/<file name>`. `object_store` retries transient
//! failures with exponential backoff; a file that still fails is tried again twice more after
//! a pause, then counted as failed and logged with its path, never dropped in silence. Local
//! files are kept (retention still applies to them). On shutdown what is queued is uploaded
//! within the grace period.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use super::stats::Stats;
use super::{join_within, lock};

/// Files waiting for upload at most; beyond, a published file is counted and left on disk.
const QUEUED_FILES: usize = 1024;
/// Attempts per file (each with `object_store`'s own retries inside).
const ATTEMPTS: u32 = 3;

/// Where files go: a bucket and a key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadTarget {
    pub bucket: String,
    pub prefix: String,
}

impl UploadTarget {
    /// Reads `s3://bucket[/prefix]`.
    pub fn parse(url: &str) -> Result<UploadTarget, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("`{url}` is not an s3:// address (s3://bucket/prefix)"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("`{url}` names no bucket (s3://bucket/prefix)"));
        }
        Ok(UploadTarget {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    /// The object key of a published file `<dir>/<model>/<name>`.
    fn key(&self, file: &Path) -> Option<String> {
        let name = file.file_name()?.to_str()?;
        let model = file.parent()?.file_name()?.to_str()?;
        Some(if self.prefix.is_empty() {
            format!("{model}/{name}")
        } else {
            format!("{}/{model}/{name}", self.prefix)
        })
    }
}

impl std::fmt::Display for UploadTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// The upload queue and its thread.
#[derive(Debug)]
pub struct Uploader {
    sender: Mutex<Option<Sender<PathBuf>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<Stats>,
}

impl Uploader {
    /// Connects to the bucket (credentials and endpoint from the environment) and starts the
    /// upload thread.
    pub fn start(target: UploadTarget, stats: Arc<Stats>) -> Result<Uploader, String> {
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(&target.bucket)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(15),
                    base: 2.0,
                },
                max_retries: 5,
                retry_timeout: Duration::from_secs(120),
            })
            .build()
            .map_err(|err| format!("cannot use {target}: {err}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| format!("cannot start the upload runtime: {err}"))?;
        let (sender, receiver) = crossbeam_channel::bounded(QUEUED_FILES);
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("prediction-log-upload".into())
            .spawn(move || runtime.block_on(run(store, target, receiver, thread_stats)))
            .map_err(|err| format!("cannot start the upload thread: {err}"))?;
        Ok(Uploader {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            stats,
        })
    }

    /// Queues a published file for upload; never waits.
    pub fn publish(&self, file: PathBuf, model: &str) {
        let sent = match lock(&self.sender).as_ref() {
            Some(sender) => match sender.try_send(file) {
                Ok(()) => return,
                Err(TrySendError::Full(file) | TrySendError::Disconnected(file)) => file,
            },
            None => file,
        };
        lock(&self.stats.models)
            .entry(model.to_owned())
            .or_default()
            .upload_failures += 1;
        tracing::error!(model, file = %sent.display(), "the upload queue is full: this file stays on disk only");
    }

    /// Uploads what is queued and stops, waiting at most `timeout`.
    pub fn close(&self, timeout: Duration) {
        lock(&self.sender).take();
        let Some(thread) = lock(&self.thread).take() else {
            return;
        };
        if !join_within(thread, timeout) {
            tracing::error!(
                "prediction log uploads did not finish before the shutdown deadline; the files stay on disk"
            );
        }
    }
}

async fn run(
    store: impl ObjectStore,
    target: UploadTarget,
    files: Receiver<PathBuf>,
    stats: Arc<Stats>,
) {
    // The queue is a blocking channel: waiting on it blocks this thread, which runs nothing else.
    while let Ok(file) = files.recv() {
        let model = file
            .parent()
            .and_then(|p| p.file_name())
            .map(|m| m.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(key) = target.key(&file) else {
            continue;
        };
        let mut outcome = Err(String::new());
        for attempt in 1..=ATTEMPTS {
            outcome = match tokio::fs::read(&file).await {
                Ok(bytes) => {
                    let size = bytes.len() as u64;
                    store
                        .put(&ObjectPath::from(key.as_str()), PutPayload::from(bytes))
                        .await
                        .map(|_| size)
                        .map_err(|err| err.to_string())
                }
                Err(err) => Err(format!("cannot read {}: {err}", file.display())),
            };
            if outcome.is_ok() || attempt == ATTEMPTS {
                break;
            }
            tokio::time::sleep(Duration::from_secs(u64::from(attempt) * 2)).await;
        }
        let mut models = lock(&stats.models);
        let entry = models.entry(model.clone()).or_default();
        match outcome {
            Ok(size) => {
                entry.uploaded_files += 1;
                entry.uploaded_bytes += size;
            }
            Err(err) => {
                entry.upload_failures += 1;
                drop(models);
                tracing::error!(
                    model,
                    file = %file.display(),
                    target = %target,
                    error = %err,
                    "prediction log upload failed; the file stays on disk"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_address_names_a_bucket_and_a_prefix() {
        let target = UploadTarget::parse("s3://logs/warden/prod/").unwrap();
        assert_eq!(target.bucket, "logs");
        assert_eq!(target.prefix, "warden/prod");
        assert_eq!(
            target.key(Path::new(
                "/var/log/w/credit/20261206T000000.000000Z-v1-ab-000001.parquet"
            )),
            Some("warden/prod/credit/20261206T000000.000000Z-v1-ab-000001.parquet".to_owned())
        );
        assert_eq!(UploadTarget::parse("s3://logs").unwrap().prefix, "");
        assert!(UploadTarget::parse("logs/x").is_err());
        assert!(UploadTarget::parse("s3:///x").is_err());
    }
}
