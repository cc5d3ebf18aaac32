//! Build, push and skip-existing against the real daemon and registry that `scripts/test.sh`
//! starts: the library's `docker` and `registry` modules, driven directly.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bollard::Docker;
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, ListContainersOptions,
    RemoveContainerOptions, RemoveImageOptions, TagImageOptions,
};
use deploy_action::docker::build::{self, BuildRequest, BuiltImage};
use deploy_action::docker::client::{self, Credentials};
use deploy_action::docker::{DockerError, push};
use deploy_action::github::Runner;
use deploy_action::registry::{self, RegistryError};
use futures_util::StreamExt;
use secrecy::SecretString;

use crate::support::{Action, Remote, Run, Workspace, copy_dir, error_line, service_env};

/// The components `scripts/test.sh` started, from the variables it exported.
struct Services {
    registry: String,
    user: String,
    password: String,
    base_image: String,
}

fn services() -> Services {
    // DOCKER_HOST is read by `client::connect`; fail here, clearly, if it is missing.
    service_env("DOCKER_HOST");
    Services {
        registry: service_env("DA_REGISTRY"),
        user: service_env("DA_REGISTRY_USER"),
        password: service_env("DA_REGISTRY_PASSWORD"),
        base_image: service_env("DA_BASE_IMAGE"),
    }
}

impl Services {
    fn creds(&self) -> Credentials {
        Credentials {
            username: self.user.clone(),
            password: SecretString::from(self.password.clone()),
        }
    }

    fn wrong_creds(&self) -> Credentials {
        Credentials {
            username: self.user.clone(),
            password: SecretString::from(format!("{}-wrong", self.password)),
        }
    }

    /// A repository no other test (or earlier run) uses.
    fn image(&self, name: &str) -> String {
        format!("{}/da-test/{name}-{}:v1", self.registry, unique())
    }
}

fn unique() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}-{:x}-{}",
        std::process::id(),
        nanos & 0xffff_ffff,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn docker() -> Docker {
    let docker = client::connect().expect("DOCKER_HOST names a socket");
    client::negotiate(&docker)
        .await
        .expect("the daemon answers");
    docker
}

fn runner() -> Runner {
    Runner::default()
}

/// A copy of `tests/fixtures/service` in a scratch directory, free to change.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("service");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/service"),
        &dir,
    );
    Fixture { _tmp: tmp, dir }
}

/// The fixture's build for `image`; `greeting` keys the RUN step's cache, so a fresh value
/// makes the step run, and reusing one lets it hit the cache.
fn request(fx: &Fixture, s: &Services, image: &str, greeting: &str) -> BuildRequest {
    let mut labels = vec![("com.example.team".to_string(), "nova".to_string())];
    labels.extend(build::oci_labels(
        Some("https://github.invalid/nova/monorepo"),
        "0123abc",
        "2026-01-01T00:00:00Z",
    ));
    BuildRequest {
        context: fx.dir.clone(),
        dockerfile: fx.dir.join("Dockerfile"),
        image: image.to_string(),
        build_args: vec![
            ("BASE".into(), s.base_image.clone()),
            ("GREETING".into(), greeting.into()),
            ("WORK".into(), "1".into()),
        ],
        labels,
        target: None,
        cache_from: Vec::new(),
    }
}

async fn build_ok(docker: &Docker, req: &BuildRequest) -> BuiltImage {
    build::build(docker, req, None, &runner())
        .await
        .unwrap_or_else(|e| panic!("build of {} failed: {e}", req.image))
}

/// A file's content inside an image, read through a created (never started) container.
async fn file_in_image(docker: &Docker, image: &str, path: &str) -> String {
    let body = bollard::models::ContainerCreateBody {
        image: Some(image.to_string()),
        ..Default::default()
    };
    let id = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .unwrap()
        .id;
    let mut tar = Vec::new();
    let mut stream = docker.download_from_container(
        &id,
        Some(DownloadFromContainerOptions {
            path: path.to_string(),
        }),
    );
    while let Some(chunk) = stream.next().await {
        tar.extend_from_slice(&chunk.unwrap());
    }
    docker
        .remove_container(
            &id,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut entry = archive
        .entries()
        .unwrap()
        .next()
        .expect("the file is in the archive")
        .unwrap();
    let mut text = String::new();
    entry.read_to_string(&mut text).unwrap();
    text
}

/// A raw HTTP/1.1 request to the registry API: status, headers (lower-cased names), body.
fn registry_get(
    registry: &str,
    path: &str,
    auth: Option<(&str, &str)>,
) -> (u16, HashMap<String, String>, Vec<u8>) {
    let mut stream = TcpStream::connect(registry).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {registry}\r\nConnection: close\r\nAccept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json\r\n"
    );
    if let Some((user, password)) = auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        req.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect::<HashMap<_, _>>();
    assert!(
        !headers
            .get("transfer-encoding")
            .is_some_and(|t| t.contains("chunked")),
        "a sized body"
    );
    (status, headers, raw[split + 4..].to_vec())
}

