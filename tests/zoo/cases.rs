//! The zoo's cases, shared by the runtime's and the server's test suites (each includes this
//! file with `#[path]`): every `tests/zoo/NAME.json` (inputs and ONNX Runtime's reference
//! outputs) beside its `NAME.onnx`, sorted by name.

use std::path::{Path, PathBuf};

/// A zoo case: its name, its graph and its JSON (`inputs`, `outputs`, ...).
pub(crate) struct Case {
    pub name: String,
    pub graph: PathBuf,
    pub json: serde_json::Value,
}

/// Every case under `zoo` (the repository's `tests/zoo`).
pub(crate) fn cases(zoo: &Path) -> Vec<Case> {
    let mut cases: Vec<Case> = std::fs::read_dir(zoo)
        .expect("tests/zoo is readable")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|x| x == "json"))
        .map(|json| Case {
            name: json
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_default(),
            graph: json.with_extension("onnx"),
            json: serde_json::from_str(&std::fs::read_to_string(&json).expect("a readable case"))
                .expect("a case is JSON"),
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(cases.len() >= 20, "the zoo has at least 20 models");
    cases
}
