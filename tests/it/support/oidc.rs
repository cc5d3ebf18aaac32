//! Tiny HTTP stubs on 127.0.0.1 for the one piece with no real stand-in, GitHub's OIDC token
//! endpoint (and a canned-answer server for STS answers moto cannot give).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use base64::Engine as _;

/// One request as the stub saw it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// A query parameter, percent-decoded.
    pub(crate) fn query(&self, key: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        form_value(query, key)
    }

    /// A field of an `application/x-www-form-urlencoded` body, percent-decoded.
    pub(crate) fn form(&self, key: &str) -> Option<String> {
        form_value(&String::from_utf8_lossy(&self.body), key)
    }
}

fn form_value(text: &str, key: &str) -> Option<String> {
    text.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| percent_decode(k) == key)
        .map(|(_, v)| percent_decode(v))
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The stub's answer.
pub(crate) struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    pub(crate) fn new(
        status: u16,
        content_type: &'static str,
        body: impl Into<String>,
    ) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
        }
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// An HTTP/1.1 server on 127.0.0.1:0 answering every request with `handler`, one connection at a
/// time. It stops when dropped.
pub(crate) struct Stub {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Stub {
    pub(crate) fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    // A client that hangs up mid-request is its own problem.
                    let _ = serve(stream, &*handler, &requests);
                }
            })
        };
        Stub {
            base: format!("http://{addr}"),
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// Every request so far.
    pub(crate) fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    pub(crate) fn hits(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.base.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    handler: &Handler,
    requests: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(());
    };
    let (method, target) = (method.to_string(), target.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let request = Request {
        method,
        target,
        headers,
        body,
    };
    let response = handler(&request);
    requests.lock().unwrap().push(request);
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        response.status,
        response.content_type,
        response.body.len(),
        response.body
    )?;
    stream.flush()
}

/// Claims of the token the stub hands out, as GitHub sets them for a push to `main`.
pub(crate) const SUB: &str = "repo:nova/monorepo:ref:refs/heads/main";
pub(crate) const REPOSITORY: &str = "nova/monorepo";

/// GitHub's OIDC token endpoint: checks the bearer and the audience, answers `{"value": JWT}`
/// (unsigned, JWT-shaped), and can be told to fail with 500 first.
pub(crate) struct OidcServer {
    stub: Stub,
    /// What the runner puts in `ACTIONS_ID_TOKEN_REQUEST_URL`.
    pub request_url: String,
    /// What the runner puts in `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    pub bearer: String,
    /// The token handed out.
    pub token: String,
    pub audience: String,
}

impl OidcServer {
    pub(crate) fn start(audience: &str) -> OidcServer {
        Self::failing_first(audience, 0)
    }

    /// Answers 500 to the first `failures` requests.
    pub(crate) fn failing_first(audience: &str, failures: usize) -> OidcServer {
        let nonce = nonce();
        let bearer = format!("runtime-bearer-{nonce}");
        let token = jwt(&serde_json::json!({
            "iss": "https://token.actions.githubusercontent.com",
            "sub": SUB,
            "aud": audience,
            "repository": REPOSITORY,
            "repository_owner": "nova",
            "ref": "refs/heads/main",
            "jti": nonce,
        }));
        let seen = AtomicUsize::new(0);
        let stub = {
            let (bearer, token, audience) = (bearer.clone(), token.clone(), audience.to_string());
            Stub::start(move |req| {
                if seen.fetch_add(1, Ordering::SeqCst) < failures {
                    return Response::new(500, "text/plain", "transient");
                }
                if req.method != "GET"
                    || req.path() != "/token"
                    || req.query("api-version").as_deref() != Some("2.0")
                {
                    return Response::new(
                        404,
                        "text/plain",
                        format!("no route {} {}", req.method, req.target),
                    );
                }
                if req.header("authorization") != Some(format!("Bearer {bearer}").as_str()) {
                    return Response::new(401, "text/plain", "bad bearer");
                }
                if req.query("audience").as_deref() != Some(audience.as_str()) {
                    return Response::new(
                        400,
                        "text/plain",
                        format!("audience {:?} is not {audience:?}", req.query("audience")),
                    );
                }
                Response::new(
                    200,
                    "application/json",
                    serde_json::json!({ "count": 1, "value": token }).to_string(),
                )
            })
        };
        let request_url = format!("{}/token?api-version=2.0", stub.base);
        OidcServer {
            stub,
            request_url,
            bearer,
            token,
            audience: audience.to_string(),
        }
    }

    pub(crate) fn hits(&self) -> usize {
        self.stub.hits()
    }

    pub(crate) fn requests(&self) -> Vec<Request> {
        self.stub.requests()
    }

    /// The two variables the runner sets for a job with `id-token: write`.
    pub(crate) fn env(&self) -> [(&'static str, String); 2] {
        [
            ("ACTIONS_ID_TOKEN_REQUEST_URL", self.request_url.clone()),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", self.bearer.clone()),
        ]
    }
}

/// An unsigned JWT-shaped token: `header.payload.signature`, all base64url.
pub(crate) fn jwt(claims: &serde_json::Value) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    format!(
        "{}.{}.{}",
        b64(br#"{"alg":"RS256","typ":"JWT","kid":"stub"}"#),
        b64(claims.to_string().as_bytes()),
        b64(format!("not-a-signature-{}", nonce()).as_bytes())
    )
}

/// A value unique to this process and call.
pub(crate) fn nonce() -> String {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:x}{:x}{:x}",
        std::process::id(),
        t,
        N.fetch_add(1, Ordering::Relaxed)
    )
}