fn sha256_hex(data: &[u8]) -> String {
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// `registry/da-test/x` and `v1` → `/v2/da-test/x/manifests/v1`.
fn manifest_path(image: &str, reference: &str) -> String {
    let (repository, _) = client::split_tag(image);
    let path = repository.split_once('/').unwrap().1;
    format!("/v2/{path}/manifests/{reference}")
}

async fn remove_image(docker: &Docker, image: &str) {
    docker
        .remove_image(
            image,
            Some(RemoveImageOptions {
                force: true,
                ..Default::default()
            }),
            None,
        )
        .await
        .unwrap();
}

/// Removes every local tag of `image`'s repository, so test runs do not pile up images.
async fn remove_repository(docker: &Docker, image: &str) {
    let (repository, _) = client::split_tag(image);
    let filters = HashMap::from([("reference".to_string(), vec![repository.to_string()])]);
    let options = bollard::query_parameters::ListImagesOptions {
        filters: Some(filters),
        ..Default::default()
    };
    for listed in docker.list_images(Some(options)).await.unwrap() {
        for tag in listed.repo_tags {
            let _ = docker
                .remove_image(
                    &tag,
                    Some(RemoveImageOptions {
                        force: true,
                        ..Default::default()
                    }),
                    None,
                )
                .await;
        }
    }
}

/// `image` under another registry host (the same image id, a second tag).
async fn retag(docker: &Docker, image: &str, host: &str) -> String {
    let (repository, tag) = client::split_tag(image);
    let path = repository.split_once('/').unwrap().1;
    let repo = format!("{host}/{path}");
    docker
        .tag_image(
            image,
            Some(TagImageOptions {
                repo: Some(repo.clone()),
                tag: Some(tag.to_string()),
            }),
        )
        .await
        .unwrap();
    format!("{repo}:{tag}")
}

/// A TCP proxy on 127.0.0.1 in front of the registry that counts the daemon's `GET /v2/` pings
/// (one per push attempt) and can drop the first few plain-HTTP connections unanswered.
struct Proxy {
    addr: String,
    pings: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(upstream: &str, drop_first: usize) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let pings = Arc::new(AtomicUsize::new(0));
        let upstream = upstream.to_string();
        let counter = Arc::clone(&pings);
        std::thread::spawn(move || {
            let mut dropped = 0;
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let mut first = [0u8; 1];
                // The daemon tries TLS first (0x16), then plain HTTP: only plain connections count.
                let tls = matches!(client.peek(&mut first), Ok(1) if first[0] == 0x16);
                if !tls && dropped < drop_first {
                    dropped += 1;
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    return;
                };
                let counter = Arc::clone(&counter);
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    Some(counter),
                );
                pipe(server, client, None);
            }
        });
        Proxy { addr, pings }
    }

    fn pings(&self) -> usize {
        self.pings.load(Ordering::SeqCst)
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, pings: Option<Arc<AtomicUsize>>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(p) = &pings {
                let text = String::from_utf8_lossy(&buf[..n]);
                p.fetch_add(text.matches("GET /v2/ HTTP/1.1").count(), Ordering::SeqCst);
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------- end to end

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn a_built_image_is_pushed_and_the_registry_serves_the_digest_we_report() {
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let image = s.image("e2e");
    let greeting = format!("hello-{}", unique());
    let built = build_ok(&docker, &request(&fx, &s, &image, &greeting)).await;
    assert!(built.id.starts_with("sha256:"), "{built:?}");

    let digest = push::push(&docker, &image, Some(&s.creds()), &runner())
        .await
        .unwrap();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );

    // The registry, asked directly, serves that manifest under the tag and under the digest.
    let auth = Some((s.user.as_str(), s.password.as_str()));
    let (status, headers, _) = registry_get(&s.registry, &manifest_path(&image, "v1"), auth);
    assert_eq!(status, 200);
    assert_eq!(headers["docker-content-digest"], digest);
    let (status, _, body) = registry_get(&s.registry, &manifest_path(&image, &digest), auth);
    assert_eq!(status, 200);
    assert_eq!(format!("sha256:{}", sha256_hex(&body)), digest);
    // And refuses it without credentials: the push really was authenticated.
    assert_eq!(
        registry_get(&s.registry, &manifest_path(&image, "v1"), None).0,
        401
    );

    // Labels, the user's and the OCI ones, are on the image.
    let config = docker.inspect_image(&image).await.unwrap().config.unwrap();
    let labels = config.labels.unwrap();
    assert_eq!(labels["com.example.team"], "nova");
    assert_eq!(labels["org.opencontainers.image.revision"], "0123abc");
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://github.invalid/nova/monorepo"
    );
    assert_eq!(
        labels["org.opencontainers.image.created"],
        "2026-01-01T00:00:00Z"
    );

    // The build arg reached the RUN step, and the COPY step sent the sources.
    assert_eq!(
        file_in_image(&docker, &image, "/greeting").await.trim(),
        greeting
    );
    assert!(
        file_in_image(&docker, &image, "/app/src/main.txt")
            .await
            .contains("the service's source")
    );
    remove_repository(&docker, &image).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn a_target_stage_is_built_alone() {
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    std::fs::write(
        fx.dir.join("Dockerfile"),
        format!(
            "FROM {0} AS first\nRUN echo first > /stage\nFROM {0} AS second\nRUN echo second > /stage\n",
            s.base_image
        ),
    )
    .unwrap();
    let image = s.image("target");
    let req = BuildRequest {
        target: Some("first".into()),
        ..request(&fx, &s, &image, "x")
    };
    build_ok(&docker, &req).await;
    assert_eq!(
        file_in_image(&docker, &image, "/stage").await.trim(),
        "first"
    );
    remove_image(&docker, &image).await;
}

// ---------------------------------------------------------------- auth

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn a_password_whose_standard_base64_has_plus_or_slash_pushes_only_through_the_url_safe_header()
 {
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let image = s.image("symbols");
    build_ok(&docker, &request(&fx, &s, &image, "symbols")).await;

    // The auth JSON bollard sends for these credentials has the characters the daemon cannot read…
    let json = serde_json::to_string(&s.creds().docker(&s.registry)).unwrap();
    let standard = base64::engine::general_purpose::STANDARD.encode(&json);
    assert!(
        standard.contains('+') || standard.contains('/'),
        "DA_REGISTRY_PASSWORD must make {standard} contain + or /"
    );

    // …so plain bollard 0.21.1 pushes unauthenticated and is refused,
    let raw = Docker::connect_with_defaults().unwrap();
    client::negotiate(&raw).await.unwrap();
    let (repository, tag) = client::split_tag(&image);
    let options = bollard::query_parameters::PushImageOptions {
        tag: Some(tag.into()),
        ..Default::default()
    };
    let mut stream = raw.push_image(
        repository,
        Some(options),
        Some(s.creds().docker(&s.registry)),
    );
    let mut refused = None;
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            refused = Some(push::bollard_message(&e));
        }
    }
    let refused = refused.expect("plain bollard cannot push with this password");
    assert_eq!(push::classify(&refused), push::Failed::Denied, "{refused}");

    // while our client, which re-encodes the header URL-safe, pushes.
    let digest = push::push(&docker, &image, Some(&s.creds()), &runner())
        .await
        .unwrap();
    assert_eq!(
        registry::existing_digest(&image, Some(&s.creds()))
            .await
            .unwrap(),
        Some(digest)
    );
    remove_repository(&docker, &image).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn a_wrong_password_fails_at_once_with_a_hint_and_no_retries() {
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let image = s.image("wrong-password");
    build_ok(&docker, &request(&fx, &s, &image, "wrong")).await;
    let proxy = Proxy::start(&s.registry, 0);
    let proxied = retag(&docker, &image, &proxy.addr).await;

    let err = push::push(&docker, &proxied, Some(&s.wrong_creds()), &runner())
        .await
        .unwrap_err();
    assert!(matches!(err, DockerError::PushDenied { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("hint: check registry-username and registry-password"),
        "{text}"
    );
    assert!(!text.contains(&s.password), "{text}");
    // One push attempt: the daemon pinged the registry once.
    assert_eq!(proxy.pings(), 1, "push attempts seen by the registry");
    remove_image(&docker, &proxied).await;
    remove_repository(&docker, &image).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn a_from_image_in_the_private_registry_is_pulled_with_the_credentials() {
    let s = services();
    let docker = docker().await;
    // The base image, pushed to the registry and known locally only by its id.
    let base = s.image("base");
    let (repository, tag) = client::split_tag(&base);
    docker
        .tag_image(
            &s.base_image,
            Some(TagImageOptions {
                repo: Some(repository.into()),
                tag: Some(tag.into()),
            }),
        )
        .await
        .unwrap();
    push::push(&docker, &base, Some(&s.creds()), &runner())
        .await
        .unwrap();
    docker
        .remove_image(&base, None::<RemoveImageOptions>, None)
        .await
        .unwrap();

    let fx = fixture();
    std::fs::write(
        fx.dir.join("Dockerfile"),
        format!("FROM {base}\nRUN echo private > /from\n"),
    )
    .unwrap();
    let image = s.image("from-private");
    // Without credentials the registry refuses the pull; with them (sent in X-Registry-Config,
    // re-encoded URL-safe like X-Registry-Auth) the build pulls its base.
    let err = build::build(&docker, &request(&fx, &s, &image, "x"), None, &runner())
        .await
        .unwrap_err();
    assert!(matches!(err, DockerError::BuildStep { .. }), "{err:?}");
    assert!(
        err.to_string().contains("no basic auth credentials")
            || err.to_string().contains("unauthorized"),
        "{err}"
    );
    // When the config header's standard base64 has `+` or `/`, plain bollard sends credentials
    // the daemon drops, and the pull is refused just as without any.
    let config = HashMap::from([(s.registry.clone(), s.creds().docker(&s.registry))]);
    let standard =
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_string(&config).unwrap());
    if standard.contains('+') || standard.contains('/') {
        let raw = Docker::connect_with_defaults().unwrap();
        client::negotiate(&raw).await.unwrap();
        let spec = deploy_action::docker::context::ContextSpec {
            context_dir: fx.dir.clone(),
            dockerfile: fx.dir.join("Dockerfile"),
        };
        let (dockerfile, tar) = deploy_action::docker::context::tar_stream(spec).unwrap();
        let options = bollard::query_parameters::BuildImageOptions {
            dockerfile,
            t: Some(image.clone()),
            forcerm: true,
            ..Default::default()
        };
        let mut stream =
            raw.build_image(options, Some(config), Some(bollard::body_try_stream(tar)));
        let mut refused = None;
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                refused = Some(push::bollard_message(&e));
            }
        }
        let refused = refused.expect("plain bollard cannot pull the base with these credentials");
        assert!(
            refused.contains("no basic auth credentials") || refused.contains("unauthorized"),
            "{refused}"
        );
    }
    build::build(
        &docker,
        &request(&fx, &s, &image, "x"),
        Some(&s.creds()),
        &runner(),
    )
    .await
    .unwrap();
    assert_eq!(
        file_in_image(&docker, &image, "/from").await.trim(),
        "private"
    );
    remove_image(&docker, &image).await;
    remove_image(&docker, &base).await;
}

