//! AWS: GitHub OIDC (the stub in `support::oidc`) → STS AssumeRoleWithWebIdentity → ECR, against
//! moto, plus the failures users hit.
//!
//! Tests in this process share one environment, so in-process tests call
//! [`aws::session_with`] with their own OIDC request and aws-config loader. The `child_*` tests
//! run the real [`aws::session`] in a child process (this test binary again) whose environment is
//! exactly what the runner gives the action, `AWS_ENDPOINT_URL*` included, and capture its output.

use std::time::Instant;

use aws_config::{BehaviorVersion, ConfigLoader};
use deploy_action::aws::{self, oidc::TokenRequest};
use deploy_action::failure::Failure;
use deploy_action::github::Runner;
use deploy_action::inputs::{Aws, TagMutability};
use secrecy::{ExposeSecret, SecretString};

use crate::support::oidc::{self, OidcServer, Response, Stub};
use crate::support::services::{AWS_CHILD, aws_child_ops};
use crate::support::{Action, Remote, Run, Workspace, copy_dir, error_line, services};

const REGION: &str = "eu-west-1";
/// moto's account for credentials it did not issue.
const MOTO_DEFAULT_ACCOUNT: &str = "123456789012";

fn moto() -> String {
    services().moto_url.clone()
}

/// A fresh 12-digit account per test: moto keeps state per account, and outlives test runs.
fn fresh_account() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(oidc::nonce().as_bytes());
    format!("{}", 100_000_000_000 + h.finish() % 899_999_999_999)
}

fn role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/nova-deploy")
}

fn inputs(role: Option<&str>) -> Aws {
    Aws {
        region: Some(REGION.into()),
        role_to_assume: role.map(str::to_string),
        role_session_name: "GitHubActions".into(),
        role_duration_seconds: 3600,
        audience: "sts.amazonaws.com".into(),
    }
}

/// aws-config pointed at `endpoint`, with no credentials of its own: the role path needs none.
fn loader(endpoint: &str) -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .no_credentials()
}

fn request(server: &OidcServer) -> Option<TokenRequest> {
    Some(TokenRequest {
        url: server.request_url.clone(),
        bearer: SecretString::from(server.bearer.clone()),
    })
}

fn failure(err: &anyhow::Error) -> Failure {
    Failure::of(err)
}

/// STS's awsQuery error document.
fn sts_error(status: u16, code: &str, message: &str) -> Response {
    Response::new(
        status,
        "text/xml",
        format!(
            r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>stub</RequestId></ErrorResponse>"#
        ),
    )
}

/// A successful AssumeRoleWithWebIdentity answer with the given secrets.
fn sts_success(account: &str, secret: &str, session_token: &str) -> Response {
    Response::new(
        200,
        "text/xml",
        format!(
            r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><SubjectFromWebIdentityToken>{sub}</SubjectFromWebIdentityToken><Audience>sts.amazonaws.com</Audience><AssumedRoleUser><Arn>arn:aws:sts::{account}:assumed-role/nova-deploy/GitHubActions</Arn><AssumedRoleId>AROASTUB:GitHubActions</AssumedRoleId></AssumedRoleUser><Credentials><AccessKeyId>ASIASTUBSTUBSTUBSTUB</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{session_token}</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><Provider>token.actions.githubusercontent.com</Provider></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>stub</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>"#,
            sub = oidc::SUB
        ),
    )
}

// ------------------------------------------------------------------ in-process, against moto

