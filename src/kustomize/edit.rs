//! The byte-preserving edit of a kustomization's `images:` list.
//!
//! kustomize's `edit set image` re-serialises the whole file and drops its comments. Here each
//! spec becomes a few byte edits: a changed value is replaced where it stands (in its own
//! quotes when they hold the new value), a cleared field loses exactly its line, a new field
//! gets a line of its own with the entry's indentation, and a new entry copies the list's
//! layout. Everything else stays byte for byte: comments, quotes, flow style, CRLF, BOM, `---`.

use super::EditError;
use super::quote::{Quote, render};
use super::shape::*;
use super::spec::ImageSpec;
use super::yaml::{Kind, Source};

/// The image fields, in the order new ones are written, with their rank for placing them.
const FIELDS: [&str; 4] = ["name", "newName", "newTag", "digest"];
/// kustomize rewrites a matched entry with only the fields of the spec, so this one goes.
const TAG_SUFFIX: &str = "tagSuffix";

/// Applies `specs` to the kustomization `src` the way `kustomize edit set image` would, changing
/// only the bytes that must change. Returns `src` itself when nothing changes. `file` only names
/// the file in errors. Several specs for one name: the last wins, as in kustomize.
pub fn set_images(file: &str, src: &[u8], specs: &[ImageSpec]) -> Result<Vec<u8>, EditError> {
    let (bom, original) = decode(file, src)?;
    // Refuse a file we cannot edit safely even when there is nothing to do.
    let doc = load(file, original)?;
    images(file, &doc)?;
    let mut text = original.to_string();
    for spec in last_wins(specs) {
        text = apply(file, &text, spec)?;
        check(file, &text, spec)?;
    }
    if text == original {
        return Ok(src.to_vec());
    }
    let mut out = Vec::with_capacity(text.len() + 3);
    if bom {
        out.extend_from_slice(BOM.as_bytes());
    }
    out.extend_from_slice(text.as_bytes());
    Ok(out)
}

fn last_wins(specs: &[ImageSpec]) -> Vec<&ImageSpec> {
    let mut out: Vec<&ImageSpec> = Vec::new();
    for spec in specs {
        match out.iter_mut().find(|s| s.name == spec.name) {
            Some(slot) => *slot = spec,
            None => out.push(spec),
        }
    }
    out
}

/// One replacement of bytes `start..end`.
#[derive(Debug)]
struct Edit {
    start: usize,
    end: usize,
    with: String,
}