// ---------------------------------------------------------------- retries

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn a_connection_dropped_by_the_registry_is_retried_and_the_push_succeeds() {
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let image = s.image("flaky");
    build_ok(&docker, &request(&fx, &s, &image, "flaky")).await;
    let proxy = Proxy::start(&s.registry, 1);
    let proxied = retag(&docker, &image, &proxy.addr).await;

    let digest = push::push(&docker, &proxied, Some(&s.creds()), &runner())
        .await
        .unwrap();
    assert_eq!(
        proxy.pings(),
        1,
        "the first attempt's ping was dropped before it was read; the second got through"
    );
    assert_eq!(
        registry::existing_digest(&image, Some(&s.creds()))
            .await
            .unwrap(),
        Some(digest)
    );
    remove_image(&docker, &proxied).await;
    remove_repository(&docker, &image).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn a_registry_that_is_down_fails_clearly_after_bounded_retries() {
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let image = format!("127.0.0.1:{}/da-test/down-{}:v1", closed_port(), unique());
    build_ok(&docker, &request(&fx, &s, &image, "down")).await;

    let started = Instant::now();
    let err = push::push(&docker, &image, Some(&s.creds()), &runner())
        .await
        .unwrap_err();
    let DockerError::Push {
        attempts, message, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*attempts, push::MAX_ATTEMPTS);
    assert!(message.contains("connection refused"), "{message}");
    assert!(
        err.to_string()
            .contains(&format!("after {} attempt(s)", push::MAX_ATTEMPTS)),
        "{err}"
    );
    // 0.5 + 1 + 2 s of backoff at most, plus the attempts themselves.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    remove_image(&docker, &image).await;
}

// ---------------------------------------------------------------- skip existing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn the_registry_reports_an_existing_tag_with_the_pushed_digest_and_a_missing_one_as_none() {
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let image = s.image("skip");
    assert_eq!(
        registry::existing_digest(&image, Some(&s.creds()))
            .await
            .unwrap(),
        None,
        "no such repository"
    );
    build_ok(&docker, &request(&fx, &s, &image, "skip")).await;
    let digest = push::push(&docker, &image, Some(&s.creds()), &runner())
        .await
        .unwrap();

    assert_eq!(
        registry::existing_digest(&image, Some(&s.creds()))
            .await
            .unwrap(),
        Some(digest)
    );
    let other_tag = image.replace(":v1", ":v2");
    assert_eq!(
        registry::existing_digest(&other_tag, Some(&s.creds()))
            .await
            .unwrap(),
        None,
        "no such tag"
    );

    let err = registry::existing_digest(&image, Some(&s.wrong_creds()))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert!(err.to_string().contains("hint: "), "{err}");
    let err = registry::existing_digest(&image, None).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    remove_repository(&docker, &image).await;
}

