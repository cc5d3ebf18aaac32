//! Stage 4: the rollout verified. After the write-back landed (or found the overlay already up
//! to date), wait until Argo CD has synced our commit, or a later one that still sets our
//! image, and the application is Healthy with our image running; stop early, as superseded,
//! when a later commit replaced our image.

use std::time::Duration;

use anyhow::Result;

use super::deploy::Deployed;
use super::image::Image;
use crate::argocd::{self, AppState, Revision};
use crate::github::{Runner, line_out};
use crate::gitops::{History, Placement};
use crate::inputs::{Inputs, SetImage, Verify};
use crate::kustomize::{self, ImageEntry};

/// The fourth stage's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verified {
    /// What Argo CD said last.
    pub state: AppState,
    /// The image of the later commit that replaced ours, when one did.
    pub superseded_by: Option<String>,
}

/// Whether the stage runs: only after a real write-back (not a dry run, not `git-push: false`).
pub(super) fn applies(inputs: &Inputs, deployed: Option<&Deployed>) -> bool {
    inputs.verify.is_some()
        && !inputs.dry_run
        && inputs.git.push
        && deployed.is_some_and(|d| d.tip.is_some() && d.superseded.is_none())
}

pub(super) async fn verify(
    inputs: &Inputs,
    verify: &Verify,
    set: &SetImage,
    image: &Image,
    deployed: &Deployed,
    runner: &Runner,
) -> Result<Verified> {
    let (Some(tip), Some(remote)) = (&deployed.tip, &deployed.remote) else {
        unreachable!("applies() checks the write-back landed");
    };
    let settings = argocd::Settings {
        server: verify.server.clone(),
        token: verify.token.clone(),
        app: verify.app.clone(),
        namespace: verify.app_namespace.clone(),
        timeout: Duration::from_secs(u64::from(verify.timeout_seconds)),
        insecure: verify.insecure,
    };
    let ours = deployed.entry.clone();
    let spellings = spellings(&ours);
    let mut history = tokio::task::block_in_place(|| {
        History::open(
            &remote.url,
            &remote.branch,
            inputs.git.token.as_ref(),
            tip,
            Some(&inputs.workspace),
        )
    })?;
    let dir = set.kustomization.to_string_lossy().into_owned();
    let mut fetch_failed = false;
    let mut classify = |rev: &str| -> Revision {
        match tokio::task::block_in_place(|| history.place(rev)) {
            Ok(Placement::Same) => Revision::Ours,
            Ok(Placement::Earlier) => Revision::Earlier,
            Ok(Placement::Later) => {
                let read = history.reader(rev);
                match entry_at(&dir, &read, &set.image_name) {
                    Some(e) if same_image(&e, &ours) => Revision::LaterWithOurs,
                    Some(e) => Revision::LaterReplaced { image: render(&e) },
                    None => Revision::LaterReplaced {
                        image: format!("no image for {}", set.image_name),
                    },
                }
            }
            Err(e) => {
                if !fetch_failed {
                    fetch_failed = true;
                    let f = crate::failure::Failure::of(&e.into());
                    runner.warning(&format!(
                        "cannot read the branch to place Argo CD's revision {rev}: {}",
                        f.message
                    ));
                }
                Revision::Earlier
            }
        }
    };
    line_out(&format!(
        "argocd {}: waiting for {} at {} or later, up to {} s",
        verify.app,
        render(&ours),
        &tip[..tip.len().min(7)],
        verify.timeout_seconds
    ));
    let outcome = argocd::wait(&settings, &mut classify, &spellings, &mut |l| line_out(l)).await?;
    if let Some(newer) = &outcome.superseded_by {
        let at = outcome
            .state
            .revision
            .as_deref()
            .unwrap_or("a later commit");
        runner.notice(&format!(
            "{}: superseded before it was deployed: {at} deploys {newer}",
            image.reference
        ));
    }
    Ok(Verified {
        state: outcome.state,
        superseded_by: outcome.superseded_by,
    })
}

/// The image entry the overlay at a commit has for `name`.
fn entry_at(dir: &str, read: &dyn Fn(&str) -> Option<Vec<u8>>, name: &str) -> Option<ImageEntry> {
    let (path, src) = kustomize::kustomization_at(dir, read)?;
    kustomize::current_image(&path, &src, name).ok().flatten()
}

fn same_image(a: &ImageEntry, b: &ImageEntry) -> bool {
    a.new_name.as_deref().unwrap_or(&a.name) == b.new_name.as_deref().unwrap_or(&b.name)
        && a.new_tag == b.new_tag
        && a.digest == b.digest
}

/// The image as kustomize renders the entry into a pod: `name[:tag][@digest]`.
pub(super) fn render(e: &ImageEntry) -> String {
    let mut s = e.new_name.clone().unwrap_or_else(|| e.name.clone());
    if let Some(t) = &e.new_tag {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = &e.digest {
        s.push('@');
        s.push_str(d);
    }
    s
}

/// Every spelling a pod may show for our image.
fn spellings(e: &ImageEntry) -> Vec<String> {
    let name = e.new_name.clone().unwrap_or_else(|| e.name.clone());
    let mut out = vec![render(e)];
    if let (Some(t), Some(_)) = (&e.new_tag, &e.digest) {
        out.push(format!("{name}:{t}"));
    }
    if let Some(d) = &e.digest {
        out.push(format!("{name}@{d}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tag: Option<&str>, digest: Option<&str>) -> ImageEntry {
        ImageEntry {
            name: "auth-service".into(),
            new_name: Some("r.io/nova/auth-service".into()),
            new_tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        }
    }

    #[test]
    fn our_image_is_spelled_as_kustomize_renders_it_and_as_pods_may_show_it() {
        assert_eq!(
            spellings(&entry(Some("t1"), None)),
            ["r.io/nova/auth-service:t1"]
        );
        assert_eq!(
            spellings(&entry(Some("t1"), Some("sha256:ab"))),
            [
                "r.io/nova/auth-service:t1@sha256:ab",
                "r.io/nova/auth-service:t1",
                "r.io/nova/auth-service@sha256:ab"
            ]
        );
    }

    #[test]
    fn the_overlay_at_a_commit_is_read_whatever_the_kustomization_file_is_called() {
        let read = |path: &str| -> Option<Vec<u8>> {
            (path == "k8s/Kustomization").then(|| {
                b"images:\n- name: auth-service\n  newName: r.io/nova/auth-service\n  newTag: t2\n"
                    .to_vec()
            })
        };
        let e = entry_at("k8s", &read, "auth-service").unwrap();
        assert!(same_image(&e, &entry(Some("t2"), None)));
        assert!(!same_image(&e, &entry(Some("t1"), None)));
        assert_eq!(entry_at("k8s", &read, "user-service"), None);
    }
}
