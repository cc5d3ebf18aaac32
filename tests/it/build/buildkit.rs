//! BuildKit through the daemon and the per-stage cache images, against the real daemon and
//! registry: a cargo-chef build on a fresh runner with either builder, secrets that reach
//! `RUN --mount=type=secret` and nothing else, cache mounts and `COPY --chmod`, the classic
//! builder refusing what only BuildKit has, a separate cache repository, private base images
//! through the session. (That BuildKit sees the CLI's context is in `tests/it/context.rs`.)

use std::path::Path;

use deploy_action::docker::build::{self, BuildRequest, Builder};
use deploy_action::docker::session::secret_text;
use deploy_action::failure::Failure;
use deploy_action::registry::{self, ImageRef};
use secrecy::SecretString;

use super::action::{Job, block_on, run};
use super::{fixture, request_in, runner};
use crate::support::docker::{
    docker, entries_in_image, exclusive_daemon, file_in_image, fresh_runner, remove_image,
    remove_repository, saved, shared_daemon, shared_daemon_async, tag,
};
use crate::support::registry::{sha256_hex, unique_name as unique};
use crate::support::services::Services;
use crate::support::{Run, error_line, services};

const STAGES: [&str; 3] = ["chef", "planner", "builder"];

/// The chef job's cache image of `stage`.
fn cache_image(job: &Job, s: &Services, stage: &str) -> ImageRef {
    job.image(s, &format!("cache-{stage}"))
}

/// The printed line of the cook step, and whether it came from the cache.
fn cook_step(run: &Run, builder: Builder) -> (String, bool) {
    let lines: Vec<&str> = run.stdout.lines().collect();
    match builder {
        Builder::BuildKit => {
            let line = lines
                .iter()
                .find(|l| l.starts_with("[builder ") && l.contains("> /nonce"))
                .unwrap_or_else(|| panic!("no cook step:\n{}", run.stdout));
            (line.to_string(), line.ends_with("  CACHED"))
        }
        Builder::Classic => {
            // The stage builds come first: the last cook step is the final build's.
            let i = lines
                .iter()
                .rposition(|l| l.starts_with("Step ") && l.contains("> /nonce"))
                .unwrap_or_else(|| panic!("no cook step:\n{}", run.stdout));
            let first = lines
                .iter()
                .position(|l| l.starts_with("Step ") && l.contains("> /nonce"))
                .unwrap();
            (
                lines[first].to_string(),
                lines[first + 1].trim() == "---> Using cache"
                    && lines[i + 1].trim() == "---> Using cache",
            )
        }
    }
}

/// A fresh runner rebuilds only the service after a source change: the cook step of the
/// builder stage comes from the stage cache image pushed by the first run.
fn assert_a_fresh_runner_cooks_nothing(builder: Builder) {
    let _daemon = exclusive_daemon();
    let s = services();
    let job = Job::chef();
    let action = |tag: &str| {
        job.action(s, tag)
            .input("git-push", "false")
            .input("builder", builder.name())
    };
    let first = run(action("t1"), s);
    first.assert_ok();
    assert_eq!(first.output("builder"), builder.name());
    assert!(!cook_step(&first, builder).1, "the first cook runs");
    for stage in STAGES {
        let image = cache_image(&job, s, stage);
        assert!(
            block_on(registry::existing_digest(&image, Some(&s.creds())))
                .unwrap()
                .is_some(),
            "{image} was pushed"
        );
        assert!(
            first.summary.contains(&format!("`{image}`")),
            "{}",
            first.summary
        );
    }
    let docker = block_on(docker());
    let cooked = block_on(file_in_image(&docker, job.image(s, "t1"), "/cooked"));

    // A fresh runner: nothing of this repository, no dangling image, no build cache.
    block_on(fresh_runner(&docker, &[&job.image(s, "t1")]));
    std::fs::write(
        job.ws.path.join("backend/auth-service/src/main.txt"),
        "the service, version 2\n",
    )
    .unwrap();
    let second = run(action("t2"), s);
    second.assert_ok();
    let (line, cached) = cook_step(&second, builder);
    assert!(
        cached,
        "the cook step came from the cache: {line}\n{}",
        second.stdout
    );
    let t2 = job.image(s, "t2");
    assert_eq!(
        block_on(file_in_image(&docker, &t2, "/cooked")),
        cooked,
        "the same cooked dependencies"
    );
    assert!(
        block_on(file_in_image(&docker, &t2, "/app/bin")).ends_with("the service, version 2\n"),
        "the service itself was rebuilt"
    );
    let (cached_steps, total): (usize, usize) = {
        let row = second
            .summary
            .lines()
            .find(|l| l.contains("steps cached"))
            .unwrap_or_else(|| panic!("{}", second.summary));
        let counts = row.split(", ").nth(1).unwrap().split(' ').next().unwrap();
        let (c, t) = counts.split_once('/').unwrap();
        (c.parse().unwrap(), t.parse().unwrap())
    };
    assert!(
        cached_steps > 0 && cached_steps < total,
        "{}",
        second.summary
    );
    block_on(remove_repository(&docker, &t2));
}

