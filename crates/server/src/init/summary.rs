//! What `warden init` tells a person when it succeeds: the folder it wrote, each feature with
//! its type, nullability, bounds and category policy, what it guessed that deserves a review,
//! and the next command. Printed on stdout in plain text (the JSON log lines stay on stderr),
//! so the first run of `init` reads like a report, not like silence.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use warden_contract::{FeatureType, Manifest};

/// What `init` wrote and how it checked it.
#[derive(Debug)]
pub(crate) struct Written {
    /// The model folder.
    pub(crate) folder: PathBuf,
    /// The manifest as written and read back.
    pub(crate) manifest: Manifest,
    /// The engine the folder was checked on, as a person names it.
    pub(crate) engine: String,
    /// Whether an ONNX Runtime library was found.
    pub(crate) onnxruntime_found: bool,
    /// Whether training data was given.
    pub(crate) with_data: bool,
    /// The category features whose graph's OneHotEncoder ignores values it was not fitted on.
    pub(crate) ignores_unseen: Vec<String>,
}

impl Written {
    /// The report, one line per fact.
    pub(crate) fn summary(&self, repository: &Path) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "wrote {} (warden.toml, 1/model.onnx); it loads and passes its warm-up on {}",
            self.folder.display(),
            self.engine
        );
        let features = &self.manifest.features;
        let _ = writeln!(text, "features ({}):", features.len());
        let width = features.iter().map(|f| f.name.len()).max().unwrap_or(0);
        for feature in features {
            let mut facts = Vec::new();
            if feature.nullable {
                facts.push("nullable (the graph imputes a missing value)".to_owned());
            }
            match (feature.min, feature.max) {
                (Some(min), Some(max)) => facts.push(format!("served from {min} to {max}")),
                (Some(min), None) => facts.push(format!("at least {min}")),
                (None, Some(max)) => facts.push(format!("at most {max}")),
                (None, None) => {}
            }
            if let Some(values) = &feature.values {
                facts.push(format!("{} values", values.len()));
            }
            if feature.kind == FeatureType::Category {
                // init keeps the default policy; the review below names the features whose
                // graph would take unseen values.
                facts.push("unseen values refused".to_owned());
            }
            let _ = writeln!(
                text,
                "  {:width$}  {:8}  {}",
                feature.name,
                feature.kind.name(),
                facts.join(", ")
            );
        }
        let mut review = Vec::new();
        if self.with_data {
            review.push(
                "min/max: the training range widened by its width on each side; values between \
                 the training range and them are served and counted by the drift monitor"
                    .to_owned(),
            );
            if features.iter().any(|f| f.kind == FeatureType::Category) {
                review.push(
                    "category values: those seen in training; any other is refused unless the \
                     feature says handle_unknown = \"pass\""
                        .to_owned(),
                );
            }
            if features.iter().any(|f| f.kind == FeatureType::String) {
                review.push(
                    "string features: more distinct values than a category holds, so any text is \
                     served"
                        .to_owned(),
                );
            }
        } else {
            review.push(
                "no training data: no ranges, categories, example or drift baseline; run init \
                 again with --data train.csv"
                    .to_owned(),
            );
        }
        if !self.ignores_unseen.is_empty() {
            review.push(format!(
                "{}: the graph's OneHotEncoder ignores categories it was not fitted on \
                 (handle_unknown=\"ignore\"), so the model can take unseen values there; set \
                 handle_unknown = \"pass\" on {} to serve them instead of refusing them",
                self.ignores_unseen.join(", "),
                if self.ignores_unseen.len() == 1 {
                    "it"
                } else {
                    "them"
                }
            ));
        }
        if !features.iter().any(|f| f.nullable) {
            review.push(
                "no feature is nullable: the graph has no Imputer (or trees that track missing \
                 values), so null and NaN are refused"
                    .to_owned(),
            );
        }
        let _ = writeln!(text, "review (in warden.toml):");
        for line in review {
            let _ = writeln!(text, "  - {line}");
        }
        if !self.onnxruntime_found {
            let _ = writeln!(
                text,
                "ONNX Runtime was not found, so the model was checked on tract. To serve on the \
                 one in your virtualenv: pip install onnxruntime, then set \
                 WARDEN_ONNXRUNTIME_LIB=$(python -c \"import onnxruntime, pathlib; \
                 print(next(pathlib.Path(onnxruntime.__file__).parent.glob('capi/libonnxruntime.so*')))\") \
                 (or pass --onnxruntime-lib)"
            );
        }
        let _ = writeln!(text, "next: warden serve {}", repository.display());
        text
    }
}
