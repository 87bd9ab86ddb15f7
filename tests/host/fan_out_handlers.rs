//! The fan-out handlers (`update_pipeline`, `test_update_pipeline`, `after_update`, `test_pipeline`): the exact actions each asks for under every rule of the handler contract.

use super::*;

#[tokio::test]
async fn update_pipeline_invokes_daily_models_and_rebuilds_daily_tests_models_in_s3_order() {
    let effects = bucket(&[
        ("models/rasmodel/config.json", IDLE),
        ("models/aml/config.json", DAILY),
        ("models/marm_model/config.json", DAILY_TESTS),
        ("models/brca/config.json", OLD_DAILY),
        ("models/aml/model_2020-01-01-00-00-00.pkl", ""),
    ]);
    let outcome = run("update_pipeline", json!({}), effects).await;
    assert_eq!(outcome.response(), Some(&success()));
    assert_eq!(
        actions(&outcome),
        json!([
            list_models(),
            get("models/aml/config.json"),
            get("models/brca/config.json"),
            get("models/marm_model/config.json"),
            get("models/rasmodel/config.json"),
            invoke("emmaa-model-update", json!({"model": "aml"})),
            invoke("emmaa-model-update", json!({"model": "brca"})),
            invoke(
                "emmaa-mm-update",
                s3_event(&["models/marm_model/model_2020-01-01-00-00-00.pkl"])
            ),
        ])
    );
}