// ---------------------------------------------------------------- cache

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn a_rebuild_from_the_pushed_image_reuses_the_expensive_run_layer() {
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let first = s.image("cache");
    let greeting = format!("cache-{}", unique());
    let v1 = build_ok(&docker, &request(&fx, &s, &first, &greeting)).await;
    let digest = push::push(&docker, &first, Some(&s.creds()), &runner())
        .await
        .unwrap();
    let v1_layers = layers(&docker, &first).await;
    let (repository, _) = client::split_tag(&first);

    // By tag (`cache-from: auto` with a tag) and by digest (after `pin-digest: true`).
    for (round, cache_ref) in [first.clone(), format!("{repository}@{digest}")]
        .into_iter()
        .enumerate()
    {
        // A fresh daemon state: the image and its intermediate images are gone.
        remove_image(&docker, &v1.id).await;
        assert!(docker.inspect_image(&v1.id).await.is_err());

        std::fs::write(
            fx.dir.join("src/main.txt"),
            format!("changed source, round {round}\n"),
        )
        .unwrap();
        let next = first.replace(":v1", &format!(":r{round}"));
        let req = BuildRequest {
            cache_from: vec![cache_ref.clone()],
            ..request(&fx, &s, &next, &greeting)
        };
        let built = build::build(&docker, &req, Some(&s.creds()), &runner())
            .await
            .unwrap();

        assert!(
            built
                .cached_steps
                .iter()
                .any(|step| step.contains(": RUN ")),
            "{cache_ref}: the RUN step came from the cache: {built:?}"
        );
        assert!(
            !built
                .cached_steps
                .iter()
                .any(|step| step.contains(": COPY ")),
            "{cache_ref}: the changed COPY step ran: {built:?}"
        );
        // Same base and RUN layers, a different COPY layer.
        let next_layers = layers(&docker, &next).await;
        let n = v1_layers.len();
        assert_eq!(next_layers.len(), n);
        assert_eq!(v1_layers[..n - 1], next_layers[..n - 1]);
        assert_ne!(v1_layers[n - 1], next_layers[n - 1]);
        remove_image(&docker, &next).await;
    }
    remove_repository(&docker, &first).await;
}

