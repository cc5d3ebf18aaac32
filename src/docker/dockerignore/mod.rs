//! `.dockerignore`: docker's exact semantics, ported from moby/patternmatcher, its `ignorefile`
//! reader and Go's `filepath.Clean`/`filepath.Match`/`regexp` syntax.
//!
//! Docker turns every pattern into a Go regular expression text (`*` → `[^/]*`, `?` → `[^/]`,
//! `**` → `(.*/)?`, `[`…`]` and `\x` passed through) and matches it with Go's `regexp`. The quirks
//! users hit follow from that, so this module keeps the same two steps: build the very same
//! regex text, then read it with Go's RE2 syntax rules (a class `[^a]` negates, `[!a]` is the set
//! `!`, `a`; `[[:alpha:]]`, `\d`, `\b` and `\Q…\E` mean what Go says) and hand an equivalent,
//! fully escaped expression to the `regex` crate.
//!
//! Matching follows the build-context walker (`archive.TarWithOptions`): a path is tested with
//! the results of its parent directory, the last matching pattern wins, and an excluded
//! directory is still walked only when an exception's literal text starts with `dir/`.

mod goregex;
mod pathmatch;

use std::fmt;

use self::pathmatch::glob_match;

/// A problem in `.dockerignore` that makes docker refuse the build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerignoreError {
    /// bufio.Scanner's limit: a line longer than 64 KiB.
    #[error(".dockerignore line {line}: line too long (bufio.Scanner: token too long)")]
    LineTooLong { line: usize },
    /// A lone `!`.
    #[error(".dockerignore: illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    /// `filepath.Match` rejects the pattern.
    #[error(".dockerignore pattern {pattern:?}: syntax error in pattern")]
    BadPattern { pattern: String },
    /// Go's regexp rejects the expression docker builds from the pattern; docker only notices
    /// when the pattern is first evaluated, and so do we.
    #[error(".dockerignore pattern {pattern:?}: syntax error in pattern ({reason})")]
    BadRegexp { pattern: String, reason: String },
}

/// One pattern, as `patternmatcher.New` keeps it.
#[derive(Clone)]
pub(crate) struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Exact,
    /// `foo/**`: the bytes before the trailing `**`.
    Prefix(Vec<u8>),
    /// `**/foo`, `**foo`: the bytes after the leading `**`.
    Suffix(Vec<u8>),
    Regexp(Result<regex::Regex, String>),
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}",
            if self.exclusion { "!" } else { "" },
            self.cleaned
        )
    }
}

impl Pattern {
    fn compile(cleaned: String, exclusion: bool) -> Pattern {
        let (kind_hint, regex_text) = go_pattern_regex(&cleaned);
        let kind = match kind_hint {
            Shortcut::Exact => Kind::Exact,
            Shortcut::Prefix => Kind::Prefix(cleaned.as_bytes()[..cleaned.len() - 2].to_vec()),
            Shortcut::Suffix => Kind::Suffix(cleaned.as_bytes()[2.min(cleaned.len())..].to_vec()),
            Shortcut::Regexp => Kind::Regexp(goregex::compile(&regex_text)),
        };
        Pattern {
            cleaned,
            exclusion,
            kind,
        }
    }

    /// `Pattern.match`: does this pattern match `path` exactly (no parent logic)?
    fn matches(&self, path: &str) -> Result<bool, DockerignoreError> {
        let p = path.as_bytes();
        Ok(match &self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix(prefix) => p.starts_with(prefix),
            Kind::Suffix(suffix) => {
                p.ends_with(suffix) || (suffix.first() == Some(&b'/') && p == &suffix[1..])
            }
            Kind::Regexp(Ok(re)) => re.is_match(path),
            Kind::Regexp(Err(reason)) => {
                return Err(DockerignoreError::BadRegexp {
                    pattern: self.cleaned.clone(),
                    reason: reason.clone(),
                });
            }
        })
    }
}

