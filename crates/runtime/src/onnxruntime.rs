//! The ONNX Runtime backend, through the `ort` crate with `load-dynamic`.
//!
//! Nothing of ONNX Runtime is linked at build time: the shared library (the one inside the
//! `onnxruntime` Python wheel works) is located at start-up by [`locate_library`] and loaded once
//! per process by [`OnnxRuntime::init`] — ONNX Runtime allows a single environment per process,
//! so the server creates one `OnnxRuntime` and shares it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};

use ort::session::Session;
use ort::value::{DynValue, Tensor as OrtTensor, TensorElementType, ValueType};

use crate::{
    Backend, DataType, LoadOptions, LoadedModel, NamedTensor, RuntimeError, Signature, Tensor,
    TensorData, TensorSpec,
};

/// An explicitly configured library path and where it came from (a flag or variable name).
#[derive(Debug, Clone)]
pub struct ExplicitLibrary {
    pub source: String,
    pub path: PathBuf,
}

/// Where to look for the ONNX Runtime shared library, in order of precedence.
#[derive(Debug, Clone, Default)]
pub struct LibrarySearch {
    /// Paths given by the user (flag, `WARDEN_ONNXRUNTIME_LIB`, `ORT_DYLIB_PATH`), highest
    /// precedence first. The first one present wins; if it does not exist that is an error,
    /// because a user who names a path means that path.
    pub explicit: Vec<ExplicitLibrary>,
    /// Python environments warden itself is installed in (`pip install` put the binary in their
    /// `bin/`): their onnxruntime is the one installed with warden, so it comes before `python`.
    pub installed: Vec<PathBuf>,
    /// A Python interpreter whose `onnxruntime` package to look in (e.g. `python3` on PATH).
    pub python: Option<String>,
    /// Virtual environments to look in (e.g. a project-local `.venv`).
    pub venvs: Vec<PathBuf>,
}

/// The library that was found and which search step found it.
#[derive(Debug, Clone)]
pub struct LocatedLibrary {
    pub path: PathBuf,
    pub found_by: String,
}

/// Finds the ONNX Runtime shared library, or reports every place that was searched.
pub fn locate_library(search: &LibrarySearch) -> Result<LocatedLibrary, RuntimeError> {
    if let Some(explicit) = search.explicit.first() {
        if explicit.path.is_file() {
            return Ok(LocatedLibrary {
                path: explicit.path.clone(),
                found_by: explicit.source.clone(),
            });
        }
        let what = if explicit.path.is_dir() {
            "a directory, not the library file (libonnxruntime.so.*) in it"
        } else {
            "a file that does not exist"
        };
        return Err(RuntimeError::LibraryUnusable {
            path: explicit.path.clone(),
            reason: format!("{} names {what}", explicit.source),
        });
    }
    let mut searched = Vec::new();
    for environment in &search.installed {
        for capi in venv_capi_dirs(environment) {
            if let Some(path) = library_in(&capi) {
                return Ok(LocatedLibrary {
                    path,
                    found_by: format!(
                        "the Python environment warden is installed in ({})",
                        environment.display()
                    ),
                });
            }
        }
    }
    if let Some(python) = &search.python {
        match python_package_dir(python) {
            Some(package) => {
                let capi = package.join("capi");
                if let Some(path) = library_in(&capi) {
                    return Ok(LocatedLibrary {
                        path,
                        found_by: format!("the onnxruntime package of `{python}`"),
                    });
                }
                searched.push(format!("{} (no libonnxruntime in it)", capi.display()));
            }
            None => searched.push(format!(
                "the onnxruntime package of `{python}` (not installed, or `{python}` not on PATH)"
            )),
        }
    }
    for venv in &search.venvs {
        for capi in venv_capi_dirs(venv) {
            if let Some(path) = library_in(&capi) {
                return Ok(LocatedLibrary {
                    path,
                    found_by: format!("the virtual environment {}", venv.display()),
                });
            }
        }
        searched.push(format!(
            "{}/lib/python3*/site-packages/onnxruntime/capi",
            venv.display()
        ));
    }
    Err(RuntimeError::LibraryNotFound { searched })
}