async fn layers(docker: &Docker, image: &str) -> Vec<String> {
    docker
        .inspect_image(image)
        .await
        .unwrap()
        .root_fs
        .unwrap()
        .layers
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn a_new_created_label_keeps_every_step_cached() {
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let image = s.image("created");
    let greeting = format!("created-{}", unique());
    let first = request(&fx, &s, &image, &greeting);
    build_ok(&docker, &first).await;

    let mut second = first.clone();
    second.labels = build::oci_labels(None, "0123abc", "2027-12-31T23:59:59Z");
    let again = build_ok(&docker, &second).await;
    assert!(
        again.cached_steps.iter().any(|s| s.contains(": RUN ")),
        "{again:?}"
    );
    assert!(
        again.cached_steps.iter().any(|s| s.contains(": COPY ")),
        "{again:?}"
    );
    let labels = docker
        .inspect_image(&image)
        .await
        .unwrap()
        .config
        .unwrap()
        .labels
        .unwrap();
    assert_eq!(
        labels["org.opencontainers.image.created"],
        "2027-12-31T23:59:59Z"
    );
    remove_image(&docker, &image).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn a_cache_image_that_cannot_be_pulled_is_skipped() {
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let image = s.image("no-cache");
    let missing = format!("{}/da-test/never-pushed-{}:v1", s.registry, unique());
    let req = BuildRequest {
        cache_from: vec![missing],
        ..request(&fx, &s, &image, "no-cache")
    };
    let built = build::build(&docker, &req, Some(&s.creds()), &runner())
        .await
        .unwrap();
    assert!(built.id.starts_with("sha256:"));
    remove_image(&docker, &image).await;
}

// ---------------------------------------------------------------- failures

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn a_failing_run_step_is_named_and_leaves_no_container_behind() {
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let marker = format!("fail-{}", unique());
    std::fs::write(
        fx.dir.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY src /src\nRUN echo {marker} && exit 3\nRUN echo never\n",
            s.base_image
        ),
    )
    .unwrap();
    let image = s.image("failing");
    let err = build::build(&docker, &request(&fx, &s, &image, "x"), None, &runner())
        .await
        .unwrap_err();
    let DockerError::BuildStep { step, message, .. } = &err else {
        panic!("{err:?}")
    };
    // Step 3 of the Dockerfile; the daemon appends one LABEL step per label after the last.
    assert!(
        step.starts_with("Step 3/") && step.ends_with(&format!(" : RUN echo {marker} && exit 3")),
        "{step}"
    );
    assert!(message.contains("returned a non-zero code: 3"), "{message}");
    assert!(
        err.to_string()
            .contains(&format!("failed at {step}: The command")),
        "{err}"
    );

    // forcerm: the failed step's container was removed.
    let all = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            ..Default::default()
        }))
        .await
        .unwrap();
    let left: Vec<_> = all
        .iter()
        .filter(|c| {
            c.command
                .as_deref()
                .is_some_and(|cmd| cmd.contains(&marker))
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn a_missing_dockerfile_names_the_path_looked_for() {
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let image = s.image("no-dockerfile");
    let req = BuildRequest {
        dockerfile: fx.dir.join("backend/auth-service/Dockerfile"),
        ..request(&fx, &s, &image, "x")
    };
    let err = build::build(&docker, &req, None, &runner())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DockerError::DockerfileMissing { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "looked for {}",
            fx.dir.join("backend/auth-service/Dockerfile").display()
        )),
        "{text}"
    );
}

