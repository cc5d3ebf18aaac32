//! Writing a string value so that every YAML reader gets the same string back.
//!
//! Kustomize reads kustomization files with Go YAML (YAML 1.1-ish: `yes`, `on`, `0123`,
//! `1_000` are not strings) and YAML 1.2 readers differ again (`0o17`, `1e3`). A value that
//! either family would read as a bool, number, null or timestamp is quoted.

use yaml_rust2::scanner::TScalarStyle;

/// How a scalar is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quote {
    Plain,
    Single,
    Double,
}

impl Quote {
    /// The quoting of an existing scalar, if it is one we write (not a block scalar).
    pub(super) fn of(style: TScalarStyle) -> Option<Quote> {
        match style {
            TScalarStyle::Plain => Some(Quote::Plain),
            TScalarStyle::SingleQuoted => Some(Quote::Single),
            TScalarStyle::DoubleQuoted => Some(Quote::Double),
            TScalarStyle::Literal | TScalarStyle::Folded => None,
        }
    }
}

/// Writes `value`: in the `keep` style when it holds the value safely, else plain when that is
/// safe, else in the `prefer`red quotes (double quotes when those cannot hold it).
pub(crate) fn render(value: &str, keep: Option<Quote>, prefer: Quote, flow: bool) -> String {
    let style = match keep {
        Some(Quote::Double) => Quote::Double,
        Some(Quote::Single) if single_ok(value) => Quote::Single,
        _ if plain_ok(value, flow) => Quote::Plain,
        _ if prefer == Quote::Single && single_ok(value) => Quote::Single,
        _ => Quote::Double,
    };
    match style {
        Quote::Plain => value.to_string(),
        Quote::Single => format!("'{}'", value.replace('\'', "''")),
        Quote::Double => double(value),
    }
}

fn double(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if c.is_control() || c == '\u{feff}' => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn awkward(c: char) -> bool {
    c.is_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}')
}

fn single_ok(value: &str) -> bool {
    !value.chars().any(awkward)
}

/// Can `value` be written without quotes and read back as this same string?
pub(crate) fn plain_ok(value: &str, flow: bool) -> bool {
    let Some(first) = value.chars().next() else {
        return false;
    };
    !reads_as_non_string(value)
        && !"-?:,[]{}#&*!|>'\"%@`".contains(first)
        && !value.chars().any(|c| awkward(c) || c == '\t')
        && !value.starts_with(' ')
        && !value.ends_with([' ', ':'])
        && !value.contains(": ")
        && !value.contains(" #")
        && !(flow && value.contains([',', '[', ']', '{', '}']))
}

/// Would a YAML 1.1 or 1.2 reader take this plain text for something other than a string?
pub(crate) fn reads_as_non_string(v: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", // null
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", // YAML 1.1 bool
        "true", "True", "TRUE", "false", "False", "FALSE", // bool
        "on", "On", "ON", "off", "Off", "OFF", // YAML 1.1 bool
        ".nan", ".NaN", ".NAN", // float
        "<<", "=", // YAML 1.1 merge and value keys
    ];
    WORDS.contains(&v) || is_int(v) || is_float(v) || is_timestamp(v)
}

fn unsigned(v: &str) -> &str {
    v.strip_prefix(['-', '+']).unwrap_or(v)
}

fn all(s: &str, ok: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.chars().all(ok)
}

/// Decimal, octal (`0123`, `0o17`), hex, binary, with `_` (Go YAML drops them), and YAML 1.1
/// base 60 (`1:20`).
fn is_int(v: &str) -> bool {
    let u = unsigned(v);
    let digits_or_sep = |s: &str, ok: fn(char) -> bool| all(s, |c| ok(c) || c == '_');
    if let Some(rest) = u.strip_prefix("0x").or_else(|| u.strip_prefix("0X")) {
        return digits_or_sep(rest, |c| c.is_ascii_hexdigit());
    }
    if let Some(rest) = u.strip_prefix("0o").or_else(|| u.strip_prefix("0O")) {
        return digits_or_sep(rest, |c| ('0'..='7').contains(&c));
    }
    if let Some(rest) = u.strip_prefix("0b").or_else(|| u.strip_prefix("0B")) {
        return digits_or_sep(rest, |c| c == '0' || c == '1');
    }
    let starts_with_digit = u.starts_with(|c: char| c.is_ascii_digit());
    starts_with_digit
        && (digits_or_sep(u, |c| c.is_ascii_digit())
            || (u.contains(':') && all(u, |c| c.is_ascii_digit() || "_:.".contains(c))))
}

