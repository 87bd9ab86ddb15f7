//! Guests in Python: the library's and the guests' own unit tests, and each
//! Python guest beside its Rust twin, answer for answer, byte for byte.

use super::*;

/// `python3 -m unittest discover -s guests/python`, as a Python programmer
/// runs it: plain Python, no WebAssembly.
#[test]
fn the_python_library_and_guests_pass_their_own_unit_tests() {
    let output = std::process::Command::new("python3")
        .current_dir(crate::workspace::workspace())
        .args(["-m", "unittest", "discover", "-s", "guests/python"])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 runs");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    let ran: usize = report
        .lines()
        .find_map(|line| line.strip_prefix("Ran ")?.split(' ').next()?.parse().ok())
        .unwrap_or(0);
    assert!(ran >= 30, "{report}");
}

/// Runs every build of `guest` on `event` with fresh effects made by
/// `effects`, and answers each build's answer (as its JSON text), error and
/// actions.
async fn every_build(
    guest: &str,
    event: &Value,
    settings_vars: &[(&str, &str)],
) -> Vec<(&'static str, (Option<String>, Option<String>, Value))> {
    let mut outcomes = Vec::new();
    for (language, build) in support::builds(guest) {
        let outcome =
            support::run_build(&build, guest, event.clone(), bucket(&[]), settings(settings_vars)).await;
        let answer = outcome
            .response()
            .map(|answer| serde_json::to_string(answer).unwrap());
        outcomes.push((language, (answer, outcome.error_message(), actions(&outcome))));
    }
    outcomes
}

/// The same events give the same answer text, the same error and the same
/// actions from both builds of `model_stats`: good events, bad ones (each
/// refusal's words), a re-run, a large model, a job name too long.
#[tokio::test]
async fn both_builds_of_model_stats_answer_byte_for_byte_alike() {
    let long = "m".repeat(120);
    let events = [
        json!({"model": "aml"}),
        json!({"model": "aml", "rerun": true}),
        json!({"model": "covid19"}),
        json!({"model": 42.5}),
        json!({"model": "a;b\u{202e}\n"}),
        json!({"model": "\u{301}a\u{200b}\u{a0}\u{ad}\u{e000}"}),
        json!({"model": long}),
        json!({"tests": "x"}),
        json!(["aml"]),
        json!("aml"),
        json!({"model": {"nested": [1, "é", null]}}),
    ];
    for event in &events {
        let outcomes = every_build("model_stats", event, &[("EMMAA_LARGE_MODELS", "covid19")]).await;
        let [(_, rust), (_, python)] = &outcomes[..] else {
            panic!("model_stats has two builds: {outcomes:?}");
        };
        assert_eq!(python, rust, "{event}");
    }
}

/// Lambda's retry of an event (the same request id) finds the Python
/// guest's job already submitted through the host's ledger, and says so as
/// the Rust guest does: one job.
#[tokio::test]
async fn a_python_guest_keeps_each_job_to_once_under_lambdas_retry() {
    let mut answers = Vec::new();
    for (language, build) in support::builds("model_stats") {
        let effects = bucket(&[]);
        let context = support::event_context("test-model_stats", "request-1", Duration::from_secs(60));
        let settings = Arc::new(settings(&[("EMMAA_LEDGER", "on")]));
        let event = json!({"model": "aml"}).to_string();
        let first = build
            .handle(&event, &context, Arc::new(effects.clone()), settings.clone())
            .await;
        let retried = build
            .handle(&event, &context, Arc::new(effects.clone()), settings)
            .await;
        assert_eq!(first.status_code(), Some(200), "{language}");
        let retried_answer = retried.response().unwrap().clone();
        assert_eq!(
            retried_answer["already_submitted"],
            json!([{"job_name": format!("aml_model_stats_{STAMP}"), "job_id": first.response().unwrap()["job_id"]}]),
            "{language}"
        );
        assert_eq!(
            submitted(&retried).len(),
            0,
            "{language}: the retry submitted again"
        );
        answers.push(serde_json::to_string(&retried_answer).unwrap());
    }
    assert_eq!(answers[0], answers[1], "Rust and Python answer the retry alike");
}

/// `after_update` on `records` records of models whose configs make tests:
/// the event and a bucket holding every config.
fn after_update_of(records: usize) -> (Value, LocalEffects) {
    let keys: Vec<String> = (0..records)
        .map(|n| format!("results/m{n}/model_manager_2020-02-04-12-30-00.pkl"))
        .collect();
    let configs: Vec<String> = (0..records).map(|n| format!("models/m{n}/config.json")).collect();
    let objects: Vec<(&str, &str)> = configs.iter().map(|key| (key.as_str(), MAKES_TESTS)).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    (s3_event(&keys), bucket(&objects))
}

/// A Python guest runs under a budget of its own: 8,000 records burn more
/// fuel in the Python `after_update` (about 1.7 million a record, 13.7
/// billion) than a Rust guest may burn at all, and the event goes through
/// whole.
#[tokio::test]
async fn a_python_guest_gets_the_fuel_its_runtime_needs() {
    let (event, effects) = after_update_of(8_000);
    let python = support::python_guest("after_update");
    let outcome = support::run_build(&python, "after_update", event, effects, settings(&[])).await;
    assert_eq!(outcome.status_code(), Some(200), "{:?}", outcome.error_message());
    assert_eq!(outcome.actions.len(), 5 * 8_000);
    assert!(
        outcome.fuel_used > emmaa_runtime::limits::Budget::RUST.fuel,
        "{}",
        outcome.fuel_used
    );
}