fn apply_edits(file: &str, src: &Source, mut edits: Vec<Edit>) -> Result<String, EditError> {
    edits.sort_by_key(|e| (e.start, e.end));
    let text = src.text;
    let mut out = String::with_capacity(text.len() + 128);
    let mut at = 0;
    for e in &edits {
        if e.start < at {
            return Err(refused(
                file,
                src.line_of(e.start),
                "cannot edit this layout of the images entry safely",
                None,
            ));
        }
        out.push_str(&text[at..e.start]);
        out.push_str(&e.with);
        at = e.end;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

/// Inserts whole `lines` (each ending in `eol`) after the line holding `byte`.
fn insert_after_line(src: &Source, byte: usize, lines: &str) -> Edit {
    let pos = src.next_line_start(byte);
    let text = src.text;
    if pos == text.len() && !text.is_empty() && !text.ends_with(['\n', '\r']) {
        let eol = src.eol();
        return Edit {
            start: pos,
            end: pos,
            with: format!("{eol}{}", lines.strip_suffix(eol).unwrap_or(lines)),
        };
    }
    Edit {
        start: pos,
        end: pos,
        with: lines.to_string(),
    }
}

/// The entry a spec asks for, as (field, value) in writing order.
fn fields_for(spec: &ImageSpec, existing: Option<&Entry>) -> Vec<(&'static str, String)> {
    let has = |k: &str| existing.and_then(|e| e.value_of(k));
    let mut out = vec![("name", spec.name.clone())];
    for (k, f) in [
        ("newName", &spec.new_name),
        ("newTag", &spec.new_tag),
        ("digest", &spec.digest),
    ] {
        if let Some(v) = f.resolve(has(k).as_deref()) {
            out.push((k, v));
        }
    }
    out
}

fn apply(file: &str, text: &str, spec: &ImageSpec) -> Result<String, EditError> {
    let doc = load(file, text)?;
    let src = &doc.src;
    let images = images(file, &doc)?;
    let edits = match &images {
        Some(images) => match images
            .entries
            .iter()
            .find(|e| e.name.as_deref() == Some(spec.name.as_str()))
        {
            Some(entry) => edit_entry(src, entry, spec),
            None => match &images.seq {
                Some(seq) => vec![insert_entry(src, images, seq, spec)],
                None => fill_null(&doc, images, spec),
            },
        },
        None => vec![add_images_key(&doc, spec)],
    };
    apply_edits(file, src, edits)
}

/// Rewrites an existing entry's fields as the spec says.
fn edit_entry(src: &Source, entry: &Entry, spec: &ImageSpec) -> Vec<Edit> {
    let want = fields_for(spec, Some(entry));
    let styles = entry.styles();
    let prefer = if styles.value == Quote::Single {
        Quote::Single
    } else {
        Quote::Double
    };
    let mut edits = Vec::new();
    let mut removed = vec![false; entry.pairs.len()];
    let mut added: Vec<(&str, &str)> = Vec::new();
    for field in ["newName", TAG_SUFFIX, "newTag", "digest"] {
        let target = want
            .iter()
            .find(|(k, _)| *k == field)
            .map(|(_, v)| v.as_str());
        let at = entry.pairs.iter().position(|p| p.name == field);
        match (at, target) {
            (Some(i), None) if entry.pairs[i].text().is_some() => removed[i] = true,
            (Some(i), Some(v)) if entry.pairs[i].text() != Some(v) => {
                let p = &entry.pairs[i];
                let value = render(v, p.quote(), prefer, entry.flow);
                let lead = if !p.has_colon {
                    ": "
                } else if p.value.is_empty_scalar() {
                    " "
                } else {
                    ""
                };
                edits.push(Edit {
                    start: p.span.0,
                    end: p.span.1,
                    with: format!("{lead}{value}"),
                });
            }
            (None, Some(v)) => added.push((field, v)),
            _ => {}
        }
    }
    edits.extend(remove_pairs(src, entry, &removed));
    // New fields go after the kept field that comes before them in writing order.
    let rank = |k: &str| FIELDS.iter().position(|f| *f == k);
    let mut groups: Vec<(usize, Vec<(&str, &str)>)> = Vec::new();
    for (field, value) in added {
        let anchor = (0..entry.pairs.len())
            .filter(|&i| {
                !removed[i]
                    && rank(entry.pairs[i].name)
                        .is_some_and(|r| r < rank(field).unwrap_or(usize::MAX))
            })
            .max_by_key(|&i| rank(entry.pairs[i].name))
            .unwrap_or(entry.pairs.len() - 1);
        match groups.iter_mut().find(|(a, _)| *a == anchor) {
            Some((_, g)) => g.push((field, value)),
            None => groups.push((anchor, vec![(field, value)])),
        }
    }
    for (anchor, fields) in groups {
        let after = &entry.pairs[anchor];
        if entry.flow {
            let text: String = fields
                .iter()
                .map(|(k, v)| format!(", {}", styles.pair(k, v, true)))
                .collect();
            edits.push(Edit {
                start: after.span.1,
                end: after.span.1,
                with: text,
            });
        } else {
            let indent = " ".repeat(src.col(entry.pairs[0].key.start));
            let eol = src.eol();
            let text: String = fields
                .iter()
                .map(|(k, v)| format!("{indent}{}{eol}", styles.pair(k, v, false)))
                .collect();
            edits.push(insert_after_line(src, after.span.1, &text));
        }
    }
    edits
}

/// Removes the marked pairs: whole lines in a block entry, `, key: value` in a flow one.
fn remove_pairs(src: &Source, entry: &Entry, removed: &[bool]) -> Vec<Edit> {
    let mut edits = Vec::new();
    let pairs = &entry.pairs;
    let mut i = 0;
    while i < pairs.len() {
        if !removed[i] {
            i += 1;
            continue;
        }
        let mut j = i;
        while j + 1 < pairs.len() && removed[j + 1] {
            j += 1;
        }
        // A run that starts the entry ends where the first kept key starts, so `- ` stays.
        let first_kept = pairs.get(j + 1).map(|p| p.key.start);
        let edit = match (entry.flow, i) {
            (true, 0) => Edit {
                start: pairs[0].key.start,
                end: first_kept.unwrap_or(pairs[j].span.1),
                with: String::new(),
            },
            (true, _) => Edit {
                start: pairs[i - 1].span.1,
                end: pairs[j].span.1,
                with: String::new(),
            },
            (false, 0) => Edit {
                start: pairs[0].key.start,
                end: first_kept.unwrap_or_else(|| src.next_line_start(pairs[j].span.1)),
                with: String::new(),
            },
            // Line by line, so comment lines between removed keys stay.
            (false, _) => {
                edits.extend(pairs[i..=j].iter().map(|p| Edit {
                    start: src.line_start(p.key.start),
                    end: src.next_line_start(p.span.1),
                    with: String::new(),
                }));
                i = j + 1;
                continue;
            }
        };
        edits.push(edit);
        i = j + 1;
    }
    edits
}

/// The text of a new entry in flow style, e.g. `{name: app, newTag: v1}`.
fn flow_entry(fields: &[(&str, String)], styles: Styles, padded: bool) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| styles.pair(k, v, true))
        .collect();
    if padded {
        format!("{{ {} }}", body.join(", "))
    } else {
        format!("{{{}}}", body.join(", "))
    }
}

