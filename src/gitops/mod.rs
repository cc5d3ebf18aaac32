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
//! A lost compare-and-swap is retried after a contention-adaptive jitter, on the next commit
//! to land (see `backoff.rs`); auth failures, protected branches and declining hooks stop at
//! once, with the remote's message; network errors are retried a few times. The loop is
//! bounded by `max_attempts` and a deadline, and never force-pushes. Each push attempt prints
//! one line to stdout.
//!
//! The token (HTTPS basic auth as `x-access-token`) travels in an `Authorization` header and is
//! scrubbed from every message; a server that still asks for credentials gets no second try.

mod ancestry;
mod backoff;
mod classify;
mod history;
mod scratch;
mod socket;
mod tls;
mod transport;
mod workspace;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use git2::{FileMode, Oid, Repository, Signature};
use rand::Rng as _;

use self::ancestry::Lineage;
pub use self::ancestry::{Ancestry, GUARD_DEPTH, Standing};
use self::backoff::Backoff;
use self::classify::{Fault, Refusal};
pub use self::history::{History, Placement};
use self::scratch::Scratch;
pub use self::tls::start;
use self::transport::{NetError, Pushed, Remote};
pub use self::workspace::{workspace_branch, workspace_origin};
use crate::failure::Hint;
use crate::retry::Policy;

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
    /// The checkout whose objects the write-back borrows, when there is one.
    pub workspace: Option<PathBuf>,
    /// How many jobs are likely to write to the branch at once (the overlay's image count in
    /// a one-job-per-service matrix); 0 when unknown. The backoff starts from it once a race
    /// is lost.
    pub contenders: u32,
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
    /// The branch tip the write-back ended on: our commit, or the tip that already had the
    /// change. `None` in a dry run.
    pub tip: Option<String>,
    /// Set when the guard found a newer deploy at the tip, so nothing was written.
    pub superseded: Option<Superseded>,
    pub stats: Stats,
}

/// A newer deploy the guard found at the tip: its commit and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superseded {
    pub commit: String,
    pub tag: String,
}

/// What the loop met on its way, beyond the attempts it counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Attempts that lost the race: their push reached the server on the current tip, but
    /// another push landed first.
    pub lost: u32,
    /// Pushes not sent, because the branch had moved since our fetch (seen in negotiation).
    pub stale: u32,
    /// Fetches and pushes retried after a connection failure.
    pub connection_retries: u32,
    /// Fetches of the tip.
    pub fetches: u32,
    /// Looks at the remote's ref advertisement while waiting for the next landing.
    pub looks: u32,
    /// Bytes all fetches received.
    pub fetched_bytes: u64,
}

/// Reads a file at the fetched tip: repo-relative path → bytes, `None` if absent.
pub type TipReader<'a> = dyn Fn(&str) -> Option<Vec<u8>> + 'a;

/// The pure re-apply step: the files to write (repo-relative path, new bytes), empty when the
/// tip is already up to date, or an error that aborts the write-back at once.
pub type Edit<'a> = dyn FnMut(&TipReader<'_>) -> anyhow::Result<Vec<(String, Vec<u8>)>> + 'a;

