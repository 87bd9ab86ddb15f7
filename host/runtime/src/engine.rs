//! The wasmtime engine and the loaded guests. One configuration serves the
//! runtime and `deploy`'s precompiler, so a component precompiled there
//! loads in a Lambda host built without a compiler.
//!
//! Each guest is linked once ([`LoadedGuest`] holds it pre-instantiated) and
//! gets a fresh store per event. It is linked to the project's own
//! interfaces and to the host's answers to the WASI calls a language's
//! runtime makes on its own ([`crate::wasi`]: no environment, no files,
//! the event's clock, seeded randomness); whatever else the toolchain made
//! it import (sockets, files through a descriptor, `exit`) traps.

use std::path::{Path, PathBuf};

use thiserror::Error;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy};

use crate::bindings::{Handler, HandlerPre};
use crate::digest::content_hash;
use crate::guest::LoadedGuest;
use crate::imports::HostState;
use crate::limits::{Budget, pooling_config, start_epoch_ticker};
use crate::manifest::ManifestEntry;
use crate::mark::Language;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("could not set up the wasmtime engine: {0}")]
    Engine(String),
    #[error("could not read the component {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("could not load the component {path}: {message}")]
    Load { path: String, message: String },
    #[error(
        "{path} is not precompiled and this host has no compiler (the Lambda build): \
         load the .cwasm that `deploy bundle` makes"
    )]
    NoCompiler { path: String },
    #[error("could not link the component {path}: {message}")]
    Link { path: String, message: String },
    #[error(
        "guest {guest:?} is not built into this program: give the directory of its component with --components"
    )]
    NotBuiltIn { guest: String },
    /// The component is not the guest it was asked for, or cannot say.
    #[error("{path} cannot serve guest {guest:?}: {why}")]
    NotTheGuest {
        path: String,
        guest: String,
        why: String,
    },
}

impl EngineError {
    fn load(path: &str, err: &wasmtime::Error) -> Self {
        EngineError::Load {
            path: path.to_owned(),
            message: format!("{err:#}"),
        }
    }
}

/// The engine settings shared by every host build and the precompiler.
pub fn engine_config() -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        // Proposals the guests do not use, and which a Lambda host built
        // without the matching wasmtime features could not load.
        .wasm_gc(false)
        .wasm_stack_switching(false)
        .gc_support(false)
        .concurrency_support(false)
        // Traps are reported in words, never with wasm offsets: the
        // offset map would make each precompiled component a tenth bigger.
        .generate_address_map(false);
    config
}

/// Compiles a `.wasm` component for this host's architecture into the
/// bytes of a `.cwasm` that a host without a compiler can load.
#[cfg(feature = "jit")]
pub fn precompile(wasm: &[u8]) -> Result<Vec<u8>, EngineError> {
    precompile_for(wasm, None)
}

/// As [`precompile`], for the Linux machine `arch` names (`x86_64`,
/// `aarch64`; None: this machine): what a bootstrap of that architecture
/// loads.
#[cfg(feature = "jit")]
pub fn precompile_for(wasm: &[u8], arch: Option<&str>) -> Result<Vec<u8>, EngineError> {
    let mut config = engine_config();
    if let Some(arch) = arch {
        config
            .target(&format!("{arch}-unknown-linux-gnu"))
            .map_err(|err| EngineError::Engine(format!("{err:#}")))?;
    }
    let engine = Engine::new(&config).map_err(|err| EngineError::Engine(format!("{err:#}")))?;
    engine
        .precompile_component(wasm)
        .map_err(|err| EngineError::load("(precompiling)", &err))
}

/// Where compiled components are kept between runs of `replay` and
/// `simulate`: `EMMAA_COMPILE_CACHE` (empty: no cache), else
/// `$XDG_CACHE_HOME/emmaa/components`, else `~/.cache/emmaa/components`.
/// Made (owner only) when first used; None when it cannot be.
#[cfg(feature = "jit")]
pub fn compile_cache_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("EMMAA_COMPILE_CACHE") {
        Some(dir) if dir.is_empty() => return None,
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("XDG_CACHE_HOME")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?
            .join("emmaa")
            .join("components"),
    };
    if !dir.is_dir() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .ok()?;
    }
    if writable_by_others(&dir) {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            tracing::warn!(
                "the compile cache {} is writable by others (or not yours): not used; \
                 make it yours alone (chmod go-w) or set EMMAA_COMPILE_CACHE",
                dir.display()
            );
        });
        return None;
    }
    Some(dir)
}

