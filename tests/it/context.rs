//! The build context we send equals what docker CLI 28 sends: the same files reach
//! `COPY . /ctx` for every `.dockerignore` case, a build from our tar reuses the CLI build's
//! layers (same header fields, same layer cache key), and the tar itself is byte-for-byte the
//! CLI's, captured through a stand-in daemon socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use deploy_action::docker::context::{ContextSpec, plan, write_tar};

use crate::support::services;

/// A context tree with the shapes `.dockerignore` rules trip over.
fn write_tree(dir: &Path) {
    let files: &[(&str, &str)] = &[
        ("README.md", "readme"),
        ("CHANGELOG.md", "changes"),
        ("notes.txt", "notes"),
        ("main.go", "package main"),
        ("go.mod", "module x"),
        ("app.log", "log"),
        ("7seas.txt", "digits first"),
        (".env", "SECRET=1"),
        (".env.local", "SECRET=2"),
        (".git/HEAD", "ref: refs/heads/main"),
        (".git/objects/ab/cdef", "blob"),
        ("node_modules/pkg/index.js", "js"),
        ("node_modules/pkg/package.json", "{}"),
        ("src/app.go", "package src"),
        ("src/app_test.go", "package src"),
        ("src/lib/util.go", "package lib"),
        ("src/lib/util_test.go", "package lib"),
        ("src/lib/README.md", "lib readme"),
        ("docs/guide.md", "guide"),
        ("docs/api/v1.md", "v1"),
        ("docs/img/logo.png", "png"),
        ("build/out.bin", "bin"),
        ("build/tmp/cache.o", "obj"),
        ("logs/a.log", "a"),
        ("logs/deep/b.log", "b"),
        ("keep/keep.txt", "keep"),
        ("keep/drop.txt", "drop"),
        ("[x]", "brackets"),
        ("a*b", "a star in the name"),
        ("!bang", "bang"),
        ("-dash", "dash"),
        ("#hash", "hash"),
        ("dir with space/file", "spaces"),
        ("ünïcode.txt", "unicode"),
        ("scripts/run.sh", "#!/bin/sh\necho hi\n"),
        ("secret.key", "key"),
        ("shared/team.txt", "team"),
        ("suid", "suid"),
        ("hard1", "hard-linked"),
    ];
    for (name, content) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    let long = dir.join("deep").join("a".repeat(100)).join("b".repeat(100));
    std::fs::create_dir_all(&long).unwrap();
    std::fs::write(long.join(format!("{}.txt", "c".repeat(60))), "long path").unwrap();
    std::fs::write(dir.join("deep/short-under-long-dir.txt"), "x".repeat(1000)).unwrap();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::create_dir_all(dir.join("node_modules/.bin")).unwrap();
    std::os::unix::fs::symlink("../pkg/index.js", dir.join("node_modules/.bin/tool")).unwrap();
    std::os::unix::fs::symlink("src", dir.join("link-to-src")).unwrap();
    std::os::unix::fs::symlink("nowhere", dir.join("dangling")).unwrap();
    std::os::unix::fs::symlink(format!("deep/{}", "z".repeat(120)), dir.join("long-link")).unwrap();
    std::fs::hard_link(dir.join("hard1"), dir.join("hard2")).unwrap();
    for (name, mode) in [
        ("scripts/run.sh", 0o755),
        ("secret.key", 0o600),
        ("shared", 0o2775),
        ("suid", 0o4755),
    ] {
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    // An mtime before 1970 needs a PAX record.
    assert!(
        Command::new("touch")
            .args(["-d", "1960-01-01T00:00:00"])
            .arg(dir.join("notes.txt"))
            .status()
            .unwrap()
            .success()
    );
}

fn dockerfile_text() -> String {
    format!(
        "FROM {}\nCOPY . /ctx\nRUN find /ctx -exec stat -c '%n %a %F %s' {{}} + | sort > /list\n",
        services().base_image
    )
}

/// A context directory with the tree, a Dockerfile and the given `.dockerignore`.
struct Case {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    dockerfile: PathBuf,
}

impl Case {
    fn new(dockerignore: Option<&str>) -> Case {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ctx");
        std::fs::create_dir_all(&dir).unwrap();
        write_tree(&dir);
        let dockerfile = dir.join("Dockerfile");
        std::fs::write(&dockerfile, dockerfile_text()).unwrap();
        if let Some(text) = dockerignore {
            std::fs::write(dir.join(".dockerignore"), text).unwrap();
        }
        Case {
            _tmp: tmp,
            dir,
            dockerfile,
        }
    }

    fn spec(&self) -> ContextSpec {
        ContextSpec {
            context_dir: self.dir.clone(),
            dockerfile: self.dockerfile.clone(),
        }
    }

    /// `docker build` by the CLI, classic builder.
    fn cli_build(&self) -> String {
        let out = docker()
            .args(["build", "-q", "-f"])
            .arg(&self.dockerfile)
            .arg(&self.dir)
            .output()
            .unwrap();
        image_id(out, "docker build (CLI context)")
    }

    /// `docker build` of our tar, fed on stdin with our Dockerfile name.
    fn our_build(&self) -> String {
        let spec = self.spec();
        let plan = plan(&spec).unwrap();
        let tar_path = self._tmp.path().join("ours.tar");
        write_tar(&plan, &spec, std::fs::File::create(&tar_path).unwrap()).unwrap();
        let out = docker()
            .args(["build", "-q", "-f", &plan.dockerfile_name, "-"])
            .stdin(std::fs::File::open(&tar_path).unwrap())
            .output()
            .unwrap();
        image_id(out, "docker build (our tar)")
    }
}

impl Case {
    /// `docker build` with BuildKit by Debian's CLI 20.10 (CLI 28 needs buildx for that): the
    /// context goes through its session, as ours does.
    fn cli_buildkit_build(&self) -> String {
        let out = Command::new("/usr/bin/docker")
            .env("DOCKER_HOST", &services().docker_host)
            .env("DOCKER_BUILDKIT", "1")
            .args(["build", "-q", "--network=none", "-f"])
            .arg(&self.dockerfile)
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        image_id(out, "docker build (CLI, BuildKit)")
    }

    /// Our BuildKit build, through the library.
    fn our_buildkit_build(&self) -> String {
        use deploy_action::docker::build::{self, BuildRequest, Builder};
        let image = deploy_action::registry::ImageRef::tagged(
            "da-test",
            &format!("ctx-{}", crate::support::registry::unique_name()),
            "bk",
        );
        let req = BuildRequest {
            context: self.dir.clone(),
            dockerfile: self.dockerfile.clone(),
            dockerfile_name: "Dockerfile".into(),
            image: image.clone(),
            build_args: Vec::new(),
            labels: Vec::new(),
            target: None,
            cache_from: Vec::new(),
            builder: Builder::BuildKit,
            network: Some("none".into()),
            inline_cache: false,
            secrets: Default::default(),
            parsed: None,
        };
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let docker = crate::support::docker::docker().await;
            build::build(
                &docker,
                &req,
                None,
                &deploy_action::github::Runner::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("our BuildKit build: {e:?}"))
            .id
        })
    }
}

