//! Building the service image with the classic builder: cache-from pulls, the streamed context,
//! the build log in a `::group::`, and failures that name the step.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::models::BuildInfo;
use bollard::query_parameters::{BuildImageOptions, BuilderVersion, CreateImageOptions};
use futures_util::{StreamExt, TryStreamExt};

use super::client::{self, DockerError};
use super::context::{self, ContextError, ContextSpec};
use crate::github::{Runner, line_out};
use crate::registry::{Credentials, ImageRef};

/// How long the daemon may take to answer a build request: it sends no response headers until
/// it has taken the whole context, which bollard's default 120 s does not cover for big ones.
pub(crate) const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// What to build, as the pipeline resolved it.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The context directory (absolute).
    pub context: PathBuf,
    /// The Dockerfile (absolute); it may lie outside the context.
    pub dockerfile: PathBuf,
    /// `registry/repository:tag`, the one tag the image gets.
    pub image: ImageRef,
    pub build_args: Vec<(String, String)>,
    /// User labels and [`oci_labels`], applied by the daemon after the last step.
    pub labels: Vec<(String, String)>,
    pub target: Option<String>,
    /// Images to take the layer cache from, already resolved (`auto` → the deployed image).
    pub cache_from: Vec<ImageRef>,
}

/// The image a build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// `sha256:…` image id.
    pub id: String,
    /// The steps answered from the layer cache, as the log names them (`Step 2/5 : RUN …`).
    pub cached_steps: Vec<String>,
}

/// The OCI labels every image gets: `org.opencontainers.image.{source,revision,created}`.
///
/// The classic builder applies build-time labels as one `LABEL` after the last step, so a new
/// `created` value changes only that last layer's config and never the cache of earlier steps.
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

/// Builds `req.image` and returns its id. `pull_creds` authenticate against the registry of
/// `req.image` only: for pulling the cache-from images and the `FROM` images that live there.
pub async fn build(
    docker: &Docker,
    req: &BuildRequest,
    pull_creds: Option<&Credentials>,
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
    runner.group(&format!("Build {}", req.image));
    pull_cache_images(docker, req, pull_creds, runner).await;
    // Build output is untrusted text: keep the runner from reading commands in it.
    let stop = runner.actions.then(stop_token);
    if let Some(token) = &stop {
        line_out(&format!("::stop-commands::{token}"));
    }
    let result = run_build(
        &client::with_timeout(docker, BUILD_TIMEOUT),
        req,
        pull_creds,
    )
    .await;
    if let Some(token) = &stop {
        line_out(&format!("::{token}::"));
    }
    runner.end_group();
    result
}

/// Pulls each cache-from image so the classic builder can match its layers; one that cannot
/// be pulled (the first deploy, a deleted tag) is a warning, and the build goes on without it.
async fn pull_cache_images(
    docker: &Docker,
    req: &BuildRequest,
    pull_creds: Option<&Credentials>,
    runner: &Runner,
) {
    for image in &req.cache_from {
        // Credentials go only to the registry they belong to.
        let creds = pull_creds.filter(|_| image.host() == req.image.host());
        match pull(docker, image, creds).await {
            Ok(()) => line_out(&format!("cache image {image}: pulled")),
            Err(message) => runner.warning(&format!(
                "cache image {image} could not be pulled, building without it: {message}"
            )),
        }
    }
}

/// Pulls `image`; the daemon's message if that failed.
async fn pull(
    docker: &Docker,
    image: &ImageRef,
    creds: Option<&Credentials>,
) -> Result<(), String> {
    let options = CreateImageOptions {
        from_image: Some(image.name()),
        tag: Some(image.pull_reference().to_string()),
        ..Default::default()
    };
    let creds = creds.map(|c| client::docker_credentials(c, image.host()));
    let mut stream = docker.create_image(Some(options), None, creds);
    while let Some(item) = stream.next().await {
        item.map_err(|e| super::push::bollard_message(&e))?;
    }
    Ok(())
}

async fn run_build(
    docker: &Docker,
    req: &BuildRequest,
    pull_creds: Option<&Credentials>,
) -> Result<BuiltImage, DockerError> {
    let host = req.image.host();
    let spec = ContextSpec {
        context_dir: req.context.clone(),
        dockerfile: req.dockerfile.clone(),
    };
    let (dockerfile_name, tar) = context::tar_stream(spec).map_err(|e| context_error(req, e))?;
    // A failure while producing the tar aborts the upload; keep its message for the error.
    let tar_failure = Arc::new(Mutex::new(None::<String>));
    let tar = {
        let slot = Arc::clone(&tar_failure);
        tar.inspect_err(move |e| {
            if let Ok(mut s) = slot.lock() {
                s.get_or_insert_with(|| crate::failure::chain_text(e));
            }
        })
    };
    let options = BuildImageOptions {
        dockerfile: dockerfile_name,
        t: Some(req.image.to_string()),
        rm: true,
        forcerm: true,
        cachefrom: (!req.cache_from.is_empty())
            .then(|| req.cache_from.iter().map(ToString::to_string).collect()),
        buildargs: (!req.build_args.is_empty())
            .then(|| req.build_args.iter().cloned().collect::<HashMap<_, _>>()),
        labels: (!req.labels.is_empty())
            .then(|| req.labels.iter().cloned().collect::<HashMap<_, _>>()),
        target: req.target.clone().unwrap_or_default(),
        version: BuilderVersion::BuilderV1,
        ..Default::default()
    };
    let registry_config = pull_creds
        .map(|c| HashMap::from([(host.to_string(), client::docker_credentials(c, host))]));
    let mut stream = docker.build_image(
        options,
        registry_config,
        Some(bollard::body_try_stream(tar)),
    );

    let mut log = BuildLog::default();
    let mut image_id = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                for line in log.observe(&info) {
                    line_out(&line);
                }
                if let Some(id) = info.aux.as_ref().and_then(|aux| aux.id.clone()) {
                    image_id = Some(id);
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                for line in log.finish() {
                    line_out(&line);
                }
                return Err(DockerError::BuildStep {
                    image: req.image.to_string(),
                    step: log
                        .step
                        .clone()
                        .unwrap_or_else(|| "the start (before any step)".to_string()),
                    message: error,
                });
            }
            Err(source) => {
                if let Some(message) = tar_failure.lock().ok().and_then(|s| s.clone()) {
                    return Err(DockerError::Context {
                        path: req.context.clone(),
                        message,
                    });
                }
                return Err(DockerError::Build {
                    image: req.image.to_string(),
                    source,
                });
            }
        }
    }
    for line in log.finish() {
        line_out(&line);
    }
    let id = match image_id {
        Some(id) => id,
        None => docker
            .inspect_image(&req.image.to_string())
            .await
            .ok()
            .and_then(|i| i.id)
            .ok_or_else(|| DockerError::NoImageId {
                image: req.image.to_string(),
            })?,
    };
    Ok(BuiltImage {
        id,
        cached_steps: log.cached,
    })
}

