//! Pushing the built image: credentials through the fixed auth header, one log line per layer,
//! whole-push retries on transient errors, and the pushed digest.

use bollard::Docker;
use bollard::models::PushImageInfo;
use bollard::query_parameters::PushImageOptions;
use futures_util::StreamExt;

use super::client::{self, DockerError};
use crate::github::{Runner, line_out};
use crate::registry::{Credentials, ImageRef};
use crate::retry::Policy;

/// How a failed push attempt should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// Credentials or permissions: retrying cannot help.
    Denied,
    /// The registry has no such repository (ECR without `create-repository`).
    NoRepository,
    /// The tag exists and the repository refuses to move it (ECR's IMMUTABLE tags).
    ImmutableTag,
    /// The network or the registry hiccuped: push again.
    Transient,
    /// Anything else: report it as is.
    Permanent,
}

/// Classifies a push error by the daemon's (or registry's) message.
pub fn classify(message: &str) -> Failed {
    let m = message.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    if any(&["immutable", "cannot be overwritten"]) {
        Failed::ImmutableTag
    } else if any(&[
        "unauthorized",
        "denied",
        "authentication required",
        "no basic auth credentials",
        "forbidden",
        "not authorized",
    ]) {
        Failed::Denied
    } else if any(&[
        "name unknown",
        "name_unknown",
        "repository does not exist",
        "repositorynotfound",
    ]) {
        Failed::NoRepository
    } else if any(&[
        "connection refused",
        "connection reset",
        "broken pipe",
        ": eof",
        "unexpected eof",
        "i/o timeout",
        "timeout",
        "timed out",
        "temporarily unavailable",
        "500 internal server error",
        "502 bad gateway",
        "503 service unavailable",
        "504 gateway timeout",
        "status: 5",
        "status 5",
        "toomanyrequests",
        "too many requests",
        "no such host",
    ]) {
        Failed::Transient
    } else {
        Failed::Permanent
    }
}

/// Pushes `image` (`registry/repository:tag`) and returns its `sha256:…` digest.
pub async fn push(
    docker: &Docker,
    image: &ImageRef,
    creds: Option<&Credentials>,
    runner: &Runner,
) -> Result<String, DockerError> {
    client::negotiate(docker).await?;
    runner.group(&format!("Push {image}"));
    let result = push_with_retries(docker, image, creds, runner).await;
    runner.end_group();
    let repository = image.name();
    let digest = match result? {
        Some(digest) => digest,
        None => repo_digest(docker, image, &repository)
            .await
            .ok_or_else(|| DockerError::NoDigest {
                image: image.to_string(),
            })?,
    };
    line_out(&format!("pushed {repository}@{digest}"));
    Ok(digest)
}

async fn push_with_retries(
    docker: &Docker,
    image: &ImageRef,
    creds: Option<&Credentials>,
    runner: &Runner,
) -> Result<Option<String>, DockerError> {
    let policy = Policy::REGISTRY_PUSH;
    let mut attempt = 1;
    loop {
        let message = match push_once(docker, image, creds).await {
            Ok(digest) => return Ok(digest),
            Err(message) => message,
        };
        match classify(&message) {
            Failed::Denied => {
                return Err(DockerError::PushDenied {
                    image: image.to_string(),
                    message,
                });
            }
            Failed::NoRepository => {
                return Err(DockerError::PushNoRepository {
                    image: image.to_string(),
                    message,
                });
            }
            Failed::ImmutableTag => {
                return Err(DockerError::PushImmutableTag {
                    image: image.to_string(),
                    message,
                });
            }
            Failed::Transient if policy.allows_after(attempt) => {
                let wait = policy.jittered(attempt);
                runner.warning(&format!(
                    "push attempt {attempt}/{} of {image} failed: {message}; retrying in {:.1}s",
                    policy.attempts,
                    wait.as_secs_f64()
                ));
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Failed::Transient | Failed::Permanent => {
                return Err(DockerError::Push {
                    image: image.to_string(),
                    attempts: attempt,
                    message,
                });
            }
        }
    }
}

/// One push; the digest if the daemon's log named it. Errors come back as the daemon's message.
async fn push_once(
    docker: &Docker,
    image: &ImageRef,
    creds: Option<&Credentials>,
) -> Result<Option<String>, String> {
    let options = PushImageOptions {
        tag: image.tag().map(str::to_string),
        ..Default::default()
    };
    let credentials = creds.map(|c| client::docker_credentials(c, image.host()));
    let mut stream = docker.push_image(&image.name(), Some(options), credentials);
    let mut progress = LayerProgress::default();
    let mut digest = None;
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| bollard_message(&e))?;
        if let Some(line) = progress.observe(&info) {
            line_out(&line);
        }
        if let Some(d) = info.status.as_deref().and_then(digest_in_status) {
            digest = Some(d.to_string());
        }
    }
    Ok(digest)
}

/// The message of a bollard error without its wrapper text.
pub fn bollard_message(e: &bollard::errors::Error) -> String {
    use bollard::errors::Error;
    match e {
        Error::DockerStreamError { error } => error.clone(),
        Error::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        other => other.to_string(),
    }
}

/// The digest in the daemon's closing push line, `v1: digest: sha256:… size: 528`.
pub(crate) fn digest_in_status(status: &str) -> Option<&str> {
    let rest = &status[status.find("digest: sha256:")? + "digest: ".len()..];
    let digest = rest.split_whitespace().next()?;
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(digest)
}

/// `RepoDigests` of the image, filtered by repository: the fallback when no status line had it.
async fn repo_digest(docker: &Docker, image: &ImageRef, repository: &str) -> Option<String> {
    let inspect = docker.inspect_image(&image.to_string()).await.ok()?;
    digest_for_repository(&inspect.repo_digests.unwrap_or_default(), repository)
}

