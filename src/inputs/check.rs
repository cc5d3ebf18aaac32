//! The grammars of input values: paths that stay in the workspace, docker tags, AWS regions and
//! role ARNs, registry hosts and repository paths, branch names, commit-message placeholders.

use std::path::{Component, Path, PathBuf};

use super::MESSAGE_PLACEHOLDERS;

/// Normalizes a workspace-relative path lexically; refuses absolute paths and `..` escapes.
pub(crate) fn confined_path(v: &str) -> Result<PathBuf, &'static str> {
    let path = Path::new(v);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => {
                return Err("must be relative to the workspace, not absolute");
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err("escapes the workspace through '..'");
                }
            }
            Component::Normal(n) => out.push(n),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    Ok(out)
}

pub(super) fn is_dns_label(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Docker's tag grammar: `[\w][\w.-]{0,127}`.
pub(crate) fn is_docker_tag(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_';
    s.len() <= 128 && s.starts_with(ok) && s.chars().all(|c| ok(c) || c == '.' || c == '-')
}

pub(super) fn is_aws_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

pub(super) fn is_role_arn(s: &str) -> bool {
    let mut it = s.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return false;
    };
    partition.starts_with("aws")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource.strip_prefix("role/").is_some_and(|r| {
            !r.is_empty()
                && r.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
        })
}

pub(super) fn check_registry_host(s: &str) -> Result<(), &'static str> {
    if s.contains("://") {
        return Err(
            "must be a host name without a scheme, e.g. 123456789012.dkr.ecr.ap-northeast-1.amazonaws.com",
        );
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
    {
        return Err("must be a host name with an optional :port and no path");
    }
    if let Some(p) = port
        && p.parse::<u16>().is_err()
    {
        return Err("has an invalid port");
    }
    Ok(())
}

/// The distribution spec's repository name grammar.
pub(super) fn is_repository_path(s: &str) -> bool {
    s.len() <= 255
        && s.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
        })
}

/// The subset of git's ref-name rules that matter for a branch given by hand.
pub(super) fn is_branch_name(s: &str) -> bool {
    let s = s.strip_prefix("refs/heads/").unwrap_or(s);
    !s.is_empty()
        && !s.starts_with(['/', '-', '.'])
        && !s.ends_with(['/', '.'])
        && !s.ends_with(".lock")
        && !s.contains("..")
        && !s.contains("//")
        && !s.contains("@{")
        && !s.chars().any(|c| c.is_control() || " ~^:?*[\\".contains(c))
}

pub(super) fn unknown_placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                if !MESSAGE_PLACEHOLDERS.contains(&name) {
                    out.push(name.to_string());
                }
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_tags_follow_dockers_grammar() {
        for ok in ["706798e8", "v1.2.3", "_x", "A-b.c"] {
            assert!(is_docker_tag(ok), "{ok}");
        }
        for bad in ["", ".v1", "-x", "a:b", "a/b", &"x".repeat(129)] {
            assert!(!is_docker_tag(bad), "{bad}");
        }
    }

    #[test]
    fn role_arns_are_checked() {
        assert!(is_role_arn("arn:aws:iam::123456789012:role/deploy"));
        assert!(is_role_arn(
            "arn:aws-cn:iam::123456789012:role/path/to/deploy"
        ));
        assert!(!is_role_arn("arn:aws:iam::12345:role/deploy"));
        assert!(!is_role_arn("arn:aws:iam::123456789012:user/deploy"));
    }

    #[test]
    fn registry_hosts_have_no_scheme_or_path() {
        assert!(check_registry_host("127.0.0.1:5000").is_ok());
        assert!(check_registry_host("123456789012.dkr.ecr.ap-northeast-1.amazonaws.com").is_ok());
        assert!(check_registry_host("https://x").is_err());
        assert!(check_registry_host("x/y").is_err());
        assert!(check_registry_host("x:99999").is_err());
    }

    #[test]
    fn branch_names_are_checked() {
        assert!(is_branch_name("main"));
        assert!(is_branch_name("release/v1"));
        for bad in ["", "a..b", "a b", "-x", "x.lock", "a:b", "x/"] {
            assert!(!is_branch_name(bad), "{bad}");
        }
    }
}
