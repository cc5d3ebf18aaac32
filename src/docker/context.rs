//! The build context: the walk, the ignore rules and the tar that docker CLI 28 sends for
//! `docker build` (classic builder), header for header, produced as a stream.
//!
//! The walk is `archive.TarWithOptions`' (lexical order, pre-order, a parent's match results
//! handed down, excluded directories walked only through a literal exception prefix), with the
//! CLI's `TrimBuildFilesFromExcludes` keeping the Dockerfile and `.dockerignore`, and its
//! `AddDockerfileToBuildContext` injecting a Dockerfile that lies outside the context as
//! `.dockerfile.<random>`. Headers are those of Go's `archive/tar` writer for a
//! `FileInfoHeader` with `ChownOpts{0,0}`: uid/gid 0, no user or group names, the permission
//! bits (with setuid/setgid/sticky) as mode, mtime in whole seconds, USTAR where it fits (a long
//! name split into prefix/name) and PAX records otherwise. The COPY layer cache keys on these
//! fields, so a build from this tar shares its cache with a CLI build of the same tree.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;

use super::dockerignore::{self, DockerignoreError, MatchInfo, Matcher};

/// What to send: a context directory and a Dockerfile, which may lie outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextSpec {
    /// The context directory (symlinks are resolved, as the CLI does).
    pub context_dir: PathBuf,
    /// The Dockerfile: absolute, or relative to the current directory like `docker build -f`.
    pub dockerfile: PathBuf,
}

/// The files to send, in the order the CLI sends them, and the Dockerfile's name in the tar.
#[derive(Debug, Clone)]
pub struct ContextPlan {
    /// Tar entries in walk order, the injected ones last.
    pub files: Vec<Entry>,
    /// The `dockerfile` parameter for the daemon: the Dockerfile's context-relative path, or the
    /// generated `.dockerfile.<random>` when it lies outside the context.
    pub dockerfile_name: String,
}

/// One tar entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    name: Vec<u8>,
    kind: EntryKind,
    mode: u32,
    mtime: i64,
    dev: (u64, u64),
    source: Source,
}

/// What kind of tar entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file of this size (as planned; the size at sending time is used).
    File {
        size: u64,
    },
    Dir,
    Symlink {
        target: Vec<u8>,
    },
    /// A further name of an inode already sent under `target`.
    HardLink {
        target: Vec<u8>,
    },
    Fifo,
    CharDevice,
    BlockDevice,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// Header only.
    None,
    /// A file's content, by its path relative to the context directory.
    Disk(PathBuf),
    /// Content made here: the outside Dockerfile, a rewritten `.dockerignore`.
    Inline(Bytes),
}

impl Entry {
    /// The tar path: relative, `/`-separated, directories ending in `/` (lossy if not UTF-8).
    pub fn name(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }

    /// The tar path as bytes.
    pub fn name_bytes(&self) -> &[u8] {
        &self.name
    }

    pub fn kind(&self) -> &EntryKind {
        &self.kind
    }

    /// Permission bits plus setuid/setgid/sticky, as written in the header.
    pub fn mode(&self) -> u32 {
        self.mode
    }
}

