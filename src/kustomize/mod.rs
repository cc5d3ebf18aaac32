//! Kustomize `images:` editing: `set image` spec parsing and the byte-preserving YAML edit.
//!
//! [`parse_spec`] reads every argument form of `kustomize edit set image`; [`set_images`] is the
//! pure edit (bytes in, bytes out) that the git write-back re-applies on each fresh tip;
//! [`set_image_in_dir`] is the same for a directory on disk, as `deploy-action set-image` does.

mod edit;
mod quote;
mod shape;
mod spec;
mod yaml;

use std::path::{Path, PathBuf};

pub use edit::set_images;
pub use shape::{ImageEntry, current_image, image_entries};
pub use spec::{Field, ImageSpec, SpecError, SpecErrors, parse_spec, parse_specs};

use crate::failure::{Hint, Locate, Location};

/// The names kustomize looks for, in its order.
pub(crate) const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Why a kustomization could not be edited. The file and line come through [`Locate`], the
/// usual cause through [`Hint`]; `Display` is the problem alone.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The file is not YAML, or not a shape we can edit without risk; nothing was written.
    #[error("{message}")]
    Refused {
        file: String,
        line: usize,
        message: String,
        hint: Option<&'static str>,
    },
    /// The directory holds none of [`KUSTOMIZATION_FILES`].
    #[error("no kustomization.yaml, kustomization.yml or Kustomization")]
    NotFound { dir: String },
    #[error("cannot read")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write")]
    Write {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

impl Hint for EditError {
    fn hint(&self) -> Option<String> {
        match self {
            EditError::Refused { hint, .. } => hint.map(str::to_string),
            EditError::NotFound { .. } => Some(
                "the `kustomization` input (or --dir) names the overlay directory, relative to the workspace".into(),
            ),
            EditError::Read { .. } | EditError::Write { .. } => None,
        }
    }
}

impl Locate for EditError {
    fn location(&self) -> Option<Location> {
        Some(match self {
            EditError::Refused { file, line, .. } => Location {
                file: file.clone(),
                line: Some(*line),
            },
            EditError::Read { file, .. } | EditError::Write { file, .. } => Location {
                file: file.clone(),
                line: None,
            },
            EditError::NotFound { dir } => Location {
                file: dir.clone(),
                line: None,
            },
        })
    }
}

/// The kustomization in the repository directory `dir` (`.` for the root), read through
/// `read` (repo-relative path to bytes, as a git tree gives them): its path and bytes.
pub(crate) fn kustomization_at(
    dir: &str,
    read: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Option<(String, Vec<u8>)> {
    let dir = dir.trim_end_matches('/');
    KUSTOMIZATION_FILES.iter().find_map(|name| {
        let path = if dir == "." || dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        };
        read(&path).map(|src| (path, src))
    })
}

/// The kustomization file in `dir`: the first of [`KUSTOMIZATION_FILES`] that exists.
pub(crate) fn find_kustomization(dir: &Path) -> Result<PathBuf, EditError> {
    KUSTOMIZATION_FILES
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| EditError::NotFound {
            dir: dir.display().to_string(),
        })
}

/// Finds the kustomization in `dir`, applies `specs` and writes the result atomically (a
/// temporary file in the same directory, with the same permissions, renamed over it) when it
/// changed. On any error nothing is written. Returns whether the file changed.
pub fn set_image_in_dir(dir: &Path, specs: &[ImageSpec]) -> Result<bool, EditError> {
    let path = find_kustomization(dir)?;
    let name = path.display().to_string();
    let read_err = |source| EditError::Read {
        file: name.clone(),
        source,
    };
    let write_err = |source| EditError::Write {
        file: name.clone(),
        source,
    };
    let before = fs_err::read(&path).map_err(read_err)?;
    let after = set_images(&name, &before, specs)?;
    if after == before {
        return Ok(false);
    }
    // Replace the file a symlink points at, not the link.
    let target = fs_err::canonicalize(&path).map_err(read_err)?;
    let parent = target.parent().unwrap_or(Path::new("."));
    let meta = fs_err::metadata(&target).map_err(read_err)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".kustomization.")
        .tempfile_in(parent)
        .map_err(write_err)?;
    use std::io::Write as _;
    use std::os::unix::fs::MetadataExt as _;
    tmp.write_all(&after).map_err(write_err)?;
    tmp.as_file()
        .set_permissions(meta.permissions())
        .map_err(write_err)?;
    // Keep the owner too: a container action runs as root over a workspace owned by the
    // runner's user, whose later steps must still be able to write the file. Only root can
    // give a file away; anyone else writes files they own, as any editor does.
    let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(meta.uid()), Some(meta.gid()));
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(&target).map_err(|e| write_err(e.error))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::failure::Failure;

    fn failure(err: EditError) -> Failure {
        Failure::of(&err.into())
    }

    #[test]
    fn an_edit_error_gives_file_line_message_and_hint_apart() {
        let err = set_images("k.yaml", b"images:\n- name: a\n- name: a\n", &[]).unwrap_err();
        let f = failure(err);
        assert_eq!(
            f.location,
            Some(Location {
                file: "k.yaml".into(),
                line: Some(3)
            })
        );
        assert_eq!(
            f.message,
            "a second entry for image \"a\" (the first is on line 2)"
        );
        assert_eq!(
            f.hint.as_deref(),
            Some("kustomize applies one entry per image name; remove one of them")
        );
        assert_eq!(f.located_message(), format!("k.yaml:3: {}", f.message));
    }

    #[test]
    fn a_missing_kustomization_names_the_directory_with_a_hint() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().display().to_string();
        let f = failure(find_kustomization(tmp.path()).unwrap_err());
        assert_eq!(
            f.located_message(),
            format!("{dir}: no kustomization.yaml, kustomization.yml or Kustomization")
        );
        assert!(f.hint.unwrap().contains("overlay directory"));
    }

    #[test]
    fn an_io_error_keeps_its_cause_once() {
        let err = EditError::Read {
            file: "k.yaml".into(),
            source: std::io::Error::other("boom"),
        };
        assert_eq!(failure(err).located_message(), "k.yaml: cannot read: boom");
    }

    #[test]
    fn set_image_in_dir_writes_only_when_something_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("Kustomization");
        std::fs::write(&file, "images:\n- name: a\n  newTag: v1\n").unwrap();
        let spec = |s| parse_spec(s).unwrap();
        assert!(!set_image_in_dir(tmp.path(), &[spec("a:v1")]).unwrap());
        assert!(set_image_in_dir(tmp.path(), &[spec("a:v2")]).unwrap());
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "images:\n- name: a\n  newTag: v2\n"
        );
        std::fs::write(&file, "images: [\n").unwrap();
        assert!(set_image_in_dir(tmp.path(), &[spec("a:v3")]).is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "images: [\n");
    }
}
