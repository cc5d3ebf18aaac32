//! Stage 1: where the image goes (`registry/repository:tag`) and the credentials for that
//! registry, with AWS (OIDC → STS → ECR) asked only when a later stage needs it.

use anyhow::Result;

use crate::aws::{self, AwsSession};
use crate::github::Runner;
use crate::inputs::{Inputs, Registry};
use crate::registry::{self, Credentials, ImageRef};

/// The first stage's value.
#[derive(Debug)]
pub(crate) struct Target {
    /// `registry/repository:tag`.
    pub image: ImageRef,
    /// For the registry of `image`, when a stage talks to it.
    pub credentials: Option<Credentials>,
    /// When AWS credentials were needed.
    pub aws: Option<AwsSession>,
}

pub(super) async fn resolve(inputs: &Inputs, runner: &Runner) -> Result<Target> {
    let aws = match needs_aws(inputs) {
        true => Some(aws::session(&inputs.aws, runner).await?),
        false => None,
    };
    let host = match (&inputs.registry, &aws) {
        (Registry::Host(h), _) => h.clone(),
        (Registry::EcrDefault, Some(a)) => a.default_registry(),
        (Registry::EcrDefault, None) => unreachable!("needs_aws holds for the default registry"),
    };
    let credentials = match (&inputs.registry_login, &aws) {
        (Some(login), _) => Some(login.clone()),
        (None, Some(a)) if needs_registry(inputs) => Some(a.ecr_login(runner).await?),
        _ => None,
    };
    Ok(Target {
        image: ImageRef::tagged(&host, &inputs.repository, &inputs.tag),
        credentials,
        aws,
    })
}

/// AWS is needed for the default (ECR) registry's name, and for ECR credentials when the
/// registry is talked to without an explicit username.
fn needs_aws(inputs: &Inputs) -> bool {
    match &inputs.registry {
        Registry::EcrDefault => true,
        Registry::Host(h) => {
            needs_registry(inputs)
                && inputs.registry_login.is_none()
                && (registry::is_ecr_host(h) || inputs.aws.role_to_assume.is_some())
        }
    }
}

/// The registry is talked to when an image is built, or when a promotion pins its digest.
fn needs_registry(inputs: &Inputs) -> bool {
    inputs.build.is_some() || inputs.set_image.as_ref().is_some_and(|s| s.pin_digest)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::inputs::Raw;

    const ECR: &str = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com";
    const ROLE: &str = "arn:aws:iam::123456789012:role/deploy";

    /// (registry, build, pin-digest, username, role) → (needs registry, needs AWS).
    #[test]
    fn aws_is_asked_only_when_a_stage_needs_it() {
        let cases: [(&str, &str, &str, &str, &str, bool, bool); 10] = [
            ("", "true", "false", "", "", true, true),
            ("", "false", "false", "", "", false, true),
            (ECR, "true", "false", "", "", true, true),
            (ECR, "false", "false", "", "", false, false),
            (ECR, "false", "true", "", "", true, true),
            (ECR, "true", "false", "ci", "", true, false),
            ("127.0.0.1:5000", "true", "false", "", "", true, false),
            ("127.0.0.1:5000", "true", "false", "", ROLE, true, true),
            ("127.0.0.1:5000", "false", "false", "", ROLE, false, false),
            ("127.0.0.1:5000", "true", "false", "ci", ROLE, true, false),
        ];
        for (registry, build, pin, user, role, registry_needed, aws_needed) in cases {
            let mut raw = Raw::default()
                .with("service", "auth-service")
                .with("tag", "v1")
                .with("registry", registry)
                .with("build", build)
                .with("pin-digest", pin)
                .with("role-to-assume", role);
            if !user.is_empty() {
                raw = raw
                    .with("registry-username", user)
                    .with("registry-password", "p");
            }
            let inputs = Inputs::parse(&raw, Path::new("/ws")).unwrap();
            let case = format!(
                "registry={registry:?} build={build} pin={pin} user={user:?} role={role:?}"
            );
            assert_eq!(needs_registry(&inputs), registry_needed, "{case}");
            assert_eq!(needs_aws(&inputs), aws_needed, "{case}");
        }
    }
}
