//! [`Inputs::parse`]: one function per section of the inputs table, all writing their problems
//! into one [`Problems`], so every problem is reported at once.

use std::path::{Path, PathBuf};

use super::build::build;
use super::check::{
    check_registry_host, confined_path, is_aws_region, is_branch_name, is_dns_label, is_docker_tag,
    is_repository_path, is_role_arn, unknown_placeholders,
};
use super::*;
use crate::registry::Credentials;

/// Collects problems while parsing so all of them are reported at once.
#[derive(Default)]
pub(super) struct Problems(Vec<InputError>);

impl Problems {
    pub(super) fn add(&mut self, input: &str, message: impl Into<String>) {
        self.0.push(InputError {
            input: input.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn boolean(&mut self, raw: &Raw, name: &str) -> bool {
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

    pub(super) fn number(
        &mut self,
        raw: &Raw,
        name: &str,
        range: std::ops::RangeInclusive<u32>,
    ) -> u32 {
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
    pub(super) fn relative_path(&mut self, raw: &Raw, name: &str) -> PathBuf {
        let v = raw.get_or_default(name);
        match confined_path(v) {
            Ok(p) => p,
            Err(why) => {
                self.add(name, format!("{v:?} {why}"));
                PathBuf::from(".")
            }
        }
    }

    pub(super) fn pairs(&mut self, raw: &Raw, name: &str) -> Vec<(String, String)> {
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
        let github = GithubEnv {
            sha: raw.env(env::GITHUB_SHA).map(str::to_string),
            git_ref: raw.env(env::GITHUB_REF).map(str::to_string),
            server_url: raw.env(env::GITHUB_SERVER_URL).map(str::to_string),
            repository: raw.env(env::GITHUB_REPOSITORY).map(str::to_string),
        };
        let (service, tag) = job(&mut p, raw, &github);
        let dry_run = p.boolean(raw, "dry-run");
        let aws = aws(&mut p, raw);
        let target = target(&mut p, raw, &service);
        let build = build(&mut p, raw, &target.repository);
        let set_image = set_image(&mut p, raw, &target.repository);
        let git = git(&mut p, raw);
        let verify = verify(&mut p, raw);
        if build.is_none() && set_image.is_none() {
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
            aws,
            registry: target.registry,
            registry_login: target.login,
            repository: target.repository,
            create_repository: target.create_repository,
            tag_mutability: target.tag_mutability,
            build,
            set_image,
            git,
            verify,
            workspace,
            github,
        })
    }
}

/// `service` and `tag` (which defaults to the commit).
fn job(p: &mut Problems, raw: &Raw, github: &GithubEnv) -> (String, String) {
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
    (service, tag)
}

fn aws(p: &mut Problems, raw: &Raw) -> Aws {
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
    Aws {
        region,
        role_to_assume,
        role_session_name,
        role_duration_seconds: p.number(raw, "role-duration-seconds", 900..=43200),
        audience: raw.get_or_default("audience").to_string(),
    }
}

/// Where the image goes: the registry, its login, the repository and how ECR creates it.
struct Target {
    registry: Registry,
    login: Option<Credentials>,
    repository: String,
    create_repository: bool,
    tag_mutability: TagMutability,
}

fn target(p: &mut Problems, raw: &Raw, service: &str) -> Target {
    let registry = match raw.get("registry") {
        None => Registry::EcrDefault,
        Some(r) => {
            if let Err(why) = check_registry_host(r) {
                p.add("registry", format!("{r:?} {why}"));
            }
            Registry::Host(r.to_string())
        }
    };
    let login = match (
        raw.get("registry-username"),
        raw.secret("registry-password"),
    ) {
        (Some(u), Some(password)) => Some(Credentials {
            username: u.to_string(),
            password,
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
    let repository = raw.get("repository").unwrap_or(service).to_string();
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
    Target {
        registry,
        login,
        repository,
        create_repository,
        tag_mutability,
    }
}

/// `None` without `argocd-server`; the other Argo CD inputs are checked either way.
fn verify(p: &mut Problems, raw: &Raw) -> Option<Verify> {
    let server = raw
        .get("argocd-server")
        .map(|s| s.trim_end_matches('/').to_string());
    if let Some(s) = &server {
        match reqwest::Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {}
            _ => p.add(
                "argocd-server",
                format!("{s:?} is not an http(s) URL like https://argocd.example.com"),
            ),
        }
    }
    let app = raw.get("argocd-app").map(str::to_string);
    match (&server, &app) {
        (Some(_), None) => p.add("argocd-app", "is required when argocd-server is set"),
        (_, Some(a)) if !is_dns_label(a) && !a.contains('_') => p.add(
            "argocd-app",
            format!("{a:?} is not an application name: lowercase letters, digits and '-'"),
        ),
        _ => {}
    }
    let app_namespace = raw.get("argocd-app-namespace").map(str::to_string);
    if let Some(ns) = &app_namespace
        && !is_dns_label(ns)
    {
        p.add(
            "argocd-app-namespace",
            format!("{ns:?} is not a namespace name: lowercase letters, digits and '-'"),
        );
    }
    let timeout_seconds = p.number(raw, "argocd-timeout", 1..=21_600);
    let insecure = p.boolean(raw, "argocd-insecure");
    let token = raw.secret("argocd-token");
    Some(Verify {
        server: server?,
        token,
        app: app.unwrap_or_default(),
        app_namespace,
        timeout_seconds,
        insecure,
    })
}

/// `None` with `set-image: false`; every set-image input is checked either way.
fn set_image(p: &mut Problems, raw: &Raw, repository: &str) -> Option<SetImage> {
    let enabled = p.boolean(raw, "set-image");
    let kustomization = p.relative_path(raw, "kustomization");
    let image_name = raw.get("image-name").unwrap_or(repository).to_string();
    if raw.get("image-name").is_some() && image_name.contains(char::is_whitespace) {
        p.add("image-name", format!("{image_name:?} is not an image name"));
    }
    let pin_digest = p.boolean(raw, "pin-digest");
    let allow_rollback = p.boolean(raw, "allow-rollback");
    enabled.then_some(SetImage {
        kustomization,
        image_name,
        pin_digest,
        allow_rollback,
    })
}

fn git(p: &mut Problems, raw: &Raw) -> Git {
    let push = p.boolean(raw, "git-push");
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
    Git {
        push,
        branch,
        commit_message,
        skip_ci,
        user_name,
        user_email,
        token: raw.secret("github-token"),
        max_attempts: p.number(raw, "max-attempts", 1..=100),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::inputs) fn base() -> Raw {
        Raw::default()
            .with("service", "auth-service")
            .with_env(env::GITHUB_SHA, "706798e8")
    }

    pub(in crate::inputs) fn parse(raw: Raw) -> Result<Inputs, InputErrors> {
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
    fn argo_cd_verification_needs_a_server_and_an_app() {
        assert!(parse(base()).unwrap().verify.is_none());
        let v = parse(
            base()
                .with("argocd-server", "https://argocd.example.com/")
                .with("argocd-app", "nova-staging")
                .with("argocd-token", "tok"),
        )
        .unwrap()
        .verify
        .unwrap();
        assert_eq!(
            (
                v.server.as_str(),
                v.app.as_str(),
                v.timeout_seconds,
                v.insecure
            ),
            ("https://argocd.example.com", "nova-staging", 600, false)
        );
        let err = parse(
            base()
                .with("argocd-server", "argocd.example.com")
                .with("argocd-timeout", "0"),
        )
        .unwrap_err();
        let names: Vec<&str> = err.0.iter().map(|e| e.input.as_str()).collect();
        assert_eq!(names, ["argocd-server", "argocd-app", "argocd-timeout"]);
    }

    #[test]
    fn disabled_stages_are_absent() {
        let i = parse(base().with("build", "false")).unwrap();
        assert!(i.build.is_none());
        let i = parse(base().with("set-image", "false")).unwrap();
        assert!(i.set_image.is_none());
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
