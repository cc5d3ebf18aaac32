//! What both builders send and read back the same way: the context tar as the streamed
//! request body (keeping the reason if producing it fails), the image id, and a Dockerfile line
//! as an error's location.

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bollard::Docker;
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};

use super::build::BuildRequest;
use super::client::DockerError;
use super::context::{self, ContextError, ContextSpec};
use crate::failure::Location;

/// What `bollard::body_try_stream` makes (bollard keeps the alias to itself).
type Body = http_body_util::Either<
    http_body_util::Full<Bytes>,
    http_body_util::StreamBody<
        Pin<Box<dyn Stream<Item = Result<hyper::body::Frame<Bytes>, std::io::Error>> + Send>>,
    >,
>;

/// The context tar, ready to be the request body.
pub(super) struct Context {
    /// The `dockerfile` parameter: the Dockerfile's path in the tar.
    pub(super) dockerfile_name: String,
    body: Option<Body>,
    /// Why producing the tar failed, if it did: the daemon only sees the upload break off.
    failure: Arc<Mutex<Option<String>>>,
}

impl Context {
    pub(super) fn stream(req: &BuildRequest) -> Result<Context, DockerError> {
        let spec = ContextSpec {
            context_dir: req.context.clone(),
            dockerfile: req.dockerfile.clone(),
        };
        let (dockerfile_name, tar) =
            context::tar_stream(spec).map_err(|e| context_error(req, e))?;
        let failure = Arc::new(Mutex::new(None::<String>));
        let slot = Arc::clone(&failure);
        let tar = tar.inspect_err(move |e| {
            if let Ok(mut s) = slot.lock() {
                s.get_or_insert_with(|| crate::failure::chain_text(e));
            }
        });
        Ok(Context {
            dockerfile_name,
            body: Some(bollard::body_try_stream(tar)),
            failure,
        })
    }

    /// The body, once.
    pub(super) fn body(&mut self) -> Body {
        self.body.take().expect("the context is sent once")
    }

    /// The error for a request that failed: the tar's own failure when there was one.
    pub(super) fn failure(
        &self,
        req: &BuildRequest,
        source: bollard::errors::Error,
    ) -> DockerError {
        if let Some(message) = self.failure.lock().ok().and_then(|s| s.clone()) {
            return DockerError::Context {
                path: req.context.clone(),
                message,
            };
        }
        DockerError::Build {
            image: req.image.to_string(),
            source,
        }
    }
}

pub(super) fn context_error(req: &BuildRequest, e: ContextError) -> DockerError {
    match e {
        ContextError::DockerfileNotFound { .. } | ContextError::DockerfileIsADirectory(_) => {
            DockerError::DockerfileMissing {
                path: req.dockerfile.clone(),
            }
        }
        ContextError::ResolveContext { .. } | ContextError::ContextNotADirectory(_) => {
            DockerError::ContextMissing {
                path: req.context.clone(),
            }
        }
        other => DockerError::Context {
            path: req.context.clone(),
            message: crate::failure::chain_text(&other),
        },
    }
}

/// The id the build reported, or the one the tag now names.
pub(super) async fn image_id_or_inspect(
    docker: &Docker,
    req: &BuildRequest,
    reported: Option<String>,
) -> Result<String, DockerError> {
    if let Some(id) = reported {
        return Ok(id);
    }
    docker
        .inspect_image(&req.image.to_string())
        .await
        .ok()
        .and_then(|i| i.id)
        .ok_or_else(|| DockerError::NoImageId {
            image: req.image.to_string(),
        })
}

/// `line` of the request's Dockerfile, as errors name it.
pub(super) fn dockerfile_location(req: &BuildRequest, line: usize) -> Location {
    Location {
        file: req.dockerfile_name.clone(),
        line: Some(line),
    }
}
