//! Reading the workspace checkout's `origin` and branch straight from its git files.
//!
//! Container actions run as root over a checkout owned by the runner's uid, and libgit2 refuses
//! to open such a repository (`Owner`). We never open it: we only read `HEAD` and `config`,
//! which is all we need and works whoever owns the files.

use std::io;
use std::path::{Path, PathBuf};

use super::GitopsError;

/// The checkout's git directory (`.git`, or where a `.git` file's `gitdir:` points), searching
/// upwards from `start` the way git does. `None` when `start` is not inside a checkout.
fn git_dir(start: &Path) -> Result<Option<PathBuf>, GitopsError> {
    for dir in start.ancestors() {
        let dot_git = dir.join(".git");
        match std::fs::metadata(&dot_git) {
            Ok(meta) if meta.is_dir() => return Ok(Some(dot_git)),
            Ok(_) => {
                let text = read(&dot_git)?;
                let target = text
                    .lines()
                    .find_map(|l| l.strip_prefix("gitdir:"))
                    .map(str::trim)
                    .ok_or_else(|| GitopsError::ReadWorkspace {
                        path: dot_git.clone(),
                        source: io::Error::new(
                            io::ErrorKind::InvalidData,
                            "a .git file without a `gitdir:` line",
                        ),
                    })?;
                return Ok(Some(dir.join(target)));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(GitopsError::ReadWorkspace {
                    path: dot_git,
                    source,
                });
            }
        }
    }
    Ok(None)
}

