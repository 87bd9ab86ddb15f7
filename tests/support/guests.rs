#![allow(dead_code, reason = "each test binary uses part of the shared helpers")]

//! Runs the real guest components under the host against the in-memory
//! backend: each guest is compiled once per test binary.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use emmaa_runtime::effects::local::{LocalBucket, LocalEffects};
use emmaa_runtime::functions::{FUNCTIONS, GUEST_DIR, PipelineFunction};
use emmaa_runtime::{Effects, EventContext, GuestRun, GuestRuntime, LoadedGuest, Settings};
use serde_json::Value;

/// 2020-02-04T12:00:00Z, the time every test runs at.
pub const NOW: u64 = 1_580_817_600;

/// `NOW` as Batch job names carry it.
pub const STAMP: &str = "20200204_120000";

fn runtime() -> &'static GuestRuntime {
    static RUNTIME: OnceLock<GuestRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| GuestRuntime::new().expect("the engine starts"))
}

/// The reach the tests give `sandbox_probe`: what `model_updates` may do.
pub const PROBE_REACH: &PipelineFunction = &FUNCTIONS[1];

/// The guest `name`, serving its own function's reach.
pub fn guest(name: &str) -> Arc<LoadedGuest> {
    let reach = emmaa_runtime::functions::PipelineFunction::by_guest(name).unwrap_or(PROBE_REACH);
    guest_serving(name, reach)
}

