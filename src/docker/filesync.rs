//! The build context as `docker build` gives it to BuildKit: the session's FileSync service,
//! serving the context directory (with the `.dockerignore` rules) and the Dockerfile's
//! directory as two named "locals", file by file, as BuildKit asks for them.
//!
//! This is fsutil's `Send` side of `DiffCopy`: one `STAT` packet per entry in walk order, an
//! empty `STAT` to end the list, then a file's content in `DATA` packets (an empty one ends it)
//! for each `REQ` naming the file's index, until the receiver's `FIN`, which is answered with
//! `FIN`. Files are read as they are asked for, so memory stays flat whatever the context's
//! size, and BuildKit asks only for files that changed since its last transfer under the same
//! shared key.
//!
//! Going through the session, not a tar body, is what makes the context the CLI's: BuildKit
//! takes everything in a tar as context, the Dockerfile and `.dockerignore` included, where the
//! CLI leaves out what `.dockerignore` excludes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use bollard::fsutil::types::packet::PacketType;
use bollard::fsutil::types::{Packet, Stat};
use bollard::moby::filesync::v1::file_sync_server::FileSync;
use futures_util::Stream;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::context::{self, Entry, EntryKind};

/// fsutil's copy buffer.
const CHUNK: usize = 32 * 1024;

/// The two directories the build reads: `context` and `dockerfile`.
#[derive(Debug, Clone)]
pub struct SyncedDirs {
    pub context: PathBuf,
    /// The directory that holds the Dockerfile; BuildKit asks for the file by name.
    pub dockerfile_dir: PathBuf,
}

pub(super) struct FileSyncService(pub(super) SyncedDirs);

type PacketStream = Pin<Box<dyn Stream<Item = Result<Packet, Status>> + Send>>;

#[tonic::async_trait]
impl FileSync for FileSyncService {
    type DiffCopyStream = PacketStream;

    async fn diff_copy(
        &self,
        req: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::DiffCopyStream>, Status> {
        let values = |key: &str| -> Vec<String> {
            req.metadata()
                .get_all(key)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_string)
                .collect()
        };
        let dir_name = values("dir-name").into_iter().next().unwrap_or_default();
        let follow = values("followpaths");
        let (root, apply_ignore) = match dir_name.as_str() {
            "context" => (self.0.context.clone(), true),
            "dockerfile" => (self.0.dockerfile_dir.clone(), false),
            other => return Err(Status::not_found(format!("no such directory: {other}"))),
        };
        let walk_root = root.clone();
        let entries =
            tokio::task::spawn_blocking(move || context::synced(&walk_root, &follow, apply_ignore))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(|e| Status::internal(crate::failure::chain_text(&e)))?;
        let (tx, rx) = mpsc::channel::<Result<Packet, Status>>(32);
        tokio::spawn(send(root, entries, req.into_inner(), tx));
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type TarStreamStream = PacketStream;

    async fn tar_stream(
        &self,
        _: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::TarStreamStream>, Status> {
        Err(Status::unimplemented("tar_stream"))
    }
}

/// The sender's side of one `DiffCopy`: the stats, then the contents asked for.
async fn send(
    root: PathBuf,
    entries: Vec<Entry>,
    mut incoming: Streaming<Packet>,
    tx: mpsc::Sender<Result<Packet, Status>>,
) {
    // The receiver may ask for files while the stats are still coming, as fsutil's does.
    let files: HashMap<u32, PathBuf> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.kind(), EntryKind::File { .. }))
        .filter_map(|(i, e)| Some((i as u32, root.join(e.disk_path()?))))
        .collect();
    let stats = {
        let tx = tx.clone();
        tokio::spawn(async move {
            for entry in &entries {
                let packet = Packet {
                    r#type: PacketType::PacketStat as i32,
                    stat: Some(stat_of(entry)),
                    ..Default::default()
                };
                if tx.send(Ok(packet)).await.is_err() {
                    return;
                }
            }
            let end = Packet {
                r#type: PacketType::PacketStat as i32,
                ..Default::default()
            };
            let _ = tx.send(Ok(end)).await;
        })
    };
    while let Ok(Some(p)) = incoming.message().await {
        match PacketType::try_from(p.r#type) {
            Ok(PacketType::PacketReq) => {
                let Some(path) = files.get(&p.id) else {
                    let _ = tx
                        .send(Err(Status::invalid_argument(format!("no file {}", p.id))))
                        .await;
                    return;
                };
                if let Err(e) = send_file(path, p.id, &tx).await {
                    let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                    return;
                }
            }
            Ok(PacketType::PacketFin) => {
                let _ = stats.await;
                let fin = Packet {
                    r#type: PacketType::PacketFin as i32,
                    ..Default::default()
                };
                let _ = tx.send(Ok(fin)).await;
                return;
            }
            // The receiver gave up (its message is in `data`), or said something we do not know.
            _ => return,
        }
    }
}

async fn send_file(
    path: &Path,
    id: u32,
    tx: &mpsc::Sender<Result<Packet, Status>>,
) -> std::io::Result<()> {
    let data = |data: Vec<u8>| Packet {
        r#type: PacketType::PacketData as i32,
        id,
        data,
        ..Default::default()
    };
    let mut file = tokio::fs::File::open(path).await?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if tx.send(Ok(data(buf[..n].to_vec()))).await.is_err() {
            return Ok(());
        }
    }
    let _ = tx.send(Ok(data(Vec::new()))).await;
    Ok(())
}

