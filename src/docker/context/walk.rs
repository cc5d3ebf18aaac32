//! The walk: `archive.TarWithOptions`' order and ignore rules, the CLI's kept build files and
//! its injected outside Dockerfile, decided into a [`ContextPlan`] before anything is sent.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;

use super::super::dockerignore::{self, DockerignoreError, MatchInfo, Matcher};
use super::{ContextError, ContextPlan, ContextSpec, DOCKERIGNORE, Entry, EntryKind, Source};

/// Walks the context as docker CLI 28 does and decides every tar entry.
pub fn plan(spec: &ContextSpec) -> Result<ContextPlan, ContextError> {
    let root = resolve_context(&spec.context_dir)?;
    let dockerfile = resolve_dockerfile(&spec.dockerfile)?;
    let rel_dockerfile = go_rel(&root, &dockerfile);
    let outside = rel_dockerfile.starts_with("../") || rel_dockerfile == "..";

    let ignore_path = root.join(DOCKERIGNORE);
    let ignore_text = match fs_err::read(&ignore_path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(ContextError::Read(e)),
    };
    let bad = |source| ContextError::Dockerignore {
        path: ignore_path.clone(),
        source,
    };
    let patterns = dockerignore::read_all(&ignore_text).map_err(bad)?;
    // The CLI validates the file as written before adding its own exceptions.
    Matcher::new(&patterns).map_err(bad)?;
    let matcher =
        Matcher::new(&dockerignore::keep_build_files(patterns, &rel_dockerfile)).map_err(bad)?;

    let mut walker = Walker {
        matcher: &matcher,
        root: &root,
        files: Vec::new(),
        emit_walked_excluded_dirs: false,
        seen_inodes: HashMap::new(),
    };
    walker
        .walk(&root, &[], &MatchInfo::default())
        .map_err(|e| match e {
            WalkError::Io(e) => ContextError::Read(e),
            WalkError::Ignore(source) => bad(source),
        })?;
    let mut files = walker.files;

    // Always sent, even where the CLI's one-parent check would have lost them.
    if !outside && !files.iter().any(|e| e.name == rel_dockerfile.as_bytes()) {
        let md = fs_err::symlink_metadata(&dockerfile).map_err(ContextError::Read)?;
        files.extend(entry_for(rel_dockerfile.as_bytes().to_vec(), &md, None));
    }

    let dockerfile_name = if outside {
        inject_dockerfile(&mut files, &root, &spec.dockerfile)?
    } else {
        rel_dockerfile
    };
    Ok(ContextPlan {
        files,
        dockerfile_name,
    })
}

/// The context as the docker CLI gives it to BuildKit's FileSync: the `.dockerignore` rules as
/// written (BuildKit reads the Dockerfile on its own, so the CLI keeps no build file in the
/// context), nothing injected. Paths named in `follow` alone, with their parent directories,
/// when BuildKit asks for only those (as it does for `.dockerignore` itself).
pub fn synced(
    root: &Path,
    follow: &[String],
    apply_ignore: bool,
) -> Result<Vec<Entry>, ContextError> {
    let root = resolve_context(root)?;
    if !follow.is_empty() {
        return followed(&root, follow);
    }
    let ignore_path = root.join(DOCKERIGNORE);
    let ignore_text = match fs_err::read(&ignore_path) {
        Ok(b) if apply_ignore => String::from_utf8_lossy(&b).into_owned(),
        Ok(_) => String::new(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(ContextError::Read(e)),
    };
    let bad = |source| ContextError::Dockerignore {
        path: ignore_path.clone(),
        source,
    };
    let matcher = Matcher::new(&dockerignore::read_all(&ignore_text).map_err(bad)?).map_err(bad)?;
    let mut walker = Walker {
        matcher: &matcher,
        root: &root,
        files: Vec::new(),
        emit_walked_excluded_dirs: true,
        seen_inodes: HashMap::new(),
    };
    walker
        .walk(&root, &[], &MatchInfo::default())
        .map_err(|e| match e {
            WalkError::Io(e) => ContextError::Read(e),
            WalkError::Ignore(source) => bad(source),
        })?;
    Ok(walker.files)
}

/// Whether `.dockerignore` in `root` reads as docker reads it: checked before a build whose
/// context BuildKit will ask for, so a bad pattern is our error, not the daemon's.
pub fn check_dockerignore(root: &Path) -> Result<(), ContextError> {
    let root = resolve_context(root)?;
    let ignore_path = root.join(DOCKERIGNORE);
    let text = match fs_err::read(&ignore_path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ContextError::Read(e)),
    };
    let bad = |source| ContextError::Dockerignore {
        path: ignore_path.clone(),
        source,
    };
    Matcher::new(&dockerignore::read_all(&text).map_err(bad)?).map_err(bad)?;
    Ok(())
}

