//! Where the workspace is, for every test binary.

use std::path::{Path, PathBuf};

/// The workspace's root: the nearest directory above this package that
/// holds `Cargo.lock` (the test binaries belong to packages at different
/// depths).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .expect("the package sits in the workspace")
        .to_owned()
}