#[tokio::test]
#[ignore = "needs moto; run by scripts/test.sh"]
async fn an_oidc_token_becomes_role_credentials_and_an_ecr_login() {
    let account = fresh_account();
    let server = OidcServer::start("sts.amazonaws.com");
    let started = Instant::now();
    let session = aws::session_with(
        &inputs(Some(&role_arn(&account))),
        &Runner::default(),
        request(&server),
        loader(&moto()),
    )
    .await
    .unwrap();
    let session_took = started.elapsed();
    let login = session.ecr_login(&Runner::default()).await.unwrap();
    let total = started.elapsed();
    eprintln!("against moto: session {session_took:?}, session + ECR login {total:?}");

    // moto gives the assumed role the account of the role's ARN.
    assert_eq!(session.account_id, account);
    assert_eq!(session.region, REGION);
    assert_eq!(
        session.default_registry(),
        format!("{account}.dkr.ecr.{REGION}.amazonaws.com")
    );
    assert_eq!(login.username, "AWS");
    assert_eq!(
        login.password.expose_secret(),
        format!("{account}-auth-token")
    );
    assert_eq!(server.hits(), 1);
    assert!(
        !format!("{login:?}").contains("auth-token"),
        "Debug shows the password: {login:?}"
    );
}

#[tokio::test]
#[ignore = "needs moto; run by scripts/test.sh"]
async fn the_audience_input_is_url_encoded_into_the_token_request() {
    let audience = "https://sts.example/aud?x=1&y=a b";
    let server = OidcServer::start(audience);
    let mut aws_in = inputs(Some(&role_arn(&fresh_account())));
    aws_in.audience = audience.into();
    aws::session_with(
        &aws_in,
        &Runner::default(),
        request(&server),
        loader(&moto()),
    )
    .await
    .unwrap();
    let req = &server.requests()[0];
    assert_eq!(req.query("audience").as_deref(), Some(audience));
    assert_eq!(
        req.query("api-version").as_deref(),
        Some("2.0"),
        "the runner's own query is kept"
    );
}

#[tokio::test]
#[ignore = "needs moto; run by scripts/test.sh"]
async fn create_repository_creates_it_with_scan_on_push_and_the_tag_mutability() {
    let server = OidcServer::start("sts.amazonaws.com");
    let session = aws::session_with(
        &inputs(Some(&role_arn(&fresh_account()))),
        &Runner::default(),
        request(&server),
        loader(&moto()),
    )
    .await
    .unwrap();
    session
        .ensure_repository("nova/auth-service", true, TagMutability::Immutable)
        .await
        .unwrap();
    // A second job finding it there is fine too.
    session
        .ensure_repository("nova/auth-service", true, TagMutability::Mutable)
        .await
        .unwrap();
    session
        .ensure_repository("nova/auth-service", false, TagMutability::Mutable)
        .await
        .unwrap();

    let ecr = aws_sdk_ecr::Client::new(session.sdk_config());
    let out = ecr
        .describe_repositories()
        .repository_names("nova/auth-service")
        .send()
        .await
        .unwrap();
    let repo = &out.repositories()[0];
    assert_eq!(
        repo.image_scanning_configuration()
            .map(|c| c.scan_on_push()),
        Some(true)
    );
    assert_eq!(
        repo.image_tag_mutability(),
        Some(&aws_sdk_ecr::types::ImageTagMutability::Immutable)
    );
}

#[tokio::test]
#[ignore = "needs moto; run by scripts/test.sh"]
async fn a_missing_repository_with_creation_off_names_the_repository_region_and_input() {
    let account = fresh_account();
    let server = OidcServer::start("sts.amazonaws.com");
    let session = aws::session_with(
        &inputs(Some(&role_arn(&account))),
        &Runner::default(),
        request(&server),
        loader(&moto()),
    )
    .await
    .unwrap();
    let err = session
        .ensure_repository("nova/feed-service", false, TagMutability::Mutable)
        .await
        .unwrap_err();
    let text = failure(&err.into()).text().replace(&account, "<account>");
    assert_eq!(
        text,
        "ECR repository nova/feed-service does not exist in <account>.dkr.ecr.eu-west-1.amazonaws.com (region eu-west-1)\n\
         hint: create it, or set the input `create-repository: true` to have the action create it (with scan on push)"
    );
    let ecr = aws_sdk_ecr::Client::new(session.sdk_config());
    assert!(
        ecr.describe_repositories()
            .repository_names("nova/feed-service")
            .send()
            .await
            .is_err(),
        "nothing was created"
    );
}

