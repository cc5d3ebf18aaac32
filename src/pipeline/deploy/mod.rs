//! Stage 3: the image set in the overlay. With `git-push` (the default) the edit is re-applied on
//! the branch tip and pushed until it lands, unless the tip deploys a newer commit than ours
//! (the stale-write guard); without it, the workspace's file is edited in place for a later
//! step to commit.

mod guard;

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Result;

use self::guard::Decision;
use super::StageError;
use super::image::Image;
use crate::github::Runner;
use crate::gitops::{self, Ancestry, Superseded, WriteBack};
use crate::inputs::{self, GithubEnv, Inputs, SetImage};
use crate::kustomize::{self, Field, ImageEntry, ImageSpec};

/// Bounds the write-back loop as a whole, whatever `max-attempts` allows.
const WRITE_BACK_DEADLINE: Duration = Duration::from_secs(600);

/// The third stage's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Deployed {
    /// Whether the overlay changed (in a dry run: would have).
    pub changed: bool,
    /// The pushed commit, when one was pushed.
    pub commit: Option<String>,
    /// Push attempts made.
    pub attempts: u32,
    /// The branch tip the write-back ended on (ours, or one already up to date); `None`
    /// without a write-back.
    pub tip: Option<String>,
    /// Where the write-back went.
    pub remote: Option<Pushed>,
    /// The image entry this job sets, as the overlay has it after the edit.
    pub entry: ImageEntry,
    /// The newer deploy the guard found at the tip; nothing was written.
    pub superseded: Option<Superseded>,
}

/// The remote and branch written back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pushed {
    pub url: String,
    pub branch: String,
}

pub(super) fn set_image(
    inputs: &Inputs,
    set: &SetImage,
    image: &Image,
    runner: &Runner,
) -> Result<Deployed> {
    let spec = ImageSpec {
        name: set.image_name.clone(),
        new_name: Field::Set(image.reference.name()),
        new_tag: Field::Set(inputs.tag.clone()),
        digest: image
            .digest
            .clone()
            .filter(|_| set.pin_digest)
            .map_or(Field::Absent, Field::Set),
    };
    let entry = ImageEntry {
        name: spec.name.clone(),
        new_name: spec.new_name.resolve(None),
        new_tag: spec.new_tag.resolve(None),
        digest: spec.digest.resolve(None),
    };
    if !inputs.git.push {
        let path = inputs.workspace.join(&set.kustomization);
        let changed = kustomize::set_image_in_dir(&path, std::slice::from_ref(&spec))?;
        return Ok(Deployed {
            changed,
            commit: None,
            attempts: 0,
            tip: None,
            remote: None,
            entry,
            superseded: None,
        });
    }
    let opts = write_back_options(inputs, set, image)?;
    let dir = set.kustomization.to_string_lossy().into_owned();
    let mut said = HashSet::new();
    let mut guard = |read: &gitops::TipReader<'_>, ancestry: &mut dyn Ancestry| {
        if set.allow_rollback {
            return Ok(None);
        }
        let deployed = match kustomize::kustomization_at(&dir, read) {
            Some((path, src)) => kustomize::current_image(&path, &src, &set.image_name)?,
            None => None,
        };
        Ok(
            match guard::decide(&inputs.tag, deployed.as_ref(), ancestry)? {
                Decision::Write => None,
                Decision::Superseded(newer) => Some(newer),
                Decision::Undecided(why) => {
                    if said.insert(why.clone()) {
                        runner.notice(&format!(
                            "stale-write guard: cannot tell whether {} is older than what is deployed ({why}); writing it",
                            inputs.tag
                        ));
                    }
                    None
                }
                Decision::Diverged(why) => {
                    if said.insert(why.clone()) {
                        runner.warning(&format!(
                            "stale-write guard: {why}; writing {} over it",
                            inputs.tag
                        ));
                    }
                    None
                }
            },
        )
    };
    let mut edit = |read: &gitops::TipReader<'_>| edit_at_tip(&dir, read, &spec, &opts.branch);
    let outcome = gitops::write_back_guarded(&opts, &mut guard, &mut edit)
        .map_err(gitops::GitopsError::into_anyhow)?;
    if let Some(newer) = &outcome.superseded {
        runner.notice(&format!(
            "{}: not written: {} already deploys {} (commit {}), newer than ours; an older run never replaces a newer deploy (set allow-rollback: true to roll back on purpose)",
            image.reference,
            opts.branch,
            newer.tag,
            &newer.commit[..newer.commit.len().min(12)],
        ));
    }
    Ok(Deployed {
        changed: outcome.changed,
        commit: outcome.commit,
        attempts: outcome.attempts,
        tip: outcome.tip,
        remote: Some(Pushed {
            url: opts.remote_url.clone(),
            branch: opts.branch.clone(),
        }),
        entry,
        superseded: outcome.superseded,
    })
}

