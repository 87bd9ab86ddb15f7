//! `emmaa-host generate-event`: the event a pipeline function gets, as AWS
//! sends it, for a model or a key: a daily schedule's "Scheduled Event";
//! a new object's S3 notification (`Records`, the key URL-encoded as S3
//! encodes it) or EventBridge "Object Created" event (what the stack's
//! rules deliver); an invoked function's payload as its caller sends it
//! (`{"model": M}`, `{"model": M, "tests": T}`).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use thiserror::Error;

use emmaa_runtime::functions::{self, PipelineFunction, Trigger};

/// The account and region of the made-up ARNs (AWS's documentation's).
const ACCOUNT: &str = "123456789012";

/// How an S3-triggered function gets its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shape {
    /// EventBridge's "Object Created" (the stack's rules).
    #[default]
    EventBridge,
    /// The bucket's notification (`{"Records": [...]}`, a hand-made trigger).
    Notification,
}

/// What event to make.
#[derive(Debug, Clone, Default)]
pub struct EventRequest {
    /// A function name or a guest name.
    pub function: String,
    pub model: Option<String>,
    /// The test corpus (model_tests; a test-results key).
    pub tests: Option<String>,
    /// The new object's key (S3-triggered functions), instead of one made
    /// from the model.
    pub key: Option<String>,
    pub shape: Shape,
    pub bucket: String,
    pub region: String,
    /// Seconds since the Unix epoch.
    pub now: u64,
    pub function_prefix: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EventError {
    #[error("unknown function {name:?}: use one of {known}")]
    UnknownFunction { name: String, known: String },
    #[error("{function} needs {what}")]
    Missing { function: String, what: String },
    #[error("{flag} does not apply to {function}: {why}")]
    NotApplicable {
        flag: &'static str,
        function: String,
        why: String,
    },
}

/// The event `request` names.
pub fn generate_event(request: &EventRequest) -> Result<Value, EventError> {
    let prefix = &request.function_prefix;
    let function =
        PipelineFunction::find(&request.function, prefix).ok_or_else(|| EventError::UnknownFunction {
            name: request.function.clone(),
            known: functions::known_names(prefix),
        })?;
    let name = function.name(prefix);
    let missing = |what: &str| EventError::Missing {
        function: name.clone(),
        what: what.to_owned(),
    };
    let not_applicable = |flag, why: &str| EventError::NotApplicable {
        flag,
        function: name.clone(),
        why: why.to_owned(),
    };
    match function.trigger {
        Trigger::Daily => {
            for (flag, given) in [
                ("--model", request.model.is_some()),
                ("--tests", request.tests.is_some()),
                ("--key", request.key.is_some()),
            ] {
                if given {
                    return Err(not_applicable(flag, "a daily schedule's event names no model"));
                }
            }
            let rule = format!("arn:aws:events:{}:{ACCOUNT}:rule/{name}-daily", request.region);
            Ok(scheduled_event(&rule, &request.region, request.now))
        }
        Trigger::Invoked => {
            if request.key.is_some() {
                return Err(not_applicable(
                    "--key",
                    "it is invoked with a payload, not an S3 event",
                ));
            }
            let model = request.model.as_deref().ok_or_else(|| missing("--model M"))?;
            if function.guest == "model_tests" {
                let tests = request
                    .tests
                    .as_deref()
                    .ok_or_else(|| missing("--tests T (the test corpus)"))?;
                Ok(json!({"model": model, "tests": tests}))
            } else if request.tests.is_some() {
                Err(not_applicable("--tests", "its payload is {\"model\": M}"))
            } else {
                Ok(json!({"model": model}))
            }
        }
        Trigger::NewObject { .. } => {
            let key = match (&request.key, &request.model) {
                (Some(key), _) => key.clone(),
                (None, Some(model)) => new_object_key(function, model, request.tests.as_deref(), request.now)
                    .ok_or_else(|| missing("--tests T for the results' key, or --key K"))?,
                (None, None) => return Err(missing("--model M or --key K")),
            };
            let sequencer = sequencer(&key, request.now);
            Ok(match request.shape {
                Shape::Notification => {
                    s3_notification(&request.bucket, &key, &sequencer, &request.region, request.now)
                }
                Shape::EventBridge => {
                    object_created(&request.bucket, &key, &sequencer, &request.region, request.now)
                }
            })
        }
    }
}

/// The key of the file that starts `function` for `model`, as the Batch
/// jobs name them (docs/handlers.md): `models/M/model_DATE.pkl`,
/// `results/M/model_manager_DATE.pkl`, `results/M/results_T_DATE.json`;
/// `None` for test results without a corpus.
fn new_object_key(function: &PipelineFunction, model: &str, tests: Option<&str>, now: u64) -> Option<String> {
    let date = key_date(now);
    let Trigger::NewObject { key } = function.trigger else {
        return None;
    };
    let made = match key.split('*').next() {
        Some("models/") => format!("models/{model}/model_{date}.pkl"),
        _ if key.ends_with(".pkl") => format!("results/{model}/model_manager_{date}.pkl"),
        _ => format!("results/{model}/results_{}_{date}.json", tests?),
    };
    // The key the trigger's own rule would start the function for.
    function.started_by(&made).then_some(made)
}

/// `2020-02-04-12-00-00`: the date in the Batch jobs' file names.
fn key_date(now: u64) -> String {
    rfc3339(now).trim_end_matches('Z').replace(['T', ':'], "-")
}

/// `2020-02-04T12:00:00Z`, with milliseconds when `millis` (S3's own).
fn time_text(now: u64, millis: bool) -> String {
    let text = rfc3339(now);
    if millis { text.replace('Z', ".000Z") } else { text }
}

fn rfc3339(now: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(now).unwrap_or(i64::MAX))
        .map(|at| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute(),
                at.second()
            )
        })
        .unwrap_or_default()
}

