//! `--components DIR`: the component that serves a guest must be that
//! guest's. A `.wasm` says so by its mark; a `.cwasm`, whose precompiled
//! code runs as it is, by the bundle manifest beside it, digest included.

use super::*;

const EVENT: &str = "examples/events/emmaa-model-update.json";

fn replay_with(dir: &Path) -> Output {
    replay(
        &[
            "emmaa-model-update",
            EVENT,
            "--now",
            NOW,
            "--components",
            dir.to_str().unwrap(),
        ],
        &[],
    )
}

fn error_line(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).trim_end().to_owned()
}

fn built(guest: &str) -> Vec<u8> {
    std::fs::read(Path::new(emmaa_runtime::functions::GUEST_DIR).join(format!("{guest}.wasm"))).unwrap()
}

#[test]
fn a_wasm_serves_only_the_guest_its_mark_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model_updates.wasm");
    std::fs::write(&path, built("model_stats")).unwrap();
    assert_eq!(
        error_line(&replay_with(dir.path())),
        format!(
            "emmaa-host replay: {} cannot serve guest \"model_updates\": it is guest \"model_stats\" (its \
             emmaa:guest mark)",
            path.display()
        )
    );
    // The same code with no mark at all.
    let unmarked = Path::new(emmaa_runtime::functions::GUEST_DIR)
        .parent()
        .unwrap()
        .join("wasm32-wasip2/guest/model_updates.wasm");
    std::fs::copy(&unmarked, &path).unwrap();
    assert!(error_line(&replay_with(dir.path())).ends_with(
        "it carries no emmaa:guest mark (the builds of this project add it; see docs/command-line.md)"
    ),);
    std::fs::write(&path, built("model_updates")).unwrap();
    assert_eq!(replay_with(dir.path()).status.code(), Some(0));
}

#[test]
fn a_cwasm_is_run_only_as_its_manifest_vouches_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = built("model_updates");
    let cwasm = emmaa_runtime::engine::precompile(&wasm).unwrap();
    let path = dir.path().join("model_updates.cwasm");
    std::fs::write(&path, &cwasm).unwrap();
    let refused = |why: &str| {
        format!(
            "emmaa-host replay: {} cannot serve guest \"model_updates\": {why}",
            path.display()
        )
    };

    // Nothing vouches for it.
    let line = error_line(&replay_with(dir.path()));
    assert!(
        line.starts_with(&refused("precompiled code is run as it is, so a .cwasm is loaded only beside the manifest.json that vouches for it")),
        "{line}"
    );

    let manifest = |cwasm: &[u8]| {
        json!({"format": 1, "arch": "x86_64", "functions": {"emmaa-model-update": {
            "guest": "model_updates",
            "component": "model_updates.cwasm",
            "wasm": emmaa_runtime::digest::content_hash(&wasm),
            "cwasm": emmaa_runtime::digest::content_hash(cwasm),
        }}})
        .to_string()
    };
    std::fs::write(dir.path().join("manifest.json"), manifest(&cwasm)).unwrap();
    assert_eq!(
        replay_with(dir.path()).status.code(),
        Some(0),
        "vouched for, it runs"
    );

    // Damaged on the way: a clear error, never a crash by signal.
    let mut damaged = cwasm.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    std::fs::write(&path, &damaged).unwrap();
    assert_eq!(
        error_line(&replay_with(dir.path())),
        refused("it is not the .cwasm manifest.json names (damaged, or from another bundle)")
    );

    // A newer .wasm beside it: the stale .cwasm is not preferred silently.
    std::fs::write(&path, &cwasm).unwrap();
    let newer = emmaa_runtime::mark::with_guest_mark(&built("model_stats"), "model_updates").unwrap();
    std::fs::write(dir.path().join("model_updates.wasm"), newer).unwrap();
    assert_eq!(
        error_line(&replay_with(dir.path())),
        refused(&format!(
            "it was precompiled from another build than {} beside it: remove the stale one",
            dir.path().join("model_updates.wasm").display()
        ))
    );
}

/// A precompiled component keeps no mark, so the manifest entry that
/// vouches for it names its language, and the guest runs under that
/// language's budget, whether a bundle's bootstrap loads it
/// (`load_entry`) or `--components` does.
#[test]
fn a_cwasm_runs_under_the_budget_of_the_language_its_manifest_names() {
    use emmaa_runtime::engine::Components;
    use emmaa_runtime::limits::Budget;
    use emmaa_runtime::manifest::{Manifest, ManifestEntry};
    use emmaa_runtime::mark::Language;

    let dir = tempfile::tempdir().unwrap();
    let wasm = built("model_stats");
    let cwasm = emmaa_runtime::engine::precompile(&wasm).unwrap();
    std::fs::write(dir.path().join("model_stats.cwasm"), &cwasm).unwrap();
    let runtime = emmaa_runtime::GuestRuntime::new().unwrap();
    let components = Components::Directory(dir.path().to_owned());
    for (language, written, budget) in [
        (Language::Rust, None, Budget::RUST),
        (Language::Python, Some("python"), Budget::PYTHON),
    ] {
        let entry = ManifestEntry {
            guest: "model_stats".into(),
            component: "model_stats.cwasm".into(),
            wasm: Some(emmaa_runtime::digest::content_hash(&wasm)),
            cwasm: Some(emmaa_runtime::digest::content_hash(&cwasm)),
            language,
        };
        let manifest = Manifest {
            format: emmaa_runtime::manifest::MANIFEST_FORMAT,
            arch: "x86_64".into(),
            functions: [("emmaa-model-stats".to_owned(), entry.clone())].into(),
        };
        let text = serde_json::to_value(&manifest).unwrap();
        assert_eq!(
            text["functions"]["emmaa-model-stats"].get("language"),
            written.map(|name| json!(name)).as_ref(),
            "Rust, the default, is not written"
        );
        std::fs::write(dir.path().join("manifest.json"), text.to_string()).unwrap();
        assert_eq!(runtime.load_entry(dir.path(), &entry).unwrap().budget, budget);
        let loaded = runtime.load_guest(&components, "model_stats").unwrap();
        assert_eq!(loaded.budget, budget, "{language:?}");
    }

    // The build it came from, beside it, says Rust: the manifest is wrong.
    std::fs::write(dir.path().join("model_stats.wasm"), &wasm).unwrap();
    let Err(err) = runtime.load_guest(&components, "model_stats") else {
        panic!("a manifest naming another language than the .wasm's mark was believed");
    };
    assert!(
        err.to_string().ends_with(
            "manifest.json says it is written in python, and the .wasm it was precompiled from is marked rust"
        ),
        "{err}"
    );
    std::fs::remove_file(dir.path().join("model_stats.wasm")).unwrap();

    let mut unknown: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("manifest.json")).unwrap()).unwrap();
    unknown["functions"]["emmaa-model-stats"]["language"] = json!("cobol");
    std::fs::write(dir.path().join("manifest.json"), unknown.to_string()).unwrap();
    let Err(err) = runtime.load_guest(&components, "model_stats") else {
        panic!("a language this host does not run was accepted");
    };
    assert!(
        err.to_string()
            .contains("language \"cobol\" is none this host runs (rust, python)"),
        "{err}"
    );
}
