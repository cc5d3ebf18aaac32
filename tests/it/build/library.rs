//! The library's `docker` and `registry` modules against the real daemon and registry.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bollard::Docker;
use bollard::query_parameters::ListContainersOptions;
use deploy_action::docker::build::{self, BuildRequest};
use deploy_action::docker::client;
use deploy_action::docker::{DockerError, push};
use deploy_action::failure::Failure;
use deploy_action::registry::{self, ImageRef, RegistryError};
use deploy_action::retry::Policy;
use futures_util::StreamExt;

use super::{build_ok, fixture, request, runner};
use crate::support::docker::{
    docker, file_in_image, layers, remove_image, remove_image_and_parents, remove_repository,
    retag, tag,
};
use crate::support::registry::{
    Proxy, closed_port, get_manifest, sha256_hex, unique_name as unique,
};
use crate::support::services;

// ---------------------------------------------------------------- end to end

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn a_built_image_is_pushed_and_the_registry_serves_the_digest_we_report() {
    let _daemon = crate::support::docker::shared_daemon_async().await;
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let image = s.image("e2e");
    let greeting = format!("hello-{}", unique());
    let built = build_ok(&docker, &request(&fx, s, &image, &greeting)).await;
    assert!(built.id.starts_with("sha256:"), "{built:?}");

    let digest = push::push(&docker, &image, Some(&s.creds()), &runner())
        .await
        .unwrap();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );

    // The registry, asked directly, serves that manifest under the tag and under the digest.
    let auth = Some((s.registry_user.as_str(), s.registry_password.as_str()));
    let by_tag = get_manifest(&image, "v1", auth).await;
    assert_eq!(by_tag.status, 200);
    assert_eq!(by_tag.headers["docker-content-digest"], digest);
    let by_digest = get_manifest(&image, &digest, auth).await;
    assert_eq!(by_digest.status, 200);
    assert_eq!(format!("sha256:{}", sha256_hex(&by_digest.body)), digest);
    // And refuses it without credentials: the push really was authenticated.
    assert_eq!(get_manifest(&image, "v1", None).await.status, 401);

    // Labels, the user's and the OCI ones, are on the image.
    let config = docker
        .inspect_image(&image.to_string())
        .await
        .unwrap()
        .config
        .unwrap();
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
    let _daemon = crate::support::docker::shared_daemon_async().await;
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
        ..request(&fx, s, &image, "x")
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
    let _daemon = crate::support::docker::shared_daemon_async().await;
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let image = s.image("symbols");
    build_ok(&docker, &request(&fx, s, &image, "symbols")).await;

    // The auth JSON bollard sends for these credentials has the characters the daemon cannot read…
    let json = serde_json::to_string(&client::docker_credentials(&s.creds(), &s.registry)).unwrap();
    let standard = base64::engine::general_purpose::STANDARD.encode(&json);
    assert!(
        standard.contains('+') || standard.contains('/'),
        "DA_REGISTRY_PASSWORD must make {standard} contain + or /"
    );

    // …so plain bollard 0.21.1 pushes unauthenticated and is refused,
    let raw = Docker::connect_with_defaults().unwrap();
    client::negotiate(&raw).await.unwrap();
    let options = bollard::query_parameters::PushImageOptions {
        tag: image.tag().map(str::to_string),
        ..Default::default()
    };
    let mut stream = raw.push_image(
        &image.name(),
        Some(options),
        Some(client::docker_credentials(&s.creds(), &s.registry)),
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
    let _daemon = crate::support::docker::shared_daemon_async().await;
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let image = s.image("wrong-password");
    build_ok(&docker, &request(&fx, s, &image, "wrong")).await;
    let proxy = Proxy::start(&s.registry, 0);
    let proxied = retag(&docker, &image, &proxy.addr).await;

    let err = push::push(&docker, &proxied, Some(&s.wrong_creds()), &runner())
        .await
        .unwrap_err();
    assert!(matches!(err, DockerError::PushDenied { .. }), "{err:?}");
    let text = Failure::of(&err.into()).text();
    assert!(
        text.contains("hint: check registry-username and registry-password"),
        "{text}"
    );
    assert!(!text.contains(&s.registry_password), "{text}");
    // One push attempt: the daemon pinged the registry once.
    assert_eq!(proxy.pings(), 1, "push attempts seen by the registry");
    remove_image(&docker, &proxied).await;
    remove_repository(&docker, &image).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn a_from_image_in_the_private_registry_is_pulled_with_the_credentials() {
    let _daemon = crate::support::docker::shared_daemon_async().await;
    let s = services();
    let docker = docker().await;
    // The base image, pushed to the registry and known locally only by its id.
    let base = s.image("base");
    tag(&docker, &s.base_image, &base).await;
    push::push(&docker, &base, Some(&s.creds()), &runner())
        .await
        .unwrap();
    remove_image(&docker, &base).await;

    let fx = fixture();
    std::fs::write(
        fx.dir.join("Dockerfile"),
        format!("FROM {base}\nRUN echo private > /from\n"),
    )
    .unwrap();
    let image = s.image("from-private");
    // Without credentials the registry refuses the pull; with them (sent in X-Registry-Config,
    // re-encoded URL-safe like X-Registry-Auth) the build pulls its base.
    let err = build::build(&docker, &request(&fx, s, &image, "x"), None, &runner())
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
    let config = HashMap::from([(
        s.registry.clone(),
        client::docker_credentials(&s.creds(), &s.registry),
    )]);
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
            t: Some(image.to_string()),
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
        &request(&fx, s, &image, "x"),
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
    let _daemon = crate::support::docker::shared_daemon_async().await;
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let image = s.image("flaky");
    build_ok(&docker, &request(&fx, s, &image, "flaky")).await;
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
    let _daemon = crate::support::docker::shared_daemon_async().await;
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let image = ImageRef::tagged(
        &format!("127.0.0.1:{}", closed_port()),
        &format!("da-test/down-{}", unique()),
        "v1",
    );
    build_ok(&docker, &request(&fx, s, &image, "down")).await;

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
    assert_eq!(*attempts, Policy::REGISTRY_PUSH.attempts);
    assert!(message.contains("connection refused"), "{message}");
    assert!(
        err.to_string().contains(&format!(
            "after {} attempt(s)",
            Policy::REGISTRY_PUSH.attempts
        )),
        "{err}"
    );
    // 1 + 2 + 4 s of backoff at most, plus the attempts themselves.
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
    let _daemon = crate::support::docker::shared_daemon_async().await;
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
    build_ok(&docker, &request(&fx, s, &image, "skip")).await;
    let digest = push::push(&docker, &image, Some(&s.creds()), &runner())
        .await
        .unwrap();

    assert_eq!(
        registry::existing_digest(&image, Some(&s.creds()))
            .await
            .unwrap(),
        Some(digest)
    );
    let other_tag = image.with_tag("v2");
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
    assert!(Failure::of(&err.into()).text().contains("\nhint: "));
    let err = registry::existing_digest(&image, None).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    remove_repository(&docker, &image).await;
}

// ---------------------------------------------------------------- cache

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn a_rebuild_from_the_pushed_image_reuses_the_expensive_run_layer() {
    let _daemon = crate::support::docker::shared_daemon_async().await;
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let first = s.image("cache");
    let greeting = format!("cache-{}", unique());
    let v1 = build_ok(&docker, &request(&fx, s, &first, &greeting)).await;
    let digest = push::push(&docker, &first, Some(&s.creds()), &runner())
        .await
        .unwrap();
    let v1_layers = layers(&docker, &first).await;

    // By tag (`cache-from: auto` with a tag) and by digest (after `pin-digest: true`).
    for (round, cache_ref) in [first.clone(), first.at_digest(&digest)]
        .into_iter()
        .enumerate()
    {
        // A fresh daemon state: the image and its intermediate images are gone.
        remove_image_and_parents(&docker, &v1.id).await;
        assert!(docker.inspect_image(&v1.id).await.is_err());

        std::fs::write(
            fx.dir.join("src/main.txt"),
            format!("changed source, round {round}\n"),
        )
        .unwrap();
        let next = first.with_tag(&format!("r{round}"));
        let req = BuildRequest {
            cache_from: vec![cache_ref.clone()],
            ..request(&fx, s, &next, &greeting)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn a_new_created_label_keeps_every_step_cached() {
    let _daemon = crate::support::docker::shared_daemon_async().await;
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let image = s.image("created");
    let greeting = format!("created-{}", unique());
    let first = request(&fx, s, &image, &greeting);
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
        .inspect_image(&image.to_string())
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
    let _daemon = crate::support::docker::shared_daemon_async().await;
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let image = s.image("no-cache");
    let missing = s.image("never-pushed");
    let req = BuildRequest {
        cache_from: vec![missing],
        ..request(&fx, s, &image, "no-cache")
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
    let _daemon = crate::support::docker::shared_daemon_async().await;
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
    let err = build::build(&docker, &request(&fx, s, &image, "x"), None, &runner())
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
    let _daemon = crate::support::docker::shared_daemon_async().await;
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    let image = s.image("no-dockerfile");
    let req = BuildRequest {
        dockerfile: fx.dir.join("backend/auth-service/Dockerfile"),
        ..request(&fx, s, &image, "x")
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
    let text = Failure::of(&err.into()).text();
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
    let text = Failure::of(&err.into()).text();
    assert!(text.contains("hint: is dockerd running"), "{text}");
}
