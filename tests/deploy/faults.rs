//! Faults injected through the tests' proxy, through the production client.

use super::*;

/// A bucket of daily models (and, for `without_config`, a model with no
/// `config.json`) in moto, and a fault proxy in front of moto.
pub(crate) async fn daily_models_behind_a_proxy(
    moto: &Moto,
    daily: &[&str],
    without_config: &[&str],
) -> FaultProxy {
    let config = moto.sdk_config().await;
    let mut objects: Vec<(String, Vec<u8>)> = daily
        .iter()
        .map(|model| {
            let config = json!({"run_daily_update": true}).to_string().into_bytes();
            (format!("models/{model}/config.json"), config)
        })
        .collect();
    objects.extend(without_config.iter().map(|model| {
        (
            format!("models/{model}/model_2020-01-01-00-00-00.pkl"),
            Vec::new(),
        )
    }));
    create_bucket(&config, "emmaa", objects).await;
    FaultProxy::start(&moto.address)
}

/// The invocation payload update_pipeline sends for `model`.
pub(crate) fn update_payload(model: &str) -> String {
    json!({ "model": model }).to_string()
}

/// Checks that each of `models` reached Lambda through `proxy` exactly once.
pub(crate) fn assert_each_invoked_once(proxy: &FaultProxy, models: &[impl AsRef<str>]) {
    for model in models {
        let model = model.as_ref();
        let passed = proxy
            .seen(&update_payload(model))
            .iter()
            .filter(|seen| seen.passed)
            .count();
        assert_eq!(passed, 1, "{model} was invoked {passed} times");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_faults_are_retried_by_the_production_client_and_no_model_is_lost() {
    let moto = Moto::start();
    let models = ["aaa", "bbb", "ccc", "ddd"];
    let proxy = daily_models_behind_a_proxy(&moto, &models, &[]).await;
    // Four SlowDowns in a row: more than the SDK's default of three
    // attempts, so only the production retry settings get through.
    proxy
        .fail("/models/aaa/config.json", vec![Fault::s3_slow_down(); 4])
        .fail(
            "/models/bbb/config.json",
            vec![Fault::s3_internal_error(), Fault::Reset],
        )
        .fail("list-type=2", vec![Fault::s3_slow_down()])
        .fail(&update_payload("ccc"), vec![Fault::too_many_requests(); 4]);

    let outcome = run_on_aws("update_pipeline", json!({}), &proxy.address, settings(&[])).await;

    assert_eq!(
        outcome.response(),
        Some(&json!({"statusCode": 200, "result": "SUCCESS"})),
        "{:?}",
        outcome.error_message()
    );
    // Each is one SDK call's five attempts, not two calls with the host's
    // waiting between them (which would get through with the SDK's default
    // three attempts too, and so prove nothing of the client's settings).
    let attempts = |needle: &str| -> Vec<String> {
        proxy
            .seen(needle)
            .into_iter()
            .map(|seen| seen.attempt.unwrap_or_default())
            .collect()
    };
    let five: Vec<String> = (1..=5)
        .map(|attempt| format!("attempt={attempt}; max=5"))
        .collect();
    assert_eq!(attempts("/models/aaa/config.json"), five);
    assert_eq!(attempts(&update_payload("ccc")), five);
    assert_eq!(attempts("/models/bbb/config.json"), five[..3]);
    assert_each_invoked_once(&proxy, &models);
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_past_the_retries_is_waited_out_and_permanent_faults_are_reported_per_model() {
    let moto = Moto::start();
    let proxy = daily_models_behind_a_proxy(&moto, &["bbb", "ccc", "ddd"], &["aaa"]).await;
    proxy
        .fail(&update_payload("bbb"), vec![Fault::function_error()])
        .fail(&update_payload("ccc"), vec![Fault::too_many_requests(); 5]);

    let outcome = run_on_aws("update_pipeline", json!({}), &proxy.address, settings(&[])).await;

    let response = outcome
        .response()
        .unwrap_or_else(|| panic!("{:?}", outcome.error_message()));
    assert_eq!(response["statusCode"], 207);
    let items: Vec<&str> = response["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|refused| refused["item"].as_str().unwrap())
        .collect();
    assert_eq!(items, ["aaa", "bbb"], "{response:#}");
    // ccc's five 429s outlast the SDK's attempts; the host pauses and
    // calls again, and the sixth goes through.
    let ccc = proxy.seen(&update_payload("ccc"));
    assert_eq!(ccc.len(), 6);
    assert_eq!(ccc.iter().filter(|seen| seen.passed).count(), 1);
    let passed = proxy
        .seen(&update_payload("ddd"))
        .iter()
        .filter(|seen| seen.passed)
        .count();
    assert_eq!(passed, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_faults_are_retried_or_reported_per_record_and_a_silent_endpoint_times_out() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_batch_queue(&moto, &config).await;
    let proxy = FaultProxy::start(&moto.address);
    let job = |model: &str| format!("{model}_mm_update_{STAMP}");
    proxy
        .fail(&job("aaa"), vec![Fault::too_many_requests(); 2])
        .fail(
            &job("bbb"),
            vec![Fault::json_error(400, "ClientException", "Job queue is disabled")],
        )
        .fail(&job("ccc"), vec![Fault::Hold]);
    let keys: Vec<String> = ["aaa", "bbb", "ccc"]
        .iter()
        .map(|model| format!("models/{model}/model_2020-02-04-12-00-00.pkl"))
        .collect();
    let event = json!({"Records": keys.iter().map(|key| json!({"s3": {"object": {"key": key}}})).collect::<Vec<_>>()});

    let run = run_on_aws("model_manager_update", event, &proxy.address, settings(&[]));
    let outcome = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("a call that gets no answer is given up and retried, not waited on forever");

    let response = outcome
        .response()
        .unwrap_or_else(|| panic!("{:?}", outcome.error_message()));
    assert_eq!(response["statusCode"], 207);
    assert_eq!(response["refused"][0]["item"], job("bbb"));
    let reason = response["refused"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("ClientException: Job queue is disabled"),
        "{reason}"
    );
    assert_eq!(response["job_ids"].as_array().unwrap().len(), 2);
    let batch = aws_sdk_batch::Client::new(&config);
    for model in ["aaa", "ccc"] {
        let filter = aws_sdk_batch::types::KeyValuesPair::builder()
            .name("JOB_NAME")
            .values(job(model))
            .build();
        let listed = batch
            .list_jobs()
            .job_queue(QUEUE)
            .filters(filter)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.job_summary_list().len(), 1, "{model}");
    }
}
