//! The manifest's `[prediction_log]`: which of a model's requests the server keeps in its
//! prediction log, which features it never writes or writes only as a keyed hash, and when the
//! log's files are rotated and deleted.
//!
//! Every key is optional: a missing one takes the server's default (`warden serve
//! --prediction-log-*`), so a manifest says only what its model needs (most often `drop` and
//! `hash`, the model's own privacy rules). Where the files go is the server's choice, never the
//! manifest's.

use serde::{Deserialize, Serialize};

/// The smallest file a rotation may aim at: smaller files cost more in footers than they hold.
pub const MIN_ROTATE_BYTES: u64 = 64 * 1024;

/// `[prediction_log]` in a model's manifest.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PredictionLog {
    /// The share of requests logged (0 to 1), chosen by request id so that every record of one
    /// request (primary, canary, shadow) is in or out together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<f64>,
    /// Whether refused requests (4xx answers) are logged, with their violations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<bool>,
    /// Features never written (their columns are absent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
    /// Features written only as a keyed hash (HMAC-SHA256, hex) of their value, the key read
    /// from the environment (`WARDEN_PREDICTION_LOG_KEY`), never from a file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hash: Vec<String>,
    /// A file is closed and published once it holds this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_bytes: Option<u64>,
    /// A file is closed and published once it is this old (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_seconds: Option<u64>,
    /// The oldest published files are deleted while the model's files hold more bytes than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_bytes: Option<u64>,
    /// The oldest published files are deleted while the model has more files than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_files: Option<u64>,
}

impl PredictionLog {
    /// Whether the table says nothing (the manifest leaves it out).
    pub fn is_default(&self) -> bool {
        *self == PredictionLog::default()
    }

    /// Every problem with the table; `features` are the manifest's feature names (empty when
    /// the manifest declares none, and then `drop`/`hash` name graph inputs, checked at load).
    pub(crate) fn problems(&self, features: &[&str], problems: &mut Vec<String>) {
        if let Some(sample) = self.sample
            && !(0.0..=1.0).contains(&sample)
        {
            problems.push(format!(
                "`prediction_log.sample` must be between 0 and 1, not {sample}"
            ));
        }
        for (key, names) in [("drop", &self.drop), ("hash", &self.hash)] {
            for (i, name) in names.iter().enumerate() {
                if names[..i].contains(name) {
                    problems.push(format!("`prediction_log.{key}` lists `{name}` twice"));
                } else if !features.is_empty() && !features.contains(&name.as_str()) {
                    problems.push(format!(
                        "`prediction_log.{key}` names `{name}`, which is not a feature of this model"
                    ));
                }
            }
        }
        for name in &self.hash {
            if self.drop.contains(name) {
                problems.push(format!(
                    "`prediction_log` both drops and hashes `{name}`: choose one"
                ));
            }
        }
        if let Some(bytes) = self.rotate_bytes
            && bytes < MIN_ROTATE_BYTES
        {
            problems.push(format!(
                "`prediction_log.rotate_bytes` must be at least {MIN_ROTATE_BYTES} (64 KiB), not {bytes}"
            ));
        }
        if self.rotate_seconds == Some(0) {
            problems.push("`prediction_log.rotate_seconds` must be at least 1".to_owned());
        }
        if self.retain_files == Some(0) {
            problems.push(
                "`prediction_log.retain_files` must be at least 1 (leave the log off instead)"
                    .to_owned(),
            );
        }
        if let (Some(retain), Some(rotate)) = (self.retain_bytes, self.rotate_bytes)
            && retain < rotate
        {
            problems.push(format!(
                "`prediction_log.retain_bytes` ({retain}) is smaller than one file \
                 (`rotate_bytes` = {rotate}): every file would be deleted when published"
            ));
        }
    }
}