/// Both BuildKit builds see the same /ctx: the CLI's and ours.
fn assert_same_buildkit_context(dockerignore: Option<&str>) {
    let case = Case::new(dockerignore);
    let (cli, ours) = (case.cli_buildkit_build(), case.our_buildkit_build());
    let (cli_list, our_list) = (listing(&cli), listing(&ours));
    assert!(cli_list.starts_with("/ctx 755 directory"), "{cli_list}");
    assert_eq!(
        our_list, cli_list,
        "/ctx differs under BuildKit for .dockerignore {dockerignore:?}"
    );
}

macro_rules! buildkit_context_cases {
    ($($name:ident: $ignore:expr,)*) => {$(
        #[test]
        #[ignore = "needs dockerd; run by scripts/test.sh"]
        fn $name() {
            let _daemon = crate::support::docker::shared_daemon();
            assert_same_buildkit_context($ignore);
        }
    )*};
}

buildkit_context_cases! {
    with_buildkit_no_dockerignore_sends_everything: None,
    with_buildkit_an_exception_re_includes_one_file: Some("*.md\n!README.md"),
    with_buildkit_an_exception_inside_an_excluded_directory_re_includes_it: Some("node_modules\n!node_modules/pkg/package.json"),
    with_buildkit_a_literal_exception_opens_an_excluded_directory: Some("docs\n!docs/api/v1.md"),
    with_buildkit_a_double_star_exception_does_not_open_an_excluded_directory: Some("docs\n!**/v1.md"),
    with_buildkit_everything_but_one_directory_leaves_out_the_build_files_too: Some("*\n!src"),
    with_buildkit_excluding_the_build_files_leaves_them_out: Some("Dockerfile\n.dockerignore"),
    with_buildkit_a_trailing_double_star_with_an_exception: Some("src/**\n!src/lib"),
    with_buildkit_a_caret_class_negates_and_an_exclamation_class_is_literal: Some("[^a-m]*\n[!a]*"),
    with_buildkit_symlinks_hard_links_and_modes_arrive_as_the_cli_sends_them: Some("*.md"),
    with_buildkit_long_paths_are_matched_whole: Some("deep/a*/b*"),
}