#[tokio::test]
#[ignore = "needs moto; run by scripts/test.sh"]
async fn the_token_endpoint_failing_twice_then_answering_is_retried() {
    let server = OidcServer::failing_first("sts.amazonaws.com", 2);
    let account = fresh_account();
    let session = aws::session_with(
        &inputs(Some(&role_arn(&account))),
        &Runner::default(),
        request(&server),
        loader(&moto()),
    )
    .await
    .unwrap();
    assert_eq!(session.account_id, account);
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
#[ignore = "needs moto; run by scripts/test.sh"]
async fn ambient_credentials_work_without_a_role() {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto())
        .credentials_provider(aws_sdk_ecr::config::Credentials::new(
            "AKIAAMBIENTAMBIENT00",
            "ambient-secret",
            None,
            None,
            "test",
        ));
    let session = aws::session_with(&inputs(None), &Runner::default(), None, loader)
        .await
        .unwrap();
    assert_eq!(session.account_id, MOTO_DEFAULT_ACCOUNT);
    let login = session.ecr_login(&Runner::default()).await.unwrap();
    assert_eq!(
        login.password.expose_secret(),
        format!("{MOTO_DEFAULT_ACCOUNT}-auth-token")
    );
}

// ------------------------------------------------------------------ in-process, no moto needed

#[tokio::test]
async fn missing_oidc_variables_give_the_permissions_hint() {
    let err = aws::session_with(
        &inputs(Some(&role_arn("123456789012"))),
        &Runner::default(),
        None,
        loader("http://127.0.0.1:9"),
    )
    .await
    .unwrap_err();
    insta::assert_snapshot!(failure(&err).text());
}

#[tokio::test]
async fn a_token_endpoint_that_keeps_failing_is_given_up_on() {
    let server = OidcServer::failing_first("sts.amazonaws.com", usize::MAX);
    let err = aws::session_with(
        &inputs(Some(&role_arn("123456789012"))),
        &Runner::default(),
        request(&server),
        loader("http://127.0.0.1:9"),
    )
    .await
    .unwrap_err();
    assert_eq!(
        failure(&err).text(),
        "the GitHub OIDC token endpoint answered HTTP 500 after 5 attempt(s)"
    );
    assert_eq!(server.hits(), 5);
}

#[tokio::test]
async fn a_refused_runner_bearer_is_not_retried() {
    let server = OidcServer::start("sts.amazonaws.com");
    let wrong = Some(TokenRequest {
        url: server.request_url.clone(),
        bearer: SecretString::from("stale".to_string()),
    });
    let err = aws::session_with(
        &inputs(Some(&role_arn("123456789012"))),
        &Runner::default(),
        wrong,
        loader("http://127.0.0.1:9"),
    )
    .await
    .unwrap_err();
    let text = failure(&err).text();
    assert!(
        text.starts_with(
            "the GitHub OIDC token endpoint refused the runner's request token (HTTP 401)"
        ),
        "{text}"
    );
    assert_eq!(server.hits(), 1);
}

/// moto accepts any token for any role, so a denial comes from this stub STS; only this case and
/// the throttling one use it.
#[tokio::test]
async fn sts_access_denied_shows_the_claims_against_the_trust_policy_but_never_the_token() {
    let server = OidcServer::start("sts.amazonaws.com");
    let sts = Stub::start(|_| {
        sts_error(
            403,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        )
    });
    let err = aws::session_with(
        &inputs(Some(&role_arn("123456789012"))),
        &Runner::default(),
        request(&server),
        loader(&sts.base),
    )
    .await
    .unwrap_err();
    let text = failure(&err).text();
    assert!(!text.contains(&server.token), "the token leaked: {text}");
    for part in server.token.split('.') {
        assert!(!text.contains(part), "a part of the token leaked: {text}");
    }
    insta::assert_snapshot!(text);
    assert_eq!(sts.hits(), 1, "a denial is not retried");
}

