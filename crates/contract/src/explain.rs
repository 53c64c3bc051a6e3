//! `[explain]` in a model's manifest: the background set explanations are computed against
//! (a sample of training rows `warden init --data` stores beside the manifest, pinned by its
//! hash) and the limits that keep an explanation request bounded (rows, features enumerated,
//! engine rows, queue, time).
//!
//! Every limit has a default, so a manifest needs only the two lines `init` writes; the server
//! reads the file and checks it against the contract at load.

use serde::{Deserialize, Serialize};

/// Rows one explain request may hold, by default.
pub const DEFAULT_EXPLAIN_MAX_ROWS: usize = 100;
/// The most features the exact (coalition-enumerating) method takes, by default: 2^12 = 4,096
/// coalitions of the background set per row.
pub const DEFAULT_EXPLAIN_MAX_EXACT_FEATURES: usize = 12;
/// The most rows the engine may run for one request of the exact method, by default.
pub const DEFAULT_EXPLAIN_MAX_EVALUATIONS: u64 = 20_000_000;
/// Explain requests waiting or running per version, by default.
pub const DEFAULT_EXPLAIN_QUEUE_CAPACITY: usize = 8;
/// How long one explain request may take, by default (milliseconds).
pub const DEFAULT_EXPLAIN_TIMEOUT_MS: u64 = 10_000;
/// Background rows `warden init --data` samples, by default.
pub const DEFAULT_BACKGROUND_ROWS: usize = 200;
/// The most background rows a manifest's set may hold.
pub const MAX_BACKGROUND_ROWS: usize = 5_000;

/// `[explain]` in a model's manifest.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Explain {
    /// The background set: JSON Lines of rows (one object per line, keyed by feature name),
    /// relative to the manifest's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    /// The background file's SHA-256 (hex): a file that changed is refused at load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_exact_features: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_evaluations: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_capacity: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl Explain {
    /// Whether the table says nothing (the manifest leaves it out).
    pub fn is_default(&self) -> bool {
        *self == Explain::default()
    }

    pub fn max_rows(&self) -> usize {
        self.max_rows.unwrap_or(DEFAULT_EXPLAIN_MAX_ROWS)
    }

    pub fn max_exact_features(&self) -> usize {
        self.max_exact_features
            .unwrap_or(DEFAULT_EXPLAIN_MAX_EXACT_FEATURES)
    }

    pub fn max_evaluations(&self) -> u64 {
        self.max_evaluations
            .unwrap_or(DEFAULT_EXPLAIN_MAX_EVALUATIONS)
    }

    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
            .unwrap_or(DEFAULT_EXPLAIN_QUEUE_CAPACITY)
    }

    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms.unwrap_or(DEFAULT_EXPLAIN_TIMEOUT_MS)
    }

    /// Every problem with the table.
    pub(crate) fn problems(&self, problems: &mut Vec<String>) {
        match (&self.background, &self.background_sha256) {
            (None, Some(_)) => problems.push(
                "`explain.background_sha256` pins a file, but `explain.background` names none"
                    .to_owned(),
            ),
            (Some(path), _) if path.is_empty() || path.contains("..") || path.starts_with('/') => {
                problems.push(format!(
                    "`explain.background` must be a file inside the model's folder, not {path:?}"
                ))
            }
            _ => {}
        }
        if let Some(hash) = &self.background_sha256
            && (hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()))
        {
            problems.push(
                "`explain.background_sha256` must be 64 hexadecimal digits (a SHA-256)".to_owned(),
            );
        }
        let positive = [
            ("max_rows", self.max_rows.map(|v| v as u64)),
            (
                "max_exact_features",
                self.max_exact_features.map(|v| v as u64),
            ),
            ("max_evaluations", self.max_evaluations),
            ("queue_capacity", self.queue_capacity.map(|v| v as u64)),
            ("timeout_ms", self.timeout_ms),
        ];
        for (key, value) in positive {
            if value == Some(0) {
                problems.push(format!("`explain.{key}` must be at least 1"));
            }
        }
        if let Some(features) = self.max_exact_features
            && features > 20
        {
            problems.push(format!(
                "`explain.max_exact_features` is {features}; at most 20 (2^20 coalitions per row)"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(explain: &Explain) -> Vec<String> {
        let mut problems = Vec::new();
        explain.problems(&mut problems);
        problems
    }

    #[test]
    fn defaults_apply_where_the_table_is_silent() {
        let explain = Explain::default();
        assert!(explain.is_default());
        assert_eq!(explain.max_rows(), DEFAULT_EXPLAIN_MAX_ROWS);
        assert_eq!(explain.timeout_ms(), DEFAULT_EXPLAIN_TIMEOUT_MS);
        assert!(problems(&explain).is_empty());
    }

    #[test]
    fn a_background_outside_the_folder_a_bad_hash_and_zero_limits_are_refused() {
        let explain = Explain {
            background: Some("../train.jsonl".into()),
            background_sha256: Some("abc".into()),
            max_rows: Some(0),
            max_exact_features: Some(30),
            ..Explain::default()
        };
        assert_eq!(
            problems(&explain),
            [
                "`explain.background` must be a file inside the model's folder, not \"../train.jsonl\"",
                "`explain.background_sha256` must be 64 hexadecimal digits (a SHA-256)",
                "`explain.max_rows` must be at least 1",
                "`explain.max_exact_features` is 30; at most 20 (2^20 coalitions per row)",
            ]
        );
    }
}
