//! The daemon's embedded BuildKit: our session (registry credentials, build secrets, and the
//! context and Dockerfile through FileSync, as the docker CLI sends them), the progress printed
//! one line per step, and a failing step named by its Dockerfile line with the last lines of
//! its output.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bollard::Docker;
use bollard::models::{BuildInfoAux, ImageId};
use bollard::query_parameters::{BuildImageOptions, BuilderVersion};
use futures_util::StreamExt;
use secrecy::ExposeSecret;

use super::build::{BuildRequest, BuiltImage, build_args};
use super::client::{self, DockerError, StepFailure};
use super::context;
use super::filesync::SyncedDirs;
use super::progress::{self, BuildKitLog, FailedStep};
use super::session::{self, SessionData};
use super::upload::{context_error, dockerfile_location, image_id_or_inspect};
use crate::github::line_out;
use crate::registry::Credentials;

pub(super) async fn build(
    docker: &Docker,
    req: &BuildRequest,
    creds: Option<&Credentials>,
) -> Result<BuiltImage, DockerError> {
    context::check_dockerignore(&req.context).map_err(|e| context_error(req, e))?;
    let dockerfile =
        std::path::absolute(&req.dockerfile).unwrap_or_else(|_| req.dockerfile.clone());
    let mut data = SessionData {
        credentials: HashMap::new(),
        secrets: Arc::clone(&req.secrets),
        dirs: Some(SyncedDirs {
            context: req.context.clone(),
            dockerfile_dir: dockerfile.parent().unwrap_or(Path::new("/")).to_path_buf(),
        }),
    };
    // Credentials go only to the registry they belong to, by the host BuildKit asks for.
    if let Some(c) = creds {
        data.credentials
            .insert(req.image.host().to_string(), c.clone());
    }
    let session = session::open(&client::docker_host(), data)
        .await
        .map_err(DockerError::Session)?;
    // The context comes from the session, as the docker CLI sends it: no request body.
    let options = BuildImageOptions {
        dockerfile: dockerfile
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        remote: Some("client-session".into()),
        t: Some(req.image.to_string()),
        rm: true,
        cachefrom: (!req.cache_from.is_empty())
            .then(|| req.cache_from.iter().map(ToString::to_string).collect()),
        buildargs: build_args(req),
        labels: (!req.labels.is_empty())
            .then(|| req.labels.iter().cloned().collect::<HashMap<_, _>>()),
        target: req.target.clone().unwrap_or_default(),
        networkmode: req.network.clone(),
        version: BuilderVersion::BuilderBuildKit,
        session: Some(session.id.clone()),
        ..Default::default()
    };
    let secrets: Vec<String> = req
        .secrets
        .values()
        .map(|v| String::from_utf8_lossy(v.expose_secret()).into_owned())
        .collect();
    let mut log = BuildKitLog::new(secrets);
    let mut image_id = None;
    let mut stream =
        docker.build_image(options, None, Some(bollard::body_full(Default::default())));
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => match &info.aux {
                Some(BuildInfoAux::BuildKit(status)) => {
                    for line in log.observe(&progress::from_status(status)) {
                        line_out(&line);
                    }
                }
                Some(BuildInfoAux::Default(ImageId { id: Some(id) })) => {
                    image_id = Some(id.clone());
                }
                _ => {}
            },
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(step_failed(req, log.failed(), error));
            }
            Err(source) => {
                return Err(DockerError::Build {
                    image: req.image.to_string(),
                    source,
                });
            }
        }
    }
    drop(session);
    let id = image_id_or_inspect(docker, req, image_id).await?;
    Ok(BuiltImage {
        id,
        steps: log.counts().clone(),
        cached_steps: log.cached_names(),
    })
}

/// The error for a failed build: the step that failed, where it is in the Dockerfile, what
/// BuildKit said, and the last lines the step printed.
fn step_failed(req: &BuildRequest, failed: Option<FailedStep>, error: String) -> DockerError {
    let Some(failed) = failed else {
        return DockerError::BuildFailed {
            image: req.image.to_string(),
            message: error,
        };
    };
    let step = progress::step_of(&failed.name)
        .and_then(|(label, n)| req.parsed.as_ref()?.buildkit_step(label, n));
    DockerError::StepFailed(Box::new(StepFailure {
        image: req.image.to_string(),
        step: step.map_or_else(|| failed.name.clone(), |s| s.text.clone()),
        location: step.map(|s| dockerfile_location(req, s.line)),
        message: failed.error,
        tail: failed.tail,
    }))
}
