//! Docker: the build context (.dockerignore, tar), the build and the push through the Engine API.
pub mod build;
pub mod client;
pub mod context;
pub mod dockerignore;
pub mod push;

pub use client::DockerError;
