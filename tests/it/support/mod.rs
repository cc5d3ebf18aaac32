//! TestContext: scratch workspaces, bare remotes and a runner for the real binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub(crate) mod argocd;
pub(crate) mod docker;
pub(crate) mod oidc;
pub(crate) mod registry;
pub(crate) mod services;

pub(crate) use services::{Server, services};

pub(crate) const SERVICES: [&str; 8] = [
    "auth-service",
    "user-service",
    "content-service",
    "feed-service",
    "media-service",
    "messaging-service",
    "search-service",
    "streaming-service",
];

pub(crate) const OVERLAY: &str = "k8s/infrastructure/overlays/staging";

/// The real binary under test.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_deploy-action")
}

/// The one `::error::` line of a failed run, with the runner's escapes undone.
#[track_caller]
pub(crate) fn error_line(run: &Run) -> String {
    assert!(!run.success(), "expected a failure:\n{}", run.all_output());
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("::error"))
        .unwrap_or_else(|| panic!("no ::error:: line:\n{}", run.all_output()));
    line.replace("%0A", "\n")
        .replace("%0D", "\r")
        .replace("%25", "%")
}

/// Copies a directory tree (fixtures into scratch workspaces).
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Runs git and returns its trimmed stdout, panicking with stderr on failure.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "seed")
        .env("GIT_AUTHOR_EMAIL", "seed@example.com")
        .env("GIT_COMMITTER_NAME", "seed")
        .env("GIT_COMMITTER_EMAIL", "seed@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The overlay a fresh Nova monorepo starts with: one entry per service, sorted by name.
pub(crate) fn seed_kustomization() -> String {
    let mut names: Vec<&str> = SERVICES.to_vec();
    names.sort();
    let mut s = String::from(
        "# Nova staging overlay\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\nimages:\n",
    );
    for n in names {
        s.push_str(&format!(
            "  - name: {n}\n    newName: registry.local/nova/{n}\n    newTag: seed\n"
        ));
    }
    s
}

/// Writes a minimal Nova monorepo: a base with one Deployment per service and the staging overlay.
pub(crate) fn write_monorepo(dir: &Path) {
    let base = dir.join("k8s/infrastructure/base");
    std::fs::create_dir_all(&base).unwrap();
    let mut resources = String::from("resources:\n");
    for s in SERVICES {
        std::fs::write(
            base.join(format!("{s}.yaml")),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {s}\nspec:\n  selector:\n    matchLabels:\n      app: {s}\n  template:\n    metadata:\n      labels:\n        app: {s}\n    spec:\n      containers:\n        - name: app\n          image: {s}\n"
            ),
        )
        .unwrap();
        resources.push_str(&format!("  - {s}.yaml\n"));
    }
    std::fs::write(base.join("kustomization.yaml"), resources).unwrap();
    let overlay = dir.join(OVERLAY);
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(overlay.join("kustomization.yaml"), seed_kustomization()).unwrap();
}

/// A bare remote seeded with the Nova monorepo on `main`.
pub(crate) struct Remote {
    _tmp: Option<tempfile::TempDir>,
    /// The bare repository on disk.
    pub dir: PathBuf,
    /// The URL the action pushes to.
    pub url: String,
}

impl Remote {
    /// A bare repo in a fresh temp dir, pushed to over file://.
    pub(crate) fn file() -> Remote {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("remote.git");
        let url = format!("file://{}", dir.display());
        Self::init(&dir);
        Remote {
            _tmp: Some(tmp),
            dir,
            url,
        }
    }

    /// A bare repo inside the directory that `server` exports.
    pub(crate) fn served(server: Server) -> Remote {
        let (base, url) = services().git_server(server);
        let name = format!("t{}-{}.git", std::process::id(), unique());
        let dir = base.join(&name);
        Self::init(&dir);
        Remote {
            _tmp: None,
            dir,
            url: format!("{url}/{name}"),
        }
    }

    fn init(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        git(dir, &["init", "-q", "--bare", "-b", "main"]);
        // Servers run receive-pack as whoever owns them; let them write here.
        git(dir, &["config", "http.receivepack", "true"]);
        let seed = tempfile::tempdir().unwrap();
        git(seed.path(), &["init", "-q", "-b", "main"]);
        write_monorepo(seed.path());
        git(seed.path(), &["add", "-A"]);
        git(seed.path(), &["commit", "-qm", "seed"]);
        git(seed.path(), &["push", "-q", dir.to_str().unwrap(), "main"]);
    }

    /// Installs a `pre-receive` hook with the given shell body.
    pub(crate) fn hook(&self, body: &str) {
        let path = self.dir.join("hooks/pre-receive");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The file at `path` on the remote's `main`.
    pub(crate) fn show(&self, path: &str) -> String {
        git(&self.dir, &["show", &format!("main:{path}")])
    }

    pub(crate) fn overlay(&self) -> String {
        self.show(&format!("{OVERLAY}/kustomization.yaml"))
    }

    pub(crate) fn head(&self) -> String {
        git(&self.dir, &["rev-parse", "main"])
    }

    /// Number of commits on `main`, the seed included.
    pub(crate) fn commit_count(&self) -> usize {
        git(&self.dir, &["rev-list", "--count", "main"])
            .parse()
            .unwrap()
    }
}

pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    t ^ (N.fetch_add(1, Ordering::Relaxed) << 48)
}

