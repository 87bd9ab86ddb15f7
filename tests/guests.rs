//! Every guest, run by the host against the in-memory backend: the exact
//! actions each handler asks for under every rule of the handler contract,
//! the three kinds of answer, and the sandbox a guest runs in.

#[path = "support/guests.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use emmaa_runtime::Effects;
use emmaa_runtime::effects::local::{LocalBucket, LocalEffects, LocalLedger};
use emmaa_runtime::effects::{AwsError, Condition, ErrorKind, Invocation, InvocationOutcome, Job};
use emmaa_runtime::{Answer, Failure};
use serde_json::{Value, json};
use support::{STAMP, actions, bucket, command, run, run_as, run_in_time, run_with, s3_event, settings};

const DAILY: &str = r#"{"run_daily_update": true}"#;
const OLD_DAILY: &str = r#"{"run_model_update": true}"#;
const DAILY_TESTS: &str = r#"{"run_daily_update": false, "run_daily_tests": true}"#;
const MAKES_TESTS: &str = r#"{"make_tests": true}"#;
const IDLE: &str = r#"{"run_daily_update": "true", "make_tests": "yes"}"#;

fn get(key: &str) -> Value {
    json!({"op": "s3.get", "bucket": "emmaa", "key": key})
}

fn list_models() -> Value {
    json!({"op": "s3.list", "bucket": "emmaa", "prefix": "models/", "delimiter": "/"})
}

fn invoke(function: &str, payload: Value) -> Value {
    json!({"op": "lambda.invoke", "function_name": function, "invocation_type": "RequestResponse", "payload": payload})
}

fn submit(job_name: &str, purpose: &str, script: &str) -> Value {
    json!({
        "op": "batch.submit",
        "job_name": job_name,
        "job_queue": "emmaa-models-update-test",
        "job_definition": "emmaa_jobdef",
        "command": command(purpose, script),
        "depends_on": []
    })
}

fn refused(outcome: &emmaa_runtime::GuestRun) -> Vec<(String, String)> {
    let refused = outcome
        .response()
        .and_then(|r| r.get("refused"))
        .cloned()
        .unwrap_or(json!([]));
    refused
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["item"].as_str().unwrap().to_owned(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn success() -> Value {
    json!({"statusCode": 200, "result": "SUCCESS"})
}

fn job_success(job_ids: &[&str]) -> Value {
    json!({"statusCode": 200, "result": "SUCCESS", "job_id": job_ids.last().unwrap(), "job_ids": job_ids})
}

// ---- update_pipeline ----------------------------------------------------

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
    let effects = bucket(&[("models/covid19/config.json", MAKES_TESTS)]);
    let event = s3_event(&["results/covid19/model_manager_2020-02-04-12-30-00.pkl"]);
    let outcome = run("after_update", event, effects).await;
    assert_eq!(outcome.response(), Some(&success()));
    let model = json!({"model": "covid19"});
    assert_eq!(
        actions(&outcome),
        json!([
            invoke("emmaa-model-stats", model.clone()),
            invoke("emmaa-test-pipeline", model.clone()),
            invoke("emmaa-queries", model.clone()),
            get("models/covid19/config.json"),
            invoke("emmaa-test-update", model),
        ])
    );
}

#[tokio::test]
async fn after_update_still_invokes_the_three_when_the_config_cannot_be_read() {
    let event = s3_event(&["results/aml/model_manager_2020-02-04-12-30-00.pkl"]);
    let outcome = run("after_update", event, bucket(&[])).await;
    assert_eq!(outcome.status_code(), Some(207));
    assert_eq!(outcome.actions.len(), 4);
    let refused = refused(&outcome);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, "aml");
    assert!(
        refused[0].1.contains("models/aml/config.json failed: NoSuchKey"),
        "{}",
        refused[0].1
    );
}

