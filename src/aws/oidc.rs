//! GitHub's OIDC token: requested from the runner (a job with `permissions: id-token: write`),
//! retried on transient failures, masked at once, and its claims read (never verified) to explain
//! an STS refusal.

use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

use crate::failure::Hint;
use crate::github::Runner;
use crate::retry::Policy;

/// The runner sets these two only for jobs granted `id-token: write`.
pub(crate) const REQUEST_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
pub(crate) const REQUEST_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

/// Where and how to ask the runner for a token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `$ACTIONS_ID_TOKEN_REQUEST_URL`, which already carries a query (`?api-version=…`).
    pub url: String,
    /// `$ACTIONS_ID_TOKEN_REQUEST_TOKEN`, sent as the bearer token.
    pub bearer: SecretString,
}

impl TokenRequest {
    /// The request the runner granted, or `None` when it granted none.
    pub fn from_env() -> Option<TokenRequest> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<TokenRequest> {
        let url = lookup(REQUEST_URL).filter(|v| !v.is_empty())?;
        let bearer = lookup(REQUEST_TOKEN).filter(|v| !v.is_empty())?;
        Some(TokenRequest {
            url,
            bearer: SecretString::from(bearer),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum OidcError {
    #[error(
        "role-to-assume is set but there is no GitHub OIDC token to assume it with ({REQUEST_URL} and {REQUEST_TOKEN} are not set)"
    )]
    NotGranted,
    #[error("{REQUEST_URL} is not a URL")]
    BadRequestUrl,
    #[error("building the HTTP client for the GitHub OIDC token failed")]
    Client(#[source] reqwest::Error),
    #[error("requesting the GitHub OIDC token failed after {attempts} attempt(s)")]
    Request {
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error("the GitHub OIDC token endpoint refused the runner's request token (HTTP {status})")]
    Refused { status: u16 },
    #[error("the GitHub OIDC token endpoint answered HTTP {status} after {attempts} attempt(s)")]
    Status { status: u16, attempts: u32 },
    #[error("the GitHub OIDC token endpoint's answer carries no token")]
    Body(#[source] reqwest::Error),
}

impl Hint for OidcError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            OidcError::NotGranted => "give the job `permissions: id-token: write` (a `permissions:` block replaces the defaults, so list `contents: write` too); \
                 pull requests from forks never get an OIDC token; \
                 to use ambient credentials instead, leave role-to-assume empty"
                .into(),
            OidcError::BadRequestUrl => "it is set by the runner; do not set it by hand".into(),
            OidcError::Refused { .. } => format!(
                "{REQUEST_TOKEN} is valid only inside the job the runner gave it to; do not set it by hand"
            ),
            _ => return None,
        })
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    value: String,
}

/// Asks the runner for a token for `audience`, retrying 5xx answers and connection errors, and
/// masks it the moment it arrives.
pub(crate) async fn fetch_token(
    request: &TokenRequest,
    audience: &str,
    runner: &Runner,
) -> Result<SecretString, OidcError> {
    let mut url = reqwest::Url::parse(&request.url).map_err(|_| OidcError::BadRequestUrl)?;
    url.query_pairs_mut().append_pair("audience", audience);
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(OidcError::Client)?;

    let policy = Policy::OIDC;
    let mut attempt = 0;
    let response = loop {
        attempt += 1;
        let sent = client
            .get(url.clone())
            .bearer_auth(request.bearer.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await;
        let transient = match &sent {
            Ok(r) if r.status().is_success() => false,
            Ok(r) => {
                r.status().is_server_error() || r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS
            }
            Err(e) => e.is_connect() || e.is_timeout() || e.is_request(),
        };
        if transient && policy.allows_after(attempt) {
            tokio::time::sleep(policy.jittered(attempt)).await;
            continue;
        }
        match sent {
            Ok(r) if r.status().is_success() => break r,
            Ok(r) if matches!(r.status().as_u16(), 401 | 403) => {
                return Err(OidcError::Refused {
                    status: r.status().as_u16(),
                });
            }
            Ok(r) => {
                return Err(OidcError::Status {
                    status: r.status().as_u16(),
                    attempts: attempt,
                });
            }
            Err(e) => {
                return Err(OidcError::Request {
                    attempts: attempt,
                    source: e.without_url(),
                });
            }
        }
    };
    let body: TokenResponse = response
        .json()
        .await
        .map_err(|e| OidcError::Body(e.without_url()))?;
    runner.mask(&body.value);
    Ok(SecretString::from(body.value))
}

/// The claims a trust policy is written against, read from a token without verifying it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Claims {
    pub sub: Option<String>,
    /// One audience, or several joined by `, `.
    pub aud: Option<String>,
    pub repository: Option<String>,
}

impl Claims {
    /// Decodes (does not verify) a JWT's payload. `None` when it is not JWT-shaped.
    pub(crate) fn decode(token: &str) -> Option<Claims> {
        let mut parts = token.split('.');
        let (_header, payload) = (parts.next()?, parts.next()?);
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let json: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let text = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let aud = match json.get("aud") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Array(a)) => Some(
                a.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            _ => None,
        };
        Some(Claims {
            sub: text("sub"),
            aud,
            repository: text("repository"),
        })
    }