/// A checkout of a remote, as actions/checkout leaves it: `origin` set, on `main`.
pub(crate) struct Workspace {
    _tmp: tempfile::TempDir,
    pub path: PathBuf,
}

impl Workspace {
    pub(crate) fn clone_of(remote: &Remote) -> Workspace {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ws");
        git(
            tmp.path(),
            &["clone", "-q", remote.dir.to_str().unwrap(), "ws"],
        );
        git(&path, &["remote", "set-url", "origin", &remote.url]);
        Workspace { _tmp: tmp, path }
    }

    /// A depth-1 checkout, as actions/checkout makes by default.
    pub(crate) fn shallow_clone_of(remote: &Remote) -> Workspace {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ws");
        git(
            tmp.path(),
            &[
                "clone",
                "-q",
                "--depth",
                "1",
                &format!("file://{}", remote.dir.display()),
                "ws",
            ],
        );
        git(&path, &["remote", "set-url", "origin", &remote.url]);
        Workspace { _tmp: tmp, path }
    }

    pub(crate) fn overlay(&self) -> String {
        std::fs::read_to_string(self.path.join(OVERLAY).join("kustomization.yaml")).unwrap()
    }
}

impl Run {
    /// The bytes the write-back's fetches received, from its summary line.
    pub(crate) fn fetched_bytes(&self) -> u64 {
        self.stdout
            .lines()
            .find(|l| l.starts_with("write-back: "))
            .and_then(|l| l.split(" fetched (").nth(1))
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no write-back line:\n{}", self.stdout))
    }
}

/// What one run of the binary produced.
#[derive(Debug)]
pub(crate) struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// `$GITHUB_OUTPUT` parsed, heredoc values included.
    pub outputs: BTreeMap<String, String>,
    pub summary: String,
}

impl Run {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout and stderr together, for grepping.
    pub(crate) fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    pub(crate) fn output(&self, key: &str) -> &str {
        self.outputs
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| {
                panic!(
                    "no output {key:?} in {:?}\n{}",
                    self.outputs,
                    self.all_output()
                )
            })
    }

    #[track_caller]
    pub(crate) fn assert_ok(&self) -> &Self {
        assert!(
            self.success(),
            "deploy-action failed ({:?}):\n{}",
            self.code,
            self.all_output()
        );
        self
    }
}

/// A prepared invocation of the binary with GitHub's environment for `workspace`.
pub(crate) struct Action {
    cmd: Command,
    dir: tempfile::TempDir,
}

impl Action {
    /// Env as a runner gives it: every input set (empty = default), plus the GitHub variables.
    pub(crate) fn new(workspace: &Path) -> Action {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(bin());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", workspace)
            .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
            .env("GITHUB_REF", "refs/heads/main")
            .env("GITHUB_SERVER_URL", "https://github.invalid")
            .env("GITHUB_REPOSITORY", "nova/monorepo")
            .env("GITHUB_OUTPUT", dir.path().join("output"))
            .env("GITHUB_STEP_SUMMARY", dir.path().join("summary"))
            .current_dir(workspace)
            .stdin(Stdio::null());
        for var in ["DOCKER_HOST", "SSL_CERT_FILE"] {
            if let Ok(v) = std::env::var(var) {
                cmd.env(var, v);
            }
        }
        Action { cmd, dir }
    }

    /// Sets `INPUT_<NAME>` the way the runner names it (upper-cased, hyphens kept).
    pub(crate) fn input(mut self, name: &str, value: &str) -> Self {
        self.cmd.env(
            format!("INPUT_{}", name.to_uppercase().replace(' ', "_")),
            value,
        );
        self
    }

    pub(crate) fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub(crate) fn env_remove(mut self, k: &str) -> Self {
        self.cmd.env_remove(k);
        self
    }

    pub(crate) fn arg(mut self, a: &str) -> Self {
        self.cmd.arg(a);
        self
    }

    /// The usual job for `service` with `build: false`, tag `tag`.
    pub(crate) fn promote(workspace: &Path, service: &str, tag: &str) -> Action {
        Action::new(workspace)
            .input("service", service)
            .input("tag", tag)
            .input("build", "false")
            .input("registry", "registry.local")
            .input("repository", &format!("nova/{service}"))
            .input("image-name", service)
    }

    pub(crate) fn spawn(mut self) -> Spawned {
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = self.cmd.spawn().expect("binary starts");
        Spawned {
            child,
            dir: self.dir,
        }
    }

    pub(crate) fn run(self) -> Run {
        self.spawn().wait()
    }
}

pub(crate) struct Spawned {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Spawned {
    pub(crate) fn wait(self) -> Run {
        let Output {
            status,
            stdout,
            stderr,
        } = self.child.wait_with_output().unwrap();
        let outputs = parse_github_output(
            &std::fs::read_to_string(self.dir.path().join("output")).unwrap_or_default(),
        );
        let summary = std::fs::read_to_string(self.dir.path().join("summary")).unwrap_or_default();
        Run {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            outputs,
            summary,
        }
    }
}

/// Parses `$GITHUB_OUTPUT`: `k=v` lines and `k<<DELIM` heredocs, as the runner does.
pub(crate) fn parse_github_output(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((k, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.insert(k.to_string(), value.join("\n"));
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert(k.to_string(), v.to_string());
        }
    }
    out
}
