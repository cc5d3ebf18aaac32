//! AWS credentials and ECR: GitHub OIDC → STS AssumeRoleWithWebIdentity (or the ambient
//! credential chain), then the ECR registry login and repository, all through aws-config, which
//! also honours `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`.

pub mod ecr;
pub mod oidc;
pub mod sts;

use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_sdk_ecr::config::{ProvideCredentials, SharedCredentialsProvider};
use secrecy::SecretString;

use crate::github::Runner;
use crate::inputs::{Aws, TagMutability};
use crate::report::Failure;

/// AWS credentials for this job: which account and region, and clients configured with them.
pub struct AwsSession {
    pub account_id: String,
    pub region: String,
    config: SdkConfig,
    ecr: aws_sdk_ecr::Client,
    login: tokio::sync::Mutex<Option<RegistryLogin>>,
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

/// Registry credentials: API credentials only, never written to a docker config.json.
#[derive(Debug, Clone)]
pub struct RegistryLogin {
    pub host: String,
    pub username: String,
    pub password: SecretString,
    pub expires_at: Option<SystemTime>,
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
        return Err(Failure::new("no AWS region is set")
            .hint("set the aws-region input (or AWS_REGION), e.g. aws-region: ap-northeast-1")
            .into());
    };

    let (config, account_id) = match &aws.role_to_assume {
        Some(role) => {
            let request = oidc_request.ok_or_else(oidc::missing_request)?;
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
async fn mask_ambient(config: &SdkConfig, runner: &Runner) -> anyhow::Result<()> {
    let none = || {
        Failure::new("no AWS credentials: role-to-assume is empty and the ambient credential chain found none").hint(
            "set role-to-assume to use GitHub OIDC, or provide credentials as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, \
             a profile (AWS_PROFILE) or an instance role",
        )
    };
    let provider = config.credentials_provider().ok_or_else(none)?;
    let creds = provider.provide_credentials().await.map_err(|e| {
        let mut f = none();
        f.message = format!(
            "{}: {}",
            f.message,
            aws_sdk_sts::error::DisplayErrorContext(&e)
        );
        f
    })?;
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
    pub async fn ecr_login(&self, runner: &Runner) -> anyhow::Result<RegistryLogin> {
        let mut cached = self.login.lock().await;
        if let Some(login) = cached.as_ref()
            && ecr::is_fresh(login.expires_at, SystemTime::now())
        {
            return Ok(login.clone());
        }
        let login = ecr::authorization(&self.ecr, &self.default_registry(), runner).await?;
        *cached = Some(login.clone());
        Ok(login)
    }

    /// Makes sure the ECR repository exists: created (scan on push) when `create` is set,
    /// otherwise a clear failure naming the repository, the region and `create-repository`.
    pub async fn ensure_repository(
        &self,
        repository: &str,
        create: bool,
        mutability: TagMutability,
    ) -> anyhow::Result<()> {
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

/// An AWS call that failed for a reason without a known remedy.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("STS AssumeRoleWithWebIdentity for {role} failed")]
    AssumeRole {
        role: String,
        #[source]
        cause: Cause,
    },
    #[error("STS GetCallerIdentity failed")]
    GetCallerIdentity(#[source] Cause),
    #[error("ECR GetAuthorizationToken failed")]
    GetAuthorizationToken(#[source] Cause),
    #[error("ECR returned an authorization token that is not base64 of `AWS:<password>`")]
    MalformedAuthorizationToken,
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

/// Full jitter: uniform in `[0, min(cap, base·2^retry))`, `u` uniform in `[0, 1)`.
pub(crate) fn full_jitter(retry: u32, base: Duration, cap: Duration, u: f64) -> Duration {
    let window = base
        .saturating_mul(2u32.saturating_pow(retry.min(30)))
        .min(cap);
    window.mul_f64(u.clamp(0.0, 1.0))
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
        assert!(crate::inputs::Registry::is_ecr_host(
            &session("123456789012", "cn-north-1").default_registry()
        ));
    }

    #[test]
    fn full_jitter_grows_to_the_cap() {
        let (base, cap) = (Duration::from_millis(50), Duration::from_secs(5));
        assert_eq!(full_jitter(0, base, cap, 0.0), Duration::ZERO);
        assert_eq!(full_jitter(0, base, cap, 0.5), Duration::from_millis(25));
        assert_eq!(full_jitter(3, base, cap, 0.5), Duration::from_millis(200));
        assert_eq!(full_jitter(40, base, cap, 0.5), Duration::from_millis(2500));
        assert!(full_jitter(10, base, cap, 0.999_999) < cap);
    }
}