#[tokio::test]
async fn sts_throttling_is_retried_and_the_role_request_carries_the_inputs() {
    let server = OidcServer::start("sts.amazonaws.com");
    let hits = std::sync::atomic::AtomicUsize::new(0);
    let sts = Stub::start(
        move |_| match hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => sts_error(400, "Throttling", "Rate exceeded"),
            1 => sts_error(
                400,
                "IDPCommunicationError",
                "Couldn't retrieve verification key from your identity provider",
            ),
            _ => sts_success("444455556666", "stub-secret-key", "stub-session-token"),
        },
    );
    let mut aws_in = inputs(Some("arn:aws:iam::444455556666:role/nova-deploy"));
    aws_in.role_session_name = "nova-auth-service".into();
    aws_in.role_duration_seconds = 900;
    let base = loader(&sts.base)
        .region(aws_config::Region::new(REGION))
        .load()
        .await;
    let token = SecretString::from(server.token.clone());
    let creds = aws::sts::assume_role(
        &base,
        &aws_in,
        aws_in.role_to_assume.as_deref().unwrap(),
        &token,
        &Runner::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        creds.assumed_role_arn,
        "arn:aws:sts::444455556666:assumed-role/nova-deploy/GitHubActions"
    );
    assert_eq!(creds.secret_access_key.expose_secret(), "stub-secret-key");
    assert!(
        !format!("{creds:?}").contains("stub-secret-key")
            && !format!("{creds:?}").contains("stub-session-token")
    );

    let requests = sts.requests();
    assert_eq!(requests.len(), 3);
    let last = &requests[2];
    assert_eq!(
        last.form("Action").as_deref(),
        Some("AssumeRoleWithWebIdentity")
    );
    assert_eq!(
        last.form("RoleArn").as_deref(),
        Some("arn:aws:iam::444455556666:role/nova-deploy")
    );
    assert_eq!(
        last.form("RoleSessionName").as_deref(),
        Some("nova-auth-service")
    );
    assert_eq!(last.form("DurationSeconds").as_deref(), Some("900"));
    assert_eq!(
        last.form("WebIdentityToken").as_deref(),
        Some(server.token.as_str())
    );
}

#[tokio::test]
async fn no_ambient_credentials_is_a_clear_failure() {
    let err = aws::session_with(
        &inputs(None),
        &Runner::default(),
        None,
        loader("http://127.0.0.1:9"),
    )
    .await
    .unwrap_err();
    let text = failure(&err).text();
    assert!(
        text.starts_with("no AWS credentials: role-to-assume is empty"),
        "{text}"
    );
    assert!(text.contains("hint: set role-to-assume"), "{text}");
}

// ------------------------------------------------------------------ child process: the real environment

/// What one child run of [`aws::session`] printed.
struct Child {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Child {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Values registered with `::add-mask::`.
    fn masked(&self) -> Vec<String> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("::add-mask::"))
            .map(str::to_string)
            .collect()
    }

    /// No masked value appears on any line other than its own `::add-mask::` command.
    #[track_caller]
    fn assert_masks_hold(&self) {
        let masked = self.masked();
        for line in self
            .all()
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
        {
            for secret in &masked {
                assert!(
                    !line.contains(secret.as_str()),
                    "a masked value leaked on {line:?}"
                );
            }
        }
    }

    fn value(&self, key: &str) -> Option<&str> {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
    }
}