/// The stale-write guard, asked at every tip before the edit: `Some` when the tip deploys a
/// newer commit than ours, so writing would roll it back.
pub type Guard<'a> =
    dyn FnMut(&TipReader<'_>, &mut dyn Ancestry) -> anyhow::Result<Option<Superseded>> + 'a;

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
    #[error("cannot read the workspace's git files at {}", path.display())]
    ReadWorkspace {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the workspace's git config {}: {}", path.display(), cause.message())]
    ReadWorkspaceConfig {
        path: PathBuf,
        /// Shown by its message; not a `#[source]`, whose Display would add class and code.
        cause: git2::Error,
    },
    #[error("cannot create the scratch repository for the write-back")]
    CreateScratch(#[source] std::io::Error),
    #[error("cannot initialise the scratch repository for the write-back: {}", .0.message())]
    InitScratch(git2::Error),
    #[error("cannot {op} {branch} at {url}: {}{}", cause.message(), said(remote))]
    Transfer {
        op: Op,
        url: String,
        branch: String,
        remote: Vec<String>,
        /// Shown by its message; not a `#[source]`, whose Display would add class and code.
        cause: git2::Error,
    },
    #[error("{url} has no branch {branch}")]
    BranchMissing { url: String, branch: String },
    #[error("cannot read the tip {tip} of {branch}: {}", cause.message())]
    ReadTip {
        branch: String,
        tip: String,
        /// Shown by its message; not a `#[source]`, whose Display would add class and code.
        cause: git2::Error,
    },
    /// The caller's edit failed; its error is shown as it is.
    #[error(transparent)]
    Edit(anyhow::Error),
    #[error("cannot build the write-back commit on {tip}: {}", cause.message())]
    BuildCommit {
        tip: String,
        /// Shown by its message; not a `#[source]`, whose Display would add class and code.
        cause: git2::Error,
    },
    #[error("{url} refused the credentials for {op}: {}{}", cause.message(), said(remote))]
    Authenticate {
        op: Op,
        url: String,
        remote: Vec<String>,
        /// Shown by its message; not a `#[source]`, whose Display would add class and code.
        cause: git2::Error,
    },
    #[error("{url} refused the push to {branch}: {status}{}", said(remote))]
    PushRefused {
        url: String,
        branch: String,
        status: String,
        remote: Vec<String>,
        protected: bool,
    },
    #[error("cannot reach {url} to {op} (gave up after {tries} tries): {}", cause.message())]
    Unreachable {
        op: Op,
        url: String,
        tries: u32,
        /// Shown by its message; not a `#[source]`, whose Display would add class and code.
        cause: git2::Error,
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
    /// The error as the pipeline passes it on: the caller's own edit error as it was (so its
    /// file and line are found), anything else as it is.
    pub(crate) fn into_anyhow(self) -> anyhow::Error {
        match self {
            GitopsError::Edit(inner) => inner,
            other => other.into(),
        }
    }
}

impl Hint for GitopsError {
    fn hint(&self) -> Option<String> {
        let hint = match self {
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
            GitopsError::Transfer { cause, .. } if cause.class() == git2::ErrorClass::Ssl => Some(
                "the server's TLS certificate is not trusted: point SSL_CERT_FILE at a CA bundle that includes its issuer",
            ),
            _ => None,
        };
        hint.map(str::to_string)
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
        // It fails only if libgit2 cannot lock its stream registry; its own stream then
        // serves, slower (Nagle), not wrong.
        let _ = socket::register();
    });
}

/// Runs the write-back loop without a guard. See the module docs.
pub fn write_back(opts: &WriteBack, edit: &mut Edit<'_>) -> Result<Outcome, GitopsError> {
    write_back_guarded(
        opts,
        &mut |_: &TipReader<'_>, _: &mut dyn Ancestry| Ok(None),
        edit,
    )
}

/// Runs the write-back loop, asking `guard` at every tip before the edit.
pub fn write_back_guarded(
    opts: &WriteBack,
    guard: &mut Guard<'_>,
    edit: &mut Edit<'_>,
) -> Result<Outcome, GitopsError> {
    init_libgit2();
    let mut attempts = Attempts::start(opts)?;
    let outcome = loop {
        match attempts.next(guard, edit) {
            Ok(Step::Done(outcome)) => break Ok(outcome),
            Ok(Step::Again) => {}
            Ok(Step::Wait(wait, on_deadline)) => {
                if let Err(e) = attempts.pause(wait, on_deadline) {
                    break Err(e);
                }
            }
            Err(e) => break Err(e),
        }
    };
    attempts.summarize(outcome.as_ref().ok());
    outcome
}

/// What one pass through the loop decided.
enum Step {
    Done(Outcome),
    /// Fetch again at once (the push was doomed in negotiation).
    Again,
    /// Wait, then fetch again; the error to give if the deadline passes meanwhile.
    Wait(Duration, GitopsError),
}

/// The state the loop carries from one pass to the next.
struct Attempts<'o> {
    opts: &'o WriteBack,
    started: Instant,
    scratch: Scratch,
    remote: Remote,
    /// The remote URL without credentials, for messages.
    url: String,
    backoff: Backoff,
    /// Attempts: pushes that reached the remote on the current tip. A push negotiation shows
    /// to be stale is not sent and not counted (it costs the server no pack and no hook).
    pushes: u32,
    stats: Stats,
    /// Consecutive fetches or pushes that failed on the network.
    net_tries: u32,
    /// The tip we saw last.
    last_tip: Option<Oid>,
    /// Commits whose push broke off mid-way: they may have landed.
    unsure: Vec<Oid>,
    /// When we first saw `last_tip`.
    seen_since: Instant,
    watch: Watch,
}

/// Waiting for the next landing after a lost race (see `backoff.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    Off,
    /// The backoff is over: the next fetch names the tip to watch.
    Armed,
    /// Waiting for the branch to move from this tip.
    On(Oid),
}

