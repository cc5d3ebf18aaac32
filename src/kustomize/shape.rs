//! Finding the `images:` list in a kustomization and refusing the shapes we cannot edit without
//! risk (several documents, anchors and aliases, block scalars, duplicate entries, …), with the
//! file and line of each refusal. What it finds carries byte spans for `edit.rs`.

use super::EditError;
use super::quote::{Quote, render};
use super::yaml::{self, Kind, Node, ParseError, Source};
use yaml_rust2::scanner::TScalarStyle;

/// An `images:` entry as the file has it (`None`: the field is absent or null).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageEntry {
    pub name: String,
    pub new_name: Option<String>,
    pub new_tag: Option<String>,
    pub digest: Option<String>,
}

pub(super) const BOM: &str = "\u{feff}";

/// The entry for the image `name`, if the kustomization has one.
pub fn current_image(file: &str, src: &[u8], name: &str) -> Result<Option<ImageEntry>, EditError> {
    Ok(image_entries(file, src)?
        .into_iter()
        .find(|e| e.name == name))
}

/// Every named entry of the kustomization's `images:`, in order.
pub fn image_entries(file: &str, src: &[u8]) -> Result<Vec<ImageEntry>, EditError> {
    let (_, text) = decode(file, src)?;
    let doc = load(file, text)?;
    let Some(images) = images(file, &doc)? else {
        return Ok(Vec::new());
    };
    Ok(images
        .entries
        .iter()
        .filter_map(|e| {
            Some(ImageEntry {
                name: e.name.clone()?,
                new_name: e.value_of("newName"),
                new_tag: e.value_of("newTag"),
                digest: e.value_of("digest"),
            })
        })
        .collect())
}

pub(super) fn refused(
    file: &str,
    line: usize,
    message: impl Into<String>,
    hint: Option<&'static str>,
) -> EditError {
    EditError::Refused {
        file: file.to_string(),
        line,
        message: message.into(),
        hint,
    }
}

pub(super) fn decode<'a>(file: &str, src: &'a [u8]) -> Result<(bool, &'a str), EditError> {
    let text = std::str::from_utf8(src).map_err(|e| {
        let line = 1 + src[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        refused(
            file,
            line,
            "not valid UTF-8",
            Some("kustomization files are UTF-8 text"),
        )
    })?;
    Ok(match text.strip_prefix(BOM) {
        Some(rest) => (true, rest),
        None => (false, text),
    })
}

pub(super) struct Doc<'a> {
    pub(super) src: Source<'a>,
    pub(super) root: Node,
}

pub(super) fn load<'a>(file: &str, text: &'a str) -> Result<Doc<'a>, EditError> {
    let src = Source::new(text);
    let root = match yaml::parse(&src) {
        Ok(root) => root,
        Err(ParseError::Scan { line, message }) => {
            return Err(refused(
                file,
                line,
                format!("invalid YAML: {message}"),
                None,
            ));
        }
        Err(ParseError::SeveralDocuments { line }) => {
            return Err(refused(
                file,
                line,
                "a second YAML document starts here",
                Some(
                    "a kustomization file holds exactly one document; remove the `---` separator or split the file",
                ),
            ));
        }
        Err(ParseError::Empty) => {
            return Err(refused(
                file,
                1,
                "the file holds no YAML document",
                Some("a kustomization is a mapping with resources:, images: and so on"),
            ));
        }
    };
    if !matches!(root.kind, Kind::Map { .. }) {
        return Err(refused(
            file,
            root.line,
            "the document is not a mapping",
            Some("a kustomization is a mapping with resources:, images: and so on"),
        ));
    }
    Ok(Doc { src, root })
}

/// The `images:` key and its value, checked to be safe to edit.
pub(super) struct Images<'d> {
    pub(super) key: &'d Node,
    pub(super) value: &'d Node,
    /// Just after the `:` that follows the key.
    pub(super) colon: usize,
    /// `None` when the value is null (`images:` or `images: ~`).
    pub(super) seq: Option<Seq<'d>>,
    pub(super) entries: Vec<Entry<'d>>,
}

pub(super) struct Seq<'d> {
    pub(super) flow: bool,
    pub(super) close: usize,
    pub(super) node: &'d Node,
}

