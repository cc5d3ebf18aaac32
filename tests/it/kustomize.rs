//! Integration tests: kustomize.