/// Why the context cannot be planned or sent.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("unable to prepare context: {path}: {source}")]
    ResolveContext {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unable to prepare context: context must be a directory: {0}")]
    ContextNotADirectory(PathBuf),
    #[error("Cannot locate Dockerfile: {path:?}")]
    DockerfileNotFound {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the Dockerfile {0} is a directory")]
    DockerfileIsADirectory(PathBuf),
    #[error("{path}: {source}")]
    Dockerignore {
        path: PathBuf,
        #[source]
        source: DockerignoreError,
    },
    #[error("{path} must be a regular file to inject a Dockerfile from outside the context")]
    DockerignoreNotAFile { path: PathBuf },
    #[error("reading the build context: {0}")]
    Read(#[source] io::Error),
    #[error("{path} changed size while it was being sent")]
    FileChanged { path: PathBuf },
    #[error("writing the build context: {0}")]
    Write(#[source] io::Error),
}

const DOCKERIGNORE: &str = ".dockerignore";

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

fn resolve_context(dir: &Path) -> Result<PathBuf, ContextError> {
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

/// Writes the context tar to `w`, reading each file while writing it.
pub fn write_tar<W: Write>(
    plan: &ContextPlan,
    spec: &ContextSpec,
    w: W,
) -> Result<W, ContextError> {
    let root = resolve_context(&spec.context_dir)?;
    let mut out = io::BufWriter::with_capacity(64 * 1024, w);
    let mut buf = vec![0u8; 256 * 1024];
    for entry in &plan.files {
        write_entry(&mut out, &root, entry, &mut buf)?;
    }
    // The trailer: two zero blocks.
    out.write_all(&[0u8; 1024]).map_err(ContextError::Write)?;
    out.into_inner()
        .map_err(|e| ContextError::Write(e.into_error()))
}

fn write_entry<W: Write>(
    out: &mut W,
    root: &Path,
    entry: &Entry,
    buf: &mut [u8],
) -> Result<(), ContextError> {
    let (typeflag, link): (u8, &[u8]) = match &entry.kind {
        EntryKind::File { .. } => (b'0', b""),
        EntryKind::HardLink { target } => (b'1', target),
        EntryKind::Symlink { target } => (b'2', target),
        EntryKind::CharDevice => (b'3', b""),
        EntryKind::BlockDevice => (b'4', b""),
        EntryKind::Dir => (b'5', b""),
        EntryKind::Fifo => (b'6', b""),
    };
    let header = |size: u64| HeaderFields {
        name: &entry.name,
        link,
        typeflag,
        mode: i64::from(entry.mode),
        size: size as i64,
        mtime: entry.mtime,
        devmajor: entry.dev.0 as i64,
        devminor: entry.dev.1 as i64,
    };
    match &entry.source {
        Source::None => write_header(out, &header(0)).map_err(ContextError::Write),
        Source::Inline(data) => {
            write_header(out, &header(data.len() as u64)).map_err(ContextError::Write)?;
            out.write_all(data).map_err(ContextError::Write)?;
            pad(out, data.len() as u64)
        }
        Source::Disk(rel) => {
            let path = root.join(rel);
            let mut file = fs_err::File::open(&path).map_err(ContextError::Read)?;
            let size = file.metadata().map_err(ContextError::Read)?.len();
            write_header(out, &header(size)).map_err(ContextError::Write)?;
            let mut left = size;
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = match file.read(&mut buf[..want]) {
                    Ok(0) => return Err(ContextError::FileChanged { path }),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(ContextError::Read(e)),
                };
                out.write_all(&buf[..n]).map_err(ContextError::Write)?;
                left -= n as u64;
            }
            pad(out, size)
        }
    }
}

fn pad<W: Write>(out: &mut W, size: u64) -> Result<(), ContextError> {
    let rem = (size % 512) as usize;
    if rem != 0 {
        out.write_all(&[0u8; 512][..512 - rem])
            .map_err(ContextError::Write)?;
    }
    Ok(())
}

struct HeaderFields<'a> {
    name: &'a [u8],
    link: &'a [u8],
    typeflag: u8,
    mode: i64,
    size: i64,
    mtime: i64,
    devmajor: i64,
    devminor: i64,
}

const NAME_SIZE: usize = 100;
const PREFIX_SIZE: usize = 155;

/// Go `tar.Writer.WriteHeader` for a PAX-format header with uid/gid 0 and no user names: USTAR
/// when every field fits, else a PAX extended header and a PAX main header.
fn write_header<W: Write>(out: &mut W, h: &HeaderFields<'_>) -> io::Result<()> {
    let mut ustar = true;
    let mut pax: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    let name_ascii = is_ascii(h.name);
    if !name_ascii || h.name.len() > NAME_SIZE {
        if split_ustar_path(h.name).is_none() {
            ustar = false;
        }
        pax.insert("path", h.name.to_vec());
    }
    if !is_ascii(h.link) || h.link.len() > NAME_SIZE {
        ustar = false;
        pax.insert("linkpath", h.link.to_vec());
    }
    if !fits_in_octal(12, h.size) {
        ustar = false;
        pax.insert("size", h.size.to_string().into_bytes());
    }
    if !fits_in_octal(12, h.mtime) {
        ustar = false;
        pax.insert("mtime", h.mtime.to_string().into_bytes());
    }

    let mut hdr = tar::Header::new_ustar();
    if ustar {
        let (prefix, name) = split_ustar_path(h.name).unwrap_or((b"", h.name));
        template(&mut hdr, h, name, h.link);
        format_string(&mut hdr.as_ustar_mut().expect("ustar").prefix, prefix);
    } else {
        let mut records = Vec::new();
        for (k, v) in &pax {
            records.extend_from_slice(&format_pax_record(k, v));
        }
        let mut xhdr = tar::Header::new_ustar();
        {
            let u = xhdr.as_ustar_mut().expect("ustar");
            let mut name = to_ascii(&pax_header_name(h.name));
            name.truncate(NAME_SIZE);
            while name.last() == Some(&b'/') {
                name.pop();
            }
            format_string(&mut u.name, &name);
            format_octal(&mut u.mode, 0);
            format_octal(&mut u.uid, 0);
            format_octal(&mut u.gid, 0);
            format_octal(&mut u.size, records.len() as i64);
            format_octal(&mut u.mtime, 0);
            u.typeflag = [b'x'];
        }
        set_checksum(&mut xhdr);
        out.write_all(xhdr.as_bytes())?;
        out.write_all(&records)?;
        let rem = records.len() % 512;
        if rem != 0 {
            out.write_all(&[0u8; 512][..512 - rem])?;
        }
        template(&mut hdr, h, &to_ascii(h.name), &to_ascii(h.link));
    }
    set_checksum(&mut hdr);
    out.write_all(hdr.as_bytes())
}

/// `templateV7Plus` with octal numbers.
fn template(hdr: &mut tar::Header, h: &HeaderFields<'_>, name: &[u8], link: &[u8]) {
    let u = hdr.as_ustar_mut().expect("ustar");
    u.typeflag = [h.typeflag];
    format_string(&mut u.name, name);
    format_string(&mut u.linkname, link);
    format_octal(&mut u.mode, h.mode);
    format_octal(&mut u.uid, 0);
    format_octal(&mut u.gid, 0);
    format_octal(&mut u.size, h.size);
    format_octal(&mut u.mtime, h.mtime);
    format_string(&mut u.uname, b"");
    format_string(&mut u.gname, b"");
    format_octal(&mut u.dev_major, h.devmajor);
    format_octal(&mut u.dev_minor, h.devminor);
}

/// Go's checksum field: six octal digits, NUL, space.
fn set_checksum(hdr: &mut tar::Header) {
    let bytes = hdr.as_mut_bytes();
    bytes[148..156].fill(b' ');
    let sum: i64 = bytes.iter().map(|&b| i64::from(b)).sum();
    format_octal(&mut bytes[148..155], sum);
    bytes[155] = b' ';
}

fn fits_in_octal(n: usize, x: i64) -> bool {
    x >= 0 && (n >= 22 || x < 1i64 << ((n - 1) * 3))
}

fn format_octal(b: &mut [u8], x: i64) {
    let x = if fits_in_octal(b.len(), x) { x } else { 0 };
    let s = format!("{x:0width$o}", width = b.len() - 1);
    format_string(b, s.as_bytes());
}

/// Go `formatString`: copy, NUL-terminate if room, and never leave a truncated trailing slash.
fn format_string(b: &mut [u8], s: &[u8]) {
    let n = s.len().min(b.len());
    b[..n].copy_from_slice(&s[..n]);
    if s.len() < b.len() {
        b[s.len()] = 0;
    }
    if s.len() > b.len() && b[b.len() - 1] == b'/' {
        let mut k = b.len() - 1;
        while k > 0 && s[k - 1] == b'/' {
            k -= 1;
        }
        b[k] = 0;
    }
}

fn is_ascii(s: &[u8]) -> bool {
    s.iter().all(|&c| c != 0 && c < 0x80)
}

fn to_ascii(s: &[u8]) -> Vec<u8> {
    s.iter().copied().filter(|&c| c != 0 && c < 0x80).collect()
}

/// `splitUSTARPath`: (prefix, name) at a slash so both fit, for ASCII names over 100 bytes.
fn split_ustar_path(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut length = name.len();
    if length <= NAME_SIZE || !is_ascii(name) {
        return None;
    } else if length > PREFIX_SIZE + 1 {
        length = PREFIX_SIZE + 1;
    } else if name[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].iter().rposition(|&c| c == b'/')?;
    let nlen = name.len() - i - 1;
    if i == 0 || nlen > NAME_SIZE || nlen == 0 || i > PREFIX_SIZE {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

/// `path.Join(dir, "PaxHeaders.0", file)` for a clean relative name.
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let split = name.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1);
    let (dir, file) = name.split_at(split);
    let dir = dir.strip_suffix(b"/").unwrap_or(dir);
    let mut out = Vec::new();
    if !dir.is_empty() {
        out.extend_from_slice(dir);
        out.push(b'/');
    }
    out.extend_from_slice(b"PaxHeaders.0");
    if !file.is_empty() {
        out.push(b'/');
        out.extend_from_slice(file);
    }
    out
}

/// `formatPAXRecord`: "<len> key=value\n", the length counting itself.
fn format_pax_record(k: &str, v: &[u8]) -> Vec<u8> {
    let mut size = k.len() + v.len() + 3;
    size += size.to_string().len();
    let make = |size: usize| {
        let mut r = format!("{size} {k}=").into_bytes();
        r.extend_from_slice(v);
        r.push(b'\n');
        r
    };
    let record = make(size);
    if record.len() != size {
        make(record.len())
    } else {
        record
    }
}

/// The plan's tar as a stream of chunks, produced on a blocking thread through a bounded
/// channel (at most about 1 MiB in flight), ready for `bollard::body_try_stream`. Planning
/// happens before this returns, so a missing Dockerfile or a bad `.dockerignore` is an error
/// here; a failure while sending ends the stream with an `Err`.
pub fn tar_stream(
    spec: ContextSpec,
) -> Result<
    (
        String,
        impl futures_core::Stream<Item = io::Result<Bytes>> + Send + 'static,
    ),
    ContextError,
> {
    let plan = plan(&spec)?;
    let name = plan.dockerfile_name.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    let produce = move || {
        let sink = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = write_tar(&plan, &spec, sink)
            .and_then(|mut sink| sink.flush().map_err(ContextError::Write));
        if let Err(e) = result {
            // Nobody listens any more if the send fails; that is fine.
            let _ = tx.blocking_send(Err(io::Error::other(e)));
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => drop(handle.spawn_blocking(produce)),
        Err(_) => drop(std::thread::spawn(produce)),
    }
    Ok((name, TarStream { rx }))
}

const CHUNK: usize = 256 * 1024;

struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the build context stream was dropped",
            )
        })
    }
}

