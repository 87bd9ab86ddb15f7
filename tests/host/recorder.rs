//! The flight recorder: a run recorded, then replayed from its trace, does exactly the same.

use super::*;

/// Runs `guest_name` on `event` recording its calls, as the Lambda host
/// does with EMMAA_TRACE_PREFIX: the outcome and its trace.
async fn recorded(
    guest_name: &str,
    event: &str,
    effects: Arc<dyn Effects>,
    settings: emmaa_runtime::Settings,
    time_left: Duration,
) -> (emmaa_runtime::GuestRun, emmaa_runtime::trace::Trace) {
    let guest = support::guest(guest_name);
    recorded_by(&guest, guest_name, event, effects, settings, time_left).await
}

/// As [`recorded`], with `guest` as loaded (its budget, say).
async fn recorded_by(
    guest: &emmaa_runtime::LoadedGuest,
    guest_name: &str,
    event: &str,
    effects: Arc<dyn Effects>,
    settings: emmaa_runtime::Settings,
    time_left: Duration,
) -> (emmaa_runtime::GuestRun, emmaa_runtime::trace::Trace) {
    use emmaa_runtime::trace::{Header, Recording, Tape, Trace};
    let function = emmaa_runtime::functions::PipelineFunction::by_guest(guest_name).map_or_else(
        || format!("test-{guest_name}"),
        |entry| format!("emmaa-{}", entry.function),
    );
    let context = emmaa_runtime::EventContext {
        function_name: function.clone(),
        request_id: "recorded".into(),
        deadline_ms: support::NOW * 1000 + u64::try_from(time_left.as_millis()).unwrap(),
        time_left,
        now: support::NOW,
    };
    let settings = Arc::new(settings);
    let (outcome, tape) = guest
        .handle_taped(
            event,
            &context,
            effects,
            settings.clone(),
            Tape::Recording(Recording::default()),
        )
        .await;
    let Tape::Recording(recording) = tape else {
        panic!("the tape was not recording");
    };
    let header = Header {
        function: &function,
        guest: guest_name,
        component: guest.component.as_deref(),
        request_id: &context.request_id,
        deadline_ms: context.deadline_ms,
        time_left_ms: u64::try_from(time_left.as_millis()).unwrap(),
        now: context.now,
        settings: &settings,
        event,
        budget: guest.budget,
    };
    let trace = Trace::new(header, recording, &outcome.answer, outcome.fuel_used);
    (outcome, trace)
}

/// The replay of `trace` with the guests of this build.
async fn replayed(trace: &emmaa_runtime::trace::Trace) -> emmaa_offline::report::RunReport {
    let components = emmaa_runtime::engine::Components::Directory(emmaa_runtime::functions::GUEST_DIR.into());
    let mut player = emmaa_offline::replay::TraceReplayer::new(components, Duration::from_secs(60)).unwrap();
    player.replay(trace, "test").await.unwrap()
}

