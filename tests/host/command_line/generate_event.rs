//! `emmaa-host generate-event`: an event for every function, as AWS sends
//! it, that the function's own handler accepts.

use super::*;

/// `emmaa-host generate-event ARGS`: the event, or the failed output.
fn generate(args: &[&str]) -> Result<Value, Output> {
    let output = Command::new(env!("CARGO_BIN_EXE_emmaa-host"))
        .current_dir(workspace())
        .arg("generate-event")
        .args(args)
        .args(["--now", NOW])
        .env_remove("EMMAA_BUCKET")
        .env_remove("EMMAA_FUNCTION_PREFIX")
        .output()
        .unwrap();
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).unwrap())
    } else {
        Err(output)
    }
}

/// Replays `event` on `function` over the example bucket: the report.
fn replayed(function: &str, event: &Value) -> Value {
    let output = replay_with_stdin(
        &[function, "-", "--bucket-dir", "examples/bucket", "--now", NOW],
        &[],
        &event.to_string(),
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&output.stderr)))
}

#[test]
fn every_functions_generated_event_is_one_its_handler_takes() {
    let cases: [(&str, &[&str]); 11] = [
        ("emmaa-update-pipeline", &[]),
        ("emmaa-test-update-pipeline", &[]),
        ("emmaa-model-update", &["--model", "aml"]),
        ("emmaa-mm-update", &["--model", "aml"]),
        ("emmaa-after-update", &["--model", "aml"]),
        ("emmaa-test-pipeline", &["--model", "covid19"]),
        (
            "emmaa-model-test",
            &["--model", "covid19", "--tests", "covid19_curated_tests"],
        ),
        (
            "emmaa-test-stats",
            &["--model", "aml", "--tests", "large_corpus_tests"],
        ),
        ("emmaa-model-stats", &["--model", "aml"]),
        ("emmaa-queries", &["--model", "aml"]),
        ("emmaa-test-update", &["--model", "covid19"]),
    ];
    for (function, flags) in cases {
        let event = generate(&[&[function][..], flags].concat())
            .unwrap_or_else(|output| panic!("{function}: {}", String::from_utf8_lossy(&output.stderr)));
        let report = replayed(function, &event);
        assert_eq!(report["error"], Value::Null, "{function}: {report}");
        assert!(
            report["response"]["refused"].as_array().is_none_or(Vec::is_empty),
            "{function} refused its own event: {report}"
        );
        assert!(!deeds(&report).is_empty(), "{function} did nothing with {event}");
    }
}

#[test]
fn a_new_object_comes_as_eventbridge_or_as_a_notification() {
    let bridge = generate(&["emmaa-mm-update", "--model", "aml"]).unwrap();
    assert_eq!(bridge["detail-type"], "Object Created");
    assert_eq!(bridge["source"], "aws.s3");
    assert_eq!(bridge["time"], NOW);
    assert_eq!(bridge["detail"]["bucket"]["name"], "emmaa");
    assert_eq!(
        bridge["detail"]["object"]["key"],
        "models/aml/model_2020-02-04-12-00-00.pkl"
    );
    assert!(
        bridge["detail"]["object"]["sequencer"]
            .as_str()
            .is_some_and(|s| s.len() >= 16)
    );

    let notification = generate(&[
        "emmaa-mm-update",
        "--key",
        "models/aml/model_a b.pkl",
        "--shape",
        "notification",
        "--bucket",
        "other",
    ])
    .unwrap();
    let record = &notification["Records"][0];
    assert_eq!(record["eventSource"], "aws:s3");
    assert_eq!(record["eventName"], "ObjectCreated:Put");
    assert_eq!(record["s3"]["bucket"]["arn"], "arn:aws:s3:::other");
    assert_eq!(record["s3"]["object"]["key"], "models/aml/model_a+b.pkl");
    // EventBridge's shape is work for the handler; the notification, from
    // another bucket than the pipeline's, is refused naming it.
    let report = replayed("emmaa-mm-update", &bridge);
    assert!(report["response"].is_object(), "{report}");
    let report = replayed("emmaa-mm-update", &notification);
    assert_eq!(
        report["error"]["message"],
        "Records[0].s3.bucket.name \"other\" is not the pipeline's bucket \"emmaa\" (EMMAA_BUCKET)",
        "{report}"
    );
}

#[test]
fn a_missing_or_misplaced_flag_is_a_usage_error_naming_it() {
    let needs = generate(&["emmaa-model-test", "--model", "aml"]).unwrap_err();
    assert_eq!(needs.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&needs.stderr).trim(),
        "emmaa-host generate-event: emmaa-model-test needs --tests T (the test corpus)"
    );
    let misplaced = generate(&["emmaa-update-pipeline", "--key", "models/a/x.pkl"]).unwrap_err();
    assert!(
        String::from_utf8_lossy(&misplaced.stderr).contains("--key does not apply to emmaa-update-pipeline"),
        "{}",
        String::from_utf8_lossy(&misplaced.stderr)
    );
    let unknown = generate(&["emmaa-nope"]).unwrap_err();
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown function \"emmaa-nope\""));
}