/// Go's `os.FileMode` bits, which fsutil's `Stat.mode` carries.
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
const MODE_DEVICE: u32 = 1 << 26;
const MODE_NAMED_PIPE: u32 = 1 << 25;
const MODE_SETUID: u32 = 1 << 23;
const MODE_SETGID: u32 = 1 << 22;
const MODE_CHAR_DEVICE: u32 = 1 << 21;
const MODE_STICKY: u32 = 1 << 20;

/// The entry as fsutil states it; owners are 0, as the CLI maps them.
fn stat_of(entry: &Entry) -> Stat {
    let unix = entry.mode();
    let mut mode = unix & 0o777;
    for (bit, go) in [
        (0o4000, MODE_SETUID),
        (0o2000, MODE_SETGID),
        (0o1000, MODE_STICKY),
    ] {
        if unix & bit != 0 {
            mode |= go;
        }
    }
    let (size, linkname) = match entry.kind() {
        EntryKind::File { size } => (*size as i64, String::new()),
        EntryKind::Dir => {
            mode |= MODE_DIR;
            (0, String::new())
        }
        EntryKind::Symlink { target } => {
            mode |= MODE_SYMLINK;
            (0, String::from_utf8_lossy(target).into_owned())
        }
        // A further name of a file already sent: fsutil names the first one.
        EntryKind::HardLink { target } => (0, String::from_utf8_lossy(target).into_owned()),
        EntryKind::Fifo => {
            mode |= MODE_NAMED_PIPE;
            (0, String::new())
        }
        EntryKind::CharDevice => {
            mode |= MODE_DEVICE | MODE_CHAR_DEVICE;
            (0, String::new())
        }
        EntryKind::BlockDevice => {
            mode |= MODE_DEVICE;
            (0, String::new())
        }
    };
    let (devmajor, devminor) = entry.dev();
    Stat {
        path: entry.name().trim_end_matches('/').to_string(),
        mode,
        uid: 0,
        gid: 0,
        size,
        mod_time: entry.mtime().saturating_mul(1_000_000_000),
        linkname,
        devmajor: devmajor as i64,
        devminor: devminor as i64,
        xattrs: HashMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<Entry> {
        context::synced(dir, &[], true).unwrap()
    }

    #[test]
    fn stats_carry_go_file_modes_relative_paths_and_no_owner() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("bin")).unwrap();
        std::fs::write(tmp.path().join("bin/run"), "x").unwrap();
        std::fs::set_permissions(
            tmp.path().join("bin/run"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        std::os::unix::fs::symlink("bin/run", tmp.path().join("link")).unwrap();
        let stats: Vec<Stat> = entries(tmp.path()).iter().map(stat_of).collect();
        let shown: Vec<(&str, u32, &str)> = stats
            .iter()
            .map(|s| (s.path.as_str(), s.mode, s.linkname.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("bin", MODE_DIR | 0o755, ""),
                ("bin/run", MODE_SETUID | 0o755, ""),
                ("link", MODE_SYMLINK | 0o777, "bin/run"),
            ]
        );
        assert!(stats.iter().all(|s| s.uid == 0 && s.gid == 0));
        assert_eq!(stats[1].size, 1);
    }

    #[test]
    fn the_context_leaves_out_what_dockerignore_excludes_build_files_included() {
        let tmp = tempfile::tempdir().unwrap();
        for f in ["Dockerfile", "src/main.rs", "README.md"] {
            std::fs::create_dir_all(tmp.path().join(f).parent().unwrap()).unwrap();
            std::fs::write(tmp.path().join(f), f).unwrap();
        }
        std::fs::write(tmp.path().join(".dockerignore"), "*\n!src\n").unwrap();
        let names: Vec<String> = entries(tmp.path())
            .iter()
            .map(|e| e.name().into_owned())
            .collect();
        assert_eq!(names, ["src/", "src/main.rs"]);
    }

    #[test]
    fn an_excluded_directory_walked_for_an_exception_is_sent_before_its_contents() {
        let tmp = tempfile::tempdir().unwrap();
        for f in ["docs/guide.md", "docs/api/index.html", "deep/x.txt"] {
            std::fs::create_dir_all(tmp.path().join(f).parent().unwrap()).unwrap();
            std::fs::write(tmp.path().join(f), f).unwrap();
        }
        std::fs::write(tmp.path().join(".dockerignore"), "docs\n!docs/api\n").unwrap();
        let names: Vec<String> = entries(tmp.path())
            .iter()
            .map(|e| e.name().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                ".dockerignore",
                "deep/",
                "deep/x.txt",
                "docs/",
                "docs/api/",
                "docs/api/index.html"
            ]
        );
    }

    #[test]
    fn followed_paths_come_alone_after_their_parents() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        std::fs::write(tmp.path().join("a/b/Dockerfile"), "FROM x").unwrap();
        std::fs::write(tmp.path().join("a/other"), "y").unwrap();
        let follow = [
            "a/b/Dockerfile".to_string(),
            "a/b/Dockerfile.dockerignore".to_string(),
        ];
        let names: Vec<String> = context::synced(tmp.path(), &follow, false)
            .unwrap()
            .iter()
            .map(|e| e.name().into_owned())
            .collect();
        assert_eq!(names, ["a/", "a/b/", "a/b/Dockerfile"]);
    }
}
