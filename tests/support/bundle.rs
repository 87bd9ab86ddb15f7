#![allow(dead_code, reason = "each test binary uses part of the shared helpers")]

//! A bundle unzipped as Lambda unzips it into a function's task root.

use std::io::Read;
use std::path::Path;

/// Unzips `zip` into `root`, keeping each file's mode (the bootstrap's
/// executable bit).
pub fn unzip(zip: &[u8], root: &Path) {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    for index in 0..archive.len() {
        let mut file = archive.by_index(index).unwrap();
        let path = root.join(file.name());
        let mut contents = Vec::new();
        file.read_to_end(&mut contents).unwrap();
        std::fs::write(&path, contents).unwrap();
        if let Some(mode) = file.unix_mode() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}
