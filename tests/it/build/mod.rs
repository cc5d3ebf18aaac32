//! Build, push and skip-existing against the real daemon and registry that `scripts/test.sh`
//! starts: `library.rs` drives the `docker` and `registry` modules directly, `action.rs` runs the
//! binary as a workflow would.

mod action;
mod buildkit;
mod library;

use std::path::{Path, PathBuf};

use bollard::Docker;
use deploy_action::docker::build::{self, BuildRequest, Builder, BuiltImage};
use deploy_action::github::Runner;
use deploy_action::registry::ImageRef;

use crate::support::copy_dir;
use crate::support::services::Services;

fn runner() -> Runner {
    Runner::default()
}

/// A copy of `tests/fixtures/service` in a scratch directory, free to change.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("service");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/service"),
        &dir,
    );
    Fixture { _tmp: tmp, dir }
}

/// The fixture's build for `image`; `greeting` keys the RUN step's cache, so a fresh value
/// makes the step run, and reusing one lets it hit the cache.
fn request(fx: &Fixture, s: &Services, image: &ImageRef, greeting: &str) -> BuildRequest {
    request_in(&fx.dir, s, image, greeting)
}

/// [`request`] for a context directory of the test's own.
fn request_in(dir: &Path, s: &Services, image: &ImageRef, greeting: &str) -> BuildRequest {
    let mut labels = vec![("com.example.team".to_string(), "nova".to_string())];
    labels.extend(build::oci_labels(
        Some("https://github.invalid/nova/monorepo"),
        "0123abc",
        "2026-01-01T00:00:00Z",
    ));
    BuildRequest {
        context: dir.to_path_buf(),
        dockerfile: dir.join("Dockerfile"),
        image: image.clone(),
        build_args: vec![
            ("BASE".into(), s.base_image.clone()),
            ("GREETING".into(), greeting.into()),
            ("WORK".into(), "1".into()),
        ],
        labels,
        target: None,
        cache_from: Vec::new(),
        builder: Builder::Classic,
        network: None,
        inline_cache: false,
        secrets: Default::default(),
        parsed: None,
        dockerfile_name: "Dockerfile".into(),
    }
}

async fn build_ok(docker: &Docker, req: &BuildRequest) -> BuiltImage {
    build::build(docker, req, None, &runner())
        .await
        .unwrap_or_else(|e| panic!("build of {} failed: {e}", req.image))
}
