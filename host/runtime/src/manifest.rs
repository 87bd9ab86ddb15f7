//! The bundle manifest (`manifest.json` beside `bootstrap`): which guest
//! component serves which Lambda function. `deploy bundle` writes it; the
//! Lambda host reads it at start.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::mark::Language;

pub const MANIFEST_FILE: &str = "manifest.json";

/// The manifest format this host reads.
pub const MANIFEST_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The architecture the components were precompiled for (`x86_64`).
    pub arch: String,
    /// Function name to the guest that serves it.
    pub functions: BTreeMap<String, ManifestEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub guest: String,
    /// The precompiled component, relative to the bundle's root.
    pub component: String,
    /// `sha256:<hex>` of the guest's `.wasm` it was precompiled from: the
    /// component a trace names, which `emmaa-host replay --trace` compares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm: Option<String>,
    /// `sha256:<hex>` of the precompiled component itself: `emmaa-host
    /// --components` loads a `.cwasm` only when it matches, as precompiled
    /// code is run as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwasm: Option<String>,
    /// The language the guest was written in (`rust` when absent), from
    /// its `.wasm`'s mark: a precompiled component keeps no custom
    /// sections, and the guest's fuel and memory depend on it.
    #[serde(default, skip_serializing_if = "is_rust", with = "language_name")]
    pub language: Language,
}

fn is_rust(language: &Language) -> bool {
    *language == Language::Rust
}

/// A [`Language`] as its name.
mod language_name {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use crate::mark::Language;

    pub fn serialize<S: Serializer>(language: &Language, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(language.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Language, D::Error> {
        let name = String::deserialize(deserializer)?;
        Language::named(&name).ok_or_else(|| {
            D::Error::custom(format!("language {name:?} is none this host runs (rust, python)"))
        })
    }
}

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("cannot read the bundle manifest {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the bundle manifest {path} is not valid: {source}")]
    Parse { path: String, source: serde_json::Error },
    #[error("the bundle manifest {path} has format {found}; this host reads format {MANIFEST_FORMAT}")]
    Format { path: String, found: u32 },
}

impl Manifest {
    /// Reads `manifest.json` from the bundle directory `root`.
    pub fn read(root: &Path) -> Result<Self, ManifestError> {
        let path = root.join(MANIFEST_FILE);
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: shown.clone(),
            source,
        })?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|source| ManifestError::Parse {
            path: shown.clone(),
            source,
        })?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(ManifestError::Format {
                path: shown,
                found: manifest.format,
            });
        }
        Ok(manifest)
    }
}
