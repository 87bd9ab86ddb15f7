//! The Lambda bundle of one guest: `bootstrap` (the host, built without a
//! compiler), `<guest>.cwasm` (the guest precompiled for the architecture)
//! and `manifest.json` (which function the bundle serves). The zip is
//! deterministic: the same inputs give the same bytes, so re-uploading
//! unchanged code gives AWS the same `CodeSha256`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use emmaa_offline::progress::Progress;
use emmaa_runtime::functions::{FUNCTIONS, GUEST_DIR, PipelineFunction};
use emmaa_runtime::manifest::{MANIFEST_FILE, MANIFEST_FORMAT, Manifest, ManifestEntry};
use sha2::{Digest, Sha256};
use thiserror::Error;
use zip::write::SimpleFileOptions;

use crate::arch::{Arch, elf_arch, rust_target};
use crate::cross::{BuildFailed, CrossToolchain};
use crate::glibc::{AL2023_GLIBC, newest_glibc_version};

#[derive(Debug, Error)]
pub enum BundleError {
    #[error("unknown guest {0:?}: use one of {known}", known = guest_names())]
    UnknownGuest(String),
    #[error("--python {0}: the bundle serves no function of guest {0:?}")]
    PythonNotServed(String),
    #[error("--python: {0}")]
    Python(#[from] emmaa_offline::python::PythonError),
    #[error(
        "{path} is {found}, but the bundle is for {wanted}: Lambda could not start it",
        found = .found.map(Arch::lambda_name).unwrap_or("not a 64-bit Linux executable"),
        wanted = .wanted.lambda_name()
    )]
    WrongArch {
        path: String,
        found: Option<Arch>,
        wanted: Arch,
    },
    #[error(transparent)]
    BuildBootstrap(#[from] BuildFailed),
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error(
        "{path} needs glibc {major}.{minor}, newer than Amazon Linux 2023's {}.{}: \
         it would not start on provided.al2023",
        AL2023_GLIBC.0, AL2023_GLIBC.1
    )]
    GlibcTooNew { path: String, major: u32, minor: u32 },
    #[error("precompiling {guest}: {source}")]
    Precompile {
        guest: String,
        source: emmaa_runtime::engine::EngineError,
    },
    #[error("the component of guest {guest:?} cannot say its language: {why}")]
    Marked { guest: String, why: String },
    #[error("writing the zip: {0}")]
    Zip(String),
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

fn guest_names() -> String {
    FUNCTIONS
        .iter()
        .map(|entry| entry.guest)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The functions a bundle serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serves {
    /// One guest, for one function (default: the guest's own).
    One { guest: String, function: Option<String> },
    /// Every guest, each for its own function: one artifact for the
    /// whole pipeline.
    All,
}

/// What to bundle.
#[derive(Debug, Clone)]
pub struct BundleRequest {
    pub serves: Serves,
    pub arch: Arch,
    /// The cargo profile to build the bootstrap with (`release`, `dev`).
    pub profile: String,
    /// A bootstrap built already, instead of building one.
    pub bootstrap: Option<PathBuf>,
    /// Where to write the zip (default: `target/bundles/<function>.zip`,
    /// or `target/bundles/pipeline.zip` for all).
    pub out: Option<PathBuf>,
    /// `EMMAA_FUNCTION_PREFIX`, for the default function names.
    pub function_prefix: String,
    /// Guests whose Python build (`guests/python/<guest>`, built here by
    /// componentize-py) goes into the bundle instead of the Rust one.
    pub python: Vec<String>,
}

/// A bundle, written to `path`.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub path: PathBuf,
    /// Function name to the guest that serves it, as in the manifest.
    pub functions: BTreeMap<String, String>,
    pub arch: Arch,
    pub zip: Vec<u8>,
}