/// Per-pattern results for a directory, handed to its children (docker's `MatchInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// The compiled `.dockerignore` (docker's `PatternMatcher`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Matcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl Matcher {
    #[cfg(test)]
    /// Reads `.dockerignore` text (`ignorefile.ReadAll`) and compiles it (`patternmatcher.New`).
    pub(crate) fn parse(dockerignore_text: &str) -> Result<Matcher, DockerignoreError> {
        Matcher::new(&read_all(dockerignore_text)?)
    }

    /// `patternmatcher.New`: trims, cleans and syntax-checks each pattern.
    pub(crate) fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Matcher, DockerignoreError> {
        let mut out = Matcher::default();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let mut p = clean(p);
            let mut exclusion = false;
            if let Some(rest) = p.strip_prefix('!') {
                if rest.is_empty() {
                    return Err(DockerignoreError::IllegalExclusion);
                }
                exclusion = true;
                out.exclusions = true;
                p = rest.to_string();
            }
            if glob_match(&p, ".").is_err() {
                return Err(DockerignoreError::BadPattern { pattern: p });
            }
            out.patterns.push(Pattern::compile(p, exclusion));
        }
        Ok(out)
    }

    #[cfg(test)]
    /// Whether the build-context walker leaves `rel_path` (relative, `/`-separated) out, given
    /// that it reached it. A pattern docker cannot compile counts as no match here; use
    /// [`Matcher::try_excluded`] to see that error.
    pub(crate) fn excluded(&self, rel_path: &str) -> bool {
        self.try_excluded(rel_path).unwrap_or(false)
    }

    #[cfg(test)]
    /// [`Matcher::excluded`], reporting a pattern that fails when evaluated.
    pub(crate) fn try_excluded(&self, rel_path: &str) -> Result<bool, DockerignoreError> {
        let path = clean(rel_path);
        if path == "." {
            return Ok(false);
        }
        // The walker tests every ancestor first and hands each one's results down.
        let mut info = MatchInfo::default();
        let mut end = 0;
        loop {
            let next = path[end..].find('/').map(|i| end + i);
            let prefix = &path[..next.unwrap_or(path.len())];
            let (skip, child) = self.matches_using_parent_results(prefix, &info)?;
            match next {
                Some(i) => {
                    info = child;
                    end = i + 1;
                }
                None => return Ok(skip),
            }
        }
    }

    /// Whether the walker must still descend into the excluded directory `dir_rel`: only when
    /// some exception's literal text starts with `dir_rel/`.
    pub(crate) fn may_descend(&self, dir_rel: &str) -> bool {
        if !self.exclusions {
            return false;
        }
        let dir_slash = format!("{dir_rel}/");
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| format!("{}/", p.cleaned).starts_with(&dir_slash))
    }

    /// `MatchesUsingParentResults`: the walker's test of `file` given its parent's results
    /// (empty for a top-level entry).
    pub(crate) fn matches_using_parent_results(
        &self,
        file: &str,
        parent: &MatchInfo,
    ) -> Result<(bool, MatchInfo), DockerignoreError> {
        let parent_matched = &parent.parent_matched;
        let mut matched = false;
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        for (i, pattern) in self.patterns.iter().enumerate() {
            // If the parent matched this pattern, we don't need to recheck.
            let mut m = parent_matched.get(i).copied().unwrap_or(false);
            if !m {
                // Skip an inclusion once matched, and an exclusion until matched.
                if pattern.exclusion != matched {
                    continue;
                }
                m = pattern.matches(file)?;
                if !m && parent_matched.is_empty() {
                    m = any_parent_matches(pattern, file);
                }
            }
            info.parent_matched[i] = m;
            if m {
                matched = !pattern.exclusion;
            }
        }
        Ok((matched, info))
    }

    /// The deprecated `Matches`, which checks only the parent with as many components as the
    /// pattern. Docker CLI still uses it to decide whether to keep the Dockerfile and
    /// `.dockerignore` in the context.
    pub(crate) fn matches_one_parent(&self, file: &str) -> Result<bool, DockerignoreError> {
        let parent = go_dir(file);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut m = pattern.matches(file)?;
            let n = pattern.cleaned.split('/').count();
            if !m && parent != "." && n <= parent_dirs.len() {
                m = pattern
                    .matches(&parent_dirs[..n].join("/"))
                    .unwrap_or(false);
            }
            if m {
                matched = !pattern.exclusion;
            }
        }
        Ok(matched)
    }
}

