//! `kustomize edit set image` arguments: `name=newName:tag@digest` and its shorter forms.
//!
//! This follows kustomize v5.5's `parse`/`image.Split`: the part after the first `=` (or the
//! whole argument when there is none) is split at the first `@` or `:` *after the first `/`*,
//! so `localhost:5000/app:v1` is the name `localhost:5000/app` with the tag `v1`. The spec
//! replaces the whole entry, so a part the spec does not mention is cleared; `*` keeps the
//! file's value.

use crate::failure::Hint;

/// One field of a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// Not given: the entry must not have this field (kustomize rewrites the entry without it).
    Absent,
    /// `*`: keep the file's value (or leave the field out of a new entry).
    Keep,
    /// Set to this value.
    Set(String),
}

impl Field {
    /// The value this field leaves in the file, given what the file has now.
    pub(crate) fn resolve(&self, existing: Option<&str>) -> Option<String> {
        match self {
            Field::Absent => None,
            Field::Keep => existing.map(str::to_string),
            Field::Set(v) => Some(v.clone()),
        }
    }

    fn from_part(part: &str) -> Field {
        if part == "*" {
            Field::Keep
        } else {
            Field::Set(part.to_string())
        }
    }
}

/// What one `set image` argument asks for the entry named `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// The `images[].name` to match: the image name the base manifests use.
    pub name: String,
    pub new_name: Field,
    pub new_tag: Field,
    pub digest: Field,
}

/// An argument that is not a `kustomize edit set image` spec. The message names the argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Neither `=`, nor `:` or `@` after the first `/`: nothing to set.
    #[error(
        "invalid image spec {arg:?}: expected one of name=newName, name=newName:tag, name=newName@digest, \
         name=newName:tag@digest, name:tag, name@digest, name:tag@digest"
    )]
    NothingToSet { arg: String },
    /// A part is empty, e.g. `app:` or `=new` (usually an unset variable).
    #[error("invalid image spec {arg:?}: the {part} is empty")]
    EmptyPart { arg: String, part: &'static str },
    /// Whitespace or a control character: no image reference contains one.
    #[error("invalid image spec {arg:?}: the {part} contains whitespace or a control character")]
    BadCharacter { arg: String, part: &'static str },
}

impl SpecError {
    /// The argument that was refused.
    pub fn arg(&self) -> &str {
        match self {
            SpecError::NothingToSet { arg }
            | SpecError::EmptyPart { arg, .. }
            | SpecError::BadCharacter { arg, .. } => arg,
        }
    }
}

/// Every refused argument of one `set-image` command, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct SpecErrors(pub Vec<SpecError>);

impl Hint for SpecErrors {
    fn hint(&self) -> Option<String> {
        Some(
            if self
                .0
                .iter()
                .any(|e| matches!(e, SpecError::EmptyPart { .. }))
            {
                "is the variable that should fill it unset?"
            } else {
                "SPEC is name=newName:tag@digest, name:tag or name@digest"
            }
            .into(),
        )
    }
}

/// Parses every argument, collecting all the refusals.
pub fn parse_specs(args: &[String]) -> Result<Vec<ImageSpec>, SpecErrors> {
    let (ok, bad): (Vec<_>, Vec<_>) = args.iter().map(|a| parse_spec(a)).partition(Result::is_ok);
    if bad.is_empty() {
        Ok(ok.into_iter().flatten().collect())
    } else {
        Err(SpecErrors(
            bad.into_iter().filter_map(Result::err).collect(),
        ))
    }
}

/// Parses one argument of `kustomize edit set image`.
///
/// Deliberate strictness beyond kustomize (which would accept these and clear or corrupt the
/// entry): empty parts (`app:`, `app=`, `=new`, `app@`) and whitespace or control characters
/// are refused.
pub fn parse_spec(arg: &str) -> Result<ImageSpec, SpecError> {
    let (key, value) = match arg.split_once('=') {
        Some((k, v)) => (Some(k), v),
        None => (None, arg),
    };
    let (name, tag, digest) = split_image(value);
    if key.is_none() && tag.is_none() && digest.is_none() {
        return Err(SpecError::NothingToSet {
            arg: arg.to_string(),
        });
    }
    let check = |part: &'static str, text: &str| -> Result<(), SpecError> {
        if text.is_empty() {
            return Err(SpecError::EmptyPart {
                arg: arg.to_string(),
                part,
            });
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SpecError::BadCharacter {
                arg: arg.to_string(),
                part,
            });
        }
        Ok(())
    };
    let spec_name = match key {
        Some(k) => {
            check("image name", k)?;
            check("new name", name)?;
            k
        }
        None => {
            check("image name", name)?;
            name
        }
    };
    if let Some(t) = tag {
        check("tag", t)?;
    }
    if let Some(d) = digest {
        check("digest", d)?;
    }
    Ok(ImageSpec {
        name: spec_name.to_string(),
        new_name: if key.is_some() {
            Field::from_part(name)
        } else {
            Field::Absent
        },
        new_tag: tag.map_or(Field::Absent, Field::from_part),
        digest: digest.map_or(Field::Absent, Field::from_part),
    })
}

