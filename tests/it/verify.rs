//! The verify stage through the binary, against the Argo CD stand-in (support/argocd.rs) that
//! reads each test's real git remote and renders its overlay with the real `kubectl kustomize`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::argocd::{ArgoStandIn, End, Script};
use crate::support::{Action, OVERLAY, Remote, Run, Workspace, error_line, git, services};

const APP: &str = "nova-staging";
const OURS: &str = "registry.local/nova/auth-service:t1";
const SEED: &str = "registry.local/nova/auth-service:seed";

fn script(remote: &Remote) -> Script {
    Script::new(&remote.dir, OVERLAY)
}

/// The usual job, `auth-service` at `t1`, verified against `argo`.
fn job(ws: &Workspace, argo: &ArgoStandIn) -> Action {
    Action::promote(&ws.path, "auth-service", "t1")
        .input("argocd-server", &argo.url)
        .input("argocd-token", &argo.token)
        .input("argocd-app", APP)
}

/// Another matrix job landing on `remote`, through the binary.
fn land(remote_dir: &std::path::Path, service: &str, tag: &str) {
    let tmp = tempfile::tempdir().unwrap();
    git(
        tmp.path(),
        &["clone", "-q", remote_dir.to_str().unwrap(), "ws"],
    );
    Action::promote(&tmp.path().join("ws"), service, tag)
        .run()
        .assert_ok();
}

/// The token is handed to the runner's masking before anything else is said, and appears
/// nowhere but in that `::add-mask::` command.
#[track_caller]
fn assert_token_hidden(run: &Run, token: &str) {
    let first = run.stdout.lines().position(|l| l.contains(token));
    assert_eq!(
        first.map(|i| run.stdout.lines().nth(i).unwrap().to_string()),
        Some(format!("::add-mask::{token}")),
        "the token is masked first:\n{}",
        run.stdout
    );
    let leaks = run
        .all_output()
        .lines()
        .chain(run.summary.lines())
        .chain(run.outputs.values().flat_map(|v| v.lines()))
        .filter(|l| l.contains(token) && !l.starts_with("::add-mask::"))
        .count();
    assert_eq!(leaks, 0, "the Argo CD token leaked:\n{}", run.all_output());
}

/// The state-change lines the stage printed.
fn state_lines(run: &Run) -> Vec<&str> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with(&format!("argocd {APP}: ")))
        .collect()
}

fn short(sha: &str) -> &str {
    &sha[..7]
}

#[test]
#[ignore = "needs kubectl (scripts/test.sh)"]
fn a_stale_synced_healthy_state_from_before_our_commit_is_not_taken_for_our_rollout() {
    let remote = Remote::file();
    let seed = remote.head();
    let ws = Workspace::clone_of(&remote);
    let argo = ArgoStandIn::start(Script {
        refresh_notices: false,
        notice_after: Duration::from_millis(1200),
        ..script(&remote)
    });

    let run = job(&ws, &argo).run();

    run.assert_ok();
    let ours = run.output("commit").to_string();
    assert_ne!(ours, seed);
    assert_eq!(run.output("synced-revision"), ours);
    assert_eq!(run.output("sync-status"), "Synced");
    assert_eq!(run.output("health-status"), "Healthy");
    assert_eq!(run.output("superseded"), "false");
    let lines = state_lines(&run);
    assert!(
        lines[1].contains(&format!("Synced at {}, Healthy", short(&seed))),
        "the stale state was seen first: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("→ Synced at {}", short(&ours)))),
        "{lines:#?}"
    );
    assert!(
        lines.len() >= 4,
        "one line per state change, through the rollout: {lines:#?}"
    );
    assert!(
        run.summary
            .contains(&format!("- Argo CD: Synced at `{}`, Healthy", &ours[..12])),
        "{}",
        run.summary
    );
    assert!(run.summary.contains("verify "), "{}", run.summary);
    assert_token_hidden(&run, &argo.token);
}

#[test]
#[ignore = "needs kubectl (scripts/test.sh)"]
fn a_sibling_commit_past_ours_that_keeps_our_image_counts_as_deployed() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let dir = remote.dir.clone();
    let argo = ArgoStandIn::start(Script {
        before_first_look: Some(Arc::new(move || land(&dir, "user-service", "t9"))),
        ..script(&remote)
    });

    let run = job(&ws, &argo).run();

    run.assert_ok();
    let ours = run.output("commit");
    let sibling = remote.head();
    assert_ne!(sibling, ours, "the sibling landed after us");
    assert_eq!(git(&remote.dir, &["rev-parse", "main~1"]), ours);
    assert_eq!(run.output("synced-revision"), sibling);
    assert_eq!(run.output("health-status"), "Healthy");
    assert_eq!(run.output("superseded"), "false");
    assert_token_hidden(&run, &argo.token);
}

