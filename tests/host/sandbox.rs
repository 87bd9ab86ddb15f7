//! The sandbox: a guest reaches nothing but the contract, and every limit (fuel, memory, deadline) stops it with its own failure.

use super::*;

#[tokio::test]
async fn a_guest_cannot_reach_files_environment_network_clocks_or_stdout() {
    for (target, reached) in [
        ("files", "files"),
        ("environment", "environment variables or arguments"),
        ("arguments", "environment variables or arguments"),
        ("clock", "a clock"),
        ("monotonic-clock", "a clock"),
        ("network", "the network"),
        ("stdout", "standard input or output"),
    ] {
        let outcome = run("sandbox_probe", json!({ "reach": target }), bucket(&[])).await;
        assert_eq!(
            outcome.answer,
            Answer::Failed(Failure::OutsideContract(reached)),
            "{target}"
        );
        let message = outcome.error_message().unwrap();
        assert!(!message.contains("wasi:"), "{target}: {message}");
    }
}

#[tokio::test]
async fn a_guest_that_runs_away_is_stopped_when_its_fuel_runs_out() {
    let outcome = run("sandbox_probe", json!({"reach": "spin"}), bucket(&[])).await;
    assert_eq!(outcome.answer, Answer::Failed(Failure::OutOfFuel));
    assert_eq!(outcome.fuel_used, emmaa_runtime::limits::FUEL_PER_EVENT);
}

#[tokio::test]
async fn a_guest_cannot_grow_its_memory_past_the_limit() {
    let outcome = run("sandbox_probe", json!({"reach": "memory"}), bucket(&[])).await;
    let Answer::Failed(Failure::OutOfMemory { asked }) = outcome.answer else {
        panic!("not stopped for memory: {:?}", outcome.answer);
    };
    assert!(asked > emmaa_runtime::limits::MAX_GUEST_MEMORY, "{asked}");
    assert!(
        outcome
            .error_message()
            .unwrap()
            .starts_with("the guest used all of its 256 MiB of memory")
    );
}

#[tokio::test]
async fn a_guest_gets_the_same_hash_seed_every_time() {
    let first = run("sandbox_probe", json!({"reach": "hash-seed"}), bucket(&[])).await;
    let second = run("sandbox_probe", json!({"reach": "hash-seed"}), bucket(&[])).await;
    let seed = first.response().unwrap()["reached"].clone();
    assert!(seed.is_string());
    assert_eq!(second.response().unwrap()["reached"], seed);
}

#[tokio::test]
async fn the_same_event_gives_the_same_actions_and_answer() {
    let effects = || {
        bucket(&[
            ("models/aml/config.json", DAILY),
            ("models/brca/config.json", DAILY_TESTS),
        ])
    };
    let first = run("update_pipeline", json!({}), effects()).await;
    let second = run("update_pipeline", json!({}), effects()).await;
    assert_eq!(first, second);
}
