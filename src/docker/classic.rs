//! The classic builder: cache-from images pulled first (it matches them by history, stage by
//! stage), the build log joined into lines, and a failing step named with its Dockerfile line.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{BuildInfo, BuildInfoAux, ImageId};
use bollard::query_parameters::{BuildImageOptions, BuilderVersion, CreateImageOptions};
use futures_util::StreamExt;

use super::build::{BuildRequest, BuiltImage, build_args};
use super::client::{self, DockerError};
use super::progress::StepCounts;
use super::upload::{Context, dockerfile_location, image_id_or_inspect};
use crate::github::{Runner, line_out};
use crate::registry::{Credentials, ImageRef};

/// Pulls each cache-from image so the classic builder can match its layers. One that is not in
/// the registry (the first deploy, a stage never exported) is said plainly; one that cannot be
/// pulled for another reason is a warning. The build goes on without either.
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
            Err(message) if is_not_found(&message) => {
                line_out(&format!("cache image {image}: not in the registry yet"))
            }
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

/// Builds with the classic builder, after pulling the cache-from images it matches by history.
pub(super) async fn build(
    docker: &Docker,
    req: &BuildRequest,
    pull_creds: Option<&Credentials>,
    runner: &Runner,
) -> Result<BuiltImage, DockerError> {
    pull_cache_images(docker, req, pull_creds, runner).await;
    let host = req.image.host();
    let mut context = Context::stream(req)?;
    let options = BuildImageOptions {
        dockerfile: context.dockerfile_name.clone(),
        t: Some(req.image.to_string()),
        rm: true,
        forcerm: true,
        cachefrom: (!req.cache_from.is_empty())
            .then(|| req.cache_from.iter().map(ToString::to_string).collect()),
        buildargs: build_args(req),
        networkmode: req.network.clone(),
        labels: (!req.labels.is_empty())
            .then(|| req.labels.iter().cloned().collect::<HashMap<_, _>>()),
        target: req.target.clone().unwrap_or_default(),
        version: BuilderVersion::BuilderV1,
        ..Default::default()
    };
    let registry_config = pull_creds
        .map(|c| HashMap::from([(host.to_string(), client::docker_credentials(c, host))]));
    let mut stream = docker.build_image(options, registry_config, Some(context.body()));

    let mut log = BuildLog::default();
    let mut image_id = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                for line in log.observe(&info) {
                    line_out(&line);
                }
                if let Some(BuildInfoAux::Default(ImageId { id: Some(id) })) = &info.aux {
                    image_id = Some(id.clone());
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                for line in log.finish() {
                    line_out(&line);
                }
                let location = log
                    .step_number()
                    .and_then(|n| req.parsed.as_ref()?.classic_step(n))
                    .map(|s| dockerfile_location(req, s.line));
                return Err(DockerError::BuildStep {
                    image: req.image.to_string(),
                    step: log
                        .step
                        .clone()
                        .unwrap_or_else(|| "the start (before any step)".to_string()),
                    message: error,
                    location,
                });
            }
            Err(source) => return Err(context.failure(req, source)),
        }
    }
    for line in log.finish() {
        line_out(&line);
    }
    let id = image_id_or_inspect(docker, req, image_id).await?;
    Ok(BuiltImage {
        id,
        steps: log.counts(),
        cached_steps: log.cached,
    })
}

/// The daemon's message for a reference the registry does not have.
fn is_not_found(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("not found") || m.contains("manifest unknown") || m.contains("name unknown")
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
    /// Every `Step N/M : …` line seen.
    steps: Vec<String>,
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

    /// N of the last `Step N/M : …` line.
    pub(super) fn step_number(&self) -> Option<usize> {
        self.step
            .as_deref()?
            .strip_prefix("Step ")?
            .split('/')
            .next()?
            .parse()
            .ok()
    }

    /// The steps seen, cached or not; the classic builder's steps have no digest, so the log's
    /// own text stands in for one.
    pub(super) fn counts(&self) -> StepCounts {
        StepCounts {
            steps: self
                .steps
                .iter()
                .map(|s| (s.clone(), self.cached.contains(s)))
                .collect(),
        }
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
            self.steps.push(line.trim().to_string());
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
