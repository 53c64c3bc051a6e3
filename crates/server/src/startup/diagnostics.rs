//! Start-up failures: one error type whose every variant carries the cause, the file, address
//! or variable involved, and a hint; its sysexits exit code; and its rendering in the form of
//! rustc's diagnostics (`error: …`, `--> path`, `= hint: …`).
//!
//! A container that will not start must say why. Nothing here prints a panic message, a
//! backtrace or a `Debug` dump: every failure is one of these variants.

use std::fmt;
use std::net::SocketAddr;

use warden_runtime::RuntimeError;
use warden_runtime::graph_facts::NotOnnx;

use crate::init::InitError;
use crate::serving::model::LoadError;
use crate::serving::repository::{MANIFEST_FILE, MODEL_FILE, RepositoryError};

/// sysexits codes, as DESIGN.md lists them.
pub mod exit {
    pub const USAGE: u8 = 64;
    pub const DATA: u8 = 65;
    pub const NO_INPUT: u8 = 66;
    pub const UNAVAILABLE: u8 = 69;
    pub const SOFTWARE: u8 = 70;
    pub const CANNOT_CREATE: u8 = 73;
    pub const IO: u8 = 74;
    pub const NO_PERMISSION: u8 = 77;
    pub const CONFIG: u8 = 78;
}

/// How to export a scikit-learn model instead of pickling it.
const EXPORT_SNIPPET: &str = "warden never unpickles (a pickle runs arbitrary code when loaded); export to ONNX instead:\n      \
    from skl2onnx import to_onnx\n      \
    open(\"model.onnx\", \"wb\").write(to_onnx(model, X[:1].astype(\"float32\")).SerializeToString())";

/// Why a command stopped before serving.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid configuration ({} {})", .0.len(), if .0.len() == 1 { "problem" } else { "problems" })]
    Config(Vec<String>),
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    #[error("{0}")]
    OnnxRuntime(RuntimeError),
    #[error("the models do not fit in memory: {detail}")]
    Memory { detail: String },
    #[error("{} of {total} models failed to load", failures.len())]
    Models {
        total: usize,
        failures: Vec<(String, LoadError)>,
    },
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Init(#[from] InitError),
    #[error("{0}")]
    Internal(String),
}

