//! Kustomize `images:` editing: `set image` spec parsing and the byte-preserving YAML edit.
//!
//! [`parse_spec`] reads every argument form of `kustomize edit set image`; [`set_images`] is the
//! pure edit (bytes in, bytes out) that the git write-back re-applies on each fresh tip;
//! [`set_image_in_dir`] is the same for a directory on disk, as `deploy-action set-image` does.

mod edit;
mod quote;
mod spec;
mod yaml;

#[doc(hidden)]
pub mod cases;

use std::path::{Path, PathBuf};

pub use edit::{ImageEntry, current_image, set_images};
pub use spec::{Field, ImageSpec, SpecError, parse_spec};

/// The names kustomize looks for, in its order.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Why a kustomization could not be edited. `Display` is one line, `file:line: message` when
/// there is a line, then `\nhint: …` when a usual cause is known.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The file is not YAML, or not a shape we can edit without risk; nothing was written.
    #[error("{file}:{line}: {message}{}", hint_line(*.hint))]
    Refused {
        file: String,
        line: usize,
        message: String,
        hint: Option<&'static str>,
    },
    /// The directory holds none of [`KUSTOMIZATION_FILES`].
    #[error("{dir}: {}\nhint: {NOT_FOUND_HINT}", NOT_FOUND)]
    NotFound { dir: String },
    #[error("cannot read {file}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {file}")]
    Write {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

const NOT_FOUND: &str = "no kustomization.yaml, kustomization.yml or Kustomization";
const NOT_FOUND_HINT: &str =
    "the `kustomization` input (or --dir) names the overlay directory, relative to the workspace";

fn hint_line(hint: Option<&str>) -> String {
    hint.map(|h| format!("\nhint: {h}")).unwrap_or_default()
}

impl EditError {
    /// The 1-based line the problem is on, for `::error file=,line=::`.
    pub fn line(&self) -> Option<usize> {
        match self {
            EditError::Refused { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The problem alone, without the `file:line: ` prefix or the hint, but with the cause of
    /// an I/O error: for callers that show file, line and hint themselves (`::error file=,line=::`).
    pub fn message(&self) -> String {
        match self {
            EditError::Refused { message, .. } => message.clone(),
            EditError::NotFound { .. } => NOT_FOUND.to_string(),
            EditError::Read { source, .. } => format!("cannot read: {source}"),
            EditError::Write { source, .. } => format!("cannot write: {source}"),
        }
    }

    /// The usual cause, when one is known.
    pub fn hint(&self) -> Option<&str> {
        match self {
            EditError::Refused { hint, .. } => *hint,
            EditError::NotFound { .. } => Some(NOT_FOUND_HINT),
            EditError::Read { .. } | EditError::Write { .. } => None,
        }
    }

    /// The file (or, for [`EditError::NotFound`], the directory) the problem is in.
    pub fn file(&self) -> &str {
        match self {
            EditError::Refused { file, .. }
            | EditError::Read { file, .. }
            | EditError::Write { file, .. } => file,
            EditError::NotFound { dir } => dir,
        }
    }
}

/// The kustomization file in `dir`: the first of [`KUSTOMIZATION_FILES`] that exists.
pub fn find_kustomization(dir: &Path) -> Result<PathBuf, EditError> {
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

    #[test]
    fn an_edit_error_shows_file_line_and_hint_and_gives_them_apart() {
        let err = set_images("k.yaml", b"images:\n- name: a\n- name: a\n", &[]).unwrap_err();
        assert_eq!((err.file(), err.line()), ("k.yaml", Some(3)));
        assert_eq!(
            err.message(),
            "a second entry for image \"a\" (the first is on line 2)"
        );
        assert_eq!(
            err.hint(),
            Some("kustomize applies one entry per image name; remove one of them")
        );
        assert_eq!(
            err.to_string(),
            format!("k.yaml:3: {}\nhint: {}", err.message(), err.hint().unwrap())
        );
    }

    #[test]
    fn a_missing_kustomization_names_the_directory_with_a_hint() {
        let tmp = tempfile::tempdir().unwrap();
        let err = find_kustomization(tmp.path()).unwrap_err();
        let dir = tmp.path().display().to_string();
        assert_eq!((err.file(), err.line()), (dir.as_str(), None));
        assert_eq!(
            err.to_string(),
            format!("{dir}: {}\nhint: {}", err.message(), err.hint().unwrap())
        );
    }

    #[test]
    fn an_io_error_keeps_its_cause_in_the_message_and_the_source() {
        let err = EditError::Read {
            file: "k.yaml".into(),
            source: std::io::Error::other("boom"),
        };
        assert_eq!(err.to_string(), "cannot read k.yaml");
        assert_eq!(err.message(), "cannot read: boom");
        assert!(std::error::Error::source(&err).is_some());
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
