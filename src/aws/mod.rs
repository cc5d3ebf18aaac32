//! AWS credentials and ECR: GitHub OIDC → STS AssumeRoleWithWebIdentity (or the ambient
//! credential chain), then the ECR registry login and repository, all through aws-config, which
//! also honours `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`.

pub mod ecr;
pub mod oidc;
pub mod sts;

use std::time::SystemTime;

use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_sdk_ecr::config::{ProvideCredentials, SharedCredentialsProvider};

use crate::failure::Hint;
use crate::github::Runner;
use crate::inputs::{Aws, TagMutability};
use crate::registry::Credentials;

/// AWS credentials for this job: which account and region, and clients configured with them.
pub struct AwsSession {
    pub account_id: String,
    pub region: String,
    config: SdkConfig,
    ecr: aws_sdk_ecr::Client,
    login: tokio::sync::Mutex<Option<ecr::Login>>,
}

/// The SDK's own Debug would print the access key id and much else; show what identifies us.
impl std::fmt::Debug for AwsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSession")
            .field("account_id", &self.account_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Gets credentials: with `role-to-assume`, a GitHub OIDC token exchanged through
/// AssumeRoleWithWebIdentity; without it, the ambient chain (env, profile, instance role).
pub async fn session(aws: &Aws, runner: &Runner) -> anyhow::Result<AwsSession> {
    session_with(
        aws,
        runner,
        oidc::TokenRequest::from_env(),
        aws_config::defaults(BehaviorVersion::latest()),
    )
    .await
}

/// [`session`] with the process environment's parts given explicitly: the runner's OIDC token
/// request (`None` when it granted none) and the aws-config loader. Tests use it to run many
/// sessions in one process against different endpoints.
pub async fn session_with(
    aws: &Aws,
    runner: &Runner,
    oidc_request: Option<oidc::TokenRequest>,
    loader: ConfigLoader,
) -> anyhow::Result<AwsSession> {
    let loader = match &aws.region {
        Some(r) => loader.region(Region::new(r.clone())),
        None => loader,
    };
    let base = loader.load().await;
    let Some(region) = base.region().map(|r| r.to_string()) else {
        return Err(AwsError::NoRegion.into());
    };

    let (config, account_id) = match &aws.role_to_assume {
        Some(role) => {
            let request = oidc_request.ok_or(oidc::OidcError::NotGranted)?;
            let token = oidc::fetch_token(&request, &aws.audience, runner).await?;
            let creds = sts::assume_role(&base, aws, role, &token, runner).await?;
            let account = sts::account_of_arn(&creds.assumed_role_arn)
                .or_else(|| sts::account_of_arn(role))
                .unwrap_or_default();
            let config = base
                .to_builder()
                .credentials_provider(SharedCredentialsProvider::new(creds.sdk()))
                .build();
            (config, account)
        }
        None => {
            mask_ambient(&base, runner).await?;
            let account = sts::caller_account(&base).await?;
            (base, account)
        }
    };
    let ecr = aws_sdk_ecr::Client::new(&config);
    Ok(AwsSession {
        account_id,
        region,
        config,
        ecr,
        login: tokio::sync::Mutex::new(None),
    })
}

/// Resolves the ambient credentials once, to fail clearly when there are none and to mask them.
async fn mask_ambient(config: &SdkConfig, runner: &Runner) -> Result<(), AwsError> {
    let none = |why: String| AwsError::NoCredentials(Cause(why));
    let provider = config
        .credentials_provider()
        .ok_or_else(|| none("no credentials provider is configured".into()))?;
    let creds = provider
        .provide_credentials()
        .await
        .map_err(|e| none(aws_sdk_sts::error::DisplayErrorContext(&e).to_string()))?;
    runner.mask(creds.access_key_id());
    runner.mask(creds.secret_access_key());
    if let Some(t) = creds.session_token() {
        runner.mask(t);
    }
    Ok(())
}

impl AwsSession {
    /// `<account>.dkr.ecr.<region>.amazonaws.com` (`.com.cn` in the China regions).
    pub fn default_registry(&self) -> String {
        let suffix = if self.region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("{}.dkr.ecr.{}.{suffix}", self.account_id, self.region)
    }

    /// The SDK configuration with this session's credentials, for any further client.
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.config
    }

    /// The ECR registry login, masked; a cached one is reused until 5 minutes before it expires.
    pub async fn ecr_login(&self, runner: &Runner) -> Result<Credentials, AwsError> {
        let mut cached = self.login.lock().await;
        if let Some(login) = cached.as_ref()
            && ecr::is_fresh(login.expires_at, SystemTime::now())
        {
            return Ok(login.credentials.clone());
        }
        let login = ecr::authorization(&self.ecr, runner).await?;
        let credentials = login.credentials.clone();
        *cached = Some(login);
        Ok(credentials)
    }

    /// Makes sure the ECR repository exists: created (scan on push) when `create` is set,
    /// otherwise a clear failure naming the repository, the region and `create-repository`.
    pub async fn ensure_repository(
        &self,
        repository: &str,
        create: bool,
        mutability: TagMutability,
    ) -> Result<(), AwsError> {
        ecr::ensure_repository(
            &self.ecr,
            &self.default_registry(),
            &self.region,
            repository,
            create,
            mutability,
        )
        .await
    }
}

