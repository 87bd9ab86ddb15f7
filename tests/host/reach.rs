//! Reach: the host's allowlist, made from the function table, refuses every call outside a function's reach.

use super::*;

#[tokio::test]
async fn a_guest_asking_beyond_its_functions_reach_gets_a_permission_error_and_aws_sees_nothing() {
    for (language, probe) in support::probes() {
        let effects = bucket(&[("secrets/key", "hunter2")]);
        let context = support::event_context("test-sandbox_probe", "test-request", Duration::from_secs(60));
        let event = json!({"reach": "beyond-reach"}).to_string();
        let outcome = probe
            .handle(
                &event,
                &context,
                Arc::new(effects.clone()),
                Arc::new(settings(&[])),
            )
            .await;
        assert_eq!(
            outcome.response().unwrap()["reached"],
            "OutsideReach,OutsideReach,OutsideReach,OutsideReach",
            "{language}: a read, a listing of another bucket, an invocation and a job to another queue"
        );
    }
}

/// The reach is the pipeline's bucket's: given `update_pipeline`'s reach,
/// which lists `models/`, the probe's listing of `models/` in another
/// bucket is refused all the same (as are its read, invocation and job).
#[tokio::test]
async fn a_listing_the_function_may_make_is_refused_in_another_bucket() {
    let update_pipeline = emmaa_runtime::functions::PipelineFunction::by_guest("update_pipeline").unwrap();
    let probe = support::guest_serving("sandbox_probe", update_pipeline);
    let context = support::event_context("test-sandbox_probe", "test-request", Duration::from_secs(60));
    let event = json!({"reach": "beyond-reach"}).to_string();
    let outcome = probe
        .handle(&event, &context, Arc::new(bucket(&[])), Arc::new(settings(&[])))
        .await;
    assert_eq!(
        outcome.response().unwrap()["reached"],
        "OutsideReach,OutsideReach,OutsideReach,OutsideReach"
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

/// What the host logs while a test runs on this thread (the tests'
/// current-thread runtime runs the guest's calls on it too).
#[derive(Clone, Default)]
struct Logged(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logged {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logged {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_role_that_may_not_write_the_ledger_still_gets_its_work_done_unclaimed() {
    use tracing_subscriber::util::SubscriberInitExt as _;
    let logged = Logged::default();
    let writer = logged.clone();
    let _logging = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish()
        .set_default();
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
    let job = format!("aml_update_{STAMP}");
    assert_eq!(
        outcome.response(),
        Some(
            &json!({"statusCode": 200, "result": "SUCCESS", "job_id": format!("local-{job}"), "job_ids": [format!("local-{job}")]})
        ),
        "{:?}",
        outcome.error_message()
    );
    assert_eq!(submitted(&outcome), [job]);
    let text = logged.text();
    assert_eq!(text.matches("WARN").count(), 1, "{text}");
    assert!(
        text.contains(
            "the ledger may not be written: acting without a claim (a redelivery would act again); allow the \
             role s3:GetObject, s3:PutObject and s3:DeleteObject on the ledger prefix, or set EMMAA_LEDGER=off"
        ),
        "{text}"
    );
    assert!(text.contains("AccessDenied"), "{text}");
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
