//! What the prediction log did, per model: records written and dropped (and why), files
//! published, kept and deleted, uploads; shared by the request path, the writer, the uploader
//! and the readers of the figures (metrics, the page).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use super::lock;

/// Why a record was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    /// The queue was full.
    QueueFull,
    /// The file it was in could not be written or published.
    WriteError,
}

impl DropReason {
    pub const ALL: [DropReason; 2] = [DropReason::QueueFull, DropReason::WriteError];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::WriteError => "write_error",
        }
    }
}

/// What the log did for one model, for the metrics and the page.
#[derive(Debug, Clone, Default)]
pub struct ModelLogStats {
    /// Records (requests) and rows in published files, by version.
    pub records: BTreeMap<u64, u64>,
    pub rows: BTreeMap<u64, u64>,
    pub dropped: BTreeMap<DropReason, u64>,
    pub files_published: u64,
    pub bytes_published: u64,
    pub files_deleted: u64,
    /// The model's published files now, and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// The last failure, and when (seconds since the Unix epoch).
    pub last_error: Option<(String, u64)>,
    /// Files uploaded to object storage, their bytes, and files that could not be.
    pub uploaded_files: u64,
    pub uploaded_bytes: u64,
    pub upload_failures: u64,
}

/// Shared between the request path (drops), the writer and the readers of the figures.
#[derive(Debug, Default)]
pub struct Stats {
    pub models: Mutex<BTreeMap<String, ModelLogStats>>,
    pub queued_bytes: AtomicUsize,
}

impl Stats {
    pub fn dropped(&self, model: &str, reason: DropReason, records: u64) {
        let mut models = lock(&self.models);
        *models
            .entry(model.to_owned())
            .or_default()
            .dropped
            .entry(reason)
            .or_default() += records;
    }
}
