//! A version's background set: the training rows `warden init --data` stored beside the
//! manifest (`[explain] background`, JSON Lines of rows keyed by feature name), read at load,
//! checked against its pinned sha256 and admitted through the version's contract gate, so the
//! rows explanations mix with a request's are exactly what a request could have sent.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use warden_contract::MAX_BACKGROUND_ROWS;
use warden_runtime::NamedTensor;

use super::super::admission::Gate;
use super::super::load_error::LoadError;
use super::super::model::sha256_hex;
use super::super::repository::ModelSource;

/// The largest background file read, in bytes.
const MAX_BACKGROUND_BYTES: u64 = 64 * 1024 * 1024;

/// The background rows as the graph's inputs.
#[derive(Debug)]
pub(crate) struct Background {
    pub inputs: Vec<NamedTensor>,
    pub rows: usize,
}

/// The folder holding a version's manifest (`NAME/` for `NAME/N/model.onnx`).
fn model_folder(source: &ModelSource) -> Option<&Path> {
    source.graph.parent()?.parent()
}

/// Reads and admits `source`'s background set; `None` when its manifest names none.
pub(super) fn read(source: &ModelSource, gate: &Gate<'_>) -> Result<Option<Background>, LoadError> {
    let Some(manifest) = &source.manifest else {
        return Ok(None);
    };
    let Some(file) = &manifest.explain.background else {
        return Ok(None);
    };
    let path: PathBuf = model_folder(source)
        .map(|folder| folder.join(file))
        .unwrap_or_else(|| PathBuf::from(file));
    let fail = |reason: String| LoadError::Background {
        model: source.name.clone(),
        path: path.clone(),
        reason,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_BACKGROUND_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|err| fail(format!("cannot read it: {err}")))?;
    if bytes.len() as u64 > MAX_BACKGROUND_BYTES {
        return Err(fail(format!(
            "it is over {} MiB; keep a sample of a few hundred rows",
            MAX_BACKGROUND_BYTES >> 20
        )));
    }
    if let Some(expected) = &manifest.explain.background_sha256 {
        let actual = sha256_hex(&bytes);
        if !expected.eq_ignore_ascii_case(&actual) {
            return Err(fail(format!(
                "its sha256 is {actual}, but the manifest pins {expected}: the file changed"
            )));
        }
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| fail("it is not UTF-8 text".into()))?;
    let mut rows = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if rows.len() == MAX_BACKGROUND_ROWS {
            return Err(fail(format!(
                "it has more than {MAX_BACKGROUND_ROWS} rows; keep a sample of a few hundred"
            )));
        }
        let row: Value = serde_json::from_str(line)
            .map_err(|err| fail(format!("line {}: {err}", number + 1)))?;
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(fail("it holds no rows".into()));
    }
    let admitted = gate
        .rows(&rows)
        .map_err(|err| fail(format!("a row breaks the contract: {err}")))?;
    let count = admitted.rows();
    let (inputs, _, _) = admitted
        .into_parts(gate.id)
        .ok_or_else(|| fail("admitted by another version".into()))?;
    Ok(Some(Background {
        inputs,
        rows: count,
    }))
}