/// Runs [`child_session`] with exactly `env` (plus PATH and a scratch HOME), as the runner would
/// start the action: `GITHUB_ACTIONS=true`, IMDS off.
fn run_child(ops: &str, env: &[(&str, String)]) -> Child {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "aws::child_session",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env_clear()
    .env("PATH", std::env::var("PATH").unwrap_or_default())
    .env("HOME", home.path())
    .env("GITHUB_ACTIONS", "true")
    .env("AWS_EC2_METADATA_DISABLED", "true")
    .env(AWS_CHILD, ops);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Child {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The child side: `aws::session` from the process environment, then the operations in
/// `DA_AWS_CHILD` (`login`, `ensure:<repository>:<create>`), errors reported as the action does.
#[tokio::test]
#[ignore = "child process of the aws tests; does nothing unless DA_AWS_CHILD is set"]
async fn child_session() {
    let Some(ops) = aws_child_ops() else {
        return;
    };
    // The harness has printed `test … ` without a line break; workflow commands start lines.
    println!();
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let runner = Runner::from_env();
    let aws_in = Aws {
        region: var("INPUT_AWS-REGION").or_else(|| var("AWS_REGION")),
        role_to_assume: var("INPUT_ROLE-TO-ASSUME"),
        role_session_name: "GitHubActions".into(),
        role_duration_seconds: 3600,
        audience: var("INPUT_AUDIENCE").unwrap_or_else(|| "sts.amazonaws.com".into()),
    };
    let result = async {
        let session = aws::session(&aws_in, &runner).await?;
        println!("account-id={}", session.account_id);
        println!("registry={}", session.default_registry());
        println!("session={session:?}");
        for op in ops.split(',').filter(|o| !o.is_empty()) {
            match op.split(':').collect::<Vec<_>>().as_slice() {
                ["login"] => {
                    let login = session.ecr_login(&runner).await?;
                    println!("login-user={}", login.username);
                    println!("login={login:?}");
                }
                ["ensure", repo, create] => {
                    session
                        .ensure_repository(repo, *create == "true", TagMutability::Mutable)
                        .await?;
                    println!("ensured={repo}");
                }
                other => panic!("unknown op {other:?}"),
            }
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        runner.error(&Failure::of(&e));
        std::process::exit(1);
    }
}

#[test]
#[ignore = "needs moto; run by scripts/test.sh"]
fn in_the_real_environment_oidc_sts_and_ecr_secrets_are_masked_and_never_printed() {
    let account = fresh_account();
    let server = OidcServer::start("sts.amazonaws.com");
    let mut env = vec![
        ("AWS_ENDPOINT_URL", moto()),
        ("INPUT_AWS-REGION", REGION.to_string()),
        ("INPUT_ROLE-TO-ASSUME", role_arn(&account)),
    ];
    env.extend(server.env());
    let run = run_child("login", &env);
    assert!(run.ok, "{}", run.all());
    assert_eq!(run.value("account-id"), Some(account.as_str()));
    assert_eq!(run.value("login-user"), Some("AWS"));

    let masked = run.masked();
    assert!(masked.contains(&server.token), "the OIDC token is masked");
    assert!(
        masked.contains(&format!("{account}-auth-token")),
        "the ECR password is masked"
    );
    // OIDC token, access key id, secret key, session token, ECR token and its password.
    assert_eq!(masked.len(), 6, "{masked:?}");
    run.assert_masks_hold();
    assert!(
        !run.all().contains(&server.bearer),
        "the runner's request token is never printed"
    );
}

#[test]
#[ignore = "needs moto; run by scripts/test.sh"]
fn in_the_real_environment_ambient_credentials_work_and_are_masked() {
    let env = [
        ("AWS_ENDPOINT_URL", moto()),
        ("INPUT_AWS-REGION", REGION.to_string()),
        ("AWS_ACCESS_KEY_ID", "AKIAAMBIENTCHILD0001".to_string()),
        (
            "AWS_SECRET_ACCESS_KEY",
            format!("ambient-secret-{}", oidc::nonce()),
        ),
    ];
    let run = run_child("login", &env);
    assert!(run.ok, "{}", run.all());
    assert_eq!(run.value("account-id"), Some(MOTO_DEFAULT_ACCOUNT));
    assert!(run.masked().contains(&env[3].1));
    run.assert_masks_hold();
}

#[test]
fn in_the_real_environment_missing_oidc_variables_give_the_hint() {
    let env = [
        ("INPUT_AWS-REGION", REGION.to_string()),
        ("INPUT_ROLE-TO-ASSUME", role_arn("123456789012")),
    ];
    let run = run_child("", &env);
    assert!(!run.ok);
    let error = run
        .stdout
        .lines()
        .find(|l| l.starts_with("::error::"))
        .unwrap_or_else(|| panic!("no ::error:: line:\n{}", run.all()));
    assert!(error.contains("permissions: id-token: write"), "{error}");
    assert!(error.contains("fork"), "{error}");
}

/// `AWS_ENDPOINT_URL_STS` beats `AWS_ENDPOINT_URL` for STS alone (aws-config's rule): STS goes to
/// the denying stub while everything else would go to moto.
#[test]
#[ignore = "needs moto; run by scripts/test.sh"]
fn in_the_real_environment_the_sts_endpoint_variable_is_honoured_and_a_denial_hides_the_token() {
    let server = OidcServer::start("sts.amazonaws.com");
    let sts = Stub::start(|_| {
        sts_error(
            403,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        )
    });
    let mut env = vec![
        ("AWS_ENDPOINT_URL", moto()),
        ("AWS_ENDPOINT_URL_STS", sts.base.clone()),
        ("INPUT_AWS-REGION", REGION.to_string()),
        ("INPUT_ROLE-TO-ASSUME", role_arn("123456789012")),
    ];
    env.extend(server.env());
    let run = run_child("login", &env);
    assert!(!run.ok);
    assert_eq!(sts.hits(), 1);
    let error = run
        .stdout
        .lines()
        .find(|l| l.starts_with("::error::"))
        .unwrap_or_else(|| panic!("no ::error:: line:\n{}", run.all()));
    assert!(
        error.contains(&format!("sub: \"{}\"", oidc::SUB)),
        "{error}"
    );
    assert!(
        error.contains("token.actions.githubusercontent.com:sub"),
        "{error}"
    );
    assert!(run.masked().contains(&server.token));
    run.assert_masks_hold();
}

#[test]
fn in_the_real_environment_no_region_anywhere_is_a_clear_failure() {
    let run = run_child(
        "",
        &[
            ("AWS_ACCESS_KEY_ID", "AKIAAMBIENTCHILD0002".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "x".to_string()),
        ],
    );
    assert!(!run.ok);
    let error = run
        .stdout
        .lines()
        .find(|l| l.starts_with("::error::"))
        .unwrap_or_else(|| panic!("no ::error:: line:\n{}", run.all()));
    assert_eq!(
        error,
        "::error::no AWS region is set%0Ahint: set the aws-region input (or AWS_REGION), e.g. aws-region: ap-northeast-1"
    );
}

// ------------------------------------------------------------------ through the binary

/// Every masked value stays out of every other line of stdout, stderr and the summary.
#[track_caller]
fn assert_masks_hold(run: &Run) -> Vec<String> {
    let masked: Vec<String> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("::add-mask::"))
        .map(str::to_string)
        .collect();
    for text in [&run.stdout, &run.stderr, &run.summary] {
        for line in text.lines().filter(|l| !l.starts_with("::add-mask::")) {
            for secret in &masked {
                assert!(
                    !line.contains(secret.as_str()),
                    "a masked value leaked on {line:?}:\n{}",
                    run.all_output()
                );
            }
        }
    }
    masked
}

/// The action as a workflow calls it for auth-service: AWS through `AWS_ENDPOINT_URL` (moto or
/// `endpoint`), the default (ECR) registry, IMDS off.
fn aws_action(ws: &Workspace, endpoint: &str) -> Action {
    Action::new(&ws.path)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", endpoint)
        .input("service", "auth-service")
        .input("tag", "v1")
        .input("aws-region", REGION)
        .input("repository", "nova/auth-service")
        .input("image-name", "auth-service")
}

fn with_oidc(mut action: Action, server: &OidcServer) -> Action {
    for (k, v) in server.env() {
        action = action.env(k, v);
    }
    action
}

#[test]
#[ignore = "needs moto; run by scripts/test.sh"]
fn the_action_assumes_the_role_through_a_flaky_token_endpoint_and_promotes_into_the_ecr_registry() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let account = fresh_account();
    let server = OidcServer::failing_first("sts.amazonaws.com", 2);
    let run = with_oidc(aws_action(&ws, &moto()), &server)
        .input("role-to-assume", &role_arn(&account))
        .input("build", "false")
        .run();
    run.assert_ok();

    let registry = format!("{account}.dkr.ecr.{REGION}.amazonaws.com");
    // moto names the assumed role's account after the role ARN: the role reached STS.
    assert_eq!(run.output("aws-account-id"), account);
    assert_eq!(
        run.output("image"),
        format!("{registry}/nova/auth-service:v1")
    );
    assert!(
        remote.overlay().contains(&format!(
            "newName: {registry}/nova/auth-service\n    newTag: v1\n"
        )),
        "{}",
        remote.overlay()
    );
    assert_eq!(server.hits(), 3, "two 500s, then the token");

    let masked = assert_masks_hold(&run);
    assert!(
        masked.contains(&server.token),
        "the OIDC token is masked: {masked:?}"
    );
    // The token, the access key id, the secret key and the session token.
    assert_eq!(masked.len(), 4, "{masked:?}");
    assert!(!run.all_output().contains(&server.bearer));
}

#[test]
#[ignore = "needs dockerd+registry+moto; run by scripts/test.sh"]
fn the_action_builds_and_pushes_with_the_ecr_token_and_creates_the_repository_with_scan_on_push() {
    let _daemon = crate::support::docker::shared_daemon();
    let s = services();
    let (registry, moto_account, base_image) = (
        s.registry.clone(),
        s.moto_account_id.clone(),
        s.base_image.clone(),
    );
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/service");
    let service_dir = ws.path.join("backend/auth-service");
    std::fs::create_dir_all(&service_dir).unwrap();
    copy_dir(&fixture, &service_dir);
    let repository = format!("da-test/aws-{}", oidc::nonce());
    let server = OidcServer::start("sts.amazonaws.com");

    // The local registry's htpasswd holds the password moto's ECR token decodes to for its
    // default account, so the role lives there; `registry` is the only input a real job would
    // not pass.
    let run = with_oidc(aws_action(&ws, &moto()), &server)
        .input("role-to-assume", &role_arn(&moto_account))
        .input("registry", &registry)
        .input("repository", &repository)
        .input("create-repository", "true")
        .input("context", "backend/auth-service")
        .input("dockerfile", "backend/auth-service/Dockerfile")
        .input(
            "build-args",
            &format!("BASE={base_image}\nGREETING=aws-{}\nWORK=1", oidc::nonce()),
        )
        .run();
    run.assert_ok();
    assert_eq!(run.output("aws-account-id"), moto_account);
    assert_eq!(run.output("built"), "true");
    assert!(
        run.output("digest").starts_with("sha256:"),
        "{:?}",
        run.outputs
    );
    assert_eq!(run.output("image"), format!("{registry}/{repository}:v1"));
    assert!(
        remote
            .overlay()
            .contains(&format!("newName: {registry}/{repository}\n")),
        "{}",
        remote.overlay()
    );

    let masked = assert_masks_hold(&run);
    assert!(masked.contains(&server.token), "{masked:?}");
    assert!(
        masked.contains(&format!("{moto_account}-auth-token")),
        "the ECR password is masked: {masked:?}"
    );

    let ecr = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let config = aws_config::defaults(BehaviorVersion::latest())
                .endpoint_url(moto())
                .region(aws_config::Region::new(REGION))
                .credentials_provider(aws_sdk_ecr::config::Credentials::new(
                    "AKIAMOTODEFAULT00001",
                    "x",
                    None,
                    None,
                    "test",
                ))
                .load()
                .await;
            aws_sdk_ecr::Client::new(&config)
                .describe_repositories()
                .repository_names(&repository)
                .send()
                .await
                .unwrap()
        });
    let repo = &ecr.repositories()[0];
    assert_eq!(
        repo.image_scanning_configuration()
            .map(|c| c.scan_on_push()),
        Some(true)
    );
    assert_eq!(
        repo.image_tag_mutability(),
        Some(&aws_sdk_ecr::types::ImageTagMutability::Mutable)
    );
}