/// The digest of the `repository@sha256:…` entry for exactly `repository`.
pub(crate) fn digest_for_repository(repo_digests: &[String], repository: &str) -> Option<String> {
    repo_digests.iter().find_map(|rd| {
        let (repo, digest) = rd.split_once('@')?;
        (repo == repository && digest.starts_with("sha256:")).then(|| digest.to_string())
    })
}

/// Turns the daemon's push progress into one line per layer state change.
///
/// bollard 0.21.1 drops the layer `id` of each progress message, so layers are numbered by
/// the order the daemon prepared them in; `Pushing` progress and `Waiting` are never printed.
#[derive(Debug, Default)]
pub(crate) struct LayerProgress {
    layers: usize,
    done: usize,
}

impl LayerProgress {
    /// The line to print for this message, if it is a state change worth a line.
    pub(crate) fn observe(&mut self, info: &PushImageInfo) -> Option<String> {
        let status = info.status.as_deref()?.trim();
        match status {
            "Preparing" => {
                self.layers += 1;
                None
            }
            "Waiting" | "Pushing" => None,
            s if s.starts_with("Retrying in ") => None,
            "Pushed" | "Layer already exists" => Some(self.layer_line(status)),
            s if s.starts_with("Mounted from ") => Some(self.layer_line(status)),
            s if s.starts_with("The push refers to ") => Some(s.to_string()),
            s if digest_in_status(s).is_some() => Some(s.to_string()),
            "" => None,
            s => Some(s.to_string()),
        }
    }

    fn layer_line(&mut self, status: &str) -> String {
        self.done += 1;
        let total = self.layers.max(self.done);
        format!("layer {}/{}: {status}", self.done, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(status: &str) -> PushImageInfo {
        PushImageInfo {
            status: Some(status.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn credentials_and_permission_errors_are_never_retried() {
        for m in [
            "unauthorized: authentication required",
            "denied: requested access to the resource is denied",
            "no basic auth credentials",
            "denied: User: arn:aws:sts::1:assumed-role/x is not authorized to perform: ecr:InitiateLayerUpload",
            "received unexpected HTTP status: 403 Forbidden",
        ] {
            assert_eq!(classify(m), Failed::Denied, "{m}");
        }
    }

    #[test]
    fn network_and_server_errors_are_transient() {
        for m in [
            "Get \"http://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused",
            "Put \"https://r/v2/a/blobs/uploads/x\": read tcp 1->2: read: connection reset by peer",
            "Get \"http://127.0.0.1:5000/v2/\": EOF",
            "received unexpected HTTP status: 502 Bad Gateway",
            "received unexpected HTTP status: 503 Service Unavailable",
            "net/http: TLS handshake timeout",
        ] {
            assert_eq!(classify(m), Failed::Transient, "{m}");
        }
    }

    #[test]
    fn a_missing_repository_has_its_own_class() {
        assert_eq!(
            classify(
                "name unknown: The repository with name 'nova/x' does not exist in the registry with id '1'"
            ),
            Failed::NoRepository
        );
    }

    #[test]
    fn an_immutable_tag_has_its_own_class() {
        assert_eq!(
            classify(
                "tag invalid: The image tag 'cache-builder' already exists in the 'nova/auth-service' repository and cannot be overwritten because the repository is immutable."
            ),
            Failed::ImmutableTag
        );
    }

    #[test]
    fn other_errors_are_permanent() {
        assert_eq!(classify("tag does not exist: r/a:1"), Failed::Permanent);
        assert_eq!(
            classify("An image does not exist locally with the tag: r/a"),
            Failed::Permanent
        );
    }

    #[test]
    fn the_digest_comes_from_the_closing_status_line() {
        let d = "sha256:".to_string() + &"ab".repeat(32);
        assert_eq!(
            digest_in_status(&format!("v1: digest: {d} size: 528")),
            Some(d.as_str())
        );
        assert_eq!(digest_in_status("Pushed"), None);
        assert_eq!(digest_in_status("v1: digest: sha256:abc size: 1"), None);
    }

    #[test]
    fn repo_digests_are_filtered_by_repository() {
        let d1 = format!("sha256:{}", "1".repeat(64));
        let d2 = format!("sha256:{}", "2".repeat(64));
        let rds = vec![
            format!("127.0.0.1:5000/nova/other@{d1}"),
            format!("127.0.0.1:5000/nova/auth@{d2}"),
        ];
        assert_eq!(
            digest_for_repository(&rds, "127.0.0.1:5000/nova/auth"),
            Some(d2)
        );
        assert_eq!(digest_for_repository(&rds, "127.0.0.1:5000/nova"), None);
    }

    #[test]
    fn progress_is_one_line_per_layer_state_change() {
        let mut p = LayerProgress::default();
        let stream = [
            "The push refers to repository [127.0.0.1:5000/nova/auth]",
            "Preparing",
            "Preparing",
            "Preparing",
            "Waiting",
            "Pushing",
            "Pushing",
            "Layer already exists",
            "Pushing",
            "Pushed",
            "Mounted from nova/user",
            "Retrying in 5 seconds",
            "v1: digest: sha256:0000000000000000000000000000000000000000000000000000000000000000 size: 739",
        ];
        let lines: Vec<String> = stream.iter().filter_map(|s| p.observe(&info(s))).collect();
        assert_eq!(
            lines,
            [
                "The push refers to repository [127.0.0.1:5000/nova/auth]",
                "layer 1/3: Layer already exists",
                "layer 2/3: Pushed",
                "layer 3/3: Mounted from nova/user",
                "v1: digest: sha256:0000000000000000000000000000000000000000000000000000000000000000 size: 739",
            ]
        );
    }
}