/// The entries for `follow` (relative paths): each that exists, after its parent directories.
fn followed(root: &Path, follow: &[String]) -> Result<Vec<Entry>, ContextError> {
    let mut names: std::collections::BTreeSet<Vec<u8>> = Default::default();
    for f in follow {
        let clean = dockerignore::clean(f.trim_start_matches('/'));
        if clean == "." || clean.starts_with("../") || clean == ".." {
            continue;
        }
        let mut prefix = String::new();
        for part in clean.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            names.insert(prefix.clone().into_bytes());
        }
    }
    let mut out = Vec::new();
    for name in names {
        let abs = root.join(OsString::from_vec(name.clone()));
        let md = match fs_err::symlink_metadata(&abs) {
            Ok(md) => md,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ContextError::Read(e)),
        };
        let link = if md.file_type().is_symlink() {
            Some(fs_err::read_link(&abs).map_err(ContextError::Read)?)
        } else {
            None
        };
        out.extend(entry_for(name, &md, link));
    }
    Ok(out)
}

/// `AddDockerfileToBuildContext`: the Dockerfile under a random name, and that name appended to
/// `.dockerignore` (created if missing) so the daemon drops it from the final context.
fn inject_dockerfile(
    files: &mut Vec<Entry>,
    root: &Path,
    dockerfile: &Path,
) -> Result<String, ContextError> {
    let content = fs_err::read(dockerfile).map_err(ContextError::Read)?;
    let name = format!(".dockerfile.{}", random_hex(20));
    let now = now_rounded();
    let suffix = format!("\n{name}\n");
    match files.iter_mut().find(|e| e.name == DOCKERIGNORE.as_bytes()) {
        Some(ignore) => {
            if !matches!(ignore.kind, EntryKind::File { .. }) {
                return Err(ContextError::DockerignoreNotAFile {
                    path: root.join(DOCKERIGNORE),
                });
            }
            let mut data = fs_err::read(root.join(DOCKERIGNORE)).map_err(ContextError::Read)?;
            data.extend_from_slice(suffix.as_bytes());
            ignore.kind = EntryKind::File {
                size: data.len() as u64,
            };
            ignore.source = Source::Inline(Bytes::from(data));
        }
        None => files.push(inline_entry(
            DOCKERIGNORE,
            format!("{DOCKERIGNORE}{suffix}").into_bytes(),
            now,
        )),
    }
    files.push(inline_entry(&name, content, now));
    Ok(name)
}

fn inline_entry(name: &str, data: Vec<u8>, mtime: i64) -> Entry {
    Entry {
        name: name.as_bytes().to_vec(),
        kind: EntryKind::File {
            size: data.len() as u64,
        },
        mode: 0o600,
        mtime,
        dev: (0, 0),
        source: Source::Inline(Bytes::from(data)),
    }
}

fn now_rounded() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_secs() as i64 + i64::from(d.subsec_nanos() >= 500_000_000)
}

fn random_hex(n: usize) -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()[..n].to_string()
}

