//! Which versions of a model are served, which one answers by default, and how a candidate
//! version is rolled out beside it: the manifest's `version_policy` and `[rollout]`.
//!
//! The version policy follows TF Serving's `model_version_policy` and Triton's
//! `version_policy` (`{ latest = N }`, `{ specific = [..] }`, `"all"`). The rollout follows
//! Seldon's experiments and KServe's canary: a `canary` share of the requests that name no
//! version is answered by the `candidate` (sticky by a header when one is named), and a `shadow`
//! share also runs on the other version of the pair, whose answer is compared and discarded.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Which version folders are loaded (beside the default and the rollout's candidate, which
/// always are).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionPolicy {
    /// The `N` highest version folders.
    Latest(u64),
    /// These versions.
    Specific(Vec<u64>),
    /// Every version folder.
    All,
}

impl VersionPolicy {
    /// The versions of `on_disk` (ascending) the policy loads.
    pub fn select(&self, on_disk: &[u64]) -> BTreeSet<u64> {
        match self {
            VersionPolicy::Latest(n) => on_disk.iter().rev().take(*n as usize).copied().collect(),
            VersionPolicy::Specific(versions) => versions.iter().copied().collect(),
            VersionPolicy::All => on_disk.iter().copied().collect(),
        }
    }
}

/// `[rollout]`: a candidate version beside the default one.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// The version rolled out beside the default one.
    pub candidate: u64,
    /// The share of requests naming no version that the candidate answers (0 to 1).
    #[serde(default)]
    pub canary: f64,
    /// A request header whose value (hashed) picks the version, so one key always meets one
    /// version; without it (or when a request lacks it), each request is drawn at random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky_header: Option<String>,
    /// The share of requests also run on the other version of the pair (the candidate for a
    /// request the default answered, and the other way round), compared and discarded.
    #[serde(default)]
    pub shadow: f64,
    /// Shadow runs waiting or running at once; beyond it a shadow run is dropped and counted.
    #[serde(default = "Rollout::default_shadow_queue")]
    pub shadow_queue: usize,
    /// A window's label agreement below this is logged once per crossing (classifiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_agreement: Option<f64>,
    /// Rolls the canary back by itself (share to 0) when the candidate misbehaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<RolloutGuard>,
}

/// `[rollout.guard]`: when the candidate is rolled back without anyone asking.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutGuard {
    /// The candidate's share of failed requests (5xx: engine errors, withheld outputs,
    /// timeouts) above which it is rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    /// Label agreement (classifiers) below which it is rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_agreement: Option<f64>,
    /// Requests (for the error rate) or compared rows (for agreement) the shortest drift
    /// window must hold before the guard judges.
    #[serde(default = "RolloutGuard::default_min_requests")]
    pub min_requests: u64,
}

impl RolloutGuard {
    fn default_min_requests() -> u64 {
        100
    }
}

impl Rollout {
    fn default_shadow_queue() -> usize {
        64
    }

    /// A rollout of `candidate` with every other setting at its default.
    pub fn of_candidate(candidate: u64) -> Rollout {
        Rollout {
            candidate,
            canary: 0.0,
            sticky_header: None,
            shadow: 0.0,
            shadow_queue: Rollout::default_shadow_queue(),
            min_agreement: None,
            guard: None,
        }
    }

    /// Every inconsistency, as the manifest reports them (`default`: the default version).
    pub fn problems(&self, default: Option<u64>) -> Vec<String> {
        let mut problems = Vec::new();
        let problems = &mut problems;
        let share = |key: &str, value: f64, problems: &mut Vec<String>| {
            if !(0.0..=1.0).contains(&value) {
                problems.push(format!("`rollout.{key}` ({value}) must be from 0 to 1"));
            }
        };
        share("canary", self.canary, problems);
        share("shadow", self.shadow, problems);
        if let Some(min) = self.min_agreement {
            share("min_agreement", min, problems);
        }
        if default == Some(self.candidate) {
            problems.push(format!(
                "`rollout.candidate` ({}) is the default `version`: a rollout needs two versions",
                self.candidate
            ));
        }
        if !(1..=10_000).contains(&self.shadow_queue) {
            problems.push(format!(
                "`rollout.shadow_queue` ({}) must be from 1 to 10000",
                self.shadow_queue
            ));
        }
        if let Some(header) = &self.sticky_header {
            let token = |c: char| c.is_ascii_alphanumeric() || "-_.!#$%&'*+^`|~".contains(c);
            if header.is_empty() || header.len() > 64 || !header.chars().all(token) {
                problems.push(format!(
                    "`rollout.sticky_header` {header:?} must be an HTTP header name (letters, \
                     digits and `-`, at most 64)"
                ));
            }
        }
        if let Some(guard) = &self.guard {
            if let Some(rate) = guard.max_error_rate {
                share("guard.max_error_rate", rate, problems);
            }
            if let Some(min) = guard.min_agreement {
                share("guard.min_agreement", min, problems);
            }
            if guard.max_error_rate.is_none() && guard.min_agreement.is_none() {
                problems.push(
                    "`rollout.guard` needs `max_error_rate`, `min_agreement` or both".to_owned(),
                );
            }
            if guard.min_requests == 0 {
                problems.push("`rollout.guard.min_requests` must be at least 1".to_owned());
            }
        }
        std::mem::take(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Manifest;

    #[test]
    fn each_policy_form_reads_and_selects() {
        let read = |text: &str| Manifest::from_toml(text).unwrap().version_policy.unwrap();
        assert_eq!(
            read("version_policy = { latest = 2 }"),
            VersionPolicy::Latest(2)
        );
        assert_eq!(
            read("version_policy = { specific = [1, 3] }"),
            VersionPolicy::Specific(vec![1, 3])
        );
        assert_eq!(read("version_policy = \"all\""), VersionPolicy::All);
        assert_eq!(
            VersionPolicy::Latest(2).select(&[1, 2, 5]),
            BTreeSet::from([2, 5])
        );
        assert_eq!(VersionPolicy::All.select(&[1, 2]), BTreeSet::from([1, 2]));
    }

    #[test]
    fn a_rollout_reads_with_defaults_and_every_problem_is_named() {
        let manifest = Manifest::from_toml("[rollout]\ncandidate = 2\ncanary = 0.2\n").unwrap();
        let rollout = manifest.rollout.unwrap();
        assert_eq!((rollout.candidate, rollout.canary), (2, 0.2));
        assert_eq!((rollout.shadow, rollout.shadow_queue), (0.0, 64));
        let text = "version = 2\n[rollout]\ncandidate = 2\ncanary = 1.5\nshadow = -1\n\
                    shadow_queue = 0\nsticky_header = \"a b\"\n[rollout.guard]\nmin_requests = 0\n";
        let err = Manifest::from_toml(text).unwrap_err().to_string();
        for part in [
            "`rollout.canary` (1.5)",
            "`rollout.shadow` (-1)",
            "is the default `version`",
            "`rollout.shadow_queue` (0)",
            "`rollout.sticky_header` \"a b\"",
            "needs `max_error_rate`",
            "`rollout.guard.min_requests`",
        ] {
            assert!(err.contains(part), "{part} missing from {err}");
        }
    }
}
