//! What one event costs the host, measured on real guests with the local
//! backend (no network), so only the host and the guest are timed:
//!
//! - compiling a component (`.wasm`, replay) and loading a precompiled one
//!   (`.cwasm`, the Lambda bootstrap's cold start);
//! - one small event: a fresh instance, `model_updates` on `{"model": "aml"}`;
//! - one big event: `update_pipeline` over 1,205 models in memory;
//! - `model_stats` and `after_update` side by side in Rust and in Python
//!   (the Python builds from `target/python-guests/`, which the tests
//!   build: left out, and said so, when they are not there): compile, load,
//!   one event, its fuel and the instance's memory;
//! - `after_update`'s largest event (6 MB) in both builds: its time, fuel
//!   and memory against its language's budget.
//!
//! Run with `cargo bench -p emmaa-runtime --features jit --bench per_event`; results go in
//! `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use emmaa_runtime::effects::local::{LocalBucket, LocalEffects};
use emmaa_runtime::engine::precompile;
use emmaa_runtime::functions::{FUNCTIONS, GUEST_DIR};
use emmaa_runtime::{EventContext, GuestRuntime, LoadedGuest, Settings};

fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * fraction).round() as usize]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    let median = percentile(&mut samples, 0.5);
    let p90 = percentile(&mut samples, 0.9);
    println!(
        "{what:<58} median {median:>10.1?}   p90 {p90:>10.1?}   ({} runs)",
        samples.len()
    );
}

fn time<T>(runs: usize, mut work: impl FnMut() -> T) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(work());
            started.elapsed()
        })
        .collect()
}

