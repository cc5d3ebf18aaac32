//! The edit case table, run through the library: exact bytes, only lines of the `images:` list
//! changed, the entries read back, idempotence, and every refusal with its file and line.

use deploy_action::failure::{Failure, Locate};
use deploy_action::kustomize::{
    EditError, Field, ImageSpec, current_image, parse_spec, set_images,
};

use super::cases::{CASES, Case, Expect};

/// Several specs for one name: the last wins, as in kustomize.
fn last_wins(specs: Vec<ImageSpec>) -> Vec<ImageSpec> {
    let mut out: Vec<ImageSpec> = Vec::new();
    for spec in specs {
        match out.iter_mut().find(|s| s.name == spec.name) {
            Some(slot) => *slot = spec,
            None => out.push(spec),
        }
    }
    out
}

/// How the action shows a refusal: `file:line: message`, then `hint: …` on its own line.
fn shown(err: EditError) -> String {
    let f = Failure::of(&err.into());
    match &f.hint {
        Some(h) => format!("{}\nhint: {h}", f.located_message()),
        None => f.located_message(),
    }
}

fn specs(case: &Case) -> Vec<ImageSpec> {
    case.specs
        .iter()
        .map(|s| parse_spec(s).unwrap_or_else(|e| panic!("{}: {e}", case.name)))
        .collect()
}

fn run(case: &Case) -> Result<Vec<u8>, EditError> {
    set_images("kustomization.yaml", case.input.as_bytes(), &specs(case))
}

fn successes() -> impl Iterator<Item = (&'static Case, &'static str)> {
    CASES.iter().filter_map(|c| c.output().map(|o| (c, o)))
}

/// The lines an LCS diff cannot pair up: (gone from `a`, new in `b`). Lines keep their
/// line breaks, so a changed ending counts as a change.
fn changed_lines<'t>(a: &'t str, b: &'t str) -> (Vec<&'t str>, Vec<&'t str>) {
    let a: Vec<&str> = a.split_inclusive('\n').collect();
    let b: Vec<&str> = b.split_inclusive('\n').collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut gone, mut new) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            new.push(b[j]);
            j += 1;
        } else {
            gone.push(a[i]);
            i += 1;
        }
    }
    (gone, new)
}

#[test]
fn there_are_enough_cases_and_every_one_has_a_distinct_name() {
    let mut names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), CASES.len());
    assert!(CASES.len() >= 40, "{} cases", CASES.len());
}

#[test]
fn every_successful_edit_produces_exactly_the_expected_bytes() {
    let mut failures = Vec::new();
    for (case, want) in successes() {
        match run(case) {
            Ok(got) if got == want.as_bytes() => {}
            Ok(got) => failures.push(format!(
                "{}:\n--- want\n{want}\n--- got\n{}",
                case.name,
                String::from_utf8_lossy(&got)
            )),
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn only_lines_of_the_images_list_change() {
    const IMAGE_WORDS: [&str; 6] = ["name", "newName", "newTag", "digest", "tagSuffix", "images"];
    for (case, _) in successes() {
        let out = String::from_utf8(run(case).unwrap()).unwrap();
        let (mut gone, mut new) = changed_lines(case.input, &out);
        // A last line without a line break gains one when lines are added after it.
        if let Some(last) = case.input.rsplit('\n').next().filter(|l| !l.is_empty()) {
            gone.retain(|l| *l != last);
            new.retain(|l| l.strip_suffix('\n') != Some(last));
        }
        for line in gone.iter().chain(&new) {
            assert!(
                IMAGE_WORDS.iter().any(|w| line.contains(w)),
                "{}: a line outside the images list changed: {line:?}",
                case.name
            );
        }
        for line in &gone {
            assert!(
                !line.trim_start().starts_with('#'),
                "{}: a comment line was dropped: {line:?}",
                case.name
            );
        }
        if matches!(case.expect, Expect::Unchanged { .. }) {
            assert!(gone.is_empty() && new.is_empty(), "{}", case.name);
        }
    }
}

#[test]
fn every_output_reads_back_as_yaml_with_the_entries_the_specs_ask_for() {
    for (case, _) in successes() {
        let out = run(case).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        let docs = yaml_rust2::YamlLoader::load_from_str(text.trim_start_matches('\u{feff}'))
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(docs.len(), 1, "{}", case.name);
        for spec in last_wins(specs(case)) {
            let entry = current_image("k", &out, &spec.name)
                .unwrap()
                .unwrap_or_else(|| panic!("{}: no {}", case.name, spec.name));
            for (field, got) in [
                (&spec.new_name, &entry.new_name),
                (&spec.new_tag, &entry.new_tag),
                (&spec.digest, &entry.digest),
            ] {
                match field {
                    Field::Absent => assert_eq!(got, &None, "{}", case.name),
                    Field::Set(v) => {
                        assert_eq!(got.as_deref(), Some(v.as_str()), "{}", case.name)
                    }
                    Field::Keep => {}
                }
            }
        }
    }
}

#[test]
fn applying_the_same_specs_again_changes_nothing() {
    for (case, _) in successes() {
        let once = run(case).unwrap();
        let twice = set_images("k", &once, &specs(case)).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&twice),
            String::from_utf8_lossy(&once),
            "{}",
            case.name
        );
    }
}

#[test]
fn every_refusal_names_the_file_and_line() {
    let mut text = String::new();
    for case in CASES {
        let Expect::Refused { line, message } = case.expect else {
            continue;
        };
        let err = run(case).expect_err(case.name);
        let location = err.location().expect("a refusal has a location");
        assert_eq!(location.line, Some(line), "{}: {err}", case.name);
        assert_eq!(location.file, "kustomization.yaml");
        let shown = shown(err);
        assert!(
            shown.starts_with(&format!("kustomization.yaml:{line}: ")),
            "{}: {shown}",
            case.name
        );
        assert!(shown.contains(message), "{}: {shown}", case.name);
        assert_eq!(
            shown.lines().count(),
            if shown.contains("\nhint: ") { 2 } else { 1 },
            "{}: {shown}",
            case.name
        );
        text.push_str(&format!(
            "{}\n  {}\n",
            case.name,
            shown.replace('\n', "\n  ")
        ));
    }
    insta::assert_snapshot!("refusals", text);
}

#[test]
fn a_refused_file_is_refused_even_with_nothing_to_set() {
    for case in CASES
        .iter()
        .filter(|c| matches!(c.expect, Expect::Refused { .. }))
    {
        assert!(
            set_images("k", case.input.as_bytes(), &[]).is_err(),
            "{}",
            case.name
        );
    }
}
