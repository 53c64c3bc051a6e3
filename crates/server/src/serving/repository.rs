//! The model repository on disk: which models exist, which version of each is served, and
//! where its files are. Scanning only reads directory listings and manifests; loading graphs is
//! the job of `serving::model`.
//!
//! Layout (as TF Serving and Triton): `REPO/NAME/warden.toml` and `REPO/NAME/VERSION/model.onnx`.
//! Which versions are loaded is the manifest's: the default one (pinned by `version`, else the
//! highest version folder other than a rollout's candidate), the rollout's candidate, and those
//! its `version_policy` names. A single `.onnx` file is a repository of one model, named after
//! the file, version 1, without a manifest.
//!
//! Only names read from the repository's own listing become paths; a name from a URL is looked
//! up in that listing, never joined onto a path. An entry that resolves outside the repository
//! (a symlink out of it) is refused.
//!
//! Nothing is skipped in silence: an entry that cannot be read (a model or version folder
//! without permissions) is an error naming its path, never taken for "no model here" or "no
//! such version" (which would serve an older version without a word). Only folders that are
//! never models are passed over: hidden ones (`.git`, Kubernetes' `..data`) and `lost+found`.

use std::path::{Path, PathBuf};

use warden_contract::{Manifest, ManifestError};

/// The file name of a model's manifest.
pub const MANIFEST_FILE: &str = "warden.toml";
/// The file name of a version's graph.
pub const MODEL_FILE: &str = "model.onnx";

/// A model version found on disk, ready to be loaded.
#[derive(Debug, Clone)]
pub struct ModelSource {
    pub name: String,
    pub version: u64,
    pub graph: PathBuf,
    /// `None` for a bare `.onnx` file: the contract is then what the graph declares.
    pub manifest: Option<Manifest>,
    /// Whether this version answers requests that name none.
    pub default: bool,
}

impl ModelSource {
    /// The graph's sha256 the manifest pins for this version (`[versions.N] sha256`), if any.
    pub fn pinned_sha256(&self) -> Option<&str> {
        self.manifest
            .as_ref()?
            .versions
            .get(&self.version.to_string())?
            .sha256
            .as_deref()
    }
}

/// Why a repository or one of its models cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error("{path} does not exist")]
    NotFound { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no model: expected NAME/{MANIFEST_FILE} and NAME/1/{MODEL_FILE}")]
    Empty { path: PathBuf },
    #[error("{path}: {source}")]
    Manifest {
        path: PathBuf,
        source: ManifestError,
    },
    #[error("model `{model}` has no version folder with a {MODEL_FILE} in {path}")]
    NoVersion { model: String, path: PathBuf },
    #[error("model `{model}` names version {version} in its manifest, but {path} does not exist")]
    PinnedVersionMissing {
        model: String,
        version: u64,
        path: PathBuf,
    },
    #[error(
        "model `{model}` has no version to serve by default in {path}: its only version is the \
         rollout's candidate; add the version it is compared with, or pin `version`"
    )]
    NoDefault { model: String, path: PathBuf },
    #[error("{path} resolves outside the model repository (to {target}); refused")]
    OutsideRepository { path: PathBuf, target: PathBuf },
}

impl RepositoryError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            RepositoryError::NotFound { path }
            | RepositoryError::Io { path, .. }
            | RepositoryError::Empty { path }
            | RepositoryError::Manifest { path, .. }
            | RepositoryError::NoVersion { path, .. }
            | RepositoryError::PinnedVersionMissing { path, .. }
            | RepositoryError::NoDefault { path, .. }
            | RepositoryError::OutsideRepository { path, .. } => path,
        }
    }
}

/// One model folder of a repository: its name (from the listing) and what scanning it found:
/// the versions to load, ascending, one of them the default.
#[derive(Debug)]
pub(super) struct ScannedModel {
    pub name: String,
    pub source: Result<Vec<ModelSource>, RepositoryError>,
}

/// Finds every model version to load under `path` (a repository folder or one `.onnx` file),
/// model after model, each model's versions ascending; the first model that cannot be served
/// fails the scan.
pub fn scan(path: &Path) -> Result<Vec<ModelSource>, RepositoryError> {
    let mut sources = Vec::new();
    for model in scan_each(path)? {
        sources.extend(model.source?);
    }
    Ok(sources)
}