pub(super) struct Entry<'d> {
    pub(super) node: &'d Node,
    pub(super) flow: bool,
    pub(super) pairs: Vec<Pair<'d>>,
    pub(super) name: Option<String>,
}

pub(super) struct Pair<'d> {
    pub(super) key: &'d Node,
    pub(super) name: &'d str,
    pub(super) value: &'d Node,
    /// The bytes of the value; empty, just after the `:`, when the value has no text.
    pub(super) span: (usize, usize),
    /// Whether a `:` follows the key (a flow entry may say `{name: a, newTag}`).
    pub(super) has_colon: bool,
}

impl Entry<'_> {
    pub(super) fn pair(&self, key: &str) -> Option<&Pair<'_>> {
        self.pairs.iter().find(|p| p.name == key)
    }

    pub(super) fn value_of(&self, key: &str) -> Option<String> {
        self.pair(key).and_then(|p| p.text()).map(str::to_string)
    }

    /// How this entry quotes its keys and its values, read from its `name`; new fields copy it.
    pub(super) fn styles(&self) -> Styles {
        let name = self.pair("name").or(self.pairs.first());
        let key = name
            .and_then(|p| p.key.scalar())
            .and_then(|(_, s)| Quote::of(s))
            .unwrap_or(Quote::Plain);
        let value = name.and_then(|p| p.quote()).unwrap_or(Quote::Plain);
        Styles { key, value }
    }
}

/// The quoting new keys and values copy from their neighbours.
#[derive(Clone, Copy)]
pub(super) struct Styles {
    pub(super) key: Quote,
    pub(super) value: Quote,
}

impl Default for Styles {
    fn default() -> Styles {
        Styles {
            key: Quote::Plain,
            value: Quote::Plain,
        }
    }
}

impl Styles {
    pub(super) fn key(&self, key: &str) -> String {
        match self.key {
            Quote::Plain => key.to_string(),
            Quote::Single => format!("'{key}'"),
            Quote::Double => format!("\"{key}\""),
        }
    }

    /// A new value: quoted like its neighbours, and quoted anyway when it must be.
    pub(super) fn value(&self, value: &str, flow: bool) -> String {
        let prefer = if self.value == Quote::Single {
            Quote::Single
        } else {
            Quote::Double
        };
        render(value, Some(self.value), prefer, flow)
    }

    pub(super) fn pair(&self, key: &str, value: &str, flow: bool) -> String {
        format!("{}: {}", self.key(key), self.value(value, flow))
    }
}

impl Pair<'_> {
    /// The value as kustomize reads it: `None` for null.
    pub(super) fn text(&self) -> Option<&str> {
        if self.value.is_null() {
            None
        } else {
            self.value.scalar().map(|(v, _)| v)
        }
    }

    pub(super) fn quote(&self) -> Option<Quote> {
        if self.value.is_null() {
            None
        } else {
            self.value.scalar().and_then(|(_, s)| Quote::of(s))
        }
    }
}

/// Just after the `:` following `key`, if one follows it.
pub(super) fn colon_after(text: &str, key: &Node) -> Option<usize> {
    let end = key.end?;
    let rest = &text[end..];
    let skipped = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    rest[skipped..]
        .starts_with(':')
        .then_some(end + skipped + 1)
}

pub(super) const ANCHOR_HINT: Option<&str> =
    Some("write the images entries out in full; anchors, aliases and tags are not edited");