    /// `sub: "…", aud: "…", repository: "…"`, naming missing claims as such.
    pub fn describe(&self) -> String {
        let show = |v: &Option<String>| {
            v.as_deref()
                .map_or("(absent)".to_string(), |s| format!("{s:?}"))
        };
        format!(
            "sub: {}, aud: {}, repository: {}",
            show(&self.sub),
            show(&self.aud),
            show(&self.repository)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.c2ln",
            b(r#"{"alg":"RS256","typ":"JWT"}"#),
            b(payload)
        )
    }

    #[test]
    fn claims_are_read_from_the_payload_without_verification() {
        let token = jwt(
            r#"{"sub":"repo:Nova/monorepo:ref:refs/heads/main","aud":"sts.amazonaws.com","repository":"Nova/monorepo","iss":"x"}"#,
        );
        let claims = Claims::decode(&token).unwrap();
        assert_eq!(
            claims.sub.as_deref(),
            Some("repo:Nova/monorepo:ref:refs/heads/main")
        );
        assert_eq!(claims.aud.as_deref(), Some("sts.amazonaws.com"));
        assert_eq!(claims.repository.as_deref(), Some("Nova/monorepo"));
    }

    #[test]
    fn several_audiences_are_listed() {
        let claims = Claims::decode(&jwt(r#"{"aud":["a","b"]}"#)).unwrap();
        assert_eq!(claims.aud.as_deref(), Some("a, b"));
        assert_eq!(
            claims.describe(),
            r#"sub: (absent), aud: "a, b", repository: (absent)"#
        );
    }

    #[test]
    fn padded_payloads_decode_too() {
        let padded = jwt(r#"{"sub":"s"}"#).replace(".c2ln", "==.c2ln");
        assert_eq!(Claims::decode(&padded).unwrap().sub.as_deref(), Some("s"));
    }

    #[test]
    fn a_token_that_is_not_a_jwt_has_no_claims() {
        assert_eq!(Claims::decode("opaque"), None);
        assert_eq!(Claims::decode("a.!!!.c"), None);
        assert_eq!(
            Claims::decode(&format!(
                "a.{}.c",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("[1]")
            )),
            Some(Claims::default())
        );
    }

    #[test]
    fn a_request_needs_both_variables() {
        let vars = |url: Option<&'static str>, token: Option<&'static str>| {
            move |k: &str| match k {
                REQUEST_URL => url.map(str::to_string),
                REQUEST_TOKEN => token.map(str::to_string),
                _ => None,
            }
        };
        assert!(
            TokenRequest::from_lookup(vars(Some("https://t/x?api-version=2.0"), Some("b")))
                .is_some()
        );
        assert!(TokenRequest::from_lookup(vars(Some("https://t"), None)).is_none());
        assert!(TokenRequest::from_lookup(vars(None, Some("b"))).is_none());
        assert!(TokenRequest::from_lookup(vars(Some(""), Some("b"))).is_none());
    }

    #[test]
    fn the_missing_request_hint_names_the_permission_and_forks() {
        let text = OidcError::NotGranted.hint().unwrap();
        assert!(text.contains("id-token: write"), "{text}");
        assert!(text.contains("fork"), "{text}");
    }
}
