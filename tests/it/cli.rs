//! Integration tests: the command line and the contract `action.yml` declares.

use std::collections::BTreeMap;

use deploy_action::inputs::INPUTS;
use deploy_action::report::OUTPUTS;
use yaml_rust2::{Yaml, YamlLoader};

use crate::support::{Action, Remote, Workspace, bin};

fn action_yml() -> Yaml {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

fn keys(y: &Yaml) -> Vec<String> {
    y.as_hash()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn action_yml_declares_exactly_the_inputs_the_binary_reads_with_the_same_defaults() {
    let doc = action_yml();
    let declared: BTreeMap<String, String> = doc["inputs"]
        .as_hash()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let default = match &v["default"] {
                Yaml::String(s) => s.clone(),
                Yaml::BadValue => String::new(),
                other => panic!("input {k:?}: default must be a string, got {other:?}"),
            };
            (k.as_str().unwrap().to_string(), default)
        })
        .collect();
    let read: BTreeMap<String, String> = INPUTS
        .iter()
        .map(|(k, d)| (k.to_string(), d.to_string()))
        .collect();
    let mut expected = read.clone();
    // The runner expands this expression; the binary's own default for it is "no token".
    expected.insert("github-token".into(), "${{ github.token }}".into());
    assert_eq!(declared, expected);
    for (name, spec) in doc["inputs"].as_hash().unwrap() {
        assert!(
            spec["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name:?} has no description"
        );
    }
    assert_eq!(doc["inputs"]["service"]["required"], Yaml::Boolean(true));
}

#[test]
fn action_yml_declares_every_output_the_binary_writes() {
    let doc = action_yml();
    assert_eq!(
        keys(&doc["outputs"]),
        OUTPUTS.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );
}

#[test]
fn action_yml_runs_a_prebuilt_image() {
    let doc = action_yml();
    assert_eq!(doc["runs"]["using"].as_str(), Some("docker"));
    assert!(
        doc["runs"]["image"]
            .as_str()
            .unwrap()
            .starts_with("docker://")
    );
}

#[test]
fn help_and_version_are_available() {
    let help = std::process::Command::new(bin())
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("set-image"), "{text}");
    let version = std::process::Command::new(bin())
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("deploy-action {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn every_input_problem_is_reported_in_one_error_and_nothing_changes() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let head = remote.head();
    let run = Action::new(&ws.path)
        .input("service", "Auth")
        .input("dry-run", "maybe")
        .input("aws-region", "tokyo")
        .input("max-attempts", "0")
        .input("kustomization", "/etc")
        .run();
    assert_eq!(run.code, Some(1));
    let errors: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.all_output());
    insta::assert_snapshot!(errors[0]);
    assert_eq!(remote.head(), head);
    assert!(run.outputs.is_empty());
}

#[test]
fn an_invalid_cache_from_reference_is_an_input_error_reported_with_the_others() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let head = remote.head();
    let before = ws.overlay();
    let run = Action::new(&ws.path)
        .input("service", "auth-service")
        .input("registry", "127.0.0.1:5000")
        .input("cache-from", "127.0.0.1:5000/Nova/svc::bad")
        .input("max-attempts", "0")
        .run();
    assert_eq!(run.code, Some(1), "{}", run.all_output());
    let errors: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.all_output());
    assert!(
        errors[0].starts_with("::error::2 invalid inputs:"),
        "{}",
        errors[0]
    );
    assert!(
        errors[0]
            .contains("cache-from: \"127.0.0.1:5000/Nova/svc::bad\" is not an image reference"),
        "{}",
        errors[0]
    );
    assert!(!run.stdout.contains("::warning::"), "{}", run.stdout);
    assert_eq!(remote.head(), head);
    assert_eq!(ws.overlay(), before);
}

#[test]
fn a_hyphenated_input_arrives_under_its_hyphenated_name() {
    // `INPUT_DRY-RUN` cannot be set from a shell, which is why the image's entrypoint is exec-form.
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let head = remote.head();
    let run = Action::promote(&ws.path, "auth-service", "v1")
        .input("dry-run", "true")
        .run();
    run.assert_ok();
    assert_eq!(run.output("changed"), "true");
    assert_eq!(run.output("commit"), "");
    assert_eq!(remote.head(), head, "dry-run must not push");
    let run = Action::promote(&ws.path, "auth-service", "v1")
        .input("aws-region", "not-a-region!")
        .run();
    assert!(run.stdout.contains("aws-region: "), "{}", run.all_output());
}

#[test]
fn a_local_run_prints_outputs_instead_of_writing_the_output_file() {
    let remote = Remote::file();
    let ws = Workspace::clone_of(&remote);
    let run = Action::promote(&ws.path, "auth-service", "v1")
        .env_remove("GITHUB_OUTPUT")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("GITHUB_ACTIONS")
        .input("dry-run", "true")
        .run();
    run.assert_ok();
    assert!(
        run.stdout.lines().any(|l| l == "changed=true"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("| auth-service |"), "{}", run.stdout);
    assert!(
        !run.stdout.contains("::"),
        "no workflow commands locally:\n{}",
        run.stdout
    );
}

#[test]
fn the_readme_tables_list_every_input_with_its_default_and_every_output() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let doc = action_yml();
    for (name, spec) in doc["inputs"].as_hash().unwrap() {
        let name = name.as_str().unwrap();
        let default = spec["default"].as_str().unwrap_or("");
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}`")))
            .unwrap_or_else(|| panic!("README has no row for input {name}"));
        let shown = row.split(" | ").nth(1).unwrap().trim();
        let expected = if default.is_empty() {
            String::new()
        } else {
            format!("`{default}`")
        };
        assert_eq!(shown, expected, "README default of {name}");
    }
    for out in keys(&doc["outputs"]) {
        assert!(
            readme
                .lines()
                .any(|l| l.starts_with(&format!("| `{out}` |"))),
            "README has no row for output {out}"
        );
    }
}
