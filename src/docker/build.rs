//! Building one image: the request as the pipeline resolved it, the checks made before anything
//! is sent, the build log in a `::group::` (with workflow commands stopped inside it), and the
//! builder chosen: BuildKit (`buildkit.rs`) or the classic builder (`classic.rs`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;

use super::client::{self, DockerError};
use super::dockerfile::Dockerfile;
use super::progress::StepCounts;
use super::session::SecretValue;
use super::{buildkit, classic};
use crate::github::{Runner, line_out};
use crate::registry::{Credentials, ImageRef};

/// How long the daemon may take to answer a build request: it sends no response headers until
/// it has taken the whole context, which bollard's default 120 s does not cover for big ones.
pub(crate) const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Which builder runs the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// The daemon's embedded BuildKit (`/build?version=2` with our session).
    BuildKit,
    /// The classic builder (deprecated, but the only one some daemons have).
    Classic,
}

impl Builder {
    /// The `builder` output's value.
    pub fn name(self) -> &'static str {
        match self {
            Builder::BuildKit => "buildkit",
            Builder::Classic => "classic",
        }
    }
}

/// What to build, as the pipeline resolved it.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The context directory (absolute).
    pub context: PathBuf,
    /// The Dockerfile (absolute); it may lie outside the context.
    pub dockerfile: PathBuf,
    /// The Dockerfile as errors name it (workspace-relative, as the input gave it).
    pub dockerfile_name: String,
    /// `registry/repository:tag`, the one tag the image gets.
    pub image: ImageRef,
    pub build_args: Vec<(String, String)>,
    /// User labels and [`oci_labels`], applied after the last step.
    pub labels: Vec<(String, String)>,
    pub target: Option<String>,
    /// Images to take the layer cache from, already resolved.
    pub cache_from: Vec<ImageRef>,
    pub builder: Builder,
    /// The network of `RUN` steps, as the daemon takes it (`none`, `host`, `default`); `None`
    /// leaves it to the daemon.
    pub network: Option<String>,
    /// BuildKit: give the image inline cache metadata, so later builds can import it.
    pub inline_cache: bool,
    /// BuildKit: the values `RUN --mount=type=secret,id=…` reads.
    pub secrets: Arc<HashMap<String, SecretValue>>,
    /// The Dockerfile as parsed, to name a failing step by its line.
    pub parsed: Option<Arc<Dockerfile>>,
}

/// The image a build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// `sha256:…` image id.
    pub id: String,
    /// The Dockerfile steps that ran, and which of them the cache answered.
    pub steps: StepCounts,
    /// The steps answered from the cache, as the log names them (`Step 2/5 : RUN …` or
    /// `[builder 2/5] RUN …`).
    pub cached_steps: Vec<String>,
}

/// The OCI labels every image gets: `org.opencontainers.image.{source,revision,created}`.
///
/// Build-time labels are applied after the last step, so a new `created` value changes only
/// the image config and never the cache of a step.
pub fn oci_labels(
    source_url: Option<&str>,
    revision: &str,
    created: &str,
) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    if let Some(url) = source_url.filter(|u| !u.is_empty()) {
        labels.push((
            "org.opencontainers.image.source".to_string(),
            url.to_string(),
        ));
    }
    labels.push((
        "org.opencontainers.image.revision".to_string(),
        revision.to_string(),
    ));
    labels.push((
        "org.opencontainers.image.created".to_string(),
        created.to_string(),
    ));
    labels
}

/// Builds `req.image` and returns its id. `creds` authenticate against the registry of
/// `req.image` only: for the cache-from images and the `FROM` images that live there.
pub async fn build(
    docker: &Docker,
    req: &BuildRequest,
    creds: Option<&Credentials>,
    runner: &Runner,
) -> Result<BuiltImage, DockerError> {
    // Checked before anything is sent, so the error names the path that was looked for.
    if !req.context.is_dir() {
        return Err(DockerError::ContextMissing {
            path: req.context.clone(),
        });
    }
    if !req.dockerfile.is_file() {
        return Err(DockerError::DockerfileMissing {
            path: req.dockerfile.clone(),
        });
    }
    client::negotiate(docker).await?;
    runner.group(&format!("Build {} ({})", req.image, req.builder.name()));
    // Build output is untrusted text: keep the runner from reading commands in it.
    let stop = runner.actions.then(stop_token);
    if let Some(token) = &stop {
        line_out(&format!("::stop-commands::{token}"));
    }
    let docker = client::with_timeout(docker, BUILD_TIMEOUT);
    let run = || async {
        match req.builder {
            Builder::BuildKit => buildkit::build(&docker, req, creds).await,
            Builder::Classic => classic::build(&docker, req, creds, runner).await,
        }
    };
    let mut result = run().await;
    // The daemon's JSON-lines output can end mid-line (bollard then says "bytes remaining on
    // stream"), after every step ran: seen about once in a few hundred builds on dockerd 20.10.
    // What the lost lines said cannot be known, and a build is repeatable and by now cached,
    // so it runs once more.
    if result.as_ref().is_err_and(cut_off) {
        line_out("the daemon's build output ended mid-line; building again (cached)");
        result = run().await;
    }
    if let Some(token) = &stop {
        line_out(&format!("::{token}::"));
    }
    runner.end_group();
    result
}

/// A build whose output stream ended inside a line.
fn cut_off(e: &DockerError) -> bool {
    matches!(e, DockerError::Build { source: bollard::errors::Error::IOError { err }, .. }
        if err.kind() == std::io::ErrorKind::Other && err.to_string() == "bytes remaining on stream")
}

fn stop_token() -> String {
    use rand::Rng;
    format!("da-build-{:032x}", rand::rng().random::<u128>())
}

/// Build args with BuildKit's switch for inline cache metadata when asked.
pub(super) fn build_args(req: &BuildRequest) -> Option<HashMap<String, String>> {
    let mut args: HashMap<String, String> = req.build_args.iter().cloned().collect();
    if req.inline_cache && req.builder == Builder::BuildKit {
        args.insert("BUILDKIT_INLINE_CACHE".into(), "1".into());
    }
    (!args.is_empty()).then_some(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_output_stream_that_ends_inside_a_line_is_built_again() {
        let build = |err: std::io::Error| DockerError::Build {
            image: "r/a:1".into(),
            source: bollard::errors::Error::IOError { err },
        };
        assert!(cut_off(&build(std::io::Error::other(
            "bytes remaining on stream"
        ))));
        assert!(!cut_off(&build(std::io::Error::other("connection reset"))));
        assert!(!cut_off(&build(std::io::ErrorKind::BrokenPipe.into())));
        assert!(!cut_off(&DockerError::BuildFailed {
            image: "r/a:1".into(),
            message: "bytes remaining on stream".into(),
        }));
    }

    #[test]
    fn oci_labels_name_source_revision_and_created() {
        let l = oci_labels(
            Some("https://github.com/nova/monorepo"),
            "abc",
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(
            l,
            [
                (
                    "org.opencontainers.image.source".to_string(),
                    "https://github.com/nova/monorepo".to_string()
                ),
                (
                    "org.opencontainers.image.revision".to_string(),
                    "abc".to_string()
                ),
                (
                    "org.opencontainers.image.created".to_string(),
                    "2026-01-01T00:00:00Z".to_string()
                ),
            ]
        );
        assert_eq!(oci_labels(None, "abc", "t").len(), 2);
    }

    #[test]
    fn builder_names_are_the_output_values() {
        assert_eq!(Builder::BuildKit.name(), "buildkit");
        assert_eq!(Builder::Classic.name(), "classic");
    }
}
