//! The real components `scripts/test.sh` started, as the variables it exported describe them.
//! This is the only place that reads `DA_*`.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Every component, read once.
#[derive(Debug)]
pub(crate) struct Services {
    /// `DOCKER_HOST` as the tests and the binary under test see it.
    pub docker_host: String,
    /// A busybox image in the daemon (nothing can be pulled here).
    pub base_image: String,
    /// `127.0.0.1:PORT` of the Distribution registry with htpasswd auth.
    pub registry: String,
    pub registry_user: String,
    pub registry_password: String,
    pub moto_url: String,
    pub moto_account_id: String,
    /// Where git daemon serves bare repositories from, and its `git://` URL.
    pub git_daemon_base: PathBuf,
    pub git_daemon_url: String,
    /// The same for git http-backend behind lighttpd (TLS, basic auth).
    pub https_git_base: PathBuf,
    pub https_git_url: String,
    pub https_git_token: String,
    pub https_ca: PathBuf,
    pub kubectl: String,
    pub act: String,
}

/// A git server the tests can create bare repositories under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    GitDaemon,
    HttpsGit,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: real-component tests run through scripts/test.sh, which starts the components")
    })
}

/// The components; panics with what to do when `scripts/test.sh` did not start them.
pub(crate) fn services() -> &'static Services {
    static S: OnceLock<Services> = OnceLock::new();
    S.get_or_init(|| Services {
        docker_host: var("DOCKER_HOST"),
        base_image: var("DA_BASE_IMAGE"),
        registry: var("DA_REGISTRY"),
        registry_user: var("DA_REGISTRY_USER"),
        registry_password: var("DA_REGISTRY_PASSWORD"),
        moto_url: var("DA_MOTO_URL"),
        moto_account_id: var("DA_MOTO_ACCOUNT_ID"),
        git_daemon_base: var("DA_GIT_DAEMON_BASE").into(),
        git_daemon_url: var("DA_GIT_DAEMON_URL"),
        https_git_base: var("DA_HTTPS_GIT_BASE").into(),
        https_git_url: var("DA_HTTPS_GIT_URL"),
        https_git_token: var("DA_HTTPS_GIT_TOKEN"),
        https_ca: var("DA_HTTPS_CA").into(),
        kubectl: std::env::var("DA_KUBECTL").unwrap_or_else(|_| "kubectl".into()),
        act: std::env::var("DA_ACT").unwrap_or_else(|_| "act".into()),
    })
}

impl Services {
    /// Where `server` keeps its repositories, and the URL it serves them under.
    pub(crate) fn git_server(&self, server: Server) -> (PathBuf, String) {
        match server {
            Server::GitDaemon => (self.git_daemon_base.clone(), self.git_daemon_url.clone()),
            Server::HttpsGit => (self.https_git_base.clone(), self.https_git_url.clone()),
        }
    }
}

/// `DA_ACT_REUSE_IMAGE=1`: the act test reuses an action image built earlier.
pub(crate) fn reuse_act_image() -> bool {
    std::env::var("DA_ACT_REUSE_IMAGE").is_ok_and(|v| v == "1")
}

/// The aws tests' child-process mode: the operations to run, when this process is the child.
pub(crate) const AWS_CHILD: &str = "DA_AWS_CHILD";

pub(crate) fn aws_child_ops() -> Option<String> {
    std::env::var(AWS_CHILD).ok()
}