/// Finds every model under `path`, each with its own outcome, so one broken model folder does
/// not hide the others (reloading needs this; start-up uses [`scan`]).
pub(super) fn scan_each(path: &Path) -> Result<Vec<ScannedModel>, RepositoryError> {
    let metadata = std::fs::metadata(path).map_err(|source| io_error(path, source))?;
    if metadata.is_file() {
        let name = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".to_owned());
        return Ok(vec![ScannedModel {
            source: Ok(vec![ModelSource {
                name: name.clone(),
                version: 1,
                graph: path.to_path_buf(),
                manifest: None,
                default: true,
            }]),
            name,
        }]);
    }
    let root = std::fs::canonicalize(path).map_err(|source| io_error(path, source))?;
    let mut models = Vec::new();
    for entry in subfolders(path)? {
        let name = entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if never_a_model(&name) {
            continue;
        }
        let manifest_path = entry.join(MANIFEST_FILE);
        let source = match readable(&entry).and_then(|()| is_file(&manifest_path)) {
            Ok(false) => continue,
            Ok(true) => scan_model(&entry, &manifest_path).and_then(|sources| {
                confined(&root, &entry)?;
                confined(&root, &manifest_path)?;
                for source in &sources {
                    confined(&root, &source.graph)?;
                }
                Ok(sources)
            }),
            Err(err) => Err(err),
        };
        models.push(ScannedModel { name, source });
    }
    if models.is_empty() {
        return Err(RepositoryError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(models)
}

/// Refuses `path` when it resolves (through symlinks or `..`) outside `root`.
fn confined(root: &Path, path: &Path) -> Result<(), RepositoryError> {
    let target = std::fs::canonicalize(path).map_err(|source| io_error(path, source))?;
    if target.starts_with(root) {
        Ok(())
    } else {
        Err(RepositoryError::OutsideRepository {
            path: path.to_path_buf(),
            target,
        })
    }
}

/// The versions of the one model in `dir` (a folder holding `warden.toml`), as `scan` finds
/// them in a repository: for commands given a model folder (`warden predict`).
pub fn scan_model_folder(dir: &Path) -> Result<Vec<ModelSource>, RepositoryError> {
    scan_model(dir, &dir.join(MANIFEST_FILE))
}

fn scan_model(dir: &Path, manifest_path: &Path) -> Result<Vec<ModelSource>, RepositoryError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text =
        std::fs::read_to_string(manifest_path).map_err(|source| io_error(manifest_path, source))?;
    let manifest = Manifest::from_toml(&text).map_err(|source| RepositoryError::Manifest {
        path: manifest_path.to_path_buf(),
        source,
    })?;
    // Every version folder holding a graph, ascending.
    let mut on_disk = Vec::new();
    for entry in subfolders(dir)? {
        let Some(version) = entry
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        // An unreadable version folder is an error, not a version to pass over: the next lower
        // one would be served in its place without a word.
        readable(&entry)?;
        if is_file(&entry.join(MODEL_FILE))? {
            on_disk.push(version);
        }
    }
    on_disk.sort_unstable();
    let candidate = manifest.rollout.as_ref().map(|r| r.candidate);
    let default = match manifest.version {
        Some(pinned) => pinned,
        None => on_disk
            .iter()
            .rev()
            .copied()
            .find(|&v| Some(v) != candidate)
            .ok_or_else(|| match on_disk.is_empty() {
                true => RepositoryError::NoVersion {
                    model: name.clone(),
                    path: dir.to_path_buf(),
                },
                false => RepositoryError::NoDefault {
                    model: name.clone(),
                    path: dir.to_path_buf(),
                },
            })?,
    };
    let mut wanted = manifest
        .version_policy
        .as_ref()
        .map(|policy| policy.select(&on_disk))
        .unwrap_or_default();
    wanted.insert(default);
    wanted.extend(candidate);
    let mut sources = Vec::with_capacity(wanted.len());
    for version in wanted {
        let graph = dir.join(version.to_string()).join(MODEL_FILE);
        if !on_disk.contains(&version) {
            return Err(RepositoryError::PinnedVersionMissing {
                model: name,
                version,
                path: graph,
            });
        }
        sources.push(ModelSource {
            graph,
            name: name.clone(),
            version,
            manifest: Some(manifest.clone()),
            default: version == default,
        });
    }
    Ok(sources)
}

/// Folders that are never model folders: hidden ones (`.git`, the `..data` of a Kubernetes
/// ConfigMap volume) and the file system's `lost+found`, which is often unreadable.
fn never_a_model(name: &str) -> bool {
    name.starts_with('.') || name == "lost+found"
}

/// The folders in `dir`, sorted (symlinks followed). An entry whose type cannot be read is an
/// error; one that vanished since the listing is not there.
fn subfolders(dir: &Path) -> Result<Vec<PathBuf>, RepositoryError> {
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|source| io_error(dir, source))? {
        let path = entry.map_err(|source| io_error(dir, source))?.path();
        match std::fs::metadata(&path) {
            Ok(metadata) if metadata.is_dir() => folders.push(path),
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_error(&path, source)),
        }
    }
    folders.sort();
    Ok(folders)
}

