//! The registry API (not the daemon): whether `registry/repository:tag` already exists, and its
//! digest, for `skip-existing`. Basic auth and the Bearer-token challenge come from oci-client.

use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use secrecy::ExposeSecret;

use crate::docker::client::Credentials;

/// Why the registry could not say whether the tag exists.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{image} is not a valid image reference: {source}")]
    InvalidReference {
        image: String,
        #[source]
        source: oci_client::ParseError,
    },
    #[error(
        "the registry refused to say whether {image} exists: unauthorized\nhint: check registry-username and registry-password, or that the role may read ECR (ecr:BatchGetImage, ecr:GetAuthorizationToken)"
    )]
    Unauthorized { image: String },
    #[error("looking up {image} in the registry failed: {source}")]
    Lookup {
        image: String,
        #[source]
        source: OciDistributionError,
    },
}

/// Whether `registry` is this machine, where registries speak plain HTTP (as dockerd assumes).
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => registry.rsplit_once(':').map_or(registry, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                registry
            }
        }),
    };
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

/// The digest of `image` (`registry/repository:tag`) if the registry has it, `None` if it
/// has no such tag (or no such repository). A HEAD of the manifest, a GET if HEAD gives no digest.
pub async fn existing_digest(
    image: &str,
    creds: Option<&Credentials>,
) -> Result<Option<String>, RegistryError> {
    let reference: Reference = image
        .parse()
        .map_err(|source| RegistryError::InvalidReference {
            image: image.to_string(),
            source,
        })?;
    let registry = reference.resolve_registry().to_string();
    let protocol = if is_loopback(&registry) {
        ClientProtocol::HttpsExcept(vec![registry])
    } else {
        ClientProtocol::Https
    };
    let client = Client::new(ClientConfig {
        protocol,
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    });
    let auth = match creds {
        Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.expose_secret().to_string()),
        None => RegistryAuth::Anonymous,
    };
    match client.fetch_manifest_digest(&reference, &auth).await {
        Ok(digest) => Ok(Some(digest)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(OciDistributionError::UnauthorizedError { .. }) => Err(RegistryError::Unauthorized {
            image: image.to_string(),
        }),
        Err(source) => Err(RegistryError::Lookup {
            image: image.to_string(),
            source,
        }),
    }
}

/// A missing tag or repository: 404 with `MANIFEST_UNKNOWN`/`NAME_UNKNOWN`/`NOT_FOUND`, or a bare 404.
fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_recognised_with_and_without_ports() {
        for r in [
            "127.0.0.1:5000",
            "127.0.0.1",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
            "127.1.2.3:80",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "registry.local:5000",
            "localhost.example.com",
            "10.0.0.1:5000",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
    }

    #[test]
    fn a_manifest_unknown_envelope_means_the_tag_does_not_exist() {
        let envelope: oci_client::errors::OciEnvelope = serde_json::from_str(
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        )
        .unwrap();
        assert!(is_not_found(&OciDistributionError::RegistryError {
            envelope,
            url: "u".into()
        }));
        let envelope: oci_client::errors::OciEnvelope =
            serde_json::from_str(r#"{"errors":[{"code":"DENIED","message":"no"}]}"#).unwrap();
        assert!(!is_not_found(&OciDistributionError::RegistryError {
            envelope,
            url: "u".into()
        }));
    }

    #[test]
    fn a_bare_404_means_the_tag_does_not_exist_and_a_500_does_not() {
        let err = |code| OciDistributionError::ServerError {
            code,
            url: "u".into(),
            message: String::new(),
        };
        assert!(is_not_found(&err(404)));
        assert!(!is_not_found(&err(500)));
    }
}
