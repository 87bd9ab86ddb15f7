//! The sandbox: a guest, in Rust or in Python, reaches nothing but the contract and the host's answers to WASI, and every limit (fuel, memory, deadline) stops it with its own failure.

use super::*;

use emmaa_runtime::limits::Budget;

/// Runs `probe` on `{"reach": what}` as request `request_id`, with a
/// minute before its deadline.
async fn probe_run(
    probe: &emmaa_runtime::LoadedGuest,
    what: &str,
    request_id: &str,
) -> emmaa_runtime::GuestRun {
    let context = support::event_context("test-sandbox_probe", request_id, Duration::from_secs(60));
    let event = json!({ "reach": what }).to_string();
    let settings = Arc::new(settings(&[]));
    probe
        .handle(&event, &context, Arc::new(bucket(&[])), settings)
        .await
}

fn reached(outcome: &emmaa_runtime::GuestRun) -> &str {
    outcome
        .response()
        .and_then(|answer| answer["reached"].as_str())
        .unwrap_or_else(|| {
            panic!("no answer: {:?}", outcome.answer);
        })
}

/// Every case of the sandbox, for both probes (Rust and Python): the host's
/// answers to the WASI calls a language's runtime makes, or the failure it
/// stops the guest with, in words without WASI names. A wait never sleeps:
/// `sleep` moves both clocks on by five seconds at once, and a day's sleep
/// is the deadline (slept for real, this test would not end).
#[tokio::test]
async fn both_probes_get_the_hosts_answers_to_wasi_or_are_stopped() {
    let answered = |text: &str| Ok::<String, Failure>(text.to_owned());
    let cases = [
        ("files", answered("refused")),
        ("listing", answered("refused")),
        ("environment", answered("0 variables")),
        ("arguments", answered("0 arguments")),
        ("clock", answered(&support::NOW.to_string())),
        ("sleep", answered("slept 5.0 s; the wall clock moved 5 s")),
        ("sleep-past-deadline", Err(Failure::Deadline)),
        ("stdin", answered("0 bytes")),
        ("stdout", answered("printed")),
        ("network", Err(Failure::OutsideContract("the network"))),
        ("name-lookup", Err(Failure::OutsideContract("the network"))),
        ("exit", Err(Failure::OutsideContract("the process exit"))),
    ];
    for (language, probe) in support::probes() {
        for (what, expected) in &cases {
            let outcome = probe_run(&probe, what, "test-request").await;
            let got = match &outcome.answer {
                Answer::Failed(failure) => Err(failure.clone()),
                _ => Ok(reached(&outcome).to_owned()),
            };
            assert_eq!(&got, expected, "{language} probe, {what}");
            if let Some(message) = outcome.error_message() {
                assert!(!message.contains("wasi:"), "{language}, {what}: {message}");
            }
        }
    }
}

/// Python's randomness (secure and not) comes from a stream seeded with the
/// request id: a replay of the request sees the same bytes, another request
/// others.
#[tokio::test]
async fn a_python_guest_draws_the_same_random_bytes_for_the_same_request() {
    let probe = support::python_guest("sandbox_probe");
    for what in ["random", "insecure-random"] {
        let first = probe_run(&probe, what, "request-1").await;
        let again = probe_run(&probe, what, "request-1").await;
        let other = probe_run(&probe, what, "request-2").await;
        assert_eq!(reached(&first), reached(&again), "{what}");
        assert_ne!(reached(&first), reached(&other), "{what}");
    }
}

/// The monotonic clock starts at 0 in every event (and moves only when the
/// guest waits: `sleep` above).
#[tokio::test]
async fn a_python_guests_monotonic_clock_starts_at_zero() {
    let probe = support::python_guest("sandbox_probe");
    let outcome = probe_run(&probe, "monotonic-clock", "request-1").await;
    assert_eq!(reached(&outcome), "0");
}

/// Each build runs under the fuel and memory of its language, from the
/// language its component is marked with: CPython interprets a Python
/// handler, so each of its steps is many wasm instructions.
#[test]
fn each_build_runs_under_the_budget_of_its_language() {
    for name in ["model_stats", "after_update", "sandbox_probe"] {
        assert_eq!(support::guest(name).budget, Budget::RUST, "{name}");
        assert_eq!(support::python_guest(name).budget, Budget::PYTHON, "{name}");
    }
}

/// `probe` given `budget` instead of its language's: a budget smaller than
/// either language's stops a spinning probe in a fraction of a second.
fn within(probe: &emmaa_runtime::LoadedGuest, budget: Budget) -> emmaa_runtime::LoadedGuest {
    emmaa_runtime::LoadedGuest::clone(probe).with_budget(budget)
}

