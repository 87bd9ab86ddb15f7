//! The Lambda handler: one `errorType` per kind of failure, and a partial answer that is a normal answer.

use super::*;

async fn lambda_answer(guest_name: &str, event: Value) -> Result<Value, lambda_runtime::Diagnostic> {
    lambda_answer_over(&guest(guest_name), event, Arc::new(bucket(&[])), settings(&[])).await
}

/// The Lambda entry's answer to `event`, a minute before the deadline,
/// over `effects` with `settings`.
async fn lambda_answer_over(
    runtime: &emmaa_runtime::LoadedGuest,
    event: Value,
    effects: Arc<dyn Effects>,
    settings: Settings,
) -> Result<Value, lambda_runtime::Diagnostic> {
    let in_a_minute = std::time::SystemTime::now() + Duration::from_secs(60);
    lambda_answer_by(runtime, event, effects, settings, in_a_minute).await
}

/// The Lambda entry's answer to `event` for a function whose deadline is
/// `deadline`.
async fn lambda_answer_by(
    runtime: &emmaa_runtime::LoadedGuest,
    event: Value,
    effects: Arc<dyn Effects>,
    settings: Settings,
    deadline: std::time::SystemTime,
) -> Result<Value, lambda_runtime::Diagnostic> {
    let mut context = lambda_runtime::Context::default();
    context.request_id = "lambda-test".into();
    let deadline = deadline.duration_since(std::time::UNIX_EPOCH).unwrap();
    context.deadline = u64::try_from(deadline.as_millis()).unwrap();
    let payload = serde_json::value::RawValue::from_string(event.to_string()).unwrap();
    emmaa_lambda::handle_event(
        runtime,
        effects,
        Arc::new(settings),
        lambda_runtime::LambdaEvent::new(payload, context),
    )
    .await
}

