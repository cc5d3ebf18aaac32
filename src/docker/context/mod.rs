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
use std::io;
use std::path::PathBuf;

use bytes::Bytes;

use super::dockerignore::DockerignoreError;

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

    pub fn kind(&self) -> &EntryKind {
        &self.kind
    }

    /// Permission bits plus setuid/setgid/sticky, as written in the header.
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// Seconds since the epoch.
    pub(crate) fn mtime(&self) -> i64 {
        self.mtime
    }

    /// Major and minor device numbers, for devices.
    pub(crate) fn dev(&self) -> (u64, u64) {
        self.dev
    }

    /// Where the content is read from, relative to the context directory, for a file that
    /// has content there.
    pub(crate) fn disk_path(&self) -> Option<&std::path::Path> {
        match &self.source {
            Source::Disk(p) => Some(p),
            _ => None,
        }
    }
}

/// Why the context cannot be planned or sent.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("unable to prepare context: {path}")]
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
    #[error("{path}")]
    Dockerignore {
        path: PathBuf,
        #[source]
        source: DockerignoreError,
    },
    #[error("{path} must be a regular file to inject a Dockerfile from outside the context")]
    DockerignoreNotAFile { path: PathBuf },
    #[error("reading the build context")]
    Read(#[source] io::Error),
    #[error("{path} changed size while it was being sent")]
    FileChanged { path: PathBuf },
    #[error("writing the build context")]
    Write(#[source] io::Error),
}

const DOCKERIGNORE: &str = ".dockerignore";

mod header;
mod stream;
mod walk;

pub use header::write_tar;
pub use stream::tar_stream;
pub use walk::{check_dockerignore, plan, synced};