#[test]
#[ignore = "needs kubectl (scripts/test.sh)"]
fn a_later_commit_that_replaced_our_image_ends_the_wait_as_superseded() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let dir = remote.dir.clone();
    let argo = ArgoStandIn::start(Script {
        before_first_look: Some(Arc::new(move || land(&dir, "auth-service", "t2"))),
        // Long enough that waiting for Healthy would show.
        running: Duration::from_secs(20),
        ..script(&remote)
    });

    let started = Instant::now();
    let run = job(&ws, &argo).run();

    run.assert_ok();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "stopped at the newer revision, not after its rollout"
    );
    assert_eq!(run.output("superseded"), "true");
    assert_eq!(run.output("synced-revision"), remote.head());
    let notice = run
        .stdout
        .lines()
        .find(|l| l.starts_with("::notice") && l.contains("superseded"))
        .unwrap_or_else(|| panic!("no superseded notice:\n{}", run.stdout));
    assert!(
        notice.contains("registry.local/nova/auth-service:t2"),
        "{notice}"
    );
    assert!(
        run.summary
            .contains("superseded: a later commit deploys `registry.local/nova/auth-service:t2`"),
        "{}",
        run.summary
    );
}

#[test]
#[ignore = "needs kubectl (scripts/test.sh)"]
fn degraded_health_after_progressing_fails_naming_the_resources_and_argo_cds_message() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let message = "Deployment \"auth-service\" exceeded its progress deadline";
    let argo = ArgoStandIn::start(Script {
        end: End::Degraded(message.into()),
        ..script(&remote)
    });

    let run = job(&ws, &argo).run();

    let error = error_line(&run);
    assert!(
        error.contains(&format!("application {APP} is Degraded at our revision")),
        "{error}"
    );
    assert!(
        error.contains(&format!("Deployment staging/auth-service: {message}")),
        "{error}"
    );
    assert!(
        error.contains(&format!("hint: `argocd app get {APP}`")),
        "{error}"
    );
    let lines = state_lines(&run);
    let progressing = lines.iter().position(|l| l.contains("→ Progressing"));
    let degraded = lines.iter().position(|l| l.contains("→ Degraded"));
    assert!(
        progressing.is_some() && progressing < degraded,
        "Degraded came after Progressing: {lines:#?}"
    );
    assert!(
        remote.overlay().contains("newTag: t1"),
        "the landed commit stays"
    );
    assert_token_hidden(&run, &argo.token);
}

#[test]
#[ignore = "needs kubectl (scripts/test.sh)"]
fn a_failed_sync_operation_fails_with_argo_cds_message() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let message = "one or more objects failed to apply, reason: Deployment.apps \"auth-service\" is invalid: spec.template.spec.containers[0].image: Required value";
    let argo = ArgoStandIn::start(Script {
        end: End::OperationFails(message.into()),
        ..script(&remote)
    });

    let run = job(&ws, &argo).run();

    let error = error_line(&run);
    assert!(
        error.contains(&format!(
            "Argo CD's sync of application {APP} ended Failed: {message}"
        )),
        "{error}"
    );
    assert_eq!(error.matches(message).count(), 1, "said once: {error}");
    assert_token_hidden(&run, &argo.token);
}

#[test]
#[ignore = "needs kubectl (scripts/test.sh)"]
fn a_comparison_error_condition_fails_at_once() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let message = "Failed to load target state: failed to generate manifest for source 1 of 1: rpc error: code = Unknown desc = `kustomize build` failed exit status 1";
    let argo = ArgoStandIn::start(Script {
        end: End::ComparisonError(message.into()),
        ..script(&remote)
    });

    let run = job(&ws, &argo).input("argocd-timeout", "120").run();

    let error = error_line(&run);
    assert!(
        error.contains(&format!(
            "Argo CD's ComparisonError for application {APP}: {message}"
        )),
        "{error}"
    );
    assert_eq!(argo.requests(), 1, "failed on the first answer");
}

