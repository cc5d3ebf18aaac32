//! What a team adopts: the example workflow, the image and the workflows that build it. The
//! end-to-end test runs `examples/staging-deploy.yml` under act, offline: 8 matrix jobs of the
//! locally built action image against the registry, moto, an OIDC stub and a git daemon remote.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use yaml_rust2::{Yaml, YamlLoader};

use crate::support::argocd::{ArgoStandIn, Script};
use crate::support::services::reuse_act_image;
use crate::support::{OVERLAY, SERVICES, git, services};

/// The image `action.yml` runs; `scripts/image.sh` builds it from this checkout.
const ACTION_IMAGE: &str = "ghcr.io/nova/deploy-action:v1";
const EXAMPLE: &str = "examples/staging-deploy.yml";
/// The role the example assumes (repository variable AWS_DEPLOY_ROLE_ARN); moto's account.
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/nova-staging-deploy";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Yaml {
    YamlLoader::load_from_str(&read(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .remove(0)
}

fn str_keys(y: &Yaml) -> BTreeSet<String> {
    y.as_hash()
        .map(|h| {
            h.keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `uses:` values of every step in a workflow file.
fn uses_of(rel: &str) -> Vec<String> {
    let doc = yaml(rel);
    let mut out = Vec::new();
    for (_, job) in doc["jobs"]
        .as_hash()
        .unwrap_or_else(|| panic!("{rel}: no jobs"))
    {
        for step in job["steps"].as_vec().into_iter().flatten() {
            if let Some(u) = step["uses"].as_str() {
                out.push(u.to_string());
            }
        }
    }
    out
}

fn workflow_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(".github/workflows"))
        .expect(".github/workflows exists")
        .map(|e| {
            format!(
                ".github/workflows/{}",
                e.unwrap().file_name().to_string_lossy()
            )
        })
        .filter(|f| f.ends_with(".yml") || f.ends_with(".yaml"))
        .collect();
    files.push(EXAMPLE.to_string());
    files.sort();
    files
}

#[test]
fn the_example_workflow_is_the_nova_staging_matrix() {
    let doc = yaml(EXAMPLE);
    let job = &doc["jobs"]["deploy"];
    let services: Vec<&str> = job["strategy"]["matrix"]["service"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(services, SERVICES);
    assert_eq!(job["strategy"]["max-parallel"].as_i64(), Some(4));
    assert_eq!(job["strategy"]["fail-fast"].as_bool(), Some(false));
    assert_eq!(doc["permissions"]["id-token"].as_str(), Some("write"));
    assert_eq!(doc["permissions"]["contents"].as_str(), Some("write"));
    let on = &doc["on"];
    assert_eq!(
        on["push"]["branches"].as_vec().unwrap()[0].as_str(),
        Some("main")
    );
    let paths: Vec<&str> = on["push"]["paths"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(paths, ["backend/**", "k8s/**"]);
    assert!(str_keys(on).contains("workflow_dispatch"));

    let step = job["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| s["uses"].as_str() == Some("nova/deploy-action@v1"))
        .expect("a step uses nova/deploy-action@v1");
    let with = &step["with"];
    assert_eq!(with["aws-region"].as_str(), Some("ap-northeast-1"));
    assert_eq!(
        with["repository"].as_str(),
        Some("nova/${{ matrix.service }}")
    );
    assert_eq!(
        with["dockerfile"].as_str(),
        Some("backend/${{ matrix.service }}/Dockerfile")
    );
    assert_eq!(with["context"].as_str(), Some("."));
    assert_eq!(with["kustomization"].as_str(), Some(OVERLAY));
    assert!(
        with["role-to-assume"]
            .as_str()
            .unwrap()
            .contains("${{ vars."),
        "the role comes from a repository variable"
    );
}

#[test]
fn the_example_workflow_passes_only_inputs_that_action_yml_declares() {
    let declared = str_keys(&yaml("action.yml")["inputs"]);
    let doc = yaml(EXAMPLE);
    for step in doc["jobs"]["deploy"]["steps"].as_vec().unwrap() {
        if step["uses"].as_str() == Some("nova/deploy-action@v1") {
            let passed = str_keys(&step["with"]);
            let unknown: Vec<_> = passed.difference(&declared).collect();
            assert!(
                unknown.is_empty(),
                "{EXAMPLE} passes undeclared inputs {unknown:?}"
            );
        }
    }
    // And reads only declared outputs.
    let outputs = str_keys(&yaml("action.yml")["outputs"]);
    let text = read(EXAMPLE);
    for (i, _) in text.match_indices("steps.deploy.outputs.") {
        let name: String = text[i + "steps.deploy.outputs.".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        assert!(
            outputs.contains(&name),
            "{EXAMPLE} reads undeclared output {name:?}"
        );
    }
}

#[test]
fn every_action_the_workflows_use_is_pinned_by_full_commit_sha() {
    for file in workflow_files() {
        for uses in uses_of(&file) {
            // Our own action is referenced the way users reference it.
            if uses == "nova/deploy-action@v1"
                || uses.starts_with("./")
                || uses.starts_with("docker://")
            {
                continue;
            }
            let sha = uses.rsplit_once('@').map(|(_, r)| r).unwrap_or("");
            assert!(
                sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
                "{file}: `uses: {uses}` is not pinned by a full commit SHA"
            );
        }
    }
}

#[test]
fn ci_and_release_grant_no_permissions_by_default() {
    for file in [".github/workflows/ci.yml", ".github/workflows/release.yml"] {
        let doc = yaml(file);
        assert_eq!(
            doc["permissions"].as_hash().map(|h| h.len()),
            Some(0),
            "{file}: top-level `permissions: {{}}`"
        );
    }
}

/// The Dockerfile's stages, as (name, instructions), continuation lines joined.
fn dockerfile_stages() -> Vec<(String, Vec<String>)> {
    let text = read("Dockerfile").replace("\\\n", " ");
    let mut stages: Vec<(String, Vec<String>)> = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if let Some(from) = line.strip_prefix("FROM ") {
            let name = from.split_whitespace().last().unwrap_or("").to_string();
            stages.push((name, Vec::new()));
        }
        if let Some((_, body)) = stages.last_mut() {
            body.push(line.to_string());
        }
    }
    stages
}

#[test]
fn the_image_runs_the_binary_in_exec_form_as_root_without_workdir() {
    let stages = dockerfile_stages();
    let last = &stages.last().unwrap().0;
    assert_eq!(
        last, "runtime",
        "the default target is the published runtime"
    );
    for (name, body) in stages.iter().filter(|(n, _)| n.starts_with("runtime")) {
        let entry: Vec<_> = body
            .iter()
            .filter(|l| l.starts_with("ENTRYPOINT"))
            .collect();
        assert_eq!(
            entry,
            [&"ENTRYPOINT [\"/usr/local/bin/deploy-action\"]".to_string()],
            "stage {name}"
        );
        assert!(
            !body
                .iter()
                .any(|l| l.starts_with("USER") || l.starts_with("WORKDIR") || l.starts_with("CMD")),
            "stage {name}: no USER, WORKDIR or CMD"
        );
    }
    // Every base image is pinned by digest (through the ARG defaults the FROM lines use).
    let text = read("Dockerfile");
    for line in text.lines().filter(|l| {
        (l.starts_with("ARG ") && l.contains("_BASE=")) || l.starts_with("ARG RUST_IMAGE=")
    }) {
        assert!(line.contains("@sha256:"), "not pinned by digest: {line}");
    }
    for (_, body) in &stages {
        let from = &body[0];
        let image = from.split_whitespace().nth(1).unwrap();
        assert!(
            image.starts_with("${") || stages.iter().any(|(n, _)| n == image),
            "FROM must use a pinned ARG or a stage: {from}"
        );
    }
}

// ------------------------------------------------------------------ the act run

/// A stand-in for the runner's OIDC token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`).
struct OidcStub {
    url: String,
    token: String,
    audiences: Arc<Mutex<Vec<String>>>,
}

impl OidcStub {
    fn start() -> OidcStub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let token = format!("stub-request-token-{}", std::process::id());
        let audiences = Arc::new(Mutex::new(Vec::new()));
        let (t, a) = (token.clone(), audiences.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (t, a) = (t.clone(), a.clone());
                std::thread::spawn(move || serve_oidc(stream, &t, &a));
            }
        });
        // Like the runner's: a query string already present, so the client must append with `&`.
        OidcStub {
            url: format!("http://127.0.0.1:{port}/_apis/idtoken?api-version=2.0"),
            token,
            audiences,
        }
    }
}

fn serve_oidc(stream: TcpStream, token: &str, audiences: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut authorized = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            authorized |= k.trim().eq_ignore_ascii_case("authorization")
                && v.trim().eq_ignore_ascii_case(&format!("bearer {token}"));
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let audience = target
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("audience="))
        .unwrap_or("")
        .to_string();
    let (status, body) = if !authorized {
        (
            "401 Unauthorized",
            r#"{"message":"bad request token"}"#.to_string(),
        )
    } else {
        audiences.lock().unwrap().push(audience.clone());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT","kid":"oidc-stub"}"#);
        let claims = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"iss":"https://token.actions.githubusercontent.com","sub":"repo:nova/monorepo:ref:refs/heads/main","aud":"{audience}","repository":"nova/monorepo","ref":"refs/heads/main","iat":{now},"nbf":{now},"exp":{}}}"#,
            now + 300
        ));
        (
            "200 OK",
            format!(
                r#"{{"value":"{header}.{claims}.{}"}}"#,
                URL_SAFE_NO_PAD.encode("not-a-real-signature")
            ),
        )
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Runs a command, panicking with its output on failure; returns stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies the consumer fixture to `dest`, pointing its overlay at `registry`.
fn copy_fixture(src: &Path, dest: &Path, registry: &str) {
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dest.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
            copy_fixture(&entry.path(), &to, registry);
        } else {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            std::fs::write(
                &to,
                text.replace("registry.local/", &format!("{registry}/")),
            )
            .unwrap();
        }
    }
}

