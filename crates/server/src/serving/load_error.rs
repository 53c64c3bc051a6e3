//! Why a model version could not be loaded, what that means for the process's exit code, and
//! what the user can do about it.

use std::path::PathBuf;

use warden_runtime::RuntimeError;
use warden_runtime::graph_facts::{NodeFacts, NotOnnx};

use crate::exit::{self, io_exit, io_hint};

/// Why a version could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} {}", kind.sentence())]
    NotOnnx { path: PathBuf, kind: NotOnnx },
    #[error("{path}: operator `{operator}`{} of node `{node}` is not supported by the engine", if domain.is_empty() { String::new() } else { format!(" (domain `{domain}`)") })]
    UnsupportedOperator {
        path: PathBuf,
        operator: String,
        domain: String,
        node: String,
    },
    #[error(transparent)]
    Backend(#[from] RuntimeError),
    #[error("the `{backend}` backend is not available: {reason}")]
    BackendUnavailable {
        backend: &'static str,
        reason: String,
    },
    #[error("the manifest of model `{model}` does not match its graph: {}", problems.join("; "))]
    Contract {
        model: String,
        problems: Vec<String>,
    },
    #[error(
        "model `{model}` version {version} pins no sha256 in its manifest, and the server requires one (--require-checksum)"
    )]
    ChecksumMissing { model: String, version: u64 },
    #[error(
        "model `{model}` version {version}: the graph's sha256 is {actual}, but the manifest pins {expected}"
    )]
    ChecksumMismatch {
        model: String,
        version: u64,
        expected: String,
        actual: String,
    },
    #[error("warm-up inference of model `{model}` failed: {reason}")]
    WarmUp { model: String, reason: String },
    /// The engine loaded the graph but could not run it at all (not a matter of the row).
    #[error("the engine loads model `{model}` but cannot run it: {reason}")]
    EngineRun { model: String, reason: String },
    /// The manifest's rollout cannot be set up on the versions loaded.
    #[error("the rollout of model `{model}` cannot start: {reason}")]
    Rollout { model: String, reason: String },
    /// The manifest's `[explain]` background set cannot be used.
    #[error("the background set of model `{model}` ({path}) cannot be used: {reason}")]
    Background {
        model: String,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot start the inference thread of model `{model}`: {source}")]
    Worker {
        model: String,
        source: std::io::Error,
    },
}

/// How to export a scikit-learn model instead of pickling it: the recipe of the README's
/// "Exporting a scikit-learn pipeline" and examples/export_onnx.py, where `X` is the DataFrame the
/// model was fit on (float columns float32, integers int64, the rest strings; ZipMap off).
const EXPORT_SNIPPET: &str = "warden never unpickles (a pickle runs arbitrary code when loaded); \
    export to ONNX instead (X: the training DataFrame without the target; examples/export_onnx.py also checks the answers):\n      \
    from skl2onnx import to_onnx\n      \
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType\n      \
    from sklearn.base import is_classifier\n      \
    kinds = {\"f\": FloatTensorType, \"i\": Int64TensorType, \"u\": Int64TensorType}  # anything else: strings\n      \
    types = [(c, kinds.get(X[c].dtype.kind, StringTensorType)([None, 1])) for c in X.columns]\n      \
    onx = to_onnx(model, initial_types=types, options={\"zipmap\": False} if is_classifier(model) else None,\n                    \
    target_opset={\"\": 17, \"ai.onnx.ml\": 3})\n      \
    open(\"model.onnx\", \"wb\").write(onx.SerializeToString())";

