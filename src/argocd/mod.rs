//! Argo CD's REST API, as the verify stage uses it: ask for a refresh, then look at the
//! Application until it is synced at our commit (or a later one that still deploys our image)
//! and Healthy with our image running, or until Argo CD reports a failure, or the timeout.
//!
//! `argocd app wait --sync --health` does neither of the first two: a Synced/Healthy state left
//! over from before Argo CD saw our commit counts as done, and it waits forever by default.

mod state;

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

use crate::failure::Hint;
pub use state::{AppState, Condition, Failure, Resource, Revision, Verdict, decide};

/// The first wait between two looks; each wait is half as long again, up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_secs(1);
const MAX_WAIT: Duration = Duration::from_secs(5);
/// How long the refresh request may take: Argo CD answers it when the reconcile is done.
const REFRESH_DEADLINE: Duration = Duration::from_secs(30);

/// Where the Application is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://argocd.example.com`, without a trailing `/`.
    pub server: String,
    pub token: Option<SecretString>,
    pub app: String,
    /// `appNamespace`, for an app outside Argo CD's own namespace.
    pub namespace: Option<String>,
    pub timeout: Duration,
    /// Accept a certificate nobody vouches for.
    pub insecure: bool,
}

/// How the wait ended, short of a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub state: AppState,
    /// The image of the later commit that replaced ours, when one did.
    pub superseded_by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArgoError {
    #[error("Argo CD at {server} refused the token for application {app} (HTTP 401)")]
    Unauthorized { server: String, app: String },
    #[error("Argo CD denied reading application {app} (HTTP 403)")]
    Forbidden { app: String },
    #[error("Argo CD has no application {app}{} (HTTP 404)", namespace.as_ref().map(|n| format!(" in namespace {n}")).unwrap_or_default())]
    NotFound {
        app: String,
        namespace: Option<String>,
    },
    #[error("Argo CD at {server} answered HTTP {status} for application {app}: {message}")]
    Refused {
        server: String,
        app: String,
        status: u16,
        message: String,
    },
    #[error("cannot make a TLS connection to Argo CD at {server}")]
    Tls {
        server: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot build the HTTP client for Argo CD")]
    Client(#[source] reqwest::Error),
    #[error("Argo CD's {kind} for application {app}: {message}")]
    Condition {
        app: String,
        kind: String,
        message: String,
    },
    #[error("Argo CD's sync of application {app} ended {phase}: {message}")]
    Operation {
        app: String,
        phase: String,
        message: String,
    },
    #[error("application {app} is Degraded at our revision{}", resources(degraded))]
    Degraded {
        app: String,
        degraded: Vec<Resource>,
    },
    #[error("Argo CD at {server} did not answer within {seconds} s: {problem}")]
    Unreachable {
        server: String,
        seconds: u64,
        problem: String,
    },
    #[error(
        "application {app} did not become Synced and Healthy with our image within {seconds} s; last seen: {last}"
    )]
    TimedOut {
        app: String,
        seconds: u64,
        last: String,
    },
}

fn resources(list: &[Resource]) -> String {
    list.iter()
        .map(|r| format!("\n  - {} {}/{}: {}", r.kind, r.namespace, r.name, r.message))
        .collect()
}

impl Hint for ArgoError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            ArgoError::Unauthorized { .. } => "argocd-token is missing, expired or revoked: make one with `argocd proj role create-token <project> <role>` (or an account's `argocd account generate-token`)".into(),
            ArgoError::Forbidden { .. } => "the token's role may not read this application: its project role needs the policy `p, proj:<project>:<role>, applications, get, <project>/*, allow`".into(),
            ArgoError::NotFound { .. } => "check argocd-app, and argocd-app-namespace for an application outside Argo CD's own namespace".into(),
            ArgoError::Tls { .. } => "if the server's certificate is self-signed, set `argocd-insecure: true` (or point SSL_CERT_FILE at a CA bundle that includes its issuer)".into(),
            ArgoError::Unreachable { .. } => "check argocd-server: the runner must reach Argo CD's API server (its URL, port and network path)".into(),
            ArgoError::TimedOut { app, .. } => format!("is automated sync enabled for the application? Or run `argocd app get {app}` to see what it is waiting for"),
            ArgoError::Degraded { app, .. } => format!("`argocd app get {app}` and `kubectl describe` of the listed resources show why the pods are not ready"),
            _ => return None,
        })
    }
}

/// What one request gave.
enum Fetched {
    App(serde_json::Value),
    /// Worth another look: a 5xx, a connection that failed or broke.
    Transient(String),
}

struct Client<'s> {
    http: reqwest::Client,
    settings: &'s Settings,
}