#[test]
#[ignore = "needs kubectl (scripts/test.sh)"]
fn while_old_and_new_images_both_run_we_wait_and_our_image_among_others_is_enough() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let argo = ArgoStandIn::start(Script {
        keep_old_images: true,
        ..script(&remote)
    });

    let run = job(&ws, &argo).run();

    run.assert_ok();
    let lines = state_lines(&run);
    let both = lines
        .iter()
        .position(|l| l.contains("images:") && l.contains(SEED) && l.contains(OURS))
        .unwrap_or_else(|| panic!("no line lists both images: {lines:#?}"));
    assert!(
        lines[both].contains("Progressing") || lines[both].contains("Running"),
        "both listed during the rollout: {lines:#?}"
    );
    assert_eq!(run.output("health-status"), "Healthy");
    assert_eq!(run.output("synced-revision"), run.output("commit"));
}

#[test]
#[ignore = "needs kubectl (scripts/test.sh)"]
fn a_bad_token_a_foreign_project_token_and_a_missing_app_fail_at_once_with_their_hints() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let argo = ArgoStandIn::start(Script {
        namespace: Some("team-a".into()),
        ..script(&remote)
    });
    let foreign = "token-of-another-project";
    let cases: [(&str, &str, Option<&str>, &str, &str); 4] = [
        (
            "wrong-token-0000",
            APP,
            Some("team-a"),
            "refused the token for application nova-staging (HTTP 401)",
            "hint: argocd-token is missing, expired or revoked",
        ),
        (
            foreign,
            APP,
            Some("team-a"),
            "denied reading application nova-staging (HTTP 403)",
            "p, proj:<project>:<role>, applications, get, <project>/*, allow",
        ),
        (
            &argo.token,
            "nova-prod",
            Some("team-a"),
            "has no application nova-prod in namespace team-a (HTTP 404)",
            "hint: check argocd-app, and argocd-app-namespace",
        ),
        (
            &argo.token,
            APP,
            None,
            "has no application nova-staging (HTTP 404)",
            "argocd-app-namespace for an application outside",
        ),
    ];
    for (token, app, namespace, says, hint) in cases {
        let before = argo.requests();
        let run = job(&ws, &argo)
            .input("argocd-token", token)
            .input("argocd-app", app)
            .input("argocd-app-namespace", namespace.unwrap_or(""))
            .run();
        let error = error_line(&run);
        assert!(error.contains(says), "{error}");
        assert!(error.contains(hint), "{error}");
        assert_eq!(argo.requests() - before, 1, "no retry: {error}");
        assert_token_hidden(&run, token);
    }

    let run = job(&ws, &argo)
        .input("argocd-app-namespace", "team-a")
        .run();
    run.assert_ok();
    assert_eq!(run.output("sync-status"), "Synced");
}

#[test]
#[ignore = "needs kubectl (scripts/test.sh)"]
fn server_errors_are_retried_until_argo_cd_answers() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let argo = ArgoStandIn::start(Script {
        fail_first: 3,
        ..script(&remote)
    });

    let run = job(&ws, &argo).run();

    run.assert_ok();
    assert_eq!(
        run.stdout.matches("HTTP 503; trying again").count(),
        1,
        "one line for the outage, not one per poll:\n{}",
        run.stdout
    );
    assert!(argo.requests() > 4);
    assert_eq!(run.output("synced-revision"), run.output("commit"));
}

#[test]
#[ignore = "needs kubectl (scripts/test.sh)"]
fn without_automated_sync_the_wait_times_out_with_the_last_state_and_a_hint() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let argo = ArgoStandIn::start(Script {
        end: End::NeverSyncs,
        ..script(&remote)
    });

    let started = Instant::now();
    let run = job(&ws, &argo).input("argocd-timeout", "3").run();

    let error = error_line(&run);
    let ours = remote.head();
    assert!(
        error.contains(&format!(
            "application {APP} did not become Synced and Healthy with our image within 3 s; last seen: OutOfSync at {}, Healthy",
            short(&ours)
        )),
        "{error}"
    );
    assert!(error.contains("hint: is automated sync enabled"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_token_hidden(&run, &argo.token);
}

#[test]
#[ignore = "needs kubectl (scripts/test.sh)"]
fn an_argo_cd_that_is_down_is_retried_then_reported_unreachable() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);

    let run = Action::promote(&ws.path, "auth-service", "t1")
        .input("argocd-server", &url)
        .input("argocd-token", "down-token-1234")
        .input("argocd-app", APP)
        .input("argocd-timeout", "3")
        .run();

    let error = error_line(&run);
    assert!(
        error.contains(&format!("Argo CD at {url} did not answer within 3 s")),
        "{error}"
    );
    assert!(error.contains("hint: check argocd-server"), "{error}");
    assert_eq!(
        run.stdout.matches("trying again").count(),
        1,
        "{}",
        run.stdout
    );
    assert_token_hidden(&run, "down-token-1234");
}

