//! Talking to the remote: a depth-1 fetch of the branch tip and a leased push of one commit.
//!
//! Network remotes (git://, http(s)://) go through libgit2's transports. A local remote
//! (file:// or a path) does not: libgit2's local push force-writes the ref with no
//! compare-and-swap, which loses updates under races. We copy the new objects and update the
//! ref with `reference_matching` ourselves, which is the same lock-and-compare git does.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;

use base64::Engine as _;
use git2::{
    AutotagOption, Cred, Direction, ErrorClass, ErrorCode, FetchOptions, ObjectType, Oid,
    PushOptions, RemoteCallbacks, Repository,
};
use secrecy::{ExposeSecret, SecretString};

use super::classify::{self, Fault, Refusal};

/// Where the fetched tip is kept in the scratch repository.
const TIP_REF: &str = "refs/deploy-action/tip";
/// The tip of our previous fetch, kept so the next fetch can count what landed since.
pub(crate) const SEEN_REF: &str = "refs/deploy-action/seen";
/// How deep later fetches go: enough to count the commits other jobs landed meanwhile.
const SEEN_DEPTH: i32 = 64;
/// The local name of the commit being pushed.
const PUSH_REF: &str = "refs/heads/deploy-action";

/// How one push attempt ended, short of an error.
#[derive(Debug)]
pub(crate) enum Pushed {
    /// The branch now points at our commit.
    Landed,
    /// The branch had moved before we sent anything: we aborted in negotiation. `None` means the
    /// branch no longer exists.
    Doomed { now: Option<Oid> },
    /// The remote took our pack but another push moved the branch first.
    Lost,
    /// The remote refused the update for a reason retrying cannot fix.
    Refused {
        status: String,
        refusal: Refusal,
        remote: Vec<String>,
    },
}

/// A fetch or push that failed before the remote could judge our update.
#[derive(Debug)]
pub(crate) struct NetError {
    pub fault: Fault,
    /// Already scrubbed of secrets.
    pub source: git2::Error,
    pub remote: Vec<String>,
}

impl NetError {
    /// The error as a one-off transfer failure (no retry loop around it).
    pub(crate) fn into_gitops(self, op: super::Op, remote: &Remote) -> super::GitopsError {
        super::GitopsError::Transfer {
            op,
            url: redact_url_credentials(remote.url()),
            branch: remote.branch().to_string(),
            remote: self.remote,
            cause: self.source,
        }
    }
}

pub(crate) struct Remote {
    url: String,
    local: Option<PathBuf>,
    branch: String,
    /// `Authorization: Basic …`, when we have a token.
    header: Option<SecretString>,
    /// The token itself, for the one connection that cannot carry the header (see
    /// [`Remote::advertised`]).
    token: Option<SecretString>,
    /// Strings that must never be printed: the token and its encodings.
    secrets: Vec<SecretString>,
    shallow: Cell<bool>,
    /// Bytes received by every fetch so far, as the transport counted them.
    fetched: Cell<u64>,
    /// The deepest history asked for so far; later fetches keep it, so a deepened history is
    /// not cut back.
    deepest: Cell<i32>,
}