pub(super) fn images<'d>(file: &str, doc: &'d Doc) -> Result<Option<Images<'d>>, EditError> {
    let text = doc.src.text;
    let Kind::Map { pairs, .. } = &doc.root.kind else {
        unreachable!("load checks the root")
    };
    let mut found: Option<(&Node, &Node)> = None;
    for (k, v) in pairs {
        match k.scalar() {
            Some(("images", _)) => {
                if found.is_some() {
                    return Err(refused(
                        file,
                        k.line,
                        "a second `images` key",
                        Some("merge the two images lists into one"),
                    ));
                }
                found = Some((k, v));
            }
            Some(("<<", TScalarStyle::Plain)) => {
                return Err(refused(
                    file,
                    k.line,
                    "a merge key (`<<`) in the root mapping",
                    Some("write the root mapping out in full"),
                ));
            }
            _ => {}
        }
    }
    let Some((key, value)) = found else {
        return Ok(None);
    };
    let colon = colon_after(text, key)
        .ok_or_else(|| refused(file, key.line, "`images` has no `:`", None))?;
    if value.anchored || value.tagged || matches!(value.kind, Kind::Alias) {
        return Err(refused(
            file,
            value.line,
            "an anchor, alias or tag on the images list",
            ANCHOR_HINT,
        ));
    }
    let (seq, items) = match &value.kind {
        Kind::Seq { flow, items, close } => (
            Some(Seq {
                flow: *flow,
                close: *close,
                node: value,
            }),
            items.as_slice(),
        ),
        Kind::Scalar { .. } if value.is_null() => (None, &[][..]),
        _ => {
            return Err(refused(
                file,
                value.line,
                "`images` is not a list",
                Some("images: is a list of entries with name, and newName, newTag or digest"),
            ));
        }
    };
    let mut entries: Vec<Entry> = Vec::new();
    for item in items {
        let entry = entry(file, text, item)?;
        if let Some(name) = &entry.name
            && let Some(first) = entries.iter().find(|e| e.name.as_ref() == Some(name))
        {
            return Err(refused(
                file,
                entry.pair("name").map_or(item.line, |p| p.key.line),
                format!(
                    "a second entry for image {name:?} (the first is on line {})",
                    first.node.line
                ),
                Some("kustomize applies one entry per image name; remove one of them"),
            ));
        }
        entries.push(entry);
    }
    Ok(Some(Images {
        key,
        value,
        colon,
        seq,
        entries,
    }))
}

pub(super) fn entry<'d>(file: &str, text: &str, item: &'d Node) -> Result<Entry<'d>, EditError> {
    if item.anchored || item.tagged || matches!(item.kind, Kind::Alias) {
        return Err(refused(
            file,
            item.line,
            "an anchor, alias or tag on an images entry",
            ANCHOR_HINT,
        ));
    }
    let Kind::Map { flow, pairs, .. } = &item.kind else {
        return Err(refused(
            file,
            item.line,
            "an images entry is not a mapping",
            Some("each entry is `- name: IMAGE` with newName, newTag or digest"),
        ));
    };
    let mut out: Vec<Pair> = Vec::new();
    for (k, v) in pairs {
        for n in [k, v] {
            if n.anchored || n.tagged || matches!(n.kind, Kind::Alias) {
                return Err(refused(
                    file,
                    n.line,
                    "an anchor, alias or tag in an images entry",
                    ANCHOR_HINT,
                ));
            }
            match n.scalar() {
                Some((_, TScalarStyle::Literal | TScalarStyle::Folded)) => {
                    return Err(refused(
                        file,
                        k.line,
                        "a block scalar (`|` or `>`) in an images entry",
                        Some("write the value on one line"),
                    ));
                }
                Some(_) => {}
                None => {
                    return Err(refused(
                        file,
                        n.line,
                        "a list or mapping inside an images entry",
                        Some("names, tags and digests are plain strings"),
                    ));
                }
            }
            let one_line = n.is_empty_scalar()
                || n.end
                    .is_some_and(|e| !text[n.start..e].contains(['\n', '\r']));
            if !one_line {
                return Err(refused(
                    file,
                    n.line,
                    "a value over several lines in an images entry",
                    Some("write the value on one line"),
                ));
            }
        }
        let name = k.scalar().map(|(s, _)| s).unwrap_or_default();
        if let Some(first) = out.iter().find(|p| p.name == name) {
            return Err(refused(
                file,
                k.line,
                format!(
                    "a second `{name}` in this entry (the first is on line {})",
                    first.key.line
                ),
                None,
            ));
        }
        let colon = colon_after(text, k);
        let span = match (v.is_empty_scalar(), colon) {
            (true, Some(c)) => (c, c),
            (true, None) => {
                let e = k.end.unwrap_or(k.start);
                (e, e)
            }
            (false, _) => (v.start, v.end.unwrap_or(v.start)),
        };
        out.push(Pair {
            key: k,
            name,
            value: v,
            span,
            has_colon: colon.is_some(),
        });
    }
    let name = out
        .iter()
        .find(|p| p.name == "name")
        .and_then(|p| p.text())
        .map(str::to_string);
    Ok(Entry {
        node: item,
        flow: *flow,
        pairs: out,
        name,
    })
}
