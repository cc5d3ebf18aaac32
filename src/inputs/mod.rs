//! Action inputs: the raw `INPUT_*` environment parsed once into a typed, validated [`Inputs`],
//! with every problem reported together.
//!
//! [`INPUTS`] is the table `action.yml` mirrors; `parse.rs` reads it one section at a time
//! (job, AWS, registry, build, set-image, git); `check.rs` holds the grammars of the values.

mod build;
mod check;
mod parse;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use secrecy::SecretString;

use crate::registry::{Credentials, ImageRef};

/// Every environment variable the binary reads, in one place.
pub mod env {
    pub const GITHUB_ACTIONS: &str = "GITHUB_ACTIONS";
    pub const GITHUB_SHA: &str = "GITHUB_SHA";
    pub const GITHUB_REF: &str = "GITHUB_REF";
    pub const GITHUB_WORKSPACE: &str = "GITHUB_WORKSPACE";
    pub const GITHUB_SERVER_URL: &str = "GITHUB_SERVER_URL";
    pub const GITHUB_REPOSITORY: &str = "GITHUB_REPOSITORY";
    pub const GITHUB_OUTPUT: &str = "GITHUB_OUTPUT";
    pub const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";
    pub const AWS_REGION: &str = "AWS_REGION";
    pub(crate) const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
}

/// Each declared input with its default; `action.yml` declares exactly these (a test checks).
/// An empty default means "no value" or a default computed at run time (see [`Inputs::parse`]).
pub const INPUTS: &[(&str, &str)] = &[
    ("service", ""),
    ("tag", ""),
    ("dry-run", "false"),
    ("aws-region", ""),
    ("role-to-assume", ""),
    ("role-session-name", "GitHubActions"),
    ("role-duration-seconds", "3600"),
    ("audience", "sts.amazonaws.com"),
    ("registry", ""),
    ("registry-username", ""),
    ("registry-password", ""),
    ("repository", ""),
    ("create-repository", "false"),
    ("tag-mutability", "MUTABLE"),
    ("build", "true"),
    ("context", "."),
    ("dockerfile", "Dockerfile"),
    ("build-args", ""),
    ("labels", ""),
    ("target", ""),
    ("cache-from", "auto"),
    ("cache-to", "auto"),
    ("cache-repository", ""),
    ("builder", "auto"),
    ("network", ""),
    ("secrets", ""),
    ("secret-files", ""),
    ("skip-existing", "true"),
    ("push", "true"),
    ("set-image", "true"),
    ("kustomization", "k8s/infrastructure/overlays/staging"),
    ("image-name", ""),
    ("pin-digest", "false"),
    ("allow-rollback", "false"),
    ("git-push", "true"),
    ("branch", ""),
    (
        "commit-message",
        "chore(staging): update {service} image to {tag}",
    ),
    ("skip-ci", "false"),
    ("git-user-name", "github-actions[bot]"),
    (
        "git-user-email",
        "41898282+github-actions[bot]@users.noreply.github.com",
    ),
    ("github-token", ""),
    ("max-attempts", "30"),
    ("argocd-server", ""),
    ("argocd-token", ""),
    ("argocd-app", ""),
    ("argocd-app-namespace", ""),
    ("argocd-timeout", "600"),
    ("argocd-insecure", "false"),
];

/// The runner's name for an input's variable: `INPUT_` + upper-cased name, spaces as `_`, hyphens kept.
pub(crate) fn input_var(name: &str) -> String {
    format!("INPUT_{}", name.replace(' ', "_").to_uppercase())
}

/// The placeholders `commit-message` may use.
pub(crate) const MESSAGE_PLACEHOLDERS: &[&str] = &["service", "tag", "image", "digest", "sha"];