impl Remote {
    pub(crate) fn new(url: &str, branch: &str, token: Option<&SecretString>) -> Remote {
        super::tls::trust_bundle_for(url);
        let local = local_path(url);
        let mut secrets = Vec::new();
        let token = token.filter(|t| !t.expose_secret().is_empty()).cloned();
        let header = token.as_ref().map(|t| {
            let encoded = base64::engine::general_purpose::STANDARD
                .encode(format!("x-access-token:{}", t.expose_secret()));
            secrets.push(t.clone());
            secrets.push(SecretString::from(encoded.clone()));
            SecretString::from(format!("Authorization: Basic {encoded}"))
        });
        Remote {
            shallow: Cell::new(local.is_none()),
            fetched: Cell::new(0),
            deepest: Cell::new(1),
            url: url.to_string(),
            local,
            branch: branch.to_string(),
            header,
            token,
            secrets,
        }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn branch(&self) -> &str {
        &self.branch
    }

    /// Whether fetches are shallow (network remotes that allow it).
    pub(crate) fn is_shallow(&self) -> bool {
        self.shallow.get()
    }

    /// How deep below the tip the history has been fetched.
    pub(crate) fn depth(&self) -> i32 {
        self.deepest.get()
    }

    /// Fetches the tip again with `depth` commits of history below it.
    pub(crate) fn deepen(&self, repo: &Repository, depth: i32) -> Result<Option<Oid>, NetError> {
        self.fetch_at_depth(repo, depth)
    }

    /// Bytes the fetches so far received.
    pub(crate) fn fetched_bytes(&self) -> u64 {
        self.fetched.get()
    }

    /// Replaces every secret in `text` with `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_string(), |acc, s| {
            let s = s.expose_secret();
            if s.is_empty() {
                acc
            } else {
                acc.replace(s, "***")
            }
        })
    }

    fn scrub_error(&self, e: &git2::Error) -> git2::Error {
        git2::Error::new(
            e.code(),
            e.class(),
            redact_url_credentials(&self.scrub(e.message())),
        )
    }

    fn net_error(
        &self,
        e: &git2::Error,
        sideband: &RefCell<Vec<u8>>,
        auth_asked: bool,
    ) -> NetError {
        let fault = if auth_asked {
            Fault::Auth
        } else {
            classify::fault(e)
        };
        NetError {
            fault,
            source: self.scrub_error(e),
            remote: self.remote_lines(&sideband.borrow()),
        }
    }

    /// A failure reading or writing a local remote: classified, with no remote lines.
    fn local_error(&self, e: &git2::Error) -> NetError {
        NetError {
            fault: classify::fault(e),
            source: self.scrub_error(e),
            remote: Vec::new(),
        }
    }

    fn remote_lines(&self, raw: &[u8]) -> Vec<String> {
        classify::remote_lines(raw)
            .iter()
            .map(|l| self.scrub(l))
            .collect()
    }

    fn callbacks<'a>(
        &'a self,
        sideband: &'a RefCell<Vec<u8>>,
        auth_asked: &'a Cell<bool>,
        password: bool,
    ) -> RemoteCallbacks<'a> {
        let mut cbs = RemoteCallbacks::new();
        cbs.sideband_progress(move |data| {
            sideband.borrow_mut().extend_from_slice(data);
            true
        });
        // The token travels in the Authorization header of every request. If the server still
        // asks, that token (or its absence) is the problem: answering again would only replay it.
        // A connection that cannot carry the header (`password`) answers the first ask with it.
        let has_token = self.header.is_some();
        let as_password = self.token.as_ref().filter(|_| password);
        let answered = Cell::new(false);
        cbs.credentials(move |_url, _user, _allowed| {
            if let Some(token) = as_password
                && !answered.replace(true)
            {
                return Cred::userpass_plaintext("x-access-token", token.expose_secret());
            }
            auth_asked.set(true);
            Err(git2::Error::new(
                ErrorCode::Auth,
                ErrorClass::Http,
                if has_token {
                    "authentication failed: the server rejected the github-token"
                } else {
                    "authentication required, and no github-token was given"
                },
            ))
        });
        cbs
    }

    fn headers(&self) -> Vec<&str> {
        self.header.iter().map(|h| h.expose_secret()).collect()
    }

    /// Where the branch is now, from the remote's ref advertisement alone: no negotiation, no
    /// pack. `Ok(None)` when the remote has no such branch.
    pub(crate) fn advertised(&self, repo: &Repository) -> Result<Option<Oid>, NetError> {
        let target = format!("refs/heads/{}", self.branch);
        let fatal = |e: &git2::Error| self.local_error(e);
        if let Some(path) = &self.local {
            let remote = Repository::open_bare(path).map_err(|e| fatal(&e))?;
            return match remote.refname_to_id(&target) {
                Ok(oid) => Ok(Some(oid)),
                Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
                Err(e) => Err(fatal(&e)),
            };
        }
        let sideband = RefCell::new(Vec::new());
        let auth_asked = Cell::new(false);
        let mut remote = repo
            .remote_anonymous(&self.url)
            .map_err(|e| self.net_error(&e, &sideband, false))?;
        // git2's connect takes no custom headers, so the token cannot ride in the header here.
        let cbs = self.callbacks(&sideband, &auth_asked, true);
        let result = remote
            .connect_auth(Direction::Fetch, Some(cbs), None)
            .and_then(|connection| {
                Ok(connection
                    .list()?
                    .iter()
                    .find(|head| head.name() == target)
                    .map(|head| head.oid()))
            });
        result.map_err(|e| self.net_error(&e, &sideband, auth_asked.get()))
    }

    /// Fetches the branch tip (depth 1 where the transport allows) into the scratch repo.
    /// `Ok(None)` when the remote has no such branch.
    pub(crate) fn fetch(&self, repo: &Repository) -> Result<Option<Oid>, NetError> {
        // Depth 1 at first; later fetches go deeper so the commits landed since our last look
        // arrive too (the server still skips what we have), and we can count them.
        let depth = if repo.refname_to_id(SEEN_REF).is_ok() {
            SEEN_DEPTH
        } else {
            1
        };
        self.fetch_at_depth(repo, depth)
    }

    /// [`Remote::fetch`] with the history `depth` commits deep below the tip.
    pub(crate) fn fetch_at_depth(
        &self,
        repo: &Repository,
        depth: i32,
    ) -> Result<Option<Oid>, NetError> {
        let refspec = format!("+refs/heads/{}:{TIP_REF}", self.branch);
        let depth = depth.max(self.deepest.get());
        self.deepest.set(depth);
        loop {
            // A stale tip must not survive a fetch that finds no branch.
            if let Ok(mut r) = repo.find_reference(TIP_REF) {
                let _ = r.delete();
            }
            let sideband = RefCell::new(Vec::new());
            let auth_asked = Cell::new(false);
            let received = Cell::new(0u64);
            let result = {
                let mut remote = repo
                    .remote_anonymous(&self.url)
                    .map_err(|e| self.net_error(&e, &sideband, false))?;
                let mut cbs = self.callbacks(&sideband, &auth_asked, false);
                cbs.transfer_progress(|p| {
                    received.set(p.received_bytes() as u64);
                    true
                });
                let mut fo = FetchOptions::new();
                fo.remote_callbacks(cbs)
                    .download_tags(AutotagOption::None)
                    .update_fetchhead(false)
                    .custom_headers(&self.headers());
                if self.shallow.get() {
                    fo.depth(depth);
                }
                remote.fetch(&[refspec.as_str()], Some(&mut fo), None)
            };
            self.fetched.set(self.fetched.get() + received.get());
            match result {
                Ok(()) => break,
                Err(e) if self.shallow.get() && !auth_asked.get() && refuses_depth(&e) => {
                    self.shallow.set(false);
                    continue;
                }
                Err(e) => return Err(self.net_error(&e, &sideband, auth_asked.get())),
            }
        }
        match repo.refname_to_id(TIP_REF) {
            Ok(oid) => Ok(Some(oid)),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(NetError {
                fault: Fault::Fatal,
                source: self.scrub_error(&e),
                remote: Vec::new(),
            }),
        }
    }

    /// Pushes `commit` to the branch, but only if the branch is still at `base`.
    pub(crate) fn push(
        &self,
        repo: &Repository,
        commit: Oid,
        base: Oid,
    ) -> Result<Pushed, NetError> {
        match &self.local {
            Some(path) => self.push_local(path, repo, commit, base),
            None => self.push_network(repo, commit, base),
        }
    }

    fn push_network(&self, repo: &Repository, commit: Oid, base: Oid) -> Result<Pushed, NetError> {
        let target = format!("refs/heads/{}", self.branch);
        let sideband = RefCell::new(Vec::new());
        let auth_asked = Cell::new(false);
        let fail = |e: &git2::Error, asked: bool| self.net_error(e, &sideband, asked);
        repo.reference(PUSH_REF, commit, true, "deploy-action: write-back")
            .map_err(|e| fail(&e, false))?;

        let doomed: Cell<Option<Option<Oid>>> = Cell::new(None);
        let statuses: RefCell<Vec<(String, Option<String>)>> = RefCell::new(Vec::new());
        let result = {
            let mut remote = repo
                .remote_anonymous(&self.url)
                .map_err(|e| fail(&e, false))?;
            let mut cbs = self.callbacks(&sideband, &auth_asked, false);
            // The lease: the remote tells us where the branch is before we send a byte. If that
            // is not the tip we built on, the push is doomed; abort and fetch the new tip.
            cbs.push_negotiation(|updates| {
                for u in updates {
                    if u.dst_refname() == Ok(target.as_str()) && u.src() != base {
                        doomed.set(Some((!u.src().is_zero()).then_some(u.src())));
                        return Err(git2::Error::from_str(
                            "the branch moved since our fetch; not pushing on a stale tip",
                        ));
                    }
                }
                Ok(())
            });
            // A rejected update can still return Ok from push(): the verdict is here.
            cbs.push_update_reference(|refname, status| {
                statuses
                    .borrow_mut()
                    .push((refname.to_string(), status.map(str::to_string)));
                Ok(())
            });
            let mut po = PushOptions::new();
            po.remote_callbacks(cbs).custom_headers(&self.headers());
            remote.push(&[format!("{PUSH_REF}:{target}")], Some(&mut po))
        };
        if let Some(now) = doomed.get() {
            return Ok(Pushed::Doomed { now });
        }
        if let Err(e) = result {
            return Err(fail(&e, auth_asked.get()));
        }
        let status = statuses
            .into_inner()
            .into_iter()
            .find(|(r, _)| *r == target)
            .and_then(|(_, s)| s);
        Ok(match status {
            None => Pushed::Landed,
            Some(status) => {
                let remote = self.remote_lines(&sideband.borrow());
                let status = self.scrub(&status);
                match classify::refusal(&status, &remote) {
                    Refusal::LostRace => Pushed::Lost,
                    refusal => Pushed::Refused {
                        status,
                        refusal,
                        remote,
                    },
                }
            }
        })
    }

    fn push_local(
        &self,
        path: &std::path::Path,
        repo: &Repository,
        commit: Oid,
        base: Oid,
    ) -> Result<Pushed, NetError> {
        let fatal = |e: &git2::Error| self.local_error(e);
        let target = format!("refs/heads/{}", self.branch);
        let remote = Repository::open_bare(path).map_err(|e| fatal(&e))?;
        match remote.refname_to_id(&target) {
            Ok(now) if now == base => {}
            Ok(now) => return Ok(Pushed::Doomed { now: Some(now) }),
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(Pushed::Doomed { now: None }),
            Err(e) => return Err(fatal(&e)),
        }
        let odb = remote.odb().map_err(|e| fatal(&e))?;
        copy_missing(repo, &odb, commit).map_err(|e| fatal(&e))?;
        match remote.reference_matching(&target, commit, true, base, "deploy-action: write-back") {
            Ok(_) => Ok(Pushed::Landed),
            Err(e)
                if matches!(
                    e.code(),
                    ErrorCode::Modified | ErrorCode::Locked | ErrorCode::Exists
                ) =>
            {
                Ok(Pushed::Lost)
            }
            Err(e) => Err(fatal(&e)),
        }
    }
}

