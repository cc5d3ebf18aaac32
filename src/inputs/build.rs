//! The build section of the inputs: the builder, the RUN network, the caches, the secrets.

use std::path::PathBuf;

use super::check::{confined_path, is_repository_path};
use super::parse::Problems;
use super::*;
use crate::registry::ImageRef;

/// `None` with `build: false`; every build input is checked either way.
pub(super) fn build(p: &mut Problems, raw: &Raw, repository: &str) -> Option<Build> {
    let enabled = p.boolean(raw, "build");
    let context = p.relative_path(raw, "context");
    let dockerfile = p.relative_path(raw, "dockerfile");
    let build_args = p.pairs(raw, "build-args");
    let labels = p.pairs(raw, "labels");
    let target = raw.get("target").map(str::to_string);
    if let Some(t) = &target
        && !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        p.add("target", format!("{t:?} is not a build stage name"));
    }
    let cache_from = cache_from(p, raw);
    let cache_to = match raw.get_or_default("cache-to") {
        "auto" => CacheTo::Auto,
        "none" => CacheTo::None,
        other => {
            p.add("cache-to", format!("{other:?} must be auto or none"));
            CacheTo::Auto
        }
    };
    let cache_repository = raw
        .get("cache-repository")
        .unwrap_or(repository)
        .to_string();
    if raw.get("cache-repository").is_some() && !is_repository_path(&cache_repository) {
        p.add("cache-repository", format!("{cache_repository:?} is not a registry path: lowercase components of [a-z0-9._-] joined by '/'"));
    }
    let builder = match raw.get_or_default("builder") {
        "auto" => BuilderChoice::Auto,
        "buildkit" => BuilderChoice::BuildKit,
        "classic" => BuilderChoice::Classic,
        other => {
            p.add(
                "builder",
                format!("{other:?} must be auto, buildkit or classic"),
            );
            BuilderChoice::Auto
        }
    };
    let network = match raw.get("network") {
        None => None,
        Some("default") => Some(Network::Default),
        Some("host") => Some(Network::Host),
        Some("none") => Some(Network::None),
        Some(other) => {
            p.add(
                "network",
                format!("{other:?} must be default, host or none"),
            );
            None
        }
    };
    let (secrets, secret_files) = build_secrets(p, raw);
    let skip_existing = p.boolean(raw, "skip-existing");
    let push = p.boolean(raw, "push");
    enabled.then_some(Build {
        context,
        dockerfile,
        build_args,
        labels,
        target,
        cache_from,
        cache_to,
        cache_repository,
        builder,
        network,
        secrets,
        secret_files,
        skip_existing,
        push,
    })
}

/// `secrets` (`id=value` per line, values kept exactly, never echoed in a message) and
/// `secret-files` (`id=path` per line, paths inside the workspace); an id is given once.
#[allow(clippy::type_complexity)]
fn build_secrets(
    p: &mut Problems,
    raw: &Raw,
) -> (Vec<(String, SecretString)>, Vec<(String, PathBuf)>) {
    let mut ids: Vec<String> = Vec::new();
    let mut id_ok = |p: &mut Problems, input: &str, line: usize, id: &str| -> bool {
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            p.add(
                input,
                format!("line {line}: the id before '=' must be 1 or more of [A-Za-z0-9._-]"),
            );
            return false;
        }
        if ids.iter().any(|i| i == id) {
            p.add(input, format!("line {line}: the id {id:?} is given twice"));
            return false;
        }
        ids.push(id.to_string());
        true
    };
    let text = |name: &str| raw.values.get(name).cloned().unwrap_or_default();
    let mut secrets = Vec::new();
    for (i, line) in text("secrets").lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        match line.split_once('=') {
            Some((id, value)) if id_ok(p, "secrets", i + 1, id.trim()) => {
                secrets.push((id.trim().to_string(), SecretString::from(value.to_string())));
            }
            Some(_) => {}
            None => p.add("secrets", format!("line {}: is not id=value", i + 1)),
        }
    }
    let mut files = Vec::new();
    for (i, line) in text("secret-files").lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once('=') {
            Some((id, path)) if id_ok(p, "secret-files", i + 1, id.trim()) => {
                match confined_path(path.trim()) {
                    Ok(path) => files.push((id.trim().to_string(), path)),
                    Err(why) => p.add("secret-files", format!("line {}: {path:?} {why}", i + 1)),
                }
            }
            Some(_) => {}
            None => p.add(
                "secret-files",
                format!("line {}: {line:?} is not id=path", i + 1),
            ),
        }
    }
    (secrets, files)
}

