//! Where one commit of the branch stands against another, for the stale-write guard: newer,
//! older, the same, or on another line. Answered from the scratch repository with libgit2's
//! merge base, fetching the branch deeper, in steps up to [`GUARD_DEPTH`] commits below the
//! tip, only while the answer is not there yet.

use git2::{Oid, Repository};

use super::transport::Remote;
use super::{GitopsError, Op};

/// How far below the tip the guard looks for the two commits: far past what one busy day of
/// a 128-service matrix lands, and a bounded fetch.
pub const GUARD_DEPTH: i32 = 1000;
/// The depths fetched on the way there.
const STEPS: [i32; 3] = [64, 256, GUARD_DEPTH];

/// Where the deployed commit stands against ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Same,
    /// The deployed commit (its full SHA) descends from ours: a newer run deployed it.
    Newer(String),
    /// Ours descends from the deployed commit.
    Older,
    /// Neither descends from the other (a force-pushed branch, say).
    Diverged,
    /// Not decidable within reach; why.
    Unknown(String),
}

/// The guard's one question about the history.
pub trait Ancestry {
    /// Where the commit `deployed` names stands against the one `ours` names; each a full or
    /// abbreviated SHA.
    fn place(&mut self, deployed: &str, ours: &str) -> Result<Standing, GitopsError>;
}

/// [`Ancestry`] over the write-back's scratch repository and its remote.
pub(crate) struct Lineage<'a> {
    pub(crate) repo: &'a Repository,
    pub(crate) remote: &'a Remote,
}

impl Ancestry for Lineage<'_> {
    fn place(&mut self, deployed: &str, ours: &str) -> Result<Standing, GitopsError> {
        loop {
            let shallow = self.remote.is_shallow();
            let deeper = STEPS
                .iter()
                .copied()
                .find(|&d| shallow && d > self.remote.depth());
            match standing(self.repo, deployed, ours) {
                // On another line is only sure once the history is whole, or as deep as we go.
                Some(Ok(Standing::Diverged)) if deeper.is_some() => {}
                Some(Ok(s)) => return Ok(s),
                Some(Err(missing)) if deeper.is_none() => {
                    let branch = self.remote.branch();
                    return Ok(Standing::Unknown(if shallow {
                        format!(
                            "{missing} is not on {branch} within {GUARD_DEPTH} commits of the tip"
                        )
                    } else {
                        format!("{missing} is not on {branch}")
                    }));
                }
                None if deeper.is_none() => {
                    return Ok(Standing::Unknown(
                        "the two commits have no common history within reach".into(),
                    ));
                }
                _ => {}
            }
            let depth = deeper.expect("the arms above return when there is no deeper step");
            self.remote
                .deepen(self.repo, depth)
                .map_err(|e| e.into_gitops(Op::Fetch, self.remote))?;
        }
    }
}

/// `None`: both found, no merge base visible; `Some(Err(what))`: a commit not found.
fn standing(repo: &Repository, deployed: &str, ours: &str) -> Option<Result<Standing, String>> {
    let d = match resolve(repo, deployed) {
        Some(d) => d,
        None => return Some(Err(format!("the deployed commit {deployed}"))),
    };
    let o = match resolve(repo, ours) {
        Some(o) => o,
        None => return Some(Err(format!("our commit {ours}"))),
    };
    if d == o {
        return Some(Ok(Standing::Same));
    }
    let base = repo.merge_base(d, o).ok()?;
    Some(Ok(if base == o {
        Standing::Newer(d.to_string())
    } else if base == d {
        Standing::Older
    } else {
        Standing::Diverged
    }))
}

/// The commit a full or abbreviated SHA names, if the repository has exactly one.
fn resolve(repo: &Repository, hex: &str) -> Option<Oid> {
    let short = Oid::from_str(hex).ok()?;
    let oid = repo.odb().ok()?.exists_prefix(short, hex.len()).ok()?;
    repo.find_commit(oid).ok().map(|c| c.id())
}
