//! A stand-in for Argo CD's REST API, as small as the verify stage's use of it: nothing real can
//! run here. It serves `GET /api/v1/applications/{name}` (with `refresh` and `appNamespace`)
//! with the documented fields and enum values, checks the Bearer token (401 without the right
//! one, 403 for a token of another project, 404 for another app), and behaves like a
//! controller over the test's real git remote: it notices the branch tip (at once on a
//! refresh, else after a delay), goes OutOfSync → operation Running → Synced/Progressing →
//! Healthy on scripted delays, and lists in `status.summary.images` the images the real
//! `kubectl kustomize` renders from the overlay at the revision, old and new during a rollout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

/// How the app ends up once it has synced a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    Healthy,
    /// Health goes Degraded after Progressing, with this Deployment message.
    Degraded(String),
    /// The sync operation fails with this message.
    OperationFails(String),
    /// A `ComparisonError` condition with this message, as soon as the tip is noticed.
    ComparisonError(String),
    /// Automated sync is off: the app stays OutOfSync at the new revision.
    NeverSyncs,
}

/// The controller's script.
#[derive(Clone)]
pub(crate) struct Script {
    pub(crate) app: String,
    pub(crate) namespace: Option<String>,
    pub(crate) token: String,
    /// A token of another project: 403.
    pub(crate) foreign_token: String,
    pub(crate) remote: PathBuf,
    pub(crate) branch: String,
    pub(crate) overlay: String,
    /// Without a refresh, a new tip is noticed this long after it was first seen.
    pub(crate) notice_after: Duration,
    /// Whether `refresh=normal` makes the tip noticed at once (Argo CD's behaviour).
    pub(crate) refresh_notices: bool,
    pub(crate) out_of_sync: Duration,
    pub(crate) running: Duration,
    pub(crate) progressing: Duration,
    pub(crate) end: End,
    /// Answer the first this many requests with 503.
    pub(crate) fail_first: usize,
    /// Run once before the controller first reads the branch: sibling jobs landing between
    /// our push and Argo CD's reconcile.
    pub(crate) before_first_look: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Keep listing the settled revision's images once the rollout is Healthy (pods of
    /// another workload still running the old image).
    pub(crate) keep_old_images: bool,
}

impl Script {
    pub(crate) fn new(remote: &Path, overlay: &str) -> Script {
        Script {
            app: "nova-staging".into(),
            namespace: None,
            token: format!("argocd-token-{}", super::registry::unique_name()),
            foreign_token: "token-of-another-project".into(),
            remote: remote.to_path_buf(),
            branch: "main".into(),
            overlay: overlay.into(),
            notice_after: Duration::from_millis(300),
            refresh_notices: true,
            // The wait looks at 0, 1, 2.5 and 4.75 s: each phase is seen once.
            out_of_sync: Duration::from_millis(300),
            running: Duration::from_millis(1200),
            progressing: Duration::from_millis(1500),
            end: End::Healthy,
            fail_first: 0,
            before_first_look: None,
            keep_old_images: false,
        }
    }
}

/// What the controller is converging to.
struct Sim {
    script: Script,
    /// The revision synced and healthy before (the seed), and its images.
    settled: String,
    /// The tip noticed, and when; `None` until a new tip is noticed.
    target: Option<(String, Instant)>,
    /// When each unnoticed tip was first seen.
    seen: HashMap<String, Instant>,
    images: HashMap<String, Vec<String>>,
    requests: usize,
    looked: bool,
}

pub(crate) struct ArgoStandIn {
    pub(crate) url: String,
    pub(crate) token: String,
    requests: Arc<AtomicUsize>,
    _thread: std::thread::JoinHandle<()>,
}