#[test]
#[ignore = "needs the https server (scripts/test.sh)"]
fn a_self_signed_certificate_fails_with_the_insecure_hint_and_is_accepted_with_argocd_insecure() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let https = services().https_git_url.clone();
    let server = https.trim_end_matches("/git").to_string();
    let verify = |insecure: &str| {
        Action::promote(&ws.path, "auth-service", "t1")
            .env_remove("SSL_CERT_FILE")
            .input("argocd-server", &server)
            .input("argocd-token", "tls-token-5678")
            .input("argocd-app", APP)
            .input("argocd-insecure", insecure)
            .run()
    };

    let run = verify("false");
    let error = error_line(&run);
    assert!(
        error.contains(&format!(
            "cannot make a TLS connection to Argo CD at {server}"
        )),
        "{error}"
    );
    assert!(
        error.contains(
            "hint: if the server's certificate is self-signed, set `argocd-insecure: true`"
        ),
        "{error}"
    );

    let run = verify("true");
    let error = error_line(&run);
    assert!(
        !error.contains("TLS"),
        "the handshake went through: {error}"
    );
    assert!(error.contains("(HTTP 4"), "the server answered: {error}");
    assert_token_hidden(&run, "tls-token-5678");
}

#[test]
#[ignore = "needs kubectl (scripts/test.sh)"]
fn verification_is_skipped_in_a_dry_run_and_without_git_push_and_runs_again_on_a_rerun() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let argo = ArgoStandIn::start(script(&remote));

    for (input, value) in [("dry-run", "true"), ("git-push", "false")] {
        let run = job(&ws, &argo).input(input, value).run();
        run.assert_ok();
        assert_eq!(run.output("sync-status"), "", "{input}");
        assert_eq!(argo.requests(), 0, "{input}: Argo CD was not asked");
    }
    git(&ws.path, &["checkout", "-q", "--", "."]);

    let first = job(&ws, &argo).run();
    first.assert_ok();
    let asked = argo.requests();
    assert!(asked > 0);

    let rerun = job(&ws, &argo).run();
    rerun.assert_ok();
    assert_eq!(rerun.output("changed"), "false");
    assert!(argo.requests() > asked, "the re-run verified too");
    assert_eq!(rerun.output("synced-revision"), first.output("commit"));
    assert_eq!(rerun.output("health-status"), "Healthy");
}

#[test]
#[ignore = "needs kubectl (scripts/test.sh)"]
fn eight_matrix_jobs_verify_against_one_application_and_all_succeed() {
    let remote = Remote::served(crate::support::Server::GitDaemon);
    let argo = ArgoStandIn::start(script(&remote));
    let workspaces: Vec<Workspace> = crate::support::SERVICES
        .iter()
        .map(|_| Workspace::clone_of(&remote))
        .collect();

    let jobs: Vec<_> = crate::support::SERVICES
        .iter()
        .zip(&workspaces)
        .map(|(service, ws)| {
            Action::promote(&ws.path, service, "m1")
                .input("argocd-server", &argo.url)
                .input("argocd-token", &argo.token)
                .input("argocd-app", APP)
                .spawn()
        })
        .collect();
    let runs: Vec<Run> = jobs.into_iter().map(|j| j.wait()).collect();

    let head = remote.head();
    let mut seconds = Vec::new();
    for run in &runs {
        run.assert_ok();
        let synced = run.output("synced-revision");
        let ours = run.output("commit");
        assert!(
            synced == ours
                || git(&remote.dir, &["merge-base", "--is-ancestor", ours, synced]).is_empty(),
            "synced at our commit or a later one"
        );
        assert_eq!(run.output("health-status"), "Healthy");
        assert_eq!(run.output("superseded"), "false");
        assert_token_hidden(run, &argo.token);
        let verify: f64 = run
            .summary
            .split("verify ")
            .nth(1)
            .and_then(|s| s.split('s').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no verify seconds in {}", run.summary));
        seconds.push(verify);
    }
    assert_eq!(remote.commit_count(), 9, "every job landed once");
    for service in crate::support::SERVICES {
        assert!(
            remote.overlay().contains(&format!(
                "newName: registry.local/nova/{service}\n    newTag: m1"
            )),
            "{service}"
        );
    }
    seconds.sort_by(f64::total_cmp);
    eprintln!(
        "verify stage over the 8-job matrix: median {:.1} s, max {:.1} s (final tip {})",
        seconds[4],
        seconds[7],
        short(&head)
    );
}
