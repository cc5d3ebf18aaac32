//! Git write-back: the fetch → re-apply → commit → push loop that never loses a race.
//!
//! Each attempt works in a private bare repository in a temp dir (never the workspace):
//! 1. fetch the branch tip: depth 1 where the transport allows it (file:// does not), and on
//!    later attempts deep enough to bring the commits other jobs landed meanwhile, which we count;
//! 2. hand the caller a reader for files at that tip and let it re-apply its pure edit;
//! 3. nothing to write → done, "already up to date" (so re-runs are no-ops);
//! 4. otherwise build the commit in memory with exactly that tip as its parent, and push it with
//!    a lease: if the remote's branch is not that tip any more, the push is aborted during
//!    negotiation and we fetch again at once.
//!
//! A lost compare-and-swap is retried after a contention-adaptive jitter (see `backoff.rs`); auth
//! failures, protected branches and declining hooks stop at once, with the remote's message;
//! network errors are retried a few times. The loop is bounded by `max_attempts` and a
//! deadline, and never force-pushes. Each push attempt prints one line to stdout.
//!
//! The token (HTTPS basic auth as `x-access-token`) travels in an `Authorization` header and is
//! scrubbed from every message; a server that still asks for credentials gets no second try.

mod backoff;
mod classify;
mod transport;
mod workspace;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use git2::{FileMode, Oid, Repository, Signature};
use rand::Rng as _;

use self::backoff::Backoff;
use self::classify::{Failure, Refusal};
use self::transport::{NetError, Pushed, Remote};
pub use self::workspace::{workspace_branch, workspace_origin};

/// One write-back: where to push, as whom, and how hard to try.
#[derive(Debug, Clone)]
pub struct WriteBack {
    /// `git://`, `file://`, `https://` or `http://`.
    pub remote_url: String,
    pub branch: String,
    /// The final commit message.
    pub message: String,
    pub author_name: String,
    pub author_email: String,
    /// HTTPS basic auth as `x-access-token`.
    pub token: Option<secrecy::SecretString>,
    /// Push attempts allowed.
    pub max_attempts: u32,
    /// Overall bound on the whole loop.
    pub deadline: Duration,
    /// Everything but the push.
    pub dry_run: bool,
}

/// What the write-back did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the edit changed anything at the tip (in a dry run: would have).
    pub changed: bool,
    /// The pushed commit; `None` when nothing was pushed.
    pub commit: Option<String>,
    /// Push attempts made.
    pub attempts: u32,
}

/// Reads a file at the fetched tip: repo-relative path → bytes, `None` if absent.
pub type TipReader<'a> = dyn Fn(&str) -> Option<Vec<u8>> + 'a;

/// The pure re-apply step: the files to write (repo-relative path, new bytes), empty when the
/// tip is already up to date, or an error that aborts the write-back at once.
pub type Edit<'a> = dyn FnMut(&TipReader<'_>) -> anyhow::Result<Vec<(String, Vec<u8>)>> + 'a;

/// Which network operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Fetch,
    Push,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Fetch => "fetch",
            Op::Push => "push",
        })
    }
}