#[tokio::test]
async fn a_guest_that_runs_away_is_stopped_when_its_fuel_runs_out() {
    for (language, probe) in support::probes() {
        let budget = Budget {
            fuel: 1_000_000_000,
            ..probe.budget
        };
        let outcome = probe_run(&within(&probe, budget), "spin", "test-request").await;
        assert_eq!(
            outcome.answer,
            Answer::Failed(Failure::OutOfFuel { fuel: 1_000_000_000 }),
            "{language}"
        );
        assert_eq!(outcome.fuel_used, 1_000_000_000, "{language}");
        let message = outcome.error_message().unwrap();
        assert!(
            message.starts_with("the guest used all of its fuel (1000000000 units"),
            "{language}: {message}"
        );
    }
}

#[tokio::test]
async fn a_guest_cannot_grow_its_memory_past_the_limit() {
    for (language, probe) in support::probes() {
        let budget = Budget {
            memory: 64 << 20,
            ..probe.budget
        };
        let outcome = probe_run(&within(&probe, budget), "memory", "test-request").await;
        let Answer::Failed(Failure::OutOfMemory { asked, limit }) = outcome.answer else {
            panic!("{language}: not stopped for memory: {:?}", outcome.answer);
        };
        assert_eq!(limit, 64 << 20, "{language}");
        assert!(asked > limit, "{language}: {asked}");
        assert!(
            outcome.memory_peak <= limit && outcome.memory_peak > 0,
            "{language}: {}",
            outcome.memory_peak
        );
        let message = outcome.error_message().unwrap();
        assert!(
            message.starts_with("the guest used all of its 64 MiB of memory"),
            "{language}: {message}"
        );
        // A budget below the memory the guest starts with: it cannot be
        // started, and that is said as memory, not as a broken component.
        let tiny = Budget {
            memory: 512 << 10,
            ..probe.budget
        };
        let outcome = probe_run(&within(&probe, tiny), "environment", "test-request").await;
        assert_eq!(
            outcome.answer.failure().map(Failure::kind),
            Some("out-of-memory"),
            "{language}: {:?}",
            outcome.answer
        );
    }
}

/// A guest that fails on its own is reported with what it said last: the
/// Rust probe's panic message, the Python probe's exception (the last line
/// of its traceback on standard error, not the report of the Rust runtime
/// under Python that follows it).
#[tokio::test]
async fn a_guest_that_fails_is_reported_with_its_own_words() {
    for (language, probe) in support::probes() {
        let outcome = probe_run(&probe, "panic", "test-request").await;
        let Answer::Failed(Failure::Trapped {
            last_error: Some(said),
            ..
        }) = &outcome.answer
        else {
            panic!("{language}: {:?}", outcome.answer);
        };
        assert!(
            said.contains("deliberately, before anything went through"),
            "{language}: {said}"
        );
        let outcome = probe_run(&probe, "bad-answer", "test-request").await;
        assert!(
            matches!(outcome.answer, Answer::Failed(Failure::BadAnswer { .. })),
            "{language}: {:?}",
            outcome.answer
        );
    }
}

#[tokio::test]
async fn a_guest_gets_the_same_hash_seed_every_time() {
    for (language, probe) in support::probes() {
        let first = probe_run(&probe, "hash-seed", "request-1").await;
        let second = probe_run(&probe, "hash-seed", "request-2").await;
        assert_eq!(reached(&first), reached(&second), "{language}");
    }
}

/// The pool holds as many Python instances as it holds events (a Python
/// component instantiates 14 core modules, where a Rust one needs 3): every
/// one of [`POOLED_INSTANCES`] Python events alive at once is answered.
///
/// [`POOLED_INSTANCES`]: emmaa_runtime::limits::POOLED_INSTANCES
#[tokio::test]
async fn the_pool_holds_a_python_instance_for_every_event_at_once() {
    // An engine of its own: the other tests' guests share one pool.
    let runtime = emmaa_runtime::GuestRuntime::new().unwrap();
    let probe = support::python_guest_in(&runtime, "sandbox_probe", support::PROBE_REACH);
    let pool = emmaa_runtime::limits::POOLED_INSTANCES as usize;
    let effects = Arc::new(Slow::new(bucket(&[]), |_| Duration::from_secs(2)));
    let outcomes = futures::future::join_all((0..pool).map(|at| {
        let context =
            support::event_context("test-sandbox_probe", &format!("r{at}"), Duration::from_secs(60));
        let (probe, effects) = (Arc::clone(&probe), Arc::clone(&effects));
        async move {
            let event = json!({"reach": "submit"}).to_string();
            probe
                .handle(&event, &context, effects, Arc::new(settings(&[])))
                .await
        }
    }))
    .await;
    for outcome in &outcomes {
        assert_eq!(
            outcome.response().map(|answer| &answer["reached"]),
            Some(&json!("submitted")),
            "{:?}",
            outcome.answer
        );
    }
    assert_eq!(effects.most_in_flight(), pool, "every event was alive at once");
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
