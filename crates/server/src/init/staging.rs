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

    /// Moves what was built to `folder`: by one rename when `folder` is new; file by file (each
    /// a rename) into an existing one (`--force`), so its other version folders are kept.
    pub(super) fn commit(mut self, folder: &Path) -> Result<(), InitError> {
        if !folder.exists() {
            std::fs::rename(&self.path, folder).map_err(write_error(folder))?;
            self.committed = true;
            return Ok(());
        }
        let version = folder.join("1");
        std::fs::create_dir_all(&version).map_err(write_error(&version))?;
        for file in [
            Path::new("1").join(MODEL_FILE),
            PathBuf::from(MANIFEST_FILE),
        ] {
            let target = folder.join(&file);
            std::fs::rename(self.path.join(&file), &target).map_err(write_error(&target))?;
        }
        Ok(())
    }
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
