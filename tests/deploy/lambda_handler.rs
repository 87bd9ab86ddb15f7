//! The Lambda handler: one `errorType` per kind of failure, and a partial answer that is a normal answer.

use super::*;

async fn lambda_answer(guest_name: &str, event: Value) -> Result<Value, lambda_runtime::Diagnostic> {
    let mut context = lambda_runtime::Context::default();
    context.request_id = "lambda-test".into();
    let in_a_minute = std::time::SystemTime::now() + Duration::from_secs(60);
    let deadline = in_a_minute.duration_since(std::time::UNIX_EPOCH).unwrap();
    context.deadline = u64::try_from(deadline.as_millis()).unwrap();
    let payload = serde_json::value::RawValue::from_string(event.to_string()).unwrap();
    emmaa_lambda::handle_event(
        &guest(guest_name),
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
}

#[tokio::test]
async fn a_guest_that_fails_after_a_job_went_through_is_a_normal_answer_on_lambda() {
    let answer = lambda_answer("sandbox_probe", json!({"reach": "submit-then-panic"}))
        .await
        .unwrap();
    assert_eq!(answer["statusCode"], 207);
    assert_eq!(answer["interrupted"]["kind"], "trapped");
}
