//! The stale-write guard through the binary: depth-1 checkouts of a real remote over git daemon,
//! jobs whose tags are the commits they built (`GITHUB_SHA`, the default tag).

use std::path::Path;

use crate::support::{Action, Remote, Run, Server, Workspace, bin, git};

/// The source history a team's runs build: `a` then `b` on `main`, each with the depth-1
/// checkout its run made.
struct Source {
    remote: Remote,
    a: String,
    b: String,
    ws_a: Workspace,
    ws_b: Workspace,
}

fn source() -> Source {
    let remote = Remote::served(Server::GitDaemon);
    let dev = Workspace::clone_of(&remote);
    let commit = |text: &str| {
        std::fs::create_dir_all(dev.path.join("backend/auth-service")).unwrap();
        std::fs::write(dev.path.join("backend/auth-service/main.txt"), text).unwrap();
        git(&dev.path, &["add", "-A"]);
        git(&dev.path, &["commit", "-qm", text]);
        git(
            &dev.path,
            &["push", "-q", remote.dir.to_str().unwrap(), "HEAD:main"],
        );
        git(&dev.path, &["rev-parse", "HEAD"])
    };
    let a = commit("auth v1");
    let ws_a = Workspace::shallow_clone_of(&remote);
    let b = commit("auth v2");
    let ws_b = Workspace::shallow_clone_of(&remote);
    Source {
        remote,
        a,
        b,
        ws_a,
        ws_b,
    }
}

/// The run for the commit `sha` checked out at `ws`, with the default tag (`GITHUB_SHA`).
fn run_for(ws: &Workspace, sha: &str) -> Action {
    Action::promote(&ws.path, "auth-service", "").env("GITHUB_SHA", sha)
}

fn deployed_tag(remote: &Remote) -> String {
    let overlay = remote.overlay();
    let at = overlay
        .find("newName: registry.local/nova/auth-service\n    newTag: ")
        .unwrap();
    overlay[at..]
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .trim_start_matches("newTag: ")
        .to_string()
}