/// Copies `oid` and everything it reaches that `to` lacks. An object the destination has is
/// assumed complete below it, so only the changed path is walked.
fn copy_missing(from: &Repository, to: &git2::Odb<'_>, oid: Oid) -> Result<(), git2::Error> {
    if to.exists(oid) {
        return Ok(());
    }
    let odb = from.odb()?;
    let object = odb.read(oid)?;
    match object.kind() {
        ObjectType::Commit => copy_missing(from, to, from.find_commit(oid)?.tree_id())?,
        ObjectType::Tree => {
            for entry in from.find_tree(oid)?.iter() {
                if entry.kind() != Some(ObjectType::Commit) {
                    copy_missing(from, to, entry.id())?;
                }
            }
        }
        _ => {}
    }
    to.write(object.kind(), object.data())?;
    Ok(())
}

/// A file:// URL or an absolute path: a remote on this machine.
fn local_path(url: &str) -> Option<PathBuf> {
    if let Some(rest) = url.strip_prefix("file://") {
        Some(PathBuf::from(rest))
    } else if url.starts_with('/') {
        Some(PathBuf::from(url))
    } else {
        None
    }
}

fn refuses_depth(e: &git2::Error) -> bool {
    let m = e.message().to_ascii_lowercase();
    m.contains("shallow") || m.contains("depth")
}