/// A run recorded under less memory than its language's (a Lambda
/// function with little memory) replays under the same budget, to the same
/// stop, and not under the replaying host's own.
#[tokio::test]
async fn a_run_stopped_for_memory_replays_under_the_budget_it_was_recorded_with() {
    // 20,000 records: about 71 MiB of the 384 a Rust guest may have.
    let budget = emmaa_runtime::limits::Budget {
        memory: 48 << 20,
        ..emmaa_runtime::limits::Budget::RUST
    };
    let guest = emmaa_runtime::LoadedGuest::clone(&support::guest("after_update")).with_budget(budget);
    let keys: Vec<String> = (0..20_000)
        .map(|n| format!("results/m{n}/model_manager_2020-02-04-12-30-00.pkl"))
        .collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let event = s3_event(&keys).to_string();
    let (outcome, trace) = recorded_by(
        &guest,
        "after_update",
        &event,
        Arc::new(bucket(&[])),
        settings(&[]),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(outcome.answer.failure().map(Failure::kind), Some("out-of-memory"));
    assert_eq!(trace.budget, Some(budget));
    let report = replayed(&trace).await;
    let verdict = report.trace.as_ref().unwrap();
    assert!(verdict.same, "{}", verdict.message);
    assert_eq!(report.error.as_ref().unwrap().kind, "out-of-memory");
}

/// A trace is input: the fuel a trace says its guest had is not taken
/// (an edited one could claim any), and its memory never raises the
/// replaying build's own. A run stopped at a billion units of fuel
/// replays under the build's ten billion, whatever the trace claims.
#[tokio::test]
async fn a_replay_takes_only_a_lower_memory_from_a_traces_budget() {
    use emmaa_runtime::limits::Budget;
    let small = Budget {
        fuel: 1_000_000_000,
        ..Budget::RUST
    };
    let probe = emmaa_runtime::LoadedGuest::clone(&support::guest("sandbox_probe")).with_budget(small);
    let event = json!({"reach": "spin"}).to_string();
    let (outcome, mut trace) = recorded_by(
        &probe,
        "sandbox_probe",
        &event,
        Arc::new(bucket(&[])),
        settings(&[]),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        outcome.answer.failure(),
        Some(&Failure::OutOfFuel { fuel: 1_000_000_000 })
    );
    trace.budget = Some(Budget {
        fuel: u64::MAX,
        memory: usize::MAX,
    });
    let report = replayed(&trace).await;
    let error = report.error.as_ref().unwrap();
    assert_eq!(error.kind, "out-of-fuel");
    assert!(error.message.contains("(10000000000 units"), "{}", error.message);
}

#[tokio::test]
async fn a_run_its_deadline_stopped_replays_to_the_same_stop() {
    // The probe submits a job (the call needs CALL_RESERVE, 500 ms, before
    // the interrupt point), then spins until the host stops it, 600 ms in:
    // about 6 of its 10 billion units of fuel.
    let time_left = emmaa_runtime::limits::DEADLINE_MARGIN + Duration::from_millis(600);
    let event = json!({"reach": "submit-then-spin"}).to_string();
    let (outcome, trace) = recorded(
        "sandbox_probe",
        &event,
        Arc::new(bucket(&[])),
        settings(&[]),
        time_left,
    )
    .await;
    assert_eq!(outcome.answer.failure(), Some(&Failure::Deadline));
    assert_eq!(
        outcome.status_code(),
        Some(207),
        "the job that went through is listed"
    );
    assert_eq!(trace.stopped.as_deref(), Some("deadline"));
    assert_eq!(trace.calls.len(), 1);

    // The replay stops the guest after the same call, where the recorded
    // one was stopped: running it on would spin until its fuel ran out.
    let report = replayed(&trace).await;
    let verdict = report.trace.as_ref().unwrap();
    assert!(verdict.same, "{}", verdict.message);
    assert!(verdict.component.same, "{verdict:?}");
    assert_eq!(report.error.as_ref().unwrap().kind, "deadline");
    assert_eq!(report.response, outcome.response().cloned());
}

#[tokio::test]
async fn a_fan_out_trace_keeps_each_body_once_and_one_over_its_limit_cannot_be_exact() {
    let big = json!({"run_daily_update": true, "notes": "x".repeat(50_000)}).to_string();
    let objects: Vec<(String, String)> = (0..20)
        .map(|n| (format!("models/m{n:02}/config.json"), big.clone()))
        .collect();
    let objects: Vec<(&str, &str)> = objects
        .iter()
        .map(|(key, body)| (key.as_str(), body.as_str()))
        .collect();
    let (outcome, mut trace) = recorded(
        "update_pipeline",
        "{}",
        Arc::new(bucket(&objects)),
        settings(&[]),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(outcome.status_code(), Some(200));
    // Twenty reads of one body: the event's and the config's, once each.
    assert_eq!(trace.bodies.len(), 2);
    assert!(trace.to_json().len() < 2 * big.len(), "{}", trace.to_json().len());
    let report = replayed(&trace).await;
    let verdict = report.trace.as_ref().unwrap();
    assert!(verdict.same && verdict.exact, "{}", verdict.message);
    assert_eq!(report.response, outcome.response().cloned());

    // Past its limit the trace leaves the config out, and says so; the
    // replay stops where it needs it and says it cannot be exact.
    let limit = trace.to_json().len() - big.len() / 2;
    trace.fit(limit);
    assert_eq!(trace.left_out.as_ref().map(|left| left.bodies), Some(1));
    assert!(trace.event().is_some(), "the event is the last body left out");
    let report = replayed(&trace).await;
    let verdict = report.trace.as_ref().unwrap();
    assert!(!verdict.exact && !verdict.same, "{verdict:?}");
    assert!(
        verdict
            .message
            .starts_with("it cannot be exact: the trace left out 1 bodies"),
        "{}",
        verdict.message
    );
    assert_eq!(verdict.difference.as_ref().unwrap().call, Some(2), "{verdict:?}");
}

/// The production limit itself, not a smaller one given: a fan-out whose
/// twenty distinct configs come to 10 MiB records a trace within 8 MiB,
/// leaving out only as many bodies as it must, and saying so.
#[tokio::test]
async fn a_trace_over_the_production_limit_is_cut_to_fit_and_says_what_it_left_out() {
    use emmaa_runtime::trace::MAX_TRACE_BYTES;
    let objects: Vec<(String, String)> = (0..20)
        .map(|n| {
            let notes = format!("{n:02}").repeat(256 << 10);
            let config = json!({"run_daily_update": true, "notes": notes}).to_string();
            (format!("models/m{n:02}/config.json"), config)
        })
        .collect();
    let objects: Vec<(&str, &str)> = objects
        .iter()
        .map(|(key, body)| (key.as_str(), body.as_str()))
        .collect();
    let (outcome, trace) = recorded(
        "update_pipeline",
        "{}",
        Arc::new(bucket(&objects)),
        settings(&[]),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(outcome.status_code(), Some(200), "{:?}", outcome.error_message());
    let size = trace.to_json().len();
    assert!(size <= MAX_TRACE_BYTES, "{size} bytes");
    // Each config is half a mebibyte: about four left out, no more than
    // the limit needs.
    assert!(
        size > MAX_TRACE_BYTES - (600 << 10),
        "{size} bytes: more left out than needed"
    );
    let left = trace.left_out.as_ref().expect("the trace says what it left out");
    assert!((4..=5).contains(&left.bodies), "{left:?}");
    assert!(left.bytes >= left.bodies * (512 << 10), "{left:?}");
    assert_eq!(left.limit, MAX_TRACE_BYTES);
    assert!(trace.event().is_some(), "the event, small, is kept");
}
