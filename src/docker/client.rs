//! The Docker Engine connection: `DOCKER_HOST` or the local socket, API-version negotiation,
//! registry credentials in the daemon's form, and the fix for bollard 0.21.1's standard-base64
//! auth headers.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use bollard::auth::DockerCredentials;
use bollard::{BollardRequest, Docker};
use secrecy::ExposeSecret;

use super::session::SessionError;
use crate::failure::{Hint, Locate, Location};
use crate::registry::Credentials;

/// The variable that names the daemon, as the docker CLI reads it.
pub const DOCKER_HOST: &str = "DOCKER_HOST";
/// Where the daemon listens when `DOCKER_HOST` is unset.
pub(crate) const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// The two headers that carry registry credentials to the daemon.
const AUTH_HEADERS: [&str; 2] = ["x-registry-auth", "x-registry-config"];

/// A failed Docker operation, as the user needs to hear about it.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot reach the Docker daemon at {host}")]
    Connect {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("Dockerfile not found: looked for {path}")]
    DockerfileMissing { path: std::path::PathBuf },
    #[error("build context not found: looked for the directory {path}")]
    ContextMissing { path: std::path::PathBuf },
    #[error("sending the build context {path} failed: {message}")]
    Context {
        path: std::path::PathBuf,
        message: String,
    },
    /// The classic builder's failing step, as its log names it (`Step 3/5 : RUN make`).
    #[error("building {image} failed at {step}: {message}")]
    BuildStep {
        image: String,
        step: String,
        message: String,
        location: Option<Location>,
    },
    /// BuildKit's failing step, with the last lines it printed.
    #[error("building {} failed at `{}`: {}{}", .0.image, .0.step, .0.message, lines(&.0.tail))]
    StepFailed(Box<StepFailure>),
    #[error("building {image} failed: {message}")]
    BuildFailed { image: String, message: String },
    #[error("the Dockerfile uses {feature}, which the classic builder does not have")]
    NeedsBuildKit {
        feature: &'static str,
        location: Location,
    },
    #[error("builder: buildkit, but the Docker daemon at {host} offers no BuildKit")]
    NoBuildKit { host: String },
    #[error("cannot start the BuildKit session")]
    Session(#[source] SessionError),
    #[error("building {image} failed")]
    Build {
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("building {image} finished without an image id")]
    NoImageId { image: String },
    #[error("pushing {image} was refused by the registry: {message}")]
    PushDenied { image: String, message: String },
    #[error("pushing {image} failed: the repository does not exist: {message}")]
    PushNoRepository { image: String, message: String },
    #[error("pushing {image} was refused: the repository's tags are immutable: {message}")]
    PushImmutableTag { image: String, message: String },
    #[error("pushing {image} failed after {attempts} attempt(s): {message}")]
    Push {
        image: String,
        attempts: u32,
        message: String,
    },
    #[error(
        "pushing {image} succeeded but neither the daemon's log nor the image's RepoDigests gave a digest"
    )]
    NoDigest { image: String },
}

impl Hint for DockerError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            DockerError::Connect { .. } => "is dockerd running, and is /var/run/docker.sock mounted into the container action (or DOCKER_HOST set to the daemon)?",
            DockerError::DockerfileMissing { .. } => "the `dockerfile` input is relative to the workspace, not to `context`",
            DockerError::ContextMissing { .. } => "the `context` input is relative to the workspace",
            DockerError::PushDenied { .. } => "check registry-username and registry-password, or that the role may push to ECR (ecr:InitiateLayerUpload, ecr:UploadLayerPart, ecr:CompleteLayerUpload, ecr:PutImage, ecr:BatchCheckLayerAvailability)",
            DockerError::PushNoRepository { .. } => "create it, or set `create-repository: true` for ECR",
            DockerError::PushImmutableTag { .. } => "the stage cache images (cache-<stage>) are overwritten on every run, which an IMMUTABLE ECR repository refuses: set `cache-repository` to a separate MUTABLE repository, or `cache-to: none`",
            DockerError::NeedsBuildKit { .. } => "set `builder: auto` (or `buildkit`) to build it with the daemon's BuildKit",
            DockerError::NoBuildKit { .. } => "use a Docker Engine with BuildKit (18.09 or later, Linux), or `builder: classic` for a Dockerfile without BuildKit features",
            DockerError::Session(SessionError::UnsupportedHost { .. }) => "set DOCKER_HOST to the daemon's unix socket or its plain tcp:// address",
            _ => return None,
        }.to_string())
    }
}