/// Whether `dir`'s listing can be read.
fn readable(dir: &Path) -> Result<(), RepositoryError> {
    std::fs::read_dir(dir)
        .map(drop)
        .map_err(|source| io_error(dir, source))
}

/// Whether `path` is a file: `false` when it does not exist, an error when it cannot be told.
fn is_file(path: &Path) -> Result<bool, RepositoryError> {
    match std::fs::metadata(path) {
        Ok(metadata) => Ok(metadata.is_file()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(io_error(path, source)),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> RepositoryError {
    if source.kind() == std::io::ErrorKind::NotFound {
        RepositoryError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        RepositoryError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models")
    }

    #[test]
    fn the_bundled_repository_holds_both_models_at_version_1() {
        let models = scan(&examples()).unwrap();
        let names: Vec<_> = models
            .iter()
            .map(|m| (m.name.as_str(), m.version))
            .collect();
        assert_eq!(names, vec![("credit", 1), ("iris", 1)]);
        assert!(
            models
                .iter()
                .all(|m| m.manifest.is_some() && m.graph.is_file())
        );
    }

    #[test]
    fn a_single_file_is_a_model_named_after_it() {
        let models = scan(&examples().join("iris/1/model.onnx")).unwrap();
        assert_eq!(models[0].name, "model");
        assert!(models[0].manifest.is_none());
    }

    #[cfg(unix)]
    #[test]
    fn a_model_folder_or_graph_linked_from_outside_the_repository_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(outside.path().join("1")).unwrap();
        std::fs::copy(
            examples().join("iris/1/model.onnx"),
            outside.path().join("1/model.onnx"),
        )
        .unwrap();
        let repo = tempfile::tempdir().unwrap();
        // A whole model folder that is a symlink out of the repository.
        std::fs::create_dir(repo.path().join("linked")).unwrap();
        std::fs::copy(
            examples().join("iris/warden.toml"),
            repo.path().join("linked/warden.toml"),
        )
        .unwrap();
        std::os::unix::fs::symlink(outside.path().join("1"), repo.path().join("linked/1")).unwrap();
        // A model that is fine.
        std::fs::create_dir_all(repo.path().join("iris/1")).unwrap();
        for file in ["warden.toml", "1/model.onnx"] {
            std::fs::copy(
                examples().join("iris").join(file),
                repo.path().join("iris").join(file),
            )
            .unwrap();
        }
        let scanned = scan_each(repo.path()).unwrap();
        let outcome: Vec<_> = scanned
            .iter()
            .map(|m| (m.name.as_str(), m.source.is_ok()))
            .collect();
        assert_eq!(outcome, vec![("iris", true), ("linked", false)]);
        let err = scanned[1].source.as_ref().unwrap_err();
        assert!(
            matches!(err, RepositoryError::OutsideRepository { .. }),
            "{err}"
        );
        assert!(
            scan(repo.path()).is_err(),
            "start-up refuses the repository"
        );
    }

    #[test]
    fn a_missing_path_and_an_empty_repository_are_told_apart() {
        let missing = scan(Path::new("/nonexistent/models")).unwrap_err();
        assert!(
            matches!(missing, RepositoryError::NotFound { .. }),
            "{missing}"
        );
        let empty = scan(&examples().join("iris/1")).unwrap_err();
        assert!(matches!(empty, RepositoryError::Empty { .. }), "{empty}");
    }
}
