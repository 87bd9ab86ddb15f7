//! `emmaa-host check DIR` treats the directory as untrusted: its walk stays
//! inside it, reads each trace once, never opens a FIFO, and a trace whose
//! body does not hash to its name, or that names no pipeline guest, is
//! unchecked with the reason, never "same".

use super::*;

#[test]
fn a_directory_of_traces_is_walked_once_inside_it_and_damaged_traces_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("traces");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let example =
        std::fs::read_to_string(workspace().join("examples/traces/emmaa-model-update.json")).unwrap();
    std::fs::write(root.join("a.json"), &example).unwrap();
    let mut edited: Value = serde_json::from_str(&example).unwrap();
    let body = edited["bodies"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .next()
        .unwrap();
    body["text"] = json!("{\"model\": \"brca\"}\n");
    std::fs::write(root.join("edited.json"), edited.to_string()).unwrap();
    let mut stranger: Value = serde_json::from_str(&example).unwrap();
    stranger["guest"] = json!("not_a_guest");
    std::fs::write(root.join("stranger.json"), stranger.to_string()).unwrap();
    let symlink = |target: &str, link: &str| std::os::unix::fs::symlink(target, root.join(link)).unwrap();
    symlink("../a.json", "sub/again.json"); // the same trace, inside
    symlink("..", "up"); // out of the directory
    symlink(".", "sub/loop"); // a loop
    symlink("/etc/hostname", "outside.json");
    let fifo = root.join("fifo.json");
    assert!(
        Command::new("mkfifo").arg(&fifo).status().unwrap().success(),
        "mkfifo"
    );
    // Outside, beside the directory: never read.
    std::fs::write(dir.path().join("beside.json"), &example).unwrap();

    let output = output_within_two_minutes(
        Command::new(env!("CARGO_BIN_EXE_emmaa-host")).args(["check", root.to_str().unwrap()]),
        "check did not end: it opened the FIFO or walked a loop",
    );
    let out = String::from_utf8_lossy(&output.stdout).replace(&format!("{}/", root.display()), "");
    assert_eq!(
        output.status.code(),
        Some(1),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "same       a.json",
            "UNCHECKED  edited.json: cannot read the trace edited.json: it is corrupt: body \
             \"sha256:3d1213348d54304e51317dd1bf6f2db4414f4fb5a18d7ea1ed1894c835d6e0d6\" does not hash to its name",
            "UNCHECKED  fifo.json: cannot read the trace fifo.json: it is a FIFO, not a regular file: not read",
            &format!(
                "UNCHECKED  outside.json: cannot read the trace outside.json: it leads out of {}",
                root.display()
            ),
            "UNCHECKED  stranger.json: cannot read the trace stranger.json: it names guest \"not_a_guest\", \
             which is none of the pipeline's",
            &format!(
                "UNCHECKED  up: cannot read the trace up: it leads out of {}",
                root.display()
            ),
            "6 traces: 1 same, 5 not",
        ],
        "{out}"
    );
}