#[test]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
fn with_buildkit_a_fresh_runner_serves_the_cook_step_from_the_stage_cache() {
    assert_a_fresh_runner_cooks_nothing(Builder::BuildKit);
}

#[test]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
fn with_the_classic_builder_a_fresh_runner_serves_the_cook_step_from_the_stage_cache() {
    assert_a_fresh_runner_cooks_nothing(Builder::Classic);
}

#[test]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
fn cache_to_none_exports_no_stage_image_and_a_separate_cache_repository_takes_them() {
    let _daemon = shared_daemon();
    let s = services();
    let job = Job::chef();
    let none = run(
        job.action(s, "t-none")
            .input("git-push", "false")
            .input("cache-to", "none"),
        s,
    );
    none.assert_ok();
    assert!(
        !none.summary.contains("cache images pushed"),
        "{}",
        none.summary
    );
    for stage in STAGES {
        let image = cache_image(&job, s, stage);
        assert_eq!(
            block_on(registry::existing_digest(&image, Some(&s.creds()))).unwrap(),
            None,
            "{image}"
        );
    }
    let cache_repo = format!("{}-cache", job.repository);
    let separate = run(
        job.action(s, "t-sep")
            .input("git-push", "false")
            .input("cache-repository", &cache_repo),
        s,
    );
    separate.assert_ok();
    for stage in STAGES {
        let in_cache_repo = ImageRef::tagged(&s.registry, &cache_repo, &format!("cache-{stage}"));
        assert!(
            block_on(registry::existing_digest(&in_cache_repo, Some(&s.creds())))
                .unwrap()
                .is_some(),
            "{in_cache_repo}"
        );
        assert_eq!(
            block_on(registry::existing_digest(
                &cache_image(&job, s, stage),
                Some(&s.creds())
            ))
            .unwrap(),
            None
        );
    }
    let docker = block_on(docker());
    block_on(remove_repository(&docker, &job.image(s, "t")));
    block_on(remove_repository(
        &docker,
        &ImageRef::tagged(&s.registry, &cache_repo, "x"),
    ));
}

const SECRET_DOCKERFILE: &str = "\
FROM {BASE}
RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -c1-64 > /tok.sha
RUN --mount=type=secret,id=key,required sha256sum /run/secrets/key | cut -c1-64 > /key.sha
";

#[test]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
fn secrets_reach_their_mounts_and_no_layer_config_log_or_output() {
    let _daemon = shared_daemon();
    let s = services();
    let job = Job::new();
    let dir = job.ws.path.join("backend/auth-service");
    std::fs::write(
        dir.join("Dockerfile"),
        SECRET_DOCKERFILE.replace("{BASE}", &s.base_image),
    )
    .unwrap();
    let token = format!("tok-{}-s3cr3t", unique());
    let key = format!("key-{}-pr1vate", unique());
    std::fs::write(job.ws.path.join("deploy.key"), &key).unwrap();
    let r = run(
        job.action(s, "t-secret")
            .input("git-push", "false")
            .input("secrets", &format!("tok={token}"))
            .input("secret-files", "key=deploy.key"),
        s,
    );
    r.assert_ok();
    let docker = block_on(docker());
    let image = job.image(s, "t-secret");
    assert_eq!(
        block_on(file_in_image(&docker, &image, "/tok.sha")).trim(),
        sha256_hex(token.as_bytes())
    );
    assert_eq!(
        block_on(file_in_image(&docker, &image, "/key.sha")).trim(),
        sha256_hex(key.as_bytes())
    );
    // Both values are masked at once, and appear nowhere else.
    for secret in [&token, &key] {
        assert!(
            r.stdout
                .lines()
                .any(|l| l == format!("::add-mask::{secret}")),
            "{secret} was not masked:\n{}",
            r.stdout
        );
        for text in [&r.stdout, &r.stderr, &r.summary] {
            assert!(
                !text
                    .lines()
                    .any(|l| !l.starts_with("::add-mask::") && l.contains(secret.as_str())),
                "{secret} leaked:\n{text}"
            );
        }
    }
    // No layer and no config of the image holds them.
    let tar = block_on(saved(&docker, &image));
    assert!(tar.len() > 10_000, "a real image was saved");
    for secret in [&token, &key] {
        assert!(
            !tar.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} is in `docker save`"
        );
    }
    // A step that prints a secret and fails shows it masked, even to a local terminal.
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {}\nRUN --mount=type=secret,id=tok cat /run/secrets/tok && exit 3\n",
            s.base_image
        ),
    )
    .unwrap();
    let failed = run(
        job.action(s, "t-secret-fail")
            .input("git-push", "false")
            .input("secrets", &format!("tok={token}"))
            .env_remove("GITHUB_ACTIONS"),
        s,
    );
    assert!(!failed.success());
    assert!(
        failed.all_output().contains("  | ***"),
        "{}",
        failed.all_output()
    );
    assert!(
        !failed.all_output().contains(&token),
        "{}",
        failed.all_output()
    );
    block_on(remove_repository(&docker, &image));
}

