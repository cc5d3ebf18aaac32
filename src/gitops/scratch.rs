//! The private bare repository a write-back (and the verify stage's history) works in.
//!
//! It is never the workspace: container actions run as root over a checkout owned by the
//! runner's uid, which libgit2 refuses to open. But a fresh repository would fetch the whole
//! tree of the tip, every blob of a monorepo, to change one line. So the scratch repository
//! borrows the checkout's object store as an alternate (a path in `objects/info/alternates`,
//! read without any ownership check) and names the checkout's commit in a ref of its own, so
//! a fetch tells the server it has that commit and only what landed since travels. A depth-1
//! checkout's `shallow` file comes along, so nothing walks past its cut-off. Without a usable
//! checkout (no `.git`, a commit the objects lack) the repository borrows nothing and fetches
//! the tip's tree as before.

use std::path::Path;

use git2::{Oid, Repository};

use super::GitopsError;
use super::workspace::{Borrowed, workspace_objects};

/// The ref that makes the checkout's commit a `have` in fetch negotiation.
const HAVE_REF: &str = "refs/deploy-action/have";

pub(crate) struct Scratch {
    /// Held so the directory lives as long as the repository.
    _dir: tempfile::TempDir,
    pub(crate) repo: Repository,
    /// The checkout's commit, when its objects are borrowed.
    pub(crate) borrowed: Option<Oid>,
    /// Why nothing is borrowed, when nothing is.
    pub(crate) not_borrowed: Option<String>,
}

impl Scratch {
    /// A scratch repository that borrows from the checkout at `workspace` when it can.
    pub(crate) fn new(prefix: &str, workspace: Option<&Path>) -> Result<Scratch, GitopsError> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(GitopsError::CreateScratch)?;
        // No templates: their sample hooks are a dozen files nobody runs.
        let mut init = git2::RepositoryInitOptions::new();
        init.bare(true).external_template(false);
        Repository::init_opts(dir.path(), &init).map_err(GitopsError::InitScratch)?;
        let attempt = match workspace {
            Some(ws) => workspace_objects(ws).and_then(|b| borrow(dir.path(), &b).map(|r| (r, b))),
            None => Err("no workspace".to_string()),
        };
        let (repo, borrowed, not_borrowed) = match attempt {
            Ok((repo, b)) => (repo, Some(b.head), None),
            Err(why) => {
                unborrow(dir.path());
                let repo = Repository::open_bare(dir.path()).map_err(GitopsError::InitScratch)?;
                (repo, None, Some(why))
            }
        };
        Ok(Scratch {
            _dir: dir,
            repo,
            borrowed,
            not_borrowed,
        })
    }
}

/// Points the repository at `b`'s objects and checks the checkout's commit and tree are
/// readable through them.
fn borrow(path: &Path, b: &Borrowed) -> Result<Repository, String> {
    let info = path.join("objects/info");
    std::fs::create_dir_all(&info).map_err(|e| e.to_string())?;
    std::fs::write(
        info.join("alternates"),
        format!("{}\n", b.objects.display()),
    )
    .map_err(|e| e.to_string())?;
    if !b.shallow.is_empty() {
        let lines: String = b.shallow.iter().map(|o| format!("{o}\n")).collect();
        std::fs::write(path.join("shallow"), lines).map_err(|e| e.to_string())?;
    }
    let repo = Repository::open_bare(path).map_err(|e| e.message().to_string())?;
    {
        let commit = repo.find_commit(b.head).map_err(|e| {
            format!(
                "the checkout's objects lack its commit {}: {}",
                b.head,
                e.message()
            )
        })?;
        commit.tree().map_err(|e| e.message().to_string())?;
    }
    repo.reference(
        HAVE_REF,
        b.head,
        true,
        "deploy-action: the checkout's commit",
    )
    .map_err(|e| e.message().to_string())?;
    Ok(repo)
}

fn unborrow(path: &Path) {
    let _ = std::fs::remove_file(path.join(HAVE_REF));
    let _ = std::fs::remove_file(path.join("objects/info/alternates"));
    let _ = std::fs::remove_file(path.join("shallow"));
}
