//! deploy-action: build one service image, push it, and roll it out through a Kustomize overlay in git.
//!
//! The modules read as the pipeline, in order: [`inputs`] → [`registry`] → [`kustomize`] →
//! [`gitops`] → [`report`], with [`pipeline`] calling them and [`github`] owning the runner's
//! workflow and file commands.

pub mod aws;
pub mod docker;
pub mod github;
pub mod gitops;
pub mod inputs;
pub mod kustomize;
pub mod pipeline;
pub mod registry;
pub mod report;