impl LoadError {
    /// The exit code of this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            LoadError::Read { source, .. } => io_exit(source),
            LoadError::Worker { .. } => exit::SOFTWARE,
            LoadError::BackendUnavailable { .. } => exit::UNAVAILABLE,
            _ => exit::DATA,
        }
    }

    /// The fix for this failure, when there is one.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
        LoadError::Rollout { .. } => "a rollout's candidate must take the same graph inputs and \
            answer the same outputs as the default version (export both with the same input \
            types and options), or remove `[rollout]` and reach each version by its URL"
            .to_owned(),
        LoadError::Read { source, .. } => io_hint(source),
        LoadError::Background { .. } => "write the background set again from the training data \
            with `warden init MODEL.onnx --name NAME --repository DIR --data TRAIN.csv --force` \
            (it stores the rows and pins their sha256), or remove `[explain]` to serve without \
            explanations"
            .to_owned(),
        LoadError::NotOnnx {
            kind: NotOnnx::Pickle | NotOnnx::CompressedJoblib,
            ..
        } => EXPORT_SNIPPET.to_owned(),
        LoadError::NotOnnx {
            kind: NotOnnx::TorchCheckpoint,
            ..
        } => "export the network with torch.onnx.export(model, example_input, \"model.onnx\")"
            .to_owned(),
        LoadError::NotOnnx {
            kind: NotOnnx::Hdf5,
            ..
        } => "convert the Keras model with tf2onnx (python -m tf2onnx.convert)".to_owned(),
        LoadError::NotOnnx { .. } => {
            "the file is damaged or not ONNX: copy it again (a partial upload or a Git LFS pointer \
             looks like this) or export it again"
                .to_owned()
        }
        LoadError::UnsupportedOperator { .. } => {
            "export with standard ONNX and ONNX-ML operators (skl2onnx, onnxmltools, torch.onnx), \
             or load the library that implements a custom operator"
                .to_owned()
        }
        LoadError::BackendUnavailable { .. } => {
            "install ONNX Runtime (`python3 -m pip install onnxruntime`), or set `backend = \"auto\"` \
             in the manifest to let warden use the engine it has"
                .to_owned()
        }
        LoadError::Contract { .. } => {
            "regenerate the manifest with `warden init`, or fix the features to match the graph"
                .to_owned()
        }
        LoadError::ChecksumMissing { .. } => {
            "pin the graph's hash in the manifest: `[versions.N]` `sha256 = \"…\"` (`sha256sum \
             model.onnx`; `warden init` writes it)"
                .to_owned()
        }
        LoadError::ChecksumMismatch { .. } => {
            "the file is not the one the manifest pins: copy the right file, or update \
             `sha256` if the model was replaced on purpose"
                .to_owned()
        }
        LoadError::EngineRun { .. } => {
            "with `backend = \"auto\"` warden tries the other engine; a graph with float64 \
             inputs is the usual cause: export with float32 inputs as in the README's \
             *Exporting a scikit-learn pipeline*"
                .to_owned()
        }
        LoadError::WarmUp { .. } => {
            "the manifest's [example] row must be valid and the model must answer it soundly; \
             `warden init --data` writes one from the training data"
                .to_owned()
        }
        _ => return None,
    })
    }
}

/// An engine's load failure that names one of the graph's operators becomes a failure naming
/// that operator and its node; any other stays as the engine said it.
pub(super) fn unsupported_operator(
    err: RuntimeError,
    nodes: &[NodeFacts],
    path: &std::path::Path,
) -> LoadError {
    if let RuntimeError::Load { reason, .. } = &err {
        let unsupported = [
            "not a registered function/op",
            "Could not find an implementation",
            "not implemented",
            // tract: `Unimplemented(SVMClassifier): Wrong number of outputs…`
            "Unimplemented(",
        ];
        if unsupported.iter().any(|phrase| reason.contains(phrase))
            && let Some(node) = nodes.iter().find(|n| {
                let qualified = format!("{}:{}(", n.domain, n.op_type);
                reason.contains(&qualified)
                    || reason.contains(&format!(" {}(", n.op_type))
                    || reason.contains(&format!("Unimplemented({})", n.op_type))
            })
        {
            return LoadError::UnsupportedOperator {
                path: path.to_path_buf(),
                operator: node.op_type.clone(),
                domain: node.domain.clone(),
                node: node.name.clone(),
            };
        }
    }
    LoadError::Backend(err)
}
