//! The BuildKit session we serve to the daemon: registry credentials and build secrets.
//!
//! BuildKit inside dockerd asks its client for everything private through a session: base
//! images and cache images are pulled with credentials from the session's Auth service (it
//! never reads `X-Registry-Config`), and `RUN --mount=type=secret` reads the session's Secrets
//! service. bollard 0.21.1 starts only an Auth session, with no way to add services, so we open
//! our own: `POST /session` upgraded to h2c on a connection of our own, after which dockerd is
//! the gRPC client and we serve Health (checked every second; one failure ends the session),
//! Auth and Secrets on it. The build then names the session by its id.
//!
//! The build context goes through the session too, as the docker CLI sends it: the FileSync
//! service (`filesync.rs`) serves the context directory and the Dockerfile's directory.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use bollard::health::health_check_response::ServingStatus;
use bollard::health::health_server::{Health, HealthServer};
use bollard::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use bollard::moby::buildkit::secrets::v1::secrets_server::{Secrets, SecretsServer};
use bollard::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};
use bollard::moby::filesync::v1::auth_server::{Auth, AuthServer};
use bollard::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use tonic::{Response, Status};

use super::filesync::{FileSyncService, SyncedDirs};
use crate::registry::Credentials;
use bollard::moby::filesync::v1::file_sync_server::FileSyncServer;

/// The methods we serve, as the docker CLI announces them. BuildKit v0.8 only checks the list
/// for file transfers, but a newer daemon may check it for all.
const METHODS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/moby.filesync.v1.Auth/Credentials",
    "/moby.filesync.v1.Auth/FetchToken",
    "/moby.filesync.v1.Auth/GetTokenAuthority",
    "/moby.filesync.v1.Auth/VerifyTokenAuthority",
    "/moby.buildkit.secrets.v1.Secrets/GetSecret",
    "/moby.filesync.v1.FileSync/DiffCopy",
    "/moby.filesync.v1.FileSync/TarStream",
];

/// A build secret's value.
pub type SecretValue = SecretBox<Vec<u8>>;

/// What the session hands out: credentials by registry host, secrets by id, and the
/// directories of the build.
#[derive(Default)]
pub struct SessionData {
    pub credentials: HashMap<String, Credentials>,
    pub secrets: Arc<HashMap<String, SecretValue>>,
    pub dirs: Option<SyncedDirs>,
}

/// Why the session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot connect to the Docker daemon at {host} for a BuildKit session")]
    Connect {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the daemon at {host} is not reachable over unix:// or tcp://, which a BuildKit session needs"
    )]
    UnsupportedHost { host: String },
    #[error("the BuildKit session handshake with the daemon failed")]
    Handshake(#[source] hyper::Error),
    #[error("the daemon refused the BuildKit session: HTTP {status}: {message}")]
    Refused { status: u16, message: String },
}

/// An open session; dropping it closes the connection and the daemon forgets the session.
pub struct Session {
    pub id: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens a session on the daemon at `host` (`unix:///…` or `tcp://…`).
pub async fn open(host: &str, mut data: SessionData) -> Result<Session, SessionError> {
    let id = new_id();
    // BuildKit keeps what it received of a directory under this key, and on the next build
    // with the same key asks only for what changed.
    let shared_key = data
        .dirs
        .as_ref()
        .map_or_else(|| id.clone(), |d| shared_key(&d.context));
    let upgraded = match connect(host).await? {
        Stream::Unix(s) => handshake(TokioIo::new(s), &id, &shared_key).await?,
        Stream::Tcp(s) => handshake(TokioIo::new(s), &id, &shared_key).await?,
    };
    let dirs = data.dirs.take();
    let data = Arc::new(data);
    let mut routes = tonic::service::Routes::new(HealthServer::new(HealthService))
        .add_service(AuthServer::new(AuthService(Arc::clone(&data))))
        .add_service(SecretsServer::new(SecretsService(data)));
    if let Some(dirs) = dirs {
        routes = routes.add_service(FileSyncServer::new(FileSyncService(dirs)));
    }
    let task = tokio::spawn(async move {
        // The connection ends when the daemon closes it or the session is dropped; either
        // way there is nobody left to tell.
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(upgraded, TowerToHyperService::new(routes))
            .await;
    });
    Ok(Session { id, task })
}

enum Stream {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

async fn connect(host: &str) -> Result<Stream, SessionError> {
    let failed = |source| SessionError::Connect {
        host: host.to_string(),
        source,
    };
    if let Some(path) = host.strip_prefix("unix://") {
        return tokio::net::UnixStream::connect(path)
            .await
            .map(Stream::Unix)
            .map_err(failed);
    }
    if let Some(addr) = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
    {
        return tokio::net::TcpStream::connect(addr.trim_end_matches('/'))
            .await
            .map(Stream::Tcp)
            .map_err(failed);
    }
    Err(SessionError::UnsupportedHost {
        host: host.to_string(),
    })
}

/// `POST /session` with the upgrade to h2c; the daemon has registered the session by the time
/// it answers 101.
async fn handshake<T>(
    io: T,
    id: &str,
    shared_key: &str,
) -> Result<hyper::upgrade::Upgraded, SessionError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(SessionError::Handshake)?;
    tokio::spawn(conn.with_upgrades());
    let mut req = hyper::Request::post("/session")
        .header(hyper::header::HOST, "docker")
        .header(hyper::header::CONNECTION, "Upgrade")
        .header(hyper::header::UPGRADE, "h2c")
        .header("X-Docker-Expose-Session-Uuid", id)
        .header("X-Docker-Expose-Session-Name", "deploy-action")
        .header("X-Docker-Expose-Session-Sharedkey", shared_key);
    for m in METHODS {
        req = req.header("X-Docker-Expose-Session-Grpc-Method", *m);
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .expect("a request of constant parts");
    let res = sender
        .send_request(req)
        .await
        .map_err(SessionError::Handshake)?;
    if res.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        let status = res.status().as_u16();
        let body = res
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(SessionError::Refused {
            status,
            message: daemon_message(&body),
        });
    }
    hyper::upgrade::on(res)
        .await
        .map_err(SessionError::Handshake)
}

/// The daemon's `{"message": …}`, or the body as text.
fn daemon_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string())
}

