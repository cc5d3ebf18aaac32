//! The daemon as the tests see it: a connected client, files read out of images, images and
//! whole repositories removed, retags and layer lists.

use std::collections::HashMap;
use std::fmt::Display;
use std::io::Read;

use bollard::Docker;
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, ListImagesOptions,
    RemoveContainerOptions, RemoveImageOptions, TagImageOptions,
};
use deploy_action::docker::client;
use deploy_action::registry::ImageRef;
use futures_util::StreamExt;

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

pub(crate) async fn remove_image(docker: &Docker, image: impl Display) {
    docker
        .remove_image(
            &image.to_string(),
            Some(RemoveImageOptions {
                force: true,
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
