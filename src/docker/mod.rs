//! Docker: the build context (.dockerignore, tar), the build and the push through the Engine API.
pub mod context;
pub mod dockerignore;