pub(super) fn resolve_context(dir: &Path) -> Result<PathBuf, ContextError> {
    let root = fs_err::canonicalize(dir).map_err(|e| ContextError::ResolveContext {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let md = fs_err::metadata(&root).map_err(|e| ContextError::ResolveContext {
        path: root.clone(),
        source: e,
    })?;
    if !md.is_dir() {
        return Err(ContextError::ContextNotADirectory(root));
    }
    Ok(root)
}

fn resolve_dockerfile(path: &Path) -> Result<PathBuf, ContextError> {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let real = std::fs::canonicalize(&abs).map_err(|e| ContextError::DockerfileNotFound {
        path: abs.clone(),
        source: e,
    })?;
    if real.is_dir() {
        return Err(ContextError::DockerfileIsADirectory(real));
    }
    Ok(real)
}

/// `filepath.Rel` of two canonical absolute paths, `/`-separated.
fn go_rel(base: &Path, target: &Path) -> String {
    let b: Vec<Component> = base.components().collect();
    let t: Vec<Component> = target.components().collect();
    let common = b.iter().zip(&t).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".to_string(); b.len() - common];
    parts.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

enum WalkError {
    Io(io::Error),
    Ignore(DockerignoreError),
}

impl From<io::Error> for WalkError {
    fn from(e: io::Error) -> Self {
        WalkError::Io(e)
    }
}

struct Walker<'a> {
    matcher: &'a Matcher,
    root: &'a Path,
    files: Vec<Entry>,
    /// fsutil (BuildKit's context) sends an excluded directory it walks for exceptions as an
    /// entry of its own, where the tar of the classic path leaves it to be implied.
    emit_walked_excluded_dirs: bool,
    /// Go keys hard links by inode alone.
    seen_inodes: HashMap<u64, Vec<u8>>,
}

impl Walker<'_> {
    fn walk(&mut self, dir: &Path, dir_rel: &[u8], parent: &MatchInfo) -> Result<(), WalkError> {
        let mut names: Vec<OsString> = fs_err::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            let mut rel = dir_rel.to_vec();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(name.as_bytes());
            let abs = dir.join(&name);
            let md = fs_err::symlink_metadata(&abs)?;
            let rel_str = String::from_utf8_lossy(&rel).into_owned();
            let (skip, info) = self
                .matcher
                .matches_using_parent_results(&rel_str, parent)
                .map_err(WalkError::Ignore)?;
            let is_dir = md.is_dir();
            if skip {
                // An excluded directory is walked (without its own entry) only for exceptions
                // whose literal text lies below it.
                if is_dir && self.matcher.may_descend(&rel_str) {
                    if self.emit_walked_excluded_dirs {
                        self.files.extend(entry_for(rel.clone(), &md, None));
                    }
                    self.walk(&abs, &rel, &info)?;
                }
                continue;
            }
            let link = if md.file_type().is_symlink() {
                Some(fs_err::read_link(&abs)?)
            } else {
                None
            };
            if let Some(mut entry) = entry_for(rel.clone(), &md, link) {
                if !is_dir && md.nlink() > 1 {
                    match self.seen_inodes.get(&md.ino()) {
                        Some(first) => {
                            entry.kind = EntryKind::HardLink {
                                target: first.clone(),
                            };
                            entry.source = Source::None;
                        }
                        None => {
                            self.seen_inodes.insert(md.ino(), entry.name.clone());
                        }
                    }
                }
                if let Source::Disk(p) = &mut entry.source {
                    *p = abs.strip_prefix(self.root).unwrap_or(&abs).to_path_buf();
                }
                self.files.push(entry);
            }
            if is_dir {
                self.walk(&abs, &rel, &info)?;
            }
        }
        Ok(())
    }
}

/// The entry `tar.FileInfoHeader` would make; `None` for a socket, which Go cannot archive.
fn entry_for(mut name: Vec<u8>, md: &std::fs::Metadata, link: Option<PathBuf>) -> Option<Entry> {
    let ft = md.file_type();
    let mut source = Source::None;
    let kind = if ft.is_file() {
        source = Source::Disk(PathBuf::from(OsString::from_vec(name.clone())));
        EntryKind::File { size: md.len() }
    } else if ft.is_dir() {
        name.push(b'/');
        EntryKind::Dir
    } else if ft.is_symlink() {
        EntryKind::Symlink {
            target: link
                .map(|l| l.into_os_string().into_vec())
                .unwrap_or_default(),
        }
    } else if ft.is_fifo() {
        EntryKind::Fifo
    } else if ft.is_char_device() {
        EntryKind::CharDevice
    } else if ft.is_block_device() {
        EntryKind::BlockDevice
    } else {
        return None;
    };
    // moby's statUnix tests S_IFBLK|S_IFCHR bits loosely, so any type sharing a bit gets rdev.
    let dev = if md.mode() & 0o060000 != 0 {
        linux_dev(md.rdev())
    } else {
        (0, 0)
    };
    Some(Entry {
        name,
        kind,
        mode: md.mode() & 0o7777,
        mtime: md.mtime(),
        dev,
        source,
    })
}

fn linux_dev(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000);
    let minor = (dev & 0xff) | ((dev >> 12) & 0xffff_ff00);
    (major, minor)
}

#[cfg(test)]
pub(super) mod tests {
    use std::io::Read as _;

    use super::super::write_tar;
    use super::*;

