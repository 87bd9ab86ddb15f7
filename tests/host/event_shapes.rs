//! S3 events in the shapes others wrote (SAM CLI, the `aws_lambda_events`
//! crate, AWS's documentation: `tests/fixtures/events/SOURCES.md`), through
//! each S3-triggered handler: a new object is work, anything else (a
//! deletion, a restore, a replication failure, S3's test event, EventBridge's
//! other events) is ignored with a 200 that names it, and an object in
//! another bucket is refused.

use super::*;

fn fixture(name: &str) -> Value {
    let path = workspace::workspace().join("tests/fixtures/events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

const S3_TRIGGERED: [&str; 3] = ["model_manager_update", "after_update", "test_stats"];

#[tokio::test]
async fn anything_but_a_new_object_is_ignored_by_every_s3_triggered_handler() {
    let ignored = [
        (
            "sam-s3-delete.json",
            "Records[0].eventName \"ObjectRemoved:Delete\"",
        ),
        (
            "aws-s3-lifecycle-expiration.json",
            "Records[0].eventName \"LifecycleExpiration:Delete\"",
        ),
        (
            "aws-s3-replication-failed.json",
            "Records[0].eventName \"Replication:OperationFailedReplication\"",
        ),
        (
            "aws-s3-restore-completed.json",
            "Records[0].eventName \"ObjectRestore:Completed\"",
        ),
        (
            "aws-eventbridge-object-deleted.json",
            "detail-type \"Object Deleted\"",
        ),
        (
            "aws-eventbridge-object-restore-completed.json",
            "detail-type \"Object Restore Completed\"",
        ),
        ("aws-s3-test-event.json", "Event \"s3:TestEvent\""),
    ];
    for guest in S3_TRIGGERED {
        for (name, why) in ignored {
            for (language, outcome) in support::run_each_build(guest, fixture(name), || bucket(&[])).await {
                let guest = format!("{guest} ({language})");
                assert_eq!(
                    outcome.status_code(),
                    Some(200),
                    "{guest} {name}: {:?}",
                    outcome.answer
                );
                assert_eq!(actions(&outcome), json!([]), "{guest} {name}: no action");
                let listed = &outcome.response().unwrap()["ignored"];
                assert_eq!(
                    listed.as_array().map(Vec::len),
                    Some(1),
                    "{guest} {name}: {listed}"
                );
                let reason = listed[0]["reason"].as_str().unwrap();
                assert!(reason.starts_with(why), "{guest} {name}: {reason}");
            }
        }
    }
}

#[tokio::test]
async fn a_new_object_is_work_in_both_of_s3s_shapes() {
    for name in ["sam-s3-put.json", "aws-eventbridge-object-created.json"] {
        let outcome = run("model_manager_update", fixture(name), bucket(&[])).await;
        assert_eq!(outcome.status_code(), Some(200), "{name}: {:?}", outcome.answer);
        let actions = actions(&outcome);
        assert_eq!(
            actions[0]["job_name"],
            format!("aml_mm_update_{STAMP}"),
            "{name}: {actions}"
        );
        assert_eq!(actions.as_array().unwrap().len(), 1, "{name}");
        assert!(outcome.response().unwrap().get("ignored").is_none(), "{name}");
    }
}

#[tokio::test]
async fn a_deletion_beside_an_upload_leaves_the_upload_to_go_through() {
    let mut event = fixture("sam-s3-delete.json");
    let upload = fixture("sam-s3-put.json")["Records"][0].clone();
    event["Records"].as_array_mut().unwrap().push(upload);
    let outcome = run("model_manager_update", event, bucket(&[])).await;
    assert_eq!(outcome.status_code(), Some(200), "{:?}", outcome.answer);
    assert_eq!(actions(&outcome).as_array().unwrap().len(), 1);
    assert_eq!(
        outcome.response().unwrap()["ignored"][0]["item"],
        "models/aml/model_2020-02-04-12-00-00.pkl"
    );
}

#[tokio::test]
async fn an_object_in_another_bucket_or_another_services_event_is_refused() {
    for (name, why) in [
        (
            "ale-s3-event.json",
            "Records[0].s3.bucket.name \"sourcebucket\" is not the pipeline's bucket \"emmaa\" (EMMAA_BUCKET)",
        ),
        (
            "ale-s3-event-with-decoded.json",
            "Records[0].s3.bucket.name \"sourcebucket\" is not the pipeline's bucket \"emmaa\" (EMMAA_BUCKET)",
        ),
        ("ale-eventbridge-ec2.json", "the event has no \"Records\" list"),
    ] {
        for guest in S3_TRIGGERED {
            for (language, outcome) in support::run_each_build(guest, fixture(name), || bucket(&[])).await {
                assert_eq!(actions(&outcome), json!([]), "{guest} ({language}) {name}");
                let message = outcome.error_message().unwrap_or_default();
                assert!(message.contains(why), "{guest} ({language}) {name}: {message}");
            }
        }
    }
    // The same object in the pipeline's bucket is a key like any other.
    let outcome = run_with(
        "model_manager_update",
        fixture("ale-s3-event.json"),
        bucket(&[]),
        settings(&[("EMMAA_BUCKET", "sourcebucket")]),
    )
    .await;
    let message = outcome.error_message().unwrap_or_default();
    assert!(
        message.contains("Records[0].s3.object.key \"Happy Face.jpg\" does not have the layout"),
        "{message}"
    );
}

/// Each S3-triggered handler's example event, by guest.
fn example(guest: &str) -> Value {
    let function = match guest {
        "model_manager_update" => "emmaa-mm-update",
        "after_update" => "emmaa-after-update",
        "test_stats" => "emmaa-test-stats",
        other => panic!("{other} is not S3-triggered"),
    };
    let path = workspace::workspace().join(format!("examples/events/{function}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Through each handler, in both builds: a record from another bucket
/// beside a good one is listed in a 207 while the good one goes through,
/// and an event that is both an EventBridge event and a notification is
/// refused whole, nothing done.
#[tokio::test]
async fn a_record_from_another_bucket_is_listed_beside_the_work_and_an_ambiguous_event_is_refused() {
    for guest in S3_TRIGGERED {
        let mut mixed = example(guest);
        let mut stranger = mixed["Records"][0].clone();
        stranger["s3"]["bucket"]["name"] = json!("elsewhere");
        mixed["Records"].as_array_mut().unwrap().push(stranger);
        let config =
            std::fs::read_to_string(workspace::workspace().join("examples/bucket/models/aml/config.json"))
                .unwrap();
        let with_config = || bucket(&[("models/aml/config.json", config.as_str())]);
        for (language, outcome) in support::run_each_build(guest, mixed.clone(), with_config).await {
            let guest = format!("{guest} ({language})");
            assert_eq!(outcome.status_code(), Some(207), "{guest}: {:?}", outcome.answer);
            let refused = &outcome.response().unwrap()["refused"];
            assert_eq!(refused.as_array().map(Vec::len), Some(1), "{guest}: {refused}");
            let reason = refused[0]["reason"].as_str().unwrap();
            assert!(
                reason.contains(
                    "Records[1].s3.bucket.name \"elsewhere\" is not the pipeline's bucket \"emmaa\" (EMMAA_BUCKET)"
                ),
                "{guest}: {reason}"
            );
            assert!(
                !actions(&outcome).as_array().unwrap().is_empty(),
                "{guest}: the good record's work goes through"
            );
        }

        let mut ambiguous = example(guest);
        ambiguous["source"] = json!("aws.s3");
        ambiguous["detail-type"] = json!("Object Created");
        ambiguous["detail"] = json!({"bucket": {"name": "emmaa"}, "object": {"key": "models/aml/x"}});
        for (language, outcome) in support::run_each_build(guest, ambiguous.clone(), || bucket(&[])).await {
            let guest = format!("{guest} ({language})");
            assert_eq!(actions(&outcome), json!([]), "{guest}: nothing done");
            let message = outcome.error_message().unwrap_or_default();
            assert!(
                message.contains(
                    "the event is both an EventBridge event (\"source\": \"aws.s3\") and an S3 notification"
                ),
                "{guest}: {message}"
            );
        }
    }
}
