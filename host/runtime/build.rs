//! Builds every guest under `guests/` as a WebAssembly component
//! (`wasm32-wasip2`, the workspace's `guest` profile: release, built for
//! size) so that the tests and `deploy` find them in `EMMAA_GUEST_DIR`, and
//! builds them into the program (`built_in.rs`), so that the command line
//! runs its own guests wherever it is installed. Only with the `jit`
//! feature: the Lambda bootstrap loads precompiled components from its
//! bundle instead.
//!
//! The guests get a cargo of their own with its own `--target-dir`: sharing
//! the outer build's directory would wait forever on the outer build's lock.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Settings of the outer build that must not leak into the guest build.
const OUTER_BUILD_VARIABLES: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
];

#[path = "src/mark.rs"]
#[allow(dead_code, reason = "the build marks guests; it reads no mark")]
mod mark;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .ancestors()
        .nth(2)
        .expect("host/runtime/ sits in the workspace")
        .to_path_buf();
    // The Rust guests' crates, not all of guests/: a change to a Python
    // guest (guests/python/) builds nothing here. A new crate is a new
    // workspace member, so Cargo.toml's change brings it in.
    for watched in ["wit", "Cargo.lock", "Cargo.toml", "guests/emmaa_guest"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }
    for guest in guest_crates(&workspace.join("guests")) {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join("guests").join(guest).display()
        );
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    if env::var_os("CARGO_FEATURE_JIT").is_none() {
        return;
    }

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("guests");
    let mut cargo = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(&workspace)
        .args([
            "build",
            "--profile",
            "guest",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    let guests = guest_crates(&workspace.join("guests"));
    for guest in &guests {
        cargo.args(["-p", guest]);
    }
    for variable in OUTER_BUILD_VARIABLES {
        cargo.env_remove(variable);
    }
    let output = cargo.output().expect("could not run cargo to build the guests");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("wasm32-wasip2") && stderr.contains("target may not be installed") {
            "\n\nThe wasm32-wasip2 target is missing: run `rustup target add wasm32-wasip2`."
        } else {
            ""
        };
        panic!("building the guests (cargo build --target wasm32-wasip2) failed:\n{stderr}{hint}");
    }
    let built = target_dir.join("wasm32-wasip2").join("guest");
    let marked = target_dir.join("marked");
    mark_guests(&built, &marked, &guests);
    println!("cargo:rustc-env=EMMAA_GUEST_DIR={}", marked.display());
    write_built_in(&marked, &guests);
}

/// Copies each guest's component into `marked` with its identity
/// (`src/mark.rs`), writing only what changed.
fn mark_guests(built: &Path, marked: &Path, guests: &[String]) {
    fs::create_dir_all(marked).expect("the target directory is writable");
    for guest in guests {
        let wasm = fs::read(built.join(format!("{guest}.wasm"))).expect("cargo built the guest");
        let with_mark = mark::with_guest_mark(&wasm, guest).expect("cargo built a component");
        let path = marked.join(format!("{guest}.wasm"));
        if fs::read(&path).ok().as_deref() != Some(with_mark.as_slice()) {
            fs::write(&path, with_mark).expect("the target directory is writable");
        }
    }
}

/// Writes `$OUT_DIR/built_in.rs`: every guest's `.wasm`, by name, as bytes of the
/// program (`include_bytes!`), so that a program built with `jit` carries its guests
/// and runs them wherever it is installed.
fn write_built_in(built: &Path, guests: &[String]) {
    let mut code = String::from("&[\n");
    for guest in guests {
        let wasm = built.join(format!("{guest}.wasm"));
        code.push_str(&format!(
            "    ({guest:?}, include_bytes!({:?}).as_slice()),\n",
            wasm.display().to_string()
        ));
    }
    code.push(']');
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("built_in.rs");
    fs::write(out, code).expect("OUT_DIR is writable");
}

/// The guest crates: every directory of `guests/` with a `Cargo.toml`,
/// except the library they share.
fn guest_crates(guests: &Path) -> Vec<String> {
    let mut crates: Vec<String> = fs::read_dir(guests)
        .expect("guests/ is readable")
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name != "emmaa_guest")
        .collect();
    crates.sort();
    crates
}