/// The example workflow as this machine runs it: `sh` for run steps (the job image is busybox)
/// and the local registry. Everything else reaches it as act flags (vars, env), unchanged.
fn adapted_example(registry: &str) -> String {
    let mut text = read(EXAMPLE);
    for (from, to) in [
        (
            "\njobs:\n",
            "\n# act: the job image is busybox.\ndefaults:\n  run:\n    shell: sh\n\njobs:\n"
                .to_string(),
        ),
        (
            "          aws-region: ap-northeast-1\n",
            format!("          aws-region: ap-northeast-1\n          registry: {registry}\n"),
        ),
    ] {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{EXAMPLE} changed shape: {from:?} should occur once"
        );
        text = text.replacen(from, &to, 1);
    }
    text
}

/// The ECR repositories `nova/<service>` in moto, as a team has them before adopting the
/// action (the example does not set `create-repository`). moto checks no signature, and keys
/// it did not issue belong to its default account, the role's.
fn create_ecr_repositories(moto: &str) {
    for svc in SERVICES {
        let out = Command::new("curl")
            .args(["-sS", "-X", "POST", moto])
            .args(["-H", "Content-Type: application/x-amz-json-1.1"])
            .args(["-H", "X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.CreateRepository"])
            .args([
                "-H",
                "Authorization: AWS4-HMAC-SHA256 Credential=AKIDACTFIXTURE/20260101/ap-northeast-1/ecr/aws4_request, SignedHeaders=host, Signature=0",
            ])
            .args(["-d", &format!(r#"{{"repositoryName":"nova/{svc}","imageScanningConfiguration":{{"scanOnPush":true}}}}"#)])
            .output()
            .expect("curl runs");
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success()
                && (body.contains("repositoryArn") || body.contains("RepositoryAlreadyExists")),
            "creating nova/{svc} in moto: {body}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// One line of act's `--json` log.
#[derive(Debug, serde::Deserialize)]
struct ActEvent {
    #[serde(default)]
    msg: String,
    #[serde(default)]
    matrix: BTreeMap<String, serde_json::Value>,
    #[serde(rename = "jobResult")]
    job_result: Option<String>,
    command: Option<String>,
    name: Option<String>,
    arg: Option<String>,
    #[serde(default)]
    raw_output: bool,
}

impl ActEvent {
    fn service(&self) -> Option<&str> {
        self.matrix.get("service").and_then(|v| v.as_str())
    }
}

fn target_tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

#[test]
#[ignore = "needs act+dockerd; run by scripts/test.sh"]
fn the_example_workflow_deploys_all_eight_services_under_act() {
    let _daemon = crate::support::docker::shared_daemon();
    let t_all = Instant::now();
    let s = services();
    let registry = s.registry.clone();
    let (reg_user, reg_password) = (s.registry_user.clone(), s.registry_password.clone());
    let act = s.act.clone();
    let kubectl = s.kubectl.clone();

    // 1. The action image, from this checkout (scripts/image.sh: release binary, local base).
    let t_image = Instant::now();
    let image_line = if reuse_act_image() {
        format!("image {ACTION_IMAGE}: reused (DA_ACT_REUSE_IMAGE=1)")
    } else {
        run(Command::new("bash")
            .arg(root().join("scripts/image.sh"))
            .arg("--tag")
            .arg(ACTION_IMAGE))
        .trim()
        .to_string()
    };
    let image_secs = t_image.elapsed().as_secs_f64();

    // 2. A bare remote served by git daemon, and the consumer checkout whose origin it is.
    let name = format!(
        "act-{}-{}.git",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let remote_dir = s.git_daemon_base.join(&name);
    let remote_url = format!("{}/{name}", s.git_daemon_url);
    git(
        remote_dir.parent().unwrap(),
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            remote_dir.to_str().unwrap(),
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let checkout = tmp.path().join("monorepo");
    std::fs::create_dir_all(checkout.join(".github/workflows")).unwrap();
    copy_fixture(
        &root().join("tests/fixtures/consumer"),
        &checkout,
        &registry,
    );
    std::fs::write(
        checkout.join(".github/workflows/staging-deploy.yml"),
        adapted_example(&registry),
    )
    .unwrap();
    git(&checkout, &["init", "-q", "-b", "main"]);
    git(&checkout, &["add", "-A"]);
    git(&checkout, &["commit", "-qm", "Nova monorepo"]);
    git(&checkout, &["remote", "add", "origin", &remote_url]);
    git(
        &checkout,
        &["push", "-q", remote_dir.to_str().unwrap(), "main"],
    );
    let sha = git(&checkout, &["rev-parse", "HEAD"]);

    create_ecr_repositories(&s.moto_url);

    // 3. act, offline: a local platform image, no pulls, the action from this checkout; the
    // jobs verify against the Argo CD stand-in watching the remote.
    let oidc = OidcStub::start();
    let argo = ArgoStandIn::start(Script::new(&remote_dir, OVERLAY));
    let log_path = target_tmp().join("act-e2e.log");
    let t_act = Instant::now();
    let out = Command::new(&act)
        .current_dir(&checkout)
        .args([
            "push",
            "-W",
            ".github/workflows/staging-deploy.yml",
            "--json",
            "--rm",
            "--pull=false",
            "--no-cache-server",
        ])
        .args(["-P", &format!("ubuntu-latest={}", s.base_image)])
        // act runs as many jobs at once as there are CPUs; let max-parallel be the limit, as on GitHub.
        .args(["--concurrent-jobs", "8"])
        .args([
            "--local-repository",
            &format!("nova/deploy-action@v1={}", root().display()),
        ])
        .args(["--var", &format!("AWS_DEPLOY_ROLE_ARN={ROLE_ARN}")])
        .args(["--var", &format!("ARGOCD_SERVER={}", argo.url)])
        .args(["--var", "ARGOCD_APP=nova-staging"])
        .args(["--secret", &format!("ARGOCD_TOKEN={}", argo.token)])
        .args([
            "--env",
            &format!("ACTIONS_ID_TOKEN_REQUEST_URL={}", oidc.url),
        ])
        .args([
            "--env",
            &format!("ACTIONS_ID_TOKEN_REQUEST_TOKEN={}", oidc.token),
        ])
        .args(["--env", &format!("AWS_ENDPOINT_URL={}", s.moto_url)])
        .args(["--env", "AWS_EC2_METADATA_DISABLED=true"])
        .output()
        .expect("act runs");
    let act_secs = t_act.elapsed().as_secs_f64();
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    std::fs::write(&log_path, &log).unwrap();
    let events: Vec<ActEvent> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();

    // Per service: the job's result, the outputs it set, and what the later step printed.
    let mut results: BTreeMap<String, String> = BTreeMap::new();
    let mut outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut rollout: BTreeMap<String, String> = BTreeMap::new();
    let mut argocd: BTreeMap<String, String> = BTreeMap::new();
    for e in &events {
        let Some(svc) = e.service() else { continue };
        if let Some(r) = &e.job_result {
            results.insert(svc.to_string(), r.clone());
        }
        if e.command.as_deref() == Some("set-output") {
            outputs.entry(svc.to_string()).or_default().insert(
                e.name.clone().unwrap_or_default(),
                e.arg.clone().unwrap_or_default(),
            );
        }
        if e.raw_output && e.msg.starts_with("rollout ") {
            rollout.insert(svc.to_string(), e.msg.trim().to_string());
        }
        if e.raw_output && e.msg.starts_with("argocd ") && e.msg.contains(" sync=") {
            argocd.insert(svc.to_string(), e.msg.trim().to_string());
        }
    }
    let failed_lines = || -> String {
        let lines: Vec<&str> = events
            .iter()
            .filter(|e| {
                e.msg.contains("::error")
                    || e.msg.contains("Failure")
                    || e.job_result.as_deref() == Some("failure")
            })
            .map(|e| e.msg.trim())
            .collect();
        format!("{}\n(full log: {})", lines.join("\n"), log_path.display())
    };
    let expected: BTreeMap<String, String> = SERVICES
        .iter()
        .map(|s| (s.to_string(), "success".to_string()))
        .collect();
    assert_eq!(
        results,
        expected,
        "every matrix job passes; act exited {}:\n{}",
        out.status,
        failed_lines()
    );
    assert!(
        out.status.success(),
        "act exited {}:\n{}",
        out.status,
        failed_lines()
    );

    // The OIDC token was requested once per job, for STS's audience.
    assert_eq!(
        *oidc.audiences.lock().unwrap(),
        vec!["sts.amazonaws.com".to_string(); 8]
    );

    for svc in SERVICES {
        let o = &outputs[svc];
        let repo = format!("{registry}/nova/{svc}");
        // The image is in the registry, under the commit's SHA, with the digest the job reported.
        let head = run(Command::new("curl").args(["-sSfI", "-u", &format!("{reg_user}:{reg_password}")]).args([
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json",
            &format!("http://{registry}/v2/nova/{svc}/manifests/{sha}"),
        ]));
        let digest = head.lines().find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("docker-content-digest"))
                .map(|(_, v)| v.trim().to_string())
        });
        assert_eq!(
            digest.as_deref(),
            Some(o["digest"].as_str()),
            "{svc}: registry digest vs the job's output"
        );
        assert_eq!(o["image"], format!("{repo}:{sha}"), "{svc}");
        assert_eq!(o["image-ref"], format!("{repo}@{}", o["digest"]), "{svc}");
        assert_eq!(o["built"], "true", "{svc}");
        assert_eq!(o["changed"], "true", "{svc}");
        assert_eq!(
            o["aws-account-id"], "123456789012",
            "{svc}: the assumed role's account"
        );
        // A later step of the same job saw the outputs.
        assert_eq!(
            rollout.get(svc).map(String::as_str),
            Some(
                format!(
                    "rollout {svc} image-ref={} built=true changed=true commit={} attempts={}",
                    o["image-ref"], o["commit"], o["attempts"]
                )
                .as_str()
            ),
            "{svc}: the later step's line"
        );
        // Verified: Argo CD synced our commit or a later one, Healthy.
        assert_eq!(
            argocd.get(svc).map(String::as_str),
            Some(
                format!(
                    "argocd {svc} sync=Synced health=Healthy revision={}",
                    o["synced-revision"]
                )
                .as_str()
            ),
            "{svc}: the verification outputs"
        );
    }
    assert!(argo.requests() >= 8, "every job asked Argo CD");
    // act records each `::add-mask::` command's raw line; everything it shows is masked.
    let mask = format!("\"raw\":\"::add-mask::{}", argo.token);
    let shown: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&argo.token) && !l.contains(&mask))
        .collect();
    assert!(
        shown.is_empty(),
        "the Argo CD token shows in act's log: {shown:#?}"
    );

    // The remote's overlay sets all 8 new tags: one commit each, comments kept, and kustomize
    // renders exactly the images the jobs pushed.
    let verify = tmp.path().join("verify");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            remote_dir.to_str().unwrap(),
            verify.to_str().unwrap(),
        ],
    );
    assert_eq!(
        git(&verify, &["rev-list", "--count", "main"]),
        "9",
        "the seed plus one commit per service"
    );
    let commits: BTreeSet<String> = git(&verify, &["rev-list", "main", "--max-count=8"])
        .lines()
        .map(String::from)
        .collect();
    let reported: BTreeSet<String> = SERVICES
        .iter()
        .map(|s| outputs[*s]["commit"].clone())
        .collect();
    assert_eq!(
        commits, reported,
        "the jobs' `commit` outputs are the remote's 8 new commits"
    );
    let overlay = std::fs::read_to_string(verify.join(OVERLAY).join("kustomization.yaml")).unwrap();
    assert!(
        overlay.starts_with("# Nova staging."),
        "the header comment survives:\n{overlay}"
    );
    assert_eq!(
        overlay.matches("# set by deploy-action").count(),
        8,
        "line comments survive:\n{overlay}"
    );
    let rendered = run(Command::new(&kubectl)
        .arg("kustomize")
        .arg(verify.join(OVERLAY)));
    let images: BTreeSet<&str> = rendered
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("- image: ")
                .or_else(|| l.trim().strip_prefix("image: "))
        })
        .collect();
    let want: BTreeSet<String> = SERVICES
        .iter()
        .map(|s| format!("{registry}/nova/{s}:{sha}"))
        .collect();
    assert_eq!(
        images,
        want.iter().map(String::as_str).collect(),
        "kubectl kustomize renders the new images"
    );

    let summary = format!(
        "act end-to-end: 8/8 matrix jobs passed (max-parallel 4) in {act_secs:.1}s; image step {image_secs:.1}s; total {:.1}s\n{image_line}\nattempts: {}\n",
        t_all.elapsed().as_secs_f64(),
        SERVICES
            .iter()
            .map(|s| format!("{s}={}", outputs[*s]["attempts"]))
            .collect::<Vec<_>>()
            .join(" ")
    );
    std::fs::write(target_tmp().join("act-e2e-summary.txt"), &summary).unwrap();
    eprint!("{summary}");
    let _ = std::fs::remove_dir_all(&remote_dir);
}