impl Bundle {
    /// The functions and their guests, for an operator.
    pub fn describe_functions(&self) -> String {
        self.functions
            .iter()
            .map(|(function, guest)| format!("{function} ({guest})"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The zip's SHA-256, in hex.
    pub fn sha256_hex(&self) -> String {
        emmaa_runtime::digest::sha256_hex(&self.zip)
    }

    /// The zip's SHA-256 as Lambda reports it (`CodeSha256`: base64).
    pub fn code_sha256(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&self.zip))
    }
}

/// The workspace this `deploy` was built from.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("deploy/ sits in the workspace")
        .to_owned()
}

/// The bootstrap's package: the Lambda host, whose runtime is built
/// without `jit`, so that it carries no compiler, and without the command
/// line or the offline tools.
pub const BOOTSTRAP_PACKAGE: [&str; 2] = ["-p", "emmaa-lambda"];

/// The most bytes the one bundle of every function may have (release,
/// x86_64, every guest precompiled): the project's goal, checked where the
/// release bundle is built (`tests/side_by_side.rs -- --full`).
pub const BUNDLE_GOAL_BYTES: usize = 10_000_000;

/// Builds the bootstrap for `arch`: `emmaa-lambda`'s `bootstrap` binary.
/// This machine's architecture is built by cargo in the workspace's target
/// directory, where it reuses the tests' build of every dependency with
/// the same features in both (the feature pins in host/lambda/Cargo.toml
/// keep it so): it builds again only wasmtime without its compiler and
/// the host's own crates over it. The other architecture is built by cargo-zigbuild against glibc
/// 2.34 (see [`crate::cross`]) in `target/cross/build`, so that neither
/// build waits on the other's lock (CI runs the arm64 test beside the
/// others).
pub fn build_bootstrap(
    profile: &str,
    arch: Arch,
    say: &mut dyn FnMut(String),
) -> Result<PathBuf, BundleError> {
    let native = arch.machine() == std::env::consts::ARCH;
    let target_dir = match native {
        true => workspace().join("target"),
        false => workspace().join("target").join("cross").join("build"),
    };
    let mut cargo = if native {
        let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cargo.current_dir(workspace()).arg("build");
        cargo
    } else {
        CrossToolchain::ready(&workspace(), arch, say)?.command(&workspace(), arch)
    };
    cargo
        .args(BOOTSTRAP_PACKAGE)
        .args(["--bin", "bootstrap", "--profile", profile])
        .arg("--target-dir")
        .arg(&target_dir);
    let shown = format!("{cargo:?}");
    // On a terminal cargo shows its own progress; elsewhere its output is
    // kept for the error, and the build is quiet.
    let on_terminal = std::io::stderr().is_terminal();
    if on_terminal {
        say(format!(
            "building the bootstrap ({} profile; minutes the first time)",
            profile
        ));
        cargo.stderr(std::process::Stdio::inherit());
    }
    let output = cargo.output().map_err(|err| BuildFailed {
        command: shown.clone(),
        detail: err.to_string(),
    })?;
    if !output.status.success() {
        return Err(BuildFailed {
            command: shown,
            detail: if on_terminal {
                "cargo's output is above".to_owned()
            } else {
                String::from_utf8_lossy(&output.stderr).into_owned()
            },
        }
        .into());
    }
    let profile_dir = if profile == "dev" { "debug" } else { profile };
    let built = if native {
        target_dir.join(profile_dir)
    } else {
        target_dir.join(rust_target(arch)).join(profile_dir)
    };
    Ok(built.join("bootstrap"))
}