/// kustomize's `image.Split`: name, tag and digest, where `:` and `@` count only from the
/// first `/` on (a `/` at index 0 does not count).
fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let from = match image.find('/') {
        Some(i) if i > 0 => i,
        _ => 0,
    };
    let at = image[from..].find('@').map(|i| i + from);
    let colon = image[from..].find(':').map(|i| i + from);
    match (colon, at) {
        (None, None) => (image, None, None),
        // A digest, with no tag before it (a `:` after the `@` belongs to the digest).
        (Some(c), Some(a)) if c < a => (&image[..c], Some(&image[c + 1..a]), Some(&image[a + 1..])),
        (_, Some(a)) => (&image[..a], None, Some(&image[a + 1..])),
        (Some(c), None) => (&image[..c], Some(&image[c + 1..]), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:24a0c4b4a4c0eb97a1aabb8e29f18e917d05abfe1b7a7c07857230879ce7d3d3";

    fn set(v: &str) -> Field {
        Field::Set(v.to_string())
    }

    fn spec(name: &str, new_name: Field, new_tag: Field, digest: Field) -> ImageSpec {
        ImageSpec {
            name: name.to_string(),
            new_name,
            new_tag,
            digest,
        }
    }

    /// (sentence, argument, expected spec)
    fn accepted() -> Vec<(&'static str, String, ImageSpec)> {
        use Field::{Absent, Keep};
        vec![
            (
                "a new name and a tag",
                "app=reg/app:v1".into(),
                spec("app", set("reg/app"), set("v1"), Absent),
            ),
            (
                "a new name and a digest",
                format!("app=reg/app@{DIGEST}"),
                spec("app", set("reg/app"), Absent, set(DIGEST)),
            ),
            (
                "a new name, a tag and a digest",
                format!("app=reg/app:v1@{DIGEST}"),
                spec("app", set("reg/app"), set("v1"), set(DIGEST)),
            ),
            (
                "only a new name",
                "app=reg/app".into(),
                spec("app", set("reg/app"), Absent, Absent),
            ),
            (
                "only a tag",
                "app:v1".into(),
                spec("app", Absent, set("v1"), Absent),
            ),
            (
                "only a digest",
                format!("app@{DIGEST}"),
                spec("app", Absent, Absent, set(DIGEST)),
            ),
            (
                "a tag and a digest",
                format!("app:v1@{DIGEST}"),
                spec("app", Absent, set("v1"), set(DIGEST)),
            ),
            (
                "a registry port is not a tag",
                "app=localhost:5000/nova/app:v1".into(),
                spec("app", set("localhost:5000/nova/app"), set("v1"), Absent),
            ),
            (
                "a registry port in the name is not a tag",
                "localhost:5000/app:v1".into(),
                spec("localhost:5000/app", Absent, set("v1"), Absent),
            ),
            (
                "a registry port with a digest",
                format!("localhost:5000/app@{DIGEST}"),
                spec("localhost:5000/app", Absent, Absent, set(DIGEST)),
            ),
            (
                "a star keeps the new name",
                "app=*:v2".into(),
                spec("app", Keep, set("v2"), Absent),
            ),
            (
                "a star keeps the tag",
                format!("app=reg/app:*@{DIGEST}"),
                spec("app", set("reg/app"), Keep, set(DIGEST)),
            ),
            (
                "a star keeps the digest",
                "app:v1@*".into(),
                spec("app", Absent, set("v1"), Keep),
            ),
            (
                "stars keep everything",
                "app=*:*@*".into(),
                spec("app", Keep, Keep, Keep),
            ),
            (
                "a star alone keeps the new name",
                "app=*".into(),
                spec("app", Keep, Absent, Absent),
            ),
            (
                "everything after the first equals sign is the new image",
                "app=reg/a=b:v1".into(),
                spec("app", set("reg/a=b"), set("v1"), Absent),
            ),
            (
                "a sha tag that looks like a float stays text",
                "app:706798e8".into(),
                spec("app", Absent, set("706798e8"), Absent),
            ),
            (
                "the name may hold a registry path",
                "123.dkr.ecr.eu-west-1.amazonaws.com/nova/auth-service:0123".into(),
                spec(
                    "123.dkr.ecr.eu-west-1.amazonaws.com/nova/auth-service",
                    Absent,
                    set("0123"),
                    Absent,
                ),
            ),
        ]
    }

    #[test]
    fn every_form_of_kustomize_edit_set_image_parses() {
        for (sentence, arg, want) in accepted() {
            assert_eq!(parse_spec(&arg), Ok(want), "{sentence}: {arg}");
        }
    }

    /// (sentence, argument, message fragment)
    const REFUSED: &[(&str, &str, &str)] = &[
        ("a bare name sets nothing", "app", "expected one of"),
        (
            "a registry path with no tag or digest sets nothing",
            "localhost:5000/app",
            "expected one of",
        ),
        ("an empty argument sets nothing", "", "expected one of"),
        ("an empty tag is refused", "app:", "the tag is empty"),
        (
            "an empty new name is refused",
            "app=",
            "the new name is empty",
        ),
        (
            "an empty image name is refused",
            "=reg/app:v1",
            "the image name is empty",
        ),
        ("an empty digest is refused", "app@", "the digest is empty"),
        (
            "an empty tag before a digest is refused",
            "app:@sha256:00",
            "the tag is empty",
        ),
        (
            "whitespace in a tag is refused",
            "app:v 1",
            "contains whitespace",
        ),
        (
            "a newline in a name is refused",
            "app=reg/\napp",
            "contains whitespace",
        ),
    ];

    #[test]
    fn malformed_specs_are_refused_and_named() {
        for (sentence, arg, fragment) in REFUSED {
            let err = parse_spec(arg).expect_err(sentence);
            let text = err.to_string();
            assert!(text.contains(fragment), "{sentence}: {text}");
            assert!(
                text.contains(&format!("{arg:?}")),
                "{sentence}: the message names the argument: {text}"
            );
            assert_eq!(err.arg(), *arg);
        }
    }

    #[test]
    fn the_error_for_an_unset_variable_has_a_hint() {
        let err = parse_specs(&["a=r/a:v1".into(), "auth-service:".into()]).unwrap_err();
        let f = crate::failure::Failure::of(&err.into());
        insta::assert_snapshot!(f.text(), @r#"
        invalid image spec "auth-service:": the tag is empty
        hint: is the variable that should fill it unset?
        "#);
    }

    #[test]
    fn every_refused_argument_is_reported_with_the_general_hint() {
        let err = parse_specs(&["nothing".into(), "a b:v1".into()]).unwrap_err();
        assert_eq!(err.0.len(), 2);
        assert!(err.hint().unwrap().starts_with("SPEC is"));
        assert_eq!(parse_specs(&["a:v1".into()]).unwrap().len(), 1);
    }

    #[test]
    fn keep_resolves_to_the_files_value_and_absent_clears_it() {
        assert_eq!(Field::Keep.resolve(Some("v1")), Some("v1".to_string()));
        assert_eq!(Field::Keep.resolve(None), None);
        assert_eq!(Field::Absent.resolve(Some("v1")), None);
        assert_eq!(set("v2").resolve(Some("v1")), Some("v2".to_string()));
    }
}
