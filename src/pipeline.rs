//! The whole job, in order: inputs → credentials → build and push → set image → write back → report.

use anyhow::Result;
use secrecy::ExposeSecret;

use crate::aws::{self, AwsSession};
use crate::docker::build::{self, BuildRequest};
use crate::docker::client::{self, Credentials};
use crate::docker::push;
use crate::github::Runner;
use crate::gitops::{self, WriteBack};
use crate::inputs::{self, Build, CacheFrom, Inputs, Registry};
use crate::kustomize::{self, Field, ImageSpec};
use crate::registry;
use crate::report::{Failure, Report, Stopwatch};

/// Bounds the write-back loop as a whole, whatever `max-attempts` allows.
const WRITE_BACK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

pub async fn run(inputs: Inputs, runner: &Runner) -> Result<Report> {
    for secret in inputs.secrets() {
        runner.mask(secret.expose_secret());
    }
    let mut clock = Stopwatch::start();
    let mut report = Report {
        service: inputs.service.clone(),
        ..Default::default()
    };

    // 1. Credentials, fetched only when a stage needs them.
    let aws = match needs_aws(&inputs) {
        true => Some(aws::session(&inputs.aws, runner).await?),
        false => None,
    };
    report.aws_account_id = aws.as_ref().map(|a| a.account_id.clone());
    let host = match (&inputs.registry, &aws) {
        (Registry::Host(h), _) => h.clone(),
        (Registry::EcrDefault, Some(a)) => a.default_registry(),
        (Registry::EcrDefault, None) => unreachable!("needs_aws holds for the default registry"),
    };
    report.image = format!("{host}/{}:{}", inputs.repository, inputs.tag);
    let creds = registry_credentials(&inputs, aws.as_ref(), runner).await?;
    clock.lap(&mut report, "credentials");

    // 2. Build and push, or find the image a promotion pins.
    if let Some(build) = &inputs.build {
        build_and_push(
            &inputs,
            build,
            aws.as_ref(),
            creds.as_ref(),
            &mut report,
            runner,
        )
        .await?;
        clock.lap(&mut report, "build");
    } else {
        report.build_note = Some("promoted (build: false)".into());
        if inputs.set_image.as_ref().is_some_and(|s| s.pin_digest) {
            report.digest = registry::existing_digest(&report.image, creds.as_ref()).await?;
            if report.digest.is_none() {
                return Err(Failure::new(format!(
                    "{} is not in the registry, so there is no digest to pin",
                    report.image
                ))
                .hint("promote a tag that was pushed, or set pin-digest: false")
                .into());
            }
            clock.lap(&mut report, "registry");
        }
    }

    // 3. Set the image on the branch tip and push, re-applying until it lands.
    if let Some(set) = &inputs.set_image {
        let spec = ImageSpec {
            name: set.image_name.clone(),
            new_name: Field::Set(format!("{host}/{}", inputs.repository)),
            new_tag: Field::Set(inputs.tag.clone()),
            digest: report
                .digest
                .clone()
                .filter(|_| set.pin_digest)
                .map_or(Field::Absent, Field::Set),
        };
        let dir = set.kustomization.to_string_lossy().into_owned();
        if inputs.git.push {
            let opts = write_back_options(&inputs, &report)?;
            let mut edit =
                |read: &gitops::TipReader<'_>| edit_at_tip(&dir, read, &spec, &opts.branch);
            let outcome = tokio::task::block_in_place(|| gitops::write_back(&opts, &mut edit))
                .map_err(gitops_failure)?;
            report.changed = outcome.changed;
            report.commit = outcome.commit;
            report.attempts = outcome.attempts;
        } else {
            let path = inputs.workspace.join(&set.kustomization);
            report.changed = kustomize::set_image_in_dir(&path, std::slice::from_ref(&spec))
                .map_err(Failure::from)?;
        }
        clock.lap(&mut report, "set-image");
    }
    Ok(report)
}

