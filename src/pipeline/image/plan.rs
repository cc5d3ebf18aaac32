//! What the builds of one job share, decided once: the builder, the network of `RUN` steps,
//! the build secrets, the Dockerfile's stages and the cache images for them, and the images to
//! take the cache from.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use secrecy::{ExposeSecret, SecretBox};

use crate::docker::DockerError;
use crate::docker::build::Builder;
use crate::docker::client::Daemon;
use crate::docker::dockerfile::{Dockerfile, StageId};
use crate::docker::session::{SecretValue, secret_text};
use crate::failure::Location;
use crate::github::Runner;
use crate::inputs::{Build, BuilderChoice, CacheFrom, CacheTo, Inputs};
use crate::kustomize;
use crate::pipeline::StageError;
use crate::registry::ImageRef;

pub(super) struct Plan {
    pub(super) builder: Builder,
    pub(super) network: Option<String>,
    pub(super) secrets: Arc<HashMap<String, SecretValue>>,
    pub(super) dockerfile: Option<Arc<Dockerfile>>,
    /// The stages the target depends on and the cache image each is exported as.
    pub(super) stage_images: Vec<(StageId, ImageRef)>,
    pub(super) cache_from: Vec<ImageRef>,
}

impl Plan {
    pub(super) fn new(
        inputs: &Inputs,
        build: &Build,
        reference: &ImageRef,
        daemon: &Daemon,
        runner: &Runner,
    ) -> Result<Plan> {
        let dockerfile = read_dockerfile(inputs, build, runner);
        let builder = builder(build, daemon, dockerfile.as_deref())?;
        let stage_images = match (&dockerfile, build.cache_to) {
            (Some(d), CacheTo::Auto) => stage_images(d, build, reference),
            _ => Vec::new(),
        };
        // The stage cache images are ours, so they are imported whatever else is named;
        // `cache-from: none` alone builds from nothing.
        let stages = stage_images.iter().map(|(_, image)| image.clone());
        let cache_from = match &build.cache_from {
            CacheFrom::Auto => deployed_image(inputs, runner)
                .into_iter()
                .chain(stages)
                .collect(),
            CacheFrom::None => Vec::new(),
            CacheFrom::Images(refs) => refs.iter().cloned().chain(stages).collect(),
        };
        Ok(Plan {
            builder,
            network: network(build, builder, daemon),
            secrets: Arc::new(secrets(inputs, build, runner)?),
            dockerfile,
            stage_images,
            cache_from,
        })
    }
}

/// The Dockerfile, parsed. One that cannot be read as a Dockerfile is built anyway (the
/// builder says what is wrong with it), just without per-stage cache images.
fn read_dockerfile(inputs: &Inputs, build: &Build, runner: &Runner) -> Option<Arc<Dockerfile>> {
    let text = std::fs::read_to_string(inputs.workspace.join(&build.dockerfile)).ok()?;
    match Dockerfile::parse(&text) {
        Ok(d) => Some(Arc::new(d)),
        Err(e) => {
            runner.warning(&format!(
                "{}: cannot read its stages ({e}); building without stage cache images",
                build.dockerfile.display()
            ));
            None
        }
    }
}

/// `builder: auto` takes BuildKit when the daemon has it. The classic builder refuses what
/// only BuildKit has, so that is an error before anything is sent.
fn builder(build: &Build, daemon: &Daemon, dockerfile: Option<&Dockerfile>) -> Result<Builder> {
    let builder = match (build.builder, daemon.buildkit) {
        (BuilderChoice::BuildKit, false) => {
            return Err(DockerError::NoBuildKit {
                host: crate::docker::client::docker_host(),
            }
            .into());
        }
        (BuilderChoice::Classic, _) | (BuilderChoice::Auto, false) => Builder::Classic,
        (BuilderChoice::BuildKit | BuilderChoice::Auto, true) => Builder::BuildKit,
    };
    if builder == Builder::Classic {
        if let Some(only) = dockerfile.and_then(Dockerfile::buildkit_only) {
            return Err(DockerError::NeedsBuildKit {
                feature: only.feature,
                location: Location {
                    file: build.dockerfile.display().to_string(),
                    line: Some(only.line),
                },
            }
            .into());
        }
        if !build.secrets.is_empty() || !build.secret_files.is_empty() {
            return Err(StageError::SecretsNeedBuildKit.into());
        }
    }
    Ok(builder)
}

/// The `network` input, else what the classic builder would give `RUN` on this daemon: with no
/// bridge network BuildKit needs `none` said, where the classic builder falls back by itself.
fn network(build: &Build, builder: Builder, daemon: &Daemon) -> Option<String> {
    match build.network {
        Some(n) => Some(n.mode().to_string()),
        None if builder == Builder::BuildKit && !daemon.bridge => Some("none".to_string()),
        None => None,
    }
}

/// The `secrets` values and the `secret-files` contents, each masked as soon as it is read.
fn secrets(
    inputs: &Inputs,
    build: &Build,
    runner: &Runner,
) -> Result<HashMap<String, SecretValue>> {
    let mut out = HashMap::new();
    for (id, value) in &build.secrets {
        out.insert(id.clone(), secret_text(value));
    }
    for (id, path) in &build.secret_files {
        let full = inputs.workspace.join(path);
        let bytes = std::fs::read(&full).map_err(|source| StageError::SecretFileUnreadable {
            id: id.clone(),
            path: path.display().to_string(),
            source,
        })?;
        let value = SecretBox::new(Box::new(bytes));
        runner.mask(&String::from_utf8_lossy(value.expose_secret()));
        out.insert(id.clone(), value);
    }
    Ok(out)
}

/// `<registry>/<cache-repository>:cache-<stage>` for each stage the target depends on.
fn stage_images(d: &Dockerfile, build: &Build, reference: &ImageRef) -> Vec<(StageId, ImageRef)> {
    let Ok(target) = d.target(build.target.as_deref()) else {
        return Vec::new();
    };
    d.dependencies(&target, &build.build_args)
        .into_iter()
        .map(|stage| {
            let image = ImageRef::tagged(
                reference.host(),
                &build.cache_repository,
                &format!("cache-{}", stage.label()),
            );
            (stage, image)
        })
        .collect()
}

/// `cache-from: auto`: the image the workspace's kustomization deploys now for this service.
fn deployed_image(inputs: &Inputs, runner: &Runner) -> Option<ImageRef> {
    let set = inputs.set_image.as_ref()?;
    let path = kustomize::find_kustomization(&inputs.workspace.join(&set.kustomization)).ok()?;
    let src = fs_err::read(&path).ok()?;
    let entry = match kustomize::current_image(&path.display().to_string(), &src, &set.image_name) {
        Ok(entry) => entry?,
        Err(e) => {
            let f = crate::failure::Failure::of(&e.into());
            runner.warning(&format!(
                "cache-from: auto found no deployed image: {}",
                f.located_message()
            ));
            return None;
        }
    };
    let name = entry.new_name.unwrap_or(entry.name);
    let text = match (entry.new_tag, entry.digest) {
        (_, Some(d)) => format!("{name}@{d}"),
        (Some(t), None) => format!("{name}:{t}"),
        (None, None) => return None,
    };
    match ImageRef::parse(&text) {
        Ok(r) => Some(r),
        Err(e) => {
            runner.warning(&format!(
                "cache-from: auto found no usable deployed image: {e}"
            ));
            None
        }
    }
}
