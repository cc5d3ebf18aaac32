//! The registry as the tests see it: logins for the one the services started, fresh image
//! names in it, its API asked directly (reqwest), and a proxy in front of it that counts push
//! attempts and can drop connections.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use deploy_action::registry::{Credentials, ImageRef};
use secrecy::SecretString;
use sha2::Digest as _;

use super::services::Services;

impl Services {
    pub(crate) fn creds(&self) -> Credentials {
        Credentials {
            username: self.registry_user.clone(),
            password: SecretString::from(self.registry_password.clone()),
        }
    }

    pub(crate) fn wrong_creds(&self) -> Credentials {
        Credentials {
            username: self.registry_user.clone(),
            password: SecretString::from(format!("{}-wrong", self.registry_password)),
        }
    }

    /// `registry/da-test/<name>-<unique>:v1`: a repository no other test (or earlier run) uses.
    pub(crate) fn image(&self, name: &str) -> ImageRef {
        ImageRef::tagged(
            &self.registry,
            &format!("da-test/{name}-{}", unique_name()),
            "v1",
        )
    }
}

/// Unique within this machine: pid, time and a counter.
pub(crate) fn unique_name() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}-{:x}-{}",
        std::process::id(),
        nanos & 0xffff_ffff,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// What the registry API answered: status, headers (lower-cased names), body.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// `GET /v2/<repository>/manifests/<reference>` of `image`'s registry, as a v2 or OCI manifest.
pub(crate) async fn get_manifest(
    image: &ImageRef,
    reference: &str,
    auth: Option<(&str, &str)>,
) -> Answer {
    let url = format!(
        "http://{}/v2/{}/manifests/{reference}",
        image.host(),
        image.repository()
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut req = client.get(url).header(
        "Accept",
        "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
    );
    if let Some((user, password)) = auth {
        req = req.basic_auth(user, Some(password));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", sha2::Sha256::digest(data))
}

/// A port on 127.0.0.1 that nothing listens on.
pub(crate) fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP proxy on 127.0.0.1 in front of the registry that counts the daemon's `GET /v2/` pings
/// (one per push attempt) and can drop the first few plain-HTTP connections unanswered.
pub(crate) struct Proxy {
    pub addr: String,
    pings: Arc<AtomicUsize>,
}

impl Proxy {
    pub(crate) fn start(upstream: &str, drop_first: usize) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let pings = Arc::new(AtomicUsize::new(0));
        let upstream = upstream.to_string();
        let counter = Arc::clone(&pings);
        std::thread::spawn(move || {
            let mut dropped = 0;
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let mut first = [0u8; 1];
                // The daemon tries TLS first (0x16), then plain HTTP: only plain connections count.
                let tls = matches!(client.peek(&mut first), Ok(1) if first[0] == 0x16);
                if !tls && dropped < drop_first {
                    dropped += 1;
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    return;
                };
                let counter = Arc::clone(&counter);
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    Some(counter),
                );
                pipe(server, client, None);
            }
        });
        Proxy { addr, pings }
    }

    pub(crate) fn pings(&self) -> usize {
        self.pings.load(Ordering::SeqCst)
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, pings: Option<Arc<AtomicUsize>>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(p) = &pings {
                let text = String::from_utf8_lossy(&buf[..n]);
                p.fetch_add(text.matches("GET /v2/ HTTP/1.1").count(), Ordering::SeqCst);
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