/// Does `pattern` match one of `file`'s parent directories? Errors count as no match, as in Go.
fn any_parent_matches(pattern: &Pattern, file: &str) -> bool {
    let parent = go_dir(file);
    if parent == "." {
        return false;
    }
    let mut end = 0;
    loop {
        let next = parent[end..].find('/').map(|i| end + i);
        if pattern
            .matches(&parent[..next.unwrap_or(parent.len())])
            .unwrap_or(false)
        {
            return true;
        }
        match next {
            Some(i) => end = i + 1,
            None => return false,
        }
    }
}

/// `ignorefile.ReadAll`: the pattern list of a `.dockerignore`.
///
/// Lines split like `bufio.ScanLines` (a trailing `\r` dropped), a UTF-8 BOM stripped from the
/// first line, a line is a comment only when its very first byte is `#`, then both ends are
/// trimmed, empty lines are skipped, and each pattern (after its `!`, itself trimmed) is
/// `filepath.Clean`ed with a leading `/` dropped.
pub(crate) fn read_all(text: &str) -> Result<Vec<String>, DockerignoreError> {
    const MAX_TOKEN: usize = 64 * 1024;
    let mut out = Vec::new();
    let mut rest = text;
    let mut line_no = 0;
    while !rest.is_empty() {
        let (raw, tail) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        rest = tail;
        if raw.len() >= MAX_TOKEN {
            return Err(DockerignoreError::LineTooLong { line: line_no + 1 });
        }
        let mut line = raw.strip_suffix('\r').unwrap_or(raw);
        if line_no == 0 {
            line = line.strip_prefix('\u{FEFF}').unwrap_or(line);
        }
        line_no += 1;
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut p = String::new();
        if !pattern.is_empty() {
            p = clean(pattern);
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
        }
        if invert {
            p.insert(0, '!');
        }
        out.push(p);
    }
    Ok(out)
}

/// `build.TrimBuildFilesFromExcludes`: exceptions that keep `.dockerignore` and the Dockerfile
/// (its context-relative, `/`-separated path) in the context, decided as docker CLI does with
/// the one-parent `Matches`.
pub(crate) fn keep_build_files(mut patterns: Vec<String>, dockerfile_rel: &str) -> Vec<String> {
    let matches = |file: &str, patterns: &[String]| -> bool {
        let Ok(m) = Matcher::new(patterns) else {
            return false;
        };
        let file = clean(file);
        file != "." && m.matches_one_parent(&file).unwrap_or(false)
    };
    if matches(".dockerignore", &patterns) {
        patterns.push("!.dockerignore".to_string());
    }
    if matches(dockerfile_rel, &patterns) {
        patterns.push(format!("!{dockerfile_rel}"));
    }
    patterns
}