impl<'o> Attempts<'o> {
    fn start(opts: &'o WriteBack) -> Result<Attempts<'o>, GitopsError> {
        let scratch = Scratch::new("deploy-action-", opts.workspace.as_deref())?;
        match (&scratch.borrowed, &scratch.not_borrowed) {
            (Some(head), _) => println!("borrowing the checkout's objects at {}", short(*head)),
            (None, Some(why)) => println!("fetching the tip's whole tree: {why}"),
            (None, None) => {}
        }
        Ok(Attempts {
            opts,
            started: Instant::now(),
            scratch,
            remote: Remote::new(&opts.remote_url, &opts.branch, opts.token.as_ref()),
            url: transport::redact_url_credentials(&opts.remote_url),
            backoff: Backoff::new(opts.contenders),
            pushes: 0,
            stats: Stats::default(),
            net_tries: 0,
            last_tip: None,
            unsure: Vec::new(),
            seen_since: Instant::now(),
            watch: Watch::Off,
        })
    }

    fn branch(&self) -> &str {
        &self.opts.branch
    }

    fn outcome(&self, changed: bool, commit: Option<Oid>, tip: Option<Oid>) -> Outcome {
        Outcome {
            changed,
            commit: commit.map(|c| c.to_string()),
            attempts: self.pushes,
            tip: tip.map(|t| t.to_string()),
            superseded: None,
            stats: Stats {
                fetched_bytes: self.remote.fetched_bytes(),
                ..self.stats.clone()
            },
        }
    }

    /// One line with what the loop met, for the log (and the benchmarks that read it).
    fn summarize(&self, outcome: Option<&Outcome>) {
        let s = &self.stats;
        println!(
            "write-back: {} attempt(s), {} lost race(s), {} stale push(es) not sent, {} connection retr{}, {} fetch(es), {} look(s) for a landing, {} fetched ({} bytes){}",
            self.pushes,
            s.lost,
            s.stale,
            s.connection_retries,
            if s.connection_retries == 1 {
                "y"
            } else {
                "ies"
            },
            s.fetches,
            s.looks,
            human_bytes(self.remote.fetched_bytes()),
            self.remote.fetched_bytes(),
            match outcome {
                Some(o) if o.commit.is_some() => " (landed)",
                Some(o) if o.superseded.is_some() => " (superseded)",
                Some(_) => "",
                None => " (failed)",
            }
        );
    }

    fn gave_up(&self, why: &'static str) -> GitopsError {
        GitopsError::GaveUp {
            branch: self.branch().to_string(),
            attempts: self.pushes,
            elapsed: self.started.elapsed(),
            why,
        }
    }

    fn net_failed(&self, op: Op, e: NetError) -> GitopsError {
        let url = self.url.clone();
        match e.fault {
            Fault::Auth => GitopsError::Authenticate {
                op,
                url,
                remote: e.remote,
                cause: e.source,
            },
            Fault::Network => GitopsError::Unreachable {
                op,
                url,
                tries: self.net_tries,
                cause: e.source,
            },
            Fault::Fatal => GitopsError::Transfer {
                op,
                url,
                branch: self.branch().to_string(),
                remote: e.remote,
                cause: e.source,
            },
        }
    }

    fn branch_missing(&self) -> GitopsError {
        GitopsError::BranchMissing {
            url: self.url.clone(),
            branch: self.branch().to_string(),
        }
    }

    /// Sleeps, but never past the deadline; `on_deadline` if it passes.
    fn pause(&self, wait: Duration, on_deadline: GitopsError) -> Result<(), GitopsError> {
        let left = self.opts.deadline.saturating_sub(self.started.elapsed());
        std::thread::sleep(wait.min(left));
        if self.started.elapsed() < self.opts.deadline {
            Ok(())
        } else {
            Err(on_deadline)
        }
    }

    /// A network failure: wait and retry while the policy allows, else the error.
    fn network_retry(&mut self, op: Op, e: NetError, what: String) -> Result<Step, GitopsError> {
        self.net_tries += 1;
        self.stats.connection_retries += 1;
        let policy = Policy::GIT_NETWORK;
        if !policy.allows_after(self.net_tries) {
            return Err(self.net_failed(op, e));
        }
        let wait = policy.jittered(self.net_tries);
        println!(
            "{what} failed ({}), retrying in {} ms",
            e.source.message(),
            wait.as_millis()
        );
        Ok(Step::Wait(wait, self.net_failed(op, e)))
    }

    /// A fetch or a look that failed (`doing` names it, "fetch from"): retried if it was the
    /// network, else the error.
    fn read_failed(&mut self, e: NetError, doing: &str) -> Result<Step, GitopsError> {
        if e.fault == Fault::Network {
            let what = format!("{doing} {}", self.url);
            return self.network_retry(Op::Fetch, e, what);
        }
        self.net_tries = 1;
        Err(self.net_failed(Op::Fetch, e))
    }

    /// One pass: fetch the tip, ask the guard, re-apply the edit, and push the commit built on
    /// it.
    fn next(&mut self, guard: &mut Guard<'_>, edit: &mut Edit<'_>) -> Result<Step, GitopsError> {
        if self.started.elapsed() >= self.opts.deadline {
            return Err(self.gave_up("the deadline passed"));
        }
        if let Watch::On(watched) = self.watch {
            if self.seen_since.elapsed() < self.backoff.hold() {
                self.stats.looks += 1;
                match self.remote.advertised(&self.scratch.repo) {
                    Ok(Some(now)) if now == watched => {
                        self.net_tries = 0;
                        return Ok(self.look_again());
                    }
                    // It moved (or went: the fetch says so): fetch at once.
                    Ok(_) => self.net_tries = 0,
                    Err(e) => return self.read_failed(e, "look at"),
                }
            }
            self.watch = Watch::Off;
        }
        self.stats.fetches += 1;
        let tip = match self.remote.fetch(&self.scratch.repo) {
            Ok(Some(tip)) => tip,
            Ok(None) => return Err(self.branch_missing()),
            Err(e) => return self.read_failed(e, "fetch from"),
        };
        self.net_tries = 0;
        if self.unsure.contains(&tip) {
            println!(
                "{} is at {}: our earlier push landed after all",
                self.branch(),
                short(tip)
            );
            return Ok(Step::Done(self.outcome(true, Some(tip), Some(tip))));
        }
        // How many jobs landed since we last looked.
        let landed = self
            .last_tip
            .map_or(0, |last| count_between(&self.scratch.repo, last, tip));
        self.backoff.looked(landed, Instant::now());
        let _ = self
            .scratch
            .repo
            .reference(transport::SEEN_REF, tip, true, "");
        if self.last_tip != Some(tip) {
            self.seen_since = Instant::now();
        }
        self.last_tip = Some(tip);
        if self.watch == Watch::Armed {
            // Waiting for a landing only pays while someone else is still pushing.
            if self.seen_since.elapsed() < self.backoff.hold() && self.backoff.contention() >= 2.0 {
                self.watch = Watch::On(tip);
                return Ok(self.look_again());
            }
            self.watch = Watch::Off;
        }

        if let Some(newer) = self.guard_at(tip, guard)? {
            println!(
                "{} at {} deploys {} (commit {}), newer than ours: not writing",
                self.branch(),
                short(tip),
                newer.tag,
                &newer.commit[..newer.commit.len().min(12)]
            );
            return Ok(Step::Done(Outcome {
                superseded: Some(newer),
                ..self.outcome(false, None, Some(tip))
            }));
        }
        let Some(commit) = self.commit_edit(tip, edit)? else {
            return self.up_to_date(tip);
        };
        if self.opts.dry_run {
            println!(
                "dry run: would push {} onto {} at {}",
                short(commit),
                self.branch(),
                short(tip)
            );
            return Ok(Step::Done(self.outcome(true, None, None)));
        }
        if self.pushes >= self.opts.max_attempts {
            return Err(self.gave_up("the branch kept moving"));
        }
        self.push(commit, tip)
    }

    /// Another look at the tip, soon: we are waiting for the next landing.
    fn look_again(&self) -> Step {
        Step::Wait(
            self.backoff.look_every(),
            self.gave_up("the deadline passed"),
        )
    }

    fn read_tip(&self, tip: Oid) -> impl Fn(git2::Error) -> GitopsError + '_ {
        move |e| GitopsError::ReadTip {
            branch: self.branch().to_string(),
            tip: tip.to_string(),
            cause: e,
        }
    }

