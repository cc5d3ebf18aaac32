//! What the job reports, assembled from the stages' values at the end: the step outputs and the
//! markdown summary with seconds per stage.

use std::time::Duration;

use crate::inputs::Inputs;
use crate::pipeline::{Deployed, Image, Target, Verified};

/// Every step output, in the contract's order; `action.yml` declares exactly these (a test checks).
pub const OUTPUTS: &[&str] = &[
    "image",
    "digest",
    "image-ref",
    "built",
    "changed",
    "commit",
    "attempts",
    "aws-account-id",
    "builder",
    "sync-status",
    "health-status",
    "synced-revision",
    "superseded",
];

/// The job's results, written as step outputs and summarized.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub service: String,
    pub image: String,
    /// `registry/repository@digest`.
    pub image_ref: Option<String>,
    pub digest: Option<String>,
    pub built: bool,
    /// Why no digest or no build, e.g. "skipped: tag already in registry".
    pub build_note: Option<String>,
    pub changed: bool,
    pub commit: Option<String>,
    pub attempts: u32,
    pub aws_account_id: Option<String>,
    /// `buildkit` or `classic`, when this job built.
    pub builder: Option<&'static str>,
    /// Dockerfile steps of the job's builds: (cached, total).
    pub steps: (usize, usize),
    /// Stage cache images pushed.
    pub cache_images: Vec<String>,
    /// Argo CD's last word: sync status, health status, synced revision.
    pub rollout: Option<(String, String, Option<String>)>,
    /// The newer image that replaced ours, when one did.
    pub superseded_by: Option<String>,
    pub stages: Vec<(&'static str, Duration)>,
}

impl Report {
    pub(crate) fn new(
        inputs: &Inputs,
        target: &Target,
        image: &Image,
        deployed: Option<&Deployed>,
        verified: Option<&Verified>,
        stages: Vec<(&'static str, Duration)>,
    ) -> Report {
        Report {
            service: inputs.service.clone(),
            image: image.reference.to_string(),
            image_ref: image.pinned().map(|r| r.to_string()),
            digest: image.digest.clone(),
            built: image.built,
            build_note: image.note.clone(),
            changed: deployed.is_some_and(|d| d.changed),
            commit: deployed.and_then(|d| d.commit.clone()),
            attempts: deployed.map_or(0, |d| d.attempts),
            aws_account_id: target.aws.as_ref().map(|a| a.account_id.clone()),
            builder: image.builder.map(|b| b.name()),
            steps: (image.steps.cached(), image.steps.total()),
            cache_images: image.cache_images.iter().map(ToString::to_string).collect(),
            rollout: verified.map(|v| {
                (
                    v.state.sync.clone(),
                    v.state.health.clone(),
                    v.state.revision.clone(),
                )
            }),
            superseded_by: deployed
                .and_then(|d| d.superseded.as_ref())
                .map(|s| {
                    format!(
                        "{}:{} (commit {})",
                        image.reference.name(),
                        s.tag,
                        &s.commit[..s.commit.len().min(12)]
                    )
                })
                .or_else(|| verified.and_then(|v| v.superseded_by.clone())),
            stages,
        }
    }

    /// `registry/repository@digest`, when the digest is known.
    pub(crate) fn image_ref(&self) -> Option<String> {
        self.image_ref.clone()
    }

    /// The step outputs, in the contract's order.
    pub fn outputs(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("image", self.image.clone()),
            ("digest", self.digest.clone().unwrap_or_default()),
            ("image-ref", self.image_ref().unwrap_or_default()),
            ("built", self.built.to_string()),
            ("changed", self.changed.to_string()),
            ("commit", self.commit.clone().unwrap_or_default()),
            ("attempts", self.attempts.to_string()),
        ];
        if let Some(id) = &self.aws_account_id {
            out.push(("aws-account-id", id.clone()));
        }
        out.push(("builder", self.builder.unwrap_or_default().to_string()));
        let (sync, health, revision) = self.rollout.clone().unwrap_or_default();
        out.push(("sync-status", sync));
        out.push(("health-status", health));
        out.push(("synced-revision", revision.unwrap_or_default()));
        out.push(("superseded", self.superseded_by.is_some().to_string()));
        out
    }

