//! The AWS backend against a real AWS API (moto on loopback): every call a guest can make, through the production client.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn update_pipeline_lists_every_page_reads_every_config_and_invokes_every_daily_model() {
    const MODELS: usize = 1_205;
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let model = |n: usize| format!("model{n:04}");
    let objects = (0..MODELS)
        .map(|n| {
            let config = match n % 3 {
                0 => json!({"run_daily_update": true}),
                1 => json!({"run_daily_tests": true}),
                _ => json!({"make_tests": true}),
            };
            (
                format!("models/{}/config.json", model(n)),
                config.to_string().into_bytes(),
            )
        })
        .collect();
    create_bucket(&config, "emmaa", objects).await;
    moto.start_recording();

    let outcome = run_on_aws("update_pipeline", json!({}), &moto.address, settings(&[])).await;
    assert_eq!(
        outcome.response().cloned(),
        Some(json!({"statusCode": 200, "result": "SUCCESS"})),
        "{:?}",
        outcome.error_message()
    );

    let recorded = moto.recording();
    let urls: Vec<&str> = recorded.iter().map(|r| r["url"].as_str().unwrap()).collect();
    let listings = urls.iter().filter(|url| url.contains("list-type=2")).count();
    assert_eq!(listings, 2, "1,205 prefixes take two pages of 1,000");
    let paths = urls.iter().map(|url| url.split('?').next().unwrap());
    let mut read: Vec<&str> = paths.filter(|path| path.ends_with("/config.json")).collect();
    read.sort();
    let expected: Vec<String> = (0..MODELS)
        .map(|n| format!("/emmaa/models/{}/config.json", model(n)))
        .collect();
    assert_eq!(read.len(), MODELS);
    assert!(
        read.iter()
            .zip(&expected)
            .all(|(url, key)| url.ends_with(key.as_str()))
    );

    let mut updates = Vec::new();
    let mut manager_updates = Vec::new();
    for request in recorded
        .iter()
        .filter(|r| r["url"].as_str().unwrap().contains("/invocations"))
    {
        let body: Value = serde_json::from_str(&recorded_body(request)).unwrap();
        let url = request["url"].as_str().unwrap();
        if url.contains("/functions/emmaa-model-update/") {
            updates.push(body["model"].as_str().unwrap().to_owned());
        } else {
            assert!(url.contains("/functions/emmaa-mm-update/"), "{url}");
            manager_updates.push(
                body["Records"][0]["s3"]["object"]["key"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    updates.sort();
    manager_updates.sort();
    let expected_updates: Vec<String> = (0..MODELS).filter(|n| n % 3 == 0).map(model).collect();
    let expected_manager_updates: Vec<String> = (0..MODELS)
        .filter(|n| n % 3 == 1)
        .map(|n| format!("models/{}/model_2020-01-01-00-00-00.pkl", model(n)))
        .collect();
    assert_eq!(updates, expected_updates);
    assert_eq!(manager_updates, expected_manager_updates);
    // The host's own record keeps the order the guest asked in.
    let invoked: Vec<&emmaa_runtime::Action> = outcome
        .actions
        .iter()
        .filter(|a| matches!(a, emmaa_runtime::Action::LambdaInvoke { .. }))
        .collect();
    assert_eq!(
        invoked.len(),
        expected_updates.len() + expected_manager_updates.len()
    );
    assert_eq!(outcome.actions.len(), 1 + MODELS + invoked.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn each_batch_handler_submits_the_job_describe_jobs_shows() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_batch_queue(&moto, &config).await;
    let cases = [
        (
            "model_updates",
            json!({"model": "aml"}),
            format!("aml_update_{STAMP}"),
            "update-emmaa-models",
            "python scripts/run_model_update.py --model aml",
        ),
        (
            "model_manager_update",
            json!({"Records": [{"s3": {"object": {"key": "models/aml/model_2020-02-04-12-00-00.pkl"}}}]}),
            format!("aml_mm_update_{STAMP}"),
            "update-emmaa-model-manager",
            "python scripts/update_model_manager.py --model aml",
        ),
        (
            "model_tests",
            json!({"model": "aml", "tests": "large_corpus_tests"}),
            format!("aml_large_corpus_tests_tests_{STAMP}"),
            "update-emmaa-results",
            "python scripts/run_model_tests_from_s3.py --model aml --tests large_corpus_tests",
        ),
        (
            "test_stats",
            json!({"Records": [{"s3": {"object": {"key": "results/aml/results_simple_tests_2020-02-04-12-00-00.json"}}}]}),
            format!("aml_simple_tests_stats_{STAMP}"),
            "update-emmaa-test-stats",
            "python scripts/run_model_stats_from_s3.py --model aml --stats_mode tests --tests simple_tests",
        ),
        (
            "model_stats",
            json!({"model": "aml"}),
            format!("aml_model_stats_{STAMP}"),
            "update-emmaa-model-stats",
            "python scripts/run_model_stats_from_s3.py --model aml --stats_mode model",
        ),
        (
            "model_queries",
            json!({"model": "aml"}),
            format!("aml_queries_{STAMP}"),
            "update-emmaa-queries",
            "python scripts/answer_queries_from_s3.py --model aml",
        ),
        (
            "test_update",
            json!({"model": "aml"}),
            format!("aml_test_update_{STAMP}"),
            "update-emmaa-tests",
            "python scripts/model_to_tests.py --model aml",
        ),
    ];
    let batch = aws_sdk_batch::Client::new(&config);
    // Each build of each guest: model_stats in Rust and in Python.
    let cases = cases
        .into_iter()
        .flat_map(|(guest_name, event, job_name, purpose, script)| {
            support::guests::builds(guest_name)
                .into_iter()
                .map(move |(language, build)| {
                    (
                        guest_name,
                        language,
                        build,
                        event.clone(),
                        job_name.clone(),
                        purpose,
                        script,
                    )
                })
        });
    for (guest_name, language, build, event, job_name, purpose, script) in cases {
        let outcome = run_build_on_aws(&build, guest_name, event, &moto.address, settings(&[])).await;
        let guest_name = format!("{guest_name} ({language})");
        let response = outcome
            .response()
            .cloned()
            .unwrap_or_else(|| panic!("{guest_name}: {:?}", outcome.error_message()));
        let job_id = response["job_id"].as_str().unwrap();
        assert_eq!(response["job_ids"], json!([job_id]));
        let described = batch.describe_jobs().jobs(job_id).send().await.unwrap();
        let job = &described.jobs()[0];
        assert_eq!(job.job_name(), Some(job_name.as_str()), "{guest_name}");
        assert!(
            job.job_queue().unwrap().ends_with(&format!("job-queue/{QUEUE}")),
            "{guest_name}: {:?}",
            job.job_queue()
        );
        assert!(
            job.job_definition()
                .unwrap()
                .contains(&format!("job-definition/{DEFINITION}:")),
            "{guest_name}"
        );
        let command = job.container().unwrap().command();
        assert_eq!(
            json!(command),
            support::guests::command(purpose, script),
            "{guest_name}"
        );
        assert!(job.depends_on().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_job_queue_is_refused_with_batchs_client_exception() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_batch_queue(&moto, &config).await;
    let settings = settings(&[
        ("EMMAA_LARGE_MODELS", "covid19"),
        ("EMMAA_LARGE_JOB_QUEUE", "no-such-queue"),
    ]);
    let event = json!({"Records": [
        {"s3": {"object": {"key": "models/aml/model_2020-02-04-12-00-00.pkl"}}},
        {"s3": {"object": {"key": "models/covid19/model_2020-02-04-12-00-00.pkl"}}}
    ]});
    let outcome = run_on_aws("model_manager_update", event, &moto.address, settings).await;
    let response = outcome.response().cloned().unwrap();
    assert_eq!(response["statusCode"], 207);
    assert_eq!(
        response["job_ids"].as_array().unwrap().len(),
        1,
        "aml's job still went through"
    );
    let refusal = &response["refused"][0];
    assert_eq!(refusal["item"], format!("covid19_mm_update_{STAMP}"));
    let reason = refusal["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "submitting job \"covid19_mm_update_{STAMP}\" to queue \"no-such-queue\" failed: ClientException"
        )),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_config_is_named_by_model() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_bucket(
        &config,
        "emmaa",
        vec![(
            "models/aml/config.json".into(),
            br#"{"make_tests": true}"#.to_vec(),
        )],
    )
    .await;
    let outcome = run_on_aws(
        "test_pipeline",
        json!({"model": "brca"}),
        &moto.address,
        settings(&[]),
    )
    .await;
    assert_eq!(outcome.response(), None);
    let error = outcome.error_message().unwrap();
    assert!(
        error.starts_with("reading s3://emmaa/models/brca/config.json failed: NoSuchKey"),
        "{error}"
    );
    let event = json!({"Records": [{"s3": {"object": {"key": "results/brca/model_manager_2020-02-04-12-00-00.pkl"}}}]});
    for (language, build) in support::guests::builds("after_update") {
        let outcome = run_build_on_aws(
            &build,
            "after_update",
            event.clone(),
            &moto.address,
            settings(&[]),
        )
        .await;
        assert_eq!(
            outcome.status_code(),
            Some(207),
            "{language}: the three invocations still went out"
        );
        assert_eq!(outcome.actions.len(), 4, "{language}");
    }
}
