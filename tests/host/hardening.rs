//! Hardening: hostile input and limits, with nothing lost: every other model, record and job still goes through.

use super::*;

#[tokio::test]
async fn an_oversized_config_is_refused_for_its_model_alone() {
    let huge = format!(
        r#"{{"run_daily_update": true, "notes": "{}"}}"#,
        "x".repeat(2 << 20)
    );
    let outcome = run(
        "update_pipeline",
        json!({}),
        bucket(&[
            ("models/aml/config.json", DAILY),
            ("models/big/config.json", &huge),
            ("models/brca/config.json", DAILY),
        ]),
    )
    .await;
    assert_eq!(outcome.status_code(), Some(207));
    let refused = refused(&outcome);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, "big");
    assert!(refused[0].1.contains("TooLarge"), "{}", refused[0].1);
    assert!(refused[0].1.contains("it was not read"), "{}", refused[0].1);
    let invoked: Vec<Value> = actions(&outcome).as_array().unwrap()[4..].to_vec();
    assert_eq!(
        invoked,
        [
            invoke("emmaa-model-update", json!({"model": "aml"})),
            invoke("emmaa-model-update", json!({"model": "brca"}))
        ]
    );
}

#[tokio::test]
async fn update_pipeline_over_100000_models_stays_within_fuel_and_memory() {
    let keys: Vec<String> = (0..100_000)
        .map(|n| format!("models/model{n:06}/config.json"))
        .collect();
    let objects: Vec<(&str, &str)> = keys.iter().map(|key| (key.as_str(), DAILY)).collect();
    let outcome = run("update_pipeline", json!({}), bucket(&objects)).await;
    assert_eq!(outcome.response(), Some(&success()));
    assert_eq!(outcome.actions.len(), 1 + 2 * 100_000);
    assert!(
        outcome.fuel_used * 2 < emmaa_runtime::limits::FUEL_PER_EVENT,
        "{}",
        outcome.fuel_used
    );
}

#[tokio::test]
async fn an_event_of_60000_records_gets_every_job_and_an_answer_lambda_can_return() {
    let keys: Vec<String> = (0..60_000)
        .map(|n| format!("models/m{n}/model_2020-02-04-12-00-00.pkl"))
        .collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let event = s3_event(&keys);
    let outcome = run("model_manager_update", event, bucket(&[])).await;
    assert_eq!(outcome.status_code(), Some(200), "{:?}", outcome.error_message());
    assert_eq!(outcome.actions.len(), 60_000);
    let response = outcome.response().unwrap();
    assert_eq!(response["job_ids"].as_array().unwrap().len(), 10_000);
    assert_eq!(response["job_ids_not_listed"], 50_000);
    assert_eq!(response["job_id"], "local-m59999_mm_update_20200204_120000");
    assert!(response.to_string().len() < 6 << 20);
    assert!(
        outcome.fuel_used * 2 < emmaa_runtime::limits::FUEL_PER_EVENT,
        "{}",
        outcome.fuel_used
    );
}

/// The largest event Lambda can deliver to `after_update` (6 MB: 77,500
/// records, each model's config in the bucket) gets all of its 387,500
/// calls within a Rust guest's budget: it burns 7.5 billion units of fuel
/// and its memory peaks at 273 MiB (a limit of 256 MiB refused it).
#[tokio::test]
async fn after_update_takes_the_largest_event_lambda_can_deliver() {
    let records = 77_500;
    let keys: Vec<String> = (0..records)
        .map(|n| format!("results/m{n}/model_manager_2020-02-04-12-30-00.pkl"))
        .collect();
    let configs: Vec<String> = (0..records).map(|n| format!("models/m{n}/config.json")).collect();
    let objects: Vec<(&str, &str)> = configs.iter().map(|key| (key.as_str(), MAKES_TESTS)).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let event = s3_event(&keys);
    assert!(event.to_string().len() > 6_200_000, "nearly 6 MB");
    let outcome = run("after_update", event, bucket(&objects)).await;
    assert_eq!(outcome.status_code(), Some(200), "{:?}", outcome.error_message());
    assert_eq!(outcome.actions.len(), 5 * records);
    let budget = emmaa_runtime::limits::Budget::RUST;
    assert!(outcome.fuel_used < budget.fuel, "{}", outcome.fuel_used);
    assert!(outcome.memory_peak < budget.memory, "{}", outcome.memory_peak);
}