/// Asks `python` where its `onnxruntime` package lives, without importing it (importing pulls
/// in numpy and takes a noticeable part of a second).
fn python_package_dir(python: &str) -> Option<PathBuf> {
    let output = Command::new(python)
        .args([
            "-c",
            "import importlib.util as u; s = u.find_spec('onnxruntime'); \
             print(s.submodule_search_locations[0] if s else '')",
        ])
        .output()
        .ok()?;
    let dir = String::from_utf8(output.stdout).ok()?;
    let dir = dir.trim();
    (output.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

fn venv_capi_dirs(venv: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(venv.join("lib")) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("python3"))
        .map(|entry| entry.path().join("site-packages/onnxruntime/capi"))
        .collect();
    dirs.sort();
    dirs
}

/// The versioned ONNX Runtime library in a wheel's `capi` folder, if any.
fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|name| {
                name.starts_with("libonnxruntime.so")
                    || (name.starts_with("libonnxruntime") && name.ends_with(".dylib"))
            })
        })
        .collect();
    found.sort();
    found.pop()
}

/// The loaded ONNX Runtime library and its process-wide environment.
#[derive(Debug)]
pub struct OnnxRuntime {
    environment: ort::environment::Environment,
    library: PathBuf,
    version: String,
}

impl OnnxRuntime {
    /// Loads the library at `library` and creates the process's ONNX Runtime environment.
    /// Call once per process: ONNX Runtime keeps a single global library and environment.
    pub fn init(library: &Path) -> Result<OnnxRuntime, RuntimeError> {
        let unusable = |reason: String| RuntimeError::LibraryUnusable {
            path: library.to_path_buf(),
            reason,
        };
        let builder = ort::init_from(library).map_err(|err| match err {
            ort::LoadDynamicError::BadVersion { version_str, .. } => unusable(format!(
                "it is version {version_str}; warden needs ONNX Runtime 1.17 or newer"
            )),
            other => unusable(other.to_string()),
        })?;
        let environment = builder
            .with_name("warden")
            .with_telemetry(false)
            .build()
            .map_err(|err| unusable(err.to_string()))?;
        Ok(OnnxRuntime {
            environment,
            library: library.to_path_buf(),
            version: library_version(library),
        })
    }