/// Go's `filepath.Clean` on a `/`-separated path: the shortest equivalent path, lexically.
pub(crate) fn clean(path: &str) -> String {
    let p = path.as_bytes();
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p[0] == b'/';
    let n = p.len();
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let (mut r, mut dotdot) = (0, 0);
    if rooted {
        out.push(b'/');
        r = 1;
        dotdot = 1;
    }
    while r < n {
        // An empty element, or a "." element.
        if p[r] == b'/' || (p[r] == b'.' && (r + 1 == n || p[r + 1] == b'/')) {
            r += 1;
        } else if p[r] == b'.' && p[r + 1] == b'.' && (r + 2 == n || p[r + 2] == b'/') {
            r += 2;
            if out.len() > dotdot {
                out.pop();
                while out.len() > dotdot && out[out.len() - 1] != b'/' {
                    out.pop();
                }
                // Drop the separator before the removed element too.
                if out.len() > dotdot && out[out.len() - 1] == b'/' {
                    out.pop();
                }
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(b'/');
            }
            while r < n && p[r] != b'/' {
                out.push(p[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        out.push(b'.');
    }
    // Only ASCII bytes were removed from valid UTF-8 at element boundaries.
    String::from_utf8(out).expect("clean keeps UTF-8 intact")
}

/// Go's `filepath.Dir`.
fn go_dir(path: &str) -> String {
    let i = path.rfind('/').map(|i| i + 1).unwrap_or(0);
    clean(&path[..i])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shortcut {
    Exact,
    Prefix,
    Suffix,
    Regexp,
}

/// `Pattern.compile`: the match type and the Go regex text docker derives from a cleaned pattern.
fn go_pattern_regex(pattern: &str) -> (Shortcut, String) {
    let chars: Vec<char> = pattern.chars().collect();
    let mut pos = 0;
    // text/scanner skips a byte order mark at the very start.
    if chars.first() == Some(&'\u{FEFF}') {
        pos = 1;
    }
    let peek = |pos: usize| chars.get(pos).copied();
    let mut re = String::from("^");
    let mut kind = Shortcut::Exact;
    let mut i = 0;
    while pos < chars.len() {
        let ch = chars[pos];
        pos += 1;
        if ch == '*' {
            if peek(pos) == Some('*') {
                // Some flavor of "**".
                pos += 1;
                if peek(pos) == Some('/') {
                    pos += 1;
                }
                if peek(pos).is_none() {
                    if kind == Shortcut::Exact {
                        kind = Shortcut::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = Shortcut::Regexp;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = Shortcut::Regexp;
                }
                if i == 0 {
                    kind = Shortcut::Suffix;
                }
            } else {
                re.push_str("[^/]*");
                kind = Shortcut::Regexp;
            }
        } else if ch == '?' {
            re.push_str("[^/]");
            kind = Shortcut::Regexp;
        } else if ".+()|{}$".contains(ch) {
            re.push('\\');
            re.push(ch);
        } else if ch == '\\' {
            match peek(pos) {
                Some(next) => {
                    pos += 1;
                    re.push('\\');
                    re.push(next);
                    kind = Shortcut::Regexp;
                }
                None => re.push('\\'),
            }
        } else if ch == '[' || ch == ']' {
            re.push(ch);
            kind = Shortcut::Regexp;
        } else {
            re.push(ch);
        }
        i += 1;
    }
    if kind == Shortcut::Regexp {
        re.push('$');
    }
    (kind, re)
}

#[cfg(test)]
mod cases;

#[cfg(test)]
mod tests {
    use super::*;

    use super::cases::CASES;

    #[test]
    fn every_case_matches_docker() {
        let mut failures = Vec::new();
        for (sentence, text, path, want) in CASES {
            let m = Matcher::parse(text).unwrap_or_else(|e| panic!("{sentence}: {e}"));
            let got = m
                .try_excluded(path)
                .unwrap_or_else(|e| panic!("{sentence}: {e}"));
            if got != *want {
                failures.push(format!(
                    "{sentence}: {text:?} on {path:?} gave {got}, docker gives {want}"
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} cases differ:\n{}",
            failures.len(),
            CASES.len(),
            failures.join("\n")
        );
        assert!(CASES.len() >= 40);
    }

    /// (sentence, .dockerignore, directory, walked)
    const DESCEND: &[(&str, &str, &str, bool)] = &[
        (
            "an excluded directory is not walked without exceptions",
            "dir",
            "dir",
            false,
        ),
        (
            "an exception with the directory as literal prefix makes it walked",
            "dir\n!dir/keep",
            "dir",
            true,
        ),
        (
            "an exception naming the directory itself makes it walked",
            "dir\n!dir",
            "dir",
            true,
        ),
        (
            "a double-star exception has no literal prefix and does not open a directory",
            "dir\n!**/keep",
            "dir",
            false,
        ),
        (
            "a wildcard prefix is not literal",
            "dir\n!d*/keep",
            "dir",
            false,
        ),
        (
            "a literal prefix followed by a wildcard opens the directory",
            "dir\n!dir/*.keep",
            "dir",
            true,
        ),
        (
            "a deeper directory on the exception's path is walked",
            "a\n!a/b/c",
            "a/b",
            true,
        ),
        (
            "a sibling with a common name prefix is not walked",
            "dir\n!dir/keep",
            "di",
            false,
        ),
    ];

    #[test]
    fn excluded_directories_are_walked_only_through_a_literal_exception_prefix() {
        for (sentence, text, dir, want) in DESCEND {
            let m = Matcher::parse(text).unwrap();
            assert_eq!(m.may_descend(dir), *want, "{sentence}");
        }
    }

    #[test]
    fn ignore_file_lines_are_read_as_docker_reads_them() {
        let text = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
        assert_eq!(
            read_all(text).unwrap(),
            [
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "!",
                "!"
            ]
        );
    }

    #[test]
    fn a_lone_exclamation_mark_is_an_error() {
        assert_eq!(
            Matcher::parse("foo\n!").unwrap_err(),
            DockerignoreError::IllegalExclusion
        );
    }

    #[test]
    fn a_malformed_class_is_a_syntax_error() {
        for bad in ["[", "[]a]", "[a-]", "a[", "x\\", "[^]"] {
            assert!(
                matches!(
                    Matcher::parse(bad),
                    Err(DockerignoreError::BadPattern { .. })
                ),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn a_pattern_go_regexp_rejects_fails_when_evaluated() {
        let m = Matcher::parse("[z-a]").unwrap();
        assert!(matches!(
            m.try_excluded("x"),
            Err(DockerignoreError::BadRegexp { .. })
        ));
        let m = Matcher::parse("\\q*").unwrap();
        assert!(m.try_excluded("x").is_err());
    }

    #[test]
    fn an_overlong_line_is_an_error() {
        let text = "x".repeat(70_000);
        assert_eq!(
            read_all(&text).unwrap_err(),
            DockerignoreError::LineTooLong { line: 1 }
        );
    }

    #[test]
    fn clean_matches_go() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("a/b/../c", "a/c"),
            ("a/../../b", "../b"),
            ("/../a", "/a"),
            ("a//b/./c/", "a/b/c"),
            ("..", ".."),
            ("../..", "../.."),
            ("a/..", "."),
            ("/", "/"),
            ("abc/def/../../..", ".."),
        ] {
            assert_eq!(clean(input), want, "Clean({input:?})");
        }
    }

    #[test]
    fn the_dockerfile_and_dockerignore_are_kept_when_excluded() {
        let kept = keep_build_files(read_all("*\n").unwrap(), "backend/auth/Dockerfile");
        assert_eq!(kept, ["*", "!.dockerignore", "!backend/auth/Dockerfile"]);
        let m = Matcher::new(&kept).unwrap();
        assert!(!m.excluded(".dockerignore"));
        assert!(m.may_descend("backend") && m.may_descend("backend/auth"));
        assert!(!m.excluded("backend/auth/Dockerfile"));
        assert!(m.excluded("backend/auth/main.go"));
    }

    #[test]
    fn build_files_that_are_not_excluded_add_no_exception() {
        let kept = keep_build_files(read_all("*.md\n").unwrap(), "Dockerfile");
        assert_eq!(kept, ["*.md"]);
    }

    #[test]
    fn regex_texts_are_built_as_docker_builds_them() {
        for (pattern, hint, text) in [
            ("foo", Shortcut::Exact, "^foo"),
            ("*.go", Shortcut::Regexp, "^[^/]*\\.go$"),
            ("**/a", Shortcut::Suffix, "^(.*/)?a"),
            ("a/**", Shortcut::Prefix, "^a/"),
            ("*/**", Shortcut::Regexp, "^[^/]*/.*$"),
            ("a/**/b?", Shortcut::Regexp, "^a/(.*/)?b[^/]$"),
            ("[!x]\\y", Shortcut::Regexp, "^[!x]\\y$"),
        ] {
            assert_eq!(
                go_pattern_regex(pattern),
                (hint, text.to_string()),
                "{pattern}"
            );
        }
    }
}