impl Locate for DockerError {
    fn location(&self) -> Option<Location> {
        match self {
            DockerError::BuildStep { location, .. } => location.clone(),
            DockerError::StepFailed(f) => f.location.clone(),
            DockerError::NeedsBuildKit { location, .. } => Some(location.clone()),
            _ => None,
        }
    }
}

/// What BuildKit said about the step that failed.
#[derive(Debug)]
pub struct StepFailure {
    pub image: String,
    /// The instruction (`RUN make`), or BuildKit's name for the step.
    pub step: String,
    pub message: String,
    /// The last lines the step printed.
    pub tail: Vec<String>,
    pub location: Option<Location>,
}

/// The last lines a failing step printed, indented under the error.
fn lines(tail: &[String]) -> String {
    tail.iter().map(|l| format!("\n  | {l}")).collect()
}

/// What bollard serializes into the auth header for `server` (a registry host).
pub fn docker_credentials(creds: &Credentials, server: &str) -> DockerCredentials {
    DockerCredentials {
        username: Some(creds.username.clone()),
        password: Some(creds.password.expose_secret().to_string()),
        serveraddress: Some(server.to_string()),
        ..Default::default()
    }
}

/// The daemon named by `DOCKER_HOST`, or the local socket.
pub fn docker_host() -> String {
    std::env::var(DOCKER_HOST)
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.to_string())
}

/// A client for the daemon at [`docker_host`], with the registry-auth headers fixed.
///
/// Nothing is sent yet: a socket that does not exist fails here, a daemon that does not answer
/// fails at the first request (see [`negotiate`]), both as [`DockerError::Connect`].
pub fn connect() -> Result<Docker, DockerError> {
    connect_to(&docker_host())
}

/// [`connect`] to an explicit `host` (`unix://…`, `tcp://…`, `http://…`).
pub fn connect_to(host: &str) -> Result<Docker, DockerError> {
    let docker = Docker::connect_with_host(host).map_err(|source| DockerError::Connect {
        host: host.to_string(),
        source,
    })?;
    Ok(docker.with_request_modifier(|req| no_grpc_upgrade(url_safe_registry_headers(req))))
}

/// What the daemon offers the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Daemon {
    /// Whether it has BuildKit: builder-next is in every Linux dockerd since 18.09 (API 1.39),
    /// whether or not it is the default builder.
    pub buildkit: bool,
    /// Whether a `bridge` network exists (dockerd `--bridge=none` has none).
    pub bridge: bool,
}

/// Asks the daemon what it offers.
pub async fn daemon(docker: &Docker) -> Result<Daemon, DockerError> {
    let connect = |source| DockerError::Connect {
        host: docker_host(),
        source,
    };
    let version = docker.version().await.map_err(connect)?;
    let api = version
        .api_version
        .as_deref()
        .and_then(|v| v.split_once('.'))
        .and_then(|(major, minor)| Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?)));
    let linux = version.os.as_deref() == Some("linux");
    let bridge = match docker
        .inspect_network(
            "bridge",
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
    {
        Ok(_) => true,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => false,
        Err(source) => return Err(connect(source)),
    };
    Ok(Daemon {
        buildkit: linux && api.is_some_and(|v| v >= (1, 39)),
        bridge,
    })
}

/// Agrees on the API version with the daemon: bollard speaks 1.53, Debian's dockerd 20.10 at
/// most 1.41, Docker 29 at least 1.44. The version is shared by every clone of `docker`.
pub async fn negotiate(docker: &Docker) -> Result<(), DockerError> {
    docker
        .clone()
        .negotiate_version()
        .await
        .map_err(|source| DockerError::Connect {
            host: docker_host(),
            source,
        })?;
    Ok(())
}

/// A clone of `docker` whose requests may wait `timeout` for the response headers.
pub(crate) fn with_timeout(docker: &Docker, timeout: Duration) -> Docker {
    docker.clone().with_timeout(timeout)
}