#[derive(thiserror::Error, Debug)]
pub enum GitopsError {
    #[error("cannot read the workspace's git files at {}: {source}", path.display())]
    ReadWorkspace {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the workspace's git config {}: {}", path.display(), source.message())]
    ReadWorkspaceConfig {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("cannot create the scratch repository for the write-back: {0}")]
    CreateScratch(#[source] std::io::Error),
    #[error("cannot initialise the scratch repository for the write-back: {}", .0.message())]
    InitScratch(#[source] git2::Error),
    #[error("cannot {op} {branch} at {url}: {}{}", source.message(), said(remote))]
    Transfer {
        op: Op,
        url: String,
        branch: String,
        remote: Vec<String>,
        #[source]
        source: git2::Error,
    },
    #[error("{url} has no branch {branch}")]
    BranchMissing { url: String, branch: String },
    #[error("cannot read the tip {tip} of {branch}: {}", source.message())]
    ReadTip {
        branch: String,
        tip: String,
        #[source]
        source: git2::Error,
    },
    /// The caller's edit failed; its error is shown as it is.
    #[error(transparent)]
    Edit(anyhow::Error),
    #[error("cannot build the write-back commit on {tip}: {}", source.message())]
    BuildCommit {
        tip: String,
        #[source]
        source: git2::Error,
    },
    #[error("{url} refused the credentials for {op}: {}{}", source.message(), said(remote))]
    Authenticate {
        op: Op,
        url: String,
        remote: Vec<String>,
        #[source]
        source: git2::Error,
    },
    #[error("{url} refused the push to {branch}: {status}{}", said(remote))]
    PushRefused {
        url: String,
        branch: String,
        status: String,
        remote: Vec<String>,
        protected: bool,
    },
    #[error("cannot reach {url} to {op} (gave up after {tries} tries): {}", source.message())]
    Unreachable {
        op: Op,
        url: String,
        tries: u32,
        #[source]
        source: git2::Error,
    },
    #[error("gave up pushing to {branch} after {attempts} attempts in {:.1} s: {why}", elapsed.as_secs_f64())]
    GaveUp {
        branch: String,
        attempts: u32,
        elapsed: Duration,
        why: &'static str,
    },
}

impl GitopsError {
    /// Advice for causes we recognise.
    pub fn hint(&self) -> Option<&str> {
        match self {
            GitopsError::Authenticate { .. } => Some(
                "the token needs `contents: write` on this repository (set `permissions: contents: write`; fork pull requests only get a read-only token)",
            ),
            GitopsError::PushRefused {
                protected: true, ..
            } => Some(
                "the branch is protected: let github-actions[bot] bypass the rule, or write back to an unprotected branch",
            ),
            GitopsError::PushRefused {
                protected: false, ..
            } => Some(
                "a server-side hook or policy declined the push; its message is shown after `remote:`",
            ),
            GitopsError::Unreachable { .. } => {
                Some("check the remote URL and that the runner can reach the git server")
            }
            GitopsError::GaveUp { .. } => Some(
                "too many jobs are writing to the branch at once: raise `max-attempts`, or limit the matrix's `max-parallel`",
            ),
            GitopsError::BranchMissing { .. } => {
                Some("create the branch first, or set the `branch` input")
            }
            GitopsError::Transfer { source, .. } if source.class() == git2::ErrorClass::Ssl => {
                Some(
                    "the server's TLS certificate is not trusted: point SSL_CERT_FILE at a CA bundle that includes its issuer",
                )
            }
            _ => None,
        }
    }
}

/// `; remote: a | b`, or nothing.
fn said(remote: &[String]) -> String {
    if remote.is_empty() {
        String::new()
    } else {
        format!(" (remote: {})", remote.join(" | "))
    }
}

fn short(oid: Oid) -> String {
    oid.to_string()[..7].to_string()
}

fn init_libgit2() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: called once, before any other libgit2 use in this process.
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(15_000);
            let _ = git2::opts::set_server_timeout_in_milliseconds(120_000);
        }
    });
}