impl ArgoStandIn {
    pub(crate) fn start(script: Script) -> ArgoStandIn {
        let settled = rev_parse(&script.remote, &script.branch);
        let token = script.token.clone();
        let sim = Arc::new(Mutex::new(Sim {
            script,
            settled,
            target: None,
            seen: HashMap::new(),
            images: HashMap::new(),
            requests: 0,
            looked: false,
        }));
        let requests = Arc::new(AtomicUsize::new(0));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let counter = Arc::clone(&requests);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let sim = Arc::clone(&sim);
                    let counter = Arc::clone(&counter);
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(
                            move |req: Request<hyper::body::Incoming>| {
                                counter.fetch_add(1, Ordering::SeqCst);
                                let sim = Arc::clone(&sim);
                                async move {
                                    let answer = tokio::task::spawn_blocking(move || {
                                        sim.lock().unwrap().answer(&req)
                                    })
                                    .await
                                    .unwrap();
                                    Ok::<_, std::convert::Infallible>(answer)
                                }
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        ArgoStandIn {
            url,
            token,
            requests,
            _thread: thread,
        }
    }

    /// Requests answered so far.
    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn respond(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

impl Sim {
    fn answer<B>(&mut self, req: &Request<B>) -> Response<Full<Bytes>> {
        self.requests += 1;
        let s = &self.script;
        let bearer = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match bearer {
            Some(t) if t == s.token => {}
            Some(t) if t == s.foreign_token => {
                return respond(
                    StatusCode::FORBIDDEN,
                    json!({"error": "permission denied", "code": 7, "message": "permission denied"}),
                );
            }
            _ => {
                return respond(
                    StatusCode::UNAUTHORIZED,
                    json!({"error": "invalid session", "code": 16, "message": "invalid session: token is invalid"}),
                );
            }
        }
        let path = req.uri().path();
        let query: HashMap<String, String> = req.uri().query().map(url_pairs).unwrap_or_default();
        let wanted = format!("/api/v1/applications/{}", s.app);
        if path != wanted || query.get("appNamespace") != s.namespace.as_ref() {
            return respond(
                StatusCode::NOT_FOUND,
                json!({"error": "not found", "code": 5, "message": format!("applications.argoproj.io \"{}\" not found", path.rsplit('/').next().unwrap_or(""))}),
            );
        }
        if self.requests <= s.fail_first {
            return respond(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "unavailable", "code": 14, "message": "connection refused"}),
            );
        }
        let refresh = query.get("refresh").is_some_and(|r| r == "normal");
        self.observe(refresh);
        respond(StatusCode::OK, self.app_json())
    }

    /// Looks at the branch tip, as the controller's reconcile does.
    fn observe(&mut self, refresh: bool) {
        if !std::mem::replace(&mut self.looked, true)
            && let Some(f) = &self.script.before_first_look
        {
            f();
        }
        let tip = rev_parse(&self.script.remote, &self.script.branch);
        let current = self
            .target
            .as_ref()
            .map(|(r, _)| r.clone())
            .unwrap_or_else(|| self.settled.clone());
        if tip == current {
            return;
        }
        let now = Instant::now();
        let first_seen = *self.seen.entry(tip.clone()).or_insert(now);
        let notice = (refresh && self.script.refresh_notices)
            || now.duration_since(first_seen) >= self.script.notice_after;
        if !notice {
            return;
        }
        // A revision the rollout had finished becomes the settled one.
        if let Some((rev, since)) = &self.target
            && self.phase_at(*since).3
        {
            self.settled = rev.clone();
        }
        self.target = Some((tip, now));
    }

    /// (sync, health, operation phase, done) of the rollout that started at `since`.
    fn phase_at(&self, since: Instant) -> (&'static str, &'static str, Option<&'static str>, bool) {
        let s = &self.script;
        let t = since.elapsed();
        let (a, b, c) = (
            s.out_of_sync,
            s.out_of_sync + s.running,
            s.out_of_sync + s.running + s.progressing,
        );
        match &s.end {
            End::NeverSyncs | End::ComparisonError(_) => ("OutOfSync", "Healthy", None, false),
            _ if t < a => ("OutOfSync", "Healthy", None, false),
            _ if t < b => ("OutOfSync", "Progressing", Some("Running"), false),
            End::OperationFails(_) => ("OutOfSync", "Healthy", Some("Failed"), true),
            _ if t < c => ("Synced", "Progressing", Some("Succeeded"), false),
            End::Degraded(_) => ("Synced", "Degraded", Some("Succeeded"), true),
            _ => ("Synced", "Healthy", Some("Succeeded"), true),
        }
    }

    fn images_at(&mut self, rev: &str) -> Vec<String> {
        if let Some(i) = self.images.get(rev) {
            return i.clone();
        }
        let images = render_images(&self.script.remote, rev, &self.script.overlay);
        self.images.insert(rev.to_string(), images.clone());
        images
    }

    fn app_json(&mut self) -> Value {
        let settled = self.settled.clone();
        let Some((target, since)) = self.target.clone() else {
            let images = self.images_at(&settled);
            return self.app_value(
                "Synced",
                &settled,
                "Healthy",
                Some(("Succeeded", &settled)),
                false,
                images,
                Vec::new(),
            );
        };
        let (sync, health, phase, _) = self.phase_at(since);
        let old = self.images_at(&settled);
        let new = self.images_at(&target);
        let both = || {
            let mut both = old.clone();
            both.extend(new.iter().filter(|i| !old.contains(i)).cloned());
            both
        };
        let images = match (health, phase) {
            ("Healthy", Some("Succeeded")) if self.script.keep_old_images => both(),
            ("Healthy", Some("Succeeded")) => new.clone(),
            (_, Some("Running")) | ("Progressing", _) | ("Degraded", _) => both(),
            _ => old.clone(),
        };
        let requested = sync == "OutOfSync"
            && phase.is_none()
            && self.script.end != End::NeverSyncs
            && !matches!(self.script.end, End::ComparisonError(_));
        let mut conditions = Vec::new();
        if let End::ComparisonError(m) = &self.script.end {
            conditions.push(json!({"type": "ComparisonError", "message": m}));
        }
        let op = match phase {
            Some(p) => Some((p, target.as_str())),
            None => Some(("Succeeded", settled.as_str())),
        };
        self.app_value(sync, &target, health, op, requested, images, conditions)
    }

    #[allow(clippy::too_many_arguments)]
    fn app_value(
        &self,
        sync: &str,
        revision: &str,
        health: &str,
        op: Option<(&str, &str)>,
        requested: bool,
        images: Vec<String>,
        conditions: Vec<Value>,
    ) -> Value {
        let s = &self.script;
        let degraded_message = match &s.end {
            End::Degraded(m) if health == "Degraded" => Some(m.clone()),
            _ => None,
        };
        let resources = vec![json!({
            "group": "apps", "version": "v1", "kind": "Deployment", "namespace": "staging",
            "name": "auth-service", "status": sync,
            "health": match &degraded_message {
                Some(m) => json!({"status": "Degraded", "message": m}),
                None => json!({"status": health}),
            },
        })];
        let mut app = json!({
            "metadata": {"name": s.app, "namespace": s.namespace.clone().unwrap_or_else(|| "argocd".into())},
            "spec": {"project": "nova", "source": {"repoURL": "git://stand-in", "path": s.overlay, "targetRevision": s.branch}},
            "status": {
                "sync": {"status": sync, "revision": revision},
                "health": {"status": health},
                "resources": resources,
                "summary": {"images": images},
                "reconciledAt": chrono::Utc::now().to_rfc3339(),
            },
        });
        if !conditions.is_empty() {
            app["status"]["conditions"] = Value::Array(conditions);
        }
        if let Some((phase, rev)) = op {
            let message = match (&s.end, phase) {
                (End::OperationFails(m), "Failed") => m.clone(),
                (_, "Running") => {
                    "waiting for healthy state of apps/Deployment/auth-service".into()
                }
                _ => "successfully synced (all tasks run)".into(),
            };
            app["status"]["operationState"] = json!({
                "phase": phase, "message": message,
                "operation": {"sync": {"revision": rev}},
                "syncResult": {"revision": rev},
                "startedAt": chrono::Utc::now().to_rfc3339(),
            });
        }
        if requested {
            app["operation"] =
                json!({"sync": {"revision": revision}, "initiatedBy": {"automated": true}});
        }
        app
    }
}

fn url_pairs(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%2F", "/")))
        .collect()
}

fn rev_parse(remote: &Path, branch: &str) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(remote)
        .args(["rev-parse", &format!("refs/heads/{branch}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The `image:` values `kubectl kustomize` renders for `overlay` at `rev`.
fn render_images(remote: &Path, rev: &str, overlay: &str) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let archive = Command::new("git")
        .arg("-C")
        .arg(remote)
        .args(["archive", "--format=tar", rev])
        .output()
        .unwrap();
    assert!(archive.status.success(), "git archive {rev}");
    tar::Archive::new(archive.stdout.as_slice())
        .unpack(tmp.path())
        .unwrap();
    let out = Command::new(&super::services().kubectl)
        .arg("kustomize")
        .arg(tmp.path().join(overlay))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut images: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix("image: "))
        .map(|v| v.trim_matches(['"', '\'']).to_string())
        .collect();
    images.sort();
    images.dedup();
    images
}