fn main() {
    // Every compile below compiles: none is answered from the compile cache.
    // SAFETY: set before any thread that reads the environment starts.
    unsafe { std::env::set_var("EMMAA_COMPILE_CACHE", "") };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = GuestRuntime::new().unwrap();
    let wasm_path = Path::new(GUEST_DIR).join("model_updates.wasm");
    report(
        "compile model_updates.wasm",
        time(5, || engine.load(&wasm_path).unwrap()),
    );

    let dir = tempfile::tempdir().unwrap();
    let cwasm_path = dir.path().join("model_updates.cwasm");
    std::fs::write(
        &cwasm_path,
        precompile(&std::fs::read(&wasm_path).unwrap()).unwrap(),
    )
    .unwrap();
    report(
        "load model_updates.cwasm (precompiled)",
        time(50, || engine.load(&cwasm_path).unwrap()),
    );

    let settings = Arc::new(Settings::from_lookup(|_| None).unwrap());
    let context = EventContext {
        function_name: "bench".into(),
        request_id: "bench".into(),
        deadline_ms: 0,
        time_left: std::time::Duration::from_secs(60),
        now: 1_580_817_600,
    };
    let run = |guest: &LoadedGuest, event: &str, effects: &Arc<LocalEffects>| {
        let outcome = runtime.block_on(guest.handle(event, &context, effects.clone(), settings.clone()));
        assert_eq!(outcome.status_code(), Some(200), "{:?}", outcome.error_message());
        outcome
    };

    let model_updates = engine.load(&cwasm_path).unwrap().serving(&FUNCTIONS[1]);
    let empty = Arc::new(LocalEffects::new(LocalBucket::Empty));
    run(&model_updates, r#"{"model": "aml"}"#, &empty);
    report(
        "model_updates: one event, fresh instance, one job",
        time(2_000, || run(&model_updates, r#"{"model": "aml"}"#, &empty)),
    );

    let objects: BTreeMap<String, Vec<u8>> = (0..1_205)
        .map(|n| {
            (
                format!("models/model{n:04}/config.json"),
                br#"{"run_daily_update": true}"#.to_vec(),
            )
        })
        .collect();
    let bucket = Arc::new(LocalEffects::new(LocalBucket::Memory(objects)));
    let update_pipeline = engine
        .load(&Path::new(GUEST_DIR).join("update_pipeline.wasm"))
        .unwrap()
        .serving(&FUNCTIONS[0]);
    let outcome = run(&update_pipeline, "{}", &bucket);
    report(
        &format!("update_pipeline: 1,205 models, {} actions", outcome.actions.len()),
        time(30, || run(&update_pipeline, "{}", &bucket)),
    );

    let python_dir = Path::new(GUEST_DIR).join("../../python-guests");
    // Effects of their own for every run: a ledger that saw the work
    // before would answer "already submitted" instead.
    let configs = || {
        Arc::new(LocalEffects::new(LocalBucket::Memory(BTreeMap::from([(
            "models/aml/config.json".to_owned(),
            br#"{"make_tests": true}"#.to_vec(),
        )]))))
    };
    let manager =
        r#"{"Records": [{"s3": {"object": {"key": "results/aml/model_manager_2020-02-04-12-00-00.pkl"}}}]}"#;
    for (guest, function, event) in [
        ("model_stats", "model-stats", r#"{"model": "aml"}"#),
        ("after_update", "after-update", manager),
    ] {
        let serves = FUNCTIONS.iter().find(|entry| entry.function == function).unwrap();
        for (language, dir) in [
            ("Rust", Path::new(GUEST_DIR).to_owned()),
            ("Python", python_dir.clone()),
        ] {
            let wasm = dir.join(format!("{guest}.wasm"));
            let Ok(bytes) = std::fs::read(&wasm) else {
                println!("{guest} ({language}): no {} (the tests build it)", wasm.display());
                continue;
            };
            report(
                &format!("{guest} ({language}): compile {} bytes", bytes.len()),
                time(3, || engine.load(&wasm).unwrap()),
            );
            let cwasm = precompiled_beside(&cwasm_path, &format!("{guest}-{language}"), &bytes);
            report(
                &format!("{guest} ({language}): load the .cwasm"),
                time(20, || engine.load(&cwasm).unwrap()),
            );
            // A `.cwasm` keeps no language mark: the budget its `.wasm` says.
            let budget =
                emmaa_runtime::limits::Budget::of(emmaa_runtime::mark::language_mark(&bytes).unwrap());
            let loaded = engine.load(&cwasm).unwrap().serving(serves).with_budget(budget);
            let outcome = run(&loaded, event, &configs());
            report(
                &format!(
                    "{guest} ({language}): one event, {} actions, {} fuel",
                    outcome.actions.len(),
                    outcome.fuel_used
                ),
                time(200, || run(&loaded, event, &configs())),
            );
        }
    }

    // The largest event Lambda can deliver to `after_update` (6 MB: 77,500
    // records, each model's config there), once per build under the budget
    // of its language (`limits::Budget`, which is set from these figures).
    let records = 77_500;
    let event = serde_json::json!({
        "Records": (0..records)
            .map(|n| serde_json::json!({"s3": {"object": {"key": format!("results/m{n}/model_manager_2020-02-04-12-30-00.pkl")}}}))
            .collect::<Vec<_>>()
    })
    .to_string();
    let serves = FUNCTIONS
        .iter()
        .find(|entry| entry.guest == "after_update")
        .unwrap();
    for (language, dir) in [("Rust", Path::new(GUEST_DIR).to_owned()), ("Python", python_dir)] {
        let Ok(loaded) = engine.load(&dir.join("after_update.wasm")) else {
            println!("after_update ({language}): not built");
            continue;
        };
        let loaded = loaded.serving(serves);
        let configs = Arc::new(LocalEffects::new(LocalBucket::Memory(
            (0..records)
                .map(|n| {
                    (
                        format!("models/m{n}/config.json"),
                        br#"{"make_tests": true}"#.to_vec(),
                    )
                })
                .collect(),
        )));
        let started = Instant::now();
        let outcome = run(&loaded, &event, &configs);
        println!(
            "after_update ({language}): the largest event ({} bytes, {records} records): {:.1?}, {} fuel of {}, {} MiB of memory of {}",
            event.len(),
            started.elapsed(),
            outcome.fuel_used,
            loaded.budget.fuel,
            outcome.memory_peak >> 20,
            loaded.budget.memory >> 20,
        );
    }
}

/// A `.wasm` (`bytes`) precompiled into `<name>.cwasm` beside `beside`.
fn precompiled_beside(beside: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = beside.with_file_name(format!("{name}.cwasm"));
    std::fs::write(&path, precompile(bytes).unwrap()).unwrap();
    path
}
