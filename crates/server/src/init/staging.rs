//! The staging transaction: a model folder is built in a hidden folder beside its final place
//! and moved there only once it is known to serve, so a failure (or a `warden serve --watch`
//! looking at the repository meanwhile) never sees a half-written folder. Kept apart from what
//! goes into the folder, since it is only about how files reach the repository.

use std::path::{Path, PathBuf};

use crate::serving::{MANIFEST_FILE, MODEL_FILE};

use super::{InitError, write_error};

/// A model folder built beside its final place. Its name starts with a dot, which the
/// repository scan passes over, so a `warden serve --watch` on the repository never sees it
/// half-written; being in the repository's own directory makes the final rename atomic. It is
/// removed unless committed.
pub(super) struct Staging {
    pub(super) path: PathBuf,
    committed: bool,
    /// The repository folder, when `init` made it: removed with the staging folder if empty.
    made_repository: Option<PathBuf>,
}

impl Staging {
    pub(super) fn create(repository: &Path, name: &str) -> Result<Staging, InitError> {
        let made_repository = (!repository.exists()).then(|| repository.to_path_buf());
        std::fs::create_dir_all(repository).map_err(write_error(repository))?;
        let mut attempt = 0;
        loop {
            let path = repository.join(format!(".{name}.init-{}-{attempt}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    return Ok(Staging {
                        path,
                        committed: false,
                        made_repository,
                    });
                }
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(source) => return Err(InitError::Write { path, source }),
            }
        }
    }

    /// Moves what was built to `folder` by one rename. An existing `folder` is replaced only
    /// when `replace` (`--force`, or a folder found holding nothing init would not write): as
    /// one unit, moved aside under a hidden name, the new one renamed into its place and the
    /// old one removed, so no version folder of the old one survives to be served under a
    /// manifest checked against the new graph.
    pub(super) fn commit(mut self, folder: &Path, replace: bool) -> Result<(), InitError> {
        if !folder.exists() {
            std::fs::rename(&self.path, folder).map_err(write_error(folder))?;
            self.committed = true;
            return Ok(());
        }
        if !replace {
            // Made by someone else while init ran.
            return Err(InitError::Exists {
                path: folder.to_path_buf(),
                others: Vec::new(),
            });
        }
        let mut aside = self.path.clone().into_os_string();
        aside.push(".replaced");
        let aside = PathBuf::from(aside);
        std::fs::rename(folder, &aside).map_err(write_error(folder))?;
        if let Err(source) = std::fs::rename(&self.path, folder) {
            // Put the old folder back: a failed init changes nothing.
            let _ = std::fs::rename(&aside, folder);
            return Err(InitError::Write {
                path: folder.to_path_buf(),
                source,
            });
        }
        self.committed = true;
        if let Err(err) = std::fs::remove_dir_all(&aside) {
            tracing::warn!(
                path = %aside.display(),
                error = %err,
                "the replaced model folder could not be removed; the repository scan passes \
                 over it, delete it by hand"
            );
        }
        Ok(())
    }
}

/// What an existing model folder holds besides what `init` writes (`warden.toml` and
/// `1/model.onnx`), as `2/` or `1/notes.txt`, sorted: what replacing the folder removes.
/// Nothing when there is no folder.
pub(super) fn others(folder: &Path) -> Result<Vec<String>, InitError> {
    let read_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InitError::Read { path, source }
    };
    let entries = |dir: &Path| -> Result<Vec<(String, bool)>, InitError> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_error(dir))? {
            let entry = entry.map_err(read_error(dir))?;
            let is_dir = entry.file_type().map_err(read_error(dir))?.is_dir();
            found.push((entry.file_name().to_string_lossy().into_owned(), is_dir));
        }
        Ok(found)
    };
    if !folder.is_dir() {
        return Ok(Vec::new());
    }
    let mut others = Vec::new();
    for (name, is_dir) in entries(folder)? {
        match (name.as_str(), is_dir) {
            (MANIFEST_FILE, false) => {}
            ("1", true) => {
                for (inner, inner_dir) in entries(&folder.join("1"))? {
                    if inner != MODEL_FILE || inner_dir {
                        others.push(format!("1/{inner}{}", if inner_dir { "/" } else { "" }));
                    }
                }
            }
            (_, true) => others.push(format!("{name}/")),
            (_, false) => others.push(name),
        }
    }
    others.sort();
    Ok(others)
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.path);
            if let Some(repository) = &self.made_repository {
                let _ = std::fs::remove_dir(repository);
            }
        }
    }
}
