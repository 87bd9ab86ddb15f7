//! Guests written in Python: `guests/python/<guest>/app.py` (beside the
//! library they share, `guests/python/emmaa_guest/`), built into
//! components by componentize-py (PyPI, pinned) against `wit/emmaa.wit`'s
//! `handler` world, and marked with their identity as `build.rs` marks the
//! Rust guests. `cargo build` never builds them (the README's main command
//! needs no PyPI): the tests and `deploy` do, on request. componentize-py
//! is installed into `target/componentize-py-<version>-venv` the first
//! time; a build is kept beside its inputs' digest and made again only
//! when they change. Builds and installs hold a lock file, so processes
//! building at once (two test binaries) take turns.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use emmaa_runtime::digest::sha256_hex;
use emmaa_runtime::mark::{Language, with_guest_mark, with_language_mark};
use thiserror::Error;

/// The componentize-py that builds the Python guests.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// Where the Python guests' sources are, under the workspace.
pub const PYTHON_GUESTS_DIR: &str = "guests/python";

/// The marks a build carries (`emmaa_runtime::mark`), part of its inputs.
const MARKS: &str = "\0marks: emmaa:guest, emmaa:language";

/// The library the Python guests share (not a guest).
const LIBRARY: &str = "emmaa_guest";

#[derive(Debug, Error)]
pub enum PythonError {
    #[error("there is no Python guest {guest:?} (no {path}): the Python guests are {known}")]
    NoSuchGuest {
        guest: String,
        path: String,
        known: String,
    },
    #[error("could not read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("could not write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("could not install componentize-py {COMPONENTIZE_PY_VERSION} into {venv}: {why}")]
    Install { venv: String, why: String },
    #[error("componentize-py could not build the Python guest {guest:?}:\n{output}")]
    Build { guest: String, output: String },
    #[error("componentize-py built no component for {guest:?}: {why}")]
    NotAComponent { guest: String, why: String },
}

/// The Python guests in `workspace`: each directory of
/// `guests/python/` with an `app.py`, by name.
pub fn python_guests(workspace: &Path) -> Vec<String> {
    let mut guests: Vec<String> = std::fs::read_dir(workspace.join(PYTHON_GUESTS_DIR))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("app.py").is_file())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    guests.sort();
    guests
}