/// A cache entry's bytes, when the digest beside it matches them.
#[cfg(feature = "jit")]
fn verified_entry(path: &Path) -> Option<Vec<u8>> {
    let digest = std::fs::read_to_string(digest_path(path)).ok()?;
    let bytes = std::fs::read(path).ok()?;
    (content_hash(&bytes) == digest).then_some(bytes)
}

/// Where an entry's digest is kept: beside it.
#[cfg(feature = "jit")]
fn digest_path(entry: &Path) -> PathBuf {
    entry.with_extension("cwasm.sha256")
}

/// Writes `bytes` to a file of its own, then renames it to `path`.
#[cfg(feature = "jit")]
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
}

/// Whether someone other than its owner, or an owner other than this
/// process's user, could write `dir`: then what is in it is not run.
#[cfg(feature = "jit")]
fn writable_by_others(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let me = std::fs::metadata("/proc/self").map(|own| own.uid()).ok();
    match std::fs::metadata(dir) {
        Ok(metadata) => metadata.mode() & 0o022 != 0 || Some(metadata.uid()) != me,
        Err(_) => true,
    }
}

/// Where a host finds the components of its guests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Components {
    /// The guests built into this program (with `jit`: the command line's
    /// default, so that an installed `emmaa-host` runs its own guests).
    BuiltIn,
    /// A directory of `<guest>.cwasm` or `<guest>.wasm` files.
    Directory(PathBuf),
    /// The named guests from a directory of their own (the Python builds:
    /// `emmaa-host --python`), every other from `rest`.
    Mixed {
        guests: Vec<String>,
        dir: PathBuf,
        rest: Box<Components>,
    },
}

/// The guests built into this program by build.rs, by name.
#[cfg(feature = "jit")]
const BUILT_IN: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/built_in.rs"));

#[cfg(not(feature = "jit"))]
const BUILT_IN: &[(&str, &[u8])] = &[];

/// Where the component of `guest` is in `dir`: `<guest>.cwasm` if there is
/// one, else `<guest>.wasm`.
fn component_path(dir: &Path, guest: &str) -> PathBuf {
    let precompiled = dir.join(format!("{guest}.cwasm"));
    if precompiled.is_file() {
        precompiled
    } else {
        dir.join(format!("{guest}.wasm"))
    }
}

/// Checks that `bytes`, read from `path` in `dir`, are `guest`'s component:
/// a `.wasm` by its mark ([`crate::mark`]); a `.cwasm`, whose precompiled
/// code is run as it is, by the `manifest.json` beside it (`deploy
/// bundle`'s), which must name it for `guest` with its digest, and which
/// must name the `.wasm` beside it too, if there is one (a stale `.cwasm`
/// is not preferred silently). Answers the language manifest.json gives a
/// `.cwasm` (a `.wasm` says its own).
fn check_identity(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    guest: &str,
) -> Result<Option<Language>, EngineError> {
    let refuse = |why: String| EngineError::NotTheGuest {
        path: path.display().to_string(),
        guest: guest.to_owned(),
        why,
    };
    let precompiled = path.extension().is_some_and(|ext| ext == "cwasm");
    if !precompiled {
        return match crate::mark::guest_mark(bytes).map_err(&refuse)? {
            Some(mark) if mark == guest => Ok(None),
            Some(mark) => Err(refuse(format!("it is guest {mark:?} (its emmaa:guest mark)"))),
            None => Err(refuse(format!(
                "it carries no {} mark (the builds of this project add it; see docs/command-line.md)",
                crate::mark::MARK_SECTION
            ))),
        };
    }
    let manifest = crate::manifest::Manifest::read(dir).map_err(|err| {
        refuse(format!(
            "precompiled code is run as it is, so a .cwasm is loaded only beside the manifest.json \
             that vouches for it ({err}): give the bundle's directory, or the .wasm"
        ))
    })?;
    let file = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    let entry = manifest
        .functions
        .values()
        .find(|entry| entry.component == file && entry.guest == guest)
        .ok_or_else(|| refuse(format!("manifest.json names no {file} for guest {guest:?}")))?;
    if entry.cwasm.as_deref() != Some(content_hash(bytes).as_str()) {
        return Err(refuse(
            "it is not the .cwasm manifest.json names (damaged, or from another bundle)".into(),
        ));
    }
    let wasm = dir.join(format!("{guest}.wasm"));
    if let Ok(source) = std::fs::read(&wasm) {
        if entry.wasm.as_deref() != Some(content_hash(&source).as_str()) {
            return Err(refuse(format!(
                "it was precompiled from another build than {} beside it: remove the stale one",
                wasm.display()
            )));
        }
        // The build it came from is here to say its language.
        let marked = crate::mark::language_mark(&source).map_err(&refuse)?;
        if marked != entry.language {
            return Err(refuse(format!(
                "manifest.json says it is written in {}, and the .wasm it was precompiled from is marked {}",
                entry.language.name(),
                marked.name()
            )));
        }
    }
    Ok(Some(entry.language))
}