#[test]
#[ignore = "needs dockerd; run by scripts/test.sh"]
fn with_buildkit_a_dockerfile_outside_the_context_is_read_from_its_own_directory() {
    let _daemon = crate::support::docker::shared_daemon();
    for ignore in [None, Some("*")] {
        let mut case = Case::new(ignore);
        let outside = case._tmp.path().join("elsewhere/Dockerfile");
        std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
        std::fs::rename(&case.dockerfile, &outside).unwrap();
        case.dockerfile = outside;
        let (cli, ours) = (case.cli_buildkit_build(), case.our_buildkit_build());
        assert_eq!(listing(&ours), listing(&cli), "{ignore:?}");
    }
}

fn docker() -> Command {
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_HOST", &services().docker_host)
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::null());
    cmd
}

fn image_id(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn listing(image: &str) -> String {
    let out = docker()
        .args(["run", "--rm", image, "cat", "/list"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker run {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Both builds see the same /ctx, and ours is the CLI's cached image.
fn assert_same_context(dockerignore: Option<&str>) {
    let case = Case::new(dockerignore);
    let cli = case.cli_build();
    let ours = case.our_build();
    let (cli_list, our_list) = (listing(&cli), listing(&ours));
    assert_eq!(
        our_list, cli_list,
        "/ctx differs for .dockerignore {dockerignore:?}"
    );
    assert!(
        cli_list.starts_with("/ctx 755 directory"),
        "the RUN step listed nothing:\n{cli_list}"
    );
    assert_eq!(
        ours, cli,
        "a build of our tar should reuse the CLI build's layers for {dockerignore:?}"
    );
}

macro_rules! context_cases {
    ($($name:ident: $ignore:expr,)*) => {$(
        #[test]
        #[ignore = "needs dockerd; run by scripts/test.sh"]
        fn $name() {
            let _daemon = crate::support::docker::shared_daemon();
            assert_same_context($ignore);
        }
    )*};
}

context_cases! {
    no_dockerignore_sends_everything: None,
    an_empty_dockerignore_sends_everything: Some(""),
    a_root_glob_leaves_out_root_markdown_only: Some("*.md"),
    a_double_star_glob_leaves_out_markdown_at_any_depth: Some("**/*.md"),
    an_exception_re_includes_one_file: Some("*.md\n!README.md"),
    a_directory_name_leaves_out_its_tree: Some("node_modules"),
    an_exception_inside_an_excluded_directory_re_includes_it: Some("node_modules\n!node_modules/pkg/package.json"),
    dotfiles_and_git_are_left_out: Some(".git\n.env*"),
    a_trailing_double_star_keeps_the_directory_entry: Some("src/**"),
    a_trailing_double_star_with_an_exception: Some("src/**\n!src/lib"),
    test_files_at_any_depth_are_left_out: Some("**/*_test.go"),
    a_literal_exception_opens_an_excluded_directory: Some("docs\n!docs/api/v1.md"),
    a_double_star_exception_does_not_open_an_excluded_directory: Some("docs\n!**/v1.md"),
    everything_but_one_directory: Some("*\n!src"),
    everything_is_left_out_but_the_build_files: Some("*"),
    a_double_star_everything_with_an_exception: Some("**\n!src/app.go"),
    a_caret_class_negates: Some("[^a-m]*"),
    an_exclamation_class_is_literal: Some("[!a]*"),
    comments_need_a_hash_first_and_lines_are_trimmed: Some("#app.log\n  *.log  \n #hash\n"),
    an_excluded_directory_with_a_nested_exception: Some("logs/**\n!logs/deep"),
    leading_slashes_and_dot_segments_are_cleaned: Some("/build\n./docs/../logs\n"),
    an_exception_below_a_double_star_exclusion: Some("**/lib\n!src/lib/util.go"),
    escaped_wildcards_are_literal: Some("a\\*b\n\\[x\\]\n"),
    names_with_spaces_dashes_and_bangs: Some("dir with space\n-dash\n\\!bang"),
    unicode_names_match_by_character: Some("*.txt\n!?nïcode.txt"),
    a_later_parent_exception_does_not_rescue_a_child: Some("src/lib\n!src"),
    excluding_the_build_files_still_sends_them: Some("Dockerfile\n.dockerignore"),
    symlinks_are_not_followed: Some("link-to-src/app.go\nnode_modules/.bin"),
    long_paths_are_matched_whole: Some("deep/a*/b*"),
    posix_classes_and_perl_escapes_work_as_in_go: Some("[[:digit:]]*\n\\d*"),
    a_question_mark_is_one_character: Some("hard?\nsu?d"),
    crlf_lines_and_a_bom_are_read_as_docker_reads_them: Some("\u{feff}*.md\r\n!README.md\r\n"),
}

#[test]
#[ignore = "needs dockerd; run by scripts/test.sh"]
fn a_dockerfile_in_a_subdirectory_of_an_excluded_tree_is_still_sent() {
    let _daemon = crate::support::docker::shared_daemon();
    let mut case = Case::new(Some("backend\n*.md"));
    let sub = case.dir.join("backend/auth");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(sub.join("main.go"), "package main").unwrap();
    std::fs::rename(&case.dockerfile, sub.join("Dockerfile")).unwrap();
    case.dockerfile = sub.join("Dockerfile");
    let p = plan(&case.spec()).unwrap();
    assert_eq!(p.dockerfile_name, "backend/auth/Dockerfile");
    let (cli, ours) = (case.cli_build(), case.our_build());
    assert_eq!(listing(&ours), listing(&cli));
    assert_eq!(ours, cli);
}

#[test]
#[ignore = "needs dockerd; run by scripts/test.sh"]
fn a_dockerfile_outside_the_context_is_injected_under_a_generated_name() {
    let _daemon = crate::support::docker::shared_daemon();
    for ignore in [None, Some("*.md\n.dockerignore"), Some("*")] {
        let mut case = Case::new(ignore);
        let outside = case._tmp.path().join("elsewhere/Dockerfile");
        std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
        std::fs::rename(&case.dockerfile, &outside).unwrap();
        case.dockerfile = outside;

        let p = plan(&case.spec()).unwrap();
        assert!(
            p.dockerfile_name.starts_with(".dockerfile.") && p.dockerfile_name.len() == 32,
            "{}",
            p.dockerfile_name
        );
        let injected = p
            .files
            .iter()
            .find(|e| e.name() == p.dockerfile_name)
            .expect("the Dockerfile is in the tar");
        assert_eq!(injected.mode(), 0o600);
        assert!(
            p.files.iter().any(|e| e.name() == ".dockerignore"),
            "the name is added to .dockerignore"
        );

        let (cli, ours) = (case.cli_build(), case.our_build());
        // The generated names differ run to run, so only the files are compared here.
        assert_eq!(
            listing(&ours),
            listing(&cli),
            "/ctx differs for .dockerignore {ignore:?}"
        );
    }
}

#[test]
#[ignore = "needs dockerd; run by scripts/test.sh"]
fn a_copy_layer_from_our_tar_hits_the_cli_builds_cache() {
    let _daemon = crate::support::docker::shared_daemon();
    let case = Case::new(Some("*.log"));
    std::fs::write(
        &case.dockerfile,
        format!("FROM {}\nCOPY . /ctx\n", services().base_image),
    )
    .unwrap();
    // A fresh file makes the CLI's build the first one with this content.
    std::fs::write(
        case.dir.join("nonce"),
        format!("{:?}", std::time::SystemTime::now()),
    )
    .unwrap();
    let cli = case.cli_build();
    let spec = case.spec();
    let p = plan(&spec).unwrap();
    let tar = write_tar(&p, &spec, Vec::new()).unwrap();
    let mut child = docker()
        .args(["build", "-f", &p.dockerfile_name, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&tar).unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{log}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy_step = log
        .split("Step 2/2 : COPY")
        .nth(1)
        .expect("the COPY step ran");
    assert!(
        copy_step.contains("Using cache"),
        "the COPY layer was rebuilt:\n{log}"
    );
    assert!(
        log.contains(&format!(
            "Successfully built {}",
            &cli.trim_start_matches("sha256:")[..12]
        )),
        "{log}"
    );
}

/// The request path and body of the build the CLI sent.
type Captured = Arc<Mutex<Option<(String, Vec<u8>)>>>;

/// A stand-in daemon on a Unix socket that answers the CLI's ping and keeps the build body.
struct FakeDaemon {
    socket: PathBuf,
    body: Captured,
}

impl FakeDaemon {
    fn start(dir: &Path) -> FakeDaemon {
        let socket = dir.join("fake-docker.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let body = Arc::new(Mutex::new(None));
        let seen = body.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let seen = seen.clone();
                std::thread::spawn(move || serve(conn, seen));
            }
        });
        FakeDaemon { socket, body }
    }
}

fn serve(conn: std::os::unix::net::UnixStream, seen: Captured) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let request = line.trim().to_string();
        let (mut length, mut chunked) = (0usize, false);
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            match k.to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(0),
                "transfer-encoding" => chunked = v.trim().eq_ignore_ascii_case("chunked"),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; n + 2];
                reader.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body.resize(length, 0);
            reader.read_exact(&mut body).unwrap();
        }
        let path = request.split(' ').nth(1).unwrap_or("").to_string();
        let head_only = request.starts_with("HEAD");
        let (status, payload) = if path.ends_with("/_ping") {
            ("200 OK", "OK".to_string())
        } else if path.contains("/build") {
            *seen.lock().unwrap() = Some((path.clone(), body));
            (
                "200 OK",
                format!("{{\"aux\":{{\"ID\":\"sha256:{}\"}}}}\n", "0".repeat(64)),
            )
        } else {
            ("404 Not Found", "{\"message\":\"not here\"}".to_string())
        };
        let mut response = format!(
            "HTTP/1.1 {status}\r\nApi-Version: 1.41\r\nOstype: linux\r\nDocker-Experimental: false\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        );
        if !head_only {
            response.push_str(&payload);
        }
        if conn.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn url_param(path: &str, key: &str) -> Option<String> {
    let query = path.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.replace("%2F", "/").replace("%2f", "/"))
    })
}