#[tokio::test]
async fn a_missing_daemon_socket_gets_a_hint() {
    let err = client::connect_to("unix:///nonexistent/docker.sock").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("unix:///nonexistent/docker.sock"), "{text}");
    assert!(
        text.contains("hint: is dockerd running, and is /var/run/docker.sock mounted"),
        "{text}"
    );

    // A socket file nobody listens on fails at the first request, with the same hint.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let docker = client::connect_to(&format!("unix://{}", path.display())).unwrap();
    let err = client::negotiate(&docker).await.unwrap_err();
    assert!(
        err.to_string().contains("hint: is dockerd running"),
        "{err}"
    );
}

// ---------------------------------------------------------------- through the binary

/// A Nova checkout with the fixture service at `backend/auth-service`, and its remote.
struct Job {
    remote: Remote,
    ws: Workspace,
    repository: String,
    greeting: String,
}

impl Job {
    fn new() -> Job {
        let remote = Remote::file();
        let ws = Workspace::clone_of(&remote);
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/service"),
            &ws.path.join("backend/auth-service"),
        );
        Job {
            remote,
            ws,
            repository: format!("da-test/job-{}", unique()),
            greeting: format!("job-{}", unique()),
        }
    }

    /// The action for this job as a workflow would call it, with the generic-registry login.
    fn action(&self, s: &Services, tag: &str) -> Action {
        Action::new(&self.ws.path)
            .input("service", "auth-service")
            .input("tag", tag)
            .input("registry", &s.registry)
            .input("registry-username", &s.user)
            .input("registry-password", &s.password)
            .input("repository", &self.repository)
            .input("image-name", "auth-service")
            .input("context", "backend/auth-service")
            .input("dockerfile", "backend/auth-service/Dockerfile")
            .input(
                "build-args",
                &format!("BASE={}\nGREETING={}\nWORK=1", s.base_image, self.greeting),
            )
            .input("labels", "com.example.team=nova")
    }

    fn image(&self, s: &Services, tag: &str) -> String {
        format!("{}/{}:{tag}", s.registry, self.repository)
    }
}

/// Runs the action and checks what every run must hold: the password never reaches the output
/// (except in the `::add-mask::` command that tells the runner to redact it).
fn run(action: Action, s: &Services) -> Run {
    let run = action.run();
    for text in [&run.stdout, &run.stderr, &run.summary] {
        let leaked = text
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .any(|l| l.contains(&s.password));
        assert!(
            !leaked,
            "the registry password leaked:\n{}",
            run.all_output()
        );
    }
    run
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn now_since() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// The daemon's `tag` events for `image` between `since` and now: one per build that tagged it.
async fn tag_events(docker: &Docker, image: &str, since: &str) -> usize {
    let options = bollard::query_parameters::EventsOptions {
        since: Some(since.to_string()),
        until: Some(now_since()),
        filters: Some(HashMap::from([
            ("type".to_string(), vec!["image".to_string()]),
            ("event".to_string(), vec!["tag".to_string()]),
        ])),
    };
    let events: Vec<_> = docker.events(Some(options)).collect().await;
    events
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| {
            e.actor
                .as_ref()
                .and_then(|a| a.attributes.as_ref())
                .and_then(|a| a.get("name"))
                .is_some_and(|n| n == image)
        })
        .count()
}

