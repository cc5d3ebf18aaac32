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
    #[error(
        "{dir}: no kustomization.yaml, kustomization.yml or Kustomization\n\
         hint: the `kustomization` input (or --dir) names the overlay directory, relative to the workspace"
    )]
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
