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

use std::fmt;

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
pub struct Pattern {
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
    /// The cleaned pattern text without its `!`, as docker's `Pattern.String()`.
    pub fn text(&self) -> &str {
        &self.cleaned
    }

    /// Whether this is a `!` exception.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    fn compile(cleaned: String, exclusion: bool) -> Pattern {
        let (kind_hint, regex_text) = go_pattern_regex(&cleaned);
        let kind = match kind_hint {
            Hint::Exact => Kind::Exact,
            Hint::Prefix => Kind::Prefix(cleaned.as_bytes()[..cleaned.len() - 2].to_vec()),
            Hint::Suffix => Kind::Suffix(cleaned.as_bytes()[2.min(cleaned.len())..].to_vec()),
            Hint::Regexp => Kind::Regexp(goregex::compile(&regex_text)),
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
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// The compiled `.dockerignore` (docker's `PatternMatcher`).
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl Matcher {
    /// Reads `.dockerignore` text (`ignorefile.ReadAll`) and compiles it (`patternmatcher.New`).
    pub fn parse(dockerignore_text: &str) -> Result<Matcher, DockerignoreError> {
        Matcher::new(&read_all(dockerignore_text)?)
    }

    /// `patternmatcher.New`: trims, cleans and syntax-checks each pattern.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Matcher, DockerignoreError> {
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

    /// The patterns in file order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether any pattern is a `!` exception.
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether the build-context walker leaves `rel_path` (relative, `/`-separated) out, given
    /// that it reached it. A pattern docker cannot compile counts as no match here; use
    /// [`Matcher::try_excluded`] to see that error.
    pub fn excluded(&self, rel_path: &str) -> bool {
        self.try_excluded(rel_path).unwrap_or(false)
    }

    /// [`Matcher::excluded`], reporting a pattern that fails when evaluated.
    pub fn try_excluded(&self, rel_path: &str) -> Result<bool, DockerignoreError> {
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
    pub fn may_descend(&self, dir_rel: &str) -> bool {
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
    pub fn matches_using_parent_results(
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

    /// `MatchesOrParentMatches`: `file` or any of its parents.
    pub fn matches_or_parent_matches(&self, file: &str) -> Result<bool, DockerignoreError> {
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let m = pattern.matches(file)? || any_parent_matches(pattern, file);
            if m {
                matched = !pattern.exclusion;
            }
        }
        Ok(matched)
    }

    /// The deprecated `Matches`, which checks only the parent with as many components as the
    /// pattern. Docker CLI still uses it to decide whether to keep the Dockerfile and
    /// `.dockerignore` in the context.
    pub fn matches_one_parent(&self, file: &str) -> Result<bool, DockerignoreError> {
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
pub fn read_all(text: &str) -> Result<Vec<String>, DockerignoreError> {
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
pub fn keep_build_files(mut patterns: Vec<String>, dockerfile_rel: &str) -> Vec<String> {
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
pub fn clean(path: &str) -> String {
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

/// The pattern is malformed for `filepath.Match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPattern;

/// Go's `filepath.Match` (Unix: `\` escapes; `[^…]` negates a class). Docker calls it only to
/// syntax-check each pattern, against `"."`.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let mut pattern = pattern.as_bytes();
    let mut name = name.as_bytes();
    'outer: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // Trailing * matches rest of string unless it has a /.
            return Ok(!name.contains(&b'/'));
        }
        let (t, ok, err) = match_chunk(chunk, name);
        // The last chunk must exhaust the name.
        if ok && (t.is_empty() || !pattern.is_empty()) {
            name = t;
            continue;
        }
        if err {
            return Err(BadPattern);
        }
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                let (t, ok, err) = match_chunk(chunk, &name[i + 1..]);
                if ok {
                    if pattern.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t;
                    continue 'outer;
                }
                if err {
                    return Err(BadPattern);
                }
                i += 1;
            }
        }
        // Before returning false, check that the rest of the pattern is well-formed.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            if match_chunk(chunk, b"").2 {
                return Err(BadPattern);
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while let [b'*', rest @ ..] = pattern {
        pattern = rest;
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Returns (rest, ok, bad-pattern). Keeps parsing after a mismatch to validate the chunk.
fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> (&'a [u8], bool, bool) {
    let mut failed = false;
    while !chunk.is_empty() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match chunk[0] {
            b'[' => {
                let mut r = 0u32;
                if !failed {
                    let (c, n) = decode_rune(s);
                    r = c;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let mut negated = false;
                if chunk.first() == Some(&b'^') {
                    negated = true;
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&b']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let Some((lo, rest)) = get_esc(chunk) else {
                        return (b"", false, true);
                    };
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == b'-' {
                        let Some((h, rest)) = get_esc(&chunk[1..]) else {
                            return (b"", false, true);
                        };
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == b'/' {
                        failed = true;
                    }
                    let (_, n) = decode_rune(s);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
            }
            c => {
                let c = if c == b'\\' {
                    chunk = &chunk[1..];
                    if chunk.is_empty() {
                        return (b"", false, true);
                    }
                    chunk[0]
                } else {
                    c
                };
                if !failed {
                    if c != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    if failed {
        (b"", false, false)
    } else {
        (s, true, false)
    }
}

/// One class character (with `\` escape); `None` for a malformed class. The rest is never empty.
fn get_esc(chunk: &[u8]) -> Option<(u32, &[u8])> {
    if chunk.is_empty() || chunk[0] == b'-' || chunk[0] == b']' {
        return None;
    }
    let mut chunk = chunk;
    if chunk[0] == b'\\' {
        chunk = &chunk[1..];
        if chunk.is_empty() {
            return None;
        }
    }
    let (r, n) = decode_rune(chunk);
    if r == 0xFFFD && n == 1 {
        return None;
    }
    let rest = &chunk[n..];
    if rest.is_empty() {
        return None;
    }
    Some((r, rest))
}

/// `utf8.DecodeRuneInString`: (rune, width), U+FFFD width 1 for a bad byte, width 0 at the end.
fn decode_rune(s: &[u8]) -> (u32, usize) {
    if s.is_empty() {
        return (0xFFFD, 0);
    }
    let width = match s[0] {
        0x00..=0x7F => return (u32::from(s[0]), 1),
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (0xFFFD, 1),
    };
    match s.get(..width).and_then(|b| std::str::from_utf8(b).ok()) {
        Some(c) => (u32::from(c.chars().next().unwrap_or('\u{FFFD}')), width),
        None => (0xFFFD, 1),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hint {
    Exact,
    Prefix,
    Suffix,
    Regexp,
}

/// `Pattern.compile`: the match type and the Go regex text docker derives from a cleaned pattern.
fn go_pattern_regex(pattern: &str) -> (Hint, String) {
    let chars: Vec<char> = pattern.chars().collect();
    let mut pos = 0;
    // text/scanner skips a byte order mark at the very start.
    if chars.first() == Some(&'\u{FEFF}') {
        pos = 1;
    }
    let peek = |pos: usize| chars.get(pos).copied();
    let mut re = String::from("^");
    let mut kind = Hint::Exact;
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
                    if kind == Hint::Exact {
                        kind = Hint::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = Hint::Regexp;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = Hint::Regexp;
                }
                if i == 0 {
                    kind = Hint::Suffix;
                }
            } else {
                re.push_str("[^/]*");
                kind = Hint::Regexp;
            }
        } else if ch == '?' {
            re.push_str("[^/]");
            kind = Hint::Regexp;
        } else if ".+()|{}$".contains(ch) {
            re.push('\\');
            re.push(ch);
        } else if ch == '\\' {
            match peek(pos) {
                Some(next) => {
                    pos += 1;
                    re.push('\\');
                    re.push(next);
                    kind = Hint::Regexp;
                }
                None => re.push('\\'),
            }
        } else if ch == '[' || ch == ']' {
            re.push(ch);
            kind = Hint::Regexp;
        } else {
            re.push(ch);
        }
        i += 1;
    }
    if kind == Hint::Regexp {
        re.push('$');
    }
    (kind, re)
}

/// Go `regexp/syntax` (Perl flags: `^`/`$` at text ends, `.` not `\n`, ASCII `\d\s\w\b`,
/// `[[:name:]]`, `\pN`, `\Q…\E`), read into an AST and re-emitted as an escaped `regex` crate
/// expression with the same meaning.
mod goregex {
    #[derive(Debug)]
    enum Node {
        Lit(char),
        Class(Class),
        AnyNotNl,
        Begin,
        End,
        WordBoundary,
        NotWordBoundary,
        Group(Vec<Node>),
        Repeat {
            sub: Box<Node>,
            op: char,
            greedy: bool,
        },
    }

    #[derive(Debug, Default)]
    struct Class {
        negated: bool,
        ranges: Vec<(u32, u32)>,
        /// `\p{Name}` (true) / `\P{Name}` (false) groups, resolved by the regex crate.
        unicode: Vec<(String, bool)>,
    }

    const MAX_RUNE: u32 = 0x10FFFF;

    type Res<T> = Result<T, String>;

    pub(super) fn compile(text: &str) -> Result<regex::Regex, String> {
        let nodes = parse(text)?;
        let mut out = String::new();
        for n in &nodes {
            emit(n, &mut out);
        }
        regex::Regex::new(&out).map_err(|e| format!("regexp {text:?}: {e}"))
    }

    fn parse(text: &str) -> Res<Vec<Node>> {
        let s: Vec<char> = text.chars().collect();
        let mut t = 0;
        let mut stack: Vec<Vec<Node>> = vec![Vec::new()];
        let mut last_repeat = false;
        while t < s.len() {
            let mut repeat = false;
            match s[t] {
                '(' => {
                    if s.get(t + 1) == Some(&'?') {
                        return Err("unsupported Perl group".into());
                    }
                    stack.push(Vec::new());
                    t += 1;
                }
                ')' => {
                    if stack.len() < 2 {
                        return Err("unexpected )".into());
                    }
                    let group = stack.pop().expect("checked");
                    stack.last_mut().expect("root").push(Node::Group(group));
                    t += 1;
                }
                '|' => return Err("unsupported alternation".into()),
                '^' => {
                    push(&mut stack, Node::Begin);
                    t += 1;
                }
                '$' => {
                    push(&mut stack, Node::End);
                    t += 1;
                }
                '.' => {
                    push(&mut stack, Node::AnyNotNl);
                    t += 1;
                }
                '[' => {
                    let (class, rest) = parse_class(&s, t)?;
                    push(&mut stack, Node::Class(class));
                    t = rest;
                }
                op @ ('*' | '+' | '?') => {
                    let mut after = t + 1;
                    let mut greedy = true;
                    if s.get(after) == Some(&'?') {
                        after += 1;
                        greedy = false;
                    }
                    if last_repeat {
                        return Err("invalid nested repetition operator".into());
                    }
                    let frame = stack.last_mut().expect("root");
                    let Some(sub) = frame.pop() else {
                        return Err("missing argument to repetition operator".into());
                    };
                    frame.push(Node::Repeat {
                        sub: Box::new(sub),
                        op,
                        greedy,
                    });
                    repeat = true;
                    t = after;
                }
                '{' => return Err("unsupported counted repetition".into()),
                '\\' => {
                    match s.get(t + 1) {
                        Some('A') => {
                            push(&mut stack, Node::Begin);
                            t += 2;
                        }
                        Some('z') => {
                            push(&mut stack, Node::End);
                            t += 2;
                        }
                        Some('b') => {
                            push(&mut stack, Node::WordBoundary);
                            t += 2;
                        }
                        Some('B') => {
                            push(&mut stack, Node::NotWordBoundary);
                            t += 2;
                        }
                        Some('C') => return Err("invalid escape sequence: \\C".into()),
                        Some('Q') => {
                            // \Q ... \E: the ... is always literals.
                            t += 2;
                            while t < s.len() && !(s[t] == '\\' && s.get(t + 1) == Some(&'E')) {
                                push(&mut stack, Node::Lit(s[t]));
                                t += 1;
                            }
                            if t < s.len() {
                                t += 2;
                            }
                        }
                        _ => {
                            let mut class = Class::default();
                            if let Some(rest) = parse_unicode_class(&s, t, &mut class)? {
                                push(&mut stack, Node::Class(class));
                                t = rest;
                            } else if let Some(rest) = parse_perl_class(&s, t, &mut class) {
                                push(&mut stack, Node::Class(class));
                                t = rest;
                            } else {
                                let (c, rest) = parse_escape(&s, t)?;
                                push(&mut stack, Node::Lit(c));
                                t = rest;
                            }
                        }
                    }
                }
                c => {
                    push(&mut stack, Node::Lit(c));
                    t += 1;
                }
            }
            last_repeat = repeat;
        }
        if stack.len() != 1 {
            return Err("missing closing )".into());
        }
        Ok(stack.pop().expect("root"))
    }

    fn push(stack: &mut [Vec<Node>], n: Node) {
        stack.last_mut().expect("root").push(n);
    }

    fn parse_class(s: &[char], start: usize) -> Res<(Class, usize)> {
        let mut t = start + 1;
        let mut class = Class::default();
        if s.get(t) == Some(&'^') {
            class.negated = true;
            t += 1;
        }
        let mut first = true; // ']' is a literal as first char
        while t >= s.len() || s[t] != ']' || first {
            first = false;
            if t >= s.len() {
                return Err("missing closing ]".into());
            }
            // POSIX [:alnum:] etc.
            if s.len() - t > 2
                && s[t] == '['
                && s[t + 1] == ':'
                && let Some(rest) = parse_named_class(s, t, &mut class)?
            {
                t = rest;
                continue;
            }
            if let Some(rest) = parse_unicode_class(s, t, &mut class)? {
                t = rest;
                continue;
            }
            if let Some(rest) = parse_perl_class(s, t, &mut class) {
                t = rest;
                continue;
            }
            let (lo, rest) = parse_class_char(s, t)?;
            t = rest;
            let mut hi = lo;
            // [a-] means (a|-), so check for a final ].
            if s.len() - t >= 2 && s[t] == '-' && s[t + 1] != ']' {
                let (h, rest) = parse_class_char(s, t + 1)?;
                t = rest;
                hi = h;
                if hi < lo {
                    return Err("invalid character class range".into());
                }
            }
            class.ranges.push((lo as u32, hi as u32));
        }
        Ok((class, t + 1))
    }

    fn parse_class_char(s: &[char], t: usize) -> Res<(char, usize)> {
        match s.get(t) {
            None => Err("missing closing ]".into()),
            Some('\\') => parse_escape(s, t),
            Some(&c) => Ok((c, t + 1)),
        }
    }

    fn parse_named_class(s: &[char], t: usize, class: &mut Class) -> Res<Option<usize>> {
        // Find ":]" anywhere after "[:" (Go searches the rest of the expression).
        let Some(i) = (t + 2..s.len().saturating_sub(1)).find(|&i| s[i] == ':' && s[i + 1] == ']')
        else {
            return Ok(None);
        };
        let name: String = s[t..i + 2].iter().collect();
        let (negated, base) = match name.strip_prefix("[:^") {
            Some(b) => (true, format!("[:{b}")),
            None => (false, name.clone()),
        };
        let ranges: &[(u32, u32)] = match base.as_str() {
            "[:alnum:]" => &[(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
            "[:alpha:]" => &[(0x41, 0x5A), (0x61, 0x7A)],
            "[:ascii:]" => &[(0x00, 0x7F)],
            "[:blank:]" => &[(0x09, 0x09), (0x20, 0x20)],
            "[:cntrl:]" => &[(0x00, 0x1F), (0x7F, 0x7F)],
            "[:digit:]" => &[(0x30, 0x39)],
            "[:graph:]" => &[(0x21, 0x7E)],
            "[:lower:]" => &[(0x61, 0x7A)],
            "[:print:]" => &[(0x20, 0x7E)],
            "[:punct:]" => &[(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
            "[:space:]" => &[(0x09, 0x0D), (0x20, 0x20)],
            "[:upper:]" => &[(0x41, 0x5A)],
            "[:word:]" => &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
            "[:xdigit:]" => &[(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
            _ => return Err(format!("invalid character class range: {name}")),
        };
        add_group(class, ranges, negated);
        Ok(Some(i + 2))
    }

    fn parse_perl_class(s: &[char], t: usize, class: &mut Class) -> Option<usize> {
        if s.get(t) != Some(&'\\') {
            return None;
        }
        let (ranges, negated): (&[(u32, u32)], bool) = match s.get(t + 1)? {
            'd' => (&[(0x30, 0x39)], false),
            'D' => (&[(0x30, 0x39)], true),
            's' => (&[(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)], false),
            'S' => (&[(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)], true),
            'w' => (
                &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
                false,
            ),
            'W' => (
                &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
                true,
            ),
            _ => return None,
        };
        add_group(class, ranges, negated);
        Some(t + 2)
    }

    fn add_group(class: &mut Class, ranges: &[(u32, u32)], negated: bool) {
        if !negated {
            class.ranges.extend_from_slice(ranges);
            return;
        }
        let mut next = 0;
        for &(lo, hi) in ranges {
            if lo > next {
                class.ranges.push((next, lo - 1));
            }
            next = hi + 1;
        }
        if next <= MAX_RUNE {
            class.ranges.push((next, MAX_RUNE));
        }
    }

    fn parse_unicode_class(s: &[char], t: usize, class: &mut Class) -> Res<Option<usize>> {
        if s.get(t) != Some(&'\\') || !matches!(s.get(t + 1), Some('p' | 'P')) {
            return Ok(None);
        }
        let mut positive = s[t + 1] == 'p';
        let (mut name, rest): (String, usize) = match s.get(t + 2) {
            Some('{') => {
                let Some(end) = (t + 3..s.len()).find(|&i| s[i] == '}') else {
                    return Err("invalid character class range".into());
                };
                (s[t + 3..end].iter().collect(), end + 1)
            }
            Some(&c) => (c.to_string(), t + 3),
            None => (String::new(), t + 2),
        };
        if let Some(n) = name.strip_prefix('^') {
            positive = !positive;
            name = n.to_string();
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid character class range: \\p{{{name}}}"));
        }
        if name == "Any" {
            add_group(class, &[(0, MAX_RUNE)], !positive);
        } else {
            class.unicode.push((name, positive));
        }
        Ok(Some(rest))
    }

    fn parse_escape(s: &[char], t: usize) -> Res<(char, usize)> {
        let Some(&c) = s.get(t + 1) else {
            return Err("trailing backslash at end of expression".into());
        };
        let mut u = t + 2;
        let bad = |u: usize| -> Res<(char, usize)> {
            Err(format!(
                "invalid escape sequence: {}",
                s[t..u.min(s.len())].iter().collect::<String>()
            ))
        };
        let rune = |r: u32, u: usize| -> Res<(char, usize)> {
            // Surrogates cannot occur in a path; keep them impossible to match.
            Ok((char::from_u32(r).unwrap_or('\u{FFFF}'), u))
        };
        match c {
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok((c, u)),
            '1'..='7' if !matches!(s.get(u), Some('0'..='7')) => bad(u),
            '0'..='7' => {
                let mut r = c as u32 - '0' as u32;
                for _ in 1..3 {
                    match s.get(u) {
                        Some(&d @ '0'..='7') => {
                            r = r * 8 + (d as u32 - '0' as u32);
                            u += 1;
                        }
                        _ => break,
                    }
                }
                rune(r, u)
            }
            'x' => {
                let Some(&c) = s.get(u) else { return bad(u) };
                u += 1;
                if c == '{' {
                    let mut r: u32 = 0;
                    let mut nhex = 0;
                    loop {
                        let Some(&c) = s.get(u) else { return bad(u) };
                        u += 1;
                        if c == '}' {
                            break;
                        }
                        let Some(v) = c.to_digit(16) else {
                            return bad(u);
                        };
                        r = r * 16 + v;
                        if r > MAX_RUNE {
                            return bad(u);
                        }
                        nhex += 1;
                    }
                    if nhex == 0 {
                        return bad(u);
                    }
                    return rune(r, u);
                }
                let x = c.to_digit(16);
                let y = s.get(u).and_then(|c| c.to_digit(16));
                u += usize::from(u < s.len());
                match (x, y) {
                    (Some(x), Some(y)) => rune(x * 16 + y, u),
                    _ => bad(u),
                }
            }
            'a' => Ok(('\u{7}', u)),
            'f' => Ok(('\u{c}', u)),
            'n' => Ok(('\n', u)),
            'r' => Ok(('\r', u)),
            't' => Ok(('\t', u)),
            'v' => Ok(('\u{b}', u)),
            _ => {
                u = t + 2;
                bad(u)
            }
        }
    }

    fn emit(n: &Node, out: &mut String) {
        match n {
            Node::Lit(c) => out.push_str(&format!("\\x{{{:X}}}", *c as u32)),
            Node::AnyNotNl => out.push_str("[^\\n]"),
            Node::Begin => out.push_str("\\A"),
            Node::End => out.push_str("\\z"),
            Node::WordBoundary => out.push_str("(?-u:\\b)"),
            Node::NotWordBoundary => out.push_str("(?-u:\\B)"),
            Node::Group(nodes) => {
                out.push_str("(?:");
                for n in nodes {
                    emit(n, out);
                }
                out.push(')');
            }
            Node::Repeat { sub, op, greedy } => {
                out.push_str("(?:");
                emit(sub, out);
                out.push(')');
                out.push(*op);
                if !greedy {
                    out.push('?');
                }
            }
            Node::Class(class) => emit_class(class, out),
        }
    }

    fn emit_class(class: &Class, out: &mut String) {
        let mut items = String::new();
        for &(lo, hi) in &class.ranges {
            // Paths hold no surrogates; clip ranges to scalar values.
            let lo = if (0xD800..=0xDFFF).contains(&lo) {
                0xE000
            } else {
                lo
            };
            let hi = if (0xD800..=0xDFFF).contains(&hi) {
                0xD7FF
            } else {
                hi
            };
            if lo <= hi {
                items.push_str(&format!("\\x{{{lo:X}}}-\\x{{{hi:X}}}"));
            }
        }
        for (name, positive) in &class.unicode {
            items.push_str(&format!(
                "\\{}{{{name}}}",
                if *positive { 'p' } else { 'P' }
            ));
        }
        if items.is_empty() {
            // Matches nothing (or, negated, any character).
            items.push_str("\\x{0}-\\x{10FFFF}");
            out.push_str(if class.negated { "[" } else { "[^" });
        } else {
            out.push_str(if class.negated { "[^" } else { "[" });
        }
        out.push_str(&items);
        out.push(']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (sentence, .dockerignore, path, excluded by the walker)
    const CASES: &[(&str, &str, &str, bool)] = &[
        ("a plain name matches that file", "foo", "foo", true),
        (
            "a plain name is anchored at the root",
            "foo",
            "a/foo",
            false,
        ),
        (
            "a plain name excludes everything under the directory of that name",
            "foo",
            "foo/bar/baz",
            true,
        ),
        (
            "a plain name does not match a longer name",
            "foo",
            "foobar",
            false,
        ),
        ("a leading slash is dropped", "/foo", "foo", true),
        ("a trailing slash is cleaned away", "foo/", "foo/x", true),
        ("dot segments are cleaned", "./a/../b//c/.", "b/c", true),
        (
            "a pattern cleaned above the root matches nothing",
            "../foo",
            "foo",
            false,
        ),
        (
            "a star stays within one path element",
            "*.txt",
            "a/b.txt",
            false,
        ),
        (
            "a star matches within the root element",
            "*.txt",
            "b.txt",
            true,
        ),
        (
            "a star element matches a directory and so its contents",
            "*/secret",
            "a/secret/key",
            true,
        ),
        ("a question mark matches one character", "fo?", "foo", true),
        ("a question mark never matches a slash", "a?b", "a/b", false),
        (
            "double star slash matches at any depth",
            "**/*.log",
            "a/b/c.log",
            true,
        ),
        (
            "double star slash also matches at the root",
            "**/*.log",
            "c.log",
            true,
        ),
        (
            "a leading double star matches any suffix",
            "**/foo",
            "x/y/foo",
            true,
        ),
        (
            "a leading double star with a name matches it at the root",
            "**/foo",
            "foo",
            true,
        ),
        (
            "a leading double star without a slash matches a bare suffix",
            "**foo",
            "xfoo",
            true,
        ),
        (
            "a trailing double star excludes the contents",
            "dir/**",
            "dir/x/y",
            true,
        ),
        (
            "a trailing double star keeps the directory entry itself",
            "dir/**",
            "dir",
            false,
        ),
        (
            "a double star in the middle spans directories",
            "a/**/b",
            "a/x/y/b",
            true,
        ),
        (
            "a double star in the middle spans zero directories",
            "a/**/b",
            "a/b",
            true,
        ),
        (
            "a double star glued to text still only spans whole directories",
            "a**b",
            "axb",
            false,
        ),
        (
            "a lone double star excludes everything",
            "**",
            "any/thing",
            true,
        ),
        ("a class matches its members", "[ab].txt", "b.txt", true),
        (
            "a range matches inside its bounds",
            "file[0-9]",
            "file7",
            true,
        ),
        ("a caret negates a class", "[^a]", "b", true),
        (
            "a caret-negated class rejects its members",
            "[^a]",
            "a",
            false,
        ),
        (
            "an exclamation mark does not negate a class",
            "[!a]",
            "b",
            false,
        ),
        (
            "an exclamation mark is a member of the class",
            "[!a]",
            "!",
            true,
        ),
        ("a backslash escapes a star", "a\\*b", "a*b", true),
        ("an escaped star is not a wildcard", "a\\*b", "axb", false),
        ("a backslash escapes a question mark", "\\?", "x", false),
        (
            "regex metacharacters are literal",
            "a.b+c(d)",
            "a.b+c(d)",
            true,
        ),
        (
            "a regex dot is not a wildcard in a glob",
            "a.b*",
            "axb1",
            false,
        ),
        (
            "a comment needs # as the very first byte",
            "#foo",
            "#foo",
            false,
        ),
        ("an indented # is a pattern", " #foo", "#foo", true),
        ("lines are trimmed at both ends", "  foo \t", "foo", true),
        (
            "a CRLF line ending is dropped",
            "foo\r\nbar\r\n",
            "bar",
            true,
        ),
        (
            "empty and blank lines are ignored",
            "\n   \n\nfoo\n",
            "foo",
            true,
        ),
        (
            "a BOM on the first line is stripped",
            "\u{FEFF}foo",
            "foo",
            true,
        ),
        (
            "an exception re-includes a file",
            "*.md\n!README.md",
            "README.md",
            false,
        ),
        ("the last matching pattern wins", "!a\na", "a", true),
        (
            "a later exclusion overrides an exception",
            "*.md\n!README.md\nREADME*",
            "README.md",
            true,
        ),
        (
            "an exception with a space after the bang is trimmed",
            "*.md\n! README.md",
            "README.md",
            false,
        ),
        (
            "an exception inside an excluded directory re-includes the file",
            "dir\n!dir/keep",
            "dir/keep",
            false,
        ),
        (
            "an exception inside an excluded directory leaves its siblings out",
            "dir\n!dir/keep",
            "dir/other",
            true,
        ),
        (
            "an exception applies to a directory's contents",
            "dir\n!dir/sub",
            "dir/sub/x",
            false,
        ),
        (
            "a parent excluded later is checked against the child's own path only",
            "a/b\n!a",
            "a/b",
            true,
        ),
        (
            "a double star exception re-includes nested files",
            "**/*.go\n!**/main.go",
            "cmd/x/main.go",
            false,
        ),
        ("an escaped bracket is literal", "\\[x\\]", "[x]", true),
        (
            "a class with a bracket-star is a regex class repeated",
            "[*]",
            "]",
            true,
        ),
        (
            "a caret at the start of a pattern is an anchor in the regex",
            "^foo*",
            "foobar",
            true,
        ),
        (
            "a caret in the middle of a pattern never matches",
            "a^b*",
            "a^bc",
            false,
        ),
        (
            "a posix class in brackets works as in Go regexp",
            "[[:digit:]]x",
            "7x",
            true,
        ),
        ("a Perl digit escape means a digit", "\\d*", "42", true),
        ("a dollar is literal", "$HOME", "$HOME", true),
        (
            "a pattern equal to the root matches nothing",
            ".",
            "foo",
            false,
        ),
        (
            "a pattern that is only a slash matches nothing",
            "/",
            "foo",
            false,
        ),
        (
            "an exception on an unrelated path keeps the exclusion",
            "foo\n!bar",
            "foo/x",
            true,
        ),
        ("patterns are case sensitive", "Foo", "foo", false),
        (
            "a unicode pattern matches a unicode name",
            "caf?",
            "café",
            true,
        ),
    ];

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
    fn glob_match_matches_go() {
        for (pattern, name, want) in [
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a[^a]c", "abc", Ok(true)),
            ("a[!a]c", "abc", Ok(false)),
            ("a\\*b", "a*b", Ok(true)),
            ("[a-", "x", Err(BadPattern)),
            ("a[", ".", Err(BadPattern)),
            ("*x[", ".", Err(BadPattern)),
        ] {
            assert_eq!(
                glob_match(pattern, name),
                want,
                "Match({pattern:?}, {name:?})"
            );
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
            ("foo", Hint::Exact, "^foo"),
            ("*.go", Hint::Regexp, "^[^/]*\\.go$"),
            ("**/a", Hint::Suffix, "^(.*/)?a"),
            ("a/**", Hint::Prefix, "^a/"),
            ("*/**", Hint::Regexp, "^[^/]*/.*$"),
            ("a/**/b?", Hint::Regexp, "^a/(.*/)?b[^/]$"),
            ("[!x]\\y", Hint::Regexp, "^[!x]\\y$"),
        ] {
            assert_eq!(
                go_pattern_regex(pattern),
                (hint, text.to_string()),
                "{pattern}"
            );
        }
    }
}
