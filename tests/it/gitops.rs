//! Integration tests: gitops, the race-safe write-back.
//!
//! The library loop is driven directly against file:// remotes; the race, failure and HTTPS
//! cases run many processes of the real binary against real servers (`git daemon` with a slow
//! `pre-receive` hook, `git http-backend` behind lighttpd with basic auth) that
//! `scripts/test.sh` starts.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deploy_action::failure::Hint as _;
use deploy_action::gitops::{self, GitopsError, Outcome, TipReader, WriteBack};
use yaml_rust2::{Yaml, YamlLoader};

use crate::support::{Action, OVERLAY, Remote, Run, Server, Workspace, git, services};

const OVERLAY_FILE: &str = "k8s/infrastructure/overlays/staging/kustomization.yaml";
const BOT: &str = "github-actions[bot]";

/// Races are measured against each other's CPU: run them one at a time.
static RACE: Mutex<()> = Mutex::new(());

fn race_lock() -> std::sync::MutexGuard<'static, ()> {
    RACE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ------------------------------------------------------------------ the library loop

fn options(remote: &Remote) -> WriteBack {
    WriteBack {
        remote_url: remote.url.clone(),
        branch: "main".into(),
        message: "chore(staging): update auth-service image to v2".into(),
        author_name: BOT.into(),
        author_email: "41898282+github-actions[bot]@users.noreply.github.com".into(),
        token: None,
        max_attempts: 30,
        deadline: Duration::from_secs(120),
        dry_run: false,
        workspace: None,
        contenders: 0,
    }
}

/// An edit that appends `line` to the overlay unless it is already there.
fn append(
    line: &'static str,
) -> impl FnMut(&TipReader<'_>) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    move |read| {
        let mut text = String::from_utf8(read(OVERLAY_FILE).expect("the overlay is at the tip"))?;
        if text.contains(line) {
            return Ok(Vec::new());
        }
        text.push_str(line);
        Ok(vec![(OVERLAY_FILE.to_string(), text.into_bytes())])
    }
}

#[test]
fn write_back_commits_on_the_fetched_tip_as_the_bot_and_pushes_it() {
    let remote = Remote::file();
    let before = remote.head();

    let outcome = gitops::write_back(&options(&remote), &mut append("# v2\n")).unwrap();

    let commit = outcome.commit.clone().expect("a commit was pushed");
    assert_eq!(
        outcome,
        Outcome {
            changed: true,
            commit: Some(remote.head()),
            attempts: 1,
            tip: Some(remote.head()),
            superseded: None,
            stats: outcome.stats.clone(),
        }
    );
    assert_eq!(
        git(&remote.dir, &["rev-parse", &format!("{commit}^")]),
        before,
        "the parent is exactly the tip"
    );
    assert_eq!(
        git(
            &remote.dir,
            &["log", "-1", "--format=%an <%ae>|%cn|%s", "main"]
        ),
        "github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>|github-actions[bot]|chore(staging): update auth-service image to v2"
    );
    assert!(remote.overlay().ends_with("# v2"));
    // Only the edited file changed.
    assert_eq!(
        git(&remote.dir, &["diff", "--name-only", &before, "main"]),
        OVERLAY_FILE
    );
}

#[test]
fn an_up_to_date_tip_is_left_alone() {
    let remote = Remote::file();
    let before = remote.head();

    let outcome = gitops::write_back(&options(&remote), &mut |_read: &TipReader<'_>| {
        Ok(Vec::new())
    })
    .unwrap();
    assert_eq!(
        outcome,
        Outcome {
            changed: false,
            commit: None,
            attempts: 0,
            tip: Some(before.clone()),
            superseded: None,
            stats: outcome.stats.clone(),
        }
    );

    // Writing back the very same bytes is no change either.
    let mut same = |read: &TipReader<'_>| {
        Ok(vec![(
            OVERLAY_FILE.to_string(),
            read(OVERLAY_FILE).unwrap(),
        )])
    };
    let outcome = gitops::write_back(&options(&remote), &mut same).unwrap();
    assert_eq!(
        outcome,
        Outcome {
            changed: false,
            commit: None,
            attempts: 0,
            tip: Some(before.clone()),
            superseded: None,
            stats: outcome.stats.clone(),
        }
    );
    assert_eq!(remote.head(), before);
}