/// An AWS step that failed.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("no AWS region is set")]
    NoRegion,
    #[error(
        "no AWS credentials: role-to-assume is empty and the ambient credential chain found none"
    )]
    NoCredentials(#[source] Cause),
    #[error("STS AssumeRoleWithWebIdentity for {role} failed")]
    AssumeRole {
        role: String,
        #[source]
        cause: Cause,
    },
    #[error("STS denied AssumeRoleWithWebIdentity for {role}{}", detail(message))]
    AccessDenied {
        role: String,
        message: String,
        /// The token's claims, described (never the token).
        claims: String,
        audience: String,
    },
    #[error("STS rejected the GitHub OIDC token for {role}: {message}")]
    InvalidIdentityToken {
        role: String,
        message: String,
        claims: String,
        audience: String,
    },
    #[error("STS refused role-duration-seconds {seconds} for {role}: {message}")]
    DurationRefused {
        role: String,
        seconds: u32,
        message: String,
    },
    #[error("STS GetCallerIdentity failed")]
    GetCallerIdentity(#[source] Cause),
    #[error("ECR GetAuthorizationToken failed")]
    GetAuthorizationToken(#[source] Cause),
    #[error("ECR returned an authorization token that is not base64 of `AWS:<password>`")]
    MalformedAuthorizationToken,
    #[error("ECR repository {repository} does not exist in {registry} (region {region})")]
    RepositoryMissing {
        repository: String,
        registry: String,
        region: String,
    },
    #[error("ECR denied {action} on {repository}: {message}")]
    Denied {
        action: &'static str,
        repository: String,
        message: String,
    },
    #[error("ECR DescribeRepositories for {repository} failed")]
    DescribeRepositories {
        repository: String,
        #[source]
        cause: Cause,
    },
    #[error("ECR CreateRepository for {repository} failed")]
    CreateRepository {
        repository: String,
        #[source]
        cause: Cause,
    },
}

/// `: message`, or nothing.
fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

impl Hint for AwsError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            AwsError::NoRegion => {
                "set the aws-region input (or AWS_REGION), e.g. aws-region: ap-northeast-1".into()
            }
            AwsError::NoCredentials(_) => "set role-to-assume to use GitHub OIDC, or provide credentials as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, \
                 a profile (AWS_PROFILE) or an instance role"
                .into(),
            AwsError::AccessDenied {
                claims, audience, ..
            } => format!(
                "the role's trust policy does not accept this job's token ({claims}). \
                 Its `token.actions.githubusercontent.com:sub` condition must match that sub (the org and repository names are case-sensitive, \
                 and a job with `environment:` has sub `repo:ORG/REPO:environment:NAME` instead of `repo:ORG/REPO:ref:refs/heads/BRANCH`), \
                 and `token.actions.githubusercontent.com:aud` must be {audience:?} (the `audience` input)"
            ),
            AwsError::InvalidIdentityToken {
                claims, audience, ..
            } => format!(
                "the role's account needs an IAM OIDC identity provider for https://token.actions.githubusercontent.com \
                 whose audience list includes {audience:?} (the `audience` input); the token has {claims}"
            ),
            AwsError::DurationRefused { .. } => "role-duration-seconds may not exceed the role's maximum session duration (1 hour unless raised on the role)".into(),
            AwsError::RepositoryMissing { .. } => "create it, or set the input `create-repository: true` to have the action create it (with scan on push)".into(),
            AwsError::Denied {
                action, repository, ..
            } => format!(
                "the role's permissions policy must allow {action} on arn:aws:ecr:<region>:<account>:repository/{repository}"
            ),
            _ => return None,
        })
    }
}

/// What AWS answered, in one line: its error code and message, or the transport failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Cause(pub String);

impl Cause {
    pub fn of<E, R>(err: &aws_sdk_sts::error::SdkError<E, R>) -> Cause
    where
        E: aws_sdk_sts::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        match err.as_service_error() {
            Some(e) => match (e.code(), e.message()) {
                (Some(code), Some(message)) => Cause(format!("{code}: {message}")),
                (Some(code), None) => Cause(code.to_string()),
                _ => Cause(aws_sdk_sts::error::DisplayErrorContext(err).to_string()),
            },
            None => Cause(aws_sdk_sts::error::DisplayErrorContext(err).to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(account: &str, region: &str) -> AwsSession {
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build();
        AwsSession {
            account_id: account.into(),
            region: region.into(),
            ecr: aws_sdk_ecr::Client::new(&config),
            config,
            login: tokio::sync::Mutex::new(None),
        }
    }

    #[test]
    fn the_default_registry_is_the_accounts_ecr_in_the_region() {
        assert_eq!(
            session("123456789012", "ap-northeast-1").default_registry(),
            "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com"
        );
        assert_eq!(
            session("123456789012", "cn-north-1").default_registry(),
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"
        );
        assert!(crate::registry::is_ecr_host(
            &session("123456789012", "cn-north-1").default_registry()
        ));
    }
}
