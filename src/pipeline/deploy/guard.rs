//! The stale-write guard: never let an older run replace a newer deploy.
//!
//! At every tip the write-back is about to write on, compare the tag the overlay deploys now
//! for our image with ours. When both name commits of the repository (a full or abbreviated
//! SHA, as the default tag `GITHUB_SHA` does) and the deployed commit descends from ours, a
//! newer run has deployed: writing ours would roll it back, so we do not. GitHub's
//! `concurrency` groups cannot promise this: their order is arbitrary and re-runs bypass them.

use crate::gitops::{Ancestry, GitopsError, Standing, Superseded};
use crate::kustomize::ImageEntry;

/// What the guard decided at one tip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decision {
    Write,
    /// The tip deploys a newer commit: do not write.
    Superseded(Superseded),
    /// Write, but say in a notice why the guard could not decide.
    Undecided(String),
    /// Write over a deployed commit on another line of history, with a warning.
    Diverged(String),
}

/// A tag that can name a commit: 7 to 40 lowercase hex digits (`706798e8` is a SHA prefix,
/// not a number).
pub(super) fn names_a_commit(tag: &str) -> bool {
    (7..=40).contains(&tag.len()) && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Decides from the entry the tip deploys for our image and our tag.
pub(super) fn decide(
    ours: &str,
    deployed: Option<&ImageEntry>,
    ancestry: &mut dyn Ancestry,
) -> Result<Decision, GitopsError> {
    let Some(entry) = deployed else {
        return Ok(Decision::Write);
    };
    let Some(theirs) = entry.new_tag.as_deref() else {
        return Ok(Decision::Undecided(format!(
            "the overlay's entry for {} has no newTag",
            entry.name
        )));
    };
    if theirs == ours {
        return Ok(Decision::Write);
    }
    if !names_a_commit(ours) {
        return Ok(Decision::Undecided(format!(
            "our tag {ours} is not a commit SHA"
        )));
    }
    if !names_a_commit(theirs) {
        return Ok(Decision::Undecided(format!(
            "the deployed tag {theirs} is not a commit SHA"
        )));
    }
    Ok(match ancestry.place(theirs, ours)? {
        Standing::Same | Standing::Older => Decision::Write,
        Standing::Newer(commit) => Decision::Superseded(Superseded {
            commit,
            tag: theirs.to_string(),
        }),
        Standing::Diverged => Decision::Diverged(format!(
            "the deployed commit {theirs} and ours {ours} are on different lines of history (was the branch rewritten?)"
        )),
        Standing::Unknown(why) => Decision::Undecided(why),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// History as a list of (commit, parent): a line, newest last.
    struct Line(Vec<&'static str>);

    impl Ancestry for Line {
        fn place(&mut self, deployed: &str, ours: &str) -> Result<Standing, GitopsError> {
            let at = |c: &str| self.0.iter().position(|x| x.starts_with(c));
            Ok(match (at(deployed), at(ours)) {
                (Some(d), Some(o)) if d == o => Standing::Same,
                (Some(d), Some(o)) if d > o => Standing::Newer(self.0[d].to_string()),
                (Some(_), Some(_)) => Standing::Older,
                _ => Standing::Unknown(format!("{deployed} is not within 1000 commits of the tip")),
            })
        }
    }

    fn deployed(tag: Option<&str>) -> ImageEntry {
        ImageEntry {
            name: "auth-service".into(),
            new_name: Some("r.io/nova/auth-service".into()),
            new_tag: tag.map(str::to_string),
            digest: None,
        }
    }

    const OLD: &str = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const NEW: &str = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn a_newer_deployed_commit_is_not_replaced_and_an_older_one_is() {
        let mut line = Line(vec![OLD, NEW]);
        assert_eq!(
            decide(OLD, Some(&deployed(Some(NEW))), &mut line).unwrap(),
            Decision::Superseded(Superseded {
                commit: NEW.into(),
                tag: NEW.into()
            })
        );
        assert_eq!(
            decide(NEW, Some(&deployed(Some(OLD))), &mut line).unwrap(),
            Decision::Write
        );
        // Abbreviated on either side.
        assert!(matches!(
            decide(&OLD[..7], Some(&deployed(Some(&NEW[..8]))), &mut line).unwrap(),
            Decision::Superseded(_)
        ));
    }

    #[test]
    fn tags_that_are_not_shas_are_written_with_the_reason() {
        let mut line = Line(vec![OLD, NEW]);
        assert_eq!(
            decide("v1.2.3", Some(&deployed(Some(NEW))), &mut line).unwrap(),
            Decision::Undecided("our tag v1.2.3 is not a commit SHA".into())
        );
        assert_eq!(
            decide(OLD, Some(&deployed(Some("seed"))), &mut line).unwrap(),
            Decision::Undecided("the deployed tag seed is not a commit SHA".into())
        );
        assert_eq!(
            decide(OLD, Some(&deployed(Some("3333333cccccccc"))), &mut line).unwrap(),
            Decision::Undecided("3333333cccccccc is not within 1000 commits of the tip".into())
        );
        assert!(matches!(
            decide(OLD, Some(&deployed(None)), &mut line).unwrap(),
            Decision::Undecided(_)
        ));
    }

    #[test]
    fn the_same_tag_and_a_missing_entry_are_plain_writes() {
        let mut line = Line(vec![]);
        assert_eq!(
            decide(OLD, Some(&deployed(Some(OLD))), &mut line).unwrap(),
            Decision::Write
        );
        assert_eq!(decide(OLD, None, &mut line).unwrap(), Decision::Write);
    }

    #[test]
    fn a_sha_looks_like_hex_of_seven_to_forty_digits() {
        for yes in ["706798e8", "0123456", NEW] {
            assert!(names_a_commit(yes), "{yes}");
        }
        for no in [
            "v1",
            "abc123",
            "706798E8",
            "main",
            "1.2.3",
            &format!("{NEW}0"),
        ] {
            assert!(!names_a_commit(no), "{no}");
        }
    }
}
