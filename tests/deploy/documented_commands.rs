//! Every command the README and `docs/` show works as written: each is read out of its
//! indented block, run in a scratch directory (with the checkout's `examples/`), and must
//! exit 0. A block marked `<!-- not run by the commands test: REASON -->` (AWS, a long
//! benchmark) is not run, and the README's test command is this test's own command.

use super::*;

/// What the docs mark a block with when this test does not run it.
const NOT_RUN: &str = "<!-- not run by the commands test:";

/// The README's test command: running it here would run this test again.
const TEST_COMMAND: &str = "rustup target add wasm32-wasip2 && cargo test --workspace";

/// One documented command: where it is, and what it says.
#[derive(Debug)]
struct Documented {
    place: String,
    command: String,
    /// Why it is not run, when the docs say so.
    not_run: Option<String>,
}

/// The commands of a Markdown file: each logical line (a trailing `\` joins the next)
/// of an indented block, outside fenced blocks, that starts with `cargo`, `rustup`,
/// `emmaa-host` (installed) or a variable set for one of them.
fn commands_in(doc: &str, text: &str) -> Vec<Documented> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let (mut fenced, mut index) = (false, 0);
    while index < lines.len() {
        let line = lines[index];
        if line.starts_with("```") {
            fenced = !fenced;
        }
        let starts_block =
            !fenced && line.starts_with("    ") && index > 0 && lines[index - 1].trim().is_empty();
        if !starts_block {
            index += 1;
            continue;
        }
        let not_run = lines[index.saturating_sub(3)..index]
            .iter()
            .find_map(|line| line.strip_prefix(NOT_RUN))
            .map(|reason| reason.trim_end_matches("-->").trim().to_owned());
        while index < lines.len() && lines[index].starts_with("    ") {
            let first = index;
            let mut command = String::new();
            while index < lines.len() && lines[index].starts_with("    ") {
                let part = lines[index].trim();
                index += 1;
                match part.strip_suffix('\\') {
                    Some(part) => command.push_str(part),
                    None => {
                        command.push_str(part);
                        break;
                    }
                }
            }
            let first_word = command.split_whitespace().find(|word| !word.contains('='));
            if matches!(first_word, Some("cargo" | "rustup" | "emmaa-host")) {
                found.push(Documented {
                    place: format!("{doc}:{}", first + 1),
                    command: command.split_whitespace().collect::<Vec<_>>().join(" "),
                    not_run: not_run.clone(),
                });
            }
        }
    }
    found
}

/// The README's and every doc's commands.
fn documented_commands() -> Vec<Documented> {
    let mut docs = vec![workspace().join("README.md")];
    let mut others: Vec<PathBuf> = std::fs::read_dir(workspace().join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    others.sort();
    docs.extend(others);
    docs.iter()
        .flat_map(|path| {
            let shown = path.strip_prefix(workspace()).unwrap().display().to_string();
            commands_in(&shown, &std::fs::read_to_string(path).unwrap())
        })
        .collect()
}

/// The packages of the workspace and how many binaries each has.
fn binaries_by_package() -> BTreeMap<String, usize> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(workspace())
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .unwrap();
    assert!(output.status.success(), "cargo metadata failed");
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let binaries = package["targets"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|target| {
                    target["kind"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|kind| kind == "bin")
                })
                .count();
            (package["name"].as_str().unwrap().to_owned(), binaries)
        })
        .collect()
}

/// `command` with `cargo run [-q] -p PACKAGE [--features F] --`, or the installed
/// `emmaa-host`, replaced by the binary the tests built (the same code), after checking
/// that cargo could pick it: the package has one binary, or the command names it.
fn with_built_binaries(place: &str, command: &str, binaries: &BTreeMap<String, usize>) -> String {
    let mut words: Vec<String> = command.split(' ').map(str::to_owned).collect();
    // The installed command line, as `cargo install` names it.
    if let Some(installed) = words.iter_mut().find(|word| !word.contains('='))
        && installed == "emmaa-host"
    {
        *installed = host_cli().display().to_string();
    }
    while let Some(start) = words.windows(2).position(|pair| pair == ["cargo", "run"]) {
        let end = start
            + words[start..]
                .iter()
                .position(|word| word == "--")
                .unwrap_or_else(|| panic!("{place}: `cargo run` without `--`: {command}"));
        let flags = &words[start + 2..end];
        let package = flags
            .iter()
            .position(|flag| flag == "-p")
            .and_then(|at| flags.get(at + 1))
            .unwrap_or_else(|| panic!("{place}: `cargo run` without `-p`: {command}"));
        let names_a_binary = flags.iter().any(|flag| flag == "--bin");
        assert!(
            names_a_binary || binaries.get(package.as_str()) == Some(&1),
            "{place}: cargo could not determine which binary of {package} to run: {command}"
        );
        let binary = match package.as_str() {
            "emmaa-host" => host_cli().display().to_string(),
            "emmaa-deploy" => env!("CARGO_BIN_EXE_deploy").to_owned(),
            other => panic!("{place}: no binary of {other} is built by the tests: {command}"),
        };
        words.splice(start..=end, [binary]);
    }
    words.join(" ")
}

