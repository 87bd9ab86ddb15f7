//! The wasmtime engine and the loaded guests. One configuration serves the
//! runtime and `deploy`'s precompiler, so a component precompiled there
//! loads in a Lambda host built without a compiler.
//!
//! Each guest is linked once ([`LoadedGuest`] holds it pre-instantiated) and
//! gets a fresh store per event. It is linked only to the project's own
//! interfaces: whatever else the toolchain made it import (WASI files,
//! environment, clocks, sockets, stdio) traps, except std's hash seed, which
//! is fixed so that guests stay deterministic.

use std::path::{Path, PathBuf};

use thiserror::Error;
use wasmtime::component::{Component, HasSelf, Linker, types::ComponentItem};
use wasmtime::{Config, Engine, InstanceAllocationStrategy};

use crate::bindings::{Handler, HandlerPre};
use crate::digest::content_hash;
use crate::guest::LoadedGuest;
use crate::imports::HostState;
use crate::limits::{pooling_config, start_epoch_ticker};

/// What std's `HashMap` gets from `wasi:random/insecure-seed`.
const FIXED_HASH_SEED: (u64, u64) = (0x454d_4d41_4121_0001, 0x454d_4d41_4121_0002);

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
    Some(dir)
}

/// Where a host finds the components of its guests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Components {
    /// The guests built into this program (with `jit`: the command line's
    /// default, so that an installed `emmaa-host` runs its own guests).
    BuiltIn,
    /// A directory of `<guest>.cwasm` or `<guest>.wasm` files.
    Directory(PathBuf),
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
            Components::Directory(dir) => self.load(&component_path(dir, guest)),
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
    /// the `jit` feature) a `.wasm` compiled here.
    pub fn load(&self, path: &Path) -> Result<LoadedGuest, EngineError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| EngineError::Read {
            path: shown.clone(),
            source,
        })?;
        let precompiled = path.extension().is_some_and(|ext| ext == "cwasm");
        self.load_bytes(&bytes, precompiled, &shown)
    }

    /// Loads a component from its bytes: precompiled (`.cwasm`), or a
    /// `.wasm` to compile; `shown` names it in errors.
    fn load_bytes(&self, bytes: &[u8], precompiled: bool, shown: &str) -> Result<LoadedGuest, EngineError> {
        let hash = (!precompiled).then(|| content_hash(bytes));
        let component = if precompiled {
            // SAFETY: `.cwasm` files are made by `deploy bundle` with this
            // engine configuration and shipped inside the bundle with this
            // host; wasmtime checks the version and settings before use.
            unsafe { Component::deserialize(&self.engine, bytes) }
                .map_err(|err| EngineError::load(shown, &err))?
        } else {
            self.compile(bytes, shown)?
        };
        Ok(self.link(component, shown)?.with_component_hash(hash))
    }

    /// Compiles `wasm`, or loads what an earlier compile of the same bytes
    /// by a compatible engine left in the cache (`compile_cache_dir`).
    #[cfg(feature = "jit")]
    fn compile(&self, wasm: &[u8], shown: &str) -> Result<Component, EngineError> {
        let cached = compile_cache_dir().map(|dir| dir.join(format!("{}.cwasm", self.cache_key(wasm))));
        if let Some(bytes) = cached.as_ref().and_then(|path| std::fs::read(path).ok()) {
            // SAFETY: the file is in the user's own cache directory, written
            // below by this function from this engine's compilation of the
            // same bytes (its name holds their hash and the engine's);
            // wasmtime checks its version and settings again.
            if let Ok(component) = unsafe { Component::deserialize(&self.engine, &bytes) } {
                return Ok(component);
            }
        }
        let component = Component::new(&self.engine, wasm).map_err(|err| EngineError::load(shown, &err))?;
        if let (Some(path), Ok(serialized)) = (cached, component.serialize()) {
            // Best effort: a cache that cannot be written only costs time.
            let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
            if std::fs::write(&temporary, serialized).is_ok() && std::fs::rename(&temporary, &path).is_err() {
                let _ = std::fs::remove_file(&temporary);
            }
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
        let seed_imports: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .filter(|(name, import)| {
                name.starts_with("wasi:random/insecure-seed@")
                    && matches!(import.ty, ComponentItem::ComponentInstance(_))
            })
            .map(|(name, _)| name.to_owned())
            .collect();
        for name in seed_imports {
            linker
                .instance(&name)
                .and_then(|mut seed| seed.func_wrap("insecure-seed", |_, (): ()| Ok((FIXED_HASH_SEED,))))
                .map_err(link_error)?;
        }
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(link_error)?;
        let pre = linker.instantiate_pre(&component).map_err(link_error)?;
        let pre = HandlerPre::new(pre).map_err(link_error)?;
        Ok(LoadedGuest::new(pre))
    }
}
