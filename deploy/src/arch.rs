//! The architectures Lambda runs, by the names Lambda, Rust and ELF give
//! them.

/// The architectures Lambda runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    /// Lambda's name for it.
    pub fn lambda_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// Rust's name for it (`std::env::consts::ARCH`).
    pub fn machine(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "x86_64" => Ok(Arch::X86_64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            other => Err(format!(
                "--arch {other:?} is not a Lambda architecture: use x86_64 or arm64"
            )),
        }
    }
}

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

    #[test]
    fn parses_lambda_architecture_names() {
        assert_eq!("x86_64".parse(), Ok(Arch::X86_64));
        assert_eq!("arm64".parse(), Ok(Arch::Arm64));
        assert!("mips".parse::<Arch>().unwrap_err().contains("--arch \"mips\""));
    }
}
