//! The daemon as the tests see it: a connected client, files read out of images, images and
//! whole repositories removed, retags and layer lists.

use std::collections::HashMap;
use std::fmt::Display;
use std::io::Read;

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use bollard::Docker;
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, ListImagesOptions,
    RemoveContainerOptions, RemoveImageOptions, TagImageOptions,
};
use deploy_action::docker::client;
use deploy_action::registry::ImageRef;
use futures_util::StreamExt;

/// Tests share one daemon. Emulating a fresh runner (images and build cache removed) must not
/// pull the floor from under a build running at the same time, so a test that does takes the
/// daemon for itself, and every other test that builds shares it.
static DAEMON: RwLock<()> = RwLock::const_new(());

/// For a test that builds or runs images: shared with other such tests.
pub(crate) fn shared_daemon() -> RwLockReadGuard<'static, ()> {
    DAEMON.blocking_read()
}

/// [`shared_daemon`] for an async test.
pub(crate) async fn shared_daemon_async() -> RwLockReadGuard<'static, ()> {
    DAEMON.read().await
}

/// For a test that emulates a fresh runner: no other build runs meanwhile.
pub(crate) fn exclusive_daemon() -> RwLockWriteGuard<'static, ()> {
    DAEMON.blocking_write()
}

/// A fresh runner, as far as `repositories` go: none of their images is on the daemon, no
/// dangling image is, and the build cache is empty. Call with [`exclusive_daemon`] held.
pub(crate) async fn fresh_runner(docker: &Docker, repositories: &[&ImageRef]) {
    for r in repositories {
        remove_repository(docker, r).await;
    }
    let dangling = HashMap::from([("dangling".to_string(), vec!["true".to_string()])]);
    docker
        .prune_images(Some(bollard::query_parameters::PruneImagesOptions {
            filters: Some(dangling),
        }))
        .await
        .unwrap();
    docker
        .prune_build(Some(bollard::query_parameters::PruneBuildOptions {
            all: Some(true),
            ..Default::default()
        }))
        .await
        .unwrap();
    for r in repositories {
        assert!(
            docker.inspect_image(&r.to_string()).await.is_err(),
            "{r} is still on the daemon"
        );
    }
}

/// `docker save` of `image`: every layer and the config, as bytes.
pub(crate) async fn saved(docker: &Docker, image: impl Display) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = docker.export_image(&image.to_string());
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// The entries under `path` in `image` (names relative to `path`'s parent, mode), read
/// through a created (never started) container.
pub(crate) async fn entries_in_image(
    docker: &Docker,
    image: impl Display,
    path: &str,
) -> Vec<(String, u32)> {
    let tar = download(docker, image, path).await;
    let mut archive = tar::Archive::new(tar.as_slice());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string();
            (name, e.header().mode().unwrap() & 0o7777)
        })
        .collect()
}

async fn download(docker: &Docker, image: impl Display, path: &str) -> Vec<u8> {
    let body = bollard::models::ContainerCreateBody {
        image: Some(image.to_string()),
        ..Default::default()
    };
    let id = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .unwrap()
        .id;
    let mut tar = Vec::new();
    let mut stream = docker.download_from_container(
        &id,
        Some(DownloadFromContainerOptions {
            path: path.to_string(),
        }),
    );
    while let Some(chunk) = stream.next().await {
        tar.extend_from_slice(&chunk.unwrap());
    }
    docker
        .remove_container(
            &id,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    tar
}

/// The daemon at `DOCKER_HOST`, version negotiated.
pub(crate) async fn docker() -> Docker {
    super::services();
    let docker = client::connect().expect("DOCKER_HOST names a socket");
    client::negotiate(&docker)
        .await
        .expect("the daemon answers");
    docker
}

/// A file's content inside an image, read through a created (never started) container.
pub(crate) async fn file_in_image(docker: &Docker, image: impl Display, path: &str) -> String {
    let tar = download(docker, image, path).await;
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut entry = archive
        .entries()
        .unwrap()
        .next()
        .expect("the file is in the archive")
        .unwrap();
    let mut text = String::new();
    entry.read_to_string(&mut text).unwrap();
    text
}

/// Removes `image`, keeping its untagged parents: they are the classic builder's cache, and a
/// build running in a concurrent test may be committing on top of one of them right now
/// (pruning it fails that build with "failed to get digest … no such file or directory").
pub(crate) async fn remove_image(docker: &Docker, image: impl Display) {
    remove(docker, image, true).await;
}

/// Removes `image` and the untagged parents nothing else uses: a cold local cache.
pub(crate) async fn remove_image_and_parents(docker: &Docker, image: impl Display) {
    remove(docker, image, false).await;
}

async fn remove(docker: &Docker, image: impl Display, noprune: bool) {
    docker
        .remove_image(
            &image.to_string(),
            Some(RemoveImageOptions {
                force: true,
                noprune,
                ..Default::default()
            }),
            None,
        )
        .await
        .unwrap();
}

/// Removes every local tag of `image`'s repository, so test runs do not pile up images.
pub(crate) async fn remove_repository(docker: &Docker, image: &ImageRef) {
    let filters = HashMap::from([("reference".to_string(), vec![image.name()])]);
    let options = ListImagesOptions {
        filters: Some(filters),
        ..Default::default()
    };
    for listed in docker.list_images(Some(options)).await.unwrap() {
        for tag in listed.repo_tags {
            let _ = docker
                .remove_image(
                    &tag,
                    Some(RemoveImageOptions {
                        force: true,
                        noprune: true,
                        ..Default::default()
                    }),
                    None,
                )
                .await;
        }
    }
}

/// `image` under another registry host (the same image id, a second tag).
pub(crate) async fn retag(docker: &Docker, image: &ImageRef, host: &str) -> ImageRef {
    let moved = ImageRef::tagged(host, image.repository(), image.tag().unwrap_or("latest"));
    tag(docker, image, &moved).await;
    moved
}

/// Tags the local image `from` as `to`.
pub(crate) async fn tag(docker: &Docker, from: impl Display, to: &ImageRef) {
    docker
        .tag_image(
            &from.to_string(),
            Some(TagImageOptions {
                repo: Some(to.name()),
                tag: to.tag().map(str::to_string),
            }),
        )
        .await
        .unwrap();
}

/// The image's layer diff ids, bottom first.
pub(crate) async fn layers(docker: &Docker, image: impl Display) -> Vec<String> {
    docker
        .inspect_image(&image.to_string())
        .await
        .unwrap()
        .root_fs
        .unwrap()
        .layers
        .unwrap()
}