fn cache_from(p: &mut Problems, raw: &Raw) -> CacheFrom {
    match raw.get_or_default("cache-from") {
        "auto" => CacheFrom::Auto,
        "none" => CacheFrom::None,
        list => {
            let mut refs = Vec::new();
            for line in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
                match ImageRef::parse(line) {
                    Ok(r) => refs.push(r),
                    Err(e) => p.add(
                        "cache-from",
                        format!("{e}; give image references one per line, or auto, or none"),
                    ),
                }
            }
            CacheFrom::Images(refs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::tests::{base, parse};
    use super::*;

    #[test]
    fn build_args_are_key_value_lines() {
        let i = parse(base().with("build-args", "A=1\n\n B=x=y \n")).unwrap();
        assert_eq!(
            i.build.unwrap().build_args,
            [("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        let err = parse(base().with("build-args", "A=1\nnope")).unwrap_err();
        assert_eq!(err.0[0].message, "line 2: \"nope\" is not KEY=VALUE");
    }

    #[test]
    fn cache_from_takes_auto_none_or_refs() {
        assert_eq!(
            parse(base()).unwrap().build.unwrap().cache_from,
            CacheFrom::Auto
        );
        assert_eq!(
            parse(base().with("cache-from", "none"))
                .unwrap()
                .build
                .unwrap()
                .cache_from,
            CacheFrom::None
        );
        assert_eq!(
            parse(base().with("cache-from", "r/a:1\nr/b:2"))
                .unwrap()
                .build
                .unwrap()
                .cache_from,
            CacheFrom::Images(vec![
                ImageRef::parse("r/a:1").unwrap(),
                ImageRef::parse("r/b:2").unwrap()
            ])
        );
    }

    #[test]
    fn an_invalid_cache_from_reference_is_an_input_error_reported_with_the_others() {
        let err = parse(
            base()
                .with(
                    "cache-from",
                    "127.0.0.1:5000/nova/ok:1\n127.0.0.1:5000/Nova/svc::bad",
                )
                .with("dry-run", "maybe"),
        )
        .unwrap_err();
        let names: Vec<&str> = err.0.iter().map(|e| e.input.as_str()).collect();
        assert_eq!(names, ["dry-run", "cache-from"]);
        assert!(
            err.0[1]
                .message
                .starts_with("\"127.0.0.1:5000/Nova/svc::bad\" is not an image reference"),
            "{err}"
        );
    }

    #[test]
    fn builder_network_cache_to_and_cache_repository_take_their_values() {
        let b = parse(base()).unwrap().build.unwrap();
        assert_eq!(
            (
                b.builder,
                b.network,
                b.cache_to,
                b.cache_repository.as_str()
            ),
            (BuilderChoice::Auto, None, CacheTo::Auto, "auth-service")
        );
        let b = parse(
            base()
                .with("builder", "classic")
                .with("network", "host")
                .with("cache-to", "none")
                .with("cache-repository", "nova/cache"),
        )
        .unwrap()
        .build
        .unwrap();
        assert_eq!(
            (
                b.builder,
                b.network,
                b.cache_to,
                b.cache_repository.as_str()
            ),
            (
                BuilderChoice::Classic,
                Some(Network::Host),
                CacheTo::None,
                "nova/cache"
            )
        );
        let err = parse(
            base()
                .with("builder", "kaniko")
                .with("network", "bridge")
                .with("cache-to", "registry")
                .with("cache-repository", "Nova/Cache"),
        )
        .unwrap_err();
        let names: Vec<&str> = err.0.iter().map(|e| e.input.as_str()).collect();
        assert_eq!(
            names,
            ["cache-to", "cache-repository", "builder", "network"]
        );
    }

    #[test]
    fn secrets_keep_their_values_exactly_and_never_show_them_in_a_problem() {
        use secrecy::ExposeSecret;
        let b = parse(
            base()
                .with("secrets", "tok= s3 cr=t \n\nnpm=abc\r\n")
                .with("secret-files", "ssh=keys/id_rsa\n"),
        )
        .unwrap()
        .build
        .unwrap();
        let secrets: Vec<(&str, &str)> = b
            .secrets
            .iter()
            .map(|(id, v)| (id.as_str(), v.expose_secret()))
            .collect();
        assert_eq!(secrets, [("tok", " s3 cr=t "), ("npm", "abc")]);
        assert_eq!(
            b.secret_files,
            [("ssh".to_string(), PathBuf::from("keys/id_rsa"))]
        );
        let err = parse(
            base()
                .with("secrets", "hunter2\nbad id=x\ntok=1")
                .with("secret-files", "tok=a\nf=/etc/shadow"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        let names: Vec<&str> = err.0.iter().map(|e| e.input.as_str()).collect();
        assert_eq!(
            names,
            ["secrets", "secrets", "secret-files", "secret-files"]
        );
        assert!(text.contains("the id \"tok\" is given twice"), "{text}");
    }
}