fn read(path: &Path) -> Result<Vec<u8>, BundleError> {
    std::fs::read(path).map_err(|source| BundleError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Builds the bundle and writes it.
pub fn bundle(request: &BundleRequest) -> Result<Bundle, BundleError> {
    let functions: BTreeMap<String, String> = match &request.serves {
        Serves::One { guest, function } => {
            let default_function = PipelineFunction::by_guest(guest)
                .ok_or_else(|| BundleError::UnknownGuest(guest.clone()))?
                .name(&request.function_prefix);
            BTreeMap::from([(function.clone().unwrap_or(default_function), guest.clone())])
        }
        Serves::All => FUNCTIONS
            .iter()
            .map(|entry| {
                (
                    format!("{}{}", request.function_prefix, entry.function),
                    entry.guest.to_owned(),
                )
            })
            .collect(),
    };
    if let Some(unserved) = request
        .python
        .iter()
        .find(|guest| !functions.values().any(|served| served == *guest))
    {
        return Err(BundleError::PythonNotServed(unserved.clone()));
    }
    let bootstrap_path = match &request.bootstrap {
        Some(path) => path.clone(),
        None => build_bootstrap(&request.profile, request.arch, &mut |line| eprintln!("{line}"))?,
    };
    let bootstrap = read(&bootstrap_path)?;
    let found = elf_arch(&bootstrap);
    if found != Some(request.arch) {
        return Err(BundleError::WrongArch {
            path: bootstrap_path.display().to_string(),
            found,
            wanted: request.arch,
        });
    }
    if let Some((major, minor)) = newest_glibc_version(&bootstrap).filter(|&version| version > AL2023_GLIBC) {
        return Err(BundleError::GlibcTooNew {
            path: bootstrap_path.display().to_string(),
            major,
            minor,
        });
    }

    let mut components = BTreeMap::new();
    let guests: std::collections::BTreeSet<&String> = functions.values().collect();
    let progress = Progress::start(format!("precompiling for {}", request.arch.lambda_name()));
    for (done, &guest) in guests.iter().enumerate() {
        progress.step(done + 1, guests.len(), guest);
        let wasm = match request.python.contains(guest) {
            true => read(&emmaa_offline::python::build(
                &workspace(),
                guest,
                &workspace().join("target").join("python-guests"),
            )?)?,
            false => read(&Path::new(GUEST_DIR).join(format!("{guest}.wasm")))?,
        };
        // Always for the named target, never this machine's own CPU: its
        // extensions may be missing where Lambda runs the function.
        let component =
            emmaa_runtime::engine::precompile_for(&wasm, Some(request.arch.machine())).map_err(|source| {
                BundleError::Precompile {
                    guest: guest.clone(),
                    source,
                }
            })?;
        // The language's budget goes with the component: precompiled, it
        // keeps no custom sections, so the manifest says it.
        let language = emmaa_runtime::mark::language_mark(&wasm).map_err(|why| BundleError::Marked {
            guest: guest.clone(),
            why,
        })?;
        components.insert(
            guest.clone(),
            (component, emmaa_runtime::digest::content_hash(&wasm), language),
        );
    }
    progress.note("zipping");
    let component_file = |guest: &str| format!("{guest}.cwasm");
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        arch: request.arch.lambda_name().to_owned(),
        functions: functions
            .iter()
            .map(|(function, guest)| {
                let entry = ManifestEntry {
                    guest: guest.clone(),
                    component: component_file(guest),
                    wasm: components.get(guest).map(|(_, hash, _)| hash.clone()),
                    cwasm: components
                        .get(guest)
                        .map(|(component, _, _)| emmaa_runtime::digest::content_hash(component)),
                    language: components
                        .get(guest)
                        .map(|(_, _, language)| *language)
                        .unwrap_or_default(),
                };
                (function.clone(), entry)
            })
            .collect(),
    };
    let manifest = serde_json::to_vec_pretty(&manifest).map_err(|err| BundleError::Zip(err.to_string()))?;

    let files: Vec<(String, &[u8], u32)> = [
        ("bootstrap".to_owned(), bootstrap.as_slice(), 0o755),
        (MANIFEST_FILE.to_owned(), manifest.as_slice(), 0o644),
    ]
    .into_iter()
    .chain(
        components
            .iter()
            .map(|(guest, (component, _, _))| (component_file(guest), component.as_slice(), 0o644)),
    )
    .collect();
    let zip = zip_files(&files, compression_level(&request.profile))?;
    let name = match &request.serves {
        Serves::One { .. } => functions.keys().next().cloned().unwrap_or_default(),
        Serves::All => "pipeline".to_owned(),
    };
    let path = request.out.clone().unwrap_or_else(|| {
        workspace()
            .join("target")
            .join("bundles")
            .join(format!("{name}.zip"))
    });
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| BundleError::Write {
            path: dir.display().to_string(),
            source,
        })?;
    }
    std::fs::write(&path, &zip).map_err(|source| BundleError::Write {
        path: path.display().to_string(),
        source,
    })?;
    Ok(Bundle {
        path,
        functions,
        arch: request.arch,
        zip,
    })
}

