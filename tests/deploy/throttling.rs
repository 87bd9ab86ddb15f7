//! Throttling waited out: work is delayed, never lost.

use super::*;

/// An endpoint that answers `throttled` to the first `times` requests, then
/// `ok`; and the number of requests it got.
fn throttling_endpoint(
    times: usize,
    throttled: fn() -> Reply,
    ok: fn() -> Reply,
) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let address = serve(move |_request| {
        if seen.fetch_add(1, Ordering::SeqCst) < times {
            throttled()
        } else {
            ok()
        }
    });
    (address, calls)
}

fn slow_down() -> Reply {
    Reply::Respond {
        status: 503,
        headers: vec![("Content-Type".into(), "application/xml".into())],
        body: b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            .to_vec(),
    }
}

/// The production clients (retries, timeouts) pointed at `address`.
pub(crate) async fn effects_for(address: &str) -> AwsEffects {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://{address}"))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "test",
        ));
    AwsEffects::from_loader(loader).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_invocation_is_retried_until_it_goes_through() {
    let (address, calls) = throttling_endpoint(
        2,
        || {
            let mut reply = Reply::json(429, r#"{"message": "Rate exceeded"}"#);
            if let Reply::Respond { headers, .. } = &mut reply {
                headers.push(("x-amzn-ErrorType".into(), "TooManyRequestsException".into()));
            }
            reply
        },
        || Reply::json(200, r#"{"statusCode": 200}"#),
    );
    let invocation = Invocation {
        function_name: "emmaa-model-update".into(),
        invocation_type: InvocationType::RequestResponse,
        payload: r#"{"model": "aml"}"#.into(),
        work: None,
    };
    let outcome = effects_for(&address).await.invoke(&invocation).await.unwrap();
    assert_eq!(
        (outcome.status_code, outcome.payload.as_str()),
        (200, r#"{"statusCode": 200}"#)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_slow_down_is_retried_until_it_goes_through() {
    let (address, calls) =
        throttling_endpoint(2, slow_down, || Reply::json(200, r#"{"run_daily_update": true}"#));
    let config = effects_for(&address)
        .await
        .get_object("emmaa", "models/aml/config.json", 1 << 20)
        .await
        .unwrap();
    assert_eq!(config, br#"{"run_daily_update": true}"#);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_that_outlasts_the_sdks_attempts_is_answered_as_throttled_for_the_host_to_wait_out() {
    let (address, calls) = throttling_endpoint(usize::MAX, slow_down, || Reply::json(200, "{}"));
    let err = effects_for(&address)
        .await
        .get_object("emmaa", "models/aml/config.json", 1 << 20)
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Throttled, "SlowDown"));
    assert_eq!(calls.load(Ordering::SeqCst), emmaa_aws::MAX_ATTEMPTS as usize);
}
