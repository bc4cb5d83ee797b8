//! k8s-manifests: the renderings, their checks, the committed files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broken;
mod committed;
mod podman;
mod render;
