//! The manifest as `init` writes it: a header comment saying where it came from and what to
//! edit, then the TOML the contract crate renders. Only the text lives here; its format is the
//! contract's.

use std::path::Path;

use warden_contract::Manifest;

use super::{InitError, InitRequest};

/// The manifest as written: a header saying where it came from, then the TOML.
pub(super) fn render(manifest: &Manifest, request: &InitRequest) -> Result<String, InitError> {
    let file_name = |path: &Path| {
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    let mut from = format!("the graph {}", file_name(&request.model));
    if let Some(data) = &request.data {
        from.push_str(&format!(" and the training data {}", file_name(data)));
    }
    let toml = manifest
        .to_toml()
        .map_err(|err| InitError::Graph(format!("cannot render the manifest: {err}")))?;
    let mut advice = if request.data.is_some() {
        "# Edit freely. `min`/`max` are the range seen in training widened by its width on\n\
         # each side (never below 0 for a column that never was): a value outside them is\n\
         # refused. A value between the training range and them is served, and the drift\n\
         # monitor counts it (out_of_range_share). Set them to the training range (the\n\
         # baseline's first and last quantile) to refuse unseen values instead, or remove them\n\
         # to only monitor.\n"
            .to_owned()
    } else {
        "# Edit freely. Without training data it declares no ranges or categories; run\n\
         # `warden init --data train.csv` to have them, an example row and a drift\n\
         # baseline written.\n"
            .to_owned()
    };
    if manifest.features.iter().any(|f| f.nullable) {
        advice.push_str(
            "# `nullable` features are those the graph can take a missing value for (an Imputer,\n\
             # or trees that track missing values); `null` for any other is refused.\n",
        );
    }
    let mut text = format!(
        "# The contract of model `{name}`, written by `warden init`\n\
         # from {from}.\n\
         {advice}\n{toml}",
        name = request.name
    );
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}
