//! The command line, the binary itself, over the shipped example bucket
//! and events: `emmaa-host replay`, `--follow`, `emmaa-host simulate` and `--quotas`.

mod check;
mod completions;
mod components;
mod follow;
mod generate_event;
mod quotas;
mod replay;
mod simulate;

use simulate::simulate_with;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

const NOW: &str = "2020-02-04T12:00:00Z";

use crate::workspace::workspace;

/// Runs `command` to its end, its output captured; the test fails with
/// `hang` if it has not ended within two minutes (a FIFO opened, a loop
/// walked), instead of waiting for ever.
fn output_within_two_minutes(command: &mut Command, hang: &str) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{hang}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// `emmaa-host replay ARGS` with no EMMAA_* setting inherited from the caller.
fn replay(args: &[&str], envs: &[(&str, &str)]) -> Output {
    replay_with_stdin(args, envs, "")
}

fn replay_with_stdin(args: &[&str], envs: &[(&str, &str)], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_emmaa-host"));
    command.current_dir(workspace()).arg("replay").args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("EMMAA_") {
            command.env_remove(name);
        }
    }
    command.envs(envs.iter().copied());
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The host stops reading at Lambda's limit: past it, the pipe may break.
    let written = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    assert!(
        written.is_ok() || stdin.len() > 6 << 20,
        "writing the event: {written:?}"
    );
    child.wait_with_output().unwrap()
}

/// The report's actions other than ledger claims: what the handler did.
fn deeds(report: &Value) -> Vec<Value> {
    report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|action| action["op"] != "ledger.claim")
        .cloned()
        .collect()
}

/// The JSON a command printed, having checked that it succeeded.
fn succeeded(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout_json(output)
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "stdout is not JSON ({err}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}