/// The CLI's own tar for `docker build -f <dockerfile> <context>`, with the `dockerfile` it names.
fn cli_tar(case: &Case) -> (String, Vec<u8>) {
    let daemon = FakeDaemon::start(case._tmp.path());
    let out = Command::new("docker")
        .env("DOCKER_HOST", format!("unix://{}", daemon.socket.display()))
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-f"])
        .arg(&case.dockerfile)
        .arg(&case.dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let captured = daemon.body.lock().unwrap().take();
    let (path, body) = captured.unwrap_or_else(|| {
        panic!(
            "the CLI sent no build: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (url_param(&path, "dockerfile").unwrap_or_default(), body)
}

/// The entry names and header blocks of a tar, for a readable diff.
fn headers(tar: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut ar = tar::Archive::new(tar);
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        out.push(format!(
            "{} type={:?} mode={:o} uid={} gid={} size={} mtime={} link={:?} uname={:?} gname={:?} dev={:?}/{:?}",
            String::from_utf8_lossy(&e.path_bytes()),
            h.entry_type(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.size().unwrap(),
            h.mtime().unwrap_or(0),
            e.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned()),
            h.username_bytes().map(|u| String::from_utf8_lossy(u).into_owned()),
            h.groupname_bytes().map(|g| String::from_utf8_lossy(g).into_owned()),
            h.device_major().ok().flatten(),
            h.device_minor().ok().flatten(),
        ));
    }
    out
}

#[test]
#[ignore = "needs the docker CLI; run by scripts/test.sh"]
fn our_tar_is_byte_for_byte_the_clis() {
    let _daemon = crate::support::docker::shared_daemon();
    for ignore in [
        None,
        Some("*.md\n!README.md\nnode_modules\n!node_modules/pkg"),
        Some("*\n!src\n!deep"),
        Some("docs\n!docs/api/v1.md"),
    ] {
        let case = Case::new(ignore);
        let (cli_name, cli) = cli_tar(&case);
        let spec = case.spec();
        let p = plan(&spec).unwrap();
        let ours = write_tar(&p, &spec, Vec::new()).unwrap();
        assert_eq!(p.dockerfile_name, cli_name, "the dockerfile parameter");
        assert_eq!(
            headers(&ours),
            headers(&cli),
            "entries differ for .dockerignore {ignore:?}"
        );
        assert!(
            ours == cli,
            "same entries but different bytes for .dockerignore {ignore:?}"
        );
    }
}

#[test]
#[ignore = "needs the docker CLI; run by scripts/test.sh"]
fn an_injected_dockerfile_has_the_clis_headers_and_dockerignore_rewrite() {
    let _daemon = crate::support::docker::shared_daemon();
    let mut case = Case::new(Some("*.md\n"));
    let outside = case._tmp.path().join("elsewhere/Dockerfile");
    std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
    std::fs::rename(&case.dockerfile, &outside).unwrap();
    case.dockerfile = outside;
    let (cli_name, mut cli) = cli_tar(&case);
    // The CLI's ReplaceFileTarWrapper closes its pipe before its tar writer, so the last entry's
    // padding and the trailer never leave it (Go's reader takes the end of data as the end of
    // the archive). Ours is complete; complete the CLI's to read it.
    if !cli.ends_with(&[0u8; 1024]) {
        cli.resize(cli.len().div_ceil(512) * 512 + 1024, 0);
    }
    let spec = case.spec();
    let p = plan(&spec).unwrap();
    let ours = write_tar(&p, &spec, Vec::new()).unwrap();
    // Names are random and the injected entries are stamped "now": normalise both.
    let normalise = |tar: &[u8], name: &str| -> Vec<String> {
        let mut h: Vec<String> = headers(tar)
            .into_iter()
            .map(|l| {
                let l = l.replace(name, ".dockerfile.NAME");
                if l.starts_with(".dockerfile.NAME") || l.starts_with(".dockerignore") {
                    l.split(" mtime=").next().unwrap().to_string()
                } else {
                    l
                }
            })
            .collect();
        h.sort();
        h
    };
    assert_eq!(
        normalise(&ours, &p.dockerfile_name),
        normalise(&cli, &cli_name)
    );
    let ignore_of = |tar: &[u8]| -> String {
        let mut ar = tar::Archive::new(tar);
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path_bytes().as_ref() == b".dockerignore" {
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                return s;
            }
        }
        panic!("no .dockerignore")
    };
    assert_eq!(
        ignore_of(&ours).replace(&p.dockerfile_name, "N"),
        ignore_of(&cli).replace(&cli_name, "N")
    );
}