#[tokio::test]
async fn after_update_refuses_a_bad_record_and_handles_the_good_one() {
    let effects = bucket(&[("models/aml/config.json", DAILY)]);
    let event = s3_event(&[
        "results/aml/model_manager_2020-02-04-12-30-00.pkl",
        "results/aml/results_2020-02-04-12-30-00.json",
    ]);
    let outcome = run("after_update", event, effects).await;
    assert_eq!(outcome.status_code(), Some(207));
    assert_eq!(
        refused(&outcome),
        [(
            "results/aml/results_2020-02-04-12-30-00.json".to_owned(),
            "Records[1].s3.object.key \"results/aml/results_2020-02-04-12-30-00.json\" does not have the layout results/{model}/model_manager_{date}.pkl".to_owned()
        )]
    );
    assert_eq!(outcome.actions.len(), 4);
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

// ---- the Batch handlers -------------------------------------------------

#[tokio::test]
async fn model_updates_submits_the_update_job() {
    let outcome = run("model_updates", json!({"model": "aml"}), bucket(&[])).await;
    let job_name = format!("aml_update_{STAMP}");
    assert_eq!(
        outcome.response().cloned(),
        Some(job_success(&[&format!("local-{job_name}")]))
    );
    assert_eq!(
        actions(&outcome),
        json!([submit(
            &job_name,
            "update-emmaa-models",
            "python scripts/run_model_update.py --model aml"
        )])
    );
}

#[tokio::test]
async fn model_stats_queries_and_test_update_submit_their_jobs() {
    let cases = [
        (
            "model_stats",
            "model_stats",
            "update-emmaa-model-stats",
            "python scripts/run_model_stats_from_s3.py --model aml --stats_mode model",
        ),
        (
            "model_queries",
            "queries",
            "update-emmaa-queries",
            "python scripts/answer_queries_from_s3.py --model aml",
        ),
        (
            "test_update",
            "test_update",
            "update-emmaa-tests",
            "python scripts/model_to_tests.py --model aml",
        ),
    ];
    for (guest, name, purpose, script) in cases {
        let outcome = run(guest, json!({"model": "aml"}), bucket(&[])).await;
        assert_eq!(outcome.status_code(), Some(200), "{guest}");
        assert_eq!(
            actions(&outcome),
            json!([submit(&format!("aml_{name}_{STAMP}"), purpose, script)]),
            "{guest}"
        );
    }
}

#[tokio::test]
async fn model_tests_submits_the_test_job_for_the_corpus() {
    let outcome = run(
        "model_tests",
        json!({"model": "covid19", "tests": "covid19_curated_tests"}),
        bucket(&[]),
    )
    .await;
    assert_eq!(
        actions(&outcome),
        json!([submit(
            &format!("covid19_covid19_curated_tests_tests_{STAMP}"),
            "update-emmaa-results",
            "python scripts/run_model_tests_from_s3.py --model covid19 --tests covid19_curated_tests"
        )])
    );
}

#[tokio::test]
async fn model_tests_refuses_bad_model_and_corpus_naming_both() {
    let outcome = run(
        "model_tests",
        json!({"model": "a b", "tests": "$(reboot)"}),
        bucket(&[]),
    )
    .await;
    let error = outcome.error_message().unwrap();
    assert!(
        error.contains("model \"a b\" is not a valid model name"),
        "{error}"
    );
    assert!(
        error.contains("tests \"$(reboot)\" is not a valid test corpus name"),
        "{error}"
    );
    assert!(outcome.actions.is_empty());
    let outcome = run("model_tests", json!({"model": "aml"}), bucket(&[])).await;
    assert!(
        outcome
            .error_message()
            .unwrap()
            .starts_with("the event has no \"tests\" field")
    );
}

#[tokio::test]
async fn batch_handlers_refuse_a_bad_model_event_naming_field_and_value() {
    for guest in ["model_updates", "model_stats", "model_queries", "test_update"] {
        let outcome = run(guest, json!({"model": "aml; curl evil | sh"}), bucket(&[])).await;
        assert_eq!(outcome.response(), None);
        assert_eq!(
            outcome.error_message().as_deref(),
            Some(
                "model \"aml; curl evil | sh\" is not a valid model name: it must match ^[A-Za-z0-9][A-Za-z0-9_-]*$"
            ),
            "{guest}"
        );
        assert!(outcome.actions.is_empty(), "{guest}");
        let outcome = run(guest, json!({"model": 42}), bucket(&[])).await;
        assert_eq!(
            outcome.error_message().as_deref(),
            Some("model must be a string, got 42"),
            "{guest}"
        );
    }
}

#[tokio::test]
async fn large_models_get_the_large_queue_and_definition() {
    let settings = settings(&[("EMMAA_LARGE_MODELS", "covid19, aml")]);
    let outcome = run_with("model_updates", json!({"model": "aml"}), bucket(&[]), settings).await;
    let submitted = &actions(&outcome)[0];
    assert_eq!(submitted["job_queue"], "emmaa-after-update");
    assert_eq!(submitted["job_definition"], "emmaa_testing_jobs_def");
}

#[tokio::test]
async fn an_empty_branch_drops_the_branch_option() {
    let settings = settings(&[("EMMAA_BRANCH", ""), ("EMMAA_PROJECT", "emmaa")]);
    let outcome = run_with("model_queries", json!({"model": "aml"}), bucket(&[]), settings).await;
    assert_eq!(
        actions(&outcome)[0]["command"],
        json!([
            "python",
            "-m",
            "indra.util.aws",
            "run_in_batch",
            "--project",
            "emmaa",
            "--purpose",
            "update-emmaa-queries",
            "bash scripts/git_and_run.sh python scripts/answer_queries_from_s3.py --model aml"
        ])
    );
}

#[tokio::test]
async fn a_job_name_longer_than_batch_allows_is_refused() {
    // `{model}_update_{STAMP}` adds 23 characters to the model name.
    let longest = "m".repeat(105);
    let outcome = run("model_updates", json!({ "model": longest }), bucket(&[])).await;
    assert_eq!(actions(&outcome)[0]["job_name"].as_str().map(str::len), Some(128));
    let too_long = "m".repeat(106);
    let outcome = run("model_updates", json!({ "model": too_long }), bucket(&[])).await;
    let error = outcome.error_message().unwrap();
    assert!(
        error.contains("is 129 characters long; AWS Batch allows at most 128"),
        "{error}"
    );
    assert!(outcome.actions.is_empty());
}

#[tokio::test]
async fn a_refused_submission_is_reported_with_the_queue_and_aws_reason() {
    let effects = bucket(&[]).failing_queue(
        "emmaa-models-update-test",
        AwsError::new(
            ErrorKind::Rejected,
            "ClientException",
            "Job Queue emmaa-models-update-test does not exist",
        ),
    );
    let outcome = run("model_updates", json!({"model": "aml"}), effects).await;
    assert_eq!(
        outcome.error_message().unwrap(),
        format!(
            "submitting job \"aml_update_{STAMP}\" to queue \"emmaa-models-update-test\" failed: \
             ClientException: Job Queue emmaa-models-update-test does not exist"
        )
    );
}

#[tokio::test]
async fn model_manager_update_submits_one_job_per_record() {
    let event = s3_event(&[
        "models/aml/model_2020-02-04-12-00-00.pkl",
        "models/brca/model_2020-02-04-12-00-01.pkl",
    ]);
    let outcome = run("model_manager_update", event, bucket(&[])).await;
    let ids = [
        format!("local-aml_mm_update_{STAMP}"),
        format!("local-brca_mm_update_{STAMP}"),
    ];
    assert_eq!(
        outcome.response().cloned(),
        Some(job_success(&[&ids[0], &ids[1]]))
    );
    assert_eq!(
        actions(&outcome),
        json!([
            submit(
                &format!("aml_mm_update_{STAMP}"),
                "update-emmaa-model-manager",
                "python scripts/update_model_manager.py --model aml"
            ),
            submit(
                &format!("brca_mm_update_{STAMP}"),
                "update-emmaa-model-manager",
                "python scripts/update_model_manager.py --model brca"
            ),
        ])
    );
}

#[tokio::test]
async fn model_manager_update_keeps_the_good_records_of_an_event_with_bad_ones() {
    let event = json!({"Records": [
        {"s3": {"object": {"key": "models/a%3Bb/model_2020-02-04-12-00-00.pkl"}}},
        {"s3": {"object": {"key": "models/aml/model_2020-02-04-12-00-00.pkl"}}},
        {"s3": {"bucket": {"name": "emmaa"}}},
        {"s3": {"object": {"key": "models/aml/config.json"}}},
        {"s3": {"object": {"key": "models/my+model/model.pkl"}}},
    ]});
    let outcome = run("model_manager_update", event, bucket(&[])).await;
    assert_eq!(outcome.status_code(), Some(207));
    assert_eq!(outcome.actions.len(), 1);
    assert_eq!(actions(&outcome)[0]["job_name"], format!("aml_mm_update_{STAMP}"));
    let reasons: Vec<String> = refused(&outcome).into_iter().map(|(_, reason)| reason).collect();
    assert_eq!(reasons.len(), 4);
    assert!(
        reasons[0].starts_with(
            "the model in Records[0].s3.object.key \"models/a;b/model_2020-02-04-12-00-00.pkl\" \"a;b\""
        ),
        "{}",
        reasons[0]
    );
    assert_eq!(reasons[1], "Records[2].s3.object.key is missing");
    assert!(
        reasons[2].contains("does not have the layout models/{model}/{file}.pkl"),
        "{}",
        reasons[2]
    );
    assert!(
        reasons[3].contains("\"my model\" is not a valid model name"),
        "{}",
        reasons[3]
    );
    assert_eq!(
        outcome.response().unwrap()["job_ids"],
        json!([format!("local-aml_mm_update_{STAMP}")])
    );
}

#[tokio::test]
async fn model_manager_update_decodes_keys_before_validating() {
    let event = s3_event(&["models/marm%5Fmodel/model_2020-01-01-00-00-00.pkl"]);
    let outcome = run("model_manager_update", event, bucket(&[])).await;
    assert_eq!(
        actions(&outcome)[0]["job_name"],
        format!("marm_model_mm_update_{STAMP}")
    );
}

#[tokio::test]
async fn s3_handlers_fail_on_an_event_without_records() {
    for guest in ["model_manager_update", "after_update", "test_stats"] {
        let outcome = run(guest, json!({"model": "aml"}), bucket(&[])).await;
        assert!(
            outcome
                .error_message()
                .unwrap()
                .starts_with("the event has no \"Records\" list"),
            "{guest}"
        );
        assert!(outcome.actions.is_empty());
    }
}

#[tokio::test]
async fn test_stats_reads_the_corpus_from_the_results_key() {
    let event = s3_event(&[
        "results/covid19/results_covid19_curated_tests_2020-02-04-14-00-00.json",
        "results/aml/results_2020-02-04-14-00-00.json",
    ]);
    let outcome = run("test_stats", event, bucket(&[])).await;
    assert_eq!(outcome.status_code(), Some(200));
    assert_eq!(
        actions(&outcome),
        json!([
            submit(
                &format!("covid19_covid19_curated_tests_stats_{STAMP}"),
                "update-emmaa-test-stats",
                "python scripts/run_model_stats_from_s3.py --model covid19 --stats_mode tests --tests covid19_curated_tests"
            ),
            submit(
                &format!("aml_large_corpus_tests_stats_{STAMP}"),
                "update-emmaa-test-stats",
                "python scripts/run_model_stats_from_s3.py --model aml --stats_mode tests --tests large_corpus_tests"
            ),
        ])
    );
}

#[tokio::test]
async fn test_stats_refuses_a_corpus_that_is_not_a_valid_name() {
    let event = s3_event(&["results/aml/results_x%26y_2020-02-04-14-00-00.json"]);
    let outcome = run("test_stats", event, bucket(&[])).await;
    let error = outcome.error_message().unwrap();
    assert!(
        error.contains("\"x&y\" is not a valid test corpus name"),
        "{error}"
    );
    assert!(outcome.actions.is_empty());
}

// ---- the sandbox --------------------------------------------------------

#[tokio::test]
async fn a_guest_cannot_reach_files_environment_network_clocks_or_stdout() {
    for (target, reached) in [
        ("files", "files"),
        ("environment", "environment variables or arguments"),
        ("arguments", "environment variables or arguments"),
        ("clock", "a clock"),
        ("monotonic-clock", "a clock"),
        ("network", "the network"),
        ("stdout", "standard input or output"),
    ] {
        let outcome = run("sandbox_probe", json!({ "reach": target }), bucket(&[])).await;
        assert_eq!(
            outcome.answer,
            Answer::Failed(Failure::OutsideContract(reached)),
            "{target}"
        );
        let message = outcome.error_message().unwrap();
        assert!(!message.contains("wasi:"), "{target}: {message}");
    }
}

#[tokio::test]
async fn a_guest_that_runs_away_is_stopped_when_its_fuel_runs_out() {
    let outcome = run("sandbox_probe", json!({"reach": "spin"}), bucket(&[])).await;
    assert_eq!(outcome.answer, Answer::Failed(Failure::OutOfFuel));
    assert_eq!(outcome.fuel_used, emmaa_runtime::limits::FUEL_PER_EVENT);
}

#[tokio::test]
async fn a_guest_cannot_grow_its_memory_past_the_limit() {
    let outcome = run("sandbox_probe", json!({"reach": "memory"}), bucket(&[])).await;
    let Answer::Failed(Failure::OutOfMemory { asked }) = outcome.answer else {
        panic!("not stopped for memory: {:?}", outcome.answer);
    };
    assert!(asked > emmaa_runtime::limits::MAX_GUEST_MEMORY, "{asked}");
    assert!(
        outcome
            .error_message()
            .unwrap()
            .starts_with("the guest used all of its 256 MiB of memory")
    );
}

#[tokio::test]
async fn a_guest_gets_the_same_hash_seed_every_time() {
    let first = run("sandbox_probe", json!({"reach": "hash-seed"}), bucket(&[])).await;
    let second = run("sandbox_probe", json!({"reach": "hash-seed"}), bucket(&[])).await;
    let seed = first.response().unwrap()["reached"].clone();
    assert!(seed.is_string());
    assert_eq!(second.response().unwrap()["reached"], seed);
}

#[tokio::test]
async fn the_same_event_gives_the_same_actions_and_answer() {
    let effects = || {
        bucket(&[
            ("models/aml/config.json", DAILY),
            ("models/brca/config.json", DAILY_TESTS),
        ])
    };
    let first = run("update_pipeline", json!({}), effects()).await;
    let second = run("update_pipeline", json!({}), effects()).await;
    assert_eq!(first, second);
}

// ---- bounded concurrency ------------------------------------------------

/// Effects whose invocations and submissions take `delay_of(item)` each,
/// counting how many overlap; invocations of `failing` models fail, and
/// with `ledger_denied` every ledger write is refused (a role that
/// predates the ledger).
struct Slow {
    inner: emmaa_runtime::effects::local::LocalEffects,
    delay_of: fn(&str) -> Duration,
    failing: &'static [&'static str],
    ledger_denied: bool,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

impl Slow {
    fn new(inner: emmaa_runtime::effects::local::LocalEffects, delay_of: fn(&str) -> Duration) -> Self {
        Slow {
            inner,
            delay_of,
            failing: &[],
            ledger_denied: false,
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
        }
    }

    async fn take_time(&self, item: &str) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep((self.delay_of)(item)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl emmaa_runtime::Effects for Slow {
    async fn list_prefixes(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: &str,
    ) -> Result<Vec<String>, AwsError> {
        self.inner.list_prefixes(bucket, prefix, delimiter).await
    }

    async fn get_object(&self, bucket: &str, key: &str, max_size: u64) -> Result<Vec<u8>, AwsError> {
        self.inner.get_object(bucket, key, max_size).await
    }

    async fn invoke(&self, invocation: &Invocation) -> Result<InvocationOutcome, AwsError> {
        self.take_time(&invocation.payload).await;
        if self
            .failing
            .iter()
            .any(|model| invocation.payload.contains(model))
        {
            return Err(AwsError::new(
                ErrorKind::Rejected,
                "Refused",
                "refused by the test",
            ));
        }
        self.inner.invoke(invocation).await
    }

    async fn submit_job(&self, job: &Job) -> Result<String, AwsError> {
        self.take_time(&job.name).await;
        self.inner.submit_job(job).await
    }

    async fn get_object_tagged(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, String)>, AwsError> {
        self.inner.get_object_tagged(bucket, key).await
    }

    async fn put_object_if(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        condition: emmaa_runtime::effects::Condition,
    ) -> Result<String, AwsError> {
        if self.ledger_denied {
            return Err(AwsError::new(ErrorKind::Denied, "AccessDenied", "Access Denied"));
        }
        self.inner.put_object_if(bucket, key, body, condition).await
    }

    async fn delete_object_if(&self, bucket: &str, key: &str, etag: &str) -> Result<(), AwsError> {
        self.inner.delete_object_if(bucket, key, etag).await
    }

    async fn find_jobs(&self, queue: &str, job_name: &str) -> Result<Vec<String>, AwsError> {
        self.inner.find_jobs(queue, job_name).await
    }
}

fn forty_daily_models() -> emmaa_runtime::effects::local::LocalEffects {
    let configs: Vec<(String, &str)> = (0..40)
        .map(|n| (format!("models/m{n:02}/config.json"), DAILY))
        .collect();
    let configs: Vec<(&str, &str)> = configs
        .iter()
        .map(|(key, config)| (key.as_str(), *config))
        .collect();
    bucket(&configs)
}

/// Later models answer sooner: m00 takes 40 ms, m39 takes 1 ms.
fn later_is_sooner(payload: &str) -> Duration {
    let n: u64 = payload
        .split(|c: char| !c.is_ascii_digit())
        .find(|digits| !digits.is_empty())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0);
    Duration::from_millis(40 - n.min(39))
}

async fn update_forty_models(effects: Slow, max_in_flight: &str) -> (usize, emmaa_runtime::GuestRun) {
    let effects = Arc::new(effects);
    let settings = settings(&[("EMMAA_MAX_IN_FLIGHT", max_in_flight)]);
    let outcome = run_in_time(
        "update_pipeline",
        "{}",
        effects.clone(),
        settings,
        Duration::from_secs(60),
    )
    .await;
    (effects.most_in_flight.load(Ordering::SeqCst), outcome)
}

#[tokio::test]
async fn the_host_keeps_at_most_max_in_flight_calls_going_and_the_order_of_the_batch() {
    let (most, outcome) = update_forty_models(Slow::new(forty_daily_models(), later_is_sooner), "4").await;
    assert_eq!(most, 4);
    let invoked: Vec<Value> = actions(&outcome).as_array().unwrap()[41..].to_vec();
    let expected: Vec<Value> = (0..40)
        .map(|n| invoke("emmaa-model-update", json!({"model": format!("m{n:02}")})))
        .collect();
    assert_eq!(invoked, expected);
    let (most, _) = update_forty_models(Slow::new(forty_daily_models(), later_is_sooner), "1").await;
    assert_eq!(most, 1);
}

#[tokio::test]
async fn each_answer_of_a_concurrent_batch_goes_back_to_the_call_that_got_it() {
    // Calls finish in the reverse of their order: an answer matched to the
    // wrong call would blame the wrong models.
    let mut effects = Slow::new(forty_daily_models(), later_is_sooner);
    effects.failing = &["m03", "m37"];
    let (_, outcome) = update_forty_models(effects, "16").await;
    assert_eq!(
        refused(&outcome)
            .into_iter()
            .map(|(item, _)| item)
            .collect::<Vec<_>>(),
        ["m03", "m37"]
    );
}

// ---- hardening: hostile input, limits, nothing lost ---------------------

#[tokio::test]
async fn an_oversized_config_is_refused_for_its_model_alone() {
    let huge = format!(
        r#"{{"run_daily_update": true, "notes": "{}"}}"#,
        "x".repeat(2 << 20)
    );
    let outcome = run(
        "update_pipeline",
        json!({}),
        bucket(&[
            ("models/aml/config.json", DAILY),
            ("models/big/config.json", &huge),
            ("models/brca/config.json", DAILY),
        ]),
    )
    .await;
    assert_eq!(outcome.status_code(), Some(207));
    let refused = refused(&outcome);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, "big");
    assert!(refused[0].1.contains("TooLarge"), "{}", refused[0].1);
    assert!(refused[0].1.contains("it was not read"), "{}", refused[0].1);
    let invoked: Vec<Value> = actions(&outcome).as_array().unwrap()[4..].to_vec();
    assert_eq!(
        invoked,
        [
            invoke("emmaa-model-update", json!({"model": "aml"})),
            invoke("emmaa-model-update", json!({"model": "brca"}))
        ]
    );
}

#[tokio::test]
async fn update_pipeline_over_100000_models_stays_within_fuel_and_memory() {
    let keys: Vec<String> = (0..100_000)
        .map(|n| format!("models/model{n:06}/config.json"))
        .collect();
    let objects: Vec<(&str, &str)> = keys.iter().map(|key| (key.as_str(), DAILY)).collect();
    let outcome = run("update_pipeline", json!({}), bucket(&objects)).await;
    assert_eq!(outcome.response(), Some(&success()));
    assert_eq!(outcome.actions.len(), 1 + 2 * 100_000);
    assert!(
        outcome.fuel_used * 2 < emmaa_runtime::limits::FUEL_PER_EVENT,
        "{}",
        outcome.fuel_used
    );
}

#[tokio::test]
async fn an_event_of_60000_records_gets_every_job_and_an_answer_lambda_can_return() {
    let keys: Vec<String> = (0..60_000)
        .map(|n| format!("models/m{n}/model_2020-02-04-12-00-00.pkl"))
        .collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let event = s3_event(&keys);
    let outcome = run("model_manager_update", event, bucket(&[])).await;
    assert_eq!(outcome.status_code(), Some(200), "{:?}", outcome.error_message());
    assert_eq!(outcome.actions.len(), 60_000);
    let response = outcome.response().unwrap();
    assert_eq!(response["job_ids"].as_array().unwrap().len(), 10_000);
    assert_eq!(response["job_ids_not_listed"], 50_000);
    assert_eq!(response["job_id"], "local-m59999_mm_update_20200204_120000");
    assert!(response.to_string().len() < 6 << 20);
    assert!(
        outcome.fuel_used * 2 < emmaa_runtime::limits::FUEL_PER_EVENT,
        "{}",
        outcome.fuel_used
    );
}

#[tokio::test]
async fn thousands_of_refusals_are_counted_past_the_first_two_hundred() {
    let mut keys: Vec<String> = (0..5_000).map(|n| format!("models/m{n}/config.json")).collect();
    keys.push("models/aml/model_2020-02-04-12-00-00.pkl".into());
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let outcome = run("model_manager_update", s3_event(&keys), bucket(&[])).await;
    let response = outcome.response().unwrap();
    assert_eq!(response["statusCode"], 207);
    assert_eq!(response["refused"].as_array().unwrap().len(), 200);
    assert_eq!(response["refused_not_listed"], 4_800);
}

#[tokio::test]
async fn an_event_over_lambdas_limit_is_refused_before_the_guest_sees_it() {
    let event = format!(r#"{{"model": "{}"}}"#, "a".repeat(7_000_000));
    let outcome = run_in_time(
        "model_updates",
        &event,
        Arc::new(bucket(&[])),
        settings(&[]),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        outcome.answer,
        Answer::Failed(Failure::EventTooLarge { size: event.len() })
    );
    assert!(outcome.actions.is_empty());
    assert_eq!(outcome.fuel_used, 0);
}

#[tokio::test]
async fn a_refusal_quotes_a_huge_value_cut() {
    let name = "a;".repeat(2_500_000);
    let outcome = run("model_updates", json!({ "model": name }), bucket(&[])).await;
    let message = outcome.error_message().unwrap();
    assert!(message.len() < 1_000, "{}", message.len());
    assert!(message.starts_with("model \"a;a;"), "{message}");
    assert!(message.contains("(4999800 more characters)"), "{message}");
}

#[tokio::test]
async fn a_guest_that_runs_out_of_fuel_after_a_job_went_through_answers_207_naming_the_job() {
    let outcome = run("sandbox_probe", json!({"reach": "submit-then-spin"}), bucket(&[])).await;
    let Answer::Salvaged { response, failure } = &outcome.answer else {
        panic!("not salvaged: {:?}", outcome.answer);
    };
    assert_eq!(failure, &Failure::OutOfFuel);
    assert_eq!(response["statusCode"], 207);
    assert_eq!(
        response["job_ids"],
        json!([format!("local-probe_update_{STAMP}")])
    );
    assert_eq!(response["interrupted"]["kind"], "out-of-fuel");
}

#[tokio::test]
async fn a_guest_that_panics_after_a_job_went_through_answers_207_with_its_message() {
    let outcome = run(
        "sandbox_probe",
        json!({"reach": "submit-then-panic"}),
        bucket(&[]),
    )
    .await;
    let Answer::Salvaged { response, failure } = &outcome.answer else {
        panic!("not salvaged: {:?}", outcome.answer);
    };
    assert_eq!(failure.kind(), "trapped");
    let reason = response["refused"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("deliberately, after a job went through"),
        "{reason}"
    );
    assert!(!reason.contains("wasm backtrace"), "{reason}");
}

#[tokio::test]
async fn a_guest_is_interrupted_before_the_deadline() {
    let started = std::time::Instant::now();
    let outcome = run_in_time(
        "sandbox_probe",
        r#"{"reach": "spin"}"#,
        Arc::new(bucket(&[])),
        settings(&[]),
        emmaa_runtime::limits::DEADLINE_MARGIN + Duration::from_millis(200),
    )
    .await;
    assert_eq!(outcome.answer, Answer::Failed(Failure::Deadline));
    assert!(outcome.fuel_used < emmaa_runtime::limits::FUEL_PER_EVENT);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn calls_that_no_longer_fit_before_the_deadline_are_reported_not_attempted() {
    let keys: Vec<String> = (0..10)
        .map(|n| format!("models/m{n}/model_2020-02-04-12-00-00.pkl"))
        .collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let effects = Arc::new(Slow::new(bucket(&[]), |_| Duration::from_millis(300)));
    // Calls start at 0, 300 and 600 ms; each needs CALL_RESERVE (500 ms)
    // before the interrupt point at 950 ms: two fit.
    let time_left = emmaa_runtime::limits::DEADLINE_MARGIN + Duration::from_millis(950);
    let outcome = run_in_time(
        "model_manager_update",
        &s3_event(&keys).to_string(),
        effects,
        settings(&[("EMMAA_MAX_IN_FLIGHT", "1")]),
        time_left,
    )
    .await;
    assert_eq!(outcome.status_code(), Some(207), "{:?}", outcome.error_message());
    let response = outcome.response().unwrap();
    assert_eq!(response["job_ids"].as_array().unwrap().len(), 2);
    let refused = refused(&outcome);
    assert_eq!(refused.len(), 8);
    assert!(
        refused.iter().all(|(_, reason)| reason.contains("NotAttempted")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn fan_out_refuses_a_model_whose_jobs_would_get_names_batch_refuses() {
    let long = "m".repeat(101);
    let key = format!("models/{long}/config.json");
    let outcome = run(
        "update_pipeline",
        json!({}),
        bucket(&[("models/aml/config.json", DAILY), (&key, DAILY)]),
    )
    .await;
    assert_eq!(outcome.status_code(), Some(207));
    let refused = refused(&outcome);
    assert_eq!(refused[0].0, long);
    assert!(
        refused[0].1.contains("is 129 characters long"),
        "{}",
        refused[0].1
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
async fn test_pipeline_refuses_a_corpus_whose_test_job_name_would_be_too_long() {
    let corpus = "c".repeat(60);
    let model = "m".repeat(60);
    let config = json!({"test": {"test_corpus": ["simple_tests", corpus]}}).to_string();
    let key = format!("models/{model}/config.json");
    let outcome = run(
        "test_pipeline",
        json!({ "model": model }),
        bucket(&[(&key, &config)]),
    )
    .await;
    assert_eq!(outcome.status_code(), Some(207));
    let refused = refused(&outcome);
    assert_eq!(refused.len(), 1);
    assert!(refused[0].1.contains("characters long"), "{}", refused[0].1);
    let invoked = actions(&outcome).as_array().unwrap()[1..].to_vec();
    assert_eq!(
        invoked,
        [invoke(
            "emmaa-model-test",
            json!({"model": model, "tests": "simple_tests"})
        )]
    );
}

#[tokio::test]
async fn update_pipeline_over_1205_models_stays_well_within_the_fuel_budget() {
    let keys: Vec<String> = (0..1_205)
        .map(|n| format!("models/model{n:04}/config.json"))
        .collect();
    let objects: Vec<(&str, &str)> = keys.iter().map(|key| (key.as_str(), DAILY)).collect();
    let outcome = run("update_pipeline", json!({}), bucket(&objects)).await;
    assert_eq!(outcome.response(), Some(&success()));
    assert!(
        outcome.fuel_used * 10 < emmaa_runtime::limits::FUEL_PER_EVENT,
        "{}",
        outcome.fuel_used
    );
}

// ---- properties: any event, any guest -----------------------------------

/// Events of the shapes the handlers take, with hostile values in them.
fn hostile_event() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let name = prop_oneof![
        "[A-Za-z0-9][A-Za-z0-9_-]{0,40}",
        "[a-z;|&$` %+/.-]{0,12}",
        ".{0,16}",
        "[a-z]{100,130}",
    ];
    let top = prop_oneof![
        Just("models".to_owned()),
        Just("results".to_owned()),
        "[a-z]{0,4}"
    ];
    let key = (top, name.clone(), ".{0,24}").prop_map(|(top, model, file)| format!("{top}/{model}/{file}"));
    prop_oneof![
        name.clone().prop_map(|model| json!({ "model": model })),
        (name.clone(), name).prop_map(|(model, tests)| json!({"model": model, "tests": tests})),
        prop::collection::vec(key, 0..5).prop_map(|keys| {
            let records: Vec<Value> = keys
                .iter()
                .map(|key| json!({"s3": {"object": {"key": key}}}))
                .collect();
            json!({ "Records": records })
        }),
        Just(json!([1, 2])),
        Just(json!("a string")),
    ]
}

fn is_safe(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks one guest's outcome on `event`: an answer or a refusal, never a
/// trap; refusals name a field; only safe names reach jobs and invocations.
fn check_outcome(guest: &str, event: &Value, outcome: &emmaa_runtime::GuestRun) -> Result<(), String> {
    let fields = [
        "Records",
        "detail.object.key",
        "model",
        "tests",
        "event",
        "config.json",
        "job name",
    ];
    let names_a_field = |reason: &str| fields.iter().any(|field| reason.contains(field));
    match &outcome.answer {
        Answer::Guest(response) => {
            for refusal in response["refused"].as_array().into_iter().flatten() {
                let reason = refusal["reason"].as_str().unwrap_or_default();
                if !names_a_field(reason) {
                    return Err(format!("{guest} {event}: refusal names no field: {reason}"));
                }
            }
        }
        Answer::Failed(Failure::Refused(reason)) if names_a_field(reason) => {}
        other => return Err(format!("{guest} {event}: {other:?}")),
    }
    for action in &outcome.actions {
        match action {
            emmaa_runtime::Action::BatchSubmit {
                job_name, command, ..
            } => {
                let script = command.last().cloned().unwrap_or_default();
                let words: Vec<&str> = script.split(' ').collect();
                let arguments = words
                    .windows(2)
                    .filter(|pair| pair[0] == "--model" || pair[0] == "--tests")
                    .map(|pair| pair[1]);
                if !is_safe(job_name) || job_name.len() > 128 || !arguments.clone().all(is_safe) {
                    return Err(format!("{guest} {event}: unsafe job {job_name:?} {script:?}"));
                }
            }
            emmaa_runtime::Action::LambdaInvoke { payload, .. } => {
                let model = payload["model"].as_str().unwrap_or("model");
                if !is_safe(model) {
                    return Err(format!("{guest} {event}: unsafe invocation {payload}"));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    #[test]
    fn any_event_to_any_handler_gets_an_answer_or_a_named_refusal_and_only_safe_names_go_out(
        event in hostile_event(),
        index in 0..emmaa_runtime::functions::FUNCTIONS.len(),
    ) {
        let guest = emmaa_runtime::functions::FUNCTIONS[index].guest;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let effects = || bucket(&[
            ("models/aml/config.json", r#"{"run_daily_update": true, "make_tests": true}"#),
            ("models/a-b/config.json", r#"{"test": {"test_corpus": ["x;y", "simple_tests"]}}"#),
        ]);
        let outcome = runtime.block_on(run(guest, event.clone(), effects()));
        if let Err(problem) = check_outcome(guest, &event, &outcome) {
            proptest::prop_assert!(false, "{}", problem);
        }
        let again = runtime.block_on(run(guest, event.clone(), effects()));
        proptest::prop_assert_eq!(outcome, again, "the same event, a different outcome");
    }
}

// ---- the Lambda handler: one errorType per kind of failure --------------

/// With the `aws` feature (the test command's, through `deploy`): the
/// Lambda entry point.
#[cfg(feature = "aws")]
mod lambda_handler {
    use super::*;

    async fn lambda_answer(guest_name: &str, event: Value) -> Result<Value, lambda_runtime::Diagnostic> {
        let mut context = lambda_runtime::Context::default();
        context.request_id = "lambda-test".into();
        let in_a_minute = std::time::SystemTime::now() + Duration::from_secs(60);
        let deadline = in_a_minute.duration_since(std::time::UNIX_EPOCH).unwrap();
        context.deadline = u64::try_from(deadline.as_millis()).unwrap();
        let payload = serde_json::value::RawValue::from_string(event.to_string()).unwrap();
        emmaa_lambda::handle_event(
            &support::guest(guest_name),
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
}

// ---- exactly once: the ledger of claims ---------------------------------

/// An S3 event whose records carry sequencers, as real ones do.
fn s3_event_with_sequencers(keys: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = keys
        .iter()
        .map(|(key, sequencer)| json!({"s3": {"object": {"key": key, "sequencer": sequencer}}}))
        .collect();
    json!({ "Records": records })
}

/// The names of the jobs an outcome submitted.
fn submitted(outcome: &emmaa_runtime::GuestRun) -> Vec<String> {
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
    assert_eq!(submitted(&retried).len(), 1);
    // By another request, once the holder's deadline has passed.
    let effects = bucket(&[]);
    seed_pending_claim(&effects, "test-model_updates", "request:r2:aml_update", "r1", 1);
    let later = run_as("model_updates", &json!({"model": "aml"}), &effects, "r2").await;
    assert_eq!(submitted(&later).len(), 1);
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
    assert_eq!(outcome.answer, Answer::Failed(Failure::OutOfFuel));
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

// ---- reach: the host's allowlist ----------------------------------------

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

// ---- the flight recorder ------------------------------------------------

/// Runs `guest_name` on `event` recording its calls, as the Lambda host
/// does with EMMAA_TRACE_PREFIX: the outcome and its trace.
async fn recorded(
    guest_name: &str,
    event: &str,
    effects: Arc<dyn Effects>,
    settings: emmaa_runtime::Settings,
    time_left: Duration,
) -> (emmaa_runtime::GuestRun, emmaa_runtime::trace::Trace) {
    use emmaa_runtime::trace::{Header, Recording, Tape, Trace};
    let function = emmaa_runtime::functions::PipelineFunction::by_guest(guest_name).map_or_else(
        || format!("test-{guest_name}"),
        |entry| format!("emmaa-{}", entry.function),
    );
    let context = emmaa_runtime::EventContext {
        function_name: function.clone(),
        request_id: "recorded".into(),
        deadline_ms: support::NOW * 1000 + u64::try_from(time_left.as_millis()).unwrap(),
        time_left,
        now: support::NOW,
    };
    let settings = Arc::new(settings);
    let guest = support::guest(guest_name);
    let (outcome, tape) = guest
        .handle_taped(
            event,
            &context,
            effects,
            settings.clone(),
            Tape::Recording(Recording::default()),
        )
        .await;
    let Tape::Recording(recording) = tape else {
        panic!("the tape was not recording");
    };
    let header = Header {
        function: &function,
        guest: guest_name,
        component: guest.component.as_deref(),
        request_id: &context.request_id,
        deadline_ms: context.deadline_ms,
        time_left_ms: u64::try_from(time_left.as_millis()).unwrap(),
        now: context.now,
        settings: &settings,
        event,
    };
    let trace = Trace::new(header, recording, &outcome.answer, outcome.fuel_used);
    (outcome, trace)
}

/// The replay of `trace` with the guests of this build.
async fn replayed(trace: &emmaa_runtime::trace::Trace) -> emmaa_offline::report::RunReport {
    let components = emmaa_runtime::functions::GUEST_DIR.into();
    let mut player = emmaa_offline::replay::TraceReplayer::new(components, Duration::from_secs(60)).unwrap();
    player.replay(trace, "test").await.unwrap()
}

#[tokio::test]
async fn a_run_its_deadline_stopped_replays_to_the_same_stop() {
    // The probe submits a job (the call needs CALL_RESERVE, 500 ms, before
    // the interrupt point), then spins until the host stops it, 600 ms in:
    // about 6 of its 10 billion units of fuel.
    let time_left = emmaa_runtime::limits::DEADLINE_MARGIN + Duration::from_millis(600);
    let event = json!({"reach": "submit-then-spin"}).to_string();
    let (outcome, trace) = recorded(
        "sandbox_probe",
        &event,
        Arc::new(bucket(&[])),
        settings(&[]),
        time_left,
    )
    .await;
    assert_eq!(outcome.answer.failure(), Some(&Failure::Deadline));
    assert_eq!(
        outcome.status_code(),
        Some(207),
        "the job that went through is listed"
    );
    assert_eq!(trace.stopped.as_deref(), Some("deadline"));
    assert_eq!(trace.calls.len(), 1);

    // The replay stops the guest after the same call, where the recorded
    // one was stopped: running it on would spin until its fuel ran out.
    let report = replayed(&trace).await;
    let verdict = report.trace.as_ref().unwrap();
    assert!(verdict.same, "{}", verdict.message);
    assert!(verdict.component.same, "{verdict:?}");
    assert_eq!(report.error.as_ref().unwrap().kind, "deadline");
    assert_eq!(report.response, outcome.response().cloned());
}

#[tokio::test]
async fn a_fan_out_trace_keeps_each_body_once_and_one_over_its_limit_cannot_be_exact() {
    let big = json!({"run_daily_update": true, "notes": "x".repeat(50_000)}).to_string();
    let objects: Vec<(String, String)> = (0..20)
        .map(|n| (format!("models/m{n:02}/config.json"), big.clone()))
        .collect();
    let objects: Vec<(&str, &str)> = objects
        .iter()
        .map(|(key, body)| (key.as_str(), body.as_str()))
        .collect();
    let (outcome, mut trace) = recorded(
        "update_pipeline",
        "{}",
        Arc::new(bucket(&objects)),
        settings(&[]),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(outcome.status_code(), Some(200));
    // Twenty reads of one body: the event's and the config's, once each.
    assert_eq!(trace.bodies.len(), 2);
    assert!(trace.to_json().len() < 2 * big.len(), "{}", trace.to_json().len());
    let report = replayed(&trace).await;
    let verdict = report.trace.as_ref().unwrap();
    assert!(verdict.same && verdict.exact, "{}", verdict.message);
    assert_eq!(report.response, outcome.response().cloned());

    // Past its limit the trace leaves the config out, and says so; the
    // replay stops where it needs it and says it cannot be exact.
    let limit = trace.to_json().len() - big.len() / 2;
    trace.fit(limit);
    assert_eq!(trace.left_out.as_ref().map(|left| left.bodies), Some(1));
    assert!(trace.event().is_some(), "the event is the last body left out");
    let report = replayed(&trace).await;
    let verdict = report.trace.as_ref().unwrap();
    assert!(!verdict.exact && !verdict.same, "{verdict:?}");
    assert!(
        verdict
            .message
            .starts_with("it cannot be exact: the trace left out 1 bodies"),
        "{}",
        verdict.message
    );
    assert_eq!(verdict.difference.as_ref().unwrap().call, Some(2), "{verdict:?}");
}