/// The request modifier: bollard 0.21.1 encodes `X-Registry-Auth` / `X-Registry-Config` as
/// standard base64, the daemon decodes URL-safe base64 and silently drops what it cannot decode,
/// so a password whose encoding has `+` or `/` would push unauthenticated.
pub(crate) fn url_safe_registry_headers(mut req: BollardRequest) -> BollardRequest {
    for name in AUTH_HEADERS {
        let fixed = req
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(to_url_safe);
        if let Some(fixed) = fixed.and_then(|f| http::HeaderValue::from_str(&f).ok()) {
            req.headers_mut().insert(name, fixed);
        }
    }
    req
}

/// bollard's `build_image` with BuildKit always tries to open a session of its own (Auth only)
/// under our session's id, starting with a `POST /grpc` upgrade. Without the upgrade headers
/// the daemon refuses that at once, and bollard gives up before it reaches `/session`.
pub(crate) fn no_grpc_upgrade(mut req: BollardRequest) -> BollardRequest {
    if req.uri().path().ends_with("/grpc") {
        req.headers_mut().remove(http::header::UPGRADE);
        req.headers_mut().remove(http::header::CONNECTION);
    }
    req
}

/// Standard base64 re-encoded as URL-safe base64 (padded, as the docker CLI sends it).
/// `None` when `value` is not standard base64, e.g. already URL-safe with `-` or `_`.
pub(crate) fn to_url_safe(value: &str) -> Option<String> {
    STANDARD.decode(value).ok().map(|raw| URL_SAFE.encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_base64_is_re_encoded_url_safe() {
        // "??>" encodes to "Pz8+" and "???" to "Pz8/": the two characters the daemon cannot decode.
        assert_eq!(STANDARD.encode("??>???"), "Pz8+Pz8/");
        assert_eq!(to_url_safe("Pz8+Pz8/").unwrap(), "Pz8-Pz8_");
    }

    #[test]
    fn padding_is_kept_like_the_docker_cli() {
        assert_eq!(to_url_safe(&STANDARD.encode("{}x")).unwrap(), "e314");
        assert_eq!(to_url_safe(&STANDARD.encode("{}")).unwrap(), "e30=");
    }

    #[test]
    fn a_value_that_is_not_standard_base64_is_left_alone() {
        assert_eq!(to_url_safe("Pz8-Pz8_"), None);
    }

    #[test]
    fn the_modifier_rewrites_both_auth_headers_and_nothing_else() {
        let req = http::Request::builder()
            .uri("http://localhost/v1.41/images/x/push")
            .header("X-Registry-Auth", "Pz8+Pz8/")
            .header("X-Registry-Config", "e30/")
            .header("X-Other", "Pz8+")
            .body(bollard::body_full(bytes::Bytes::new()))
            .unwrap();
        let req = url_safe_registry_headers(req);
        assert_eq!(req.headers()["x-registry-auth"], "Pz8-Pz8_");
        assert_eq!(req.headers()["x-registry-config"], "e30_");
        assert_eq!(req.headers()["x-other"], "Pz8+");
    }

    #[test]
    fn bollards_own_session_attempt_loses_its_upgrade_and_nothing_else_does() {
        let req = |path: &str| {
            http::Request::builder()
                .uri(format!("http://localhost/v1.41{path}"))
                .header("Upgrade", "h2c")
                .header("Connection", "Upgrade")
                .body(bollard::body_full(bytes::Bytes::new()))
                .unwrap()
        };
        let grpc = no_grpc_upgrade(req("/grpc"));
        assert!(
            grpc.headers().get("upgrade").is_none() && grpc.headers().get("connection").is_none()
        );
        let session = no_grpc_upgrade(req("/session"));
        assert_eq!(session.headers()["upgrade"], "h2c");
    }

    #[test]
    fn credentials_become_the_daemons_auth_for_one_server() {
        let c = Credentials {
            username: "ci".into(),
            password: secrecy::SecretString::from("s3cret"),
        };
        let d = docker_credentials(&c, "127.0.0.1:5000");
        assert_eq!(d.password.as_deref(), Some("s3cret"));
        assert_eq!(d.serveraddress.as_deref(), Some("127.0.0.1:5000"));
    }
}