/// Runs the write-back loop. See the module docs.
pub fn write_back(opts: &WriteBack, edit: &mut Edit<'_>) -> Result<Outcome, GitopsError> {
    init_libgit2();
    let started = Instant::now();
    let scratch = tempfile::Builder::new()
        .prefix("deploy-action-")
        .tempdir()
        .map_err(GitopsError::CreateScratch)?;
    let repo = Repository::init_bare(scratch.path()).map_err(GitopsError::InitScratch)?;
    let remote = Remote::new(&opts.remote_url, &opts.branch, opts.token.as_ref());
    let url = transport::redact_url_credentials(&opts.remote_url);
    let branch = opts.branch.as_str();
    let mut rng = rand::rng();
    let mut backoff = Backoff::new();
    let mut attempts = 0u32;
    // The tip we saw last.
    let mut last_tip: Option<Oid> = None;
    // Commits whose push broke off mid-way: they may have landed.
    let mut unsure: Vec<Oid> = Vec::new();

    let gave_up = |attempts: u32, why: &'static str| GitopsError::GaveUp {
        branch: branch.to_string(),
        attempts,
        elapsed: started.elapsed(),
        why,
    };
    let net_failed = |op: Op, e: NetError, tries: u32| match e.failure {
        Failure::Auth => GitopsError::Authenticate {
            op,
            url: url.clone(),
            remote: e.remote,
            source: e.source,
        },
        Failure::Network => GitopsError::Unreachable {
            op,
            url: url.clone(),
            tries,
            source: e.source,
        },
        Failure::Fatal => GitopsError::Transfer {
            op,
            url: url.clone(),
            branch: branch.to_string(),
            remote: e.remote,
            source: e.source,
        },
    };
    let mut net_tries = 0u32;
    // Sleeps, but never past the deadline; false when the deadline has passed.
    let pause = |d: Duration| {
        let left = opts.deadline.saturating_sub(started.elapsed());
        std::thread::sleep(d.min(left));
        started.elapsed() < opts.deadline
    };

    loop {
        if started.elapsed() >= opts.deadline {
            return Err(gave_up(attempts, "the deadline passed"));
        }

        // 1. Fetch the tip.
        let tip = match remote.fetch(&repo) {
            Ok(Some(tip)) => tip,
            Ok(None) => {
                return Err(GitopsError::BranchMissing {
                    url,
                    branch: branch.to_string(),
                });
            }
            Err(e) if e.failure == Failure::Network => {
                net_tries += 1;
                match backoff.network_failure(rng.random()) {
                    Some(wait) => {
                        println!(
                            "fetch from {url} failed ({}), retrying in {} ms",
                            e.source.message(),
                            wait.as_millis()
                        );
                        if !pause(wait) {
                            return Err(net_failed(Op::Fetch, e, net_tries));
                        }
                        continue;
                    }
                    None => return Err(net_failed(Op::Fetch, e, net_tries)),
                }
            }
            Err(e) => return Err(net_failed(Op::Fetch, e, 1)),
        };
        backoff.network_ok();
        net_tries = 0;
        if unsure.contains(&tip) {
            println!(
                "{branch} is at {}: our earlier push landed after all",
                short(tip)
            );
            return Ok(Outcome {
                changed: true,
                commit: Some(tip.to_string()),
                attempts,
            });
        }
        // How many jobs landed since we last looked.
        if let Some(last) = last_tip {
            let landed = count_between(&repo, last, tip);
            backoff.landed(landed);
        }
        let _ = repo.reference(transport::SEEN_REF, tip, true, "");
        last_tip = Some(tip);

        // 2–3. Re-apply the edit on the tip.
        let read_tip = |e: git2::Error| GitopsError::ReadTip {
            branch: branch.to_string(),
            tip: tip.to_string(),
            source: e,
        };
        let base = repo.find_commit(tip).map_err(read_tip)?;
        let base_tree = base.tree().map_err(read_tip)?;
        let reader = |path: &str| -> Option<Vec<u8>> {
            let entry = base_tree
                .get_path(Path::new(path.trim_start_matches("./")))
                .ok()?;
            repo.find_blob(entry.id())
                .ok()
                .map(|b| b.content().to_vec())
        };
        let files = edit(&reader).map_err(GitopsError::Edit)?;
        let build = |e: git2::Error| GitopsError::BuildCommit {
            tip: tip.to_string(),
            source: e,
        };
        let tree = build_tree(&repo, &base_tree, &files).map_err(build)?;
        if tree == base_tree.id() {
            // A push that broke off may have landed and been built upon since.
            if let Some(ours) = unsure
                .iter()
                .find(|&&c| repo.graph_descendant_of(tip, c).unwrap_or(false))
            {
                println!(
                    "{branch} at {} already has our earlier push {}",
                    short(tip),
                    short(*ours)
                );
                return Ok(Outcome {
                    changed: true,
                    commit: Some(ours.to_string()),
                    attempts,
                });
            }
            println!("{branch} at {} is already up to date", short(tip));
            return Ok(Outcome {
                changed: false,
                commit: None,
                attempts,
            });
        }

        // 4. Commit on exactly that tip, in memory.
        let signature = Signature::now(&opts.author_name, &opts.author_email).map_err(build)?;
        let tree = repo.find_tree(tree).map_err(build)?;
        let commit = repo
            .commit(None, &signature, &signature, &opts.message, &tree, &[&base])
            .map_err(build)?;
        if opts.dry_run {
            println!(
                "dry run: would push {} onto {branch} at {}",
                short(commit),
                short(tip)
            );
            return Ok(Outcome {
                changed: true,
                commit: None,
                attempts,
            });
        }
        if attempts >= opts.max_attempts {
            return Err(gave_up(attempts, "the branch kept moving"));
        }

        // 5. Push with the lease.
        attempts += 1;
        let push_started = Instant::now();
        let spent = attempts >= opts.max_attempts;
        match remote.push(&repo, commit, tip) {
            Ok(Pushed::Landed) => {
                println!("attempt {attempts}: pushed {} to {branch}", short(commit));
                return Ok(Outcome {
                    changed: true,
                    commit: Some(commit.to_string()),
                    attempts,
                });
            }
            Ok(Pushed::Doomed { now: Some(now) }) => {
                println!(
                    "attempt {attempts}: {branch} moved to {} before we pushed{}",
                    short(now),
                    if spent { "" } else { ", refetching" }
                );
                if spent {
                    return Err(gave_up(attempts, "the branch kept moving"));
                }
            }
            Ok(Pushed::Doomed { now: None }) => {
                return Err(GitopsError::BranchMissing {
                    url,
                    branch: branch.to_string(),
                });
            }
            Ok(Pushed::Lost) if spent => {
                println!("attempt {attempts}: lost the race for {branch}");
                return Err(gave_up(attempts, "the branch kept moving"));
            }
            Ok(Pushed::Lost) => {
                backoff.pushed(push_started.elapsed());
                let wait = backoff.lost(rng.random());
                println!(
                    "attempt {attempts}: lost the race for {branch}, retrying in {} ms",
                    wait.as_millis()
                );
                if !pause(wait) {
                    return Err(gave_up(attempts, "the deadline passed"));
                }
            }
            Ok(Pushed::Refused {
                status,
                refusal,
                remote,
            }) => {
                return Err(GitopsError::PushRefused {
                    url,
                    branch: branch.to_string(),
                    status,
                    remote,
                    protected: refusal == Refusal::Protected,
                });
            }
            Err(e) if e.failure == Failure::Network => {
                unsure.push(commit);
                net_tries += 1;
                match backoff.network_failure(rng.random()) {
                    Some(wait) => {
                        println!(
                            "attempt {attempts}: push to {url} failed ({}), retrying in {} ms",
                            e.source.message(),
                            wait.as_millis()
                        );
                        if !pause(wait) {
                            return Err(net_failed(Op::Push, e, net_tries));
                        }
                    }
                    None => return Err(net_failed(Op::Push, e, net_tries)),
                }
            }
            Err(e) => return Err(net_failed(Op::Push, e, 1)),
        }
    }
}