/// How hard a bundle of `profile` is deflated: the release bundle, which
/// users deploy and which must stay under [`BUNDLE_GOAL_BYTES`], with the
/// strongest level Lambda unpacks; the others (dev bundles, which the tests
/// build again and again) with the default, four times quicker on the dev
/// bootstrap (1.5 s against 5.7 s here) for 1% more bytes.
fn compression_level(profile: &str) -> i64 {
    if profile == "release" { 9 } else { 6 }
}

/// A zip of `(name, contents, unix mode)`, with fixed timestamps, deflated
/// at `level`.
fn zip_files(files: &[(impl AsRef<str>, &[u8], u32)], level: i64) -> Result<Vec<u8>, BundleError> {
    let zip_error = |err: &dyn std::fmt::Display| BundleError::Zip(err.to_string());
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, contents, mode) in files {
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(level))
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(*mode);
        writer
            .start_file(name.as_ref(), options)
            .map_err(|err| zip_error(&err))?;
        writer.write_all(contents).map_err(|err| zip_error(&err))?;
    }
    let cursor = writer.finish().map_err(|err| zip_error(&err))?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Each package of a build as `cargo tree` resolves it, with its
    /// features: "name vX.Y.Z feature,feature".
    fn resolved(args: &[&str]) -> BTreeSet<String> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .current_dir(workspace())
            .arg("tree")
            .args(args)
            .args(["--prefix", "none", "--format", "{p} {f}"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| {
                // "name vX (path) (*) features" drops its path and marks.
                let mut words = line
                    .split(' ')
                    .filter(|word| !word.starts_with('(') && !word.ends_with(')'));
                let package = format!("{} {}", words.next().unwrap_or(""), words.next().unwrap_or(""));
                format!("{package} {}", words.next().unwrap_or(""))
            })
            .collect()
    }

    /// What the bootstrap's build compiles again with other features than
    /// the tests' build: wasmtime and what it builds differently without
    /// its compiler, and the runtime without `jit`. Not tokio: a tokio of
    /// other features would rebuild everything over it (hyper, the SDKs,
    /// Lambda's runtime); `simulate --quotas` runs on the runtime's own
    /// virtual clock, not tokio's paused one (`test-util`).
    const BUILT_AGAIN: &[&str] = &[
        "emmaa-runtime",
        "wasmtime",
        "wasmtime-environ",
        "wasmtime-internal-unwinder",
        "pulley-interpreter",
        "gimli",
        "object",
    ];

    #[test]
    fn the_bootstrap_builds_again_only_wasmtime_and_the_runtime() {
        let tests = resolved(&["--workspace", "--edges", "normal,build,dev"]);
        let bootstrap = resolved(&[&BOOTSTRAP_PACKAGE[..], &["--edges", "normal,build"]].concat());
        assert!(
            bootstrap.iter().any(|line| line.starts_with("aws-sdk-s3 "))
                && tests.iter().any(|line| line.starts_with("wasmtime ")),
            "cargo tree lists the builds: {bootstrap:?}"
        );
        let again: Vec<&String> = bootstrap
            .difference(&tests)
            .filter(|line| !BUILT_AGAIN.contains(&line.split(' ').next().unwrap()))
            .collect();
        assert!(
            again.is_empty(),
            "the bootstrap's build would compile these again, with other features than the tests' build \
             (and everything that depends on them, the AWS SDKs among them): {again:?}; \
             pin the tests' features in host/lambda/Cargo.toml"
        );
    }

    #[test]
    fn the_bootstrap_carries_no_compiler_no_command_line_and_no_paused_clock() {
        let bootstrap = resolved(&[&BOOTSTRAP_PACKAGE[..], &["--edges", "normal"]].concat());
        let carried: Vec<&String> = bootstrap
            .iter()
            .filter(|line| {
                let package = line.split(' ').next().unwrap_or("");
                ["clap", "cranelift-codegen", "emmaa-offline", "emmaa-host"].contains(&package)
                    || (package == "tokio" && line.contains("test-util"))
            })
            .collect();
        assert!(
            bootstrap.iter().any(|line| line.starts_with("lambda_runtime ")),
            "cargo tree lists the bootstrap's build: {bootstrap:?}"
        );
        assert!(carried.is_empty(), "the bootstrap's build carries {carried:?}");
    }

    #[test]
    fn zips_are_deterministic() {
        let first = zip_files(
            &[("bootstrap", b"binary", 0o755), ("manifest.json", b"{}", 0o644)],
            9,
        )
        .unwrap();
        let second = zip_files(
            &[("bootstrap", b"binary", 0o755), ("manifest.json", b"{}", 0o644)],
            9,
        )
        .unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn the_bootstrap_keeps_its_execute_bit() {
        let zip = zip_files(&[("bootstrap", b"binary", 0o755)], 9).unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        assert_eq!(
            archive
                .by_name("bootstrap")
                .unwrap()
                .unix_mode()
                .map(|m| m & 0o777),
            Some(0o755)
        );
    }

    #[test]
    fn refuses_unknown_guests_and_foreign_architectures() {
        let request = BundleRequest {
            serves: Serves::One {
                guest: "sandbox_probe".into(),
                function: None,
            },
            arch: Arch::X86_64,
            profile: "dev".into(),
            bootstrap: Some("/nonexistent".into()),
            out: None,
            function_prefix: "emmaa-".into(),
            python: Vec::new(),
        };
        assert!(matches!(bundle(&request), Err(BundleError::UnknownGuest(_))));
        // A Python build of a guest the bundle does not serve.
        let elsewhere = BundleRequest {
            serves: Serves::One {
                guest: "model_updates".into(),
                function: None,
            },
            python: vec!["model_stats".into()],
            ..request.clone()
        };
        assert_eq!(
            bundle(&elsewhere).unwrap_err().to_string(),
            "--python model_stats: the bundle serves no function of guest \"model_stats\""
        );
        // A bootstrap of the wrong architecture is refused before anything
        // is written: here a shell script, and this machine's own executable
        // offered as the other architecture's.
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("bootstrap");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let foreign = if std::env::consts::ARCH == "x86_64" {
            Arch::Arm64
        } else {
            Arch::X86_64
        };
        for (bootstrap, arch) in [
            (script, Arch::X86_64),
            (std::env::current_exe().unwrap(), foreign),
        ] {
            let request = BundleRequest {
                serves: Serves::One {
                    guest: "model_updates".into(),
                    function: None,
                },
                arch,
                bootstrap: Some(bootstrap),
                out: Some(dir.path().join("out.zip")),
                ..request.clone()
            };
            let err = bundle(&request).unwrap_err();
            assert!(matches!(err, BundleError::WrongArch { .. }), "{err}");
            assert!(err.to_string().contains("Lambda could not start it"), "{err}");
            assert!(!dir.path().join("out.zip").exists());
        }
    }
}
