//! Reach: the host's allowlist, made from the function table, refuses every call outside a function's reach.

use super::*;

#[tokio::test]
async fn a_guest_asking_beyond_its_functions_reach_gets_a_permission_error_and_aws_sees_nothing() {
    let outcome = run(
        "sandbox_probe",
        json!({"reach": "beyond-reach"}),
        bucket(&[("secrets/key", "hunter2")]),
    )
    .await;
    assert_eq!(
        outcome.response().unwrap()["reached"],
        "OutsideReach,OutsideReach,OutsideReach,OutsideReach",
        "a read, a listing of another bucket, an invocation and a job to another queue"
    );
}

#[tokio::test]
async fn a_handler_given_another_functions_reach_is_refused_what_that_function_may_not_do() {
    let queries = emmaa_runtime::functions::PipelineFunction::by_guest("model_queries").unwrap();
    let guest = support::guest_serving("update_pipeline", queries);
    let context = emmaa_runtime::EventContext {
        function_name: "emmaa-queries".into(),
        request_id: "reach".into(),
        deadline_ms: 0,
        time_left: Duration::from_secs(60),
        now: support::NOW,
    };
    let effects = Arc::new(bucket(&[("models/aml/config.json", DAILY)]));
    let outcome = guest
        .handle("{}", &context, effects, Arc::new(settings(&[])))
        .await;
    assert_eq!(
        outcome.error_message().unwrap(),
        "listing the models in s3://emmaa/models/ failed: OutsideReach: emmaa-queries may not \
         list s3://emmaa/models/: it may submit jobs to the configured queues and job definitions"
    );
}

#[tokio::test]
async fn a_role_that_may_not_write_the_ledger_still_gets_its_work_done_unclaimed() {
    let mut effects = Slow::new(bucket(&[]), |_| Duration::ZERO);
    effects.ledger_denied = true;
    let effects = Arc::new(effects);
    let settings = settings(&[("EMMAA_LEDGER", "on")]);
    let outcome = run_in_time(
        "model_updates",
        r#"{"model": "aml"}"#,
        effects.clone(),
        settings,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(outcome.status_code(), Some(200), "{:?}", outcome.error_message());
    assert_eq!(submitted(&outcome).len(), 1);
    // Unclaimed, a failure after it is answered 207 (a retry would repeat it).
    let settings = support::settings(&[("EMMAA_LEDGER", "on")]);
    let spun = run_in_time(
        "sandbox_probe",
        r#"{"reach": "submit-then-spin"}"#,
        effects,
        settings,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        matches!(spun.answer, Answer::Salvaged { .. }),
        "{:?}",
        spun.answer
    );
}
