//! Building the bootstrap for the other Lambda architecture, as cargo-lambda
//! does: Rust's standard library for the target (`rustup target add`), Zig
//! as the C compiler and linker (PyPI's `ziglang`), and `cargo-zigbuild`
//! (its prebuilt wheel on PyPI), which links against a chosen glibc: 2.34,
//! Amazon Linux 2023's. What is missing is installed into the workspace's
//! `target/cross/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bundle::{Arch, BundleError};

/// The pinned tools.
const CARGO_ZIGBUILD: &str = "0.24.1";
const ZIGLANG: &str = "0.17.1";

/// ELF's `e_machine` of each architecture.
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

/// The architecture an ELF executable is for, if it is one Lambda runs.
pub fn elf_arch(executable: &[u8]) -> Option<Arch> {
    if executable.get(..4) != Some(b"\x7fELF") {
        return None;
    }
    let machine = u16::from_le_bytes([*executable.get(18)?, *executable.get(19)?]);
    match machine {
        EM_X86_64 => Some(Arch::X86_64),
        EM_AARCH64 => Some(Arch::Arm64),
        _ => None,
    }
}

/// The Rust target of `arch` on Linux.
pub fn rust_target(arch: Arch) -> String {
    format!("{}-unknown-linux-gnu", arch.machine())
}

fn run(command: &mut Command, what: &str) -> Result<(), BundleError> {
    let shown = format!("{command:?}");
    let output = command.output().map_err(|err| BundleError::BuildBootstrap {
        command: shown.clone(),
        detail: format!("{what}: {err}"),
    })?;
    if !output.status.success() {
        return Err(BundleError::BuildBootstrap {
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
    pub fn ready(workspace: &Path, arch: Arch, say: &mut dyn FnMut(String)) -> Result<Self, BundleError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_machine_of_an_elf_executable() {
        let mut header = b"\x7fELF".to_vec();
        header.resize(20, 0);
        header[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        assert_eq!(elf_arch(&header), Some(Arch::Arm64));
        header[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        assert_eq!(elf_arch(&header), Some(Arch::X86_64));
        header[18..20].copy_from_slice(&40u16.to_le_bytes());
        assert_eq!(elf_arch(&header), None, "32-bit ARM is not a Lambda architecture");
        assert_eq!(elf_arch(b"#!/bin/sh\n"), None);
        let this = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let native = if cfg!(target_arch = "x86_64") {
            Arch::X86_64
        } else {
            Arch::Arm64
        };
        assert_eq!(elf_arch(&this), Some(native));
    }
}