/// A key for `dir`, the same for every build of it on this machine.
fn shared_key(dir: &std::path::Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .hash(&mut h);
    format!("deploy-action-{:016x}", h.finish())
}

/// 25 base-36 characters, the shape of BuildKit's own session ids.
fn new_id() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..25)
        .map(|_| char::from_digit(rng.random_range(0..36), 36).expect("a base-36 digit"))
        .collect()
}

struct HealthService;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        _: tonic::Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    async fn list(
        &self,
        _: tonic::Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::unimplemented("list"))
    }

    type WatchStream =
        Pin<Box<dyn futures_util::Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        _: tonic::Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

struct AuthService(Arc<SessionData>);

#[tonic::async_trait]
impl Auth for AuthService {
    /// Credentials for the host BuildKit names (as the reference spells it); an unknown host is
    /// asked anonymously.
    async fn credentials(
        &self,
        req: tonic::Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        let (username, secret) = match self.0.credentials.get(&req.get_ref().host) {
            Some(c) => (c.username.clone(), c.password.expose_secret().to_string()),
            None => Default::default(),
        };
        Ok(Response::new(CredentialsResponse { username, secret }))
    }

    // Without a token authority BuildKit (v0.8 `util/resolver/authorizer.go`) falls back to
    // `Credentials` for a Bearer challenge too, and fetches the token itself.
    async fn get_token_authority(
        &self,
        _: tonic::Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("no token authority"))
    }

    async fn fetch_token(
        &self,
        _: tonic::Request<FetchTokenRequest>,
    ) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented("fetch_token"))
    }

    async fn verify_token_authority(
        &self,
        _: tonic::Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("verify_token_authority"))
    }
}

struct SecretsService(Arc<SessionData>);

#[tonic::async_trait]
impl Secrets for SecretsService {
    async fn get_secret(
        &self,
        req: tonic::Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let id = &req.get_ref().id;
        match self.0.secrets.get(id) {
            Some(v) => Ok(Response::new(GetSecretResponse {
                data: v.expose_secret().clone(),
            })),
            // BuildKit reads NotFound as "secret <id> not found".
            None => Err(Status::not_found(format!("secret {id} not found"))),
        }
    }
}

/// A secret given as text.
pub fn secret_text(value: &SecretString) -> SecretValue {
    SecretBox::new(Box::new(value.expose_secret().as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_25_base36_characters_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 25);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn the_daemons_message_is_read_from_its_json() {
        assert_eq!(
            daemon_message(br#"{"message":"session x already exists"}"#),
            "session x already exists"
        );
        assert_eq!(daemon_message(b"plain text\n"), "plain text");
    }

    #[tokio::test]
    async fn a_host_without_unix_or_tcp_is_refused_clearly() {
        let err = open("ssh://example.invalid", SessionData::default())
            .await
            .err()
            .unwrap();
        assert!(matches!(err, SessionError::UnsupportedHost { .. }), "{err}");
    }

    #[tokio::test]
    async fn the_secrets_service_serves_by_id_and_says_not_found_otherwise() {
        let data = SessionData {
            secrets: Arc::new(HashMap::from([(
                "tok".to_string(),
                secret_text(&SecretString::from("s3cr3t")),
            )])),
            ..Default::default()
        };
        let svc = SecretsService(Arc::new(data));
        let got = svc
            .get_secret(tonic::Request::new(GetSecretRequest {
                id: "tok".into(),
                annotations: Default::default(),
            }))
            .await
            .unwrap();
        assert_eq!(got.get_ref().data, b"s3cr3t");
        let err = svc
            .get_secret(tonic::Request::new(GetSecretRequest {
                id: "nope".into(),
                annotations: Default::default(),
            }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
    }

    #[tokio::test]
    async fn credentials_go_only_to_their_own_host() {
        let mut data = SessionData::default();
        data.credentials.insert(
            "127.0.0.1:5000".into(),
            Credentials {
                username: "ci".into(),
                password: SecretString::from("pw"),
            },
        );
        let svc = AuthService(Arc::new(data));
        let ask = |host: &str| CredentialsRequest { host: host.into() };
        let mine = svc
            .credentials(tonic::Request::new(ask("127.0.0.1:5000")))
            .await
            .unwrap();
        assert_eq!(
            (
                mine.get_ref().username.as_str(),
                mine.get_ref().secret.as_str()
            ),
            ("ci", "pw")
        );
        let other = svc
            .credentials(tonic::Request::new(ask("registry-1.docker.io")))
            .await
            .unwrap();
        assert!(other.get_ref().username.is_empty() && other.get_ref().secret.is_empty());
    }
}