#[tokio::test]
async fn each_kind_of_failure_reaches_lambda_with_its_own_error_type() {
    let refused = lambda_answer("model_updates", json!({"model": "a b"}))
        .await
        .unwrap_err();
    assert_eq!(refused.error_type, "EmmaaEventRefused");
    assert!(
        refused.error_message.starts_with("model \"a b\""),
        "{}",
        refused.error_message
    );
    let spin = lambda_answer("sandbox_probe", json!({"reach": "spin"}))
        .await
        .unwrap_err();
    assert_eq!(spin.error_type, "EmmaaGuestOutOfFuel");
    let memory = lambda_answer("sandbox_probe", json!({"reach": "memory"}))
        .await
        .unwrap_err();
    assert_eq!(memory.error_type, "EmmaaGuestOutOfMemory");
    let network = lambda_answer("sandbox_probe", json!({"reach": "network"}))
        .await
        .unwrap_err();
    assert_eq!(network.error_type, "EmmaaGuestOutsideContract");
    let panicked = lambda_answer("sandbox_probe", json!({"reach": "panic"}))
        .await
        .unwrap_err();
    assert_eq!(panicked.error_type, "EmmaaGuestTrapped");
    assert!(
        panicked
            .error_message
            .contains("deliberately, before anything went through"),
        "{}",
        panicked.error_message
    );
    let garbled = lambda_answer("sandbox_probe", json!({"reach": "bad-answer"}))
        .await
        .unwrap_err();
    assert_eq!(garbled.error_type, "EmmaaGuestBadAnswer");
    assert!(
        garbled.error_message.ends_with(r#": {"statusCode": 200,"#),
        "{}",
        garbled.error_message
    );
    let huge = lambda_answer("model_updates", json!({"model": "a".repeat(7 << 20)}))
        .await
        .unwrap_err();
    assert_eq!(huge.error_type, "EmmaaEventTooLarge");
    // JSON to Lambda, but nested past the host's limit.
    let deep: Value = serde_json::from_str(&format!("{}{}", "[".repeat(65), "]".repeat(65))).unwrap();
    let deep = lambda_answer("model_updates", deep).await.unwrap_err();
    assert_eq!(deep.error_type, "EmmaaEventNotJson");
    assert!(
        deep.error_message.contains("deeper than 64"),
        "{}",
        deep.error_message
    );
}

/// A guest still running near Lambda's deadline is stopped a second
/// before it, so its answer reaches Lambda: measured from the outside, not
/// computed from the constant.
#[tokio::test]
async fn a_guest_still_running_near_the_deadline_is_answered_a_second_before_it() {
    let runtime = guest("sandbox_probe");
    // A spinning guest burns its fuel in about half a second here: the
    // interrupt point, a quarter of a second away, comes first.
    let deadline = std::time::SystemTime::now() + Duration::from_millis(1_250);
    let effects = Arc::new(bucket(&[]));
    let answer = lambda_answer_by(
        &runtime,
        json!({"reach": "spin"}),
        effects,
        settings(&[]),
        deadline,
    )
    .await;
    let left = deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert_eq!(answer.unwrap_err().error_type, "EmmaaGuestDeadline");
    // The margin is one second: not later than half a second after the
    // interrupt point (a busy machine), never earlier than it.
    assert!(
        left > Duration::from_millis(500) && left <= Duration::from_millis(1_050),
        "answered {left:?} before the deadline"
    );
}

#[tokio::test]
async fn a_guest_that_fails_after_a_job_went_through_is_a_normal_answer_on_lambda() {
    let answer = lambda_answer("sandbox_probe", json!({"reach": "submit-then-panic"}))
        .await
        .unwrap();
    assert_eq!(answer["statusCode"], 207);
    assert_eq!(answer["interrupted"]["kind"], "trapped");
}

/// A call the deadline kept from being made, with nothing else gone
/// through: the event fails as cut short, so that Lambda's retry makes it.
#[tokio::test]
async fn an_event_whose_call_the_deadline_kept_back_reaches_lambda_as_cut_short() {
    // The guest is stopped a second before the deadline, and a call
    // starts only with half a second left before that: with 1.45 s to
    // go, the job is never attempted, and the guest itself has 0.45 s
    // to answer.
    let deadline = std::time::SystemTime::now() + Duration::from_millis(1_450);
    let cut = lambda_answer_by(
        &guest("model_updates"),
        json!({"model": "aml"}),
        Arc::new(bucket(&[])),
        settings(&[]),
        deadline,
    )
    .await
    .unwrap_err();
    assert_eq!(cut.error_type, "EmmaaEventCutShort", "{}", cut.error_message);
    assert!(
        cut.error_message
            .starts_with("the deadline came before 1 of the event's calls could be made or answered"),
        "{}",
        cut.error_message
    );
}

/// A function the event invoked failed in its own code, and everything
/// else the event did is claimed: the event fails, so that Lambda's retry
/// invokes that function again (and only it).
#[tokio::test]
async fn a_failed_invoked_function_reaches_lambda_with_its_own_error_type() {
    let effects = bucket(&[
        ("models/aml/config.json", r#"{"run_daily_update": true}"#),
        (
            "models/brca/config.json",
            r#"{"run_daily_update": false, "run_daily_tests": true}"#,
        ),
    ])
    .erroring_function(
        "emmaa-mm-update",
        "Unhandled",
        r#"{"errorType": "EmmaaEventRefused", "errorMessage": "boom"}"#,
    );
    let ledger_on = settings(&[("EMMAA_LEDGER", "on")]);
    let failed = lambda_answer_over(&guest("update_pipeline"), json!({}), Arc::new(effects), ledger_on)
        .await
        .unwrap_err();
    assert_eq!(failed.error_type, "EmmaaInvokedFunctionFailed");
    assert!(
        failed
            .error_message
            .starts_with("1 of the functions the event invoked failed"),
        "{}",
        failed.error_message
    );
}

/// Effects whose job submissions wait until `open` lets them through,
/// counting those that arrived.
struct HeldSubmissions {
    inner: emmaa_runtime::effects::local::LocalEffects,
    arrived: AtomicUsize,
    arrival: tokio::sync::Notify,
    open: tokio::sync::Semaphore,
}

impl HeldSubmissions {
    async fn until_arrived(&self, count: usize) {
        loop {
            let arrival = self.arrival.notified();
            if self.arrived.load(Ordering::SeqCst) >= count {
                return;
            }
            arrival.await;
        }
    }
}

#[async_trait::async_trait]
impl Effects for HeldSubmissions {
    async fn list_prefixes(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: &str,
    ) -> Result<Vec<String>, emmaa_runtime::effects::AwsError> {
        self.inner.list_prefixes(bucket, prefix, delimiter).await
    }

    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        max_size: u64,
    ) -> Result<Vec<u8>, emmaa_runtime::effects::AwsError> {
        self.inner.get_object(bucket, key, max_size).await
    }

    async fn invoke(
        &self,
        invocation: &Invocation,
    ) -> Result<emmaa_runtime::effects::InvocationOutcome, emmaa_runtime::effects::AwsError> {
        self.inner.invoke(invocation).await
    }

    async fn submit_job(
        &self,
        job: &emmaa_runtime::effects::Job,
    ) -> Result<String, emmaa_runtime::effects::AwsError> {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        self.arrival.notify_waiters();
        self.open.acquire().await.expect("never closed").forget();
        self.inner.submit_job(job).await
    }

    async fn get_object_tagged(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, String)>, emmaa_runtime::effects::AwsError> {
        self.inner.get_object_tagged(bucket, key).await
    }

    async fn put_object_if(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        condition: emmaa_runtime::effects::Condition,
    ) -> Result<String, emmaa_runtime::effects::AwsError> {
        self.inner.put_object_if(bucket, key, body, condition).await
    }

    async fn delete_object_if(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
    ) -> Result<(), emmaa_runtime::effects::AwsError> {
        self.inner.delete_object_if(bucket, key, etag).await
    }

    async fn find_jobs(
        &self,
        queue: &str,
        job_name: &str,
    ) -> Result<Vec<String>, emmaa_runtime::effects::AwsError> {
        self.inner.find_jobs(queue, job_name).await
    }
}

/// A guest that cannot be instantiated (here: every instance the engine's
/// pool holds is in use) fails the event with its own error type, and the
/// events holding the pool still answer.
#[tokio::test]
async fn a_guest_that_cannot_be_instantiated_reaches_lambda_with_its_own_error_type() {
    // An engine of its own: the other tests' guests share one pool.
    let runtime = emmaa_runtime::GuestRuntime::new().unwrap();
    let path = Path::new(emmaa_runtime::functions::GUEST_DIR).join("sandbox_probe.wasm");
    let probe = runtime.load(&path).unwrap().serving(support::guests::PROBE_REACH);
    let held = Arc::new(HeldSubmissions {
        inner: bucket(&[]),
        arrived: AtomicUsize::new(0),
        arrival: tokio::sync::Notify::new(),
        open: tokio::sync::Semaphore::new(0),
    });
    let pool = emmaa_runtime::limits::POOLED_INSTANCES as usize;
    let holding = futures::future::join_all((0..pool).map(|_| {
        let effects: Arc<dyn Effects> = held.clone();
        lambda_answer_over(
            &probe,
            json!({"reach": "submit-then-panic"}),
            effects,
            settings(&[]),
        )
    }));
    let one_more = async {
        held.until_arrived(pool).await;
        let answer = lambda_answer_over(
            &probe,
            json!({"reach": "panic"}),
            Arc::new(bucket(&[])),
            settings(&[]),
        )
        .await;
        held.open.add_permits(pool);
        answer
    };
    let (holding, one_more) = tokio::join!(holding, one_more);
    let refused = one_more.unwrap_err();
    assert_eq!(refused.error_type, "EmmaaGuestNotInstantiated");
    assert!(
        refused.error_message.contains("limit"),
        "{}",
        refused.error_message
    );
    for answer in holding {
        let answer = answer.unwrap();
        assert_eq!(answer["statusCode"], 207);
        assert_eq!(answer["interrupted"]["kind"], "trapped");
    }
}

// ---- the metrics line of an event ---------------------------------------

fn run_of(
    answer: emmaa_runtime::answer::Answer,
    actions: Vec<emmaa_runtime::Action>,
    not_attempted: Vec<usize>,
) -> GuestRun {
    GuestRun {
        answer,
        actions,
        not_attempted,
        fuel_used: 0,
        memory_peak: 0,
        throttle_waits: 2,
    }
}

fn invoke_action() -> emmaa_runtime::Action {
    emmaa_runtime::Action::LambdaInvoke {
        function_name: "emmaa-model-update".into(),
        invocation_type: "Event".into(),
        payload: json!({"model": "aml"}),
    }
}

#[test]
fn a_partial_answer_counts_in_its_metrics_what_it_lists_and_what_it_only_counts() {
    let response = json!({
        "statusCode": 207, "job_ids": ["a", "b"], "refused": [{"item": "x", "reason": "y"}],
        "refused_not_listed": 4, "already_submitted": [{"job_name": "j", "job_id": "i"}],
        "ignored": [{"item": "k", "reason": "removed"}],
    });
    let outcome = run_of(
        emmaa_runtime::answer::Answer::Guest(response),
        vec![invoke_action(), invoke_action()],
        vec![1],
    );
    let line = emmaa_lambda::metrics::event_metrics("emmaa-mm-update", "emmaa-", "r-1", &outcome, 12.3456, 1);
    assert_eq!(line["JobsSubmitted"], 2);
    assert_eq!(line["Refused"], 5);
    assert_eq!(line["Ignored"], 1);
    assert_eq!(line["AlreadyDone"], 1);
    assert_eq!(line["Invocations"], 1, "the one not attempted is not counted");
    assert_eq!(line["ThrottleWaits"], 2);
    assert_eq!(
        (line["Ending"].as_str(), line["Partial"].as_u64()),
        (Some("partial"), Some(1))
    );
    assert_eq!(line["Duration"], 12.346);
    assert_eq!(line["Pipeline"], "emmaa-");
    assert_eq!(
        line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        emmaa_lambda::metrics::NAMESPACE
    );
}

#[test]
fn a_failed_event_says_in_its_metrics_how_it_failed() {
    let outcome = run_of(
        emmaa_runtime::answer::Answer::Failed(emmaa_runtime::answer::Failure::OutOfFuel {
            fuel: emmaa_runtime::limits::FUEL_PER_EVENT,
        }),
        Vec::new(),
        Vec::new(),
    );
    let line = emmaa_lambda::metrics::event_metrics("emmaa-queries", "emmaa-", "r-2", &outcome, 1.0, 0);
    assert_eq!(line["Failed"], 1);
    assert_eq!(line["Ending"], "failed");
    assert_eq!(line["Failure"], "out-of-fuel");
    assert_eq!(line["JobsSubmitted"], 0);
}