#[test]
fn a_dry_run_builds_the_commit_but_pushes_nothing() {
    let remote = Remote::file();
    let before = remote.head();
    let opts = WriteBack {
        dry_run: true,
        ..options(&remote)
    };

    let outcome = gitops::write_back(&opts, &mut append("# v2\n")).unwrap();

    assert_eq!(
        outcome,
        Outcome {
            changed: true,
            commit: None,
            attempts: 0,
            tip: None,
            superseded: None,
            stats: outcome.stats.clone(),
        }
    );
    assert_eq!(remote.head(), before);
}

#[test]
fn a_failing_edit_aborts_at_once_and_the_remote_stays_as_it_was() {
    let remote = Remote::file();
    let before = remote.head();
    let mut calls = 0;
    let mut broken = |_read: &TipReader<'_>| -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        calls += 1;
        anyhow::bail!("{OVERLAY_FILE}:7: a block scalar cannot be edited safely")
    };

    let err = gitops::write_back(&options(&remote), &mut broken).unwrap_err();

    assert!(matches!(err, GitopsError::Edit(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("{OVERLAY_FILE}:7: a block scalar cannot be edited safely")
    );
    assert_eq!(calls, 1);
    assert_eq!(remote.head(), before);
}

#[test]
fn the_edit_reads_files_at_the_tip_not_in_the_workspace() {
    let remote = Remote::file();
    // Someone lands a change after the workspace was checked out.
    let other = Workspace::clone_of(&remote);
    std::fs::write(other.path.join("NOTICE"), "landed later\n").unwrap();
    git(&other.path, &["add", "NOTICE"]);
    git(&other.path, &["commit", "-qm", "landed later"]);
    git(
        &other.path,
        &["push", "-q", remote.dir.to_str().unwrap(), "HEAD:main"],
    );

    let mut seen = None;
    let mut edit = |read: &TipReader<'_>| {
        seen = read("NOTICE");
        assert_eq!(read("no/such/file"), None);
        Ok(Vec::new())
    };
    gitops::write_back(&options(&remote), &mut edit).unwrap();
    assert_eq!(seen.as_deref(), Some(&b"landed later\n"[..]));
}