#[test]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
fn cache_mounts_keep_their_content_between_builds_and_copy_chmod_sets_the_mode() {
    let _daemon = shared_daemon();
    let s = services();
    let docker = block_on(docker());
    let fx = fixture();
    let cache_id = format!("c-{}", unique());
    std::fs::write(fx.dir.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(
        fx.dir.join("Dockerfile"),
        format!(
            "FROM {}\nARG ROUND\nRUN --mount=type=cache,id={cache_id},target=/cache \
             echo \"$ROUND\" >> /cache/rounds && cp /cache/rounds /rounds\n\
             COPY --chmod=0751 run.sh /run.sh\n",
            s.base_image
        ),
    )
    .unwrap();
    let image = s.image("cache-mount");
    for round in ["one", "two"] {
        let mut req = buildkit_request(&fx.dir, s, &image);
        req.build_args = vec![("ROUND".into(), round.into())];
        block_on(build::build(&docker, &req, None, &runner())).unwrap();
    }
    assert_eq!(
        block_on(file_in_image(&docker, &image, "/rounds")),
        "one\ntwo\n",
        "the second build saw the first one's cache"
    );
    let entries = block_on(entries_in_image(&docker, &image, "/run.sh"));
    assert_eq!(entries, [("run.sh".to_string(), 0o751)]);
    block_on(remove_image(&docker, &image));
}

/// A BuildKit build of the Dockerfile in `dir`, without the fixture's build args and labels.
fn buildkit_request(dir: &Path, s: &Services, image: &ImageRef) -> BuildRequest {
    BuildRequest {
        builder: Builder::BuildKit,
        network: Some("none".into()),
        build_args: Vec::new(),
        labels: Vec::new(),
        ..request_in(dir, s, image, "x")
    }
}

#[test]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
fn the_classic_builder_refuses_a_dockerfile_that_needs_buildkit_with_its_line_and_a_hint() {
    let _daemon = shared_daemon();
    let s = services();
    let job = Job::new();
    std::fs::write(
        job.ws.path.join("backend/auth-service/Dockerfile"),
        format!(
            "FROM {}\nRUN true\nRUN --mount=type=cache,target=/c true\n",
            s.base_image
        ),
    )
    .unwrap();
    let r = run(
        job.action(s, "t-classic")
            .input("builder", "classic")
            .input("git-push", "false"),
        s,
    );
    let e = error_line(&r);
    assert_eq!(
        e,
        "::error file=backend/auth-service/Dockerfile,line=3::the Dockerfile uses `RUN --mount`, which the classic builder does not have\n\
         hint: set `builder: auto` (or `buildkit`) to build it with the daemon's BuildKit"
    );
    assert!(
        !r.stdout.contains("::group::Build"),
        "nothing was built:\n{}",
        r.stdout
    );
    assert_eq!(
        block_on(registry::existing_digest(
            &job.image(s, "t-classic"),
            Some(&s.creds())
        ))
        .unwrap(),
        None
    );
    // Secrets need BuildKit too.
    std::fs::write(
        job.ws.path.join("backend/auth-service/Dockerfile"),
        format!("FROM {}\nRUN true\n", s.base_image),
    )
    .unwrap();
    let r = run(
        job.action(s, "t-classic")
            .input("builder", "classic")
            .input("secrets", "tok=x")
            .input("git-push", "false"),
        s,
    );
    let e = error_line(&r);
    assert!(
        e.contains("build secrets need BuildKit") && e.contains("\nhint: set `builder: auto`"),
        "{e}"
    );
}

#[test]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
fn parallel_stages_are_both_built_and_both_cached() {
    let _daemon = shared_daemon();
    let s = services();
    let job = Job::new();
    std::fs::write(
        job.ws.path.join("backend/auth-service/Dockerfile"),
        format!(
            "FROM {0} AS left\nRUN echo left > /left\nFROM {0} AS right\nRUN echo right > /right\n\
             FROM {0}\nCOPY --from=left /left /left\nCOPY --from=right /right /right\n",
            s.base_image
        ),
    )
    .unwrap();
    let r = run(job.action(s, "t-par").input("git-push", "false"), s);
    r.assert_ok();
    let docker = block_on(docker());
    let image = job.image(s, "t-par");
    assert_eq!(block_on(file_in_image(&docker, &image, "/left")), "left\n");
    assert_eq!(
        block_on(file_in_image(&docker, &image, "/right")),
        "right\n"
    );
    for stage in ["left", "right"] {
        let cache = job.image(s, &format!("cache-{stage}"));
        assert!(r.summary.contains(&format!("`{cache}`")), "{}", r.summary);
    }
    block_on(remove_repository(&docker, &image));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn a_private_base_image_is_pulled_through_the_session_credentials() {
    let _daemon = shared_daemon_async().await;
    let s = services();
    let docker = docker().await;
    let base = s.image("bk-base");
    tag(&docker, &s.base_image, &base).await;
    deploy_action::docker::push::push(&docker, &base, Some(&s.creds()), &runner())
        .await
        .unwrap();
    remove_image(&docker, &base).await;

    let fx = fixture();
    std::fs::write(
        fx.dir.join("Dockerfile"),
        format!("FROM {base}\nRUN echo private > /from\n"),
    )
    .unwrap();
    let image = s.image("bk-from-private");
    let req = buildkit_request(&fx.dir, s, &image);
    let err = build::build(&docker, &req, None, &runner())
        .await
        .unwrap_err();
    let text = Failure::of(&err.into()).text();
    assert!(text.contains("401 Unauthorized"), "{text}");
    build::build(&docker, &req, Some(&s.creds()), &runner())
        .await
        .unwrap();
    assert_eq!(file_in_image(&docker, &image, "/from").await, "private\n");
    remove_image(&docker, &image).await;
    remove_repository(&docker, &base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn the_network_input_reaches_run_steps() {
    let _daemon = shared_daemon_async().await;
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    std::fs::write(
        fx.dir.join("Dockerfile"),
        format!("FROM {}\nRUN cat /proc/net/dev > /dev.txt\n", s.base_image),
    )
    .unwrap();
    let image = s.image("bk-network");
    let mut req = buildkit_request(&fx.dir, s, &image);
    build::build(&docker, &req, None, &runner()).await.unwrap();
    let devices = file_in_image(&docker, &image, "/dev.txt").await;
    assert!(devices.contains("lo:"), "{devices}");
    // This daemon runs without a bridge network, so the default network cannot exist.
    req.network = Some("default".into());
    let err = build::build(&docker, &req, None, &runner())
        .await
        .unwrap_err();
    let text = Failure::of(&err.into()).text();
    assert!(text.contains("network bridge not found"), "{text}");
    remove_image(&docker, &image).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
async fn secrets_given_to_the_library_are_served_by_id() {
    let _daemon = shared_daemon_async().await;
    let s = services();
    let docker = docker().await;
    let fx = fixture();
    std::fs::write(
        fx.dir.join("Dockerfile"),
        format!(
            "FROM {}\nRUN --mount=type=secret,id=a,required cp /run/secrets/a /a.txt\n",
            s.base_image
        ),
    )
    .unwrap();
    let image = s.image("bk-lib-secret");
    let mut req = buildkit_request(&fx.dir, s, &image);
    let err = build::build(&docker, &req, None, &runner())
        .await
        .unwrap_err();
    assert!(
        Failure::of(&err.into())
            .text()
            .contains("secret a not found"),
        "a required secret that is not given"
    );
    req.secrets = std::sync::Arc::new(
        [("a".to_string(), secret_text(&SecretString::from("value-a")))]
            .into_iter()
            .collect(),
    );
    build::build(&docker, &req, None, &runner()).await.unwrap();
    // Copied on purpose to prove it was served: the test's own choice, not something to do.
    assert_eq!(file_in_image(&docker, &image, "/a.txt").await, "value-a");
    remove_image(&docker, &image).await;
}
