//! The branch's history, as the verify stage needs it: where a commit Argo CD reports stands
//! against ours (the same, later, earlier), and what a file says at that commit. Read from the
//! remote into a scratch repository of its own, fetched again only when Argo CD names a commit
//! it has not seen.

use std::collections::HashMap;
use std::path::Path;

use git2::Oid;

use super::scratch::Scratch;
use super::transport::Remote;
use super::{GitopsError, Op};

/// How deep to fetch below the tip to find both commits: well past what 128 racing jobs land.
const DEPTH: i32 = 512;

/// Where a commit stands against ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Same,
    /// A descendant of ours.
    Later,
    /// An ancestor of ours, on another line of history, or not on the branch at all.
    Earlier,
}

/// The branch as one remote has it.
pub struct History {
    scratch: Scratch,
    remote: Remote,
    ours: Oid,
    placed: HashMap<Oid, Placement>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("ours", &self.ours)
            .finish_non_exhaustive()
    }
}

impl History {
    /// The history of `branch` at `url`, measured against our commit `ours`.
    /// It borrows the checkout's objects at `workspace`, as the write-back does, so fetches
    /// bring only the commits since the checkout.
    pub fn open(
        url: &str,
        branch: &str,
        token: Option<&secrecy::SecretString>,
        ours: &str,
        workspace: Option<&Path>,
    ) -> Result<History, GitopsError> {
        super::init_libgit2();
        let scratch = Scratch::new("deploy-action-history-", workspace)?;
        let ours = Oid::from_str(ours).map_err(|e| GitopsError::ReadTip {
            branch: branch.to_string(),
            tip: ours.to_string(),
            cause: e,
        })?;
        Ok(History {
            scratch,
            remote: Remote::new(url, branch, token),
            ours,
            placed: HashMap::new(),
        })
    }

    /// Where `revision` stands against ours. A commit not seen yet brings a fetch of the tip.
    pub fn place(&mut self, revision: &str) -> Result<Placement, GitopsError> {
        let Ok(rev) = Oid::from_str(revision) else {
            return Ok(Placement::Earlier);
        };
        if rev == self.ours {
            return Ok(Placement::Same);
        }
        if let Some(p) = self.placed.get(&rev) {
            return Ok(p.clone());
        }
        if !self.has(rev) || !self.has(self.ours) {
            self.fetch()?;
        }
        let placement = if !self.has(rev) || !self.has(self.ours) {
            // Not on the branch within reach (yet): Argo CD is somewhere else.
            return Ok(Placement::Earlier);
        } else if self
            .scratch
            .repo
            .graph_descendant_of(rev, self.ours)
            .unwrap_or(false)
        {
            Placement::Later
        } else {
            Placement::Earlier
        };
        self.placed.insert(rev, placement.clone());
        Ok(placement)
    }

    /// A file at `revision`, repo-relative; `None` if absent or the commit is unknown.
    pub fn read(&self, revision: &str, path: &str) -> Option<Vec<u8>> {
        let tree = self
            .scratch
            .repo
            .find_commit(Oid::from_str(revision).ok()?)
            .ok()?
            .tree()
            .ok()?;
        let entry = tree
            .get_path(Path::new(path.trim_start_matches("./")))
            .ok()?;
        self.scratch
            .repo
            .find_blob(entry.id())
            .ok()
            .map(|b| b.content().to_vec())
    }

    /// A reader of files at `revision`, as the write-back hands one to its edit.
    pub fn reader<'h>(&'h self, revision: &'h str) -> impl Fn(&str) -> Option<Vec<u8>> + 'h {
        move |path: &str| self.read(revision, path)
    }

    fn has(&self, oid: Oid) -> bool {
        self.scratch.repo.find_commit(oid).is_ok()
    }

    fn fetch(&mut self) -> Result<(), GitopsError> {
        self.remote
            .fetch_at_depth(&self.scratch.repo, DEPTH)
            .map(|_| ())
            .map_err(|e| e.into_gitops(Op::Fetch, &self.remote))
    }
}