/// The `branch` input, else the branch `GITHUB_REF` names, else the checkout's branch.
fn branch(
    input: Option<&str>,
    github: &GithubEnv,
    checkout: impl FnOnce() -> Result<Option<String>, gitops::GitopsError>,
) -> Result<String> {
    Ok(match (input, github.ref_branch()) {
        (Some(b), _) => b.strip_prefix("refs/heads/").unwrap_or(b).to_string(),
        (None, Some(b)) => b.to_string(),
        (None, None) => checkout()?.ok_or(StageError::BranchUnknown)?,
    })
}

fn write_back_options(inputs: &Inputs, set: &SetImage, image: &Image) -> Result<WriteBack> {
    let ws = &inputs.workspace;
    let branch = branch(inputs.git.branch.as_deref(), &inputs.github, || {
        gitops::workspace_branch(ws)
    })?;
    let remote_url = match gitops::workspace_origin(ws)? {
        Some(url) => url,
        None => inputs
            .github
            .repository_url()
            .ok_or_else(|| StageError::RemoteUnknown {
                workspace: ws.display().to_string(),
            })?,
    };
    let sha = inputs.github.sha.clone().unwrap_or_default();
    let mut message = inputs::render_message(
        &inputs.git.commit_message,
        &[
            ("service", &inputs.service),
            ("tag", &inputs.tag),
            ("image", &image.reference.to_string()),
            ("digest", image.digest.as_deref().unwrap_or("")),
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
        workspace: Some(ws.clone()),
        contenders: contenders(&ws.join(&set.kustomization)),
    })
}

/// How many jobs are likely to write at once: one per image the workspace's overlay lists (a
/// one-job-per-service matrix); 0 when it cannot be read.
fn contenders(dir: &std::path::Path) -> u32 {
    let Ok(path) = kustomize::find_kustomization(dir) else {
        return 0;
    };
    std::fs::read(&path)
        .ok()
        .and_then(|src| kustomize::image_entries(&path.to_string_lossy(), &src).ok())
        .map_or(0, |e| u32::try_from(e.len()).unwrap_or(u32::MAX))
}

/// The pure re-apply step: find the kustomization in the fetched tip and set the image in it.
fn edit_at_tip(
    dir: &str,
    read: &gitops::TipReader<'_>,
    spec: &ImageSpec,
    branch: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    let Some((path, src)) = kustomize::kustomization_at(dir, read) else {
        return Err(StageError::KustomizationMissingAtTip {
            dir: dir.trim_end_matches('/').to_string(),
            branch: branch.to_string(),
        }
        .into());
    };
    let out = kustomize::set_images(&path, &src, std::slice::from_ref(spec))?;
    Ok(if out == src {
        Vec::new()
    } else {
        vec![(path, out)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github(git_ref: Option<&str>) -> GithubEnv {
        GithubEnv {
            git_ref: git_ref.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn the_branch_input_wins_then_github_ref_then_the_checkout() {
        let checkout = || Ok(Some("trunk".to_string()));
        let cases: [(Option<&str>, Option<&str>, &str); 5] = [
            (Some("release/v1"), Some("refs/heads/main"), "release/v1"),
            (Some("refs/heads/release/v1"), None, "release/v1"),
            (None, Some("refs/heads/main"), "main"),
            (None, Some("refs/tags/v1"), "trunk"),
            (None, None, "trunk"),
        ];
        for (input, git_ref, want) in cases {
            assert_eq!(
                branch(input, &github(git_ref), checkout).unwrap(),
                want,
                "{input:?} {git_ref:?}"
            );
        }
    }

    #[test]
    fn no_branch_anywhere_is_an_error_with_a_hint() {
        let err = branch(None, &github(Some("refs/pull/1/merge")), || Ok(None)).unwrap_err();
        let f = crate::failure::Failure::of(&err);
        assert!(f.message.contains("GITHUB_REF names no branch"), "{f:?}");
        assert_eq!(
            f.hint.as_deref(),
            Some("set the branch input, e.g. branch: main")
        );
    }

    #[test]
    fn the_edit_at_the_tip_finds_any_kustomization_name_and_skips_no_ops() {
        let spec = kustomize::parse_spec("app=r/app:v2").unwrap();
        let files = |path: &str| -> Option<Vec<u8>> {
            (path == "k8s/Kustomization").then(|| b"images:\n- name: app\n  newTag: v1\n".to_vec())
        };
        let out = edit_at_tip("k8s/", &files, &spec, "main").unwrap();
        assert_eq!(out[0].0, "k8s/Kustomization");
        let same = kustomize::parse_spec("app=r/app:v1").unwrap();
        let read_same = |path: &str| -> Option<Vec<u8>> {
            (path == "kustomization.yaml")
                .then(|| b"images:\n- name: app\n  newName: r/app\n  newTag: v1\n".to_vec())
        };
        assert!(
            edit_at_tip(".", &read_same, &same, "main")
                .unwrap()
                .is_empty()
        );
        let err = edit_at_tip("nope", &|_: &str| None, &spec, "main").unwrap_err();
        assert!(err.to_string().contains("on branch main"), "{err}");
    }
}
