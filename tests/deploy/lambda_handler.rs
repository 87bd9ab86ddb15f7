//! The Lambda handler: one `errorType` per kind of failure, and a partial answer that is a normal answer.

use super::*;

async fn lambda_answer(guest_name: &str, event: Value) -> Result<Value, lambda_runtime::Diagnostic> {
    let runtime = guest(guest_name);
    let in_a_minute = std::time::SystemTime::now() + Duration::from_secs(60);
    lambda_answer_by(&runtime, event, in_a_minute).await
}

/// The Lambda entry's answer to `event` for a function whose deadline is
/// `deadline`.
async fn lambda_answer_by(
    runtime: &emmaa_runtime::LoadedGuest,
    event: Value,
    deadline: std::time::SystemTime,
) -> Result<Value, lambda_runtime::Diagnostic> {
    let mut context = lambda_runtime::Context::default();
    context.request_id = "lambda-test".into();
    let deadline = deadline.duration_since(std::time::UNIX_EPOCH).unwrap();
    context.deadline = u64::try_from(deadline.as_millis()).unwrap();
    let payload = serde_json::value::RawValue::from_string(event.to_string()).unwrap();
    emmaa_lambda::handle_event(
        runtime,
        Arc::new(bucket(&[])),
        Arc::new(settings(&[])),
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
    let files = lambda_answer("sandbox_probe", json!({"reach": "files"}))
        .await
        .unwrap_err();
    assert_eq!(files.error_type, "EmmaaGuestOutsideContract");
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
    let answer = lambda_answer_by(&runtime, json!({"reach": "spin"}), deadline).await;
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