#[test]
#[ignore = "needs moto; run by scripts/test.sh"]
fn the_action_stops_at_a_missing_ecr_repository_when_creation_is_off_and_changes_nothing() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let head = remote.head();
    let account = fresh_account();
    let server = OidcServer::start("sts.amazonaws.com");
    let run = with_oidc(aws_action(&ws, &moto()), &server)
        .input("role-to-assume", &role_arn(&account))
        .run();
    let error = error_line(&run);
    assert!(
        error.contains(&format!(
            "ECR repository nova/auth-service does not exist in {account}.dkr.ecr.{REGION}.amazonaws.com (region {REGION})"
        )),
        "{error}"
    );
    assert!(
        error.contains("hint: create it, or set the input `create-repository: true`"),
        "{error}"
    );
    assert_eq!(remote.head(), head, "nothing was pushed");
    assert_masks_hold(&run);
}

#[test]
fn without_the_oidc_variables_the_action_fails_with_the_permissions_hint() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let run = aws_action(&ws, "http://127.0.0.1:9")
        .input("role-to-assume", &role_arn("123456789012"))
        .input("build", "false")
        .run();
    let error = error_line(&run);
    assert!(error.contains("there is no GitHub OIDC token"), "{error}");
    assert!(
        error.contains("hint: give the job `permissions: id-token: write`"),
        "{error}"
    );
    assert!(error.contains("forks never get an OIDC token"), "{error}");
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.starts_with("::error"))
            .count(),
        1,
        "one error line:\n{}",
        run.stdout
    );
}

