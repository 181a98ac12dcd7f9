#![doc = include_str!("../README.md")]

pub mod deployment;
pub mod harness;
pub mod moto;
pub mod shim;

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `fixtures/<name>/<file>` in the workspace.
pub fn fixture(name: &str, file: &str) -> PathBuf {
    workspace().join("fixtures").join(name).join(file)
}
