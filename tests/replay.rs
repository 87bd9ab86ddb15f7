//! `host replay`, the binary, over the shipped example bucket and events:
//! the printed contract, the exit statuses and the usage errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

const NOW: &str = "2020-02-04T12:00:00Z";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("host/cli sits in the workspace")
        .to_owned()
}

/// `host replay ARGS` with no EMMAA_* setting inherited from the caller.
fn replay(args: &[&str], envs: &[(&str, &str)]) -> Output {
    replay_with_stdin(args, envs, "")
}

fn replay_with_stdin(args: &[&str], envs: &[(&str, &str)], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_host"));
    command.current_dir(workspace()).arg("replay").args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("EMMAA_") {
            command.env_remove(name);
        }
    }
    command.envs(envs.iter().copied());
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The host stops reading at Lambda's limit: past it, the pipe may break.
    let written = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    assert!(
        written.is_ok() || stdin.len() > 6 << 20,
        "writing the event: {written:?}"
    );
    child.wait_with_output().unwrap()
}

/// The report's actions other than ledger claims: what the handler did.
fn deeds(report: &Value) -> Vec<Value> {
    report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|action| action["op"] != "ledger.claim")
        .cloned()
        .collect()
}

/// The JSON a command printed, having checked that it succeeded.
fn succeeded(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout_json(output)
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "stdout is not JSON ({err}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

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

#[test]
fn a_closed_standard_output_is_an_error_not_a_panic() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_host"));
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
        stderr.starts_with("host replay: cannot print the report"),
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
    // Either the guest is interrupted, or the host refuses to start the
    // submission with no time left: never a job.
    let error = &report["error"];
    let message = error["message"].as_str().unwrap();
    match error["kind"].as_str().unwrap() {
        "deadline" => assert!(message.starts_with("the guest was stopped"), "{message}"),
        "refused" => assert!(message.contains("NotAttempted"), "{message}"),
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
        "--now \"noon\" is not an RFC 3339 time",
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

// ---- --follow -------------------------------------------------------------

/// The replay of `function` on `event` (a file under examples/events, or
/// a JSON text on standard input), following invocations or not.
fn replay_example(function: &str, event: &str, follow: bool) -> Value {
    let path = workspace()
        .join("examples/events")
        .join(format!("{function}.json"));
    let (event_arg, stdin) = if event.is_empty() {
        (path.to_str().unwrap().to_owned(), String::new())
    } else {
        ("-".to_owned(), event.to_owned())
    };
    let mut args = vec![
        function,
        event_arg.as_str(),
        "--bucket-dir",
        "examples/bucket",
        "--now",
        NOW,
    ];
    if follow {
        args.push("--follow");
    }
    let output = replay_with_stdin(&args, &[], &stdin);
    assert!(
        output.status.success(),
        "{function}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout_json(&output)
}

/// Checks that every invocation in `report` carries the run of the invoked
/// function, and that the run is what replaying that function on that
/// payload does; answers how many runs it checked, recursively.
fn check_followed(report: &Value) -> usize {
    let mut checked = 0;
    for action in report["actions"].as_array().unwrap() {
        if action["op"] != "lambda.invoke" {
            assert!(action.get("run").is_none(), "{action}");
            continue;
        }
        let function = action["function_name"].as_str().unwrap();
        let run = &action["run"];
        assert_eq!(run["function"], function, "{action}");
        let alone = replay_example(function, &action["payload"].to_string(), false);
        assert_eq!(run["response"], alone["response"], "{function}");
        let run_deeds: Vec<Value> = deeds(run)
            .into_iter()
            .map(|mut deed| {
                if let Some(object) = deed.as_object_mut() {
                    object.remove("run");
                }
                deed
            })
            .collect();
        assert_eq!(run_deeds, deeds(&alone), "{function}");
        checked += 1 + check_followed(run);
    }
    checked
}

#[test]
fn follow_runs_every_invoked_function_of_each_invoking_function() {
    // Runs followed, counted over the example bucket: update_pipeline
    // invokes model updates and manager updates; after_update invokes its
    // three (aml does not make tests), and test_pipeline its model test.
    for (function, at_least) in [
        ("emmaa-update-pipeline", 2),
        ("emmaa-after-update", 4),
        ("emmaa-test-pipeline", 1),
        ("emmaa-test-update-pipeline", 1),
    ] {
        let followed = replay_example(function, "", true);
        let plain = replay_example(function, "", false);
        // Following changes nothing the function itself does.
        let without_runs: Vec<Value> = deeds(&followed)
            .into_iter()
            .map(|mut deed| {
                deed.as_object_mut().unwrap().remove("run");
                deed
            })
            .collect();
        assert_eq!(without_runs, deeds(&plain), "{function}");
        let checked = check_followed(&followed);
        assert!(checked >= at_least, "{function}: {checked} runs followed");
        // Without --follow nothing is nested.
        assert!(!plain.to_string().contains("\"run\""), "{function}");
    }
}

/// Two functions relaying to each other (the sandbox probe as both): the
/// cascade follows a → b, sees b invoke a, which is still running, and
/// reports the cycle instead of following it; each caller gets the real
/// answer of the function it invoked.
#[tokio::test(flavor = "multi_thread")]
async fn a_cycle_between_functions_is_reported_and_not_followed() {
    use emmaa_offline::cascade::Cascade;
    use emmaa_runtime::effects::local::{LocalBucket, LocalEffects};
    use emmaa_runtime::functions::{GUEST_DIR, PipelineFunction, Trigger};
    use emmaa_runtime::settings::Settings;
    use std::sync::Arc;
    use std::time::Duration;

    const fn relay(function: &'static str, invokes: &'static [&'static str]) -> PipelineFunction {
        PipelineFunction {
            guest: "sandbox_probe",
            function,
            trigger: Trigger::Invoked,
            lists: &[],
            reads: &[],
            invokes,
            submits_jobs: false,
        }
    }
    static RELAYS: [PipelineFunction; 2] = [relay("a", &["b"]), relay("b", &["a"])];
    let settings = Settings::from_lookup(|name| (name == "EMMAA_LEDGER").then(|| "off".to_owned())).unwrap();
    let cascade = Arc::new(
        Cascade::new(
            GUEST_DIR.into(),
            settings,
            1_580_817_600,
            Duration::from_secs(10),
            LocalEffects::new(LocalBucket::Empty),
        )
        .unwrap()
        .with_functions(&RELAYS),
    );
    let report = cascade
        .run(
            "emmaa-a",
            r#"{"reach": "relay", "to": ["emmaa-b", "emmaa-a"]}"#,
            "cycle-test",
        )
        .await
        .unwrap();
    let report = serde_json::to_value(&report).unwrap();
    let to_b = &report["actions"][0];
    assert_eq!(to_b["function_name"], "emmaa-b", "{report:#}");
    let b = &to_b["run"];
    assert_eq!(b["function"], "emmaa-b");
    let to_a = &b["actions"][0];
    assert_eq!(to_a["function_name"], "emmaa-a");
    assert_eq!(to_a["run"], json!({"cycle": ["emmaa-a", "emmaa-b", "emmaa-a"]}));
    let b_answered = b["response"]["reached"].as_str().unwrap();
    assert!(
        b_answered.starts_with("emmaa-a failed (Unhandled): ")
            && b_answered.contains("not followed: a cycle emmaa-a -> emmaa-b -> emmaa-a"),
        "{b_answered}"
    );
    // a got b's real answer, which holds what b got from a.
    let a_answered = report["response"]["reached"].as_str().unwrap();
    assert!(a_answered.starts_with("emmaa-b answered {"), "{a_answered}");
    assert!(a_answered.contains("emmaa-a failed (Unhandled)"), "{a_answered}");
}

// ---- simulate -------------------------------------------------------------

/// `host simulate ARGS` with only the EMMAA_* settings given.
fn simulate_with(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_host"));
    command.current_dir(workspace()).arg("simulate").args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("EMMAA_") {
            command.env_remove(name);
        }
    }
    command.envs(envs.iter().copied()).output().unwrap()
}

fn simulate(args: &[&str]) -> Output {
    simulate_with(args, &[])
}

/// A job's name without its `_YYYYMMDD_HHMMSS` time.
fn stem(name: &str) -> String {
    name.rsplitn(3, '_').nth(2).unwrap().to_owned()
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

/// The day over the example bucket, worked out by hand from its five
/// configs and the contract: every job, every file and every trigger, and
/// nothing else.
#[test]
fn the_simulated_day_over_the_example_bucket_has_every_job_file_and_trigger_and_nothing_else() {
    let bucket = workspace().join("examples/bucket");
    let before = snapshot(&bucket);
    let output = simulate(&["--bucket-dir", "examples/bucket", "--now", NOW]);
    let day = succeeded(&output);
    assert_eq!(snapshot(&bucket), before, "the bucket directory is not changed");

    // aml, brca, covid19 update daily; marm_model is curated (its manager
    // is rebuilt); rasmodel's flag is the string "true", so nothing.
    // covid19 and marm_model make tests (at 04:00, and after their update).
    let mut expected: Vec<String> = [
        "covid19_test_update",
        "marm_model_test_update",
        "aml_update",
        "brca_update",
        "covid19_update",
        "marm_model_mm_update",
        "aml_mm_update",
        "brca_mm_update",
        "covid19_mm_update",
        "covid19_test_update",
        "marm_model_test_update",
    ]
    .iter()
    .map(|name| name.to_string())
    .collect();
    let corpora = [
        ("aml", vec!["large_corpus_tests"]),
        ("brca", vec!["large_corpus_tests", "simple_model_tests"]),
        (
            "covid19",
            vec![
                "large_corpus_tests",
                "covid19_curated_tests",
                "covid19_mitre_tests",
            ],
        ),
        ("marm_model", vec!["large_corpus_tests"]),
    ];
    for (model, tests) in &corpora {
        expected.push(format!("{model}_model_stats"));
        expected.push(format!("{model}_queries"));
        for corpus in tests {
            expected.push(format!("{model}_{corpus}_tests"));
            expected.push(format!("{model}_{corpus}_stats"));
        }
    }
    expected.sort();
    let jobs = day["jobs"].as_array().unwrap();
    let mut stems: Vec<String> = jobs
        .iter()
        .map(|job| stem(job["name"].as_str().unwrap()))
        .collect();
    stems.sort();
    assert_eq!(stems, expected);

    // Files: a model state per updated model, a model manager per model
    // whose manager was rebuilt, results per corpus; each fires one function.
    let mut files: Vec<(String, String, String)> = jobs
        .iter()
        .flat_map(|job| {
            let writes = job["writes"].as_array().unwrap().clone();
            let fires = job["fires"].as_array().unwrap().clone();
            assert!(writes.len() <= 1 && fires.len() == writes.len(), "{job}");
            writes.into_iter().zip(fires).map(|(key, fired)| {
                let key = key.as_str().unwrap();
                let shape = key.rsplit_once('_').unwrap().0.to_owned();
                (
                    shape,
                    fired.as_str().unwrap().to_owned(),
                    stem(job["name"].as_str().unwrap()),
                )
            })
        })
        .collect();
    files.sort();
    let mut expected_files = Vec::new();
    for model in ["aml", "brca", "covid19"] {
        expected_files.push((
            format!("models/{model}/model"),
            "emmaa-mm-update".to_owned(),
            format!("{model}_update"),
        ));
    }
    for (model, tests) in &corpora {
        expected_files.push((
            format!("results/{model}/model_manager"),
            "emmaa-after-update".to_owned(),
            format!("{model}_mm_update"),
        ));
        for corpus in tests {
            expected_files.push((
                format!("results/{model}/results_{corpus}"),
                "emmaa-test-stats".to_owned(),
                format!("{model}_{corpus}_tests"),
            ));
        }
    }
    expected_files.sort();
    assert_eq!(files, expected_files);

    // Runs: two schedules, then one per file; every one answered 200.
    let runs = day["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2 + expected_files.len());
    assert_eq!(
        runs[0]["start"],
        json!({"kind": "schedule", "schedule": "TestUpdateSchedule"})
    );
    assert_eq!(runs[1]["run"]["function"], "emmaa-update-pipeline");
    for run in &runs[2..] {
        assert_eq!(run["start"]["kind"], "file");
        assert_eq!(
            run["event"]["Records"][0]["s3"]["object"]["key"],
            run["start"]["key"]
        );
    }
    let summary = &day["summary"];
    assert_eq!(summary["jobs"], 33);
    assert_eq!(summary["files"], 14);
    assert_eq!(summary["refusals"], 0);
    assert_eq!(summary["cycles"], 0);
    assert_eq!(summary["functions"]["emmaa-model-test"], 7);
    assert_eq!(summary["functions"]["emmaa-after-update"], 4);
    // One model's path, in order.
    let aml: Vec<String> = summary["models"]["aml"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| stem(name.as_str().unwrap()))
        .collect();
    assert_eq!(
        aml,
        [
            "aml_update",
            "aml_mm_update",
            "aml_model_stats",
            "aml_large_corpus_tests_tests",
            "aml_queries",
            "aml_large_corpus_tests_stats"
        ]
    );
}

/// The example bucket's day drawn as `args` ask.
fn picture(args: &[&str]) -> String {
    let mut all = vec!["--bucket-dir", "examples/bucket", "--now", NOW];
    all.extend_from_slice(args);
    let output = simulate(&all);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_day_draws_as_mermaid_and_dot_with_one_models_whole_path() {
    for format in ["mermaid", "dot"] {
        let text = picture(&["--format", format]);
        let arrow = if format == "dot" { "->" } else { "-->" };
        // aml, from the schedule to its test statistics.
        let path = [
            ("schedule_UpdateSchedule", "fn_emmaa_update_pipeline"),
            ("fn_emmaa_update_pipeline", "fn_emmaa_model_update"),
            ("fn_emmaa_model_update", "job_aml_update_20200204_120001"),
            (
                "job_aml_update_20200204_120001",
                "file_models_aml_model_2020_02_04_12_00_01_pkl",
            ),
            (
                "file_models_aml_model_2020_02_04_12_00_01_pkl",
                "fn_emmaa_mm_update",
            ),
            ("fn_emmaa_mm_update", "job_aml_mm_update_20200204_120002"),
            (
                "job_aml_mm_update_20200204_120002",
                "file_results_aml_model_manager_2020_02_04_12_00_02_pkl",
            ),
            (
                "file_results_aml_model_manager_2020_02_04_12_00_02_pkl",
                "fn_emmaa_after_update",
            ),
            ("fn_emmaa_after_update", "fn_emmaa_test_pipeline"),
            ("fn_emmaa_test_pipeline", "fn_emmaa_model_test"),
            (
                "fn_emmaa_model_test",
                "job_aml_large_corpus_tests_tests_20200204_120006",
            ),
            (
                "fn_emmaa_test_stats",
                "job_aml_large_corpus_tests_stats_20200204_120010",
            ),
        ];
        for (from, to) in path {
            let found = text.lines().any(|line| {
                let line = line.trim();
                line.starts_with(&format!("{from} {arrow}"))
                    && (line.ends_with(&format!(" {to}")) || line.contains(&format!(" {to} [")))
            });
            assert!(found, "{format}: no edge {from} {arrow} {to}:\n{text}");
        }
        if format == "dot" {
            assert!(text.starts_with("digraph pipeline {") && text.trim_end().ends_with('}'));
        } else {
            assert!(text.starts_with("flowchart LR\n"));
        }
    }
}

#[test]
fn one_models_picture_holds_its_path_and_no_other_model() {
    let text = picture(&["--format", "mermaid", "--model", "aml"]);
    for other in ["brca", "covid19", "marm_model", "rasmodel", "TestUpdateSchedule"] {
        assert!(!text.contains(other), "{other} in aml's picture:\n{text}");
    }
    for edge in [
        "schedule_UpdateSchedule -->|daily| fn_emmaa_update_pipeline",
        "fn_emmaa_update_pipeline -->|aml| fn_emmaa_model_update",
        "file_results_aml_model_manager_2020_02_04_12_00_02_pkl -->|S3 trigger| fn_emmaa_after_update",
        "fn_emmaa_test_stats -->|submit| job_aml_large_corpus_tests_stats_20200204_120010",
    ] {
        assert!(text.contains(edge), "no {edge}:\n{text}");
    }
    // Six jobs, three files: aml's whole day.
    assert_eq!(text.matches("[[\"aml_").count(), 6, "{text}");
    assert_eq!(text.matches("[/\"").count(), 3, "{text}");
}

/// Replay keeps each compiled component in its cache and reuses it; a
/// damaged cache entry is compiled again, never trusted.
#[test]
fn compiled_components_are_cached_and_a_damaged_entry_is_compiled_again() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("components");
    let cache_arg = cache_dir.to_str().unwrap();
    let run = || {
        let output = replay(
            &[
                "emmaa-model-update",
                "examples/events/emmaa-model-update.json",
                "--now",
                NOW,
            ],
            &[("EMMAA_COMPILE_CACHE", cache_arg)],
        );
        succeeded(&output)
    };
    let first = run();
    let entries: Vec<PathBuf> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].extension().is_some_and(|ext| ext == "cwasm"));
    let compiled = std::fs::read(&entries[0]).unwrap();
    assert_eq!(run(), first, "the cached component answers the same");
    std::fs::write(&entries[0], b"not a component").unwrap();
    assert_eq!(run(), first, "a damaged entry is compiled again");
    assert_eq!(
        std::fs::read(&entries[0]).unwrap().len(),
        compiled.len(),
        "and rewritten"
    );
    // EMMAA_COMPILE_CACHE empty: no cache at all.
    let output = replay(
        &[
            "emmaa-model-update",
            "examples/events/emmaa-model-update.json",
            "--now",
            NOW,
        ],
        &[("EMMAA_COMPILE_CACHE", "")],
    );
    assert!(output.status.success());
}

/// `--models N`: the made-up bucket's day, counted from its mix by hand:
/// three in four models updated daily, the rest curated; one in ten makes
/// tests; even models test one corpus, odd ones two.
#[test]
fn a_day_over_made_up_models_counts_every_job() {
    let output = simulate(&["--models", "200", "--now", NOW]);
    let summary = succeeded(&output)["summary"].clone();
    let (models, updated, makers, corpora) = (200, 150, 20, 100 + 2 * 100);
    let jobs = updated // model updates
        + models // manager updates (files, and the curated models directly)
        + 2 * models // model stats and queries, after every update
        + corpora // model tests
        + corpora // test statistics
        + 2 * makers; // test updates: at 04:00 and after the update
    assert_eq!(summary["jobs"], jobs);
    assert_eq!(summary["files"], updated + models + corpora);
    assert_eq!(summary["runs"], 2 + updated + models + corpora);
    assert_eq!(summary["refusals"], 0);
    assert_eq!(summary["models"].as_object().unwrap().len(), models);
}

/// S3 notifications are at-least-once: `--redeliver` delivers each twice.
/// With the ledger's claims the day is the same 33 jobs and nothing is
/// duplicated; with the ledger off, the same day counts duplicates (the
/// counter can fail).
#[test]
fn a_redelivered_day_duplicates_nothing_with_the_ledger_and_counts_duplicates_without() {
    let day = |ledger: &str| {
        let output = simulate_with(
            &["--bucket-dir", "examples/bucket", "--now", NOW, "--redeliver"],
            &[("EMMAA_LEDGER", ledger)],
        );
        succeeded(&output)
    };
    let claimed = day("on");
    let summary = &claimed["summary"];
    assert_eq!(summary["redelivered"], 14, "every file's notification twice");
    assert_eq!(summary["runs"], 2 + 2 * 14);
    assert_eq!(summary["jobs"], 33, "the same jobs as one delivery");
    assert_eq!(summary["duplicated"], 0);
    // A second delivery finds its work claimed and says so.
    let again = claimed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|run| run["start"]["redelivery"] == true && run["run"]["function"] == "emmaa-mm-update")
        .unwrap();
    assert_eq!(again["run"]["response"]["statusCode"], 200, "{again}");
    assert!(
        again["run"]["response"].to_string().contains("already_submitted"),
        "{again}"
    );

    let unclaimed = day("off");
    let duplicated = unclaimed["summary"]["duplicated"].as_u64().unwrap();
    assert!(duplicated > 0, "without claims a redelivery does the work again");
    assert!(unclaimed["summary"]["jobs"].as_u64().unwrap() > 33);
}

// ---- the day under AWS's quotas ------------------------------------------

/// The jobs of the made-up bucket's day, by hand (as above).
fn made_up_jobs(models: u64) -> u64 {
    let updated = models - models / 4;
    let makers = models.div_ceil(10);
    let corpora = models.div_ceil(2) + 2 * (models / 2);
    updated + models + 2 * models + 2 * corpora + 2 * makers
}

/// `--quotas --format summary`, and its scale.
fn scale(args: &[&str], envs: &[(&str, &str)]) -> Value {
    let mut all = vec!["--quotas", "--format", "summary", "--now", NOW];
    all.extend_from_slice(args);
    let output = simulate_with(&all, envs);
    stdout_json(&output)["scale"].clone()
}

/// 10,000 models under Lambda's 1,000 concurrent executions, Batch's 50
/// SubmitJob a second and S3's rates, 20 ms a call, deployed as the stack
/// deploys them (queued invocations, 10 reserved executions a function):
/// every job goes through once, throttled calls are waited out, the last
/// job is submitted within 1.2 times the least time Batch's rate allows,
/// and the day never holds more than its reservations.
#[test]
fn ten_thousand_models_lose_and_repeat_nothing_under_aws_quotas() {
    let scale = scale(
        &["--models", "10000", "--function-concurrency", "10"],
        &[("EMMAA_INVOCATION_TYPE", "Event")],
    );
    assert_eq!(scale["expected_jobs"], made_up_jobs(10_000), "{scale:#}");
    assert_eq!(scale["submitted"], made_up_jobs(10_000), "{scale:#}");
    assert_eq!(scale["lost"], 0, "{scale:#}");
    assert_eq!(scale["duplicated"], 0, "{scale:#}");
    assert!(
        scale["throttled"].as_u64().unwrap() > 0,
        "the quotas bite: {scale:#}"
    );
    assert!(
        scale["peak_concurrency"].as_u64().unwrap() <= 11 * 10,
        "{scale:#}"
    );
    let of_bound = scale["of_bound"].as_f64().unwrap();
    assert!((1.0..=1.2).contains(&of_bound), "{scale:#}");
}

/// A storm: Batch throttles every SubmitJob for 400 s, longer than any
/// function's 300 s deadline, while S3 delivers every notification twice.
/// Functions still throttled at their deadline fail with everything they
/// did claimed, Lambda retries them, and the retries do only what is left.
/// The same day without Lambda's retries loses work; without the ledger's
/// claims it repeats work.
#[test]
fn a_throttling_storm_and_redelivery_lose_nothing_with_retries_and_claims_and_the_controls_fail() {
    let storm = ["--models", "1000", "--redeliver", "--storm", "20+400"];
    let day = scale(&storm, &[]);
    assert_eq!(
        (day["lost"].as_u64(), day["duplicated"].as_u64()),
        (Some(0), Some(0)),
        "{day:#}"
    );
    assert!(day["lambda_retries"].as_u64().unwrap() > 0, "{day:#}");
    assert!(day["given_up"].as_u64().unwrap() > 0, "the SDK gave up: {day:#}");

    let without_retries = scale(&[&storm[..], &["--async-retries", "0"]].concat(), &[]);
    assert!(
        without_retries["lost"].as_u64().unwrap() > 0,
        "{without_retries:#}"
    );

    let without_claims = scale(&storm, &[("EMMAA_LEDGER", "off")]);
    assert!(
        without_claims["duplicated"].as_u64().unwrap() > 0,
        "{without_claims:#}"
    );
}
