//! Action inputs: the raw `INPUT_*` environment parsed once into a typed, validated [`Inputs`],
//! with every problem reported together.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use secrecy::SecretString;

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
    pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
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
    ("skip-existing", "true"),
    ("push", "true"),
    ("set-image", "true"),
    ("kustomization", "k8s/infrastructure/overlays/staging"),
    ("image-name", ""),
    ("pin-digest", "false"),
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
];

/// The runner's name for an input's variable: `INPUT_` + upper-cased name, spaces as `_`, hyphens kept.
pub fn input_var(name: &str) -> String {
    format!("INPUT_{}", name.replace(' ', "_").to_uppercase())
}

/// The placeholders `commit-message` may use.
pub const MESSAGE_PLACEHOLDERS: &[&str] = &["service", "tag", "image", "digest", "sha"];

/// Validated inputs: everything the pipeline needs, already checked.
#[derive(Debug)]
pub struct Inputs {
    pub service: String,
    pub tag: String,
    pub dry_run: bool,
    pub aws: Aws,
    pub registry: Registry,
    pub registry_login: Option<Login>,
    pub repository: String,
    pub create_repository: bool,
    pub tag_mutability: TagMutability,
    /// `None` with `build: false`: promote an image that already exists.
    pub build: Option<Build>,
    /// `None` with `set-image: false`: a build-only job.
    pub set_image: Option<SetImage>,
    pub git: Git,
    pub workspace: PathBuf,
    pub github: GithubEnv,
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

impl Registry {
    /// Whether `host` is an ECR registry, whose credentials come from GetAuthorizationToken.
    pub fn is_ecr_host(host: &str) -> bool {
        let h = host.split(':').next().unwrap_or(host);
        h.contains(".dkr.ecr.")
            && (h.ends_with(".amazonaws.com") || h.ends_with(".amazonaws.com.cn"))
    }
}

#[derive(Debug)]
pub struct Login {
    pub username: String,
    pub password: SecretString,
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
    pub skip_existing: bool,
    pub push: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheFrom {
    /// The image the kustomization deploys now for this service.
    Auto,
    None,
    Images(Vec<String>),
}

#[derive(Debug)]
pub struct SetImage {
    /// Workspace-relative directory holding the kustomization file.
    pub kustomization: PathBuf,
    pub image_name: String,
    pub pin_digest: bool,
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
    pub fn ref_branch(&self) -> Option<&str> {
        self.git_ref.as_deref()?.strip_prefix("refs/heads/")
    }

    /// `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY`, for the OCI `source` label; only when both look
    /// like GitHub's (act derives GITHUB_REPOSITORY from any origin URL, git:// included).
    pub fn source_url(&self) -> Option<String> {
        let url = self.repository_url()?;
        let repo = self.repository.as_deref()?;
        let owner_name = repo.split('/').count() == 2 && !repo.contains(':');
        let web = url.starts_with("https://") || url.starts_with("http://");
        (owner_name && web).then(|| url.trim_end_matches(".git").to_string())
    }

