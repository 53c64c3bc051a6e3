//! Start-up failures: one error type whose every variant carries the cause, the file, address
//! or variable involved, and a hint; its sysexits exit code; and its rendering in the form of
//! rustc's diagnostics (`error: …`, `--> path`, `= hint: …`).
//!
//! A container that will not start must say why. Nothing here prints a panic message, a
//! backtrace or a `Debug` dump: every failure is one of these variants.

use std::fmt;
use std::net::SocketAddr;

use warden_runtime::RuntimeError;

use crate::exit::{self, io_exit, io_hint};
use crate::init::InitError;
use crate::serving::LoadError;
use crate::serving::{MANIFEST_FILE, MODEL_FILE, RepositoryError};

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
    #[error("cannot keep the prediction log in {}: {source}", directory.display())]
    PredictionLog {
        directory: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Init(#[from] InitError),
    #[error(transparent)]
    Predict(#[from] crate::predict::PredictFailure),
    /// `warden health`: the server did not answer ready.
    #[error("not ready: {0}")]
    Unhealthy(String),
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
                | RepositoryError::NoDefault { .. }
                | RepositoryError::Empty { .. } => exit::NO_INPUT,
                RepositoryError::Manifest { .. } | RepositoryError::OutsideRepository { .. } => {
                    exit::DATA
                }
                RepositoryError::Io { source, .. } => io_exit(source),
            },
            StartupError::OnnxRuntime(_) | StartupError::Memory { .. } => exit::UNAVAILABLE,
            StartupError::Models { failures, .. } => failures
                .first()
                .map_or(exit::DATA, |(_, err)| LoadError::exit_code(err)),
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
            StartupError::PredictionLog { source, .. } => match source.kind() {
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                    exit::NO_PERMISSION
                }
                _ => exit::CANNOT_CREATE,
            },
            StartupError::Unhealthy(_) => exit::UNAVAILABLE,
            StartupError::Predict(err) => err.exit_code(),
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
            StartupError::Repository(
                RepositoryError::PinnedVersionMissing { .. } | RepositoryError::NoDefault { .. },
            ) => "add that version's folder, or remove the version from the manifest's `version`, \
                  `version_policy` or `[rollout] candidate`"
                .to_owned(),
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
                    failures.iter().filter_map(|(_, e)| LoadError::hint(e)).collect();
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
            StartupError::PredictionLog { .. } => {
                "give a directory the server's user can create and write (a mounted volume in a \
                 container), or leave --prediction-log unset to keep no log"
                    .to_owned()
            }
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
            StartupError::PredictionLog { directory, .. } => directory,
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