/// AWS is needed for the default (ECR) registry's name, and for ECR credentials when an image
/// is built or its digest looked up without an explicit username.
fn needs_aws(inputs: &Inputs) -> bool {
    match &inputs.registry {
        Registry::EcrDefault => true,
        Registry::Host(h) => {
            needs_registry(inputs)
                && inputs.registry_login.is_none()
                && (Registry::is_ecr_host(h) || inputs.aws.role_to_assume.is_some())
        }
    }
}

/// The registry is talked to when an image is built, or when a promotion pins its digest.
fn needs_registry(inputs: &Inputs) -> bool {
    inputs.build.is_some() || inputs.set_image.as_ref().is_some_and(|s| s.pin_digest)
}

async fn registry_credentials(
    inputs: &Inputs,
    aws: Option<&AwsSession>,
    runner: &Runner,
) -> Result<Option<Credentials>> {
    if let Some(login) = &inputs.registry_login {
        return Ok(Some(Credentials {
            username: login.username.clone(),
            password: login.password.clone(),
        }));
    }
    match aws {
        Some(a) if needs_registry(inputs) => {
            let login = a.ecr_login(runner).await?;
            Ok(Some(Credentials {
                username: login.username,
                password: login.password,
            }))
        }
        _ => Ok(None),
    }
}

async fn build_and_push(
    inputs: &Inputs,
    build: &Build,
    aws: Option<&AwsSession>,
    creds: Option<&Credentials>,
    report: &mut Report,
    runner: &Runner,
) -> Result<()> {
    let pushing = build.push && !inputs.dry_run;
    // A dry run creates nothing, and a missing repository only matters to a push.
    if let Some(a) = aws.filter(|_| pushing && inputs.registry_login.is_none()) {
        a.ensure_repository(
            &inputs.repository,
            inputs.create_repository,
            inputs.tag_mutability,
        )
        .await?;
    }
    if build.skip_existing
        && let Some(digest) = registry::existing_digest(&report.image, creds).await?
    {
        report.digest = Some(digest);
        report.build_note = Some("skipped: tag already in the registry".into());
        return Ok(());
    }
    let docker = client::connect()?;
    let cache_from = match &build.cache_from {
        CacheFrom::Auto => deployed_image(inputs, runner).into_iter().collect(),
        CacheFrom::None => Vec::new(),
        CacheFrom::Images(refs) => refs.clone(),
    };
    let source = inputs.github.source_url();
    let revision = inputs
        .github
        .sha
        .clone()
        .unwrap_or_else(|| inputs.tag.clone());
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut labels = build::oci_labels(source.as_deref(), &revision, &created);
    labels.extend(build.labels.iter().cloned());
    let request = BuildRequest {
        context: inputs.workspace.join(&build.context),
        dockerfile: inputs.workspace.join(&build.dockerfile),
        image: report.image.clone(),
        build_args: build.build_args.clone(),
        labels,
        target: build.target.clone(),
        cache_from,
    };
    build::build(&docker, &request, creds, runner).await?;
    report.built = true;
    if pushing {
        report.digest = Some(push::push(&docker, &report.image, creds, runner).await?);
    } else {
        let why = if inputs.dry_run {
            "dry-run"
        } else {
            "push: false"
        };
        report.build_note = Some(format!("built, not pushed ({why}): no digest"));
    }
    Ok(())
}

/// `cache-from: auto`: the image the workspace's kustomization deploys now for this service.
fn deployed_image(inputs: &Inputs, runner: &Runner) -> Option<String> {
    let set = inputs.set_image.as_ref()?;
    let path = kustomize::find_kustomization(&inputs.workspace.join(&set.kustomization)).ok()?;
    let src = fs_err::read(&path).ok()?;
    match kustomize::current_image(&path.display().to_string(), &src, &set.image_name) {
        Ok(Some(entry)) => {
            let name = entry.new_name.unwrap_or(entry.name);
            match (entry.new_tag, entry.digest) {
                (_, Some(d)) => Some(format!("{name}@{d}")),
                (Some(t), None) => Some(format!("{name}:{t}")),
                (None, None) => None,
            }
        }
        Ok(None) => None,
        Err(e) => {
            runner.warning(&format!("cache-from: auto found no deployed image: {e}"));
            None
        }
    }
}

