//! Properties: any event, any guest, the host answers in one of the three kinds.

use super::*;

/// Events of the shapes the handlers take, with hostile values in them.
fn hostile_event() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let name = prop_oneof![
        "[A-Za-z0-9][A-Za-z0-9_-]{0,40}",
        "[a-z;|&$` %+/.-]{0,12}",
        ".{0,16}",
        "[a-z]{100,130}",
    ];
    let top = prop_oneof![
        Just("models".to_owned()),
        Just("results".to_owned()),
        "[a-z]{0,4}"
    ];
    let key = (top, name.clone(), ".{0,24}").prop_map(|(top, model, file)| format!("{top}/{model}/{file}"));
    prop_oneof![
        name.clone().prop_map(|model| json!({ "model": model })),
        (name.clone(), name).prop_map(|(model, tests)| json!({"model": model, "tests": tests})),
        prop::collection::vec(key, 0..5).prop_map(|keys| {
            let records: Vec<Value> = keys
                .iter()
                .map(|key| json!({"s3": {"object": {"key": key}}}))
                .collect();
            json!({ "Records": records })
        }),
        Just(json!([1, 2])),
        Just(json!("a string")),
    ]
}

fn is_safe(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks one guest's outcome on `event`: an answer or a refusal, never a
/// trap; refusals name a field; only safe names reach jobs and invocations.
fn check_outcome(guest: &str, event: &Value, outcome: &emmaa_runtime::GuestRun) -> Result<(), String> {
    let fields = [
        "Records",
        "detail.object.key",
        "model",
        "tests",
        "event",
        "config.json",
        "job name",
    ];
    let names_a_field = |reason: &str| fields.iter().any(|field| reason.contains(field));
    match &outcome.answer {
        Answer::Guest(response) => {
            for refusal in response["refused"].as_array().into_iter().flatten() {
                let reason = refusal["reason"].as_str().unwrap_or_default();
                if !names_a_field(reason) {
                    return Err(format!("{guest} {event}: refusal names no field: {reason}"));
                }
            }
        }
        Answer::Failed(Failure::Refused(reason)) if names_a_field(reason) => {}
        other => return Err(format!("{guest} {event}: {other:?}")),
    }
    for action in &outcome.actions {
        match action {
            emmaa_runtime::Action::BatchSubmit {
                job_name, command, ..
            } => {
                let script = command.last().cloned().unwrap_or_default();
                let words: Vec<&str> = script.split(' ').collect();
                let arguments = words
                    .windows(2)
                    .filter(|pair| pair[0] == "--model" || pair[0] == "--tests")
                    .map(|pair| pair[1]);
                if !is_safe(job_name) || job_name.len() > 128 || !arguments.clone().all(is_safe) {
                    return Err(format!("{guest} {event}: unsafe job {job_name:?} {script:?}"));
                }
            }
            emmaa_runtime::Action::LambdaInvoke { payload, .. } => {
                let model = payload["model"].as_str().unwrap_or("model");
                if !is_safe(model) {
                    return Err(format!("{guest} {event}: unsafe invocation {payload}"));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    #[test]
    fn any_event_to_any_handler_gets_an_answer_or_a_named_refusal_and_only_safe_names_go_out(
        event in hostile_event(),
        index in 0..emmaa_runtime::functions::FUNCTIONS.len(),
    ) {
        let guest = emmaa_runtime::functions::FUNCTIONS[index].guest;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let effects = || bucket(&[
            ("models/aml/config.json", r#"{"run_daily_update": true, "make_tests": true}"#),
            ("models/a-b/config.json", r#"{"test": {"test_corpus": ["x;y", "simple_tests"]}}"#),
        ]);
        let outcome = runtime.block_on(run(guest, event.clone(), effects()));
        if let Err(problem) = check_outcome(guest, &event, &outcome) {
            proptest::prop_assert!(false, "{}", problem);
        }
        let again = runtime.block_on(run(guest, event.clone(), effects()));
        proptest::prop_assert_eq!(outcome, again, "the same event, a different outcome");
    }
}