/// Validated inputs: everything the pipeline needs, already checked.
#[derive(Debug)]
pub struct Inputs {
    pub service: String,
    pub tag: String,
    pub dry_run: bool,
    pub aws: Aws,
    pub registry: Registry,
    /// `registry-username` and `registry-password`, when given.
    pub registry_login: Option<Credentials>,
    pub repository: String,
    pub create_repository: bool,
    pub tag_mutability: TagMutability,
    /// `None` with `build: false`: promote an image that already exists.
    pub build: Option<Build>,
    /// `None` with `set-image: false`: a build-only job.
    pub set_image: Option<SetImage>,
    pub git: Git,
    /// `None` without `argocd-server`: no verification.
    pub verify: Option<Verify>,
    pub workspace: PathBuf,
    pub github: GithubEnv,
}

/// Argo CD verification: where the Application is and how long to wait for it.
#[derive(Debug)]
pub struct Verify {
    /// `https://argocd.example.com`, no trailing `/`.
    pub server: String,
    pub token: Option<SecretString>,
    pub app: String,
    pub app_namespace: Option<String>,
    pub timeout_seconds: u32,
    pub insecure: bool,
}

#[derive(Debug)]
pub struct Aws {
    pub region: Option<String>,
    pub role_to_assume: Option<String>,
    pub role_session_name: String,
    pub role_duration_seconds: u32,
    pub audience: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registry {
    /// `<account>.dkr.ecr.<region>.amazonaws.com`, known once AWS credentials are.
    EcrDefault,
    /// An explicit host (ECR or not), e.g. `127.0.0.1:5000`.
    Host(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagMutability {
    Mutable,
    Immutable,
}

#[derive(Debug)]
pub struct Build {
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    pub build_args: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub target: Option<String>,
    pub cache_from: CacheFrom,
    pub cache_to: CacheTo,
    /// Where the stage cache images go (`<cache-repository>:cache-<stage>`).
    pub cache_repository: String,
    pub builder: BuilderChoice,
    pub network: Option<Network>,
    /// `secrets`: id and value.
    pub secrets: Vec<(String, SecretString)>,
    /// `secret-files`: id and workspace-relative path.
    pub secret_files: Vec<(String, PathBuf)>,
    pub skip_existing: bool,
    pub push: bool,
}

/// The `builder` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuilderChoice {
    /// BuildKit when the daemon offers it, else the classic builder.
    Auto,
    BuildKit,
    Classic,
}

/// The `network` input: the network of `RUN` steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Default,
    Host,
    None,
}

impl Network {
    /// The daemon's name for it.
    pub fn mode(self) -> &'static str {
        match self {
            Network::Default => "default",
            Network::Host => "host",
            Network::None => "none",
        }
    }
}

/// The `cache-to` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheTo {
    /// A cache image for each stage the target depends on, and inline cache metadata.
    Auto,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheFrom {
    /// The image the kustomization deploys now for this service.
    Auto,
    None,
    Images(Vec<ImageRef>),
}

#[derive(Debug)]
pub struct SetImage {
    /// Workspace-relative directory holding the kustomization file.
    pub kustomization: PathBuf,
    pub image_name: String,
    pub pin_digest: bool,
    /// Turns the stale-write guard off: set the tag even when the overlay deploys a newer
    /// commit (a rollback on purpose).
    pub allow_rollback: bool,
}

#[derive(Debug)]
pub struct Git {
    /// `false`: edit the workspace file only, for a later step to commit.
    pub push: bool,
    pub branch: Option<String>,
    pub commit_message: String,
    pub skip_ci: bool,
    pub user_name: String,
    pub user_email: String,
    pub token: Option<SecretString>,
    pub max_attempts: u32,
}

/// The runner's own variables.
#[derive(Debug, Default, Clone)]
pub struct GithubEnv {
    pub sha: Option<String>,
    pub git_ref: Option<String>,
    pub server_url: Option<String>,
    pub repository: Option<String>,
}

impl GithubEnv {
    /// The branch `GITHUB_REF` names, if it names one.
    pub(crate) fn ref_branch(&self) -> Option<&str> {
        self.git_ref.as_deref()?.strip_prefix("refs/heads/")
    }