impl StartupError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Config(_) => exit::CONFIG,
            StartupError::Repository(err) => match err {
                RepositoryError::NotFound { .. }
                | RepositoryError::NoVersion { .. }
                | RepositoryError::PinnedVersionMissing { .. }
                | RepositoryError::Empty { .. } => exit::NO_INPUT,
                RepositoryError::Manifest { .. } | RepositoryError::OutsideRepository { .. } => {
                    exit::DATA
                }
                RepositoryError::Io { source, .. } => io_exit(source),
            },
            StartupError::OnnxRuntime(_) | StartupError::Memory { .. } => exit::UNAVAILABLE,
            StartupError::Models { failures, .. } => failures
                .first()
                .map_or(exit::DATA, |(_, err)| load_exit(err)),
            StartupError::Bind { source, .. } => match source.kind() {
                std::io::ErrorKind::PermissionDenied => exit::NO_PERMISSION,
                _ => exit::UNAVAILABLE,
            },
            StartupError::Init(err) => match err {
                InitError::Read { source, .. } => io_exit(source),
                InitError::Runtime(
                    RuntimeError::LibraryNotFound { .. } | RuntimeError::LibraryUnusable { .. },
                ) => exit::UNAVAILABLE,
                InitError::Runtime(_)
                | InitError::Data { .. }
                | InitError::Graph(_)
                | InitError::Check(_) => exit::DATA,
                InitError::Exists { .. } => exit::CANNOT_CREATE,
                InitError::Write { source, .. } => io_exit(source),
            },
            StartupError::Internal(_) => exit::SOFTWARE,
        }
    }

    /// The fix to suggest, when there is one.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            StartupError::Config(_) => {
                "every setting is listed in `warden serve --help` and in the README".to_owned()
            }
            StartupError::Repository(
                RepositoryError::Empty { .. }
                | RepositoryError::NotFound { .. }
                | RepositoryError::NoVersion { .. },
            ) => format!(
                "a repository holds NAME/{MANIFEST_FILE} and NAME/1/{MODEL_FILE} for each model \
                 (`warden init` writes both); or pass a single .onnx file"
            ),
            StartupError::Repository(RepositoryError::PinnedVersionMissing { .. }) => {
                "remove `version` from the manifest to serve the highest version, or add that version's folder".to_owned()
            }
            StartupError::Repository(RepositoryError::Manifest { .. }) => {
                "fix the manifest; unknown keys are rejected so a typo never switches a check off"
                    .to_owned()
            }
            StartupError::Repository(RepositoryError::Io { source, .. }) => io_hint(source),
            StartupError::Repository(RepositoryError::OutsideRepository { .. }) => {
                "copy the files into the repository instead of linking to them from outside; \
                 warden serves only what lies under the repository folder"
                    .to_owned()
            }
            StartupError::OnnxRuntime(RuntimeError::LibraryNotFound { .. }) => {
                "install it with `python3 -m pip install onnxruntime` (warden finds the wheel's \
                 library), or point WARDEN_ONNXRUNTIME_LIB or --onnxruntime-lib at libonnxruntime.so"
                    .to_owned()
            }
            StartupError::OnnxRuntime(_) => {
                "point WARDEN_ONNXRUNTIME_LIB at libonnxruntime.so from ONNX Runtime 1.17 or newer \
                 (`python3 -m pip install -U onnxruntime` has one)"
                    .to_owned()
            }
            StartupError::Memory { .. } => {
                "raise the container's memory limit, or serve fewer or smaller models".to_owned()
            }
            StartupError::Models { failures, .. } => {
                let mut hints: Vec<String> =
                    failures.iter().filter_map(|(_, e)| load_hint(e)).collect();
                hints.dedup();
                if hints.is_empty() {
                    return None;
                }
                hints.join("\n  = hint: ")
            }
            StartupError::Bind { address, source } => match source.kind() {
                std::io::ErrorKind::AddrInUse => format!(
                    "another process holds the port: `ss -ltnp 'sport = :{}'` shows which; \
                     stop it or choose another with --port",
                    address.port()
                ),
                std::io::ErrorKind::AddrNotAvailable => format!(
                    "{} is not an address of this machine; use 127.0.0.1 for local use or 0.0.0.0 \
                     for every interface",
                    address.ip()
                ),
                std::io::ErrorKind::PermissionDenied => {
                    "ports below 1024 need privileges; use a port above 1024".to_owned()
                }
                _ => return None,
            },
            StartupError::Init(InitError::Exists { .. }) => {
                "pass --force to overwrite it".to_owned()
            }
            StartupError::Init(InitError::Data { .. }) => {
                "the CSV's header must name the graph's inputs; pass the label column with --target"
                    .to_owned()
            }
            _ => return None,
        })
    }

    /// The file, address or variable the error is about, when there is one.
    pub fn location(&self) -> Option<String> {
        let path = match self {
            StartupError::Repository(err) => err.path(),
            StartupError::OnnxRuntime(RuntimeError::LibraryUnusable { path, .. }) => path,
            StartupError::Bind { address, .. } => return Some(address.to_string()),
            StartupError::Init(err) => return err.path().map(|p| p.display().to_string()),
            _ => return None,
        };
        Some(path.display().to_string())
    }

    /// The lines under the headline: each problem, model failure or place searched.
    pub fn details(&self) -> Vec<String> {
        match self {
            StartupError::Config(problems) => problems.clone(),
            StartupError::Models { failures, .. } => failures
                .iter()
                .map(|(model, cause)| format!("model `{model}`: {cause}"))
                .collect(),
            StartupError::OnnxRuntime(RuntimeError::LibraryNotFound { searched }) => searched
                .iter()
                .map(|place| format!("searched: {place}"))
                .collect(),
            StartupError::Init(init) => init.problems().to_vec(),
            _ => Vec::new(),
        }
    }
}

/// The exit code of one model's load failure.
pub fn load_exit(err: &LoadError) -> u8 {
    match err {
        LoadError::Read { source, .. } => io_exit(source),
        LoadError::Worker { .. } => exit::SOFTWARE,
        LoadError::BackendUnavailable { .. } => exit::UNAVAILABLE,
        _ => exit::DATA,
    }
}

/// The fix for one model's load failure, when there is one.
pub fn load_hint(err: &LoadError) -> Option<String> {
    Some(match err {
        LoadError::Read { source, .. } => io_hint(source),
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
        LoadError::WarmUp { .. } => {
            "the manifest's [example] row must be valid and the model must answer it soundly; \
             `warden init --data` writes one from the training data"
                .to_owned()
        }
        _ => return None,
    })
}

fn io_exit(err: &std::io::Error) -> u8 {
    match err.kind() {
        std::io::ErrorKind::PermissionDenied => exit::NO_PERMISSION,
        std::io::ErrorKind::NotFound => exit::NO_INPUT,
        _ => exit::IO,
    }
}

fn io_hint(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "the server's user cannot read it: `chmod a+r` the \
             file (and `a+x` its folders), or run as its owner"
                .to_owned()
        }
        _ => "check that the disk and the mount are healthy".to_owned(),
    }
}

/// The human form of a start-up error, modelled on rustc's diagnostics.
#[derive(Debug)]
pub struct Diagnostic<'a>(pub &'a StartupError);

impl fmt::Display for Diagnostic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let err = self.0;
        writeln!(f, "error: {err}")?;
        if let Some(location) = err.location() {
            writeln!(f, "  --> {location}")?;
        }
        for detail in err.details() {
            writeln!(f, "  = {detail}")?;
        }
        if let Some(hint) = err.hint() {
            writeln!(f, "  = hint: {hint}")?;
        }
        Ok(())
    }
}
