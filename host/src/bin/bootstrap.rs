//! The Lambda bootstrap: the `host` program under the name a
//! `provided.al2023` function runs. `deploy` builds it without the `jit`
//! feature (no compiler: it only loads precompiled components) and with
//! `lambda`, in the workspace's target directory, where it shares every
//! dependency but wasmtime with the build of the tests; a separate name
//! keeps it from replacing the `host` those tests run.

#[path = "../main.rs"]
mod host;

fn main() -> std::process::ExitCode {
    host::main()
}