    /// The guard's verdict at `tip`.
    fn guard_at(&self, tip: Oid, guard: &mut Guard<'_>) -> Result<Option<Superseded>, GitopsError> {
        let repo = &self.scratch.repo;
        let tree = repo
            .find_commit(tip)
            .and_then(|c| c.tree())
            .map_err(self.read_tip(tip))?;
        let reader = |path: &str| read_file(repo, &tree, path);
        let mut lineage = Lineage {
            repo,
            remote: &self.remote,
        };
        guard(&reader, &mut lineage).map_err(GitopsError::Edit)
    }

    /// The edit re-applied on `tip`, committed in memory with `tip` as its parent; `None` when
    /// it changes nothing there.
    fn commit_edit(&self, tip: Oid, edit: &mut Edit<'_>) -> Result<Option<Oid>, GitopsError> {
        let repo = &self.scratch.repo;
        let base = repo.find_commit(tip).map_err(self.read_tip(tip))?;
        let base_tree = base.tree().map_err(self.read_tip(tip))?;
        let reader = |path: &str| read_file(repo, &base_tree, path);
        let files = edit(&reader).map_err(GitopsError::Edit)?;
        let build = |e: git2::Error| GitopsError::BuildCommit {
            tip: tip.to_string(),
            cause: e,
        };
        let tree = build_tree(repo, &base_tree, &files).map_err(build)?;
        if tree == base_tree.id() {
            return Ok(None);
        }
        let signature =
            Signature::now(&self.opts.author_name, &self.opts.author_email).map_err(build)?;
        let tree = repo.find_tree(tree).map_err(build)?;
        repo.commit(
            None,
            &signature,
            &signature,
            &self.opts.message,
            &tree,
            &[&base],
        )
        .map(Some)
        .map_err(build)
    }