#[test]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
fn the_action_builds_pushes_pins_the_digest_and_a_rerun_skips_the_build() {
    let s = services();
    let job = Job::new();
    let image = job.image(&s, "t1");
    let first = run(job.action(&s, "t1").input("pin-digest", "true"), &s);
    first.assert_ok();
    let masked = format!("::add-mask::{}", s.password);
    assert!(
        first.stdout.lines().any(|l| l == masked),
        "{}",
        first.stdout
    );
    let digest = first.output("digest").to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert_eq!(first.output("built"), "true");
    assert_eq!(first.output("image"), image);
    assert_eq!(
        first.output("image-ref"),
        format!("{}/{}@{digest}", s.registry, job.repository)
    );
    // The build log sits in a group, and so does the push, one line per layer.
    assert!(
        first.stdout.contains(&format!("::group::Build {image}\n")),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains(&format!("::group::Push {image}\n")),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.lines().any(|l| l.starts_with("layer 1/")),
        "{}",
        first.stdout
    );
    assert!(
        !first.stdout.contains("Pushing"),
        "no progress spam:\n{}",
        first.stdout
    );
    // The registry serves what we reported, and the overlay on the remote pins it.
    let (status, headers, _) = registry_get(
        &s.registry,
        &manifest_path(&image, "t1"),
        Some((&s.user, &s.password)),
    );
    assert_eq!(status, 200);
    assert_eq!(headers["docker-content-digest"], digest);
    let overlay = job.remote.overlay();
    assert!(
        overlay.contains(&format!("newTag: t1\n    digest: {digest}"))
            || overlay.contains(&format!("digest: {digest}")),
        "{overlay}"
    );
    assert!(
        first.summary.contains(&format!("@{digest}")),
        "{}",
        first.summary
    );

    // Same tag again: one registry request says it exists; nothing is built or pushed.
    let docker = block_on(docker());
    let since = now_since();
    let again = run(job.action(&s, "t1"), &s);
    again.assert_ok();
    assert_eq!(again.output("built"), "false");
    assert_eq!(again.output("digest"), digest);
    assert!(!again.stdout.contains("::group::Build"), "{}", again.stdout);
    assert_eq!(
        block_on(tag_events(&docker, &image, &since)),
        0,
        "the daemon tagged no image"
    );
    assert!(again.summary.contains("skipped"), "{}", again.summary);

    // Promotion (build: false) with pin-digest asks the registry for the digest; a tag the
    // registry lacks fails clearly and leaves the branch alone.
    let head = job.remote.head();
    let promote = |tag: &str| {
        run(
            job.action(&s, tag)
                .input("build", "false")
                .input("pin-digest", "true"),
            &s,
        )
    };
    let missing = promote("never-pushed");
    assert_eq!(missing.code, Some(1), "{}", missing.all_output());
    assert!(
        missing
            .stdout
            .contains("is not in the registry, so there is no digest to pin"),
        "{}",
        missing.stdout
    );
    assert_eq!(job.remote.head(), head);
    let promoted = promote("t1");
    promoted.assert_ok();
    assert_eq!(promoted.output("digest"), digest);
    assert_eq!(promoted.output("built"), "false");
    block_on(remove_repository(&docker, &image));
}

#[test]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
fn cache_from_auto_reuses_the_deployed_images_run_layer_after_a_source_change() {
    let s = services();
    let job = Job::new();
    // Deploy t1: the workspace's overlay now names it (git-push: false edits the file only).
    run(job.action(&s, "t1").input("git-push", "false"), &s).assert_ok();
    assert!(
        job.ws.overlay().contains(&format!(
            "newName: {}/{}\n    newTag: t1",
            s.registry, job.repository
        )),
        "{}",
        job.ws.overlay()
    );
    // A fresh runner: the image is not on this daemon any more.
    let docker = block_on(docker());
    block_on(remove_image(&docker, &job.image(&s, "t1")));

    std::fs::write(
        job.ws.path.join("backend/auth-service/src/main.txt"),
        "changed\n",
    )
    .unwrap();
    let second = run(job.action(&s, "t2").input("git-push", "false"), &s);
    second.assert_ok();
    let lines: Vec<&str> = second.stdout.lines().collect();
    assert!(
        second
            .stdout
            .contains(&format!("cache image {}: pulled", job.image(&s, "t1"))),
        "{}",
        second.stdout
    );
    let run_step = lines
        .iter()
        .position(|l| l.starts_with("Step ") && l.contains(" : RUN "))
        .expect("a RUN step");
    assert_eq!(
        lines[run_step + 1].trim(),
        "---> Using cache",
        "{}",
        second.stdout
    );
    let copy_step = lines
        .iter()
        .position(|l| l.starts_with("Step ") && l.contains(" : COPY "))
        .expect("a COPY step");
    assert_ne!(
        lines[copy_step + 1].trim(),
        "---> Using cache",
        "{}",
        second.stdout
    );
    block_on(remove_repository(&docker, &job.image(&s, "t2")));
}