/// The lines of a new block entry: `- name: …` at `dash` columns, further keys at `key`.
fn block_entry(
    fields: &[(&str, String)],
    dash: usize,
    key: usize,
    styles: Styles,
    eol: &str,
) -> String {
    let mut out = String::new();
    for (i, (k, v)) in fields.iter().enumerate() {
        if i == 0 {
            out.push_str(&format!(
                "{}-{}",
                " ".repeat(dash),
                " ".repeat(key.saturating_sub(dash + 1).max(1))
            ));
        } else {
            out.push_str(&" ".repeat(key));
        }
        out.push_str(&format!("{}{eol}", styles.pair(k, v, false)));
    }
    out
}

/// The first byte from `from` on that is not blank space or part of a comment.
fn next_token(src: &Source, from: usize) -> Option<usize> {
    let bytes = src.text.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'#' => i = src.line_end(i),
            _ => return Some(i),
        }
    }
    None
}

/// Where the `-` of block entry `k` is: the first token after the previous entry (or after
/// the `images:` colon).
fn dash_of(src: &Source, images: &Images, k: usize) -> Option<usize> {
    let from = if k == 0 {
        images.colon
    } else {
        images.entries[k - 1].node.end?
    };
    next_token(src, from).filter(|&i| src.text.as_bytes()[i] == b'-')
}