#[test]
fn a_missing_branch_is_an_error_not_a_retry() {
    let remote = Remote::file();
    let opts = WriteBack {
        branch: "release".into(),
        ..options(&remote)
    };
    let err = gitops::write_back(&opts, &mut append("# v2\n")).unwrap_err();
    assert!(matches!(err, GitopsError::BranchMissing { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("{} has no branch release", remote.url)
    );
    assert!(err.hint().is_some());
}

/// Lands a commit on the remote's `main` behind the write-back's back, as a racing job would.
fn land_competing_commit(remote: &Remote, n: usize) {
    let other = Workspace::clone_of(remote);
    std::fs::write(other.path.join(format!("competitor-{n}")), "won\n").unwrap();
    git(&other.path, &["add", "-A"]);
    git(&other.path, &["commit", "-qm", &format!("competitor {n}")]);
    git(
        &other.path,
        &["push", "-q", remote.dir.to_str().unwrap(), "HEAD:main"],
    );
}

/// Each of the first `losses` edits is followed by a competitor landing first, so that push is
/// lost; the write-back must re-apply on the new tip and never overwrite what landed.
fn lose_then_land(
    remote: &Remote,
    losses: usize,
    max_attempts: u32,
) -> (Result<Outcome, GitopsError>, usize) {
    let mut calls = 0;
    let mut add = append("# v2\n");
    let mut edit = |read: &TipReader<'_>| {
        calls += 1;
        let files = add(read)?;
        if calls <= losses {
            land_competing_commit(remote, calls);
        }
        Ok(files)
    };
    let opts = WriteBack {
        max_attempts,
        ..options(remote)
    };
    let result = gitops::write_back(&opts, &mut edit);
    (result, calls)
}

fn assert_stale_pushes_are_not_sent_and_the_edit_is_reapplied(remote: &Remote) {
    let (result, calls) = lose_then_land(remote, 2, 30);
    let outcome = result.unwrap();
    assert_eq!(
        (
            outcome.changed,
            outcome.attempts,
            outcome.stats.stale,
            calls
        ),
        (true, 1, 2, 3),
        "two pushes found stale in negotiation, not sent and not counted; one attempt landed"
    );
    // Both competitors survived: the lease never lets a push overwrite them.
    assert_eq!(
        git(&remote.dir, &["log", "--format=%s", "main"]),
        "chore(staging): update auth-service image to v2\ncompetitor 2\ncompetitor 1\nseed"
    );
    assert_eq!(outcome.commit, Some(remote.head()));
    assert!(remote.overlay().ends_with("# v2"));
}

#[test]
fn a_stale_push_over_file_is_not_sent_and_the_edit_is_reapplied_on_the_new_tip() {
    assert_stale_pushes_are_not_sent_and_the_edit_is_reapplied(&Remote::file());
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn a_stale_push_over_git_daemon_is_not_sent_and_the_edit_is_reapplied_on_the_new_tip() {
    assert_stale_pushes_are_not_sent_and_the_edit_is_reapplied(&Remote::served(Server::GitDaemon));
}

#[test]
fn stale_pushes_are_bounded_by_the_deadline() {
    let remote = Remote::file();
    let mut calls = 0;
    let mut add = append("# v2\n");
    let mut edit = |read: &TipReader<'_>| {
        calls += 1;
        land_competing_commit(&remote, calls);
        add(read)
    };
    let opts = WriteBack {
        deadline: Duration::from_secs(2),
        ..options(&remote)
    };
    let err = gitops::write_back(&opts, &mut edit).unwrap_err();
    assert!(
        matches!(
            err,
            GitopsError::GaveUp {
                attempts: 0,
                why: "the deadline passed",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(calls > 1);
    assert!(!remote.overlay().ends_with("# v2"));
}

/// A chain of `n` commits on the seed, kept unreferenced by `main` under
/// `refs/competitors/<k>`, and a pre-receive hook that moves `main` to the next of them while
/// each push runs: every push reaches the server on the current tip and loses the race.
fn lose_every_race(remote: &Remote, n: usize) {
    let other = Workspace::clone_of(remote);
    for k in 1..=n {
        std::fs::write(other.path.join(format!("competitor-{k}")), "won\n").unwrap();
        git(&other.path, &["add", "-A"]);
        git(&other.path, &["commit", "-qm", &format!("competitor {k}")]);
        git(
            &other.path,
            &[
                "push",
                "-q",
                remote.dir.to_str().unwrap(),
                &format!("HEAD:refs/competitors/{k}"),
            ],
        );
    }
    remote.hook(
        r#"n=$(( $(cat lost-count 2>/dev/null || echo 0) + 1 )); echo $n > lost-count
c=$(git rev-parse --verify -q refs/competitors/$n) || exit 0
env -u GIT_QUARANTINE_PATH -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES git update-ref refs/heads/main "$c""#,
    );
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn lost_races_are_bounded_by_max_attempts() {
    let remote = Remote::served(Server::GitDaemon);
    lose_every_race(&remote, 10);
    let mut calls = 0;
    let mut add = append("# v2\n");
    let mut edit = |read: &TipReader<'_>| {
        calls += 1;
        add(read)
    };
    let opts = WriteBack {
        max_attempts: 3,
        ..options(&remote)
    };
    let err = gitops::write_back(&opts, &mut edit).unwrap_err();
    assert!(
        matches!(
            err,
            GitopsError::GaveUp {
                attempts: 3,
                why: "the branch kept moving",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
    assert!(err.hint().unwrap().contains("max-attempts"));
    assert_eq!(calls, 3, "no re-apply once the attempts are spent");
    assert_eq!(
        git(&remote.dir, &["log", "-1", "--format=%s", "main"]),
        "competitor 3"
    );
}

/// [`lose_every_race`] once, with the losing push's hook slowed to 0.3 s: a round long enough
/// to look at the tip within it. Returns the commit that wins.
fn lose_one_race_slowly(remote: &Remote) -> String {
    lose_every_race(remote, 1);
    let hook = std::fs::read_to_string(remote.dir.join("hooks/pre-receive")).unwrap();
    let body = hook.split_once('\n').map_or(hook.as_str(), |(_, b)| b);
    remote.hook(&format!("{body}\nsleep 0.3"));
    git(&remote.dir, &["rev-parse", "refs/competitors/1"])
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn after_a_lost_race_the_job_looks_for_the_next_landing_before_pushing_again() {
    let remote = Remote::served(Server::GitDaemon);
    let competitor = lose_one_race_slowly(&remote);

    let outcome = gitops::write_back(&options(&remote), &mut append("# v2\n")).unwrap();

    assert_eq!(
        (outcome.attempts, outcome.stats.lost),
        (2, 1),
        "{outcome:?}"
    );
    assert!(outcome.stats.looks >= 1, "{outcome:?}");
    // The looks read the ref advertisement only: the fetches are the first, the one after the
    // backoff, and the one on the tip that won.
    assert_eq!(outcome.stats.fetches, 3, "{outcome:?}");
    let commit = outcome.commit.unwrap();
    assert_eq!(
        git(&remote.dir, &["rev-parse", &format!("{commit}^")]),
        competitor,
        "pushed on the commit that won"
    );
    assert_eq!(remote.head(), commit);
}

/// A git:// URL on a 127.0.0.1 port nobody listens on.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("git://127.0.0.1:{port}/nova.git")
}

#[test]
fn an_unreachable_remote_fails_after_a_few_bounded_retries() {
    let remote = Remote::file();
    let opts = WriteBack {
        remote_url: closed_port_url(),
        ..options(&remote)
    };
    let started = Instant::now();

    let err = gitops::write_back(&opts, &mut append("# v2\n")).unwrap_err();

    assert!(
        matches!(err, GitopsError::Unreachable { tries: 4, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("cannot reach git://127.0.0.1:"),
        "{err}"
    );
    // The cause is said once, by its message (git2's own Display would add class and code).
    assert!(err.to_string().contains("refused"), "{err:?}");
    assert!(std::error::Error::source(&err).is_none(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.hint().unwrap().contains("reach"));
}

#[test]
fn the_workspace_origin_and_branch_are_read_from_its_git_files() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    assert_eq!(
        gitops::workspace_origin(&ws.path).unwrap(),
        Some(remote.url.clone())
    );
    assert_eq!(
        gitops::workspace_branch(&ws.path).unwrap().as_deref(),
        Some("main")
    );
    git(&ws.path, &["checkout", "-q", "--detach"]);
    assert_eq!(gitops::workspace_branch(&ws.path).unwrap(), None);
    git(&ws.path, &["remote", "remove", "origin"]);
    assert_eq!(gitops::workspace_origin(&ws.path).unwrap(), None);
}

// ------------------------------------------------------------------ the real binary

fn job_service(i: usize) -> String {
    format!("job-{i:02}-service")
}

/// The `newTag` of the `images[]` entry named `name` in an overlay.
fn new_tag(overlay: &str, name: &str) -> Option<String> {
    let doc = YamlLoader::load_from_str(overlay).unwrap().remove(0);
    doc["images"]
        .as_vec()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .and_then(|e| match &e["newTag"] {
            Yaml::String(s) => Some(s.clone()),
            _ => None,
        })
}

/// Starts `n` jobs of the real binary at once, each promoting its own service to its own tag
/// from its own checkout, and waits for all of them.
fn race(remote: &Remote, n: usize, round: &str) -> Vec<Run> {
    let workspaces: Vec<Workspace> = (0..n).map(|_| Workspace::clone_of(remote)).collect();
    let spawned: Vec<_> = workspaces
        .iter()
        .enumerate()
        .map(|(i, ws)| Action::promote(&ws.path, &job_service(i), &format!("{round}-{i}")).spawn())
        .collect();
    spawned.into_iter().map(|s| s.wait()).collect()
}

/// Every job succeeded, its tag is in the final overlay, and it made exactly one commit.
fn assert_all_landed(remote: &Remote, runs: &[Run], round: &str) {
    let n = runs.len();
    for (i, run) in runs.iter().enumerate() {
        run.assert_ok();
        assert_eq!(run.output("changed"), "true", "job {i}");
        let attempts: u32 = run.output("attempts").parse().unwrap();
        assert!((1..=30).contains(&attempts), "job {i}: {attempts} attempts");
    }
    let overlay = remote.overlay();
    for i in 0..n {
        assert_eq!(
            new_tag(&overlay, &job_service(i)).as_deref(),
            Some(format!("{round}-{i}").as_str()),
            "job {i}\n{overlay}"
        );
    }
    assert_eq!(
        remote.commit_count(),
        1 + n,
        "one commit per job on top of the seed"
    );
    // Each job's reported commit is on main, and each commit is one job's.
    let history = git(&remote.dir, &["log", "--format=%H %s", "main"]);
    for (i, run) in runs.iter().enumerate() {
        let line = format!(
            "{} chore(staging): update {} image to {round}-{i}",
            run.output("commit"),
            job_service(i)
        );
        assert_eq!(
            history.lines().filter(|l| *l == line).count(),
            1,
            "job {i}: {line}\n{history}"
        );
    }
    // Every seeded entry is still there, untouched.
    for service in crate::support::SERVICES {
        assert_eq!(new_tag(&overlay, service).as_deref(), Some("seed"));
    }
}

fn total_attempts(runs: &[Run]) -> u32 {
    runs.iter()
        .map(|r| r.output("attempts").parse::<u32>().unwrap())
        .sum()
}

/// A re-run of an already-landed job: no new commit, `changed=false`.
fn assert_rerun_is_a_no_op(remote: &Remote, round: &str) {
    let ws = Workspace::clone_of(remote);
    let head = remote.head();
    let run = Action::promote(&ws.path, &job_service(0), &format!("{round}-0")).run();
    run.assert_ok();
    assert_eq!(run.output("changed"), "false");
    assert_eq!(run.output("commit"), "");
    assert_eq!(run.output("attempts"), "0");
    assert_eq!(remote.head(), head);
}

fn race_and_check(remote: &Remote, n: usize) {
    let _serial = race_lock();
    let round = format!("r{n}");
    let started = Instant::now();
    let runs = race(remote, n, &round);
    let took = started.elapsed();
    assert_all_landed(remote, &runs, &round);
    eprintln!(
        "{n} jobs against {}: {} push attempts in {took:.1?}",
        remote.url,
        total_attempts(&runs)
    );
    assert_rerun_is_a_no_op(remote, &round);
}

#[test]
fn eight_racing_jobs_over_file_all_land_with_one_commit_each() {
    race_and_check(&Remote::file(), 8);
}

#[test]
fn thirty_two_racing_jobs_over_file_all_land_with_one_commit_each() {
    race_and_check(&Remote::file(), 32);
}

fn slow_daemon_remote() -> Remote {
    let remote = Remote::served(Server::GitDaemon);
    remote.hook("sleep 0.3");
    remote
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn eight_racing_jobs_over_git_daemon_with_a_slow_hook_all_land() {
    race_and_check(&slow_daemon_remote(), 8);
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn thirty_two_racing_jobs_over_git_daemon_with_a_slow_hook_all_land() {
    race_and_check(&slow_daemon_remote(), 32);
}

/// A git daemon remote whose overlay lists `n` job services besides the seed's, as a
/// one-job-per-service matrix has it, with a pre-receive hook sleeping `hook`.
fn matrix_remote(n: usize, hook: &str) -> Remote {
    let remote = Remote::served(Server::GitDaemon);
    let ws = Workspace::clone_of(&remote);
    let path = ws.path.join(OVERLAY_FILE);
    let mut overlay = std::fs::read_to_string(&path).unwrap();
    for i in 0..n {
        let name = job_service(i);
        overlay.push_str(&format!(
            "  - name: {name}\n    newName: registry.local/nova/{name}\n    newTag: seed\n"
        ));
    }
    std::fs::write(&path, overlay).unwrap();
    git(&ws.path, &["commit", "-qam", "the matrix's services"]);
    git(
        &ws.path,
        &["push", "-q", remote.dir.to_str().unwrap(), "HEAD:main"],
    );
    remote.hook(&format!("sleep {hook}"));
    remote
}

/// `n` jobs with default inputs all land, one commit each; prints the attempts and what the
/// loop met, for the record (the attempt ceiling is measured in `scripts/bench.sh race`).
fn headroom(n: usize, hook: &str) {
    let _serial = race_lock();
    let remote = matrix_remote(n, hook);
    let base = remote.commit_count();
    let round = format!("h{n}");
    let started = Instant::now();
    let runs = race(&remote, n, &round);
    let took = started.elapsed();
    let failed: Vec<usize> = (0..n).filter(|&i| !runs[i].success()).collect();
    assert!(
        failed.is_empty(),
        "{} of {n} jobs failed; the first:\n{}",
        failed.len(),
        runs[failed[0]].all_output()
    );
    let overlay = remote.overlay();
    let landed = (0..n)
        .filter(|&i| new_tag(&overlay, &job_service(i)).as_deref() == Some(&format!("{round}-{i}")))
        .count();
    assert_eq!(landed, n, "every update landed");
    assert_eq!(remote.commit_count(), base + n, "one commit per job");
    let mut attempts: Vec<u32> = runs
        .iter()
        .map(|r| r.output("attempts").parse().unwrap())
        .collect();
    attempts.sort_unstable();
    eprintln!(
        "{n} jobs, hook sleep {hook}: all landed in {took:.1?}; attempts median {}, max {}",
        attempts[n / 2],
        attempts[n - 1]
    );
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn a_hundred_and_twenty_eight_jobs_with_a_tenth_of_a_second_hook_all_land_with_defaults() {
    headroom(128, "0.1");
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn sixty_four_jobs_with_a_slow_hook_all_land_with_defaults() {
    headroom(64, "0.3");
}

/// The `attempt N:` progress lines a run printed.
fn attempt_lines(run: &Run) -> usize {
    run.stdout
        .lines()
        .filter(|l| l.starts_with("attempt "))
        .count()
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn a_declining_hook_fails_at_once_and_shows_its_message() {
    let remote = Remote::served(Server::GitDaemon);
    remote.hook("echo 'deploys are frozen until Monday' >&2\nexit 1");
    let ws = Workspace::clone_of(&remote);
    let head = remote.head();

    let run = Action::promote(&ws.path, "auth-service", "v2").run();

    assert!(!run.success(), "{}", run.all_output());
    assert_eq!(attempt_lines(&run), 0, "no retry:\n{}", run.all_output());
    let out = run.all_output();
    assert!(out.contains("deploys are frozen until Monday"), "{out}");
    assert!(out.contains("pre-receive hook declined"), "{out}");
    assert!(out.contains("hook or policy declined"), "the hint: {out}");
    assert_eq!(remote.head(), head);
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn a_protected_branch_fails_at_once_with_the_protection_hint() {
    let remote = Remote::served(Server::GitDaemon);
    remote.hook(
        "echo 'error: GH006: Protected branch update failed for refs/heads/main.' >&2\nexit 1",
    );
    let ws = Workspace::clone_of(&remote);

    let run = Action::promote(&ws.path, "auth-service", "v2").run();

    assert!(!run.success());
    assert_eq!(attempt_lines(&run), 0, "no retry:\n{}", run.all_output());
    let out = run.all_output();
    assert!(
        out.contains("GH006: Protected branch update failed"),
        "{out}"
    );
    assert!(out.contains("the branch is protected"), "the hint: {out}");
}

#[test]
fn the_binary_gives_up_on_an_unreachable_remote_after_bounded_retries() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    git(
        &ws.path,
        &["remote", "set-url", "origin", &closed_port_url()],
    );
    let started = Instant::now();

    let run = Action::promote(&ws.path, "auth-service", "v2").run();

    assert!(!run.success());
    let retries = run
        .stdout
        .lines()
        .filter(|l| l.contains("retrying in"))
        .count();
    assert_eq!(retries, 3, "{}", run.all_output());
    assert!(
        run.all_output().contains("cannot reach git://127.0.0.1:"),
        "{}",
        run.all_output()
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_broken_kustomization_at_the_tip_fails_with_file_and_line_and_changes_nothing() {
    let remote = Remote::file();
    // The workspace is checked out before the breakage lands: the tip is what counts.
    let ws = Workspace::clone_of(&remote);
    let other = Workspace::clone_of(&remote);
    let mut overlay = other.overlay();
    overlay.push_str("  - name: auth-service\n    newTag: again\n");
    let duplicate_line = overlay.lines().count() - 1;
    std::fs::write(
        other.path.join(OVERLAY).join("kustomization.yaml"),
        &overlay,
    )
    .unwrap();
    git(&other.path, &["commit", "-qam", "a duplicate entry"]);
    git(
        &other.path,
        &["push", "-q", remote.dir.to_str().unwrap(), "HEAD:main"],
    );
    let head = remote.head();

    let run = Action::promote(&ws.path, "auth-service", "v2").run();

    assert!(!run.success());
    let out = run.all_output();
    assert!(out.contains(OVERLAY_FILE), "{out}");
    assert!(
        out.contains(&format!("line={duplicate_line}"))
            || out.contains(&format!("{OVERLAY_FILE}:{duplicate_line}")),
        "line {duplicate_line}: {out}"
    );
    assert_eq!(remote.head(), head);
    assert_eq!(attempt_lines(&run), 0);
}

#[test]
fn a_dry_run_of_the_binary_pushes_nothing() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let head = remote.head();

    let run = Action::promote(&ws.path, "auth-service", "v2")
        .input("dry-run", "true")
        .run();

    run.assert_ok();
    assert_eq!(run.output("changed"), "true");
    assert_eq!(run.output("commit"), "");
    assert_eq!(remote.head(), head);
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
}

#[test]
#[ignore = "needs root; run by scripts/test.sh"]
fn a_workspace_owned_by_the_runner_uid_still_works_as_root() {
    assert!(
        is_root(),
        "this test chowns the workspace to uid 1001 and must run as root"
    );
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let status = std::process::Command::new("chown")
        .args(["-R", "1001:1001"])
        .arg(&ws.path)
        .status()
        .unwrap();
    assert!(status.success());
    // Proof that the ownership check would bite: libgit2 refuses to open the checkout.
    let open = git2::Repository::open(&ws.path).map(|_| ()).unwrap_err();
    assert_eq!(open.code(), git2::ErrorCode::Owner, "{open}");

    let run = Action::promote(&ws.path, "auth-service", "v2").run();

    run.assert_ok();
    assert_eq!(run.output("changed"), "true");
    assert_eq!(
        new_tag(&remote.overlay(), "auth-service").as_deref(),
        Some("v2")
    );
    // The checkout itself is untouched and still the runner's.
    assert_eq!(ws.overlay(), crate::support::seed_kustomization());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(ws.path.join(".git/config"))
            .unwrap()
            .uid(),
        1001
    );
}

// ------------------------------------------------------------------ HTTPS with a token

fn https_remote() -> (Remote, String, String) {
    let remote = Remote::served(Server::HttpsGit);
    let s = services();
    (
        remote,
        s.https_git_token.clone(),
        s.https_ca.display().to_string(),
    )
}

fn https_job(ws: &Path, token: &str, ca: &str) -> Action {
    Action::promote(ws, "auth-service", "v2")
        .input("github-token", token)
        .env("SSL_CERT_FILE", ca)
}

/// The token, and its basic-auth encoding, appear nowhere in what the run printed.
fn assert_token_never_printed(run: &Run, token: &str) {
    use base64::Engine as _;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
    // `::add-mask::` is how a secret is handed to the runner, which then masks it everywhere.
    let printed: Vec<&str> = run
        .stdout
        .lines()
        .chain(run.stderr.lines())
        .filter(|l| !l.starts_with("::add-mask::"))
        .collect();
    let everything = format!("{}\n{:?}\n{}", printed.join("\n"), run.outputs, run.summary);
    assert!(
        !everything.contains(token),
        "the token leaked:\n{everything}"
    );
    assert!(
        !everything.contains(&encoded),
        "the encoded token leaked:\n{everything}"
    );
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn https_with_the_right_token_pushes() {
    let (remote, token, ca) = https_remote();
    let ws = Workspace::clone_of(&remote);

    let run = https_job(&ws.path, &token, &ca).run();

    run.assert_ok();
    assert_eq!(run.output("commit"), remote.head());
    assert_eq!(
        new_tag(&remote.overlay(), "auth-service").as_deref(),
        Some("v2")
    );
    assert_token_never_printed(&run, &token);
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn over_https_the_looks_for_a_landing_carry_the_token_and_never_print_it() {
    let (remote, token, ca) = https_remote();
    let competitor = lose_one_race_slowly(&remote);
    let ws = Workspace::clone_of(&remote);

    let run = https_job(&ws.path, &token, &ca).run();

    run.assert_ok();
    let summary = run
        .stdout
        .lines()
        .find(|l| l.starts_with("write-back: "))
        .unwrap_or_else(|| panic!("no write-back line:\n{}", run.stdout));
    assert!(summary.contains(" 1 lost race(s)"), "{summary}");
    let looks: u32 = summary
        .split(" fetch(es), ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(looks >= 1, "{summary}");
    assert_eq!(
        git(&remote.dir, &["rev-parse", "main^"]),
        competitor,
        "pushed on the commit that won"
    );
    assert_eq!(run.output("commit"), remote.head());
    assert_token_never_printed(&run, &token);
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn https_with_a_wrong_token_fails_once_and_clearly() {
    let (remote, _token, ca) = https_remote();
    let ws = Workspace::clone_of(&remote);
    let head = remote.head();
    let wrong = "ghs_wrongTokenThatMustNeverBePrinted0001";
    let started = Instant::now();

    let run = https_job(&ws.path, wrong, &ca).run();

    assert!(!run.success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let out = run.all_output();
    assert!(out.contains("refused the credentials"), "{out}");
    assert!(out.contains("contents: write"), "the hint: {out}");
    assert_eq!(
        out.matches("refused the credentials").count(),
        1,
        "one error, no replay: {out}"
    );
    assert!(!out.contains("retrying"), "{out}");
    assert_token_never_printed(&run, wrong);
    assert_eq!(remote.head(), head);
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn https_without_the_test_ca_is_refused_as_untrusted() {
    let (remote, token, _ca) = https_remote();
    let ws = Workspace::clone_of(&remote);
    let run = https_job(&ws.path, &token, "/nonexistent/ca.pem")
        .env_remove("SSL_CERT_DIR")
        .run();
    assert!(!run.success());
    assert!(
        run.all_output().contains("SSL_CERT_FILE"),
        "the hint: {}",
        run.all_output()
    );
    assert_token_never_printed(&run, &token);
}

// ---------------------------------------------------------------- what a write-back costs

/// A remote whose tip holds `mib` MiB of incompressible files under `backend/`, served by git
/// daemon, and a sibling job's commit landed after `ws` was checked out (depth 1).
fn big_monorepo(mib: usize) -> (Remote, Workspace, u64) {
    use rand::RngCore as _;
    let remote = Remote::served(Server::GitDaemon);
    let seed = Workspace::clone_of(&remote);
    let dir = seed.path.join("backend/assets");
    std::fs::create_dir_all(&dir).unwrap();
    let mut bytes = vec![0u8; 1 << 20];
    for i in 0..mib {
        rand::rng().fill_bytes(&mut bytes);
        std::fs::write(dir.join(format!("blob-{i:03}.bin")), &bytes).unwrap();
    }
    git(&seed.path, &["add", "-A"]);
    git(&seed.path, &["commit", "-qm", "assets"]);
    git(
        &seed.path,
        &["push", "-q", remote.dir.to_str().unwrap(), "HEAD:main"],
    );
    let ws = Workspace::shallow_clone_of(&remote);
    let sibling = Workspace::clone_of(&remote);
    Action::promote(&sibling.path, "user-service", "s1")
        .run()
        .assert_ok();
    (remote, ws, (mib as u64) << 20)
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn a_write_back_from_a_depth_1_checkout_fetches_what_landed_since_not_the_tree() {
    let (remote, ws, tree) = big_monorepo(48);

    let run = Action::promote(&ws.path, "auth-service", "t1").run();

    run.assert_ok();
    assert!(
        run.stdout.contains("borrowing the checkout's objects at"),
        "{}",
        run.stdout
    );
    let fetched = run.fetched_bytes();
    assert!(
        fetched * 100 < tree,
        "fetched {fetched} bytes of a {tree}-byte tree: more than 1%"
    );
    let overlay = remote.overlay();
    assert!(overlay.contains("newName: registry.local/nova/auth-service\n    newTag: t1"));
    assert!(
        overlay.contains("newName: registry.local/nova/user-service\n    newTag: s1"),
        "the sibling's update stays"
    );
    assert_eq!(
        git(&remote.dir, &["rev-parse", "main~1"]),
        git(
            &remote.dir,
            &["log", "-1", "--format=%H", "--grep", "user-service", "main"]
        ),
        "ours is on the sibling's commit"
    );
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn without_usable_git_objects_in_the_workspace_the_write_back_fetches_the_tree_and_lands() {
    let (remote, ws, tree) = big_monorepo(8);
    // A checkout made some other way: a `.git` whose objects lack the commit it names.
    let objects = ws.path.join(".git/objects");
    std::fs::remove_dir_all(&objects).unwrap();
    std::fs::create_dir_all(objects.join("info")).unwrap();

    let run = Action::promote(&ws.path, "auth-service", "t1").run();

    run.assert_ok();
    assert!(
        run.stdout
            .contains("fetching the tip's whole tree: the checkout's objects lack its commit"),
        "{}",
        run.stdout
    );
    assert!(run.fetched_bytes() >= tree, "the whole tree travelled");
    assert!(remote.overlay().contains("newTag: t1"));

    // No `.git` at all: the remote comes from GITHUB_SERVER_URL and GITHUB_REPOSITORY.
    std::fs::remove_dir_all(ws.path.join(".git")).unwrap();
    let (base, name) = remote.url.rsplit_once('/').unwrap();
    let run = Action::promote(&ws.path, "auth-service", "t2")
        .env("GITHUB_SERVER_URL", base)
        .env("GITHUB_REPOSITORY", name.trim_end_matches(".git"))
        .run();
    run.assert_ok();
    assert!(
        run.stdout
            .contains("fetching the tip's whole tree: the workspace is not a git checkout"),
        "{}",
        run.stdout
    );
    assert!(remote.overlay().contains("newTag: t2"));
}

#[test]
#[ignore = "needs services; run by scripts/test.sh"]
fn a_workspace_owned_by_another_uid_still_lends_its_objects() {
    let (remote, ws, tree) = big_monorepo(16);
    let status = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&ws.path)
        .status()
        .unwrap();
    assert!(status.success());

    let run = Action::promote(&ws.path, "auth-service", "t1").run();

    run.assert_ok();
    assert!(
        run.stdout.contains("borrowing the checkout's objects at"),
        "{}",
        run.stdout
    );
    assert!(run.fetched_bytes() * 100 < tree);
    assert!(remote.overlay().contains("newTag: t1"));
}