/// `1.5`, `.5`, `1.`, `1e3`, `706798e8`, `-1.5E+3`, `.inf`; not `1.2.3` (no reader takes that
/// for a number).
fn is_float(v: &str) -> bool {
    let u = unsigned(v);
    if matches!(u, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    let (mantissa, exponent) = match u.find(['e', 'E']) {
        Some(i) => (&u[..i], Some(&u[i + 1..])),
        None => (u, None),
    };
    let mantissa_ok = mantissa.chars().any(|c| c.is_ascii_digit())
        && mantissa
            .chars()
            .all(|c| c.is_ascii_digit() || c == '_' || c == '.')
        && mantissa.matches('.').count() <= 1
        && !mantissa.starts_with('_');
    let exponent_ok = exponent.is_none_or(|e| all(unsigned(e), |c| c.is_ascii_digit()));
    // Without a dot or an exponent it is an int (or not a number at all).
    mantissa_ok && exponent_ok && (mantissa.contains('.') || exponent.is_some())
}

/// YAML 1.1 timestamps start `YYYY-M-D`.
fn is_timestamp(v: &str) -> bool {
    let mut parts = v.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let day: String = d.chars().take_while(char::is_ascii_digit).collect();
    y.len() == 4
        && all(y, |c| c.is_ascii_digit())
        && (1..=2).contains(&m.len())
        && all(m, |c| c.is_ascii_digit())
        && (1..=2).contains(&day.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each of these, unquoted, is read as a bool, number, null or timestamp by some reader
    /// (kustomize's Go YAML refuses every one of them as a tag).
    const NOT_STRINGS: &[&str] = &[
        "706798e8",
        "70679e81",
        "1e3",
        "1E3",
        "0123",
        "123",
        "+1",
        "-1",
        "1_000",
        "0_",
        "0x1f",
        "0X1F",
        "0o17",
        "0b101",
        ".5",
        "1.",
        "1.5e3",
        "-1.5E+3",
        ".inf",
        "-.inf",
        "+.Inf",
        ".nan",
        ".NaN",
        "yes",
        "Yes",
        "YES",
        "no",
        "NO",
        "y",
        "n",
        "on",
        "off",
        "ON",
        "true",
        "True",
        "false",
        "null",
        "Null",
        "~",
        "",
        "2024-01-01",
        "2024-1-1T10:00:00Z",
        "1:20",
        "<<",
        "=",
    ];

    /// Tags that every reader takes for strings.
    const STRINGS: &[&str] = &[
        "v1",
        "1.2.3",
        "706798ea",
        "12e",
        "e3",
        "tRue",
        "yEs",
        "_1",
        "sha-0123",
        "latest",
        "0123abc",
        "2024-01",
        "x1e3",
        "1.2.3-rc1",
    ];

    #[test]
    fn values_yaml_would_read_as_non_strings_are_recognised() {
        for v in NOT_STRINGS {
            assert!(reads_as_non_string(v), "{v:?} should need quotes");
            assert!(!plain_ok(v, false), "{v:?} should need quotes");
        }
        for v in STRINGS {
            assert!(!reads_as_non_string(v), "{v:?} is a string");
            assert!(plain_ok(v, false), "{v:?} can stay plain");
        }
    }

    #[test]
    fn text_that_would_break_plain_syntax_is_quoted() {
        for v in [
            "-rc", "a: b", "a #b", "a:", " a", "a ", "*x", "&x", "!x", "@x", "%x", "'x", "\"x",
            "a\tb", "a\nb", "#x", "[x", "{x",
        ] {
            assert!(!plain_ok(v, false), "{v:?}");
        }
        for v in ["a,b", "a]", "a}"] {
            assert!(plain_ok(v, false), "{v:?} is fine in block context");
            assert!(!plain_ok(v, true), "{v:?} breaks a flow collection");
        }
        assert!(
            plain_ok("localhost:5000/app", true),
            "a colon not followed by a space is fine even in flow"
        );
        assert!(plain_ok("sha256:0123", false));
    }

    #[test]
    fn render_keeps_the_existing_quotes_when_they_hold_the_value() {
        let cases: &[(&str, Option<Quote>, Quote, bool, &str)] = &[
            ("v2", Some(Quote::Double), Quote::Double, false, "\"v2\""),
            ("v2", Some(Quote::Single), Quote::Double, false, "'v2'"),
            ("v2", Some(Quote::Plain), Quote::Double, false, "v2"),
            ("v2", None, Quote::Single, false, "v2"),
            ("0123", Some(Quote::Plain), Quote::Double, false, "\"0123\""),
            ("0123", None, Quote::Single, false, "'0123'"),
            ("it's", Some(Quote::Single), Quote::Double, false, "'it''s'"),
            (
                "a\"b\\c",
                Some(Quote::Double),
                Quote::Double,
                false,
                "\"a\\\"b\\\\c\"",
            ),
            (
                "a\nb",
                Some(Quote::Single),
                Quote::Single,
                false,
                "\"a\\nb\"",
            ),
            ("a,b", None, Quote::Double, true, "\"a,b\""),
        ];
        for (value, keep, prefer, flow, want) in cases {
            assert_eq!(
                render(value, *keep, *prefer, *flow),
                *want,
                "{value:?} {keep:?}"
            );
        }
    }

    #[test]
    fn every_rendering_reads_back_as_the_same_string() {
        let mut values: Vec<&str> = NOT_STRINGS.iter().chain(STRINGS).copied().collect();
        values.extend([
            "it's",
            "a\"b\\c",
            "a\nb",
            "tab\there",
            "a: b",
            "x # y",
            "\u{2028}",
            "é",
            "a,b]",
        ]);
        for v in values {
            for keep in [
                None,
                Some(Quote::Plain),
                Some(Quote::Single),
                Some(Quote::Double),
            ] {
                for flow in [false, true] {
                    let r = render(v, keep, Quote::Double, flow);
                    let doc = if flow {
                        format!("k: [{r}]")
                    } else {
                        format!("k: {r}")
                    };
                    let y = &yaml_rust2::YamlLoader::load_from_str(&doc)
                        .unwrap_or_else(|e| panic!("{doc:?}: {e}"))[0]["k"];
                    let got = if flow { y[0].as_str() } else { y.as_str() };
                    assert_eq!(got, Some(v), "{doc:?}");
                }
            }
        }
    }
}