fn context_error(req: &BuildRequest, e: ContextError) -> DockerError {
    match e {
        ContextError::DockerfileNotFound { .. } | ContextError::DockerfileIsADirectory(_) => {
            DockerError::DockerfileMissing {
                path: req.dockerfile.clone(),
            }
        }
        ContextError::ResolveContext { .. } | ContextError::ContextNotADirectory(_) => {
            DockerError::ContextMissing {
                path: req.context.clone(),
            }
        }
        other => DockerError::Context {
            path: req.context.clone(),
            message: crate::failure::chain_text(&other),
        },
    }
}

fn stop_token() -> String {
    use rand::Rng;
    format!("da-build-{:032x}", rand::rng().random::<u128>())
}

/// Turns the daemon's build messages into whole log lines, and remembers the current step and
/// the steps that hit the cache.
#[derive(Debug, Default)]
pub(crate) struct BuildLog {
    partial: String,
    /// The last `Step N/M : …` line.
    pub step: Option<String>,
    /// Steps answered from the cache.
    pub cached: Vec<String>,
}

impl BuildLog {
    /// The complete lines this message finishes.
    pub(crate) fn observe(&mut self, info: &BuildInfo) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(text) = &info.stream {
            self.partial.push_str(text);
            while let Some(i) = self.partial.find('\n') {
                let line: String = self.partial.drain(..=i).collect();
                let line = line.trim_end_matches(['\n', '\r']).to_string();
                self.note(&line);
                lines.push(line);
            }
        }
        // Pull progress of a FROM image: print the state changes, not the byte counts.
        if let Some(status) = &info.status {
            let progress = info
                .progress_detail
                .as_ref()
                .is_some_and(|p| p.current.is_some() || p.total.is_some());
            if !progress {
                lines.push(match &info.id {
                    Some(id) => format!("{id}: {status}"),
                    None => status.clone(),
                });
            }
        }
        lines
    }

    /// What is left of an unterminated last line.
    pub(crate) fn finish(&mut self) -> Vec<String> {
        let rest = std::mem::take(&mut self.partial);
        if rest.trim().is_empty() {
            return Vec::new();
        }
        self.note(&rest);
        vec![rest]
    }

    fn note(&mut self, line: &str) {
        if line.starts_with("Step ") && line.contains(" : ") {
            self.step = Some(line.trim().to_string());
        } else if line.trim() == "---> Using cache"
            && let Some(step) = &self.step
        {
            self.cached.push(step.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(text: &str) -> BuildInfo {
        BuildInfo {
            stream: Some(text.to_string()),
            ..Default::default()
        }
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
    fn log_lines_are_joined_across_chunks() {
        let mut log = BuildLog::default();
        assert!(log.observe(&stream("Step 1/3 : FROM ba")).is_empty());
        assert_eq!(
            log.observe(&stream("se\n ---> 0123\nStep 2/3 : RUN x\n")),
            ["Step 1/3 : FROM base", " ---> 0123", "Step 2/3 : RUN x"]
        );
        assert_eq!(log.step.as_deref(), Some("Step 2/3 : RUN x"));
        assert!(log.observe(&stream("half")).is_empty());
        assert_eq!(log.finish(), ["half"]);
    }

    #[test]
    fn cached_steps_are_recorded_by_name() {
        let mut log = BuildLog::default();
        log.observe(&stream(
            "Step 2/4 : RUN make\n ---> Using cache\n ---> 42\nStep 3/4 : COPY . /app\n ---> 43\n",
        ));
        assert_eq!(log.cached, ["Step 2/4 : RUN make"]);
    }

    #[test]
    fn pull_progress_is_not_printed_but_its_states_are() {
        let mut log = BuildLog::default();
        let progress = BuildInfo {
            status: Some("Downloading".into()),
            id: Some("abc".into()),
            progress_detail: Some(bollard::models::ProgressDetail {
                current: Some(1),
                total: Some(9),
            }),
            ..Default::default()
        };
        assert!(log.observe(&progress).is_empty());
        let done = BuildInfo {
            status: Some("Pull complete".into()),
            id: Some("abc".into()),
            ..Default::default()
        };
        assert_eq!(log.observe(&done), ["abc: Pull complete"]);
    }
}
