//! Exactly once: the ledger of claims keeps every unit of work to one job or invocation under redelivery and retries.

use super::*;

/// An S3 event whose records carry sequencers, as real ones do.
fn s3_event_with_sequencers(keys: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = keys
        .iter()
        .map(|(key, sequencer)| json!({"s3": {"object": {"key": key, "sequencer": sequencer}}}))
        .collect();
    json!({ "Records": records })
}

/// The names of the jobs an outcome submitted.
pub(crate) fn submitted(outcome: &emmaa_runtime::GuestRun) -> Vec<String> {
    outcome
        .actions
        .iter()
        .filter_map(|action| match action {
            emmaa_runtime::Action::BatchSubmit { job_name, .. } => Some(job_name.clone()),
            _ => None,
        })
        .collect()
}

fn model_state(model: &str) -> String {
    format!("models/{model}/model_2020-02-04-12-00-00.pkl")
}

/// A pending claim of `work` for `function`, held by `request_id` until `deadline_ms`.
fn seed_pending_claim(
    effects: &LocalEffects,
    function: &str,
    work: &str,
    request_id: &str,
    deadline_ms: u64,
) {
    let key = emmaa_runtime::ledger::claim_key("ledger/", function, work);
    let claim = json!({
        "state": "pending", "work": work, "request_id": request_id, "deadline_ms": deadline_ms,
        "job_name": format!("aml_update_{STAMP}"), "job_queue": "emmaa-models-update-test"
    });
    let put = effects.put_object_if("emmaa", &key, claim.to_string().into_bytes(), Condition::Absent);
    futures::executor::block_on(put).unwrap();
}

#[tokio::test]
async fn the_same_s3_event_delivered_twice_gets_one_job_per_record() {
    let effects = bucket(&[]);
    let (aml, brca) = (model_state("aml"), model_state("brca"));
    let event = s3_event_with_sequencers(&[(&aml, "0A01"), (&brca, "0A02")]);
    let first = run_as("model_manager_update", &event, &effects, "delivery-1").await;
    assert_eq!(submitted(&first).len(), 2);
    let second = run_as("model_manager_update", &event, &effects, "delivery-2").await;
    assert_eq!(submitted(&second), Vec::<String>::new());
    let response = second.response().unwrap();
    assert_eq!(response["statusCode"], 200);
    assert_eq!(response["job_ids"], first.response().unwrap()["job_ids"]);
    assert_eq!(
        response["already_submitted"][1],
        json!({"job_name": format!("brca_mm_update_{STAMP}"), "job_id": format!("local-brca_mm_update_{STAMP}")})
    );
}

#[tokio::test]
async fn the_same_invocation_retried_with_its_request_id_gets_one_job() {
    let effects = bucket(&[]);
    let event = json!({"model": "aml"});
    let first = run_as("model_updates", &event, &effects, "request-1").await;
    let retried = run_as("model_updates", &event, &effects, "request-1").await;
    assert_eq!(submitted(&first).len(), 1);
    assert_eq!(submitted(&retried).len(), 0);
    assert_eq!(retried.status_code(), Some(200));
    // Another request is other work: an operator's second invocation runs.
    let another = run_as("model_updates", &event, &effects, "request-2").await;
    assert_eq!(submitted(&another).len(), 1);
}

#[tokio::test]
async fn new_work_is_never_blocked() {
    let effects = bucket(&[("models/aml/config.json", DAILY_TESTS)]);
    let aml = model_state("aml");
    let upload = run_as(
        "model_manager_update",
        &s3_event_with_sequencers(&[(&aml, "0A01")]),
        &effects,
        "r1",
    )
    .await;
    let new_upload = run_as(
        "model_manager_update",
        &s3_event_with_sequencers(&[(&aml, "0A02")]),
        &effects,
        "r2",
    )
    .await;
    assert_eq!((submitted(&upload).len(), submitted(&new_upload).len()), (1, 1));
    // The stand-in record has the same key every day; each day's run is new.
    let stand_in = s3_event(&["models/aml/model_2020-01-01-00-00-00.pkl"]);
    let today = run_as("model_manager_update", &stand_in, &effects, "day-1").await;
    let tomorrow = run_as("model_manager_update", &stand_in, &effects, "day-2").await;
    assert_eq!((submitted(&today).len(), submitted(&tomorrow).len()), (1, 1));
    let invoked = |outcome: &emmaa_runtime::GuestRun| {
        outcome
            .actions
            .iter()
            .filter(|a| matches!(a, emmaa_runtime::Action::LambdaInvoke { .. }))
            .count()
    };
    let day_one = run_as("update_pipeline", &json!({}), &effects, "schedule-1").await;
    let day_one_retried = run_as("update_pipeline", &json!({}), &effects, "schedule-1").await;
    let day_two = run_as("update_pipeline", &json!({}), &effects, "schedule-2").await;
    assert_eq!(
        (invoked(&day_one), invoked(&day_one_retried), invoked(&day_two)),
        (1, 0, 1)
    );
    assert_eq!(
        day_one_retried.response().unwrap()["already_invoked"][0]["item"],
        "aml"
    );
}

