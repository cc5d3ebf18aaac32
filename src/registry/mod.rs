//! What a registry is to us: image references ([`ImageRef`]), the credentials for a registry
//! ([`Credentials`]), which hosts are ECR or this machine, and the registry API's answer to
//! "does this tag exist, and under which digest" ([`existing_digest`]).
//!
//! `docker/` only talks to the daemon and `aws::ecr` only produces [`Credentials`]; both take
//! their image references from here.

mod lookup;
mod reference;

use secrecy::SecretString;

pub use lookup::{RegistryError, existing_digest};
pub use reference::{ImageRef, ReferenceError};

/// A registry login: API credentials only, never written to a docker `config.json`.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: SecretString,
}

/// Whether `host` is this machine, where registries speak plain HTTP (as dockerd assumes).
pub(crate) fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    name == "localhost" || name == "::1" || name.starts_with("127.")
}

/// Whether `host` is an ECR registry, whose credentials come from GetAuthorizationToken.
pub(crate) fn is_ecr_host(host: &str) -> bool {
    let h = host.split(':').next().unwrap_or(host);
    h.contains(".dkr.ecr.") && (h.ends_with(".amazonaws.com") || h.ends_with(".amazonaws.com.cn"))
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
    fn ecr_hosts_are_recognised() {
        assert!(is_ecr_host(
            "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com"
        ));
        assert!(is_ecr_host(
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn:443"
        ));
        assert!(!is_ecr_host("127.0.0.1:5000"));
        assert!(!is_ecr_host("dkr.ecr.example.com"));
    }

    #[test]
    fn credentials_do_not_leak_through_debug() {
        let c = Credentials {
            username: "ci".into(),
            password: SecretString::from("s3cret"),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