struct TarStream {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
}

impl futures_core::Stream for TarStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_core::Stream;

    fn header_bytes(name: &[u8], typeflag: u8, size: i64, mtime: i64, link: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let h = HeaderFields {
            name,
            link,
            typeflag,
            mode: 0o644,
            size,
            mtime,
            devmajor: 0,
            devminor: 0,
        };
        write_header(&mut out, &h).unwrap();
        out
    }

    #[test]
    fn a_short_name_is_one_ustar_block_with_go_field_formatting() {
        let b = header_bytes(b"src/main.rs", b'0', 5, 1_700_000_000, b"");
        assert_eq!(b.len(), 512);
        assert_eq!(&b[0..12], b"src/main.rs\0");
        assert_eq!(&b[100..108], b"0000644\0");
        assert_eq!(&b[108..116], b"0000000\0");
        assert_eq!(&b[116..124], b"0000000\0");
        assert_eq!(&b[124..136], b"00000000005\0");
        assert_eq!(&b[136..148], b"14524770400\0");
        assert_eq!(b[155], b' ');
        assert_eq!(b[154], 0);
        assert_eq!(b[156], b'0');
        assert_eq!(&b[257..265], b"ustar\x0000");
        assert_eq!(&b[265..297], &[0u8; 32]);
        assert_eq!(&b[329..345], b"0000000\x000000000\0");
        let sum: u32 = b
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u32::from(c)
                }
            })
            .sum();
        assert_eq!(&b[148..155], format!("{sum:06o}\0").as_bytes());
    }

    #[test]
    fn a_long_ascii_name_is_split_into_prefix_and_name() {
        let name = format!("{}/{}", "d".repeat(120), "f".repeat(20));
        let b = header_bytes(name.as_bytes(), b'0', 0, 0, b"");
        assert_eq!(b.len(), 512);
        assert_eq!(&b[0..21], format!("{}\0", "f".repeat(20)).as_bytes());
        assert_eq!(&b[345..466], format!("{}\0", "d".repeat(120)).as_bytes());
    }

    #[test]
    fn a_non_ascii_name_gets_a_pax_path_record() {
        let b = header_bytes("dir/ünï.txt".as_bytes(), b'0', 0, 0, b"");
        assert_eq!(b.len(), 512 * 3);
        assert_eq!(&b[0..22], b"dir/PaxHeaders.0/n.txt");
        assert_eq!(b[156], b'x');
        let record = "22 path=dir/ünï.txt\n";
        assert_eq!(&b[512..512 + record.len()], record.as_bytes());
        assert_eq!(&b[1024..1034], b"dir/n.txt\0");
    }

    #[test]
    fn an_unsplittable_long_name_gets_a_pax_path_record() {
        let name = "x".repeat(150);
        let b = header_bytes(name.as_bytes(), b'0', 0, 0, b"");
        assert_eq!(b.len(), 512 * 3);
        let record = format!("160 path={name}\n");
        assert_eq!(&b[512..512 + record.len()], record.as_bytes());
        assert_eq!(&b[1024..1124], "x".repeat(100).as_bytes());
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        assert_eq!(format_pax_record("path", b"abcde"), b"14 path=abcde\n");
        assert_eq!(format_pax_record("path", &[b'a'; 92]).len(), 102);
        assert!(format_pax_record("path", &[b'a'; 92]).starts_with(b"102 "));
    }

    /// A context with a Dockerfile and the given `.dockerignore`, plus `files`.
    fn context(ignore: Option<&str>, files: &[&str]) -> (tempfile::TempDir, ContextSpec) {
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
        let err = plan(&spec).unwrap_err().to_string();
        assert!(
            err.contains(".dockerignore") && err.contains("illegal exclusion"),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_stream_carries_the_same_bytes_as_write_tar() {
        let big = "x".repeat(700_000);
        let (_t, spec) = context(None, &["a", "b/c"]);
        std::fs::write(spec.context_dir.join("big"), &big).unwrap();
        let expected = write_tar(&plan(&spec).unwrap(), &spec, Vec::new()).unwrap();
        let (name, mut stream) = tar_stream(spec).unwrap();
        assert_eq!(name, "Dockerfile");
        let mut got = Vec::new();
        let mut chunks = 0;
        while let Some(chunk) = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await
        {
            let chunk = chunk.unwrap();
            assert!(chunk.len() <= CHUNK);
            got.extend_from_slice(&chunk);
            chunks += 1;
        }
        assert!(chunks >= 3, "the tar arrives in bounded chunks");
        assert!(got == expected);
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