/// Adds an entry for `spec` to an existing list: in sorted position when the list is sorted
/// by name, else at the end, in the layout of its neighbour.
fn insert_entry(src: &Source, images: &Images, seq: &Seq, spec: &ImageSpec) -> Edit {
    let fields = fields_for(spec, None);
    let entries = &images.entries;
    let name_of = |e: &Entry| e.name.clone().unwrap_or_default();
    let sorted = entries.windows(2).all(|w| name_of(&w[0]) < name_of(&w[1]));
    let before = if sorted {
        entries.iter().position(|e| name_of(e) > spec.name)
    } else {
        None
    };
    let Some(reference) = before.map(|k| &entries[k]).or(entries.last()) else {
        // An empty flow list, `[]`.
        return Edit {
            start: seq.close,
            end: seq.close,
            with: flow_entry(&fields, Styles::default(), false),
        };
    };
    let styles = reference.styles();
    let padded = src.text[reference.node.start..].starts_with("{ ");
    if seq.flow {
        let text = flow_entry(&fields, styles, padded);
        let eol = src.eol();
        // A flow list that puts each entry on a line of its own gets the new one on its own line.
        let own_line = |k: usize| {
            let before = if k == 0 {
                seq.node.start
            } else {
                entries[k - 1].node.end.unwrap_or(seq.node.start)
            };
            let start = entries[k].node.start;
            let indent = &src.text[src.line_start(start)..start];
            (src.line_of(before) != src.line_of(start) && indent.trim().is_empty())
                .then_some(indent)
        };
        return match before {
            Some(k) => {
                let with = match own_line(k) {
                    Some(indent) => format!("{text},{eol}{indent}"),
                    None => format!("{text}, "),
                };
                Edit {
                    start: entries[k].node.start,
                    end: entries[k].node.start,
                    with,
                }
            }
            None => {
                let end = reference.node.end.unwrap_or(seq.close);
                let with = match own_line(entries.len() - 1) {
                    Some(indent) => format!(",{eol}{indent}{text}"),
                    None => format!(", {text}"),
                };
                Edit {
                    start: end,
                    end,
                    with,
                }
            }
        };
    }
    let k = before.unwrap_or(entries.len() - 1);
    let dash = dash_of(src, images, k).unwrap_or_else(|| src.line_start(reference.node.start));
    let dash_col = src.col(dash);
    let key_col = if reference.flow || src.line_of(dash) != reference.node.line {
        dash_col + 2
    } else {
        src.col(reference.node.start)
    };
    let eol = src.eol();
    let text = if reference.flow {
        format!(
            "{}- {}{eol}",
            " ".repeat(dash_col),
            flow_entry(&fields, styles, padded)
        )
    } else {
        block_entry(&fields, dash_col, key_col, styles, eol)
    };
    match before {
        Some(_) => {
            // Above the comment lines that sit right on top of the entry: they belong to it.
            let floor = src.next_line_start(if k == 0 {
                images.colon
            } else {
                entries[k - 1].node.end.unwrap_or(images.colon)
            });
            let mut at = src.line_start(dash);
            while at > floor {
                let prev = src.line_start(at - 1);
                if prev < floor || !src.text[prev..at].trim_start().starts_with('#') {
                    break;
                }
                at = prev;
            }
            Edit {
                start: at,
                end: at,
                with: text,
            }
        }
        None => insert_after_line(src, reference.node.end.unwrap_or(dash), &text),
    }
}

/// How far block lists in the root mapping indent their `-` past their key (0 when flush, or
/// when there is none to copy).
fn list_indent(doc: &Doc) -> usize {
    let Kind::Map { pairs, .. } = &doc.root.kind else {
        return 0;
    };
    pairs
        .iter()
        .find_map(|(k, v)| match &v.kind {
            Kind::Seq {
                flow: false, items, ..
            } if !items.is_empty() => {
                let dash = next_token(&doc.src, colon_after(doc.src.text, k)?)?;
                Some(doc.src.col(dash).saturating_sub(doc.src.col(k.start)))
            }
            _ => None,
        })
        .unwrap_or(0)
}

/// `images:` (or `images: ~`) with no list yet: write one.
fn fill_null(doc: &Doc, images: &Images, spec: &ImageSpec) -> Vec<Edit> {
    let src = &doc.src;
    let fields = fields_for(spec, None);
    let value_end = if images.value.is_empty_scalar() {
        images.colon
    } else {
        images.value.end.unwrap_or(images.colon)
    };
    if matches!(doc.root.kind, Kind::Map { flow: true, .. }) {
        let text = flow_entry(&fields, Styles::default(), false);
        return vec![Edit {
            start: images.colon,
            end: value_end,
            with: format!(" [{text}]"),
        }];
    }
    let key_col = src.col(images.key.start);
    let dash = key_col + list_indent(doc);
    let lines = block_entry(&fields, dash, dash + 2, Styles::default(), src.eol());
    // `images: ~` loses the ` ~`; a comment after it stays.
    let mut edits = vec![insert_after_line(src, images.colon, &lines)];
    if value_end > images.colon {
        edits.push(Edit {
            start: images.colon,
            end: value_end,
            with: String::new(),
        });
    }
    edits
}

