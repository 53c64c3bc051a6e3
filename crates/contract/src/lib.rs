//! warden's model contract: the manifest (`warden.toml`) a model ships with, how its features
//! map onto the graph's inputs, and the validation every request passes before it may reach a
//! model.
//!
//! This crate does no I/O and knows nothing of HTTP or of any inference engine: it takes text
//! and JSON values and returns typed data or every violation found, so it can be tested and
//! fuzzed on its own, and the server stays a translator.

#![forbid(unsafe_code)]

pub mod baseline;
mod binding;
mod explain;
mod manifest;
mod non_finite;
mod prediction_log;
mod rollout;
mod strict_json;
mod validate;
mod violation;

pub use binding::{Binding, GraphElement, GraphInput, bind_features, features_from_graph};
pub use explain::{
    DEFAULT_BACKGROUND_ROWS, DEFAULT_EXPLAIN_MAX_EVALUATIONS, DEFAULT_EXPLAIN_MAX_EXACT_FEATURES,
    DEFAULT_EXPLAIN_MAX_ROWS, DEFAULT_EXPLAIN_QUEUE_CAPACITY, DEFAULT_EXPLAIN_TIMEOUT_MS, Explain,
    MAX_BACKGROUND_ROWS,
};
pub use manifest::{
    BackendChoice, Batching, Drift, Feature, FeatureType, HandleUnknown, Manifest, ManifestError,
    Output, OutputKind, RelaxableGuard, VersionEntry,
};
pub use non_finite::{is_bare_token, mark_bare_non_finite, non_finite_spelling};
pub use prediction_log::{MIN_ROTATE_BYTES, PredictionLog};
pub use rollout::{Rollout, RolloutGuard, VersionPolicy};
pub use strict_json::{check_strict, parse_strict};
pub use validate::{
    ColumnValues, FeatureColumn, FeatureColumns, RowSource, check_columns, list_names, no_rows,
    not_rows, validate_instances, validate_rows,
};
pub use violation::{
    LocSegment, MAX_LISTED_VIOLATIONS, MAX_QUOTED_CHARS, Violation, ViolationType, Violations,
    clip, clip_to,
};
