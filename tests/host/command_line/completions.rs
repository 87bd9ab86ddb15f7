//! `emmaa-host completions SHELL`: the shells' completion scripts, made
//! from the command line itself.

use super::*;

#[test]
fn completions_name_every_command_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _emmaa__host"),
        ("zsh", "#compdef emmaa-host"),
        ("fish", "complete -c emmaa-host"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_emmaa-host"))
            .args(["completions", shell])
            .output()
            .unwrap();
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && script.contains(marker),
            "{shell}: {script}"
        );
        for command in ["replay", "check", "simulate", "generate-event"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let unknown = Command::new(env!("CARGO_BIN_EXE_emmaa-host"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}