    /// One markdown table row per job; jobs of a matrix append to the same summary page.
    pub fn summary_markdown(&self) -> String {
        let image = self.image_ref().unwrap_or_else(|| self.image.clone());
        let mut build = match (&self.build_note, self.built) {
            (Some(note), _) => note.clone(),
            (None, true) => "built".into(),
            (None, false) => "skipped".into(),
        };
        if let Some(builder) = self.builder {
            let (cached, total) = self.steps;
            build.push_str(&format!(" ({builder}, {cached}/{total} steps cached)"));
        }
        let commit = match (&self.commit, self.changed) {
            (Some(c), _) => format!("`{}`", &c[..c.len().min(12)]),
            (None, false) if self.superseded_by.is_some() => "superseded".into(),
            (None, false) => "up to date".into(),
            (None, true) => "not pushed".into(),
        };
        let stages = self
            .stages
            .iter()
            .map(|(name, d)| format!("{name} {:.1}s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut md = format!(
            "### deploy-action: {}\n\n| service | image | build | commit | attempts | seconds per stage |\n|---|---|---|---|---|---|\n| {} | `{}` | {} | {} | {} | {} |\n\n",
            self.service, self.service, image, build, commit, self.attempts, stages
        );
        if let Some((sync, health, revision)) = &self.rollout {
            let at = revision
                .as_deref()
                .map(|r| format!(" at `{}`", &r[..r.len().min(12)]))
                .unwrap_or_default();
            md.push_str(&format!("- Argo CD: {sync}{at}, {health}\n"));
        }
        if let Some(newer) = &self.superseded_by {
            md.push_str(&format!("- superseded: a later commit deploys `{newer}`\n"));
        }
        if self.rollout.is_some() || self.superseded_by.is_some() {
            md.push('\n');
        }
        if !self.cache_images.is_empty() {
            let list: Vec<String> = self.cache_images.iter().map(|i| format!("`{i}`")).collect();
            md.push_str(&format!("- cache images pushed: {}\n\n", list.join(", ")));
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_digest_the_image_ref_is_empty() {
        let r = Report {
            image: "r/a:1".into(),
            ..Default::default()
        };
        assert_eq!(
            r.outputs()
                .iter()
                .find(|(k, _)| *k == "image-ref")
                .unwrap()
                .1,
            ""
        );
    }

    #[test]
    fn the_account_id_is_output_only_when_known() {
        let r = Report::default();
        assert!(!r.outputs().iter().any(|(k, _)| *k == "aws-account-id"));
    }

    #[test]
    fn the_summary_names_the_builder_its_cached_steps_and_the_cache_images() {
        let r = Report {
            service: "auth-service".into(),
            image: "r/auth:v1".into(),
            built: true,
            builder: Some("buildkit"),
            steps: (7, 9),
            cache_images: vec!["r/auth:cache-planner".into(), "r/auth:cache-builder".into()],
            ..Default::default()
        };
        let md = r.summary_markdown();
        assert!(
            md.contains("| built (buildkit, 7/9 steps cached) |"),
            "{md}"
        );
        assert!(
            md.contains("- cache images pushed: `r/auth:cache-planner`, `r/auth:cache-builder`"),
            "{md}"
        );
        assert!(r.outputs().contains(&("builder", "buildkit".to_string())));
    }

    #[test]
    fn the_summary_is_a_table_with_stage_seconds() {
        let r = Report {
            service: "auth-service".into(),
            image: "r/auth:v1".into(),
            changed: true,
            commit: Some("0123456789abcdef".into()),
            attempts: 2,
            stages: vec![
                ("inputs", Duration::from_millis(10)),
                ("git", Duration::from_millis(1500)),
            ],
            ..Default::default()
        };
        let md = r.summary_markdown();
        assert!(md.contains("| auth-service | `r/auth:v1` | skipped | `0123456789ab` | 2 | inputs 0.0s, git 1.5s |"), "{md}");
    }
}