#[tokio::test]
async fn update_pipeline_carries_on_past_missing_or_broken_configs_and_names_each_model() {
    let effects = bucket(&[
        ("models/aml/config.json", DAILY),
        ("models/broken/config.json", "{not json"),
        ("models/listy/config.json", "[true]"),
        ("models/noconfig/model.pkl", ""),
        ("models/zeta/config.json", DAILY),
    ]);
    let outcome = run("update_pipeline", json!({}), effects).await;
    let response = outcome.response().cloned().unwrap();
    assert_eq!(
        (response["statusCode"].clone(), response["result"].clone()),
        (json!(207), json!("PARTIAL"))
    );
    let refused = refused(&outcome);
    let items: Vec<&str> = refused.iter().map(|(item, _)| item.as_str()).collect();
    assert_eq!(items, ["broken", "listy", "noconfig"]);
    assert!(
        refused[0]
            .1
            .starts_with("models/broken/config.json is not JSON: "),
        "{}",
        refused[0].1
    );
    assert_eq!(
        refused[1].1,
        "models/listy/config.json is not a JSON object: a list"
    );
    assert!(
        refused[2]
            .1
            .starts_with("reading s3://emmaa/models/noconfig/config.json failed: NoSuchKey")
    );
    let invoked: Vec<Value> = outcome
        .actions
        .iter()
        .filter_map(|a| match a {
            emmaa_runtime::Action::LambdaInvoke { payload, .. } => Some(payload.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(invoked, [json!({"model": "aml"}), json!({"model": "zeta"})]);
}

#[tokio::test]
async fn update_pipeline_fails_when_no_model_could_go_through() {
    let effects = bucket(&[
        ("models/aml/config.json", "nope"),
        ("models/brca/config.json", ""),
    ]);
    let outcome = run("update_pipeline", json!({}), effects).await;
    assert_eq!(outcome.response(), None);
    let error = outcome.error_message().unwrap();
    assert!(error.contains("models/aml/config.json is not JSON"), "{error}");
    assert!(error.contains("models/brca/config.json is not JSON"), "{error}");
}

#[tokio::test]
async fn update_pipeline_refuses_listed_models_with_bad_names_without_reading_them() {
    let effects = bucket(&[
        ("models/aml/config.json", DAILY),
        ("models/a;b/config.json", DAILY),
    ]);
    let outcome = run("update_pipeline", json!({}), effects).await;
    assert_eq!(
        refused(&outcome),
        [(
            "a;b".to_owned(),
            "the model in the listed prefix \"models/a;b/\" \"a;b\" is not a valid model name: it must match ^[A-Za-z0-9][A-Za-z0-9_-]*$".to_owned()
        )]
    );
    assert_eq!(
        actions(&outcome),
        json!([
            list_models(),
            get("models/aml/config.json"),
            invoke("emmaa-model-update", json!({"model": "aml"}))
        ])
    );
}

#[tokio::test]
async fn update_pipeline_reports_each_failed_invocation_and_keeps_the_others() {
    let effects = bucket(&[
        ("models/aml/config.json", DAILY),
        ("models/brca/config.json", DAILY_TESTS),
    ])
    .failing_function(
        "emmaa-mm-update",
        AwsError::new(
            ErrorKind::Denied,
            "AccessDeniedException",
            "not authorized to perform: lambda:InvokeFunction",
        ),
    );
    let outcome = run("update_pipeline", json!({}), effects).await;
    let refused = refused(&outcome);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, "brca");
    assert!(
        refused[0]
            .1
            .starts_with("invoking emmaa-mm-update with {\"Records\""),
        "{}",
        refused[0].1
    );
    assert!(
        refused[0]
            .1
            .ends_with("failed: AccessDeniedException: not authorized to perform: lambda:InvokeFunction"),
        "{}",
        refused[0].1
    );
    assert_eq!(outcome.status_code(), Some(207));
}

#[tokio::test]
async fn update_pipeline_counts_an_error_inside_the_invoked_function_as_a_failure() {
    let effects = bucket(&[("models/aml/config.json", DAILY)]).erroring_function(
        "emmaa-model-update",
        "Unhandled",
        r#"{"errorType": "EmmaaEventRefused", "errorMessage": "boom"}"#,
    );
    let outcome = run("update_pipeline", json!({}), effects).await;
    let error = outcome.error_message().unwrap();
    assert!(error.contains("failed in the function (Unhandled)"), "{error}");
    assert!(error.contains("boom"), "{error}");
}

#[tokio::test]
async fn update_pipeline_succeeds_with_nothing_to_do_in_an_empty_bucket() {
    let outcome = run("update_pipeline", json!({}), bucket(&[])).await;
    assert_eq!(outcome.response(), Some(&success()));
    assert_eq!(actions(&outcome), json!([list_models()]));
}

#[tokio::test]
async fn update_pipeline_fails_when_the_listing_fails() {
    let denied = AwsError::new(ErrorKind::Denied, "AccessDenied", "Access Denied");
    let effects = bucket(&[("models/aml/config.json", DAILY)]).failing_key("models/", denied);
    let outcome = run("update_pipeline", json!({}), effects).await;
    assert_eq!(
        outcome.error_message().as_deref(),
        Some("listing the models in s3://emmaa/models/ failed: AccessDenied: Access Denied")
    );
    assert_eq!(actions(&outcome), json!([list_models()]));
}

#[tokio::test]
async fn fan_out_uses_the_configured_prefix_bucket_and_invocation_type() {
    let effects = bucket(&[("models/aml/config.json", DAILY)]);
    let settings = settings(&[
        ("EMMAA_FUNCTION_PREFIX", "dev-"),
        ("EMMAA_INVOCATION_TYPE", "Event"),
        ("EMMAA_BUCKET", "emmaa-dev"),
    ]);
    let outcome = run_with("update_pipeline", json!({}), effects, settings).await;
    assert_eq!(outcome.response(), Some(&success()));
    assert_eq!(
        actions(&outcome),
        json!([
            {"op": "s3.list", "bucket": "emmaa-dev", "prefix": "models/", "delimiter": "/"},
            {"op": "s3.get", "bucket": "emmaa-dev", "key": "models/aml/config.json"},
            {"op": "lambda.invoke", "function_name": "dev-model-update", "invocation_type": "Event", "payload": {"model": "aml"}}
        ])
    );
}

// ---- test_update_pipeline -----------------------------------------------

#[tokio::test]
async fn test_update_pipeline_invokes_test_update_for_models_that_make_tests() {
    let effects = bucket(&[
        ("models/aml/config.json", DAILY),
        ("models/covid19/config.json", MAKES_TESTS),
        ("models/marm_model/config.json", MAKES_TESTS),
        ("models/rasmodel/config.json", IDLE),
    ]);
    let outcome = run(
        "test_update_pipeline",
        json!({"detail-type": "Scheduled Event"}),
        effects,
    )
    .await;
    assert_eq!(outcome.response(), Some(&success()));
    assert_eq!(
        actions(&outcome),
        json!([
            list_models(),
            get("models/aml/config.json"),
            get("models/covid19/config.json"),
            get("models/marm_model/config.json"),
            get("models/rasmodel/config.json"),
            invoke("emmaa-test-update", json!({"model": "covid19"})),
            invoke("emmaa-test-update", json!({"model": "marm_model"})),
        ])
    );
}

// ---- after_update -------------------------------------------------------

#[tokio::test]
async fn after_update_invokes_stats_tests_queries_then_test_update_for_models_that_make_tests() {
    let effects = || bucket(&[("models/covid19/config.json", MAKES_TESTS)]);
    let event = s3_event(&["results/covid19/model_manager_2020-02-04-12-30-00.pkl"]);
    for (language, outcome) in support::run_each_build("after_update", event, effects).await {
        assert_eq!(outcome.response(), Some(&success()), "{language}");
        let model = json!({"model": "covid19"});
        assert_eq!(
            actions(&outcome),
            json!([
                invoke("emmaa-model-stats", model.clone()),
                invoke("emmaa-test-pipeline", model.clone()),
                invoke("emmaa-queries", model.clone()),
                get("models/covid19/config.json"),
                invoke("emmaa-test-update", model),
            ]),
            "{language}"
        );
    }
}

#[tokio::test]
async fn after_update_still_invokes_the_three_when_the_config_cannot_be_read() {
    let event = s3_event(&["results/aml/model_manager_2020-02-04-12-30-00.pkl"]);
    for (language, outcome) in support::run_each_build("after_update", event, || bucket(&[])).await {
        assert_eq!(outcome.status_code(), Some(207), "{language}");
        assert_eq!(outcome.actions.len(), 4, "{language}");
        let refused = refused(&outcome);
        assert_eq!(refused.len(), 1, "{language}");
        assert_eq!(refused[0].0, "aml", "{language}");
        assert!(
            refused[0].1.contains("models/aml/config.json failed: NoSuchKey"),
            "{language}: {}",
            refused[0].1
        );
    }
}

#[tokio::test]
async fn after_update_refuses_a_bad_record_and_handles_the_good_one() {
    let effects = || bucket(&[("models/aml/config.json", DAILY)]);
    let event = s3_event(&[
        "results/aml/model_manager_2020-02-04-12-30-00.pkl",
        "results/aml/results_2020-02-04-12-30-00.json",
    ]);
    for (language, outcome) in support::run_each_build("after_update", event, effects).await {
        assert_eq!(outcome.status_code(), Some(207), "{language}");
        assert_eq!(
            refused(&outcome),
            [(
                "results/aml/results_2020-02-04-12-30-00.json".to_owned(),
                "Records[1].s3.object.key \"results/aml/results_2020-02-04-12-30-00.json\" does not have the layout results/{model}/model_manager_{date}.pkl".to_owned()
            )],
            "{language}"
        );
        assert_eq!(outcome.actions.len(), 4, "{language}");
    }
}

// ---- test_pipeline ------------------------------------------------------

async fn test_pipeline_with_config(config: &str) -> emmaa_runtime::GuestRun {
    let effects = bucket(&[("models/covid19/config.json", config)]);
    run("test_pipeline", json!({"model": "covid19"}), effects).await
}

fn model_test(corpus: &str) -> Value {
    invoke("emmaa-model-test", json!({"model": "covid19", "tests": corpus}))
}

#[tokio::test]
async fn test_pipeline_invokes_a_model_test_per_corpus() {
    let outcome = test_pipeline_with_config(
        r#"{"test": {"test_corpus": ["large_corpus_tests", "covid19_curated_tests"]}}"#,
    )
    .await;
    assert_eq!(outcome.response(), Some(&success()));
    assert_eq!(
        actions(&outcome),
        json!([
            get("models/covid19/config.json"),
            model_test("large_corpus_tests"),
            model_test("covid19_curated_tests")
        ])
    );
}

#[tokio::test]
async fn test_pipeline_defaults_to_large_corpus_tests_and_accepts_a_single_string() {
    let outcome = test_pipeline_with_config("{}").await;
    assert_eq!(actions(&outcome)[1], model_test("large_corpus_tests"));
    let outcome = test_pipeline_with_config(r#"{"test": {"test_corpus": "covid19_mitre_tests"}}"#).await;
    assert_eq!(actions(&outcome)[1], model_test("covid19_mitre_tests"));
}

#[tokio::test]
async fn test_pipeline_runs_no_test_for_an_empty_corpus_list() {
    let outcome = test_pipeline_with_config(r#"{"test": {"test_corpus": []}}"#).await;
    assert_eq!(outcome.response(), Some(&success()));
    assert_eq!(actions(&outcome), json!([get("models/covid19/config.json")]));
}

#[tokio::test]
async fn test_pipeline_refuses_bad_corpora_and_tests_the_rest() {
    let outcome = test_pipeline_with_config(r#"{"test": {"test_corpus": ["good", "rm -rf", 3]}}"#).await;
    assert_eq!(outcome.status_code(), Some(207));
    assert_eq!(
        actions(&outcome),
        json!([get("models/covid19/config.json"), model_test("good")])
    );
    let refused = refused(&outcome);
    assert_eq!(refused[0].0, "rm -rf");
    assert!(
        refused[0]
            .1
            .starts_with("models/covid19/config.json test.test_corpus[1] \"rm -rf\"")
    );
    assert_eq!(
        refused[1].1,
        "models/covid19/config.json test.test_corpus[2] must be a string, got 3"
    );
}

#[tokio::test]
async fn test_pipeline_fails_without_a_config_or_with_a_corpus_of_the_wrong_type() {
    let outcome = run("test_pipeline", json!({"model": "covid19"}), bucket(&[])).await;
    assert!(
        outcome
            .error_message()
            .unwrap()
            .contains("models/covid19/config.json failed: NoSuchKey")
    );
    let outcome = test_pipeline_with_config(r#"{"test": {"test_corpus": {"a": 1}}}"#).await;
    assert_eq!(
        outcome.error_message().unwrap(),
        "models/covid19/config.json test.test_corpus must be a string or a list of strings, got {\"a\":1}"
    );
}

#[tokio::test]
async fn test_pipeline_refuses_a_bad_model_before_reading_anything() {
    let outcome = run("test_pipeline", json!({"model": "../etc"}), bucket(&[])).await;
    assert!(
        outcome
            .error_message()
            .unwrap()
            .starts_with("model \"../etc\" is not a valid model name")
    );
    assert!(outcome.actions.is_empty());
}