    /// The path the library was loaded from.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// The library's version, e.g. `1.23.2`.
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// The version ONNX Runtime reports in its build information (`git-branch=rel-1.23.2`), or
/// the one in the library's file name.
fn library_version(library: &Path) -> String {
    let info = ort::info();
    if let Some(rest) = info.split("git-branch=rel-").nth(1) {
        let version: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        if !version.is_empty() {
            return version;
        }
    }
    library
        .file_name()
        .and_then(|name| {
            name.to_string_lossy()
                .split(".so.")
                .nth(1)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

impl Backend for OnnxRuntime {
    fn platform(&self) -> &'static str {
        "onnxruntime_onnx"
    }

    fn load(
        &self,
        model: &[u8],
        origin: &Path,
        options: &LoadOptions,
    ) -> Result<Box<dyn LoadedModel>, RuntimeError> {
        let load_error = |reason: String| RuntimeError::Load {
            path: origin.to_path_buf(),
            reason,
        };
        let mut builder =
            Session::builder(&self.environment).map_err(|err| load_error(err.to_string()))?;
        if let Some(threads) = options.intra_op_threads {
            builder = builder
                .with_intra_threads(threads)
                .map_err(|err| load_error(err.to_string()))?;
        }
        // ZipMap's per-row maps are cut to the probability tensor they map (see `zipmap`).
        let cut = crate::zipmap::cut(model);
        let model = cut.as_deref().unwrap_or(model);
        let session = builder
            .commit_from_memory(model)
            .map_err(|err| load_error(err.to_string()))?;
        let signature = Signature {
            inputs: specs(session.inputs(), origin, "input")?,
            outputs: specs(session.outputs(), origin, "output")?,
        };
        Ok(Box::new(OnnxRuntimeModel {
            session: Arc::new(Mutex::new(session)),
            signature,
            share: options.share_session,
        }))
    }
}

fn specs(
    outlets: &[ort::value::Outlet],
    origin: &Path,
    role: &str,
) -> Result<Vec<TensorSpec>, RuntimeError> {
    outlets
        .iter()
        .map(|outlet| {
            let unsupported = |what: String| RuntimeError::UnsupportedSignature {
                path: origin.to_path_buf(),
                reason: format!("graph {role} `{}` is {what}", outlet.name()),
            };
            match outlet.dtype() {
                ValueType::Tensor { ty, shape, .. } => Ok(TensorSpec {
                    name: outlet.name().to_owned(),
                    data_type: data_type(*ty).ok_or_else(|| {
                        unsupported(format!(
                            "a tensor of {ty:?}, which warden does not exchange"
                        ))
                    })?,
                    shape: shape
                        .iter()
                        .map(|&dim| if dim < 0 { -1 } else { dim })
                        .collect(),
                }),
                ValueType::Sequence(_) | ValueType::Map { .. } => Err(unsupported(
                    "a sequence of maps (scikit-learn's ZipMap); export the classifier with \
                     skl2onnx option {'zipmap': False} so probabilities are a plain tensor"
                        .to_owned(),
                )),
                other => Err(unsupported(format!(
                    "of type {other:?}, which is not a tensor"
                ))),
            }
        })
        .collect()
}

fn data_type(ty: TensorElementType) -> Option<DataType> {
    Some(match ty {
        TensorElementType::Bool => DataType::Bool,
        TensorElementType::Uint8 => DataType::U8,
        TensorElementType::Uint16 => DataType::U16,
        TensorElementType::Uint32 => DataType::U32,
        TensorElementType::Uint64 => DataType::U64,
        TensorElementType::Int8 => DataType::I8,
        TensorElementType::Int16 => DataType::I16,
        TensorElementType::Int32 => DataType::I32,
        TensorElementType::Int64 => DataType::I64,
        TensorElementType::Float32 => DataType::F32,
        TensorElementType::Float64 => DataType::F64,
        TensorElementType::String => DataType::String,
        _ => return None,
    })
}

/// One ONNX Runtime session and the signature read from it at load.
///
/// The session sits behind a mutex so that, when asked (`LoadOptions::share_session`), several
/// workers can hold handles on it and run it in turn: `ort` runs a session through `&mut`, as
/// ONNX Runtime's `Run` is not reliably safe to call concurrently on one session. Without
/// sharing, each worker's handle is the only one and the lock is never contended.
#[derive(Debug)]
struct OnnxRuntimeModel {
    session: Arc<Mutex<Session>>,
    signature: Signature,
    share: bool,
}

impl LoadedModel for OnnxRuntimeModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn run(
        &mut self,
        inputs: Vec<NamedTensor>,
        outputs: &[String],
    ) -> Result<Vec<NamedTensor>, RuntimeError> {
        let fail = |err: ort::Error| RuntimeError::Inference(err.to_string());
        let values = inputs
            .into_iter()
            .map(|named| Ok((named.name, to_ort(named.tensor)?)))
            .collect::<Result<Vec<(String, DynValue)>, ort::Error>>()
            .map_err(fail)?;
        // A worker that panicked while holding the lock (caught by the scheduler) left the
        // session as ONNX Runtime left it: a run either completed or returned an error.
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let mut results = session.run(values).map_err(fail)?;
        let wanted: Vec<String> = if outputs.is_empty() {
            self.signature
                .outputs
                .iter()
                .map(|o| o.name.clone())
                .collect()
        } else {
            outputs.to_vec()
        };
        wanted
            .into_iter()
            .map(|name| {
                let value = results.remove(&name).ok_or_else(|| {
                    RuntimeError::Inference(format!("the graph produced no output `{name}`"))
                })?;
                Ok(NamedTensor {
                    tensor: from_ort(&value).map_err(fail)?,
                    name,
                })
            })
            .collect()
    }

    fn share(&self) -> Option<Box<dyn LoadedModel>> {
        self.share.then(|| {
            Box::new(OnnxRuntimeModel {
                session: Arc::clone(&self.session),
                signature: self.signature.clone(),
                share: true,
            }) as Box<dyn LoadedModel>
        })
    }
}

fn to_ort(tensor: Tensor) -> Result<DynValue, ort::Error> {
    let shape = tensor.shape;
    Ok(match tensor.data {
        TensorData::Bool(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::U8(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::U16(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::U32(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::U64(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::I8(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::I16(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::I32(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::I64(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::F32(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::F64(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::String(v) => OrtTensor::from_string_array((shape, v.as_slice()))?.into_dyn(),
    })
}

fn from_ort(value: &DynValue) -> Result<Tensor, ort::Error> {
    fn primitive<T: ort::value::PrimitiveTensorElementType + Clone>(
        value: &DynValue,
    ) -> Result<(Vec<usize>, Vec<T>), ort::Error> {
        let (shape, data) = value.try_extract_tensor::<T>()?;
        Ok((dims(shape), data.to_vec()))
    }
    fn dims(shape: &[i64]) -> Vec<usize> {
        shape.iter().map(|&d| d.max(0) as usize).collect()
    }
    let ty = match value.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => {
            return Err(ort::Error::new(format!(
                "output of type {other:?} is not a tensor"
            )));
        }
    };
    let (shape, data) = match ty {
        TensorElementType::Bool => primitive(value).map(|(s, d)| (s, TensorData::Bool(d)))?,
        TensorElementType::Uint8 => primitive(value).map(|(s, d)| (s, TensorData::U8(d)))?,
        TensorElementType::Uint16 => primitive(value).map(|(s, d)| (s, TensorData::U16(d)))?,
        TensorElementType::Uint32 => primitive(value).map(|(s, d)| (s, TensorData::U32(d)))?,
        TensorElementType::Uint64 => primitive(value).map(|(s, d)| (s, TensorData::U64(d)))?,
        TensorElementType::Int8 => primitive(value).map(|(s, d)| (s, TensorData::I8(d)))?,
        TensorElementType::Int16 => primitive(value).map(|(s, d)| (s, TensorData::I16(d)))?,
        TensorElementType::Int32 => primitive(value).map(|(s, d)| (s, TensorData::I32(d)))?,
        TensorElementType::Int64 => primitive(value).map(|(s, d)| (s, TensorData::I64(d)))?,
        TensorElementType::Float32 => primitive(value).map(|(s, d)| (s, TensorData::F32(d)))?,
        TensorElementType::Float64 => primitive(value).map(|(s, d)| (s, TensorData::F64(d)))?,
        TensorElementType::String => {
            let (shape, strings) = value.try_extract_strings()?;
            (dims(shape), TensorData::String(strings))
        }
        other => {
            return Err(ort::Error::new(format!(
                "output element type {other:?} is not exchanged by warden"
            )));
        }
    };
    Ok(Tensor { shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_path_that_does_not_exist_is_an_error_naming_its_source() {
        let search = LibrarySearch {
            explicit: vec![ExplicitLibrary {
                source: "WARDEN_ONNXRUNTIME_LIB".into(),
                path: "/nonexistent/libonnxruntime.so".into(),
            }],
            python: None,
            installed: vec![],
            venvs: vec![],
        };
        let err = locate_library(&search).unwrap_err().to_string();
        assert!(err.contains("WARDEN_ONNXRUNTIME_LIB"), "{err}");
        assert!(err.contains("/nonexistent/libonnxruntime.so"), "{err}");
    }

    #[test]
    fn nothing_found_lists_every_place_searched() {
        let search = LibrarySearch {
            explicit: vec![],
            python: Some("warden-no-such-python".into()),
            installed: vec![],
            venvs: vec!["/nonexistent/venv".into()],
        };
        let err = locate_library(&search).unwrap_err().to_string();
        assert!(err.contains("warden-no-such-python"), "{err}");
        assert!(err.contains("/nonexistent/venv/lib/python3*"), "{err}");
    }

    #[test]
    fn the_environment_warden_is_installed_in_comes_before_python() {
        let prefix = std::env::temp_dir().join(format!("warden-installed-{}", std::process::id()));
        let capi = prefix.join("lib/python3.12/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        std::fs::write(capi.join("libonnxruntime.so.1.23.2"), b"").unwrap();
        let search = LibrarySearch {
            explicit: vec![],
            installed: vec![prefix.clone()],
            python: Some("warden-no-such-python".into()),
            venvs: vec![],
        };
        let found = locate_library(&search);
        std::fs::remove_dir_all(&prefix).unwrap();
        let found = found.unwrap();
        assert_eq!(found.path, capi.join("libonnxruntime.so.1.23.2"));
        assert!(
            found.found_by.contains("installed in"),
            "{}",
            found.found_by
        );
    }
}