    /// `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY`, for the OCI `source` label; only when both look
    /// like GitHub's (act derives GITHUB_REPOSITORY from any origin URL, git:// included).
    pub(crate) fn source_url(&self) -> Option<String> {
        let url = self.repository_url()?;
        let repo = self.repository.as_deref()?;
        let owner_name = repo.split('/').count() == 2 && !repo.contains(':');
        let web = url.starts_with("https://") || url.starts_with("http://");
        (owner_name && web).then(|| url.trim_end_matches(".git").to_string())
    }

    /// `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY.git`, the fallback remote.
    pub(crate) fn repository_url(&self) -> Option<String> {
        let server = self.server_url.as_deref().filter(|s| !s.is_empty())?;
        let repo = self.repository.as_deref().filter(|s| !s.is_empty())?;
        Some(format!("{}/{repo}.git", server.trim_end_matches('/')))
    }
}

/// One problem with one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub input: String,
    pub message: String,
}

/// Every input problem found, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputErrors(pub Vec<InputError>);

impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} invalid input{}:", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            write!(f, "\n  - {}: {}", e.input, e.message)?;
        }
        Ok(())
    }
}

/// Raw values by input name, as the runner set them (absent and empty both mean "default").
#[derive(Debug, Default, Clone)]
pub struct Raw {
    values: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
}

impl Raw {
    /// Reads every declared input and the GitHub/AWS variables from the process environment.
    pub fn from_env() -> Raw {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Raw {
        let mut raw = Raw::default();
        for (name, _) in INPUTS {
            if let Some(v) = lookup(&input_var(name)) {
                raw.values.insert((*name).to_string(), v);
            }
        }
        for k in [
            env::GITHUB_SHA,
            env::GITHUB_REF,
            env::GITHUB_WORKSPACE,
            env::GITHUB_SERVER_URL,
            env::GITHUB_REPOSITORY,
            env::AWS_REGION,
            env::AWS_DEFAULT_REGION,
        ] {
            if let Some(v) = lookup(k) {
                raw.env.insert(k.to_string(), v);
            }
        }
        raw
    }

    /// Test and CLI convenience: set one input.
    pub fn with(mut self, name: &str, value: &str) -> Raw {
        self.values.insert(name.to_string(), value.to_string());
        self
    }

    #[cfg(test)]
    pub(crate) fn with_env(mut self, k: &str, v: &str) -> Raw {
        self.env.insert(k.to_string(), v.to_string());
        self
    }

    /// The value as given, trimmed; `None` when empty (meaning: use the default).
    fn get(&self, name: &str) -> Option<&str> {
        debug_assert!(
            INPUTS.iter().any(|(n, _)| *n == name),
            "undeclared input {name}"
        );
        self.values
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The value, or its declared default.
    fn get_or_default(&self, name: &str) -> &str {
        self.get(name).unwrap_or_else(|| {
            INPUTS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, d)| *d)
                .unwrap_or("")
        })
    }

    /// Secrets are not trimmed: surrounding spaces could be part of them.
    fn secret(&self, name: &str) -> Option<SecretString> {
        self.values
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| SecretString::from(v.clone()))
    }

    fn env(&self, k: &str) -> Option<&str> {
        self.env
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

impl Inputs {
    /// The secrets among the inputs, to be masked as soon as they are known.
    pub fn secrets(&self) -> Vec<&SecretString> {
        let mut s: Vec<&SecretString> = self.git.token.iter().collect();
        if let Some(l) = &self.registry_login {
            s.push(&l.password);
        }
        if let Some(b) = &self.build {
            s.extend(b.secrets.iter().map(|(_, v)| v));
        }
        if let Some(t) = self.verify.as_ref().and_then(|v| v.token.as_ref()) {
            s.push(t);
        }
        s
    }
}

/// Fills `{service} {tag} {image} {digest} {sha}` in a validated template.
pub(crate) fn render_message(template: &str, values: &[(&str, &str)]) -> String {
    let mut s = template.to_string();
    for (k, v) in values {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}