/// A sequencer as S3 writes one (upper-case hex), the same for the same key
/// and time: a redelivered notification carries its original's.
fn sequencer(key: &str, now: u64) -> String {
    let digest = Sha256::digest(format!("{key}@{now}").as_bytes());
    digest[..9].iter().map(|byte| format!("{byte:02X}")).collect()
}

/// `key` as S3 writes it into a notification: form-URL-encoded (a space is
/// `+`; letters, digits and `-_.*/` stay; AWS keeps `/`).
pub fn url_encode_key(key: &str) -> String {
    key.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' | b'/' => {
                (byte as char).to_string()
            }
            b' ' => "+".to_owned(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// EventBridge's "Scheduled Event" for `rule`.
pub fn scheduled_event(rule: &str, region: &str, now: u64) -> Value {
    json!({
        "version": "0",
        "id": event_id(rule, now),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": time_text(now, false),
        "region": region,
        "resources": [rule],
        "detail": {},
    })
}

/// The bucket's notification of a new object (`s3:ObjectCreated:Put`).
pub fn s3_notification(bucket: &str, key: &str, sequencer: &str, region: &str, now: u64) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": time_text(now, true),
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "192.0.2.1"},
        "responseElements": {
            "x-amz-request-id": &sequencer[..16],
            "x-amz-id-2": format!("{sequencer}/EXAMPLE"),
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "emmaa-trigger",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "AEXAMPLE"},
                "arn": format!("arn:aws:s3:::{bucket}"),
            },
            "object": {
                "key": url_encode_key(key),
                "size": 1024,
                "eTag": &event_id(key, now).replace('-', "")[..32],
                "sequencer": sequencer,
            },
        },
    }]})
}

/// EventBridge's "Object Created" event for a new object.
pub fn object_created(bucket: &str, key: &str, sequencer: &str, region: &str, now: u64) -> Value {
    json!({
        "version": "0",
        "id": event_id(key, now),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": time_text(now, false),
        "region": region,
        "resources": [format!("arn:aws:s3:::{bucket}")],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": 1024,
                "etag": &event_id(key, now).replace('-', "")[..32],
                "sequencer": sequencer,
            },
            "request-id": &sequencer[..16],
            "requester": ACCOUNT,
            "source-ip-address": "192.0.2.1",
            "reason": "PutObject",
        },
    })
}

/// An event id in EventBridge's form (a UUID), the same for the same input.
fn event_id(seed: &str, now: u64) -> String {
    let hex: String = Sha256::digest(format!("{seed}#{now}").as_bytes())
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(function: &str) -> EventRequest {
        EventRequest {
            function: function.into(),
            bucket: "emmaa".into(),
            region: "us-east-1".into(),
            now: 1_580_817_600,
            function_prefix: "emmaa-".into(),
            ..EventRequest::default()
        }
    }

    #[test]
    fn a_new_objects_key_is_made_from_the_model_as_the_jobs_name_it() {
        let event = generate_event(&EventRequest {
            model: Some("aml".into()),
            ..request("emmaa-mm-update")
        })
        .unwrap();
        assert_eq!(
            event["detail"]["object"]["key"],
            "models/aml/model_2020-02-04-12-00-00.pkl"
        );
        assert_eq!(event["detail-type"], "Object Created");
        let results = generate_event(&EventRequest {
            model: Some("aml".into()),
            tests: Some("large_corpus_tests".into()),
            shape: Shape::Notification,
            ..request("test_stats")
        })
        .unwrap();
        assert_eq!(
            results["Records"][0]["s3"]["object"]["key"],
            "results/aml/results_large_corpus_tests_2020-02-04-12-00-00.json"
        );
        assert_eq!(results["Records"][0]["eventTime"], "2020-02-04T12:00:00.000Z");
    }

    #[test]
    fn a_notifications_key_is_url_encoded_as_s3_encodes_it() {
        assert_eq!(url_encode_key("models/a b/x+y=z.pkl"), "models/a+b/x%2By%3Dz.pkl");
        let event = generate_event(&EventRequest {
            key: Some("models/red flower/model_1.pkl".into()),
            shape: Shape::Notification,
            ..request("model_manager_update")
        })
        .unwrap();
        assert_eq!(
            event["Records"][0]["s3"]["object"]["key"],
            "models/red+flower/model_1.pkl"
        );
    }

    #[test]
    fn what_a_function_needs_is_asked_for_by_name() {
        let err = generate_event(&request("model_tests")).unwrap_err();
        assert_eq!(err.to_string(), "emmaa-model-test needs --model M");
        let err = generate_event(&EventRequest {
            model: Some("aml".into()),
            ..request("model_tests")
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "emmaa-model-test needs --tests T (the test corpus)"
        );
        let err = generate_event(&EventRequest {
            model: Some("aml".into()),
            ..request("update_pipeline")
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--model does not apply to emmaa-update-pipeline: a daily schedule's event names no model"
        );
        assert!(matches!(
            generate_event(&request("nope")),
            Err(EventError::UnknownFunction { .. })
        ));
    }

    #[test]
    fn the_same_request_makes_the_same_event() {
        let one = EventRequest {
            model: Some("aml".into()),
            ..request("after_update")
        };
        assert_eq!(generate_event(&one).unwrap(), generate_event(&one).unwrap());
        let later = EventRequest {
            now: one.now + 1,
            ..one.clone()
        };
        assert_ne!(
            generate_event(&one).unwrap()["detail"]["object"]["sequencer"],
            generate_event(&later).unwrap()["detail"]["object"]["sequencer"]
        );
    }
}