    /// Nothing to write at `tip`: done, unless a push that broke off landed and was built upon.
    fn up_to_date(&self, tip: Oid) -> Result<Step, GitopsError> {
        if let Some(ours) = self.unsure.iter().find(|&&c| {
            self.scratch
                .repo
                .graph_descendant_of(tip, c)
                .unwrap_or(false)
        }) {
            println!(
                "{} at {} already has our earlier push {}",
                self.branch(),
                short(tip),
                short(*ours)
            );
            return Ok(Step::Done(self.outcome(true, Some(*ours), Some(tip))));
        }
        println!("{} at {} is already up to date", self.branch(), short(tip));
        Ok(Step::Done(self.outcome(false, None, Some(tip))))
    }

    /// Pushes `commit` with the lease on `tip`.
    fn push(&mut self, commit: Oid, tip: Oid) -> Result<Step, GitopsError> {
        let n = self.pushes + 1;
        let branch = self.branch().to_string();
        let spent = n >= self.opts.max_attempts;
        let push_started = Instant::now();
        let pushed = self.remote.push(&self.scratch.repo, commit, tip);
        if matches!(
            pushed,
            Ok(Pushed::Landed | Pushed::Lost | Pushed::Refused { .. })
        ) {
            self.pushes = n;
        }
        match pushed {
            Ok(Pushed::Landed) => {
                println!("attempt {n}: pushed {} to {branch}", short(commit));
                Ok(Step::Done(self.outcome(true, Some(commit), Some(commit))))
            }
            Ok(Pushed::Doomed { now: Some(now) }) => {
                self.stats.stale += 1;
                println!(
                    "{branch} moved to {} since our fetch: not pushing on a stale tip, refetching",
                    short(now)
                );
                Ok(Step::Again)
            }
            Ok(Pushed::Doomed { now: None }) => Err(self.branch_missing()),
            Ok(Pushed::Lost) if spent => {
                self.stats.lost += 1;
                println!("attempt {n}: lost the race for {branch}");
                Err(self.gave_up("the branch kept moving"))
            }
            Ok(Pushed::Lost) => {
                self.stats.lost += 1;
                self.backoff.pushed(push_started.elapsed());
                let wait = self.backoff.lost(rand::rng().random());
                self.watch = Watch::Armed;
                println!(
                    "attempt {n}: lost the race for {branch}, retrying in {} ms on the next commit to land",
                    wait.as_millis()
                );
                Ok(Step::Wait(wait, self.gave_up("the deadline passed")))
            }
            Ok(Pushed::Refused {
                status,
                refusal,
                remote,
            }) => Err(GitopsError::PushRefused {
                url: self.url.clone(),
                branch,
                status,
                remote,
                protected: refusal == Refusal::Protected,
            }),
            Err(e) if e.fault == Fault::Network => {
                self.unsure.push(commit);
                let what = format!("attempt {n}: push to {}", self.url);
                self.network_retry(Op::Push, e, what)
            }
            Err(e) => {
                self.net_tries = 1;
                Err(self.net_failed(Op::Push, e))
            }
        }
    }
}

/// A file of `tree`, repo-relative; `None` if absent.
fn read_file(repo: &Repository, tree: &git2::Tree<'_>, path: &str) -> Option<Vec<u8>> {
    let entry = tree
        .get_path(Path::new(path.trim_start_matches("./")))
        .ok()?;
    repo.find_blob(entry.id())
        .ok()
        .map(|b| b.content().to_vec())
}

/// `12.3 KiB`.
fn human_bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
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
