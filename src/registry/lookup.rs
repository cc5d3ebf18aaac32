//! The registry API (not the daemon): whether `registry/repository:tag` already exists, and its
//! digest, for `skip-existing` and `pin-digest`. Basic auth and the Bearer-token challenge come
//! from oci-client.

use std::time::Duration;

use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use secrecy::ExposeSecret;

use super::{Credentials, ImageRef, is_loopback};
use crate::failure::Hint;

/// Why the registry could not say whether the tag exists.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the registry refused to say whether {image} exists: unauthorized")]
    Unauthorized { image: String },
    #[error("looking up {image} in the registry failed")]
    Lookup {
        image: String,
        #[source]
        source: OciDistributionError,
    },
}

impl Hint for RegistryError {
    fn hint(&self) -> Option<String> {
        match self {
            RegistryError::Unauthorized { .. } => Some(
                "check registry-username and registry-password, or that the role may read ECR (ecr:BatchGetImage, ecr:GetAuthorizationToken)".into(),
            ),
            RegistryError::Lookup { source, .. } if is_unreachable(source) => Some(
                "check the registry input, and that the registry is running and reachable from the runner".into(),
            ),
            RegistryError::Lookup { .. } => None,
        }
    }
}

/// A connection that could not be made or broke off: the registry is down or not reachable.
fn is_unreachable(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(r) => r.is_connect() || r.is_timeout(),
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

/// The digest of `image` if the registry has its tag, `None` if it has no such tag (or no such
/// repository). A HEAD of the manifest, a GET if HEAD gives no digest.
pub async fn existing_digest(
    image: &ImageRef,
    creds: Option<&Credentials>,
) -> Result<Option<String>, RegistryError> {
    let reference = image.oci();
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