impl<'s> Client<'s> {
    fn new(settings: &'s Settings) -> Result<Client<'s>, ArgoError> {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(settings.insecure)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(ArgoError::Client)?;
        Ok(Client { http, settings })
    }

    /// `GET /api/v1/applications/{app}`, with `refresh=normal` when asked.
    async fn get(&self, refresh: bool, deadline: Duration) -> Result<Fetched, ArgoError> {
        let s = self.settings;
        let mut url = reqwest::Url::parse(&s.server).map_err(|_| ArgoError::Refused {
            server: s.server.clone(),
            app: s.app.clone(),
            status: 0,
            message: "not a URL".into(),
        })?;
        url.path_segments_mut()
            .map_err(|_| ArgoError::Refused {
                server: s.server.clone(),
                app: s.app.clone(),
                status: 0,
                message: "not a base URL".into(),
            })?
            .pop_if_empty()
            .extend(["api", "v1", "applications", s.app.as_str()]);
        if refresh {
            url.query_pairs_mut().append_pair("refresh", "normal");
        }
        if let Some(ns) = &s.namespace {
            url.query_pairs_mut().append_pair("appNamespace", ns);
        }
        let mut req = self.http.get(url).timeout(deadline);
        if let Some(t) = &s.token {
            req = req.bearer_auth(t.expose_secret());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if is_tls(&e) => {
                return Err(ArgoError::Tls {
                    server: s.server.clone(),
                    source: e.without_url(),
                });
            }
            Err(e) => {
                return Ok(Fetched::Transient(crate::failure::chain_text(
                    &e.without_url(),
                )));
            }
        };
        let status = resp.status().as_u16();
        match status {
            200 => match resp.json().await {
                Ok(v) => Ok(Fetched::App(v)),
                Err(e) => Ok(Fetched::Transient(crate::failure::chain_text(
                    &e.without_url(),
                ))),
            },
            401 => Err(ArgoError::Unauthorized {
                server: s.server.clone(),
                app: s.app.clone(),
            }),
            403 => Err(ArgoError::Forbidden { app: s.app.clone() }),
            404 => Err(ArgoError::NotFound {
                app: s.app.clone(),
                namespace: s.namespace.clone(),
            }),
            429 | 500..=599 => Ok(Fetched::Transient(format!("HTTP {status}"))),
            _ => {
                let body: serde_json::Value = resp.json().await.unwrap_or_default();
                Err(ArgoError::Refused {
                    server: s.server.clone(),
                    app: s.app.clone(),
                    status,
                    message: body["message"]
                        .as_str()
                        .or(body["error"].as_str())
                        .unwrap_or("")
                        .to_string(),
                })
            }
        }
    }
}

/// A certificate or handshake failure, which no retry fixes.
fn is_tls(e: &reqwest::Error) -> bool {
    let text = crate::failure::chain_text(e).to_ascii_lowercase();
    e.is_connect()
        && ["certificate", "tls", "handshake", "unknownissuer"]
            .iter()
            .any(|w| text.contains(w))
}

/// Waits for the app. `classify` places a revision against our commit; `ours` lists the
/// spellings of our image; `say` gets one line per change of state.
pub async fn wait(
    settings: &Settings,
    classify: &mut dyn FnMut(&str) -> Revision,
    ours: &[String],
    say: &mut dyn FnMut(&str),
) -> Result<Outcome, ArgoError> {
    let client = Client::new(settings)?;
    let started = Instant::now();
    let mut wait = FIRST_WAIT;
    let mut last: Option<AppState> = None;
    let mut last_problem: Option<String> = None;
    let mut first = true;
    loop {
        let left = settings.timeout.saturating_sub(started.elapsed());
        let deadline = if first {
            REFRESH_DEADLINE.min(left)
        } else {
            left.min(REFRESH_DEADLINE)
        };
        match client
            .get(first, deadline.max(Duration::from_secs(1)))
            .await?
        {
            Fetched::App(json) => {
                first = false;
                last_problem = None;
                let state = AppState::from_json(&json);
                if last.as_ref() != Some(&state) {
                    say(&format!(
                        "argocd {}: {}",
                        settings.app,
                        change(last.as_ref(), &state)
                    ));
                }
                let verdict = decide(&state, classify, ours);
                last = Some(state);
                let state = last.clone().expect("just set");
                match verdict {
                    Verdict::Deployed => {
                        return Ok(Outcome {
                            state,
                            superseded_by: None,
                        });
                    }
                    Verdict::Superseded { image } => {
                        return Ok(Outcome {
                            state,
                            superseded_by: Some(image),
                        });
                    }
                    Verdict::Failed(f) => return Err(failed(&settings.app, f)),
                    Verdict::Waiting => {}
                }
            }
            Fetched::Transient(problem) => {
                if last_problem.as_deref() != Some(problem.as_str()) {
                    say(&format!("argocd {}: {problem}; trying again", settings.app));
                }
                last_problem = Some(problem);
            }
        }
        if started.elapsed() + wait >= settings.timeout {
            return Err(timed_out(settings, last.as_ref(), last_problem));
        }
        tokio::time::sleep(wait).await;
        wait = (wait.mul_f64(1.5)).min(MAX_WAIT);
    }
}

fn timed_out(settings: &Settings, last: Option<&AppState>, problem: Option<String>) -> ArgoError {
    let seconds = settings.timeout.as_secs();
    match (last, problem) {
        (None, problem) => ArgoError::Unreachable {
            server: settings.server.clone(),
            seconds,
            problem: problem.unwrap_or_else(|| "no answer".into()),
        },
        (Some(state), problem) => ArgoError::TimedOut {
            app: settings.app.clone(),
            seconds,
            last: match problem {
                Some(p) => format!("{} (then: {p})", state.describe()),
                None => state.describe(),
            },
        },
    }
}

fn failed(app: &str, f: Failure) -> ArgoError {
    let app = app.to_string();
    match f {
        Failure::Condition(c) => ArgoError::Condition {
            app,
            kind: c.kind,
            message: c.message,
        },
        Failure::Operation { phase, message } => ArgoError::Operation {
            app,
            phase,
            message,
        },
        Failure::Degraded(degraded) => ArgoError::Degraded { app, degraded },
    }
}

/// `OutOfSync → Synced at abc1234, Progressing → Healthy`: what changed.
fn change(before: Option<&AppState>, now: &AppState) -> String {
    let Some(b) = before else {
        return match now.images.is_empty() {
            true => now.describe(),
            false => format!("{}, images: {}", now.describe(), now.images.join(", ")),
        };
    };
    let at = |s: &AppState| match &s.revision {
        Some(r) => format!("{} at {}", s.sync, state::short(r)),
        None => s.sync.clone(),
    };
    let mut parts = Vec::new();
    if at(b) != at(now) {
        parts.push(format!("{} → {}", at(b), at(now)));
    }
    if b.health != now.health {
        parts.push(format!("{} → {}", b.health, now.health));
    }
    let op = |s: &AppState| {
        s.phase.clone().unwrap_or_else(|| {
            if s.operation_requested {
                "requested".into()
            } else {
                "none".into()
            }
        })
    };
    if op(b) != op(now) {
        parts.push(format!("operation {} → {}", op(b), op(now)));
    }
    if b.images != now.images {
        parts.push(format!("images: {}", now.images.join(", ")));
    }
    if parts.is_empty() {
        parts.push(format!(
            "{} (images: {})",
            now.describe(),
            now.images.join(", ")
        ));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(sync: &str, rev: &str, health: &str, phase: Option<&str>) -> AppState {
        AppState {
            sync: sync.into(),
            revision: Some(rev.into()),
            health: health.into(),
            phase: phase.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn a_change_line_names_only_what_changed() {
        let a = state("OutOfSync", "0123456789", "Progressing", Some("Running"));
        let b = state("Synced", "abcdef12345", "Healthy", Some("Succeeded"));
        assert_eq!(
            change(Some(&a), &b),
            "OutOfSync at 0123456 → Synced at abcdef1, Progressing → Healthy, operation Running → Succeeded"
        );
        assert_eq!(
            change(None, &a),
            "OutOfSync at 0123456, Progressing, operation Running"
        );
    }

    #[test]
    fn failures_carry_argo_cds_message_and_the_usual_causes() {
        let e = failed(
            "nova-staging",
            Failure::Degraded(vec![Resource {
                kind: "Deployment".into(),
                namespace: "staging".into(),
                name: "auth".into(),
                message: "Deployment has timed out progressing.".into(),
            }]),
        );
        assert_eq!(
            e.to_string(),
            "application nova-staging is Degraded at our revision\n  - Deployment staging/auth: Deployment has timed out progressing."
        );
        let timeout = ArgoError::TimedOut {
            app: "nova-staging".into(),
            seconds: 600,
            last: "OutOfSync".into(),
        };
        assert!(
            timeout
                .hint()
                .unwrap()
                .contains("argocd app get nova-staging")
        );
        let nf = ArgoError::NotFound {
            app: "x".into(),
            namespace: Some("team".into()),
        };
        assert_eq!(
            nf.to_string(),
            "Argo CD has no application x in namespace team (HTTP 404)"
        );
    }
}
