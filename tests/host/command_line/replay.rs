//! `emmaa-host replay`, the binary, over the shipped example bucket and events: the printed contract, the exit statuses and the usage errors.

use super::*;

#[test]
fn every_example_event_replays_to_its_expected_actions() {
    let events = std::fs::read_dir(workspace().join("examples/events")).unwrap();
    let mut replayed = Vec::new();
    for event in events {
        let event = event.unwrap().path();
        let function = event.file_stem().unwrap().to_str().unwrap().to_owned();
        let output = replay(
            &[
                &function,
                event.to_str().unwrap(),
                "--bucket-dir",
                "examples/bucket",
                "--now",
                NOW,
            ],
            &[],
        );
        assert_eq!(
            output.status.code(),
            Some(0),
            "{function}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let expected_path = workspace().join(format!("tests/expected/{function}.json"));
        if std::env::var_os("EMMAA_BLESS").is_some() {
            let blessed = serde_json::to_string_pretty(&stdout_json(&output)).unwrap();
            std::fs::write(&expected_path, blessed + "\n").unwrap();
        }
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(&expected_path).unwrap()).unwrap();
        assert_eq!(stdout_json(&output), expected, "{function}");
        replayed.push(function);
    }
    replayed.sort();
    let functions: Vec<String> = {
        let mut names: Vec<String> = emmaa_runtime::functions::FUNCTIONS
            .iter()
            .map(|entry| format!("emmaa-{}", entry.function))
            .collect();
        names.sort();
        names
    };
    assert_eq!(replayed, functions, "one example event per function");
}

/// The Python build of each guest that has one replays its example event
/// to the same expected answer and actions as the Rust build, asked for
/// with `--python` as a user asks for it.
#[test]
fn the_python_builds_replay_the_example_events_to_the_same_expected_actions() {
    for guest in crate::support::PYTHON_TWINS {
        let function = emmaa_runtime::functions::PipelineFunction::by_guest(guest).unwrap();
        let function = format!("emmaa-{}", function.function);
        let event = format!("examples/events/{function}.json");
        let args = [
            &function,
            event.as_str(),
            "--bucket-dir",
            "examples/bucket",
            "--now",
            NOW,
        ];
        let trace = tempfile::tempdir().unwrap();
        let recorded = trace.path().join("trace.json");
        let record = ["--record", recorded.to_str().unwrap(), "--python", guest];
        let output = replay(&[&args[..], &record[..]].concat(), &[]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{function}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let expected_path = workspace().join(format!("tests/expected/{function}.json"));
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(&expected_path).unwrap()).unwrap();
        assert_eq!(stdout_json(&output), expected, "{function} (Python)");
        // It was the Python build that ran: the trace names its component.
        let python = std::fs::read(workspace().join(format!("target/python-guests/{guest}.wasm"))).unwrap();
        let trace: Value = serde_json::from_str(&std::fs::read_to_string(&recorded).unwrap()).unwrap();
        assert_eq!(
            trace["component"],
            emmaa_runtime::digest::content_hash(&python),
            "{function}"
        );
    }
}

#[test]
fn a_guest_name_works_as_well_as_a_function_name() {
    let output = replay(
        &[
            "model_updates",
            "examples/events/emmaa-model-update.json",
            "--now",
            NOW,
        ],
        &[],
    );
    let report = stdout_json(&output);
    assert_eq!(report["function"], "emmaa-model-update");
    assert_eq!(report["guest"], "model_updates");
    assert_eq!(deeds(&report)[0]["job_name"], "aml_update_20200204_120000");
}