/// A scratch directory that looks like the checkout to a command: its `examples/`, and
/// an empty `docs/` for what a command writes there. With no Graphviz on the machine, a
/// `dot` that only checks it is given a graph stands in for it.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(workspace().join("examples"), dir.path().join("examples")).unwrap();
    std::fs::create_dir(dir.path().join("docs")).unwrap();
    let tools = dir.path().join(".tools");
    std::fs::create_dir(&tools).unwrap();
    let has_dot = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|path| path.join("dot").is_file());
    if !has_dot {
        let dot = tools.join("dot");
        let stand_in = "#!/bin/sh\nfirst=$(head -n 1)\ncat >/dev/null\ncase \"$first\" in digraph*) exit 0;; *) exit 1;; esac\n";
        std::fs::write(&dot, stand_in).unwrap();
        std::fs::set_permissions(&dot, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    dir
}

#[test]
fn the_commands_are_found_in_their_blocks_and_continuations_joined() {
    let doc = "text\n\n    cargo run -q -p emmaa-host -- simulate \\\n        --models 3\n    not a command\n\n\
               <!-- not run by the commands test: it needs AWS -->\n\n    cargo run -p emmaa-deploy -- upload x y\n\n\
               ```sh\n    cargo run -p fenced -- no\n```\n";
    let found = commands_in("doc.md", doc);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        found[0].command,
        "cargo run -q -p emmaa-host -- simulate --models 3"
    );
    assert_eq!(found[0].place, "doc.md:3");
    assert_eq!(found[0].not_run, None);
    assert_eq!(found[1].not_run.as_deref(), Some("it needs AWS"));
}

#[test]
fn a_package_with_two_binaries_cannot_be_run_without_naming_one() {
    let binaries = BTreeMap::from([("emmaa-host".to_owned(), 2)]);
    let refused = std::panic::catch_unwind(|| {
        with_built_binaries("doc.md:1", "cargo run -q -p emmaa-host -- simulate", &binaries)
    });
    assert!(refused.is_err(), "two binaries and no --bin must be refused");
}

#[test]
fn every_command_in_the_readme_and_the_docs_works_as_written() {
    let documented = documented_commands();
    let binaries = binaries_by_package();
    assert!(
        documented.iter().any(|one| one.command.starts_with(TEST_COMMAND)),
        "the README's test command is not where this test looks: {documented:?}"
    );
    let mut ran = 0;
    for one in &documented {
        if one.command == TEST_COMMAND {
            continue;
        }
        if let Some(reason) = &one.not_run {
            eprintln!("not run: {} `{}`: {reason}", one.place, one.command);
            continue;
        }
        let command = one
            .command
            .strip_prefix("rustup target add wasm32-wasip2 && ")
            .unwrap_or(&one.command);
        let command = with_built_binaries(&one.place, command, &binaries);
        let dir = scratch();
        let path = std::env::join_paths(std::iter::once(dir.path().join(".tools")).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .unwrap();
        let mut shell = Command::new("bash");
        shell
            .args(["-o", "pipefail", "-c", &command])
            .current_dir(dir.path())
            .env("PATH", path);
        for (name, _) in std::env::vars() {
            if name.starts_with("EMMAA_") {
                shell.env_remove(name);
            }
        }
        let output = shell.output().unwrap();
        assert!(
            output.status.success(),
            "{}: `{}` exited {:?}: {}",
            one.place,
            one.command,
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
        ran += 1;
    }
    assert!(ran >= 6, "only {ran} documented commands ran");
}
