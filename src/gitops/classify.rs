//! What a failed fetch or push means for the loop: retry now, retry later, or stop.

/// Why the remote refused a ref update that reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Someone else moved the branch first: a lost compare-and-swap. Retry on the new tip.
    LostRace,
    /// Branch protection (GitHub's GH006 and friends). Retrying cannot help.
    Protected,
    /// A server-side hook or policy said no. Retrying cannot help.
    Declined,
}

/// Classifies a `push_update_reference` status, with the remote's sideband lines as context.
pub(crate) fn refusal(status: &str, remote: &[String]) -> Refusal {
    let all = std::iter::once(status)
        .chain(remote.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("\n")
        .to_ascii_lowercase();
    if all.contains("protected branch") || all.contains("gh006") || all.contains("gh013") {
        return Refusal::Protected;
    }
    let status = status.to_ascii_lowercase();
    const LOST: [&str; 8] = [
        "failed to update ref",
        "cannot lock ref",
        "failed to lock",
        "fetch first",
        "non-fast-forward",
        "stale info",
        "incorrect old value",
        "reference already exists",
    ];
    if LOST.iter().any(|p| status.contains(p)) {
        Refusal::LostRace
    } else {
        Refusal::Declined
    }
}

/// What a libgit2 error from a fetch or push means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The server refused our credentials (or we had none to give).
    Auth,
    /// The connection failed or broke: worth a few more tries.
    Network,
    /// Anything else: a bad URL, a missing repository, a TLS certificate we do not trust…
    Fatal,
}

pub(crate) fn fault(err: &git2::Error) -> Fault {
    use git2::{ErrorClass, ErrorCode};
    let msg = err.message().to_ascii_lowercase();
    if err.code() == ErrorCode::Auth
        || msg.contains("authentication")
        || msg.contains("status code: 401")
        || msg.contains("status code: 403")
        || msg.contains("permission to")
    {
        return Fault::Auth;
    }
    if err.code() == ErrorCode::Certificate || err.class() == ErrorClass::Ssl {
        return Fault::Fatal;
    }
    const TRANSIENT: [&str; 13] = [
        "connection refused",
        "connection reset",
        "connection timed out",
        "timed out",
        "failed to connect",
        "could not connect",
        "early eof",
        "hung up",
        "broken pipe",
        "unexpected eof",
        "status code: 5",
        "status code: 429",
        "failed to resolve address",
    ];
    if TRANSIENT.iter().any(|p| msg.contains(p))
        || matches!(err.class(), ErrorClass::Net | ErrorClass::Os)
    {
        return Fault::Network;
    }
    Fault::Fatal
}

/// The useful lines of the remote's sideband chatter: progress meters dropped, `remote:`
/// prefixes and blank lines gone.
pub(crate) fn remote_lines(raw: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(raw)
        .split(['\n', '\r'])
        .map(|l| l.trim().trim_start_matches("remote:").trim())
        .filter(|l| !l.is_empty() && !is_progress(l))
        .map(str::to_string)
        .collect()
}

fn is_progress(line: &str) -> bool {
    const METERS: [&str; 7] = [
        "Counting objects",
        "Compressing objects",
        "Resolving deltas",
        "Receiving objects",
        "Enumerating objects",
        "Total ",
        "Writing objects",
    ];
    METERS.iter().any(|m| line.starts_with(m)) || (line.contains("% (") && line.ends_with(')'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn refusals_are_told_apart() {
        let cases: [(&str, &[&str], Refusal); 9] = [
            (
                "failed to update ref",
                &["error: cannot lock ref 'refs/heads/main': is at 1a but expected 2b"],
                Refusal::LostRace,
            ),
            (
                "cannot lock ref 'refs/heads/main': reference already exists",
                &[],
                Refusal::LostRace,
            ),
            ("fetch first", &[], Refusal::LostRace),
            ("non-fast-forward", &[], Refusal::LostRace),
            ("stale info", &[], Refusal::LostRace),
            (
                "pre-receive hook declined",
                &["no deploys on Friday"],
                Refusal::Declined,
            ),
            (
                "protected branch hook declined",
                &["error: GH006: Protected branch update failed for refs/heads/main."],
                Refusal::Protected,
            ),
            (
                "pre-receive hook declined",
                &["error: GH006: Protected branch update failed for refs/heads/main."],
                Refusal::Protected,
            ),
            ("deny updating a hidden ref", &[], Refusal::Declined),
        ];
        for (status, remote, want) in cases {
            assert_eq!(
                refusal(status, &lines(remote)),
                want,
                "{status:?} {remote:?}"
            );
        }
    }

    #[test]
    fn libgit2_errors_are_classified() {
        use git2::{Error, ErrorClass, ErrorCode};
        let cases = [
            (
                Error::new(
                    ErrorCode::Auth,
                    ErrorClass::Http,
                    "authentication required but no callback set",
                ),
                Fault::Auth,
            ),
            (
                Error::new(
                    ErrorCode::GenericError,
                    ErrorClass::Http,
                    "unexpected http status code: 403",
                ),
                Fault::Auth,
            ),
            (
                Error::new(
                    ErrorCode::GenericError,
                    ErrorClass::Http,
                    "too many redirects or authentication replays",
                ),
                Fault::Auth,
            ),
            (
                Error::new(
                    ErrorCode::GenericError,
                    ErrorClass::Os,
                    "failed to connect to 127.0.0.1: Connection refused",
                ),
                Fault::Network,
            ),
            (
                Error::new(ErrorCode::GenericError, ErrorClass::Net, "early EOF"),
                Fault::Network,
            ),
            (
                Error::new(
                    ErrorCode::GenericError,
                    ErrorClass::Http,
                    "unexpected http status code: 502",
                ),
                Fault::Network,
            ),
            (
                Error::new(
                    ErrorCode::Certificate,
                    ErrorClass::Ssl,
                    "the SSL certificate is invalid",
                ),
                Fault::Fatal,
            ),
            (
                Error::new(
                    ErrorCode::GenericError,
                    ErrorClass::Http,
                    "unexpected http status code: 404",
                ),
                Fault::Fatal,
            ),
            (
                Error::new(
                    ErrorCode::NotFound,
                    ErrorClass::Repository,
                    "could not find repository at '/nope'",
                ),
                Fault::Fatal,
            ),
        ];
        for (err, want) in cases {
            assert_eq!(fault(&err), want, "{err}");
        }
    }

    #[test]
    fn sideband_keeps_messages_and_drops_meters() {
        let raw = b"Resolving deltas:  50% (1/2)\rResolving deltas: 100% (2/2), done.\nremote: no deploys on Friday\n\nerror: cannot lock ref\n";
        assert_eq!(
            remote_lines(raw),
            lines(&["no deploys on Friday", "error: cannot lock ref"])
        );
    }
}
