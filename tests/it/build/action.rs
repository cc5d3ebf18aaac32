//! The binary as a workflow runs it: build, push, pin, skip on re-run, cache-from auto,
//! dry runs and failures as one `::error::` line.

use std::collections::HashMap;
use std::path::Path;

use bollard::Docker;
use futures_util::StreamExt;

use deploy_action::registry::{self, ImageRef};
use deploy_action::retry::Policy;

use crate::support::docker::{docker, remove_image, remove_repository};
use crate::support::registry::{closed_port, get_manifest, unique_name as unique};
use crate::support::services::Services;
use crate::support::{Action, Remote, Run, Workspace, copy_dir, error_line, services};

/// A Nova checkout with a fixture service at `backend/auth-service`, and its remote.
pub(super) struct Job {
    pub(super) remote: Remote,
    pub(super) ws: Workspace,
    pub(super) repository: String,
    /// The build args every run of this job gives, after `BASE`.
    build_args: String,
}

impl Job {
    /// The fixture service, its RUN step keyed to this job.
    pub(super) fn new() -> Job {
        Job::of("service", &format!("GREETING=job-{}\nWORK=1", unique()))
    }

    /// The cargo-chef-shaped fixture, its cook step keyed to this job.
    pub(super) fn chef() -> Job {
        Job::of("chef", &format!("NONCE=chef-{}\nWORK=1", unique()))
    }

    fn of(fixture: &str, build_args: &str) -> Job {
        let remote = Remote::file();
        let ws = Workspace::clone_of(&remote);
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(fixture),
            &ws.path.join("backend/auth-service"),
        );
        Job {
            remote,
            ws,
            repository: format!("da-test/job-{}", unique()),
            build_args: build_args.to_string(),
        }
    }

    /// The action for this job as a workflow would call it, with the generic-registry login.
    pub(super) fn action(&self, s: &Services, tag: &str) -> Action {
        Action::new(&self.ws.path)
            .input("service", "auth-service")
            .input("tag", tag)
            .input("registry", &s.registry)
            .input("registry-username", &s.registry_user)
            .input("registry-password", &s.registry_password)
            .input("repository", &self.repository)
            .input("image-name", "auth-service")
            .input("context", "backend/auth-service")
            .input("dockerfile", "backend/auth-service/Dockerfile")
            .input(
                "build-args",
                &format!("BASE={}\n{}", s.base_image, self.build_args),
            )
            .input("labels", "com.example.team=nova")
    }

    pub(super) fn image(&self, s: &Services, tag: &str) -> ImageRef {
        ImageRef::tagged(&s.registry, &self.repository, tag)
    }
}

/// Runs the action and checks what every run must hold: the password never reaches the output
/// (except in the `::add-mask::` command that tells the runner to redact it).
pub(super) fn run(action: Action, s: &Services) -> Run {
    let run = action.run();
    for text in [&run.stdout, &run.stderr, &run.summary] {
        let leaked = text
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .any(|l| l.contains(&s.registry_password));
        assert!(
            !leaked,
            "the registry password leaked:\n{}",
            run.all_output()
        );
    }
    run
}

