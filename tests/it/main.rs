//! The one integration-test binary. Real-component tests are `#[ignore]`d by default and run by
//! `scripts/test.sh` (with `--include-ignored`) after it has started the components.

mod support;

mod act;
mod aws;
mod build;
mod cli;
mod context;
mod gitops;
mod guard;
mod kustomize;
mod verify;