/// `https://user:secret@host/x` → `https://***@host/x`, inside any text.
pub(crate) fn redact_url_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&tail[at..authority_end]);
            }
            None => out.push_str(&tail[..authority_end]),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact_url_credentials(
                "failed to push to 'https://x-access-token:ghs_abc@github.com/nova/m.git': 403"
            ),
            "failed to push to 'https://***@github.com/nova/m.git': 403"
        );
        assert_eq!(
            redact_url_credentials("git://127.0.0.1:9418/x.git"),
            "git://127.0.0.1:9418/x.git"
        );
        assert_eq!(redact_url_credentials("no url here"), "no url here");
    }

    #[test]
    fn the_token_and_its_encoding_are_scrubbed() {
        let token = SecretString::from("s3cr3t-token");
        let remote = Remote::new("https://127.0.0.1/x.git", "main", Some(&token));
        let encoded =
            base64::engine::general_purpose::STANDARD.encode("x-access-token:s3cr3t-token");
        assert_eq!(
            remote.scrub(&format!("bad s3cr3t-token and {encoded}")),
            "bad *** and ***"
        );
        assert_eq!(remote.headers().len(), 1);
    }

    #[test]
    fn local_remotes_are_recognised() {
        assert_eq!(
            local_path("file:///srv/git/x.git"),
            Some(PathBuf::from("/srv/git/x.git"))
        );
        assert_eq!(
            local_path("/srv/git/x.git"),
            Some(PathBuf::from("/srv/git/x.git"))
        );
        assert_eq!(local_path("git://127.0.0.1/x.git"), None);
        assert_eq!(local_path("https://github.com/nova/m.git"), None);
    }
}
