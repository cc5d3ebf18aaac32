//! deploy-action: build one service image, push it, and roll it out through a Kustomize overlay in git.
//!
//! The modules read as the pipeline, in order: [`inputs`] → [`aws`] → [`registry`] → [`docker`]
//! → [`kustomize`] → [`gitops`] → [`argocd`] → [`report`], with [`pipeline`] calling them
//! stage by stage,
//! [`github`] owning the runner's workflow and file commands, [`failure`] turning any error
//! into the one line the user reads, and [`retry`] the one policy for transient failures.

pub mod argocd;
pub mod aws;
pub mod docker;
pub mod failure;
pub mod github;
pub mod gitops;
pub mod inputs;
pub mod kustomize;
pub mod pipeline;
pub mod registry;
pub mod report;
pub mod retry;
