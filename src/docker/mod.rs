//! Docker: the build context (.dockerignore, tar), the build (BuildKit through our session, or
//! the classic builder) and the push, all through the Engine API. Only talks to the daemon.
pub mod build;
mod buildkit;
mod classic;
pub mod client;
pub mod context;
pub mod dockerfile;
pub mod dockerignore;
mod filesync;
pub mod progress;
pub mod push;
pub mod session;
mod upload;

pub use client::DockerError;