#[tokio::test]
async fn work_claimed_by_a_live_request_is_answered_as_in_progress_there() {
    let effects = bucket(&[]);
    seed_pending_claim(
        &effects,
        "test-model_updates",
        "request:r2:aml_update",
        "r1",
        u64::MAX / 2,
    );
    let outcome = run_as("model_updates", &json!({"model": "aml"}), &effects, "r2").await;
    assert_eq!(submitted(&outcome).len(), 0);
    let response = outcome.response().unwrap();
    assert_eq!(response["statusCode"], 200);
    assert_eq!(
        response["in_progress_elsewhere"],
        json!([{"job_name": format!("aml_update_{STAMP}"), "request_id": "r1"}])
    );
}

#[tokio::test]
async fn a_claim_left_pending_by_a_dead_runtime_is_taken_over() {
    // By the same request (Lambda's retry of the event), at once.
    let effects = bucket(&[]);
    seed_pending_claim(
        &effects,
        "test-model_updates",
        "request:r1:aml_update",
        "r1",
        u64::MAX / 2,
    );
    let retried = run_as("model_updates", &json!({"model": "aml"}), &effects, "r1").await;
    assert_taken_over(&effects, &retried, "request:r1:aml_update", "r1").await;
    // By another request, once the holder's deadline has passed.
    let effects = bucket(&[]);
    seed_pending_claim(&effects, "test-model_updates", "request:r2:aml_update", "r1", 1);
    let later = run_as("model_updates", &json!({"model": "aml"}), &effects, "r2").await;
    assert_taken_over(&effects, &later, "request:r2:aml_update", "r2").await;
}

/// The dead holder's job was looked for first (it may have been submitted
/// before the holder died), none was found, one was submitted, and the
/// claim is done with it, held by `request_id`.
async fn assert_taken_over(
    effects: &LocalEffects,
    outcome: &emmaa_runtime::GuestRun,
    work: &str,
    request_id: &str,
) {
    let job = format!("aml_update_{STAMP}");
    assert_eq!(submitted(outcome), std::slice::from_ref(&job));
    assert_eq!(
        effects.jobs_looked_up(),
        [("emmaa-models-update-test".to_owned(), job.clone())]
    );
    let key = emmaa_runtime::ledger::claim_key("ledger/", "test-model_updates", work);
    let (claim, _) = effects.get_object_tagged("emmaa", &key).await.unwrap().unwrap();
    let claim: Value = serde_json::from_slice(&claim).unwrap();
    assert_eq!(claim["state"], "done", "{claim}");
    assert_eq!(claim["job_id"], format!("local-{job}"), "{claim}");
    assert_eq!(claim["request_id"], request_id, "{claim}");
}

