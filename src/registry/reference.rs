//! [`ImageRef`]: an image reference parsed once, by the distribution grammar docker uses, and
//! displayed the way the user spelled it (`busybox` stays `busybox`, not
//! `docker.io/library/busybox:latest`).

use std::fmt;

/// `host/repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// As written; `None` for Docker Hub's short forms (`busybox`, `nova/app`).
    host: Option<String>,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Text that is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an image reference: {reason}")]
pub struct ReferenceError {
    pub text: String,
    reason: String,
}

const DOCKER_HUB: &str = "docker.io";

impl ImageRef {
    /// Parses `text` with the grammar of distribution's `reference` package (lowercase path
    /// components, a tag of `[\w][\w.-]{0,127}`, a `sha256:` digest of 64 hex digits, …).
    pub fn parse(text: &str) -> Result<ImageRef, ReferenceError> {
        let bad = |reason: String| ReferenceError {
            text: text.to_string(),
            reason,
        };
        // The grammar (a port of distribution's regular expressions) decides validity; the
        // split below only keeps the user's spelling of what it accepted.
        text.parse::<oci_client::Reference>()
            .map_err(|e| bad(e.to_string()))?;
        let (name, digest) = match text.split_once('@') {
            Some((n, d)) => (n, Some(d.to_string())),
            None => (text, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (
                &name[..last_slash + i],
                Some(name[last_slash + i + 1..].to_string()),
            ),
            None => (name, None),
        };
        let (host, repository) = match name.split_once('/') {
            Some((first, rest)) if is_host(first) => (Some(first.to_string()), rest),
            _ => (None, name),
        };
        Ok(ImageRef {
            host,
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// `host/repository:tag` from parts that were validated as inputs.
    pub fn tagged(host: &str, repository: &str, tag: &str) -> ImageRef {
        ImageRef {
            host: Some(host.to_string()),
            repository: repository.to_string(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// The registry host: as written, or Docker Hub's for the short forms.
    pub fn host(&self) -> &str {
        self.host.as_deref().unwrap_or(DOCKER_HUB)
    }

    /// The path in the registry, as written (`busybox`, not `library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `host/repository`, as written: what kustomize's `newName` and the daemon's repository
    /// parameters take.
    pub fn name(&self) -> String {
        match &self.host {
            Some(h) => format!("{h}/{}", self.repository),
            None => self.repository.clone(),
        }
    }

    /// The same repository under another tag, without a digest.
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// `host/repository@digest`: the immutable form (the `image-ref` output).
    pub fn at_digest(&self, digest: &str) -> ImageRef {
        ImageRef {
            tag: None,
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// What the pull API takes after the repository: the digest when there is one, else the
    /// tag, else `latest` (an empty value would pull every tag).
    pub(crate) fn pull_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The registry API's form (Docker Hub's names expanded), for oci-client.
    pub(crate) fn oci(&self) -> oci_client::Reference {
        use oci_client::Reference;
        let registry = self.host().to_string();
        let repository = match &self.host {
            None if !self.repository.contains('/') => format!("library/{}", self.repository),
            _ => self.repository.clone(),
        };
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => {
                Reference::with_tag_and_digest(registry, repository, t.clone(), d.clone())
            }
            (None, Some(d)) => Reference::with_digest(registry, repository, d.clone()),
            (t, None) => Reference::with_tag(
                registry,
                repository,
                t.clone().unwrap_or_else(|| "latest".into()),
            ),
        }
    }
}

/// docker's `splitDockerDomain`: the first component is a host when it has a `.` or a `:` or is
/// `localhost`, or has an upper-case letter (which no repository path may).
fn is_host(first: &str) -> bool {
    first.contains(['.', ':']) || first == "localhost" || first.chars().any(|c| c.is_uppercase())
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ImageRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> String {
        format!("sha256:{}", "ab".repeat(32))
    }

    #[test]
    fn references_keep_the_users_spelling() {
        for text in [
            "busybox",
            "nova/app:v1",
            "127.0.0.1:5000/nova/auth-service:706798e8",
            "localhost/app",
            "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/nova/auth-service:1",
            &format!("registry.local/nova/a:v1@{}", digest()),
            &format!("registry.local/nova/a@{}", digest()),
        ] {
            assert_eq!(ImageRef::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn parts_follow_dockers_domain_rule() {
        let cases: [(&str, &str, &str, Option<&str>); 5] = [
            (
                "127.0.0.1:5000/nova/auth:v1",
                "127.0.0.1:5000",
                "nova/auth",
                Some("v1"),
            ),
            ("localhost/app", "localhost", "app", None),
            ("nova/auth:v1", "docker.io", "nova/auth", Some("v1")),
            ("busybox", "docker.io", "busybox", None),
            ("r.io:443/a/b/c", "r.io:443", "a/b/c", None),
        ];
        for (text, host, repository, tag) in cases {
            let r = ImageRef::parse(text).unwrap();
            assert_eq!(
                (r.host(), r.repository(), r.tag()),
                (host, repository, tag),
                "{text}"
            );
        }
    }

    #[test]
    fn invalid_references_are_refused_with_the_reason() {
        for text in [
            "127.0.0.1:5000/Nova/svc::bad",
            "127.0.0.1:5000/nova/svc::bad",
            "r/a:b:c",
            "r/UPPER",
            "r/a b",
            "",
            "r/a@sha256:abc",
            "r/a:.tag",
        ] {
            let err = ImageRef::parse(text).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("{text:?} is not an image reference: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn a_digest_form_drops_the_tag_and_a_tag_form_drops_the_digest() {
        let r = ImageRef::tagged("127.0.0.1:5000", "nova/a", "v1");
        let pinned = r.at_digest(&digest());
        assert_eq!(
            pinned.to_string(),
            format!("127.0.0.1:5000/nova/a@{}", digest())
        );
        assert_eq!(
            pinned.with_tag("cache-builder").to_string(),
            "127.0.0.1:5000/nova/a:cache-builder"
        );
    }

    #[test]
    fn pulls_name_the_digest_then_the_tag_then_latest() {
        let p = |t: &str| ImageRef::parse(t).unwrap().pull_reference().to_string();
        assert_eq!(p(&format!("r.io/a:v1@{}", digest())), digest());
        assert_eq!(p("r.io/a:v1"), "v1");
        assert_eq!(p("r.io/a"), "latest");
    }

    #[test]
    fn the_api_form_expands_docker_hub_names() {
        let r = ImageRef::parse("busybox").unwrap().oci();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "library/busybox");
    }
}
