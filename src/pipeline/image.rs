//! Stage 2: the image the job deploys. Built and pushed; or, with `skip-existing`, found in the
//! registry under its tag; or, with `build: false`, promoted as it is (its digest looked up
//! when `pin-digest` needs it).

use anyhow::Result;

use super::{StageError, Target};
use crate::docker::build::{self, BuildRequest};
use crate::docker::{client, push};
use crate::github::Runner;
use crate::inputs::{Build, CacheFrom, Inputs};
use crate::kustomize;
use crate::registry::{self, ImageRef};

/// The second stage's value.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    /// `registry/repository:tag`.
    pub reference: ImageRef,
    /// `sha256:…`, when pushed or found in the registry.
    pub digest: Option<String>,
    pub built: bool,
    /// Why there is no build or no digest, e.g. "skipped: tag already in the registry".
    pub note: Option<String>,
}

impl Image {
    /// `registry/repository@digest`, when the digest is known.
    pub(crate) fn pinned(&self) -> Option<ImageRef> {
        self.digest.as_deref().map(|d| self.reference.at_digest(d))
    }
}

/// `build: false`: the image is promoted as it is.
pub(super) async fn promoted(inputs: &Inputs, target: &Target) -> Result<Image> {
    let mut image = Image {
        reference: target.image.clone(),
        digest: None,
        built: false,
        note: Some("promoted (build: false)".into()),
    };
    if inputs.set_image.as_ref().is_some_and(|s| s.pin_digest) {
        image.digest =
            registry::existing_digest(&target.image, target.credentials.as_ref()).await?;
        if image.digest.is_none() {
            return Err(StageError::TagNotPushed {
                image: target.image.to_string(),
            }
            .into());
        }
    }
    Ok(image)
}

pub(super) async fn build(
    inputs: &Inputs,
    build: &Build,
    target: &Target,
    runner: &Runner,
) -> Result<Image> {
    let reference = target.image.clone();
    let creds = target.credentials.as_ref();
    let pushing = build.push && !inputs.dry_run;
    // A dry run creates nothing, and a missing repository only matters to a push.
    if let Some(a) = target
        .aws
        .as_ref()
        .filter(|_| pushing && inputs.registry_login.is_none())
    {
        a.ensure_repository(
            &inputs.repository,
            inputs.create_repository,
            inputs.tag_mutability,
        )
        .await?;
    }
    if build.skip_existing
        && let Some(digest) = registry::existing_digest(&reference, creds).await?
    {
        return Ok(Image {
            reference,
            digest: Some(digest),
            built: false,
            note: Some("skipped: tag already in the registry".into()),
        });
    }
    let docker = client::connect()?;
    let request = BuildRequest {
        context: inputs.workspace.join(&build.context),
        dockerfile: inputs.workspace.join(&build.dockerfile),
        image: reference.clone(),
        build_args: build.build_args.clone(),
        labels: labels(inputs, build),
        target: build.target.clone(),
        cache_from: cache_from(inputs, build, runner),
    };
    build::build(&docker, &request, creds, runner).await?;
    if pushing {
        let digest = push::push(&docker, &reference, creds, runner).await?;
        return Ok(Image {
            reference,
            digest: Some(digest),
            built: true,
            note: None,
        });
    }
    let why = if inputs.dry_run {
        "dry-run"
    } else {
        "push: false"
    };
    Ok(Image {
        reference,
        digest: None,
        built: true,
        note: Some(format!("built, not pushed ({why}): no digest")),
    })
}

/// The user's labels after the OCI ones, so a user's value wins.
fn labels(inputs: &Inputs, build: &Build) -> Vec<(String, String)> {
    let source = inputs.github.source_url();
    let revision = inputs
        .github
        .sha
        .clone()
        .unwrap_or_else(|| inputs.tag.clone());
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut labels = build::oci_labels(source.as_deref(), &revision, &created);
    labels.extend(build.labels.iter().cloned());
    labels
}

fn cache_from(inputs: &Inputs, build: &Build, runner: &Runner) -> Vec<ImageRef> {
    match &build.cache_from {
        CacheFrom::Auto => deployed_image(inputs, runner).into_iter().collect(),
        CacheFrom::None => Vec::new(),
        CacheFrom::Images(refs) => refs.clone(),
    }
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
