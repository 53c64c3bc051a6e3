//! The background set `init --data` stores beside the manifest for explanations: a systematic
//! sample (evenly spaced through the file, so a file sorted by date or by class still gives
//! rows from all of it) of the training rows, as JSON Lines keyed by feature name, typed as
//! the contract types them, and pinned in `[explain]` by its sha256.

use serde_json::{Map, Value};
use warden_contract::{Explain, Feature};

use super::example::example_value;
use super::table::Table;
use crate::serving::sha256_hex;

/// The background file's name in the model's folder.
pub(super) const BACKGROUND_FILE: &str = "background.jsonl";

/// The background set of `rows` rows sampled from `table`, as the file's text, and the
/// `[explain]` table that pins it; `None` when asked for none or the table has no rows.
pub(super) fn sample(
    table: &Table,
    features: &[Feature],
    rows: usize,
) -> Option<(String, Explain)> {
    let total = table.rows.len();
    if rows == 0 || total == 0 {
        return None;
    }
    let indices: Vec<usize> = if total <= rows {
        (0..total).collect()
    } else {
        (0..rows).map(|i| i * total / rows).collect()
    };
    let columns: Vec<Option<usize>> = features.iter().map(|f| table.index(&f.name)).collect();
    let mut text = String::new();
    for r in indices {
        let row: Map<String, Value> = features
            .iter()
            .zip(&columns)
            .map(|(feature, column)| {
                let cell = column.map_or("", |c| table.rows[r][c].as_str());
                let value = if cell.is_empty() {
                    Value::Null
                } else {
                    example_value(feature, cell)
                };
                (feature.name.clone(), value)
            })
            .collect();
        text.push_str(&Value::Object(row).to_string());
        text.push('\n');
    }
    let explain = Explain {
        background: Some(BACKGROUND_FILE.to_owned()),
        background_sha256: Some(sha256_hex(text.as_bytes())),
        ..Explain::default()
    };
    Some((text, explain))
}