    /// `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY.git`, the fallback remote.
    pub fn repository_url(&self) -> Option<String> {
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

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Raw {
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

    pub fn with_env(mut self, k: &str, v: &str) -> Raw {
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

/// Collects problems while parsing so all of them are reported at once.
#[derive(Default)]
struct Problems(Vec<InputError>);

impl Problems {
    fn add(&mut self, input: &str, message: impl Into<String>) {
        self.0.push(InputError {
            input: input.to_string(),
            message: message.into(),
        });
    }

    fn boolean(&mut self, raw: &Raw, name: &str) -> bool {
        let v = raw.get_or_default(name);
        // The YAML 1.2 core schema booleans, as @actions/core's getBooleanInput accepts.
        match v {
            "true" | "True" | "TRUE" => true,
            "false" | "False" | "FALSE" => false,
            other => {
                self.add(
                    name,
                    format!("{other:?} is not a boolean; use true or false"),
                );
                false
            }
        }
    }

    fn number(&mut self, raw: &Raw, name: &str, range: std::ops::RangeInclusive<u32>) -> u32 {
        let v = raw.get_or_default(name);
        match v.parse::<u32>() {
            Ok(n) if range.contains(&n) => n,
            _ => {
                self.add(
                    name,
                    format!(
                        "{v:?} must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                *range.start()
            }
        }
    }

    /// A workspace-relative path that cannot escape the workspace.
    fn relative_path(&mut self, raw: &Raw, name: &str) -> PathBuf {
        let v = raw.get_or_default(name);
        match confined_path(v) {
            Ok(p) => p,
            Err(why) => {
                self.add(name, format!("{v:?} {why}"));
                PathBuf::from(".")
            }
        }
    }

    fn pairs(&mut self, raw: &Raw, name: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, line) in raw
            .values
            .get(name)
            .map(String::as_str)
            .unwrap_or("")
            .lines()
            .enumerate()
        {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            match line.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() && !k.contains(char::is_whitespace) => {
                    out.push((k.trim().to_string(), v.to_string()))
                }
                _ => self.add(name, format!("line {}: {line:?} is not KEY=VALUE", i + 1)),
            }
        }
        out
    }
}

impl Inputs {
    /// Parses and validates every input, collecting all problems.
    pub fn parse(raw: &Raw, cwd: &Path) -> Result<Inputs, InputErrors> {
        let mut p = Problems::default();

        let service = match raw.get("service") {
            None => {
                p.add("service", "is required, e.g. auth-service");
                String::new()
            }
            Some(s) if !is_dns_label(s) => {
                p.add("service", format!("{s:?} must be lowercase letters, digits and '-', at most 63 characters, starting and ending with a letter or digit"));
                s.to_string()
            }
            Some(s) => s.to_string(),
        };

        let github = GithubEnv {
            sha: raw.env(env::GITHUB_SHA).map(str::to_string),
            git_ref: raw.env(env::GITHUB_REF).map(str::to_string),
            server_url: raw.env(env::GITHUB_SERVER_URL).map(str::to_string),
            repository: raw.env(env::GITHUB_REPOSITORY).map(str::to_string),
        };

        let tag = match raw.get("tag").or(github.sha.as_deref()) {
            None => {
                p.add(
                    "tag",
                    "is empty and GITHUB_SHA is unset; set tag explicitly for a local run",
                );
                String::new()
            }
            Some(t) if !is_docker_tag(t) => {
                p.add("tag", format!("{t:?} is not a valid docker tag: 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'"));
                t.to_string()
            }
            Some(t) => t.to_string(),
        };

        let dry_run = p.boolean(raw, "dry-run");

        let region = raw
            .get("aws-region")
            .or(raw.env(env::AWS_REGION))
            .or(raw.env(env::AWS_DEFAULT_REGION))
            .map(str::to_string);
        if let Some(r) = &region
            && !is_aws_region(r)
        {
            p.add(
                "aws-region",
                format!("{r:?} is not an AWS region, e.g. ap-northeast-1"),
            );
        }
        let role_to_assume = raw.get("role-to-assume").map(str::to_string);
        if let Some(r) = &role_to_assume
            && !is_role_arn(r)
        {
            p.add(
                "role-to-assume",
                format!("{r:?} is not an IAM role ARN like arn:aws:iam::123456789012:role/deploy"),
            );
        }
        let role_session_name = raw.get_or_default("role-session-name").to_string();
        if !(2..=64).contains(&role_session_name.len())
            || !role_session_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c))
        {
            p.add(
                "role-session-name",
                format!("{role_session_name:?} must be 2-64 of [A-Za-z0-9+=,.@_-]"),
            );
        }
        let role_duration_seconds = p.number(raw, "role-duration-seconds", 900..=43200);
        let audience = raw.get_or_default("audience").to_string();

        let registry = match raw.get("registry") {
            None => Registry::EcrDefault,
            Some(r) => {
                if let Err(why) = check_registry_host(r) {
                    p.add("registry", format!("{r:?} {why}"));
                }
                Registry::Host(r.to_string())
            }
        };
        let registry_login = match (
            raw.get("registry-username"),
            raw.secret("registry-password"),
        ) {
            (Some(u), Some(pw)) => Some(Login {
                username: u.to_string(),
                password: pw,
            }),
            (None, None) => None,
            (Some(_), None) => {
                p.add(
                    "registry-password",
                    "is required when registry-username is set",
                );
                None
            }
            (None, Some(_)) => {
                p.add(
                    "registry-username",
                    "is required when registry-password is set",
                );
                None
            }
        };

        let repository = raw.get("repository").unwrap_or(&service).to_string();
        if raw.get("repository").is_some() && !is_repository_path(&repository) {
            p.add("repository", format!("{repository:?} is not a registry path: lowercase components of [a-z0-9._-] joined by '/'"));
        }
        let create_repository = p.boolean(raw, "create-repository");
        let tag_mutability = match raw.get_or_default("tag-mutability") {
            "MUTABLE" => TagMutability::Mutable,
            "IMMUTABLE" => TagMutability::Immutable,
            other => {
                p.add(
                    "tag-mutability",
                    format!("{other:?} must be MUTABLE or IMMUTABLE"),
                );
                TagMutability::Mutable
            }
        };

        let build_enabled = p.boolean(raw, "build");
        let context = p.relative_path(raw, "context");
        let dockerfile = p.relative_path(raw, "dockerfile");
        let build_args = p.pairs(raw, "build-args");
        let labels = p.pairs(raw, "labels");
        let target = raw.get("target").map(str::to_string);
        if let Some(t) = &target
            && !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            p.add("target", format!("{t:?} is not a build stage name"));
        }
        let cache_from = match raw.get_or_default("cache-from") {
            "auto" => CacheFrom::Auto,
            "none" => CacheFrom::None,
            list => {
                let refs: Vec<String> = list
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect();
                for r in &refs {
                    if r.contains(char::is_whitespace) {
                        p.add("cache-from", format!("{r:?} is not an image reference; give one per line, or auto, or none"));
                    }
                }
                CacheFrom::Images(refs)
            }
        };
        let skip_existing = p.boolean(raw, "skip-existing");
        let push = p.boolean(raw, "push");

        let set_image_enabled = p.boolean(raw, "set-image");
        let kustomization = p.relative_path(raw, "kustomization");
        let image_name = raw.get("image-name").unwrap_or(&repository).to_string();
        if raw.get("image-name").is_some() && image_name.contains(char::is_whitespace) {
            p.add("image-name", format!("{image_name:?} is not an image name"));
        }
        let pin_digest = p.boolean(raw, "pin-digest");

        let git_push = p.boolean(raw, "git-push");
        let branch = raw.get("branch").map(str::to_string);
        if let Some(b) = &branch
            && !is_branch_name(b)
        {
            p.add("branch", format!("{b:?} is not a valid branch name"));
        }
        let commit_message = raw.get_or_default("commit-message").to_string();
        for unknown in unknown_placeholders(&commit_message) {
            p.add(
                "commit-message",
                format!(
                    "unknown placeholder {{{unknown}}}; use {}",
                    MESSAGE_PLACEHOLDERS
                        .iter()
                        .map(|n| format!("{{{n}}}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            );
        }
        let skip_ci = p.boolean(raw, "skip-ci");
        let user_name = raw.get_or_default("git-user-name").to_string();
        let user_email = raw.get_or_default("git-user-email").to_string();
        if !user_email.contains('@') || user_email.contains(['<', '>', '\n']) {
            p.add(
                "git-user-email",
                format!("{user_email:?} is not an email address"),
            );
        }
        if user_name.contains(['<', '>', '\n']) {
            p.add(
                "git-user-name",
                format!("{user_name:?} may not contain '<', '>' or line breaks"),
            );
        }
        let token = raw.secret("github-token");
        let max_attempts = p.number(raw, "max-attempts", 1..=100);

        if !build_enabled && !set_image_enabled {
            p.add(
                "build",
                "build: false and set-image: false leave nothing to do",
            );
        }

        let workspace = raw
            .env(env::GITHUB_WORKSPACE)
            .map(PathBuf::from)
            .unwrap_or_else(|| cwd.to_path_buf());

        if !p.0.is_empty() {
            return Err(InputErrors(p.0));
        }
        Ok(Inputs {
            service,
            tag,
            dry_run,
            aws: Aws {
                region,
                role_to_assume,
                role_session_name,
                role_duration_seconds,
                audience,
            },
            registry,
            registry_login,
            repository,
            create_repository,
            tag_mutability,
            build: build_enabled.then_some(Build {
                context,
                dockerfile,
                build_args,
                labels,
                target,
                cache_from,
                skip_existing,
                push,
            }),
            set_image: set_image_enabled.then_some(SetImage {
                kustomization,
                image_name,
                pin_digest,
            }),
            git: Git {
                push: git_push,
                branch,
                commit_message,
                skip_ci,
                user_name,
                user_email,
                token,
                max_attempts,
            },
            workspace,
            github,
        })
    }

    /// The secrets among the inputs, to be masked as soon as they are known.
    pub fn secrets(&self) -> Vec<&SecretString> {
        let mut s: Vec<&SecretString> = self.git.token.iter().collect();
        if let Some(l) = &self.registry_login {
            s.push(&l.password);
        }
        s
    }
}

/// Normalizes a workspace-relative path lexically; refuses absolute paths and `..` escapes.
pub fn confined_path(v: &str) -> Result<PathBuf, &'static str> {
    let path = Path::new(v);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => {
                return Err("must be relative to the workspace, not absolute");
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err("escapes the workspace through '..'");
                }
            }
            Component::Normal(n) => out.push(n),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    Ok(out)
}

fn is_dns_label(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Docker's tag grammar: `[\w][\w.-]{0,127}`.
pub fn is_docker_tag(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_';
    s.len() <= 128 && s.starts_with(ok) && s.chars().all(|c| ok(c) || c == '.' || c == '-')
}

fn is_aws_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_role_arn(s: &str) -> bool {
    let mut it = s.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return false;
    };
    partition.starts_with("aws")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource.strip_prefix("role/").is_some_and(|r| {
            !r.is_empty()
                && r.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
        })
}

fn check_registry_host(s: &str) -> Result<(), &'static str> {
    if s.contains("://") {
        return Err(
            "must be a host name without a scheme, e.g. 123456789012.dkr.ecr.ap-northeast-1.amazonaws.com",
        );
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
    {
        return Err("must be a host name with an optional :port and no path");
    }
    if let Some(p) = port
        && p.parse::<u16>().is_err()
    {
        return Err("has an invalid port");
    }
    Ok(())
}

/// The distribution spec's repository name grammar.
fn is_repository_path(s: &str) -> bool {
    s.len() <= 255
        && s.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
        })
}

/// The subset of git's ref-name rules that matter for a branch given by hand.
fn is_branch_name(s: &str) -> bool {
    let s = s.strip_prefix("refs/heads/").unwrap_or(s);
    !s.is_empty()
        && !s.starts_with(['/', '-', '.'])
        && !s.ends_with(['/', '.'])
        && !s.ends_with(".lock")
        && !s.contains("..")
        && !s.contains("//")
        && !s.contains("@{")
        && !s.chars().any(|c| c.is_control() || " ~^:?*[\\".contains(c))
}

fn unknown_placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                if !MESSAGE_PLACEHOLDERS.contains(&name) {
                    out.push(name.to_string());
                }
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

/// Fills `{service} {tag} {image} {digest} {sha}` in a validated template.
pub fn render_message(template: &str, values: &[(&str, &str)]) -> String {
    let mut s = template.to_string();
    for (k, v) in values {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Raw {
        Raw::default()
            .with("service", "auth-service")
            .with_env(env::GITHUB_SHA, "706798e8")
    }

    fn parse(raw: Raw) -> Result<Inputs, InputErrors> {
        Inputs::parse(&raw, Path::new("/ws"))
    }

    #[test]
    fn the_source_label_needs_a_web_server_and_an_owner_slash_name_repository() {
        let env = |server: &str, repo: &str| GithubEnv {
            server_url: Some(server.into()),
            repository: Some(repo.into()),
            ..Default::default()
        };
        assert_eq!(
            env("https://github.com", "nova/monorepo")
                .source_url()
                .as_deref(),
            Some("https://github.com/nova/monorepo")
        );
        assert_eq!(
            env("https://github.com", "git://127.0.0.1:9418/x").source_url(),
            None
        );
        assert_eq!(env("", "nova/monorepo").source_url(), None);
    }

    #[test]
    fn hyphenated_input_names_keep_their_hyphens_in_the_variable() {
        assert_eq!(input_var("aws-region"), "INPUT_AWS-REGION");
        assert_eq!(input_var("my input"), "INPUT_MY_INPUT");
    }

    #[test]
    fn empty_inputs_take_the_declared_defaults() {
        let i = parse(
            base()
                .with("dry-run", "")
                .with("max-attempts", "")
                .with("commit-message", ""),
        )
        .unwrap();
        assert!(!i.dry_run);
        assert_eq!(i.git.max_attempts, 30);
        assert_eq!(
            i.git.commit_message,
            "chore(staging): update {service} image to {tag}"
        );
        assert_eq!(i.repository, "auth-service");
        assert_eq!(i.set_image.as_ref().unwrap().image_name, "auth-service");
        assert_eq!(
            i.set_image.unwrap().kustomization,
            PathBuf::from("k8s/infrastructure/overlays/staging")
        );
        assert_eq!(i.registry, Registry::EcrDefault);
        assert_eq!(i.workspace, PathBuf::from("/ws"));
    }

    #[test]
    fn the_tag_defaults_to_the_commit_sha() {
        assert_eq!(parse(base()).unwrap().tag, "706798e8");
        assert_eq!(parse(base().with("tag", "v1.2")).unwrap().tag, "v1.2");
    }

    #[test]
    fn the_region_falls_back_to_the_aws_variables() {
        let i = parse(base().with_env(env::AWS_DEFAULT_REGION, "eu-west-1")).unwrap();
        assert_eq!(i.aws.region.as_deref(), Some("eu-west-1"));
        let i = parse(
            base()
                .with_env(env::AWS_DEFAULT_REGION, "eu-west-1")
                .with_env(env::AWS_REGION, "ap-northeast-1"),
        )
        .unwrap();
        assert_eq!(i.aws.region.as_deref(), Some("ap-northeast-1"));
    }

    #[test]
    fn booleans_are_strict() {
        let err = parse(base().with("dry-run", "yes")).unwrap_err();
        assert_eq!(err.0[0].input, "dry-run");
        assert!(parse(base().with("dry-run", "TRUE")).unwrap().dry_run);
    }

    #[test]
    fn paths_may_not_leave_the_workspace() {
        let err = parse(
            base()
                .with("context", "/etc")
                .with("dockerfile", "a/../../x")
                .with("kustomization", "../k8s"),
        )
        .unwrap_err();
        let names: Vec<&str> = err.0.iter().map(|e| e.input.as_str()).collect();
        assert_eq!(names, ["context", "dockerfile", "kustomization"]);
        let i = parse(base().with("dockerfile", "backend/auth/../auth/Dockerfile")).unwrap();
        assert_eq!(
            i.build.unwrap().dockerfile,
            PathBuf::from("backend/auth/Dockerfile")
        );
    }

    #[test]
    fn max_attempts_must_be_in_range() {
        assert_eq!(
            parse(base().with("max-attempts", "0")).unwrap_err().0[0].input,
            "max-attempts"
        );
        assert_eq!(
            parse(base().with("max-attempts", "101")).unwrap_err().0[0].input,
            "max-attempts"
        );
        assert_eq!(
            parse(base().with("max-attempts", "12"))
                .unwrap()
                .git
                .max_attempts,
            12
        );
    }

    #[test]
    fn docker_tags_follow_dockers_grammar() {
        for ok in ["706798e8", "v1.2.3", "_x", "A-b.c"] {
            assert!(is_docker_tag(ok), "{ok}");
        }
        for bad in ["", ".v1", "-x", "a:b", "a/b", &"x".repeat(129)] {
            assert!(!is_docker_tag(bad), "{bad}");
        }
    }

    #[test]
    fn role_arns_are_checked() {
        assert!(is_role_arn("arn:aws:iam::123456789012:role/deploy"));
        assert!(is_role_arn(
            "arn:aws-cn:iam::123456789012:role/path/to/deploy"
        ));
        assert!(!is_role_arn("arn:aws:iam::12345:role/deploy"));
        assert!(!is_role_arn("arn:aws:iam::123456789012:user/deploy"));
    }

    #[test]
    fn registry_hosts_have_no_scheme_or_path() {
        assert!(check_registry_host("127.0.0.1:5000").is_ok());
        assert!(check_registry_host("123456789012.dkr.ecr.ap-northeast-1.amazonaws.com").is_ok());
        assert!(check_registry_host("https://x").is_err());
        assert!(check_registry_host("x/y").is_err());
        assert!(check_registry_host("x:99999").is_err());
    }

    #[test]
    fn ecr_hosts_are_recognised() {
        assert!(Registry::is_ecr_host(
            "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com"
        ));
        assert!(!Registry::is_ecr_host("127.0.0.1:5000"));
    }

    #[test]
    fn username_and_password_come_together() {
        assert_eq!(
            parse(base().with("registry-username", "ci")).unwrap_err().0[0].input,
            "registry-password"
        );
    }

    #[test]
    fn unknown_commit_message_placeholders_are_refused() {
        let err = parse(base().with("commit-message", "deploy {service} {version}")).unwrap_err();
        assert!(err.0[0].message.contains("{version}"), "{err}");
    }

    #[test]
    fn commit_messages_are_rendered() {
        assert_eq!(
            render_message(
                "update {service} to {tag} ({tag})",
                &[("service", "auth"), ("tag", "v1")]
            ),
            "update auth to v1 (v1)"
        );
    }

    #[test]
    fn build_args_are_key_value_lines() {
        let i = parse(base().with("build-args", "A=1\n\n B=x=y \n")).unwrap();
        assert_eq!(
            i.build.unwrap().build_args,
            [("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        let err = parse(base().with("build-args", "A=1\nnope")).unwrap_err();
        assert_eq!(err.0[0].message, "line 2: \"nope\" is not KEY=VALUE");
    }

    #[test]
    fn cache_from_takes_auto_none_or_refs() {
        assert_eq!(
            parse(base()).unwrap().build.unwrap().cache_from,
            CacheFrom::Auto
        );
        assert_eq!(
            parse(base().with("cache-from", "none"))
                .unwrap()
                .build
                .unwrap()
                .cache_from,
            CacheFrom::None
        );
        assert_eq!(
            parse(base().with("cache-from", "r/a:1\nr/b:2"))
                .unwrap()
                .build
                .unwrap()
                .cache_from,
            CacheFrom::Images(vec!["r/a:1".into(), "r/b:2".into()])
        );
    }

    #[test]
    fn disabled_stages_are_absent() {
        let i = parse(base().with("build", "false")).unwrap();
        assert!(i.build.is_none());
        let i = parse(base().with("set-image", "false")).unwrap();
        assert!(i.set_image.is_none());
    }

    #[test]
    fn branch_names_are_checked() {
        assert!(is_branch_name("main"));
        assert!(is_branch_name("release/v1"));
        for bad in ["", "a..b", "a b", "-x", "x.lock", "a:b", "x/"] {
            assert!(!is_branch_name(bad), "{bad}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let raw = Raw::default()
            .with("service", "Auth_Service")
            .with("dry-run", "maybe")
            .with("aws-region", "tokyo")
            .with("role-to-assume", "deploy")
            .with("role-duration-seconds", "60")
            .with("registry", "https://ecr")
            .with("registry-password", "p")
            .with("repository", "Nova/Auth")
            .with("tag-mutability", "sometimes")
            .with("context", "../..")
            .with("max-attempts", "1000")
            .with("commit-message", "{nope}");
        let err = parse(raw).unwrap_err();
        insta::assert_snapshot!(err.to_string());
    }
}
