//! STS: AssumeRoleWithWebIdentity with the GitHub OIDC token (throttling retried with full
//! jitter, as configure-aws-credentials does), the diagnosis when the role's trust policy refuses
//! the token, and GetCallerIdentity for ambient credentials.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_sts::config::interceptors::InterceptorContext;
use aws_sdk_sts::config::retry::{ClassifyRetry, RetryAction, RetryConfig};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError;
use secrecy::{ExposeSecret, SecretString};

use super::oidc::Claims;
use super::{AwsError, Cause};
use crate::github::Runner;
use crate::inputs::Aws;

/// configure-aws-credentials retries up to 12 times from a 50 ms base; we do the same, with each
/// wait capped so an unreachable endpoint fails in seconds rather than minutes.
const ATTEMPTS: u32 = 12;
const BACKOFF_BASE: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Temporary credentials for the assumed role, secrets kept in `secrecy` types.
#[derive(Debug, Clone)]
pub struct RoleCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: SecretString,
    pub expiration: Option<SystemTime>,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`
    pub assumed_role_arn: String,
}

impl RoleCredentials {
    /// The form the SDK clients take.
    pub(crate) fn sdk(&self) -> aws_sdk_sts::config::Credentials {
        aws_sdk_sts::config::Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.expose_secret().to_string(),
            Some(self.session_token.expose_secret().to_string()),
            self.expiration,
            "GitHubOidc",
        )
    }
}

/// Exchanges the OIDC token for role credentials and masks them at once.
pub async fn assume_role(
    base: &SdkConfig,
    aws: &Aws,
    role: &str,
    token: &SecretString,
    runner: &Runner,
) -> Result<RoleCredentials, AwsError> {
    // The SDK's standard retry already treats throttling, IDPCommunicationError, 5xx and
    // transport failures as transient; `ServerHiccups` adds the codes STS sends with a 400.
    let conf = aws_sdk_sts::config::Builder::from(base)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(ATTEMPTS)
                .with_initial_backoff(BACKOFF_BASE)
                .with_max_backoff(BACKOFF_CAP),
        )
        .retry_classifier(ServerHiccups)
        .build();
    let client = aws_sdk_sts::Client::from_conf(conf);
    let out = client
        .assume_role_with_web_identity()
        .role_arn(role)
        .role_session_name(&aws.role_session_name)
        .duration_seconds(aws.role_duration_seconds as i32)
        .web_identity_token(token.expose_secret())
        .send()
        .await
        .map_err(|e| refused(e, aws, role, token))?;
    let Some(c) = out.credentials() else {
        return Err(AwsError::AssumeRole {
            role: role.to_string(),
            cause: Cause("the answer carries no credentials".into()),
        });
    };
    // Mask first: nothing may log these before the runner knows them.
    runner.mask(c.access_key_id());
    runner.mask(c.secret_access_key());
    runner.mask(c.session_token());
    Ok(RoleCredentials {
        access_key_id: c.access_key_id().to_string(),
        secret_access_key: SecretString::from(c.secret_access_key().to_string()),
        session_token: SecretString::from(c.session_token().to_string()),
        expiration: SystemTime::try_from(*c.expiration()).ok(),
        assumed_role_arn: out
            .assumed_role_user()
            .map(|u| u.arn().to_string())
            .unwrap_or_default(),
    })
}

/// STS error codes the SDK's own classifiers do not retry, but that say "try again".
#[derive(Debug)]
struct ServerHiccups;

impl ClassifyRetry for ServerHiccups {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let code = match ctx.output_or_error() {
            Some(Err(e)) => e
                .as_operation_error()
                .and_then(|e| e.downcast_ref::<AssumeRoleWithWebIdentityError>())
                .and_then(|e| e.code()),
            _ => None,
        };
        match code {
            Some(c) if is_transient_code(c) => RetryAction::server_error(),
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "StsServerHiccups"
    }
}

/// Error codes worth another try.
pub(crate) fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "IDPCommunicationError"
            | "ServiceUnavailable"
            | "InternalFailure"
            | "InternalError"
    )
}

/// The error to show for a final refusal: a diagnosis for the known causes.
fn refused<R>(
    err: SdkError<AssumeRoleWithWebIdentityError, R>,
    aws: &Aws,
    role: &str,
    token: &SecretString,
) -> AwsError
where
    R: std::fmt::Debug,
{
    let code = err.code().unwrap_or_default().to_string();
    let message = err.message().unwrap_or_default().to_string();
    let claims = Claims::decode(token.expose_secret())
        .unwrap_or_default()
        .describe();
    let role = role.to_string();
    match code.as_str() {
        "AccessDenied" => AwsError::AccessDenied {
            role,
            message,
            claims,
            audience: aws.audience.clone(),
        },
        "InvalidIdentityToken" => AwsError::InvalidIdentityToken {
            role,
            message,
            claims,
            audience: aws.audience.clone(),
        },
        "ValidationError"
            if message.contains("DurationSeconds") || message.contains("duration") =>
        {
            AwsError::DurationRefused {
                role,
                seconds: aws.role_duration_seconds,
                message,
            }
        }
        _ => AwsError::AssumeRole {
            role,
            cause: Cause::of(&err),
        },
    }
}

/// The account of the ambient credentials.
pub(crate) async fn caller_account(config: &SdkConfig) -> Result<String, AwsError> {
    let out = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::GetCallerIdentity(Cause::of(&e)))?;
    Ok(out
        .account()
        .map(str::to_string)
        .or_else(|| out.arn().and_then(account_of_arn))
        .unwrap_or_default())
}

/// The account field of an ARN: `arn:aws:sts::123456789012:assumed-role/r/s` → `123456789012`.
pub(crate) fn account_of_arn(arn: &str) -> Option<String> {
    let account = arn.split(':').nth(4)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .then(|| account.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_comes_from_the_assumed_role_arn() {
        assert_eq!(
            account_of_arn("arn:aws:sts::111122223333:assumed-role/deploy/GitHubActions")
                .as_deref(),
            Some("111122223333")
        );
        assert_eq!(
            account_of_arn("arn:aws-cn:iam::123456789012:role/x").as_deref(),
            Some("123456789012")
        );
        assert_eq!(account_of_arn("arn:aws:s3:::bucket"), None);
        assert_eq!(account_of_arn("nonsense"), None);
    }

    #[test]
    fn throttling_and_idp_hiccups_are_transient_but_denials_are_not() {
        for code in ["Throttling", "IDPCommunicationError", "ServiceUnavailable"] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in [
            "AccessDenied",
            "InvalidIdentityToken",
            "ExpiredTokenException",
            "ValidationError",
        ] {
            assert!(!is_transient_code(code), "{code}");
        }
    }

    #[test]
    fn access_denied_shows_the_claims_against_the_trust_policy() {
        let claims = Claims {
            sub: Some("repo:nova/monorepo:environment:staging".into()),
            aud: Some("sts.amazonaws.com".into()),
            repository: Some("nova/monorepo".into()),
        };
        let err = AwsError::AccessDenied {
            role: "arn:aws:iam::123456789012:role/deploy".into(),
            message: "Not authorized to perform sts:AssumeRoleWithWebIdentity".into(),
            claims: claims.describe(),
            audience: "sts.amazonaws.com".into(),
        };
        insta::assert_snapshot!(crate::failure::Failure::of(&err.into()).text());
    }
}
