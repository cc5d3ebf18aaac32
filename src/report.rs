//! What the job reports: the step outputs and the markdown summary with seconds per stage.

use std::time::{Duration, Instant};

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
];

/// The job's results, written as step outputs and summarized.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub service: String,
    pub image: String,
    pub digest: Option<String>,
    pub built: bool,
    /// Why no digest or no build, e.g. "skipped: tag already in registry".
    pub build_note: Option<String>,
    pub changed: bool,
    pub commit: Option<String>,
    pub attempts: u32,
    pub aws_account_id: Option<String>,
    pub stages: Vec<(&'static str, Duration)>,
}

impl Report {
    /// `registry/repository@digest`, when the digest is known.
    pub fn image_ref(&self) -> Option<String> {
        let digest = self.digest.as_ref()?;
        let repo = strip_tag(&self.image);
        Some(format!("{repo}@{digest}"))
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
        out
    }

    /// One markdown table row per job; jobs of a matrix append to the same summary page.
    pub fn summary_markdown(&self) -> String {
        let image = self.image_ref().unwrap_or_else(|| self.image.clone());
        let build = match (&self.build_note, self.built) {
            (Some(note), _) => note.clone(),
            (None, true) => "built".into(),
            (None, false) => "skipped".into(),
        };
        let commit = match (&self.commit, self.changed) {
            (Some(c), _) => format!("`{}`", &c[..c.len().min(12)]),
            (None, false) => "up to date".into(),
            (None, true) => "not pushed".into(),
        };
        let stages = self
            .stages
            .iter()
            .map(|(name, d)| format!("{name} {:.1}s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "### deploy-action: {}\n\n| service | image | build | commit | attempts | seconds per stage |\n|---|---|---|---|---|---|\n| {} | `{}` | {} | {} | {} | {} |\n\n",
            self.service, self.service, image, build, commit, self.attempts, stages
        )
    }
}

fn strip_tag(image: &str) -> &str {
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => &image[..last_slash + i],
        None => image,
    }
}

/// Times the pipeline's stages for the summary.
#[derive(Debug)]
pub struct Stopwatch {
    started: Instant,
}

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch {
            started: Instant::now(),
        }
    }

    /// Records the stage that just ended and starts the next one.
    pub fn lap(&mut self, report: &mut Report, stage: &'static str) {
        let now = Instant::now();
        report.stages.push((stage, now - self.started));
        self.started = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_ref_replaces_the_tag_with_the_digest() {
        let r = Report {
            image: "127.0.0.1:5000/nova/auth:v1".into(),
            digest: Some("sha256:ab".into()),
            ..Default::default()
        };
        assert_eq!(r.image_ref().unwrap(), "127.0.0.1:5000/nova/auth@sha256:ab");
    }

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

/// A failure as the user sees it: one message, where it happened, and the usual cause.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub message: String,
    pub hint: Option<String>,
    pub file: Option<String>,
    pub line: Option<usize>,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            hint: None,
            file: None,
            line: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    /// Splits a `message\nhint: …` display into its parts.
    pub fn from_display(text: &str) -> Failure {
        match text.split_once("\nhint: ") {
            Some((m, h)) => Failure::new(m).hint(h),
            None => Failure::new(text),
        }
    }

    /// The failure from an error chain: a [`Failure`] inside it, or the chain as one line.
    pub fn of(err: &anyhow::Error) -> Failure {
        if let Some(f) = err.downcast_ref::<Failure>() {
            let mut f = Failure {
                message: f.message.clone(),
                hint: f.hint.clone(),
                file: f.file.clone(),
                line: f.line,
            };
            // Context added above the failure names what the pipeline was doing.
            let outer: Vec<String> = err
                .chain()
                .take_while(|e| e.downcast_ref::<Failure>().is_none())
                .map(|e| e.to_string())
                .collect();
            if !outer.is_empty() {
                f.message = format!("{}: {}", outer.join(": "), f.message);
            }
            return f;
        }
        Failure::from_display(&format!("{err:#}"))
    }

    /// The whole text: message, then `hint: …`.
    pub fn text(&self) -> String {
        match &self.hint {
            Some(h) => format!("{}\nhint: {h}", self.message),
            None => self.message.clone(),
        }
    }
}