#[tokio::test]
async fn thousands_of_refusals_are_counted_past_the_first_two_hundred() {
    let mut keys: Vec<String> = (0..5_000).map(|n| format!("models/m{n}/config.json")).collect();
    keys.push("models/aml/model_2020-02-04-12-00-00.pkl".into());
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let outcome = run("model_manager_update", s3_event(&keys), bucket(&[])).await;
    let response = outcome.response().unwrap();
    assert_eq!(response["statusCode"], 207);
    assert_eq!(response["refused"].as_array().unwrap().len(), 200);
    assert_eq!(response["refused_not_listed"], 4_800);
}

#[tokio::test]
async fn an_event_over_lambdas_limit_is_refused_before_the_guest_sees_it() {
    let event = format!(r#"{{"model": "{}"}}"#, "a".repeat(7_000_000));
    let outcome = run_text("model_updates", &event).await;
    assert_eq!(
        outcome.answer,
        Answer::Failed(Failure::EventTooLarge { size: event.len() })
    );
    assert!(outcome.actions.is_empty());
    assert_eq!(outcome.fuel_used, 0);
}

/// Runs `guest` on the raw `event`, with the default settings, an empty
/// bucket and a minute left.
async fn run_text(guest: &str, event: &str) -> emmaa_runtime::GuestRun {
    run_in_time(
        guest,
        event,
        Arc::new(bucket(&[])),
        settings(&[]),
        Duration::from_secs(60),
    )
    .await
}

/// `depth` nested arrays around `inner`.
fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
}

