//! The whole job, in order. Each stage returns a value the next one takes:
//!
//! 1. [`target`]: where the image goes and the credentials for it ([`Target`]);
//! 2. [`image`]: the image built and pushed, found in the registry, or promoted ([`Image`]);
//! 3. [`deploy`]: the image set in the overlay and written back to the branch ([`Deployed`]);
//! 4. [`verify`]: the rollout, as Argo CD reports it ([`Verified`]);
//!
//! and the [`Report`] is assembled from them at the end.

mod deploy;
mod image;
mod target;
mod verify;

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Result;
use secrecy::ExposeSecret;

pub(crate) use self::deploy::Deployed;
pub(crate) use self::image::Image;
pub(crate) use self::target::Target;
pub(crate) use self::verify::Verified;
use crate::failure::Hint;
use crate::github::Runner;
use crate::inputs::Inputs;
use crate::report::Report;

pub async fn run(inputs: &Inputs, runner: &Runner) -> Result<Report> {
    for secret in inputs.secrets() {
        runner.mask(secret.expose_secret());
    }
    let mut job = Job::default();
    let target = job
        .stage("credentials", target::resolve(inputs, runner))
        .await?;
    let image = match &inputs.build {
        Some(build) => {
            job.stage("build", image::build(inputs, build, &target, runner))
                .await?
        }
        None => {
            job.stage("registry", image::promoted(inputs, &target))
                .await?
        }
    };
    let deployed = match &inputs.set_image {
        Some(set) => Some(job.blocking("set-image", || {
            deploy::set_image(inputs, set, &image, runner)
        })?),
        None => None,
    };
    let verified = match (&inputs.verify, &inputs.set_image, &deployed) {
        (Some(v), Some(set), Some(d)) if verify::applies(inputs, Some(d)) => Some(
            job.stage("verify", verify::verify(inputs, v, set, &image, d, runner))
                .await?,
        ),
        _ => None,
    };
    Ok(Report::new(
        inputs,
        &target,
        &image,
        deployed.as_ref(),
        verified.as_ref(),
        job.stages,
    ))
}

/// Times each stage by name, for the summary.
#[derive(Debug, Default)]
pub struct Job {
    pub stages: Vec<(&'static str, Duration)>,
}

impl Job {
    async fn stage<T>(
        &mut self,
        name: &'static str,
        stage: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let value = stage.await;
        self.stages.push((name, started.elapsed()));
        value
    }

    /// A stage that blocks (libgit2): run on this worker thread without stalling the runtime.
    fn blocking<T>(&mut self, name: &'static str, stage: impl FnOnce() -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let value = tokio::task::block_in_place(stage);
        self.stages.push((name, started.elapsed()));
        value
    }
}

/// A stage that cannot go on, for a reason of the pipeline's own.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StageError {
    #[error("{image} is not in the registry, so there is no digest to pin")]
    TagNotPushed { image: String },
    #[error("branch: GITHUB_REF names no branch and the workspace is not on one")]
    BranchUnknown,
    #[error(
        "no remote: {workspace} has no origin and GITHUB_SERVER_URL/GITHUB_REPOSITORY are unset"
    )]
    RemoteUnknown { workspace: String },
    #[error("{dir}: no kustomization.yaml, kustomization.yml or Kustomization on branch {branch}")]
    KustomizationMissingAtTip { dir: String, branch: String },
    #[error("build secrets need BuildKit, and the build uses the classic builder")]
    SecretsNeedBuildKit,
    #[error("secret-files: cannot read {path} for the secret {id:?}")]
    SecretFileUnreadable {
        id: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Hint for StageError {
    fn hint(&self) -> Option<String> {
        Some(
            match self {
                StageError::TagNotPushed { .. } => {
                    "promote a tag that was pushed, or set pin-digest: false"
                }
                StageError::BranchUnknown => "set the branch input, e.g. branch: main",
                StageError::RemoteUnknown { .. } => {
                    "run actions/checkout first, or run inside a clone"
                }
                StageError::KustomizationMissingAtTip { .. } => {
                    "the kustomization input is relative to the repository root"
                }
                StageError::SecretsNeedBuildKit => {
                    "set `builder: auto` (or `buildkit`); `RUN --mount=type=secret` is BuildKit's"
                }
                StageError::SecretFileUnreadable { .. } => {
                    "secret-files paths are relative to the workspace; a file made by an earlier step must exist before this one"
                }
            }
            .into(),
        )
    }
}
