//! `emmaa-host replay --follow`: every invocation runs the invoked function here, its run nested under the invoking action.

use super::*;

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
            emmaa_runtime::engine::Components::Directory(GUEST_DIR.into()),
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