/// A job that failed, started again by `deploy redrive`: the redrive
/// supersedes its done claim, and the same S3 event then submits the job
/// again, without looking for it (the look-up would find the failed job
/// and answer "already done"); the next delivery finds it done.
#[tokio::test]
async fn a_claim_superseded_by_a_redrive_is_taken_over_without_a_look_up() {
    let effects = bucket(&[]);
    let aml = model_state("aml");
    let event = s3_event_with_sequencers(&[(&aml, "0A01")]);
    let job = format!("aml_mm_update_{STAMP}");
    let first = run_as("model_manager_update", &event, &effects, "delivery-1").await;
    assert_eq!(submitted(&first), std::slice::from_ref(&job));
    let again = run_as("model_manager_update", &event, &effects, "delivery-2").await;
    assert_eq!(submitted(&again), Vec::<String>::new());
    let key =
        emmaa_runtime::ledger::claim_key("ledger/", "test-model_manager_update", &format!("s3:{aml}@0A01"));
    let (held, etag) = effects.get_object_tagged("emmaa", &key).await.unwrap().unwrap();
    assert_eq!(
        emmaa_runtime::ledger::superseded(&held, "redrive-1", "another-job"),
        None,
        "only the claim of the failed job is superseded"
    );
    let body = emmaa_runtime::ledger::superseded(&held, "redrive-1", &format!("local-{job}")).unwrap();
    let superseded: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(superseded["state"], "superseded");
    assert_eq!(superseded["superseded_by"], "redrive-1");
    assert_eq!(
        superseded["job_id"],
        format!("local-{job}"),
        "the failed job's id is kept"
    );
    effects
        .put_object_if("emmaa", &key, body, Condition::Matches(etag))
        .await
        .unwrap();
    let redriven = run_as("model_manager_update", &event, &effects, "delivery-3").await;
    assert_eq!(submitted(&redriven), std::slice::from_ref(&job));
    assert_eq!(effects.jobs_looked_up(), Vec::<(String, String)>::new());
    let (claim, _) = effects.get_object_tagged("emmaa", &key).await.unwrap().unwrap();
    let claim: Value = serde_json::from_slice(&claim).unwrap();
    assert_eq!(
        (claim["state"].as_str(), claim["request_id"].as_str()),
        (Some("done"), Some("delivery-3"))
    );
    let fourth = run_as("model_manager_update", &event, &effects, "delivery-4").await;
    assert_eq!(submitted(&fourth), Vec::<String>::new());
}

/// A host that predates the superseded state cannot read such a claim, and
/// reads a claim it cannot read as a dead pending one: it looks for the job
/// its event asks for, and takes the claim over when there is none. Safe:
/// the redriven event's job carries the time it runs at, so the look-up
/// finds nothing and the work is done once (two such deliveries race on
/// `If-Match`). Shown here with a state this host does not know either.
#[tokio::test]
async fn a_claim_in_a_state_this_host_does_not_know_is_a_dead_pending_claim() {
    let effects = bucket(&[]);
    let work = "request:r1:aml_update";
    let key = emmaa_runtime::ledger::claim_key("ledger/", "test-model_updates", work);
    let claim = json!({
        "state": "archived", "work": work, "request_id": "r0", "deadline_ms": u64::MAX / 2,
        "job_name": "aml_update_20200203_050000", "job_queue": "emmaa-models-update-test",
        "job_id": "the-failed-job"
    });
    effects
        .put_object_if("emmaa", &key, claim.to_string().into_bytes(), Condition::Absent)
        .await
        .unwrap();
    let outcome = run_as("model_updates", &json!({"model": "aml"}), &effects, "r1").await;
    assert_taken_over(&effects, &outcome, work, "r1").await;
}

#[tokio::test]
async fn a_refused_submission_releases_its_claim_and_an_unknown_outcome_keeps_it() {
    let ledger = LocalLedger::default();
    let refusing = LocalEffects::new(LocalBucket::Empty)
        .with_ledger(ledger.clone())
        .failing_queue(
            "emmaa-models-update-test",
            AwsError::new(ErrorKind::Rejected, "ClientException", "no such queue"),
        );
    let refused = run_as("model_updates", &json!({"model": "aml"}), &refusing, "r1").await;
    assert_eq!(refused.answer.failure().map(Failure::kind), Some("refused"));
    let key = emmaa_runtime::ledger::claim_key("ledger/", "test-model_updates", "request:r1:aml_update");
    assert_eq!(refusing.get_object_tagged("emmaa", &key).await.unwrap(), None);

    let silent = LocalEffects::new(LocalBucket::Empty)
        .with_ledger(ledger.clone())
        .failing_queue(
            "emmaa-models-update-test",
            AwsError::new(ErrorKind::Unavailable, "Timeout", "no answer"),
        );
    run_as("model_updates", &json!({"model": "aml"}), &silent, "r1").await;
    let (claim, _) = silent.get_object_tagged("emmaa", &key).await.unwrap().unwrap();
    let claim: Value = serde_json::from_slice(&claim).unwrap();
    assert_eq!(claim["state"], "pending");

    let working = LocalEffects::new(LocalBucket::Empty).with_ledger(ledger);
    let retried = run_as("model_updates", &json!({"model": "aml"}), &working, "r1").await;
    assert_eq!(submitted(&retried).len(), 1);
    let (claim, _) = working.get_object_tagged("emmaa", &key).await.unwrap().unwrap();
    let claim: Value = serde_json::from_slice(&claim).unwrap();
    assert_eq!(
        (claim["state"].as_str(), claim["job_id"].as_str()),
        (Some("done"), Some("local-aml_update_20200204_120000"))
    );
}

