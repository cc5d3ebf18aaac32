//! A light YAML tree with byte spans, built from yaml-rust2's marked events.
//!
//! yaml-rust2 markers give only where a node starts, as a 1-based line and a 0-based column in
//! chars (its `index()` is unreliable). This module turns them into byte offsets and finds
//! where each scalar ends by its style, so the editor can replace exact bytes.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// The text being edited (BOM already stripped) with its line table.
pub(crate) struct Source<'a> {
    pub text: &'a str,
    /// Byte offset where each line starts; line `n` (1-based) starts at `line_starts[n - 1]`.
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub(super) fn new(text: &'a str) -> Source<'a> {
        let bytes = text.as_bytes();
        let mut line_starts = vec![0];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => line_starts.push(i + 1),
                b'\r' if bytes.get(i + 1) != Some(&b'\n') => line_starts.push(i + 1),
                _ => {}
            }
            i += 1;
        }
        Source { text, line_starts }
    }

    /// The byte offset a marker points at.
    pub(crate) fn offset(&self, m: &Marker) -> usize {
        let Some(&start) = self.line_starts.get(m.line().saturating_sub(1)) else {
            return self.text.len();
        };
        self.text[start..]
            .char_indices()
            .nth(m.col())
            .map_or(self.text.len(), |(i, _)| start + i)
    }

    /// The 1-based line holding `byte`.
    pub(crate) fn line_of(&self, byte: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= byte)
    }

    /// Where the line holding `byte` starts.
    pub(crate) fn line_start(&self, byte: usize) -> usize {
        self.line_starts[self.line_of(byte) - 1]
    }

    /// Where the line after the one holding `byte` starts (its line break included), or the
    /// end of the text when that line is the last.
    pub(crate) fn next_line_start(&self, byte: usize) -> usize {
        self.line_starts
            .get(self.line_of(byte))
            .copied()
            .unwrap_or(self.text.len())
    }

    /// Where the line holding `byte` ends, before its line break.
    pub(crate) fn line_end(&self, byte: usize) -> usize {
        let rest = &self.text[byte..];
        byte + rest.find(['\n', '\r']).unwrap_or(rest.len())
    }

    /// The line ending new lines use: the file's first one, else `\n`.
    pub(crate) fn eol(&self) -> &'static str {
        match self.text.find(['\n', '\r']) {
            Some(i) if self.text[i..].starts_with("\r\n") => "\r\n",
            Some(i) if self.text[i..].starts_with('\r') => "\r",
            _ => "\n",
        }
    }

    /// The column (in chars) of `byte` within its line.
    pub(crate) fn col(&self, byte: usize) -> usize {
        self.text[self.line_start(byte)..byte].chars().count()
    }
}

/// A node of the document and where it sits in the text.
#[derive(Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    /// First byte. For an empty plain scalar this is where the parser put it (the next token),
    /// not a real position; see [`Kind::Scalar::empty`].
    pub start: usize,
    /// One past the last byte, when it could be found (block scalars: never).
    pub end: Option<usize>,
    /// 1-based line of `start`.
    pub line: usize,
    pub anchored: bool,
    pub tagged: bool,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Scalar {
        value: String,
        style: TScalarStyle,
        /// A plain scalar with no text at all (`key:` followed by nothing).
        empty: bool,
    },
    Seq {
        flow: bool,
        items: Vec<Node>,
        /// Where the end event points: `]` for a flow sequence, the next token for a block one.
        close: usize,
    },
    Map {
        flow: bool,
        pairs: Vec<(Node, Node)>,
        /// Where the end event points: `}` for a flow mapping, the next token for a block one.
        close: usize,
    },
    Alias,
}

impl Node {
    pub(super) fn scalar(&self) -> Option<(&str, TScalarStyle)> {
        match &self.kind {
            Kind::Scalar { value, style, .. } => Some((value, *style)),
            _ => None,
        }
    }

    /// A plain scalar YAML reads as null: no text, `~` or `null`.
    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { value, style: TScalarStyle::Plain, .. }
            if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub(crate) fn is_empty_scalar(&self) -> bool {
        matches!(self.kind, Kind::Scalar { empty: true, .. })
    }
}

/// Why the text could not be read as one YAML document.
#[derive(Debug)]
pub(crate) enum ParseError {
    Scan {
        line: usize,
        message: String,
    },
    /// A second document starts on `line`.
    SeveralDocuments {
        line: usize,
    },
    /// No document at all (empty file, or only comments).
    Empty,
}

struct Events(Vec<(Event, Marker)>);

impl MarkedEventReceiver for Events {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        self.0.push((ev, mark));
    }
}

