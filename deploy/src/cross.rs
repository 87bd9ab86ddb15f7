//! Building the bootstrap for the other Lambda architecture, as cargo-lambda
//! does: Rust's standard library for the target (`rustup target add`), Zig
//! as the C compiler and linker (PyPI's `ziglang`), and `cargo-zigbuild`
//! (its prebuilt wheel on PyPI), which links against a chosen glibc: 2.34,
//! Amazon Linux 2023's. What is missing is installed into the workspace's
//! `target/cross/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

use crate::arch::{Arch, rust_target};

/// A build of the bootstrap, or a step of setting up its toolchain, that
/// failed.
#[derive(Debug, Error)]
#[error("building the bootstrap failed ({command}): {detail}")]
pub struct BuildFailed {
    pub command: String,
    pub detail: String,
}

/// The pinned tools.
const CARGO_ZIGBUILD: &str = "0.24.1";
const ZIGLANG: &str = "0.17.1";

fn run(command: &mut Command, what: &str) -> Result<(), BuildFailed> {
    let shown = format!("{command:?}");
    let output = command.output().map_err(|err| BuildFailed {
        command: shown.clone(),
        detail: format!("{what}: {err}"),
    })?;
    if !output.status.success() {
        return Err(BuildFailed {
            command: shown,
            detail: format!("{what}: {}", String::from_utf8_lossy(&output.stderr)),
        });
    }
    Ok(())
}

/// The cross toolchain, installed into `target/` where it is missing.
pub struct CrossToolchain {
    cargo_zigbuild: PathBuf,
    python: PathBuf,
}

impl CrossToolchain {
    /// Finds or installs the tools for building `arch` here; `say` is told
    /// what is installed.
    pub fn ready(workspace: &Path, arch: Arch, say: &mut dyn FnMut(String)) -> Result<Self, BuildFailed> {
        let tools = workspace.join("target").join("cross");
        let target = rust_target(arch);
        let installed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .map(|output| {
                String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .any(|line| line == target)
            })
            .unwrap_or(false);
        if !installed {
            say(format!(
                "installing Rust's standard library for {target} (rustup target add)"
            ));
            run(
                Command::new("rustup").args(["target", "add", &target]),
                "rustup target add",
            )?;
        }
        // Both from PyPI, prebuilt: Zig, and cargo-zigbuild's own wheel
        // (seconds, where `cargo install` compiles for a minute and a half).
        let venv = tools.join("venv");
        let python = venv.join("bin").join("python3");
        let cargo_zigbuild = venv.join("bin").join("cargo-zigbuild");
        if !has_ziglang(&python) || !cargo_zigbuild.is_file() {
            say(format!(
                "installing Zig (PyPI ziglang=={ZIGLANG}) and cargo-zigbuild {CARGO_ZIGBUILD} (PyPI) into {}",
                venv.display()
            ));
            run(
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
                "python3 -m venv",
            )?;
            run(
                Command::new(venv.join("bin").join("pip")).args([
                    "install",
                    "--quiet",
                    &format!("ziglang=={ZIGLANG}"),
                    &format!("cargo-zigbuild=={CARGO_ZIGBUILD}"),
                ]),
                "pip install ziglang cargo-zigbuild",
            )?;
        }
        Ok(CrossToolchain {
            cargo_zigbuild,
            python,
        })
    }

    /// `cargo zigbuild` for `arch` with glibc 2.34, in `workspace`.
    pub fn command(&self, workspace: &Path, arch: Arch) -> Command {
        let mut command = Command::new(&self.cargo_zigbuild);
        command
            .current_dir(workspace)
            .env("CARGO_ZIGBUILD_PYTHON_PATH", &self.python)
            .args(["zigbuild", "--target", &format!("{}.2.34", rust_target(arch))]);
        command
    }
}

fn has_ziglang(python: &Path) -> bool {
    python.is_file()
        && Command::new(python)
            .args(["-m", "ziglang", "version"])
            .output()
            .map(|output| output.status.success())
            .unwrap_or(false)
}
