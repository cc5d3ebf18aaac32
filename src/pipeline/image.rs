//! Stage 2: the image the job deploys. Built and pushed; or, with `skip-existing`, found in the
//! registry under its tag; or, with `build: false`, promoted as it is (its digest looked up
//! when `pin-digest` needs it).
//!
//! A build first exports a cache image for each stage the target depends on
//! (`<cache-repository>:cache-<stage>`), so that a fresh runner imports every stage's layers,
//! not only the final image's (which holds none of a builder stage's). `plan.rs` decides the
//! builder, the network, the secrets and the cache images; this file runs the builds.

mod plan;

use std::sync::Arc;

use anyhow::Result;

use self::plan::Plan;
use super::{StageError, Target};
use crate::docker::build::{self, BuildRequest, Builder};
use crate::docker::progress::StepCounts;
use crate::docker::{client, push};
use crate::github::{Runner, line_out};
use crate::inputs::{Build, CacheTo, Inputs};
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
    /// The builder that built it, when one did.
    pub builder: Option<Builder>,
    /// The Dockerfile steps of every build of the job, counted once each.
    pub steps: StepCounts,
    /// The stage cache images pushed.
    pub cache_images: Vec<ImageRef>,
}

impl Image {
    /// `registry/repository@digest`, when the digest is known.
    pub(crate) fn pinned(&self) -> Option<ImageRef> {
        self.digest.as_deref().map(|d| self.reference.at_digest(d))
    }

    fn not_built(reference: ImageRef, digest: Option<String>, note: &str) -> Image {
        Image {
            reference,
            digest,
            built: false,
            note: Some(note.into()),
            builder: None,
            steps: StepCounts::default(),
            cache_images: Vec::new(),
        }
    }
}

/// `build: false`: the image is promoted as it is.
pub(super) async fn promoted(inputs: &Inputs, target: &Target) -> Result<Image> {
    let mut image = Image::not_built(target.image.clone(), None, "promoted (build: false)");
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
        let mut repositories = vec![inputs.repository.as_str()];
        if build.cache_to == CacheTo::Auto && build.cache_repository != inputs.repository {
            repositories.push(&build.cache_repository);
        }
        for repository in repositories {
            a.ensure_repository(repository, inputs.create_repository, inputs.tag_mutability)
                .await?;
        }
    }
    if build.skip_existing
        && let Some(digest) = registry::existing_digest(&reference, creds).await?
    {
        return Ok(Image::not_built(
            reference,
            Some(digest),
            "skipped: tag already in the registry",
        ));
    }
    let docker = client::connect()?;
    client::negotiate(&docker).await?;
    let plan = Plan::new(
        inputs,
        build,
        &reference,
        &client::daemon(&docker).await?,
        runner,
    )?;
    let request = |image: &ImageRef, stage: Option<String>, labels| BuildRequest {
        context: inputs.workspace.join(&build.context),
        dockerfile: inputs.workspace.join(&build.dockerfile),
        dockerfile_name: build.dockerfile.display().to_string(),
        image: image.clone(),
        build_args: build.build_args.clone(),
        labels,
        target: stage,
        cache_from: plan.cache_from.clone(),
        builder: plan.builder,
        network: plan.network.clone(),
        inline_cache: build.cache_to == CacheTo::Auto,
        secrets: Arc::clone(&plan.secrets),
        parsed: plan.dockerfile.clone(),
    };
    let mut image = Image {
        builder: Some(plan.builder),
        built: true,
        ..Image::not_built(reference.clone(), None, "")
    };
    image.note = None;
    // The stages first: each is exported as its own image, which the final build then reuses
    // from the local cache, and a fresh runner from the registry.
    for (stage, cache_image) in plan.stage_images.iter().filter(|_| pushing) {
        line_out(&format!(
            "stage {}: cache image {cache_image}",
            stage.label()
        ));
        let built = build::build(
            &docker,
            &request(cache_image, Some(stage.label()), Vec::new()),
            creds,
            runner,
        )
        .await?;
        image.steps.merge(&built.steps);
        push::push(&docker, cache_image, creds, runner).await?;
        image.cache_images.push(cache_image.clone());
    }
    let built = build::build(
        &docker,
        &request(&reference, build.target.clone(), labels(inputs, build)),
        creds,
        runner,
    )
    .await?;
    image.steps.merge(&built.steps);
    if pushing {
        image.digest = Some(push::push(&docker, &reference, creds, runner).await?);
    } else {
        let why = if inputs.dry_run {
            "dry-run"
        } else {
            "push: false"
        };
        image.note = Some(format!("built, not pushed ({why}): no digest"));
    }
    Ok(image)
}

/// The user's labels after the OCI ones, so a user's value wins.
fn labels(inputs: &Inputs, build: &Build) -> Vec<(String, String)> {
    let source = inputs.github.source_url();
    let revision = inputs
        .github
        .sha
        .clone()
        .unwrap_or_else(|| inputs.tag.clone());
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut labels = build::oci_labels(source.as_deref(), &revision, &created);
    labels.extend(build.labels.iter().cloned());
    labels
}