fn notices(run: &Run) -> Vec<&str> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with("::notice"))
        .collect()
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn an_older_run_after_a_newer_deploy_changes_nothing_and_says_it_was_superseded() {
    let s = source();
    run_for(&s.ws_b, &s.b).run().assert_ok();
    let head = s.remote.head();

    let run = run_for(&s.ws_a, &s.a).run();

    run.assert_ok();
    assert_eq!(run.output("superseded"), "true");
    assert_eq!(run.output("changed"), "false");
    assert_eq!(run.output("commit"), "");
    assert_eq!(s.remote.head(), head, "nothing was pushed");
    assert_eq!(deployed_tag(&s.remote), s.b);
    let notice = notices(&run).join("\n");
    assert!(
        notice.contains(&format!("already deploys {} (commit {})", s.b, &s.b[..12]))
            && notice.contains("allow-rollback"),
        "{notice}"
    );
    assert!(run.summary.contains("superseded"), "{}", run.summary);
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn a_newer_run_after_an_older_deploy_writes() {
    let s = source();
    run_for(&s.ws_a, &s.a).run().assert_ok();
    assert_eq!(deployed_tag(&s.remote), s.a);

    let run = run_for(&s.ws_b, &s.b).run();

    run.assert_ok();
    assert_eq!(run.output("changed"), "true");
    assert_eq!(run.output("superseded"), "false");
    assert_eq!(deployed_tag(&s.remote), s.b);
    assert!(
        notices(&run).is_empty(),
        "decided, so nothing to say: {:?}",
        notices(&run)
    );
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn a_rerun_of_the_same_sha_is_a_no_op() {
    let s = source();
    run_for(&s.ws_b, &s.b).run().assert_ok();
    let head = s.remote.head();

    let run = run_for(&s.ws_b, &s.b).run();

    run.assert_ok();
    assert_eq!(
        (run.output("changed"), run.output("superseded")),
        ("false", "false")
    );
    assert_eq!(s.remote.head(), head);
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn abbreviated_sha_tags_are_compared_as_commits() {
    let s = source();
    Action::promote(&s.ws_b.path, "auth-service", &s.b[..10])
        .run()
        .assert_ok();

    let run = Action::promote(&s.ws_a.path, "auth-service", &s.a[..8]).run();

    run.assert_ok();
    assert_eq!(run.output("superseded"), "true");
    assert_eq!(deployed_tag(&s.remote), &s.b[..10]);
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn a_tag_that_is_not_a_sha_is_written_with_a_notice_saying_why() {
    let s = source();
    run_for(&s.ws_b, &s.b).run().assert_ok();

    let run = Action::promote(&s.ws_a.path, "auth-service", "v1.2.3").run();

    run.assert_ok();
    assert_eq!(run.output("changed"), "true");
    assert_eq!(deployed_tag(&s.remote), "v1.2.3");
    let notice = notices(&run).join("\n");
    assert!(
        notice.contains("stale-write guard: cannot tell whether v1.2.3 is older than what is deployed (our tag v1.2.3 is not a commit SHA); writing it"),
        "{notice}"
    );
    // The seed's `newTag: seed` is not a SHA either.
    let fresh = source();
    let run = run_for(&fresh.ws_a, &fresh.a).run();
    run.assert_ok();
    assert!(
        notices(&run)
            .join("\n")
            .contains("the deployed tag seed is not a commit SHA"),
        "{:?}",
        notices(&run)
    );
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn allow_rollback_writes_the_older_tag() {
    let s = source();
    run_for(&s.ws_b, &s.b).run().assert_ok();

    let run = run_for(&s.ws_a, &s.a).input("allow-rollback", "true").run();

    run.assert_ok();
    assert_eq!(
        (run.output("changed"), run.output("superseded")),
        ("true", "false")
    );
    assert_eq!(deployed_tag(&s.remote), s.a);
}

/// `n` empty commits on `main` of the bare `repo`, made with plumbing.
fn empty_commits(repo: &Path, n: usize) {
    let script = format!(
        r#"set -e
tree=$(git rev-parse main^{{tree}}); c=$(git rev-parse main)
for i in $(seq {n}); do c=$(echo "filler $i" | GIT_AUTHOR_NAME=f GIT_AUTHOR_EMAIL=f@x GIT_COMMITTER_NAME=f GIT_COMMITTER_EMAIL=f@x git commit-tree "$tree" -p "$c"); done
git update-ref refs/heads/main "$c""#
    );
    let out = std::process::Command::new("sh")
        .current_dir(repo)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn a_deployed_commit_beyond_the_bound_is_written_over_with_a_notice() {
    let s = source();
    run_for(&s.ws_a, &s.a).run().assert_ok();
    empty_commits(&s.remote.dir, 1001);
    let ws = Workspace::shallow_clone_of(&s.remote);
    let ours = s.remote.head();

    let run = run_for(&ws, &ours).run();

    run.assert_ok();
    assert_eq!(run.output("changed"), "true");
    assert_eq!(deployed_tag(&s.remote), ours);
    let notice = notices(&run).join("\n");
    assert!(
        notice.contains(&format!(
            "the deployed commit {} is not on main within 1000 commits of the tip",
            s.a
        )),
        "{notice}"
    );
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn a_newer_job_landing_between_our_attempts_stops_us_as_superseded() {
    let s = source();
    // Our first push loses to the newer run, which lands while our push's hook runs.
    let marker = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let output = home.path().join("newer-output");
    s.remote.hook(&format!(
        r#"[ -e {m}/done ] && exit 0
touch {m}/done
env -i PATH="$PATH" HOME={home} GITHUB_ACTIONS=true GITHUB_WORKSPACE={ws} GITHUB_SHA={b} GITHUB_REF=refs/heads/main GITHUB_OUTPUT={out} INPUT_SERVICE=auth-service INPUT_BUILD=false INPUT_REGISTRY=registry.local INPUT_REPOSITORY=nova/auth-service INPUT_IMAGE-NAME=auth-service {bin} > {home}/newer.log 2>&1"#,
        m = marker.path().display(),
        home = home.path().display(),
        ws = s.ws_b.path.display(),
        b = s.b,
        out = output.display(),
        bin = bin(),
    ));

    let run = run_for(&s.ws_a, &s.a).run();

    run.assert_ok();
    let newer = std::fs::read_to_string(home.path().join("newer.log")).unwrap();
    assert!(newer.contains("pushed"), "the newer run landed: {newer}");
    assert!(
        run.stdout.contains("attempt 1: lost the race"),
        "{}",
        run.stdout
    );
    assert_eq!(run.output("superseded"), "true");
    assert_eq!(run.output("changed"), "false");
    assert_eq!(run.output("attempts"), "1");
    assert_eq!(deployed_tag(&s.remote), s.b);
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn a_deployed_commit_on_another_line_of_history_is_written_over_with_a_warning() {
    let s = source();
    // A side branch from before `a`, merged into main after `b`: its commit is on the branch
    // but neither an ancestor nor a descendant of `a`.
    let dev = Workspace::clone_of(&s.remote);
    git(
        &dev.path,
        &["checkout", "-qb", "side", &format!("{}~1", s.a)],
    );
    std::fs::write(dev.path.join("side.txt"), "side\n").unwrap();
    git(&dev.path, &["add", "-A"]);
    git(&dev.path, &["commit", "-qm", "side"]);
    let side = git(&dev.path, &["rev-parse", "HEAD"]);
    git(&dev.path, &["checkout", "-q", "main"]);
    git(
        &dev.path,
        &["merge", "-q", "--no-ff", "-m", "merge side", "side"],
    );
    git(
        &dev.path,
        &["push", "-q", s.remote.dir.to_str().unwrap(), "main"],
    );
    Action::promote(&dev.path, "auth-service", &side)
        .input("allow-rollback", "true")
        .run()
        .assert_ok();

    let run = run_for(&s.ws_a, &s.a).run();

    run.assert_ok();
    assert_eq!(run.output("changed"), "true");
    assert_eq!(deployed_tag(&s.remote), s.a);
    let warning = run
        .stdout
        .lines()
        .find(|l| l.starts_with("::warning"))
        .unwrap_or_else(|| panic!("no warning:\n{}", run.stdout));
    assert!(
        warning.contains(&format!(
            "the deployed commit {side} and ours {} are on different lines of history",
            s.a
        )),
        "{warning}"
    );
}
