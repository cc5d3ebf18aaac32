//! Go `regexp/syntax` (Perl flags: `^`/`$` at text ends, `.` not `\n`, ASCII `\d\s\w\b`,
//! `[[:name:]]`, `\pN`, `\Q…\E`), read into an AST and re-emitted as an escaped `regex` crate
//! expression with the same meaning.

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
            '\\' => t = parse_backslash(&s, t, &mut stack)?,
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

/// A `\` escape outside a class: an assertion, `\Q…\E` literals, a class (`\d`, `\pN`) or
/// an escaped character. Returns where parsing goes on.
fn parse_backslash(s: &[char], mut t: usize, stack: &mut [Vec<Node>]) -> Res<usize> {
    match s.get(t + 1) {
        Some('A') => {
            push(stack, Node::Begin);
            t += 2;
        }
        Some('z') => {
            push(stack, Node::End);
            t += 2;
        }
        Some('b') => {
            push(stack, Node::WordBoundary);
            t += 2;
        }
        Some('B') => {
            push(stack, Node::NotWordBoundary);
            t += 2;
        }
        Some('C') => return Err("invalid escape sequence: \\C".into()),
        Some('Q') => {
            // \Q ... \E: the ... is always literals.
            t += 2;
            while t < s.len() && !(s[t] == '\\' && s.get(t + 1) == Some(&'E')) {
                push(stack, Node::Lit(s[t]));
                t += 1;
            }
            if t < s.len() {
                t += 2;
            }
        }
        _ => {
            let mut class = Class::default();
            if let Some(rest) = parse_unicode_class(s, t, &mut class)? {
                push(stack, Node::Class(class));
                t = rest;
            } else if let Some(rest) = parse_perl_class(s, t, &mut class) {
                push(stack, Node::Class(class));
                t = rest;
            } else {
                let (c, rest) = parse_escape(s, t)?;
                push(stack, Node::Lit(c));
                t = rest;
            }
        }
    }
    Ok(t)
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