#[test]
fn the_event_can_come_from_standard_input_and_defaults_to_an_empty_object() {
    let output = replay_with_stdin(&["emmaa-queries", "-", "--now", NOW], &[], r#"{"model": "brca"}"#);
    assert_eq!(
        deeds(&stdout_json(&output))[0]["job_name"],
        "brca_queries_20200204_120000"
    );
    let output = replay(
        &[
            "emmaa-update-pipeline",
            "--bucket-dir",
            "examples/bucket",
            "--now",
            NOW,
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(deeds(&stdout_json(&output)).len(), 10);
}

#[test]
fn now_with_an_offset_is_converted_to_utc() {
    let output = replay(
        &[
            "emmaa-model-stats",
            "examples/events/emmaa-model-stats.json",
            "--now",
            "2020-02-04T07:00:00-05:00",
        ],
        &[],
    );
    assert_eq!(
        deeds(&stdout_json(&output))[0]["job_name"],
        "aml_model_stats_20200204_120000"
    );
}

#[test]
fn settings_come_from_the_emmaa_environment_variables() {
    let output = replay(
        &[
            "emmaa-model-update",
            "examples/events/emmaa-model-update.json",
            "--now",
            NOW,
        ],
        &[
            ("EMMAA_LARGE_MODELS", "aml"),
            ("EMMAA_BRANCH", ""),
            ("EMMAA_PROJECT", "emmaa"),
        ],
    );
    let action = &deeds(&stdout_json(&output))[0];
    assert_eq!(action["job_queue"], "emmaa-after-update");
    assert_eq!(action["job_definition"], "emmaa_testing_jobs_def");
    assert_eq!(action["command"][5], "emmaa");
    assert_eq!(
        action["command"][8],
        "bash scripts/git_and_run.sh python scripts/run_model_update.py --model aml"
    );
}

#[test]
fn a_setting_that_is_not_utf8_is_refused_by_name_not_taken_as_unset() {
    use std::os::unix::ffi::OsStrExt as _;
    let output = Command::new(env!("CARGO_BIN_EXE_emmaa-host"))
        .current_dir(workspace())
        .args(["replay", "emmaa-queries", "-", "--now", NOW])
        .env("EMMAA_BUCKET", std::ffi::OsStr::from_bytes(b"emm\xffaa"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "emmaa-host replay: bad setting: EMMAA_BUCKET=\"emm\u{fffd}aa\" is not valid UTF-8"
    );
}

#[test]
fn a_partial_answer_exits_1_and_still_prints_the_report() {
    let event = json!({"Records": [
        {"s3": {"object": {"key": "models/aml/model_2020-02-04-12-00-00.pkl"}}},
        {"s3": {"object": {"key": "models/bad%20name/model_2020-02-04-12-00-00.pkl"}}}
    ]});
    let output = replay_with_stdin(&["emmaa-mm-update", "-", "--now", NOW], &[], &event.to_string());
    assert_eq!(output.status.code(), Some(1));
    let report = stdout_json(&output);
    assert_eq!(report["response"]["statusCode"], 207);
    assert_eq!(
        report["response"]["refused"][0]["item"],
        "models/bad name/model_2020-02-04-12-00-00.pkl"
    );
    assert_eq!(deeds(&report).len(), 1);
}

#[test]
fn a_refused_event_exits_1_with_the_reason_in_the_error() {
    let output = replay_with_stdin(
        &["emmaa-model-update", "-", "--now", NOW],
        &[],
        r#"{"model": "a|b"}"#,
    );
    assert_eq!(output.status.code(), Some(1));
    let report = stdout_json(&output);
    assert_eq!(report["response"], Value::Null);
    assert_eq!(
        report["error"],
        json!({
            "kind": "refused",
            "message": "model \"a|b\" is not a valid model name: it must match ^[A-Za-z0-9][A-Za-z0-9_-]*$"
        })
    );
    assert_eq!(report["actions"], json!([]));
}

#[test]
fn an_endless_event_is_refused_at_lambdas_limit_without_reading_it_all() {
    let started = std::time::Instant::now();
    let output = replay(&["emmaa-queries", "/dev/zero"], &[]);
    assert_usage_error(
        &output,
        "the event /dev/zero is larger than Lambda accepts: the event is 6.3 MB",
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let huge = format!("{{\"model\": \"{}\"}}", "a".repeat(7_000_000));
    let output = replay_with_stdin(&["emmaa-queries", "-"], &[], &huge);
    assert_usage_error(
        &output,
        "the event on standard input is larger than Lambda accepts",
    );
}

#[test]
fn a_fifo_in_the_bucket_directory_is_refused_by_name_not_read() {
    let bucket = tempfile::tempdir().unwrap();
    for model in ["aml", "stuck"] {
        std::fs::create_dir_all(bucket.path().join("models").join(model)).unwrap();
    }
    std::fs::write(
        bucket.path().join("models/aml/config.json"),
        r#"{"run_daily_update": true}"#,
    )
    .unwrap();
    let fifo = bucket.path().join("models/stuck/config.json");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let dir = bucket.path().to_str().unwrap();
    let output = replay(&["emmaa-update-pipeline", "--bucket-dir", dir, "--now", NOW], &[]);
    assert_eq!(output.status.code(), Some(1));
    let report = stdout_json(&output);
    assert_eq!(report["response"]["statusCode"], 207);
    assert_eq!(report["response"]["refused"][0]["item"], "stuck");
    let reason = report["response"]["refused"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("NotARegularFile"), "{reason}");
    assert_eq!(deeds(&report)[3]["payload"], json!({"model": "aml"}));
}

/// `replay --trace` never opens a FIFO (it would wait for a writer for
/// ever): it is refused by name, as `check` refuses one in a directory.
#[test]
fn a_fifo_given_as_a_trace_is_refused_by_name_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("trace.json");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let output = output_within_two_minutes(
        Command::new(env!("CARGO_BIN_EXE_emmaa-host")).args(["replay", "--trace", fifo.to_str().unwrap()]),
        "replay did not end: it opened the FIFO",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("it is a FIFO, not a regular file: not read"),
        "{stderr}"
    );
    assert!(stderr.contains("trace.json"), "{stderr}");
}

#[test]
fn a_closed_standard_output_is_an_error_not_a_panic() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_emmaa-host"));
    command.current_dir(workspace()).args([
        "replay",
        "emmaa-model-update",
        "examples/events/emmaa-model-update.json",
    ]);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = command.stdout(writer).stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("emmaa-host replay: cannot print the report"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_replay_past_its_deadline_is_stopped_and_says_so() {
    let output = replay_with_stdin(
        &["emmaa-model-update", "-", "--deadline", "1ms"],
        &[],
        r#"{"model": "aml"}"#,
    );
    let report = stdout_json(&output);
    assert_eq!(output.status.code(), Some(1));
    // Either the guest is interrupted, or the host does not start the
    // submission with no time left and the event ends cut short: never a
    // job.
    let error = &report["error"];
    let message = error["message"].as_str().unwrap();
    match error["kind"].as_str().unwrap() {
        "deadline" => assert!(message.starts_with("the guest was stopped"), "{message}"),
        "cut-short" => assert!(
            message.starts_with("the deadline came before 1 of the event's calls"),
            "{message}"
        ),
        other => panic!("{other}: {message}\n{report:#}"),
    }
    assert_eq!(report["response"], Value::Null);
}

fn assert_usage_error(output: &Output, expected_stderr: &str) {
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(expected_stderr), "{stderr}");
}

#[test]
fn usage_errors_exit_2_with_one_line_on_stderr() {
    assert_usage_error(
        &replay(&["emmaa-nothing"], &[]),
        "unknown function \"emmaa-nothing\"",
    );
    assert_usage_error(
        &replay(&["emmaa-queries", "no/such/event.json"], &[]),
        "cannot read the event no/such/event.json",
    );
    assert_usage_error(
        &replay(&["emmaa-queries", "README.md"], &[]),
        "the event README.md is not JSON",
    );
    assert_usage_error(
        &replay(&["emmaa-queries", "--now", "noon"], &[]),
        "--now \"noon\" is not a time: use RFC 3339 (2020-02-04T12:00:00Z), a date",
    );
    assert_usage_error(
        &replay(&["emmaa-queries"], &[("EMMAA_INVOCATION_TYPE", "Sometimes")]),
        "EMMAA_INVOCATION_TYPE=\"Sometimes\" is not an invocation type",
    );
    assert_usage_error(
        &replay(&["emmaa-queries", "--bucket-dir", "no/such/dir"], &[]),
        "--bucket-dir no/such/dir is not a directory",
    );
    assert_usage_error(
        &replay(&["emmaa-queries", "--deadline", "soon"], &[]),
        "--deadline \"soon\" is not a duration",
    );
    assert_usage_error(
        &replay(&["emmaa-queries"], &[("EMMAA_JOB_QUEUE", "")]),
        "EMMAA_JOB_QUEUE=\"\" is not a job queue",
    );
    assert_usage_error(
        &replay(&["emmaa-queries"], &[("EMMAA_PROJECT", "--purpose")]),
        "EMMAA_PROJECT=\"--purpose\" may not start with -",
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(8))]

    #[test]
    fn a_replay_prints_the_same_bytes_every_run(
        index in 0..emmaa_runtime::functions::FUNCTIONS.len(),
        model in "[a-z]{1,8}|[a-z;%+ ]{1,8}",
    ) {
        let function = format!("emmaa-{}", emmaa_runtime::functions::FUNCTIONS[index].function);
        let key = format!("results/{model}/model_manager_2020-02-04-12-00-00.pkl");
        let event = json!({"model": model, "tests": model, "Records": [{"s3": {"object": {"key": key}}}]});
        let run = || {
            replay_with_stdin(
                &[&function, "-", "--bucket-dir", "examples/bucket", "--now", NOW],
                &[],
                &event.to_string(),
            )
        };
        let (first, second) = (run(), run());
        proptest::prop_assert_eq!(first.status.code(), second.status.code());
        proptest::prop_assert!(!first.stdout.is_empty());
        proptest::prop_assert_eq!(first.stdout, second.stdout);
    }
}

#[test]
fn claims_stay_in_memory_unless_a_ledger_dir_keeps_them_for_a_redelivery() {
    let args = |extra: &[&str]| {
        let mut args = vec![
            "emmaa-mm-update",
            "examples/events/emmaa-mm-update.json",
            "--bucket-dir",
            "examples/bucket",
            "--now",
            NOW,
        ];
        args.extend_from_slice(extra);
        args.iter().map(|arg| arg.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = replay(&args, &[]);
        (output.status.code(), stdout_json(&output))
    };
    // In memory: the same replay twice prints the same.
    assert_eq!(run(args(&[])), run(args(&[])));
    let ledger = tempfile::tempdir().unwrap();
    let dir = ledger.path().to_str().unwrap();
    let (status, first) = run(args(&["--ledger-dir", dir, "--request-id", "delivery-1"]));
    assert_eq!(status, Some(0));
    assert_eq!(deeds(&first).len(), 1);
    let (status, second) = run(args(&["--ledger-dir", dir, "--request-id", "delivery-2"]));
    assert_eq!(status, Some(0));
    assert_eq!(
        deeds(&second),
        Vec::<Value>::new(),
        "the redelivery submits nothing"
    );
    assert_eq!(
        second["response"]["already_submitted"][0]["job_id"],
        first["response"]["job_id"]
    );
    let examples: Vec<_> = std::fs::read_dir(workspace().join("examples/bucket"))
        .unwrap()
        .collect();
    assert!(
        examples
            .iter()
            .all(|entry| entry.as_ref().unwrap().file_name() != "ledger")
    );
}

#[test]
fn a_run_recorded_here_replays_exactly_from_its_trace() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.json");
    let trace_arg = trace.to_str().unwrap();
    let recorded = replay(
        &[
            "emmaa-update-pipeline",
            "examples/events/emmaa-update-pipeline.json",
            "--bucket-dir",
            "examples/bucket",
            "--now",
            NOW,
            "--record",
            trace_arg,
        ],
        &[],
    );
    assert_eq!(
        recorded.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&recorded.stderr)
    );
    let written: Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    assert_eq!(written["function"], "emmaa-update-pipeline");
    assert!(!written["calls"].as_array().unwrap().is_empty(), "{written}");
    // No bucket, no settings: every call is answered from the trace.
    let replayed = replay(&["--trace", trace_arg], &[]);
    let report: Value = serde_json::from_slice(&replayed.stdout).unwrap();
    assert_eq!(replayed.status.code(), Some(0), "{report}");
    assert_eq!(report["trace"]["same"], true, "{report}");
    assert_eq!(report["trace"]["exact"], true, "{report}");
    let first: Value = serde_json::from_slice(&recorded.stdout).unwrap();
    assert_eq!(report["actions"], first["actions"]);
}

/// With standard output and standard error both going to a pipe nobody
/// reads (`emmaa-host ... 2>&1 | head -0`), every command ends with status 2
/// (it could not print), and none panics (101).
#[test]
fn unreadable_standard_output_and_error_end_in_status_2_without_a_panic() {
    let trace = "examples/traces/emmaa-model-update.json";
    let event = "examples/events/emmaa-queries.json";
    for args in [
        vec!["replay", "emmaa-queries", event, "--now", NOW],
        vec!["replay", "--trace", trace],
        vec!["check", trace],
        vec!["simulate", "--models", "2", "--now", NOW, "--format", "summary"],
        vec!["generate-event", "emmaa-queries", "--model", "aml"],
        vec!["completions", "bash"],
        vec!["replay", "emmaa-nothing", event],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let status = Command::new(env!("CARGO_BIN_EXE_emmaa-host"))
            .current_dir(workspace())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(writer.try_clone().unwrap())
            .stderr(writer)
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(2), "{args:?}");
    }
}