/// Parses the one document of `src` into a tree.
pub(crate) fn parse(src: &Source) -> Result<Node, ParseError> {
    let mut events = Events(Vec::new());
    let mut parser = Parser::new_from_str(src.text);
    if let Err(e) = parser.load(&mut events, true) {
        return Err(ParseError::Scan {
            line: e.marker().line(),
            message: e.info().to_string(),
        });
    }
    let events = events.0;
    let starts: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, (e, _))| *e == Event::DocumentStart)
        .map(|(i, _)| i)
        .collect();
    match starts.as_slice() {
        [] => Err(ParseError::Empty),
        [first] => {
            let mut b = Builder {
                src,
                events: &events,
                i: first + 1,
                depth: 0,
            };
            b.node()
        }
        [_, second, ..] => Err(ParseError::SeveralDocuments {
            line: events[*second].1.line(),
        }),
    }
}

struct Builder<'s, 'e> {
    src: &'s Source<'s>,
    events: &'e [(Event, Marker)],
    i: usize,
    /// How many nodes enclose the one being built.
    depth: usize,
}

/// Deeper nesting is refused rather than risking the stack; a kustomization needs a handful.
const MAX_DEPTH: usize = 200;

impl Builder<'_, '_> {
    fn next(&mut self) -> (&Event, usize, usize) {
        let (ev, m) = &self.events[self.i];
        self.i += 1;
        (ev, self.src.offset(m), m.line())
    }

    fn peek_offset(&self) -> Option<usize> {
        self.events.get(self.i).map(|(_, m)| self.src.offset(m))
    }

    /// Builds the node whose first event is next.
    fn node(&mut self) -> Result<Node, ParseError> {
        if self.depth >= MAX_DEPTH {
            let line = self.events[self.i].1.line();
            return Err(ParseError::Scan {
                line,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        self.depth += 1;
        let node = self.build();
        self.depth -= 1;
        node
    }

    fn build(&mut self) -> Result<Node, ParseError> {
        let text = self.src.text;
        let (ev, start, line) = self.next();
        let ev = ev.clone();
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                let empty = style == TScalarStyle::Plain && value.is_empty();
                let end = if empty {
                    Some(start)
                } else {
                    scalar_end(text, start, &value, style)
                };
                Ok(Node {
                    kind: Kind::Scalar {
                        value,
                        style,
                        empty,
                    },
                    start,
                    end,
                    line,
                    anchored: anchor != 0,
                    tagged: tag.is_some(),
                })
            }
            Event::Alias(_) => Ok(Node {
                kind: Kind::Alias,
                start,
                end: None,
                line,
                anchored: false,
                tagged: false,
            }),
            Event::SequenceStart(anchor, tag) => self.seq(start, line, anchor != 0, tag.is_some()),
            Event::MappingStart(anchor, tag) => self.map(start, line, anchor != 0, tag.is_some()),
            // The document holds no node (e.g. `---` then nothing); the parser reports that as an
            // empty scalar, so other events cannot come here.
            other => Err(ParseError::Scan {
                line,
                message: format!("unexpected {other:?}"),
            }),
        }
    }

    /// A sequence whose start event was at `start`: its items up to the end event.
    fn seq(
        &mut self,
        start: usize,
        line: usize,
        anchored: bool,
        tagged: bool,
    ) -> Result<Node, ParseError> {
        let text = self.src.text;
        let is_flow =
            text[start..].starts_with('[') && self.peek_offset().is_some_and(|o| o > start);
        let mut items = Vec::new();
        loop {
            if matches!(
                self.events.get(self.i),
                Some((Event::SequenceEnd, _)) | None
            ) {
                break;
            }
            items.push(self.node()?);
        }
        let (_, close, _) = self.next();
        let (start, end) = if is_flow {
            (start, Some(close + 1))
        } else {
            (
                items.first().map_or(start, |n| n.start),
                items.last().and_then(|n| n.end),
            )
        };
        Ok(Node {
            kind: Kind::Seq {
                flow: is_flow,
                items,
                close,
            },
            start,
            end,
            line,
            anchored,
            tagged,
        })
    }

    /// A mapping whose start event was at `start`: its pairs up to the end event.
    fn map(
        &mut self,
        start: usize,
        line: usize,
        anchored: bool,
        tagged: bool,
    ) -> Result<Node, ParseError> {
        let text = self.src.text;
        let is_flow = text[start..].starts_with('{');
        let mut pairs = Vec::new();
        loop {
            if matches!(self.events.get(self.i), Some((Event::MappingEnd, _)) | None) {
                break;
            }
            let key = self.node()?;
            let value = self.node()?;
            pairs.push((key, value));
        }
        let (_, close, _) = self.next();
        let (start, line, end) = if is_flow {
            (start, line, Some(close + 1))
        } else {
            let first = pairs.first().map(|(k, _)| k);
            let end = pairs
                .last()
                .and_then(|(k, v)| if v.is_empty_scalar() { k.end } else { v.end });
            (
                first.map_or(start, |k| k.start),
                first.map_or(line, |k| k.line),
                end,
            )
        };
        Ok(Node {
            kind: Kind::Map {
                flow: is_flow,
                pairs,
                close,
            },
            start,
            end,
            line,
            anchored,
            tagged,
        })
    }
}

/// One past the last byte of a scalar starting at `start`, found by its style.
fn scalar_end(text: &str, start: usize, value: &str, style: TScalarStyle) -> Option<usize> {
    let bytes = text.as_bytes();
    match style {
        TScalarStyle::SingleQuoted => {
            let mut i = start + 1;
            while i < bytes.len() {
                if bytes[i] == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    return Some(i + 1);
                }
                i += 1;
            }
            None
        }
        TScalarStyle::DoubleQuoted => {
            let mut i = start + 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => return Some(i + 1),
                    _ => i += 1,
                }
            }
            None
        }
        TScalarStyle::Plain => plain_end(text, start, value),
        TScalarStyle::Literal | TScalarStyle::Folded => None,
    }
}

