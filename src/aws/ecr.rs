//! ECR: the registry password from GetAuthorizationToken (decoded, masked, re-fetched near
//! expiry) and the repository check, creating it with scan on push when asked.

use std::time::{Duration, SystemTime};

use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability};
use base64::Engine as _;
use secrecy::SecretString;

use super::{AwsError, Cause};
use crate::github::Runner;
use crate::inputs::TagMutability;
use crate::registry::Credentials;

/// A token this close to its expiry is fetched again: a push of large layers can take minutes.
pub(crate) const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// The registry login and when ECR lets it expire.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub(crate) credentials: Credentials,
    pub(crate) expires_at: Option<SystemTime>,
}

/// GetAuthorizationToken for the credentials' own registry, masked at once.
pub(crate) async fn authorization(
    client: &aws_sdk_ecr::Client,
    runner: &Runner,
) -> Result<Login, AwsError> {
    let out = client
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| AwsError::GetAuthorizationToken(Cause::of(&e)))?;
    let data = out.authorization_data().first().ok_or_else(|| {
        AwsError::GetAuthorizationToken(Cause("the answer carries no authorization data".into()))
    })?;
    let token = data.authorization_token().ok_or_else(|| {
        AwsError::GetAuthorizationToken(Cause("the answer carries no token".into()))
    })?;
    let (username, password) = decode_token(token)?;
    // The base64 form works as a credential too (docker config.json stores exactly that).
    runner.mask(token);
    runner.mask(&password);
    Ok(Login {
        credentials: Credentials {
            username,
            password: SecretString::from(password),
        },
        expires_at: data
            .expires_at()
            .and_then(|t| SystemTime::try_from(*t).ok()),
    })
}

/// `base64("AWS:<password>")` → (`AWS`, password).
pub(crate) fn decode_token(token: &str) -> Result<(String, String), AwsError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| AwsError::MalformedAuthorizationToken)?;
    let text = String::from_utf8(bytes).map_err(|_| AwsError::MalformedAuthorizationToken)?;
    match text.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => {
            Ok((user.to_string(), password.to_string()))
        }
        _ => Err(AwsError::MalformedAuthorizationToken),
    }
}

/// Whether a login that expires at `expires_at` is still good to use at `now`.
pub(crate) fn is_fresh(expires_at: Option<SystemTime>, now: SystemTime) -> bool {
    match expires_at {
        // ECR always says; a token without an expiry is not reused.
        None => false,
        Some(t) => t
            .duration_since(now)
            .is_ok_and(|left| left > REFRESH_BEFORE),
    }
}

/// Makes sure `repository` exists, creating it (scan on push, the given tag mutability) when
/// `create` is set. A missing repository with `create` off is an error naming the input.
pub async fn ensure_repository(
    client: &aws_sdk_ecr::Client,
    registry: &str,
    region: &str,
    repository: &str,
    create: bool,
    mutability: TagMutability,
) -> Result<(), AwsError> {
    let described = client
        .describe_repositories()
        .repository_names(repository)
        .send()
        .await;
    let missing = match &described {
        Ok(out) => !out
            .repositories()
            .iter()
            .any(|r| r.repository_name() == Some(repository)),
        Err(e) => e
            .as_service_error()
            .is_some_and(|s| s.is_repository_not_found_exception()),
    };
    if let Err(e) = &described
        && !missing
    {
        return Err(denied_or(e, "ecr:DescribeRepositories", repository, || {
            AwsError::DescribeRepositories {
                repository: repository.to_string(),
                cause: Cause::of(e),
            }
        }));
    }
    if !missing {
        return Ok(());
    }
    if !create {
        return Err(AwsError::RepositoryMissing {
            repository: repository.to_string(),
            registry: registry.to_string(),
            region: region.to_string(),
        });
    }
    let created = client
        .create_repository()
        .repository_name(repository)
        .image_scanning_configuration(
            ImageScanningConfiguration::builder()
                .scan_on_push(true)
                .build(),
        )
        .image_tag_mutability(match mutability {
            TagMutability::Mutable => ImageTagMutability::Mutable,
            TagMutability::Immutable => ImageTagMutability::Immutable,
        })
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        // Another matrix job created it first.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_repository_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(denied_or(&e, "ecr:CreateRepository", repository, || {
            AwsError::CreateRepository {
                repository: repository.to_string(),
                cause: Cause::of(&e),
            }
        })),
    }
}

/// An access-denied answer names the missing permission; anything else is `other`.
fn denied_or<E, R>(
    err: &aws_sdk_ecr::error::SdkError<E, R>,
    action: &'static str,
    repository: &str,
    other: impl FnOnce() -> AwsError,
) -> AwsError
where
    E: aws_sdk_ecr::error::ProvideErrorMetadata,
{
    let code = err
        .as_service_error()
        .and_then(|e| e.code())
        .unwrap_or_default();
    if matches!(code, "AccessDeniedException" | "AccessDenied") {
        let message = err
            .as_service_error()
            .and_then(|e| e.message())
            .unwrap_or_default();
        return AwsError::Denied {
            action,
            repository: repository.to_string(),
            message: message.to_string(),
        };
    }
    other()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_decodes_to_user_and_password() {
        // What moto returns for account 111122223333.
        let (user, pw) = decode_token("QVdTOjExMTEyMjIyMzMzMy1hdXRoLXRva2Vu").unwrap();
        assert_eq!(
            (user.as_str(), pw.as_str()),
            ("AWS", "111122223333-auth-token")
        );
    }

    #[test]
    fn the_password_keeps_everything_after_the_first_colon() {
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:a:b+/=");
        assert_eq!(decode_token(&token).unwrap().1, "a:b+/=");
    }

    #[test]
    fn malformed_tokens_are_errors() {
        for bad in ["not base64!", "QVdT", "OnB3"] {
            assert!(
                matches!(
                    decode_token(bad),
                    Err(AwsError::MalformedAuthorizationToken)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_login_is_reused_until_five_minutes_before_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(is_fresh(Some(now + Duration::from_secs(12 * 3600)), now));
        assert!(is_fresh(
            Some(now + REFRESH_BEFORE + Duration::from_secs(1)),
            now
        ));
        assert!(!is_fresh(Some(now + REFRESH_BEFORE), now));
        assert!(!is_fresh(Some(now + Duration::from_secs(60)), now));
        assert!(!is_fresh(Some(now - Duration::from_secs(60)), now));
        assert!(!is_fresh(None, now));
    }
}