/// moto accepts any token, so the denial comes from the stub STS, reached through
/// `AWS_ENDPOINT_URL_STS` while everything else would go to moto.
#[test]
#[ignore = "needs moto; run by scripts/test.sh"]
fn an_sts_denial_shows_the_claims_against_the_trust_policy_and_never_the_token() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let server = OidcServer::start("sts.amazonaws.com");
    let sts = Stub::start(|_| {
        sts_error(
            403,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        )
    });
    let run = with_oidc(aws_action(&ws, &moto()), &server)
        .env("AWS_ENDPOINT_URL_STS", &sts.base)
        .input("role-to-assume", &role_arn("123456789012"))
        .input("build", "false")
        .run();
    let error = error_line(&run);
    assert!(
        error.contains(
            "STS denied AssumeRoleWithWebIdentity for arn:aws:iam::123456789012:role/nova-deploy"
        ),
        "{error}"
    );
    assert!(
        error.contains(&format!(
            "sub: \"{}\", aud: \"sts.amazonaws.com\", repository: \"{}\"",
            oidc::SUB,
            oidc::REPOSITORY
        )),
        "{error}"
    );
    assert!(
        error.contains("case-sensitive") && error.contains("environment:"),
        "{error}"
    );
    assert_eq!(sts.hits(), 1);
    let masked = assert_masks_hold(&run);
    assert!(masked.contains(&server.token));
    for part in server.token.split('.') {
        assert!(
            !error.contains(part),
            "a part of the token is in the error: {error}"
        );
    }
}

#[test]
#[ignore = "needs moto; run by scripts/test.sh"]
fn ambient_credentials_serve_when_role_to_assume_is_empty() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let secret = format!("ambient-secret-{}", oidc::nonce());
    let run = aws_action(&ws, &moto())
        .env("AWS_ACCESS_KEY_ID", "AKIAAMBIENTBINARY001")
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .input("build", "false")
        .run();
    run.assert_ok();
    assert_eq!(run.output("aws-account-id"), MOTO_DEFAULT_ACCOUNT);
    assert_eq!(
        run.output("image"),
        format!("{MOTO_DEFAULT_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/nova/auth-service:v1")
    );
    assert!(assert_masks_hold(&run).contains(&secret));
}