/// The end of a plain scalar: its value is its text on one line, or its lines folded.
fn plain_end(text: &str, start: usize, value: &str) -> Option<usize> {
    if text[start..].starts_with(value) {
        return Some(start + value.len());
    }
    let mut pos = start;
    let mut rem = value;
    loop {
        let line_end = pos + text[pos..].find(['\n', '\r']).unwrap_or(text.len() - pos);
        let line = &text[pos..line_end];
        let lead = line.len() - line.trim_start_matches([' ', '\t']).len();
        let seg = &line[lead..];
        if !seg.is_empty() {
            let want = rem.trim_start_matches([' ', '\n']);
            let common: usize = seg
                .char_indices()
                .zip(want.chars())
                .take_while(|((_, a), b)| a == b)
                .last()
                .map_or(0, |((i, c), _)| i + c.len_utf8());
            let matched = seg[..common].trim_end_matches([' ', '\t']);
            if matched.is_empty() {
                return None;
            }
            rem = &want[matched.len()..];
            if rem.is_empty() {
                return Some(pos + lead + matched.len());
            }
            if !rem.starts_with([' ', '\n']) {
                return None;
            }
        }
        // Skip the line break.
        let mut next = line_end;
        if text[next..].starts_with("\r\n") {
            next += 2;
        } else if next < text.len() {
            next += 1;
        } else {
            return None;
        }
        pos = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        parse(&Source::new(text)).unwrap()
    }

    fn span<'t>(text: &'t str, n: &Node) -> &'t str {
        &text[n.start..n.end.unwrap()]
    }

    #[test]
    fn scalar_spans_cover_exactly_their_text_in_every_style() {
        let text = "a: plain text # c\nb: 'it''s'\nc: \"q\\\"é\" # c\nd: {e: f, g: 'h'}\nf: [x, \"y\"]\nlong: one\n  two\n\n  three\nlast: é\n";
        let n = root(text);
        let Kind::Map { pairs, .. } = &n.kind else {
            panic!()
        };
        let got: Vec<&str> = pairs.iter().map(|(_, v)| span(text, v)).collect();
        assert_eq!(
            got,
            [
                "plain text",
                "'it''s'",
                "\"q\\\"é\"",
                "{e: f, g: 'h'}",
                "[x, \"y\"]",
                "one\n  two\n\n  three",
                "é"
            ]
        );
    }

    #[test]
    fn a_flush_block_list_of_flow_lists_is_not_mistaken_for_flow() {
        let text = "a:\n- [x]\n- [y]\n";
        let n = root(text);
        let Kind::Map { pairs, .. } = &n.kind else {
            panic!()
        };
        let Kind::Seq { flow, items, .. } = &pairs[0].1.kind else {
            panic!()
        };
        assert!(!flow);
        assert_eq!(items.len(), 2);
        assert_eq!(span(text, &pairs[0].1), "[x]\n- [y]");
    }

    #[test]
    fn absurd_nesting_is_refused_instead_of_overflowing_the_stack() {
        let text = format!("a: {}{}\n", "[".repeat(5000), "]".repeat(5000));
        assert!(matches!(
            parse(&Source::new(&text)),
            Err(ParseError::Scan { line: 1, .. })
        ));
    }

    #[test]
    fn crlf_and_multibyte_columns_map_to_bytes() {
        let text = "é: ü\r\nb: c\r\n";
        let n = root(text);
        let Kind::Map { pairs, .. } = &n.kind else {
            panic!()
        };
        assert_eq!(span(text, &pairs[0].1), "ü");
        assert_eq!(span(text, &pairs[1].1), "c");
        let src = Source::new(text);
        assert_eq!(src.eol(), "\r\n");
        assert_eq!(src.line_of(pairs[1].1.start), 2);
    }
}