#[test]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
fn dry_run_and_push_false_build_without_pushing_and_say_why_there_is_no_digest() {
    let s = services();
    let job = Job::new();
    for (input, value, why) in [
        ("dry-run", "true", "dry-run"),
        ("push", "false", "push: false"),
    ] {
        let tag = format!("t-{}", input);
        let r = run(
            job.action(&s, &tag)
                .input(input, value)
                .input("git-push", "false"),
            &s,
        );
        r.assert_ok();
        assert_eq!(r.output("built"), "true");
        assert_eq!(r.output("digest"), "");
        assert!(!r.stdout.contains("::group::Push"), "{}", r.stdout);
        assert!(r.summary.contains(why), "{}", r.summary);
        let exists = block_on(registry::existing_digest(
            &job.image(&s, &tag),
            Some(&s.creds()),
        ))
        .unwrap();
        assert_eq!(exists, None, "{input}: nothing reached the registry");
    }
    block_on(async { remove_repository(&docker().await, &job.image(&s, "t")).await });
}

#[test]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
fn build_failures_are_one_error_line_naming_the_cause() {
    let s = services();
    let job = Job::new();

    // A failing RUN step names the step and the daemon's message.
    let dockerfile = job.ws.path.join("backend/auth-service/Dockerfile");
    std::fs::write(
        &dockerfile,
        format!("FROM {}\nRUN echo about to fail && exit 7\n", s.base_image),
    )
    .unwrap();
    let r = run(job.action(&s, "t-fail").input("git-push", "false"), &s);
    let e = error_line(&r);
    assert!(
        e.contains("failed at Step 2/") && e.contains(" : RUN echo about to fail && exit 7: "),
        "{e}"
    );
    assert!(e.contains("returned a non-zero code: 7"), "{e}");
    assert_eq!(
        job.ws.overlay(),
        crate::support::seed_kustomization(),
        "a failed build changes nothing"
    );

    // A missing Dockerfile says where it was looked for.
    let r = run(
        job.action(&s, "t-missing")
            .input("dockerfile", "backend/nope/Dockerfile"),
        &s,
    );
    let e = error_line(&r);
    assert!(
        e.contains(&format!(
            "Dockerfile not found: looked for {}",
            job.ws.path.join("backend/nope/Dockerfile").display()
        )),
        "{e}"
    );
    block_on(async { remove_repository(&docker().await, &job.image(&s, "t")).await });
}

#[test]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
fn push_failures_are_clear_and_bounded() {
    let s = services();
    let job = Job::new();

    // A wrong password: refused once, with the hint, no retries.
    let r = run(
        job.action(&s, "t-denied")
            .input("registry-password", "not-the-password")
            .input("skip-existing", "false")
            .input("git-push", "false"),
        &s,
    );
    let e = error_line(&r);
    assert!(
        e.contains("refused by the registry")
            && e.contains("hint: check registry-username and registry-password"),
        "{e}"
    );
    assert!(!r.all_output().contains("retrying"), "{}", r.all_output());

    // A registry that is down: the bounded retries, then a clear error.
    let down = format!("127.0.0.1:{}", closed_port());
    let r = run(
        job.action(&s, "t-down")
            .input("registry", &down)
            .input("skip-existing", "false")
            .input("git-push", "false"),
        &s,
    );
    let e = error_line(&r);
    assert!(
        e.contains(&format!("failed after {} attempt(s)", push::MAX_ATTEMPTS))
            && e.contains("connection refused"),
        "{e}"
    );
    assert_eq!(
        r.all_output().matches("retrying in").count() as u32,
        push::MAX_ATTEMPTS - 1,
        "{}",
        r.all_output()
    );
    block_on(async { remove_repository(&docker().await, &job.image(&s, "t")).await });
}

#[test]
fn a_missing_docker_socket_is_one_error_line_with_a_hint() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    std::fs::write(ws.path.join("Dockerfile"), "FROM scratch\n").unwrap();
    let r = Action::new(&ws.path)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .input("service", "auth-service")
        .input("tag", "t1")
        .input("registry", "127.0.0.1:1")
        .input("registry-username", "ci")
        .input("registry-password", "pw")
        .input("skip-existing", "false")
        .input("git-push", "false")
        .run();
    let e = error_line(&r);
    assert!(
        e.contains("cannot reach the Docker daemon at unix:///nonexistent/docker.sock"),
        "{e}"
    );
    assert!(e.contains("hint: is dockerd running, and is /var/run/docker.sock mounted into the container action"), "{e}");
}