fn read(path: &Path) -> Result<String, GitopsError> {
    std::fs::read_to_string(path).map_err(|source| GitopsError::ReadWorkspace {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a file that may be absent.
fn read_optional(path: &Path) -> Result<Option<String>, GitopsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(GitopsError::ReadWorkspace {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The `origin` URL of the checkout containing `workspace`, or `None` when there is no checkout
/// or no `origin`.
pub fn workspace_origin(workspace: &Path) -> Result<Option<String>, GitopsError> {
    let Some(git_dir) = git_dir(workspace)? else {
        return Ok(None);
    };
    // A linked worktree keeps its config in the common dir.
    let common = match read_optional(&git_dir.join("commondir"))? {
        Some(rel) => git_dir.join(rel.trim()),
        None => git_dir,
    };
    let path = common.join("config");
    if !path.exists() {
        return Ok(None);
    }
    // Opening a config file, unlike a repository, does no ownership check.
    let config = git2::Config::open(&path).map_err(|source| GitopsError::ReadWorkspaceConfig {
        path: path.clone(),
        cause: source,
    })?;
    match config.get_string("remote.origin.url") {
        Ok(url) if !url.trim().is_empty() => Ok(Some(url.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(source) => Err(GitopsError::ReadWorkspaceConfig {
            path,
            cause: source,
        }),
    }
}

/// What a write-back can borrow from the checkout: its object store, the commit it has
/// checked out, and where its history is cut off (a depth-1 checkout's `shallow` file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Borrowed {
    pub objects: PathBuf,
    pub head: git2::Oid,
    pub shallow: Vec<git2::Oid>,
}

/// The checkout's objects, when it has any we can use; `Err` says why not.
pub(crate) fn workspace_objects(workspace: &Path) -> Result<Borrowed, String> {
    let git_dir = git_dir(workspace)
        .map_err(|e| e.to_string())?
        .ok_or("the workspace is not a git checkout")?;
    let common = match read_optional(&git_dir.join("commondir")).map_err(|e| e.to_string())? {
        Some(rel) => git_dir.join(rel.trim()),
        None => git_dir.clone(),
    };
    let objects = common.join("objects");
    if !objects.is_dir() {
        return Err(format!("{} has no objects directory", common.display()));
    }
    let head = read_optional(&git_dir.join("HEAD"))
        .map_err(|e| e.to_string())?
        .ok_or("the checkout has no HEAD")?;
    let head = resolve(&git_dir, &common, head.trim(), 0)
        .ok_or_else(|| format!("cannot resolve the checkout's HEAD ({})", head.trim()))?;
    let shallow = read_optional(&common.join("shallow"))
        .map_err(|e| e.to_string())?
        .unwrap_or_default()
        .lines()
        .filter_map(|l| git2::Oid::from_str(l.trim()).ok())
        .collect();
    Ok(Borrowed {
        objects,
        head,
        shallow,
    })
}

/// A `HEAD`-style value (`ref: <name>` or an object id) to the commit it names, through loose
/// refs (the worktree's, then the common dir's) and `packed-refs`.
fn resolve(git_dir: &Path, common: &Path, value: &str, depth: u8) -> Option<git2::Oid> {
    let Some(name) = value.strip_prefix("ref:").map(str::trim) else {
        return git2::Oid::from_str(value).ok();
    };
    if depth > 5 {
        return None;
    }
    for dir in [git_dir, common] {
        if let Ok(Some(text)) = read_optional(&dir.join(name)) {
            return resolve(git_dir, common, text.trim(), depth + 1);
        }
    }
    let packed = read_optional(&common.join("packed-refs")).ok()??;
    packed.lines().find_map(|l| {
        let (oid, refname) = l.split_once(' ')?;
        (refname.trim() == name).then(|| git2::Oid::from_str(oid).ok())?
    })
}

/// The branch the checkout's `HEAD` points at, or `None` when detached or not a checkout.
pub fn workspace_branch(workspace: &Path) -> Result<Option<String>, GitopsError> {
    let Some(git_dir) = git_dir(workspace)? else {
        return Ok(None);
    };
    let Some(head) = read_optional(&git_dir.join("HEAD"))? else {
        return Ok(None);
    };
    Ok(branch_of_head(&head))
}

/// `ref: refs/heads/<branch>` → `<branch>`; a detached `HEAD` (an object id) → `None`.
fn branch_of_head(head: &str) -> Option<String> {
    head.trim()
        .strip_prefix("ref:")
        .map(str::trim)
        .and_then(|r| r.strip_prefix("refs/heads/"))
        .filter(|b| !b.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_names_the_branch_or_nothing_when_detached() {
        assert_eq!(
            branch_of_head("ref: refs/heads/main\n").as_deref(),
            Some("main")
        );
        assert_eq!(
            branch_of_head("ref: refs/heads/release/v1\n").as_deref(),
            Some("release/v1")
        );
        assert_eq!(
            branch_of_head("0123456789abcdef0123456789abcdef01234567\n"),
            None
        );
        assert_eq!(branch_of_head("ref: refs/tags/v1\n"), None);
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn origin_and_branch_come_from_a_plain_checkout() {
        let ws = tempfile::tempdir().unwrap();
        write(&ws.path().join(".git/HEAD"), "ref: refs/heads/trunk\n");
        write(
            &ws.path().join(".git/config"),
            "[core]\n\tbare = false\n[remote \"origin\"]\n\turl = https://github.com/nova/monorepo\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n",
        );
        assert_eq!(
            workspace_origin(ws.path()).unwrap().as_deref(),
            Some("https://github.com/nova/monorepo")
        );
        assert_eq!(
            workspace_branch(ws.path()).unwrap().as_deref(),
            Some("trunk")
        );
        // A subdirectory of the checkout finds the same repository.
        let sub = ws.path().join("k8s/overlays");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(workspace_branch(&sub).unwrap().as_deref(), Some("trunk"));
    }

    #[test]
    fn a_gitdir_file_and_a_worktree_commondir_are_followed() {
        let root = tempfile::tempdir().unwrap();
        let main_git = root.path().join("main/.git");
        write(
            &main_git.join("config"),
            "[remote \"origin\"]\n\turl = git://example.invalid/x.git\n",
        );
        write(
            &main_git.join("worktrees/wt/HEAD"),
            "ref: refs/heads/feature\n",
        );
        write(&main_git.join("worktrees/wt/commondir"), "../..\n");
        let wt = root.path().join("wt");
        write(
            &wt.join(".git"),
            &format!("gitdir: {}\n", main_git.join("worktrees/wt").display()),
        );
        assert_eq!(
            workspace_origin(&wt).unwrap().as_deref(),
            Some("git://example.invalid/x.git")
        );
        assert_eq!(workspace_branch(&wt).unwrap().as_deref(), Some("feature"));
    }

    #[test]
    fn the_checked_out_commit_is_found_through_loose_and_packed_refs() {
        let ws = tempfile::tempdir().unwrap();
        let git = ws.path().join(".git");
        std::fs::create_dir_all(git.join("objects")).unwrap();
        let a = "0123456789abcdef0123456789abcdef01234567";
        let b = "89abcdef0123456789abcdef0123456789abcdef";
        write(&git.join("HEAD"), "ref: refs/heads/main\n");
        write(
            &git.join("packed-refs"),
            &format!("# pack-refs with: peeled fully-peeled sorted\n{a} refs/heads/main\n"),
        );
        write(&git.join("shallow"), &format!("{b}\n"));
        let got = workspace_objects(ws.path()).unwrap();
        assert_eq!(got.head.to_string(), a);
        assert_eq!(got.shallow, [git2::Oid::from_str(b).unwrap()]);
        assert_eq!(got.objects, git.join("objects"));
        write(&git.join("refs/heads/main"), &format!("{b}\n"));
        assert_eq!(workspace_objects(ws.path()).unwrap().head.to_string(), b);
        write(&git.join("HEAD"), "ref: refs/heads/gone\n");
        assert!(
            workspace_objects(ws.path())
                .unwrap_err()
                .contains("cannot resolve")
        );
        let bare = tempfile::tempdir().unwrap();
        assert_eq!(
            workspace_objects(bare.path()).unwrap_err(),
            "the workspace is not a git checkout"
        );
    }

    #[test]
    fn no_checkout_or_no_origin_is_none() {
        let ws = tempfile::tempdir().unwrap();
        let isolated = ws.path().join("a");
        std::fs::create_dir_all(&isolated).unwrap();
        write(&ws.path().join("a/.git/config"), "[core]\n\tbare = false\n");
        write(
            &ws.path().join("a/.git/HEAD"),
            "4b825dc642cb6eb9a060e54bf8d69288fbee4904\n",
        );
        assert_eq!(workspace_origin(&isolated).unwrap(), None);
        assert_eq!(workspace_branch(&isolated).unwrap(), None);
    }
}