fn write_back_options(inputs: &Inputs, report: &Report) -> Result<WriteBack> {
    let ws = &inputs.workspace;
    let branch = match (&inputs.git.branch, inputs.github.ref_branch()) {
        (Some(b), _) => b.strip_prefix("refs/heads/").unwrap_or(b).to_string(),
        (None, Some(b)) => b.to_string(),
        (None, None) => gitops::workspace_branch(ws)
            .map_err(gitops_failure)?
            .ok_or_else(|| {
                Failure::new("branch: GITHUB_REF names no branch and the workspace is not on one")
                    .hint("set the branch input, e.g. branch: main")
            })?,
    };
    let remote_url = match gitops::workspace_origin(ws).map_err(gitops_failure)? {
        Some(url) => url,
        None => inputs.github.repository_url().ok_or_else(|| {
            Failure::new(format!(
                "no remote: {} has no origin and GITHUB_SERVER_URL/GITHUB_REPOSITORY are unset",
                ws.display()
            ))
            .hint("run actions/checkout first, or run inside a clone")
        })?,
    };
    let sha = inputs.github.sha.clone().unwrap_or_default();
    let mut message = inputs::render_message(
        &inputs.git.commit_message,
        &[
            ("service", &inputs.service),
            ("tag", &inputs.tag),
            ("image", &report.image),
            ("digest", report.digest.as_deref().unwrap_or("")),
            ("sha", &sha),
        ],
    );
    if inputs.git.skip_ci {
        message.push_str(" [skip ci]");
    }
    Ok(WriteBack {
        remote_url,
        branch,
        message,
        author_name: inputs.git.user_name.clone(),
        author_email: inputs.git.user_email.clone(),
        token: inputs.git.token.clone(),
        max_attempts: inputs.git.max_attempts,
        deadline: WRITE_BACK_DEADLINE,
        dry_run: inputs.dry_run,
    })
}

/// The pure re-apply step: find the kustomization in the fetched tip and set the image in it.
fn edit_at_tip(
    dir: &str,
    read: &gitops::TipReader<'_>,
    spec: &ImageSpec,
    branch: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    let dir = dir.trim_end_matches('/');
    for name in kustomize::KUSTOMIZATION_FILES {
        let path = if dir == "." {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        };
        if let Some(src) = read(&path) {
            let out = kustomize::set_images(&path, &src, std::slice::from_ref(spec))
                .map_err(Failure::from)?;
            return Ok(if out == src {
                Vec::new()
            } else {
                vec![(path, out)]
            });
        }
    }
    Err(Failure::new(format!(
        "{dir}: no kustomization.yaml, kustomization.yml or Kustomization on branch {branch}"
    ))
    .hint("the kustomization input is relative to the repository root")
    .into())
}

impl From<kustomize::EditError> for Failure {
    fn from(e: kustomize::EditError) -> Failure {
        Failure {
            message: e.message(),
            hint: e.hint().map(Into::into),
            file: Some(e.file().into()),
            line: e.line(),
        }
    }
}

/// Keeps an edit's own failure (with its file:line) and adds the hint for known git causes.
fn gitops_failure(e: gitops::GitopsError) -> anyhow::Error {
    if let gitops::GitopsError::Edit(inner) = e {
        return inner;
    }
    let mut f = Failure::from_display(&e.to_string());
    if f.hint.is_none() {
        f.hint = e.hint().map(str::to_string);
    }
    f.into()
}
