//! What the user reads when the job fails: one message made of the error chain with each cause
//! said once, the first hint found along the chain, and the file and line when a file is at
//! fault.
//!
//! Errors carry hints one way: each error enum implements [`Hint`], and [`Failure::of`] asks
//! every error in the chain (as uv's `hints_for_error` does), outermost first. No hint text
//! lives in an `#[error]` string, and no `Display` repeats its `#[source]`: the chain is walked
//! here, once.

use std::error::Error as StdError;

/// Advice for an error whose usual cause is known.
pub trait Hint {
    fn hint(&self) -> Option<String>;
}

/// Where in a file the problem is, for `::error file=…,line=…::`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    /// 1-based.
    pub line: Option<usize>,
}

/// An error that points into a file.
pub trait Locate {
    fn location(&self) -> Option<Location>;
}

/// A failure as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub hint: Option<String>,
    pub location: Option<Location>,
}

/// Every error type that knows hints or locations. A new error enum that implements [`Hint`]
/// (or [`Locate`]) is added here, or its advice is never shown.
macro_rules! ask {
    ($err:expr, $method:ident, [$($ty:ty),* $(,)?]) => {{
        let e: &(dyn StdError + 'static) = $err;
        $(if let Some(x) = e.downcast_ref::<$ty>() { return x.$method(); })*
        None
    }};
}

fn hint_of(e: &(dyn StdError + 'static)) -> Option<String> {
    ask!(
        e,
        hint,
        [
            crate::aws::AwsError,
            crate::aws::oidc::OidcError,
            crate::registry::RegistryError,
            crate::docker::DockerError,
            crate::kustomize::EditError,
            crate::kustomize::SpecErrors,
            crate::gitops::GitopsError,
            crate::argocd::ArgoError,
            crate::pipeline::StageError,
        ]
    )
}

fn location_of(e: &(dyn StdError + 'static)) -> Option<Location> {
    ask!(
        e,
        location,
        [crate::kustomize::EditError, crate::docker::DockerError]
    )
}

/// Adds `text` to the message being built, unless it was said already: libraries that wrap an
/// error often print it too (reqwest, oci-client, bollard).
fn say(message: &mut String, text: &str) {
    if !text.is_empty() && !message.contains(text) {
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(text);
    }
}

/// An error and its causes as one line, each cause said once.
pub(crate) fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut message = String::new();
    let mut next = Some(err);
    while let Some(e) = next {
        say(&mut message, &e.to_string());
        next = e.source();
    }
    message
}

impl Failure {
    /// The failure an error chain describes.
    pub fn of(err: &anyhow::Error) -> Failure {
        let mut message = String::new();
        let mut hint = None;
        let mut location = None;
        for e in err.chain() {
            say(&mut message, &e.to_string());
            hint = hint.or_else(|| hint_of(e));
            location = location.or_else(|| location_of(e));
        }
        Failure {
            message,
            hint,
            location,
        }
    }

    /// The whole text: message, then `hint: …` on its own line.
    pub fn text(&self) -> String {
        match &self.hint {
            Some(h) => format!("{}\nhint: {h}", self.message),
            None => self.message.clone(),
        }
    }

    /// The message prefixed with `file:line: `, for places that cannot carry the location
    /// separately (a warning, a terminal).
    pub fn located_message(&self) -> String {
        match &self.location {
            Some(Location {
                file,
                line: Some(l),
            }) => format!("{file}:{l}: {}", self.message),
            Some(Location { file, line: None }) => format!("{file}: {}", self.message),
            None => self.message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer failed")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner: connection refused")]
    struct Inner;

    /// A library error that prints its source and also returns it from `source()`.
    #[derive(Debug, thiserror::Error)]
    #[error("error sending request: {0}")]
    struct Chatty(#[source] Inner);

    #[test]
    fn the_chain_is_joined_with_each_cause_once() {
        let f = Failure::of(&anyhow::Error::new(Outer(Inner)));
        assert_eq!(f.message, "outer failed: inner: connection refused");
        let f = Failure::of(&anyhow::Error::new(Chatty(Inner)));
        assert_eq!(
            f.message,
            "error sending request: inner: connection refused"
        );
    }

    #[test]
    fn context_added_above_an_error_comes_first() {
        let err = anyhow::Error::new(Inner).context("pushing the image");
        assert_eq!(
            Failure::of(&err).message,
            "pushing the image: inner: connection refused"
        );
    }

    #[test]
    fn the_first_hint_along_the_chain_is_shown_on_its_own_line() {
        let err = anyhow::Error::new(crate::kustomize::EditError::NotFound {
            dir: "k8s/x".into(),
        })
        .context("setting the image");
        let f = Failure::of(&err);
        assert!(
            f.hint.as_deref().unwrap().contains("overlay directory"),
            "{f:?}"
        );
        assert!(f.text().contains("\nhint: "), "{}", f.text());
        assert!(!f.message.contains("hint"), "{f:?}");
    }

    #[test]
    fn a_located_error_gives_its_file_and_line() {
        let f = Failure {
            message: "m".into(),
            hint: None,
            location: Some(Location {
                file: "k.yaml".into(),
                line: Some(3),
            }),
        };
        assert_eq!(f.located_message(), "k.yaml:3: m");
    }
}
