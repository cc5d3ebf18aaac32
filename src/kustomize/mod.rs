//! Kustomize `images:` editing: `set image` spec parsing and the byte-preserving YAML edit.