pub(super) fn block_on<F: std::future::Future>(f: F) -> F::Output {
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
    let _daemon = crate::support::docker::shared_daemon();
    let s = services();
    let job = Job::new();
    let image = job.image(s, "t1");
    let first = run(job.action(s, "t1").input("pin-digest", "true"), s);
    first.assert_ok();
    let masked = format!("::add-mask::{}", s.registry_password);
    assert!(
        first.stdout.lines().any(|l| l == masked),
        "{}",
        first.stdout
    );
    let digest = first.output("digest").to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert_eq!(first.output("built"), "true");
    assert_eq!(first.output("image"), image.to_string());
    assert_eq!(
        first.output("image-ref"),
        format!("{}/{}@{digest}", s.registry, job.repository)
    );
    // The build log sits in a group (BuildKit's, on this daemon), and so does the push, one
    // line per layer.
    assert_eq!(first.output("builder"), "buildkit");
    assert!(
        first
            .stdout
            .contains(&format!("::group::Build {image} (buildkit)\n")),
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
    let answer = block_on(get_manifest(
        &image,
        "t1",
        Some((&s.registry_user, &s.registry_password)),
    ));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["docker-content-digest"], digest);
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
    let again = run(job.action(s, "t1"), s);
    again.assert_ok();
    assert_eq!(again.output("built"), "false");
    assert_eq!(again.output("digest"), digest);
    assert!(!again.stdout.contains("::group::Build"), "{}", again.stdout);
    assert_eq!(
        block_on(tag_events(&docker, &image.to_string(), &since)),
        0,
        "the daemon tagged no image"
    );
    assert!(again.summary.contains("skipped"), "{}", again.summary);

    // Promotion (build: false) with pin-digest asks the registry for the digest; a tag the
    // registry lacks fails clearly and leaves the branch alone.
    let head = job.remote.head();
    let promote = |tag: &str| {
        run(
            job.action(s, tag)
                .input("build", "false")
                .input("pin-digest", "true"),
            s,
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
fn cache_from_auto_reuses_the_deployed_images_run_layer_after_a_source_change_with_the_classic_builder()
 {
    let _daemon = crate::support::docker::shared_daemon();
    let s = services();
    let job = Job::new();
    let classic = |tag: &str| job.action(s, tag).input("builder", "classic");
    // Deploy t1: the workspace's overlay now names it (git-push: false edits the file only).
    run(classic("t1").input("git-push", "false"), s).assert_ok();
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
    block_on(remove_image(&docker, &job.image(s, "t1")));

    std::fs::write(
        job.ws.path.join("backend/auth-service/src/main.txt"),
        "changed\n",
    )
    .unwrap();
    let second = run(classic("t2").input("git-push", "false"), s);
    second.assert_ok();
    assert_eq!(second.output("builder"), "classic");
    let lines: Vec<&str> = second.stdout.lines().collect();
    assert!(
        second
            .stdout
            .contains(&format!("cache image {}: pulled", job.image(s, "t1"))),
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
    block_on(remove_repository(&docker, &job.image(s, "t2")));
}

#[test]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
fn dry_run_and_push_false_build_without_pushing_and_say_why_there_is_no_digest() {
    let _daemon = crate::support::docker::shared_daemon();
    let s = services();
    let job = Job::new();
    for (input, value, why) in [
        ("dry-run", "true", "dry-run"),
        ("push", "false", "push: false"),
    ] {
        let tag = format!("t-{}", input);
        let r = run(
            job.action(s, &tag)
                .input(input, value)
                .input("git-push", "false"),
            s,
        );
        r.assert_ok();
        assert_eq!(r.output("built"), "true");
        assert_eq!(r.output("digest"), "");
        assert!(!r.stdout.contains("::group::Push"), "{}", r.stdout);
        assert!(r.summary.contains(why), "{}", r.summary);
        let exists = block_on(registry::existing_digest(
            &job.image(s, &tag),
            Some(&s.creds()),
        ))
        .unwrap();
        assert_eq!(exists, None, "{input}: nothing reached the registry");
    }
    block_on(async { remove_repository(&docker().await, &job.image(s, "t")).await });
}

#[test]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
fn build_failures_are_one_error_line_naming_the_cause() {
    let _daemon = crate::support::docker::shared_daemon();
    let s = services();
    let job = Job::new();

    // A failing RUN step names the step, its file and line, and the daemon's message: with
    // the classic builder as its log numbers the step,
    let dockerfile = job.ws.path.join("backend/auth-service/Dockerfile");
    std::fs::write(
        &dockerfile,
        format!("FROM {}\nRUN echo about to fail && exit 7\n", s.base_image),
    )
    .unwrap();
    let r = run(
        job.action(s, "t-fail")
            .input("git-push", "false")
            .input("builder", "classic"),
        s,
    );
    let e = error_line(&r);
    assert!(
        e.contains("failed at Step 2/") && e.contains(" : RUN echo about to fail && exit 7: "),
        "{e}"
    );
    assert!(e.contains("returned a non-zero code: 7"), "{e}");
    assert!(
        e.starts_with("::error file=backend/auth-service/Dockerfile,line=2::"),
        "{e}"
    );
    // and with BuildKit, with the last lines the step printed.
    let r = run(job.action(s, "t-fail").input("git-push", "false"), s);
    let e = error_line(&r);
    assert!(
        e.starts_with("::error file=backend/auth-service/Dockerfile,line=2::"),
        "{e}"
    );
    assert!(
        e.contains("failed at `RUN echo about to fail && exit 7`: ") && e.contains("exit code: 7"),
        "{e}"
    );
    assert!(e.contains("\n  | about to fail"), "{e}");
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.starts_with("::error"))
            .count(),
        1,
        "{}",
        r.stdout
    );
    assert_eq!(
        job.ws.overlay(),
        crate::support::seed_kustomization(),
        "a failed build changes nothing"
    );

    // A missing Dockerfile says where it was looked for.
    let r = run(
        job.action(s, "t-missing")
            .input("dockerfile", "backend/nope/Dockerfile"),
        s,
    );
    let e = error_line(&r);
    assert!(
        e.contains(&format!(
            "Dockerfile not found: looked for {}",
            job.ws.path.join("backend/nope/Dockerfile").display()
        )),
        "{e}"
    );
    block_on(async { remove_repository(&docker().await, &job.image(s, "t")).await });
}

#[test]
#[ignore = "needs dockerd+registry; run by scripts/test.sh"]
fn push_failures_are_clear_and_bounded() {
    let _daemon = crate::support::docker::shared_daemon();
    let s = services();
    let job = Job::new();

    // A wrong password: refused once, with the hint, no retries.
    let r = run(
        job.action(s, "t-denied")
            .input("registry-password", "not-the-password")
            .input("skip-existing", "false")
            .input("git-push", "false"),
        s,
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
        job.action(s, "t-down")
            .input("registry", &down)
            .input("skip-existing", "false")
            .input("git-push", "false"),
        s,
    );
    let e = error_line(&r);
    assert!(
        e.contains(&format!(
            "failed after {} attempt(s)",
            Policy::REGISTRY_PUSH.attempts
        )) && e.contains("connection refused"),
        "{e}"
    );
    assert_eq!(
        r.all_output().matches("retrying in").count() as u32,
        Policy::REGISTRY_PUSH.attempts - 1,
        "{}",
        r.all_output()
    );
    block_on(async { remove_repository(&docker().await, &job.image(s, "t")).await });
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

/// Each cause is said once: `error sending request for url (…)` is both what oci-client prints
/// and the source it returns.
#[test]
fn an_unreachable_registry_is_one_error_with_its_cause_once_and_a_hint() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let head = remote.head();
    let down = format!("127.0.0.1:{}", closed_port());
    let r = Action::new(&ws.path)
        .input("service", "auth-service")
        .input("tag", "t1")
        .input("registry", &down)
        .input("registry-username", "ci")
        .input("registry-password", "pw")
        .run();
    let e = error_line(&r);
    assert!(
        e.contains(&format!(
            "looking up {down}/auth-service:t1 in the registry failed: "
        )),
        "{e}"
    );
    assert_eq!(e.matches("error sending request").count(), 1, "{e}");
    assert_eq!(e.matches("client error (Connect)").count(), 1, "{e}");
    assert!(e.contains("\nhint: check the registry input"), "{e}");
    assert_eq!(remote.head(), head);
}

#[test]
#[ignore = "needs dockerd; run by scripts/test.sh"]
fn an_empty_dockerfile_is_one_error_with_the_daemons_message_once_with_either_builder() {
    let _daemon = crate::support::docker::shared_daemon();
    let s = services();
    let job = Job::new();
    std::fs::write(job.ws.path.join("backend/auth-service/Dockerfile"), "").unwrap();
    let r = run(
        job.action(s, "t-empty")
            .input("skip-existing", "false")
            .input("git-push", "false"),
        s,
    );
    let e = error_line(&r);
    assert_eq!(e.matches("cannot be empty").count(), 1, "{e}");
    assert!(e.contains("failed to create LLB definition"), "{e}");
    let r = run(
        job.action(s, "t-empty")
            .input("skip-existing", "false")
            .input("git-push", "false")
            .input("builder", "classic"),
        s,
    );
    let e = error_line(&r);
    assert_eq!(e.matches("cannot be empty").count(), 1, "{e}");
    assert!(e.contains("status code 400"), "{e}");
    assert_eq!(job.ws.overlay(), crate::support::seed_kustomization());
}