/// Builds the Python guest `guest` of `workspace` into
/// `out_dir/<guest>.wasm`, marked, unless the build there is of the same
/// inputs; answers its path.
pub fn build(workspace: &Path, guest: &str, out_dir: &Path) -> Result<PathBuf, PythonError> {
    let sources = workspace.join(PYTHON_GUESTS_DIR);
    if !sources.join(guest).join("app.py").is_file() || guest == LIBRARY {
        return Err(PythonError::NoSuchGuest {
            guest: guest.to_owned(),
            path: sources.join(guest).join("app.py").display().to_string(),
            known: python_guests(workspace).join(", "),
        });
    }
    create_dir(out_dir)?;
    // One build at a time, across processes: tests build the same guest.
    let _turn = take_turn(&out_dir.join(".building.lock"))?;
    let out = out_dir.join(format!("{guest}.wasm"));
    let digest_path = out_dir.join(format!("{guest}.inputs"));
    let digest = inputs_digest(workspace)?;
    if out.is_file() && std::fs::read_to_string(&digest_path).ok().as_deref() == Some(digest.as_str()) {
        return Ok(out);
    }
    let tool = componentize_py(workspace)?;
    let built = out_dir.join(format!("{guest}.unmarked.{}.wasm", std::process::id()));
    let output = Command::new(&tool)
        .current_dir(workspace)
        .args(["-q", "-d", "wit", "-w", "handler", "componentize", "app", "-p"])
        .arg(sources.join(guest))
        .arg("-p")
        .arg(&sources)
        .arg("-o")
        .arg(&built)
        .output()
        .map_err(|err| PythonError::Build {
            guest: guest.to_owned(),
            output: format!("{}: {err}", tool.display()),
        })?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&built);
        return Err(PythonError::Build {
            guest: guest.to_owned(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    let wasm = std::fs::read(&built).map_err(|source| PythonError::Read {
        path: built.display().to_string(),
        source,
    })?;
    let _ = std::fs::remove_file(&built);
    let marked = with_guest_mark(&wasm, guest)
        .and_then(|marked| with_language_mark(&marked, Language::Python))
        .map_err(|why| PythonError::NotAComponent {
            guest: guest.to_owned(),
            why,
        })?;
    write_atomically(&out, &marked)?;
    write_atomically(&digest_path, digest.as_bytes())?;
    Ok(out)
}

/// Holds `lock` (made if need be) until the answer is dropped.
fn take_turn(lock: &Path) -> Result<File, PythonError> {
    let write = |source| PythonError::Write {
        path: lock.display().to_string(),
        source,
    };
    let file = File::create(lock).map_err(write)?;
    file.lock().map_err(write)?;
    Ok(file)
}

/// componentize-py, installed into `target/componentize-py-<version>-venv`
/// unless it is there (a venv is not moved once made, so the install
/// holds a lock instead, and is known finished by a file written last).
fn componentize_py(workspace: &Path) -> Result<PathBuf, PythonError> {
    let target = workspace.join("target");
    create_dir(&target)?;
    let venv = target.join(format!("componentize-py-{COMPONENTIZE_PY_VERSION}-venv"));
    let tool = venv.join("bin").join("componentize-py");
    let installed = venv.join("installed");
    let _turn = take_turn(&target.join("componentize-py.lock"))?;
    if installed.is_file() {
        return Ok(tool);
    }
    let _ = std::fs::remove_dir_all(&venv);
    let install = |why: String| PythonError::Install {
        venv: venv.display().to_string(),
        why,
    };
    let run = |command: &mut Command| -> Result<(), PythonError> {
        let output = command.output().map_err(|err| install(err.to_string()))?;
        match output.status.success() {
            true => Ok(()),
            false => Err(install(String::from_utf8_lossy(&output.stderr).into_owned())),
        }
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin").join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("componentize-py=={COMPONENTIZE_PY_VERSION}"),
    ]))?;
    std::fs::write(&installed, COMPONENTIZE_PY_VERSION).map_err(|source| PythonError::Write {
        path: installed.display().to_string(),
        source,
    })?;
    Ok(tool)
}

/// The digest of what a build can read: the pinned tool, the WIT contract
/// (all of `wit/`), and every file under `guests/python/` but the tests
/// (the build has all of it on its path, so one guest's change builds the
/// others again too: a few seconds each).
fn inputs_digest(workspace: &Path) -> Result<String, PythonError> {
    let mut inputs = Vec::new();
    inputs.extend_from_slice(COMPONENTIZE_PY_VERSION.as_bytes());
    // What the build adds after componentize-py: a build marked otherwise
    // is made again.
    inputs.extend_from_slice(MARKS.as_bytes());
    let mut files = Vec::new();
    collect_files(&workspace.join("wit"), &mut files)?;
    collect_files(&workspace.join(PYTHON_GUESTS_DIR), &mut files)?;
    files.sort();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|source| PythonError::Read {
            path: file.display().to_string(),
            source,
        })?;
        let name = file.strip_prefix(workspace).unwrap_or(&file);
        inputs.extend_from_slice(format!("\0{}\0{}\0", name.display(), bytes.len()).as_bytes());
        inputs.extend_from_slice(&bytes);
    }
    Ok(sha256_hex(&inputs))
}

/// The files under `dir` (none when it does not exist), bytecode caches
/// and the Python tests left out.
fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), PythonError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(|source| PythonError::Read {
            path: dir.display().to_string(),
            source,
        })?;
        let path = entry.path();
        if entry.file_name() == "__pycache__" || entry.file_name() == "tests" {
            continue;
        }
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => collect_files(&path, files)?,
            Ok(kind) if kind.is_file() => files.push(path),
            _ => {}
        }
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), PythonError> {
    std::fs::create_dir_all(dir).map_err(|source| PythonError::Write {
        path: dir.display().to_string(),
        source,
    })
}

/// Writes `bytes` to a file of its own, then renames it to `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PythonError> {
    let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|source| {
            let _ = std::fs::remove_file(&temporary);
            PythonError::Write {
                path: path.display().to_string(),
                source,
            }
        })
}