/// No `images:` key: add one at the end of the root mapping.
fn add_images_key(doc: &Doc, spec: &ImageSpec) -> Edit {
    let src = &doc.src;
    let text = src.text;
    let fields = fields_for(spec, None);
    let Kind::Map { flow, pairs, close } = &doc.root.kind else {
        unreachable!("load checks the root")
    };
    if *flow {
        let list = format!(
            "images: [{}]",
            flow_entry(&fields, Styles::default(), false)
        );
        return match pairs.last().and_then(|(_, v)| v.end) {
            Some(end) => Edit {
                start: end,
                end,
                with: format!(", {list}"),
            },
            None => Edit {
                start: *close,
                end: *close,
                with: list,
            },
        };
    }
    let eol = src.eol();
    let key_col = src.col(doc.root.start);
    let dash = key_col + list_indent(doc);
    let block = format!(
        "{}images:{eol}{}",
        " ".repeat(key_col),
        block_entry(&fields, dash, dash + 2, Styles::default(), eol)
    );
    // Before a `...` that ends the document, else at the end of the file.
    let close_line = src.line_start((*close).min(text.len()));
    if text[close_line..].starts_with("...") {
        return Edit {
            start: close_line,
            end: close_line,
            with: block,
        };
    }
    if text.is_empty() || text.ends_with(['\n', '\r']) {
        Edit {
            start: text.len(),
            end: text.len(),
            with: block,
        }
    } else {
        Edit {
            start: text.len(),
            end: text.len(),
            with: format!("{eol}{}", block.strip_suffix(eol).unwrap_or(&block)),
        }
    }
}

/// The safety net: the edited text must read back with the entry the spec asked for.
fn check(file: &str, text: &str, spec: &ImageSpec) -> Result<(), EditError> {
    let got = current_image(file, text.as_bytes(), &spec.name)?;
    let got = got.as_ref();
    let fields = |e: Option<&ImageEntry>| {
        e.map(|e| (e.new_name.clone(), e.new_tag.clone(), e.digest.clone()))
    };
    let ok = got.is_some()
        && [
            (&spec.new_name, got.and_then(|e| e.new_name.as_deref())),
            (&spec.new_tag, got.and_then(|e| e.new_tag.as_deref())),
            (&spec.digest, got.and_then(|e| e.digest.as_deref())),
        ]
        .iter()
        .all(|(f, v)| match f {
            super::Field::Absent => v.is_none(),
            super::Field::Keep => true,
            super::Field::Set(s) => *v == Some(s.as_str()),
        });
    if !ok {
        return Err(refused(
            file,
            1,
            format!(
                "internal error: the edit for {:?} read back as {:?}",
                spec.name,
                fields(got)
            ),
            Some("please report this with the file"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kustomize::parse_spec;

    #[test]
    fn invalid_utf8_is_refused_with_its_line() {
        let err = set_images(
            "k.yaml",
            b"resources:\n- ../base\nimages:\n- name: \xff\n",
            &[],
        )
        .unwrap_err();
        use crate::failure::Locate;
        assert_eq!(err.location().unwrap().line, Some(4));
        assert!(err.to_string().contains("not valid UTF-8"), "{err}");
    }

    #[test]
    fn current_image_reads_an_entry_and_treats_null_as_absent() {
        let src = b"images:\n- name: app\n  newName: 'reg/app'\n  newTag: ~\n  digest: \"sha256:00\"\n- name: web\n";
        let app = current_image("k", src, "app").unwrap().unwrap();
        assert_eq!(
            app,
            ImageEntry {
                name: "app".into(),
                new_name: Some("reg/app".into()),
                new_tag: None,
                digest: Some("sha256:00".into())
            }
        );
        assert_eq!(
            current_image("k", src, "web").unwrap().unwrap().new_tag,
            None
        );
        assert_eq!(current_image("k", src, "nope").unwrap(), None);
        assert_eq!(current_image("k", b"resources: []\n", "app").unwrap(), None);
    }

    #[test]
    fn the_seed_overlay_of_the_test_monorepo_takes_a_promotion() {
        let seed = "images:\n  - name: auth-service\n    newName: registry.local/nova/auth-service\n    newTag: seed\n";
        let spec = parse_spec("auth-service=registry.local/nova/auth-service:0123456789abcdef0123456789abcdef01234567").unwrap();
        let out = set_images("k", seed.as_bytes(), &[spec]).unwrap();
        insta::assert_snapshot!(String::from_utf8(out).unwrap(), @r"
        images:
          - name: auth-service
            newName: registry.local/nova/auth-service
            newTag: 0123456789abcdef0123456789abcdef01234567
        ");
    }
}