#[tokio::test]
async fn a_rerun_on_purpose_claims_nothing() {
    let effects = bucket(&[]);
    run_as("model_updates", &json!({"model": "aml"}), &effects, "r1").await;
    let rerun = run_as(
        "model_updates",
        &json!({"model": "aml", "rerun": true}),
        &effects,
        "r1",
    )
    .await;
    assert_eq!(submitted(&rerun).len(), 1);
    assert!(
        !rerun
            .actions
            .iter()
            .any(|a| matches!(a, emmaa_runtime::Action::LedgerClaim { .. }))
    );
}

#[tokio::test]
async fn a_guest_cut_short_after_claimed_jobs_fails_so_that_the_retry_does_the_rest() {
    let effects = bucket(&[]);
    let outcome = run_as(
        "sandbox_probe",
        &json!({"reach": "submit-then-spin"}),
        &effects,
        "r1",
    )
    .await;
    assert_eq!(
        outcome.answer,
        Answer::Failed(Failure::OutOfFuel {
            fuel: emmaa_runtime::limits::FUEL_PER_EVENT
        })
    );
    assert_eq!(submitted(&outcome).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runtimes_racing_on_one_event_over_a_directory_ledger_submit_one_job_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<(String, String)> = (0..20)
        .map(|n| (model_state(&format!("m{n:02}")), format!("0B{n:02}")))
        .collect();
    let keys: Vec<(&str, &str)> = keys
        .iter()
        .map(|(key, sequencer)| (key.as_str(), sequencer.as_str()))
        .collect();
    let event = s3_event_with_sequencers(&keys);
    let runtime = |request_id: &'static str| {
        let effects =
            LocalEffects::new(LocalBucket::Empty).with_ledger(LocalLedger::Directory(dir.path().to_owned()));
        let event = event.clone();
        tokio::spawn(async move { run_as("model_manager_update", &event, &effects, request_id).await })
    };
    let (a, b) = (runtime("runtime-a"), runtime("runtime-b"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut jobs = submitted(&a);
    jobs.extend(submitted(&b));
    jobs.sort();
    let expected: Vec<String> = (0..20).map(|n| format!("m{n:02}_mm_update_{STAMP}")).collect();
    assert_eq!(jobs, expected, "one job per record across both runtimes");
    for outcome in [&a, &b] {
        assert_eq!(outcome.status_code(), Some(200), "{:?}", outcome.error_message());
    }
}

/// A submission still in flight when the deadline interrupts it may have
/// gone through. With the ledger off nothing claims it, so the event is
/// answered (207, the item's outcome unknown) rather than failed: Lambda's
/// retry would make it again. With the ledger on its claim stays pending
/// and the event fails as cut short; the retry looks for the job before
/// it submits it, and submits it once.
#[tokio::test]
async fn a_call_in_flight_at_the_deadline_is_never_repeated_unclaimed() {
    // The submission starts (the call reserve, 0.5 s, fits before the
    // interrupt point at 0.7 s) and is still waiting for Batch then.
    let time_left = emmaa_runtime::limits::DEADLINE_MARGIN + Duration::from_millis(700);
    let event = r#"{"model": "aml"}"#;
    let stuck = |inner: LocalEffects| Arc::new(Slow::new(inner, |_| Duration::from_secs(30)));
    let job = format!("aml_update_{STAMP}");

    let off = run_in_time(
        "model_updates",
        event,
        stuck(bucket(&[])),
        settings(&[]),
        time_left,
    )
    .await;
    let response = off
        .response()
        .unwrap_or_else(|| panic!("answered, not failed: {:?}", off.answer));
    assert_eq!(response["statusCode"], 207, "{response:#}");
    let reasons = response["refused"].to_string();
    assert!(
        reasons.contains(&format!("job {job} failed: DeadlineReachedUnclaimed")),
        "{response:#}"
    );

    let settings_on = || settings(&[("EMMAA_LEDGER", "on")]);
    // The ledger on, but the role may not write it: sent unclaimed too.
    let mut denied = Slow::new(bucket(&[]), |_| Duration::from_secs(30));
    denied.ledger_denied = true;
    let denied = run_in_time("model_updates", event, Arc::new(denied), settings_on(), time_left).await;
    let response = denied
        .response()
        .unwrap_or_else(|| panic!("answered, not failed: {:?}", denied.answer));
    assert_eq!(response["statusCode"], 207, "{response:#}");
    assert!(
        response["refused"]
            .to_string()
            .contains("DeadlineReachedUnclaimed"),
        "{response:#}"
    );

    let inner = LocalEffects::new(LocalBucket::Empty).with_ledger(LocalLedger::default());
    let on = run_in_time(
        "model_updates",
        event,
        stuck(inner.clone()),
        settings_on(),
        time_left,
    )
    .await;
    // The guest answers after the call is cut short, or is itself stopped
    // at the same interrupt point (a busy machine): a failure either way.
    assert!(
        matches!(
            on.answer,
            Answer::Failed(Failure::CutShort { left: 1 } | Failure::Deadline)
        ),
        "{:?}",
        on.answer
    );
    let key =
        emmaa_runtime::ledger::claim_key("ledger/", "test-model_updates", "request:test-request:aml_update");
    let (claim, _) = inner.get_object_tagged("emmaa", &key).await.unwrap().unwrap();
    let claim: Value = serde_json::from_slice(&claim).unwrap();
    assert_eq!(claim["state"], "pending", "{claim}");

    // Lambda's retry of the event (the same request), with Batch answering.
    let retried = run_in_time(
        "model_updates",
        event,
        Arc::new(inner.clone()),
        settings_on(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(retried.status_code(), Some(200), "{:?}", retried.error_message());
    assert_eq!(submitted(&retried), std::slice::from_ref(&job));
    assert_eq!(
        inner.jobs_looked_up(),
        [("emmaa-models-update-test".to_owned(), job.clone())]
    );
}

/// Only a role that may not write the ledger goes on without a claim: a
/// ledger write that fails any other way (S3 unavailable past the SDK's
/// retries) fails the claim, so the work is not done unclaimed and the
/// event's retry does it.
#[tokio::test]
async fn a_ledger_that_fails_to_be_written_leaves_the_work_undone_unless_the_role_may_not_write_it() {
    let event = r#"{"model": "aml"}"#;
    let settings_on = || settings(&[("EMMAA_LEDGER", "on")]);
    let time_left = Duration::from_secs(60);
    let mut broken = Slow::new(bucket(&[]), |_| Duration::ZERO);
    broken.ledger_unavailable = true;
    let outcome = run_in_time("model_updates", event, Arc::new(broken), settings_on(), time_left).await;
    assert_eq!(
        submitted(&outcome),
        Vec::<String>::new(),
        "nothing submitted unclaimed"
    );
    let error = outcome.error_message().unwrap_or_default();
    assert!(
        error.contains("InternalError") && error.contains("while claiming the work at ledger/"),
        "{error}"
    );
    let mut denied = Slow::new(bucket(&[]), |_| Duration::ZERO);
    denied.ledger_denied = true;
    let outcome = run_in_time("model_updates", event, Arc::new(denied), settings_on(), time_left).await;
    assert_eq!(
        submitted(&outcome),
        [format!("aml_update_{STAMP}")],
        "{:?}",
        outcome.answer
    );
}

/// Taking over a stale claim is a conditional write (`If-Match`) like the
/// first claim: one that loses its race (412) leaves the work to the request
/// that won it, and one that fails any other way fails the claim; neither
/// does the work.
#[tokio::test]
async fn a_take_over_that_loses_its_race_leaves_the_work_to_the_winner_and_one_that_fails_does_nothing() {
    let lost = AwsError::new(
        ErrorKind::Rejected,
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
    );
    let broken = AwsError::new(
        ErrorKind::Unavailable,
        "InternalError",
        "We encountered an internal error.",
    );
    for (error, lost_the_race) in [(lost, true), (broken, false)] {
        let inner = bucket(&[]);
        // A pending claim on this request's work by a request past its deadline.
        seed_pending_claim(
            &inner,
            "test-model_updates",
            "request:test-request:aml_update",
            "r1",
            1,
        );
        let mut effects = Slow::new(inner, |_| Duration::ZERO);
        effects.take_over_error = Some(error);
        let settings = settings(&[("EMMAA_LEDGER", "on")]);
        let outcome = run_in_time(
            "model_updates",
            r#"{"model": "aml"}"#,
            Arc::new(effects),
            settings,
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(
            submitted(&outcome),
            Vec::<String>::new(),
            "lost the race: {lost_the_race}"
        );
        match lost_the_race {
            true => assert_eq!(
                outcome.response().unwrap()["in_progress_elsewhere"][0]["request_id"],
                "another request",
                "{:?}",
                outcome.answer
            ),
            false => {
                let error = outcome.error_message().unwrap_or_default();
                assert!(
                    error.contains("InternalError") && error.contains("while claiming the work"),
                    "{error}"
                );
            }
        }
    }
}