/// One nesting limit for host and guest: an event as deep as the host takes
/// is parsed by every guest, which answers it (never traps); one level more
/// is refused by the host as not JSON, before any guest sees it.
#[tokio::test]
async fn an_event_as_deep_as_the_host_takes_is_answered_and_one_level_more_is_not_json() {
    use emmaa_runtime::limits::MAX_EVENT_DEPTH;
    let key = "models/aml/model_2020-02-04-12-00-00.pkl";
    let cases = |depth: usize| {
        // The outer object is one level, `Records` another, a record and its
        // `s3` and `object` three more.
        [
            (
                "model_updates",
                format!(r#"{{"model": "aml", "x": {}}}"#, nested(depth - 1, "1")),
            ),
            (
                "model_manager_update",
                format!(
                    r#"{{"Records": [{{"s3": {{"object": {{"key": "{key}", "x": {}}}}}}}]}}"#,
                    nested(depth - 5, "1")
                ),
            ),
        ]
    };
    for (guest, event) in cases(MAX_EVENT_DEPTH) {
        let outcome = run_text(guest, &event).await;
        assert_eq!(outcome.status_code(), Some(200), "{guest}: {:?}", outcome.answer);
    }
    for (guest, event) in cases(MAX_EVENT_DEPTH + 1) {
        let outcome = run_text(guest, &event).await;
        match &outcome.answer {
            Answer::Failed(Failure::EventNotJson(why)) => assert!(
                why.starts_with(&format!(
                    "it nests deeper than {MAX_EVENT_DEPTH} arrays and objects"
                )),
                "{why}"
            ),
            other => panic!("{guest}: {other:?}"),
        }
        assert_eq!(outcome.fuel_used, 0, "{guest}: the guest never ran");
    }
    // Brackets inside strings are not nesting.
    let event = format!(r#"{{"model": "aml", "x": "{}"}}"#, "[".repeat(1_000));
    let outcome = run_text("model_updates", &event).await;
    assert_eq!(outcome.status_code(), Some(200), "{:?}", outcome.answer);
}

/// A value an answer echoes shows its control and bidirectional characters
/// as escapes, as a refusal's reason does.
#[tokio::test]
async fn an_echoed_value_shows_bidirectional_controls_as_escapes() {
    let event = s3_event(&[
        "models/aml/model_2020-02-04-12-00-00.pkl",
        "models/exe\u{202e}txt/model_2020-02-04-12-00-00.pkl",
    ]);
    let outcome = run("model_manager_update", event, bucket(&[])).await;
    assert_eq!(outcome.status_code(), Some(207), "{:?}", outcome.answer);
    let refused = refused(&outcome);
    for shown in [&refused[0].0, &refused[0].1] {
        assert!(!shown.contains('\u{202e}'), "{shown}");
        assert!(shown.contains("exe\\u{202e}txt"), "{shown}");
    }
}

#[tokio::test]
async fn a_refusal_quotes_a_huge_value_cut() {
    let name = "a;".repeat(2_500_000);
    let outcome = run("model_updates", json!({ "model": name }), bucket(&[])).await;
    let message = outcome.error_message().unwrap();
    assert!(message.len() < 1_000, "{}", message.len());
    assert!(message.starts_with("model \"a;a;"), "{message}");
    assert!(message.contains("(4999800 more characters)"), "{message}");
}

#[tokio::test]
async fn a_guest_that_runs_out_of_fuel_after_a_job_went_through_answers_207_naming_the_job() {
    let outcome = run("sandbox_probe", json!({"reach": "submit-then-spin"}), bucket(&[])).await;
    let Answer::Salvaged { response, failure } = &outcome.answer else {
        panic!("not salvaged: {:?}", outcome.answer);
    };
    assert_eq!(
        failure,
        &Failure::OutOfFuel {
            fuel: emmaa_runtime::limits::FUEL_PER_EVENT
        }
    );
    assert_eq!(response["statusCode"], 207);
    assert_eq!(
        response["job_ids"],
        json!([format!("local-probe_update_{STAMP}")])
    );
    assert_eq!(response["interrupted"]["kind"], "out-of-fuel");
}

#[tokio::test]
async fn a_guest_that_panics_after_a_job_went_through_answers_207_with_its_message() {
    let outcome = run(
        "sandbox_probe",
        json!({"reach": "submit-then-panic"}),
        bucket(&[]),
    )
    .await;
    let Answer::Salvaged { response, failure } = &outcome.answer else {
        panic!("not salvaged: {:?}", outcome.answer);
    };
    assert_eq!(failure.kind(), "trapped");
    let reason = response["refused"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("deliberately, after a job went through"),
        "{reason}"
    );
    assert!(!reason.contains("wasm backtrace"), "{reason}");
}

#[tokio::test]
async fn a_guest_is_interrupted_before_the_deadline() {
    let started = std::time::Instant::now();
    let outcome = run_in_time(
        "sandbox_probe",
        r#"{"reach": "spin"}"#,
        Arc::new(bucket(&[])),
        settings(&[]),
        emmaa_runtime::limits::DEADLINE_MARGIN + Duration::from_millis(200),
    )
    .await;
    assert_eq!(outcome.answer, Answer::Failed(Failure::Deadline));
    assert!(outcome.fuel_used < emmaa_runtime::limits::FUEL_PER_EVENT);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn calls_that_no_longer_fit_before_the_deadline_are_reported_not_attempted() {
    let keys: Vec<String> = (0..10)
        .map(|n| format!("models/m{n}/model_2020-02-04-12-00-00.pkl"))
        .collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let effects = Arc::new(Slow::new(bucket(&[]), |_| Duration::from_millis(300)));
    // Calls start at 0, 300 and 600 ms; each needs CALL_RESERVE (500 ms)
    // before the interrupt point at 950 ms: two fit.
    let time_left = emmaa_runtime::limits::DEADLINE_MARGIN + Duration::from_millis(950);
    let outcome = run_in_time(
        "model_manager_update",
        &s3_event(&keys).to_string(),
        effects,
        settings(&[("EMMAA_MAX_IN_FLIGHT", "1")]),
        time_left,
    )
    .await;
    assert_eq!(outcome.status_code(), Some(207), "{:?}", outcome.error_message());
    let response = outcome.response().unwrap();
    assert_eq!(response["job_ids"].as_array().unwrap().len(), 2);
    let refused = refused(&outcome);
    assert_eq!(refused.len(), 8);
    assert!(
        refused.iter().all(|(_, reason)| reason.contains("NotAttempted")),
        "{refused:?}"
    );
    // The ten submissions are all in `actions`; the eight the host did not
    // make are marked so, and so the replay's report shows them.
    assert_eq!(outcome.actions.len(), 10);
    assert_eq!(outcome.not_attempted, (2..10).collect::<Vec<usize>>());
    let report = emmaa_offline::report::RunReport::of("emmaa-mm-update", "model_manager_update", outcome);
    let shown = serde_json::to_value(&report.actions).unwrap();
    assert!(shown[1].get("attempted").is_none(), "{shown}");
    assert_eq!(shown[2]["attempted"], false, "{shown}");
}

#[tokio::test]
async fn fan_out_refuses_a_model_whose_jobs_would_get_names_batch_refuses() {
    let long = "m".repeat(101);
    let key = format!("models/{long}/config.json");
    let outcome = run(
        "update_pipeline",
        json!({}),
        bucket(&[("models/aml/config.json", DAILY), (&key, DAILY)]),
    )
    .await;
    assert_eq!(outcome.status_code(), Some(207));
    let refused = refused(&outcome);
    assert_eq!(refused[0].0, long);
    assert!(
        refused[0].1.contains("is 129 characters long"),
        "{}",
        refused[0].1
    );
    assert_eq!(
        actions(&outcome),
        json!([
            list_models(),
            get("models/aml/config.json"),
            invoke("emmaa-model-update", json!({"model": "aml"}))
        ])
    );
}

#[tokio::test]
async fn test_pipeline_refuses_a_corpus_whose_test_job_name_would_be_too_long() {
    let corpus = "c".repeat(60);
    let model = "m".repeat(60);
    let config = json!({"test": {"test_corpus": ["simple_tests", corpus]}}).to_string();
    let key = format!("models/{model}/config.json");
    let outcome = run(
        "test_pipeline",
        json!({ "model": model }),
        bucket(&[(&key, &config)]),
    )
    .await;
    assert_eq!(outcome.status_code(), Some(207));
    let refused = refused(&outcome);
    assert_eq!(refused.len(), 1);
    assert!(refused[0].1.contains("characters long"), "{}", refused[0].1);
    let invoked = actions(&outcome).as_array().unwrap()[1..].to_vec();
    assert_eq!(
        invoked,
        [invoke(
            "emmaa-model-test",
            json!({"model": model, "tests": "simple_tests"})
        )]
    );
}

#[tokio::test]
async fn update_pipeline_over_1205_models_stays_well_within_the_fuel_budget() {
    let keys: Vec<String> = (0..1_205)
        .map(|n| format!("models/model{n:04}/config.json"))
        .collect();
    let objects: Vec<(&str, &str)> = keys.iter().map(|key| (key.as_str(), DAILY)).collect();
    let outcome = run("update_pipeline", json!({}), bucket(&objects)).await;
    assert_eq!(outcome.response(), Some(&success()));
    assert!(
        outcome.fuel_used * 10 < emmaa_runtime::limits::FUEL_PER_EVENT,
        "{}",
        outcome.fuel_used
    );
}