/// The engine, ready to load guests.
pub struct GuestRuntime {
    engine: Engine,
}

impl GuestRuntime {
    /// The engine, its instance pool, and the thread that keeps its time
    /// for deadlines.
    pub fn new() -> Result<Self, EngineError> {
        let mut config = engine_config();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config()));
        let engine = Engine::new(&config).map_err(|err| EngineError::Engine(format!("{err:#}")))?;
        start_epoch_ticker(&engine);
        Ok(GuestRuntime { engine })
    }

    /// An engine that allocates each instance when it is needed, without a
    /// pool: for `emmaa-host simulate --quotas`, where one process runs as many
    /// guests at once as Lambda would run functions (each in an execution
    /// environment, with a pool of its own).
    pub fn on_demand() -> Result<Self, EngineError> {
        let engine = Engine::new(&engine_config()).map_err(|err| EngineError::Engine(format!("{err:#}")))?;
        start_epoch_ticker(&engine);
        Ok(GuestRuntime { engine })
    }

    /// Loads the component of `guest` from `components`.
    pub fn load_guest(&self, components: &Components, guest: &str) -> Result<LoadedGuest, EngineError> {
        match components {
            Components::Mixed { guests, dir, rest } => match guests.iter().any(|named| named == guest) {
                true => self.load_guest(&Components::Directory(dir.clone()), guest),
                false => self.load_guest(rest, guest),
            },
            Components::Directory(dir) => {
                let path = component_path(dir, guest);
                self.load_checked(&path, |bytes| check_identity(dir, &path, bytes, guest))
            }
            Components::BuiltIn => {
                let (_, wasm) = BUILT_IN.iter().find(|(name, _)| *name == guest).ok_or_else(|| {
                    EngineError::NotBuiltIn {
                        guest: guest.to_owned(),
                    }
                })?;
                self.load_bytes(wasm, false, &format!("{guest} (built in)"))
            }
        }
    }

    /// Loads a component file: a `.cwasm` precompiled by `deploy`, or (with
    /// the `jit` feature) a `.wasm` compiled here. A `.wasm` gets the budget
    /// of the language it is marked with; a `.cwasm` a Rust guest's, unless
    /// the caller, who has its manifest entry, says otherwise
    /// ([`LoadedGuest::with_budget`]).
    pub fn load(&self, path: &Path) -> Result<LoadedGuest, EngineError> {
        self.load_checked(path, |_| Ok(None))
    }

    /// Loads the component a bundle's manifest entry names, in the bundle
    /// directory `root`: known by the digest of its `.wasm`, and given the
    /// budget of the language the entry names (a precompiled component
    /// keeps no mark to say it).
    pub fn load_entry(&self, root: &Path, entry: &ManifestEntry) -> Result<LoadedGuest, EngineError> {
        Ok(self
            .load(&root.join(&entry.component))?
            .with_component_hash(entry.wasm.clone())
            .with_budget(Budget::of(entry.language)))
    }

    /// As [`GuestRuntime::load`], once `check` accepts the file's bytes,
    /// with the language `check` finds, if it finds one.
    fn load_checked(
        &self,
        path: &Path,
        check: impl FnOnce(&[u8]) -> Result<Option<Language>, EngineError>,
    ) -> Result<LoadedGuest, EngineError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| EngineError::Read {
            path: shown.clone(),
            source,
        })?;
        let language = check(&bytes)?;
        let precompiled = path.extension().is_some_and(|ext| ext == "cwasm");
        let loaded = self.load_bytes(&bytes, precompiled, &shown)?;
        Ok(match language {
            Some(language) => loaded.with_budget(Budget::of(language)),
            None => loaded,
        })
    }

    /// Loads a component from its bytes: precompiled (`.cwasm`), or a
    /// `.wasm` to compile, with the budget of the language it is marked
    /// with; `shown` names it in errors.
    fn load_bytes(&self, bytes: &[u8], precompiled: bool, shown: &str) -> Result<LoadedGuest, EngineError> {
        let hash = (!precompiled).then(|| content_hash(bytes));
        let language = match precompiled {
            true => Language::Rust,
            false => crate::mark::language_mark(bytes).map_err(|message| EngineError::Load {
                path: shown.to_owned(),
                message,
            })?,
        };
        let component = if precompiled {
            // SAFETY: `.cwasm` files are made by `deploy bundle` with this
            // engine configuration and shipped inside the bundle with this
            // host; wasmtime checks the version and settings before use.
            unsafe { Component::deserialize(&self.engine, bytes) }
                .map_err(|err| EngineError::load(shown, &err))?
        } else {
            self.compile(bytes, shown)?
        };
        Ok(self
            .link(component, shown)?
            .with_component_hash(hash)
            .with_budget(Budget::of(language)))
    }

    /// Compiles `wasm`, or loads what an earlier compile of the same bytes
    /// by a compatible engine left in the cache (`compile_cache_dir`).
    #[cfg(feature = "jit")]
    fn compile(&self, wasm: &[u8], shown: &str) -> Result<Component, EngineError> {
        let cached = compile_cache_dir().map(|dir| dir.join(format!("{}.cwasm", self.cache_key(wasm))));
        if let Some(bytes) = cached.as_deref().and_then(verified_entry) {
            // SAFETY: the entry is in a cache directory only its owner can
            // write, written below by this function from this engine's
            // compilation of the same bytes (its name holds their hash and
            // the engine's), and its digest, written after it, matches;
            // wasmtime checks its version and settings again.
            if let Ok(component) = unsafe { Component::deserialize(&self.engine, &bytes) } {
                return Ok(component);
            }
        }
        let component = Component::new(&self.engine, wasm).map_err(|err| EngineError::load(shown, &err))?;
        if let (Some(path), Ok(serialized)) = (cached, component.serialize()) {
            // Best effort: a cache that cannot be written only costs time.
            // The entry first, then its digest: each written whole and
            // renamed into place, so a reader never takes half of either.
            let digest = content_hash(&serialized);
            let _ = write_atomically(&path, &serialized)
                .and_then(|()| write_atomically(&digest_path(&path), digest.as_bytes()));
        }
        Ok(component)
    }

    /// The component's bytes and this engine's compatibility, hashed.
    #[cfg(feature = "jit")]
    fn cache_key(&self, wasm: &[u8]) -> String {
        use std::hash::{Hash, Hasher};
        let mut engine = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut engine);
        format!(
            "{}-{:016x}",
            &crate::digest::sha256_hex(wasm)[..32],
            engine.finish()
        )
    }

    #[cfg(not(feature = "jit"))]
    fn compile(&self, _wasm: &[u8], shown: &str) -> Result<Component, EngineError> {
        Err(EngineError::NoCompiler {
            path: shown.to_owned(),
        })
    }

    fn link(&self, component: Component, shown: &str) -> Result<LoadedGuest, EngineError> {
        let link_error = |err: wasmtime::Error| EngineError::Link {
            path: shown.to_owned(),
            message: format!("{err:#}"),
        };
        let mut linker: Linker<HostState> = Linker::new(&self.engine);
        Handler::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(link_error)?;
        crate::wasi::add_to_linker(&mut linker, &component, &self.engine, |state: &mut HostState| {
            &mut state.wasi
        })
        .map_err(link_error)?;
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(link_error)?;
        let pre = linker.instantiate_pre(&component).map_err(link_error)?;
        let pre = HandlerPre::new(pre).map_err(link_error)?;
        Ok(LoadedGuest::new(pre))
    }
}