/// Commits in `last..tip`, counted up to 64; 64 also when `last` is not an ancestor we can see.
fn count_between(repo: &Repository, last: Oid, tip: Oid) -> u32 {
    if last == tip {
        return 0;
    }
    let count = || -> Result<u32, git2::Error> {
        let mut walk = repo.revwalk()?;
        walk.push(tip)?;
        walk.hide(last)?;
        let mut n = 0;
        for oid in walk {
            oid?;
            n += 1;
            if n >= 64 {
                break;
            }
        }
        Ok(n)
    };
    count().unwrap_or(64)
}

/// The tip's tree with `files` written in; existing files keep their mode.
fn build_tree(
    repo: &Repository,
    base: &git2::Tree<'_>,
    files: &[(String, Vec<u8>)],
) -> Result<Oid, git2::Error> {
    if files.is_empty() {
        return Ok(base.id());
    }
    let mut update = git2::build::TreeUpdateBuilder::new();
    for (path, bytes) in files {
        let path = path.trim_start_matches("./");
        let blob = repo.blob(bytes)?;
        let mode = match base.get_path(Path::new(path)) {
            Ok(entry) if entry.filemode() == i32::from(FileMode::BlobExecutable) => {
                FileMode::BlobExecutable
            }
            _ => FileMode::Blob,
        };
        update.upsert(path, blob, mode);
    }
    update.create_updated(repo, base)
}