/// The guest `name`, allowed only `reach`.
pub fn guest_serving(name: &str, reach: &'static PipelineFunction) -> Arc<LoadedGuest> {
    /// Each guest once per reach it is loaded with.
    type Loaded = HashMap<(String, &'static str), Arc<LoadedGuest>>;
    static LOADED: OnceLock<Mutex<Loaded>> = OnceLock::new();
    let mut loaded = LOADED.get_or_init(Default::default).lock().unwrap();
    let guest = loaded.entry((name.to_owned(), reach.guest)).or_insert_with(|| {
        let path = std::path::Path::new(GUEST_DIR).join(format!("{name}.wasm"));
        let loaded = runtime().load(&path).unwrap_or_else(|err| panic!("{err}"));
        Arc::new(loaded.serving(reach))
    });
    Arc::clone(guest)
}

/// The Python build of guest `name` (`guests/python/<name>`, built into
/// `target/python-guests` by componentize-py), serving its own function's
/// reach (the probe: [`PROBE_REACH`]).
pub fn python_guest(name: &str) -> Arc<LoadedGuest> {
    static LOADED: OnceLock<Mutex<HashMap<String, Arc<LoadedGuest>>>> = OnceLock::new();
    let mut loaded = LOADED.get_or_init(Default::default).lock().unwrap();
    let reach = PipelineFunction::by_guest(name).unwrap_or(PROBE_REACH);
    let guest = loaded
        .entry(name.to_owned())
        .or_insert_with(|| python_guest_in(runtime(), name, reach));
    Arc::clone(guest)
}

/// As [`python_guest`], loaded by `runtime`.
pub fn python_guest_in(
    runtime: &GuestRuntime,
    name: &str,
    reach: &'static PipelineFunction,
) -> Arc<LoadedGuest> {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .expect("the package sits in the workspace");
    let out = workspace.join("target").join("python-guests");
    let path = emmaa_offline::python::build(workspace, name, &out).unwrap_or_else(|err| panic!("{err}"));
    let loaded = runtime.load(&path).unwrap_or_else(|err| panic!("{err}"));
    Arc::new(loaded.serving(reach))
}

/// A memory bucket holding `objects` (key, contents).
pub fn bucket(objects: &[(&str, &str)]) -> LocalEffects {
    let objects: BTreeMap<String, Vec<u8>> = objects
        .iter()
        .map(|(key, contents)| (key.to_string(), contents.as_bytes().to_vec()))
        .collect();
    LocalEffects::new(LocalBucket::Memory(objects))
}

/// The settings with `vars` set and every other variable unset, except
/// that the ledger is off unless `vars` turns it on: most tests are about a
/// handler's own actions, and the ledger's tests say so.
pub fn settings(vars: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> =
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    vars.entry("EMMAA_LEDGER".into()).or_insert_with(|| "off".into());
    Settings::from_lookup(|name| vars.get(name).cloned()).expect("valid settings")
}

/// Runs `guest` on `event` with the default settings.
pub async fn run(guest_name: &str, event: Value, effects: LocalEffects) -> GuestRun {
    run_with(guest_name, event, effects, settings(&[])).await
}

pub async fn run_with(guest_name: &str, event: Value, effects: LocalEffects, settings: Settings) -> GuestRun {
    run_in_time(
        guest_name,
        &event.to_string(),
        Arc::new(effects),
        settings,
        Duration::from_secs(60),
    )
    .await
}

/// Runs `guest` on the raw `event` with `time_left` before Lambda's deadline.
pub async fn run_in_time(
    guest_name: &str,
    event: &str,
    effects: Arc<dyn Effects>,
    settings: Settings,
    time_left: Duration,
) -> GuestRun {
    deliver(guest_name, event, effects, settings, time_left, "test-request").await
}

/// Delivers `event` to `guest` as Lambda request `request_id`, with the
/// ledger on.
pub async fn run_as(guest_name: &str, event: &Value, effects: &LocalEffects, request_id: &str) -> GuestRun {
    let settings = settings(&[("EMMAA_LEDGER", "on")]);
    let effects = Arc::new(effects.clone());
    deliver(
        guest_name,
        &event.to_string(),
        effects,
        settings,
        Duration::from_secs(60),
        request_id,
    )
    .await
}

async fn deliver(
    guest_name: &str,
    event: &str,
    effects: Arc<dyn Effects>,
    settings: Settings,
    time_left: Duration,
    request_id: &str,
) -> GuestRun {
    let context = event_context(&format!("test-{guest_name}"), request_id, time_left);
    guest(guest_name)
        .handle(event, &context, effects, Arc::new(settings))
        .await
}

/// What Lambda tells function `function_name` of request `request_id`,
/// at [`NOW`], with `time_left` before its deadline.
pub fn event_context(function_name: &str, request_id: &str, time_left: Duration) -> EventContext {
    EventContext {
        function_name: function_name.into(),
        request_id: request_id.into(),
        deadline_ms: NOW * 1000 + u64::try_from(time_left.as_millis()).unwrap(),
        time_left,
        now: NOW,
    }
}

/// The guests that have a Python build beside their Rust one.
pub const PYTHON_TWINS: &[&str] = &["after_update", "model_stats"];

/// Every build of guest `name`, by language: the Rust one, and the Python
/// one when there is one ([`PYTHON_TWINS`]). A test that runs a guest with
/// a Python twin runs it over both.
pub fn builds(name: &str) -> Vec<(&'static str, Arc<LoadedGuest>)> {
    let mut builds = vec![("Rust", guest(name))];
    if PYTHON_TWINS.contains(&name) {
        builds.push(("Python", python_guest(name)));
    }
    builds
}

/// Runs the loaded `build` of `guest_name` on `event`, as [`run_with`] runs
/// the Rust build.
pub async fn run_build(
    build: &LoadedGuest,
    guest_name: &str,
    event: Value,
    effects: LocalEffects,
    settings: Settings,
) -> GuestRun {
    let context = event_context(
        &format!("test-{guest_name}"),
        "test-request",
        Duration::from_secs(60),
    );
    build
        .handle(
            &event.to_string(),
            &context,
            Arc::new(effects),
            Arc::new(settings),
        )
        .await
}

/// Runs every build of `guest_name` ([`builds`]) on `event`, each with
/// effects of its own from `effects` and the default settings: what
/// [`run`] does for the Rust build, for each language.
pub async fn run_each_build(
    guest_name: &str,
    event: Value,
    effects: impl Fn() -> LocalEffects,
) -> Vec<(&'static str, GuestRun)> {
    let mut outcomes = Vec::new();
    for (language, build) in builds(guest_name) {
        let outcome = run_build(&build, guest_name, event.clone(), effects(), settings(&[])).await;
        outcomes.push((language, outcome));
    }
    outcomes
}

/// Both builds of the sandbox probe: the Rust one and its Python twin.
pub fn probes() -> [(&'static str, Arc<LoadedGuest>); 2] {
    [
        ("Rust", guest("sandbox_probe")),
        ("Python", python_guest("sandbox_probe")),
    ]
}

/// The recorded actions as the replay contract prints them.
pub fn actions(outcome: &GuestRun) -> Value {
    serde_json::to_value(&outcome.actions).unwrap()
}

/// The container command of an EMMAA job with the default settings.
pub fn command(purpose: &str, script: &str) -> Value {
    serde_json::json!([
        "python",
        "-m",
        "indra.util.aws",
        "run_in_batch",
        "--project",
        "aske",
        "--purpose",
        purpose,
        format!("bash scripts/git_and_run.sh --branch origin/master {script}")
    ])
}

/// An S3 event with one record per key (only `s3.object.key`).
pub fn s3_event(keys: &[&str]) -> Value {
    let records: Vec<Value> = keys
        .iter()
        .map(|key| serde_json::json!({"s3": {"object": {"key": key}}}))
        .collect();
    serde_json::json!({ "Records": records })
}