    /// A context with a Dockerfile and the given `.dockerignore`, plus `files`.
    pub(in crate::docker::context) fn context(
        ignore: Option<&str>,
        files: &[&str],
    ) -> (tempfile::TempDir, ContextSpec) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ctx");
        for f in files.iter().chain(&["Dockerfile"]) {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f.as_bytes()).unwrap();
        }
        if let Some(text) = ignore {
            std::fs::write(dir.join(".dockerignore"), text).unwrap();
        }
        let spec = ContextSpec {
            dockerfile: dir.join("Dockerfile"),
            context_dir: dir,
        };
        (tmp, spec)
    }

    fn names(plan: &ContextPlan) -> Vec<String> {
        plan.files.iter().map(|e| e.name().into_owned()).collect()
    }

    #[test]
    fn the_walk_is_lexical_and_pre_order_with_directories_marked() {
        let (_t, spec) = context(None, &["b/z", "b/a/x", "a", "B"]);
        let p = plan(&spec).unwrap();
        assert_eq!(
            names(&p),
            ["B", "Dockerfile", "a", "b/", "b/a/", "b/a/x", "b/z"]
        );
        assert_eq!(p.dockerfile_name, "Dockerfile");
    }

    #[test]
    fn an_exception_reaches_into_an_excluded_directory_without_its_entry() {
        let (_t, spec) = context(Some("b\n!b/a/x"), &["b/z", "b/a/x", "b/a/y"]);
        assert_eq!(
            names(&plan(&spec).unwrap()),
            [".dockerignore", "Dockerfile", "b/a/x"]
        );
    }

    #[test]
    fn excluded_build_files_are_still_sent() {
        let (_t, spec) = context(Some("*"), &["a"]);
        assert_eq!(
            names(&plan(&spec).unwrap()),
            [".dockerignore", "Dockerfile"]
        );
    }

    #[test]
    fn a_second_name_of_an_inode_is_a_hard_link_to_the_first() {
        let (_t, spec) = context(None, &["one"]);
        std::fs::hard_link(spec.context_dir.join("one"), spec.context_dir.join("two")).unwrap();
        let p = plan(&spec).unwrap();
        let two = p.files.iter().find(|e| e.name() == "two").unwrap();
        assert_eq!(
            two.kind(),
            &EntryKind::HardLink {
                target: b"one".to_vec()
            }
        );
    }

    #[test]
    fn symlinks_are_sent_as_symlinks() {
        let (_t, spec) = context(None, &["d/f"]);
        std::os::unix::fs::symlink("d", spec.context_dir.join("l")).unwrap();
        let p = plan(&spec).unwrap();
        assert_eq!(names(&p), ["Dockerfile", "d/", "d/f", "l"]);
        assert_eq!(
            p.files[3].kind(),
            &EntryKind::Symlink {
                target: b"d".to_vec()
            }
        );
    }

    #[test]
    fn a_dockerfile_outside_the_context_is_injected_and_ignored_by_name() {
        let (tmp, mut spec) = context(Some("*.md"), &["a"]);
        let outside = tmp.path().join("Dockerfile.outside");
        std::fs::write(&outside, "FROM scratch\n").unwrap();
        spec.dockerfile = outside;
        let p = plan(&spec).unwrap();
        assert!(p.dockerfile_name.starts_with(".dockerfile.") && p.dockerfile_name.len() == 32);
        assert_eq!(names(&p).last().unwrap(), &p.dockerfile_name);
        let tar = write_tar(&p, &spec, Vec::new()).unwrap();
        let mut ar = tar::Archive::new(&tar[..]);
        let mut ignore = String::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path_bytes().as_ref() == b".dockerignore" {
                e.read_to_string(&mut ignore).unwrap();
            }
        }
        assert_eq!(ignore, format!("*.md\n{}\n", p.dockerfile_name));
    }

    #[test]
    fn a_missing_dockerfile_names_the_path_looked_for() {
        let (_t, mut spec) = context(None, &[]);
        spec.dockerfile = spec.context_dir.join("backend/auth/Dockerfile");
        let err = plan(&spec).unwrap_err();
        assert!(err.to_string().contains("backend/auth/Dockerfile"), "{err}");
    }

    #[test]
    fn a_bad_dockerignore_names_the_file() {
        let (_t, spec) = context(Some("ok\n!\n"), &[]);
        let err = crate::failure::chain_text(&plan(&spec).unwrap_err());
        assert!(
            err.contains(".dockerignore") && err.contains("illegal exclusion"),
            "{err}"
        );
    }

    #[test]
    fn rel_goes_up_for_a_dockerfile_outside_the_context() {
        assert_eq!(
            go_rel(Path::new("/w/ctx"), Path::new("/w/ctx/a/Dockerfile")),
            "a/Dockerfile"
        );
        assert_eq!(
            go_rel(Path::new("/w/ctx"), Path::new("/w/other/Dockerfile")),
            "../other/Dockerfile"
        );
    }
}
