//! S3 events: a notification's records (`{"Records": [{"s3": {"object":
//! ...}}]}`), or EventBridge's "Object Created" event (`{"detail-type":
//! "Object Created", "source": "aws.s3", "detail": {"object": ...}}`, one
//! object), which a bucket whose notifications go to EventBridge sends.
//! Each object is parsed on its own and needs only its `key`: the stand-in
//! event update_pipeline sends has nothing else, and one broken record must
//! not spoil the others. Keys are URL-decoded before anything else looks at
//! them (a valid EMMAA key holds neither `%` nor `+`, so decoding a key
//! that arrived plain changes nothing). An object's `sequencer`, when it has
//! one, makes it a unit of work of its own (see [`crate::work`]).

use serde_json::Value;

use crate::quote::{self, quote};
use crate::work::{self, Work};
use crate::{ModelName, Refusal, Report, TestCorpus};

/// What an S3 event holds: its new objects (each parsed, or refused), and
/// what is not a new object, ignored.
#[derive(Debug)]
pub struct Records<T> {
    pub objects: Vec<Result<(T, Work), Refusal>>,
    pub ignored: Vec<Ignored>,
}

/// Something an S3 event holds that is not a new object (a deletion, a
/// restore, S3's test event): nothing to do, and nothing wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub item: String,
    pub reason: String,
}

impl<T> Records<T> {
    /// The objects, with the ignored items written into `report`'s answer.
    pub fn noting_ignored(self, report: &mut Report) -> Vec<Result<(T, Work), Refusal>> {
        for ignored in self.ignored {
            report.ignore(&ignored.item, &ignored.reason);
        }
        self.objects
    }
}

/// Applies `parse_key` to the decoded key of every new object of `event`
/// (S3's `ObjectCreated:*` records, EventBridge's "Object Created"), and
/// gives each its unit of work. An object whose key is missing, badly
/// encoded or refused by `parse_key`, or that is in another bucket than
/// `bucket`, becomes a refusal naming its field (`Records[i].s3.object.key`,
/// `detail.object.key`) and its value. Records of anything else
/// (`ObjectRemoved:*`, `LifecycleExpiration:*`, `ObjectRestore:*`,
/// `Replication:*`, other EventBridge events, `s3:TestEvent`) are ignored,
/// each with why. A record without an `eventName` is a new object: the
/// stand-in record update_pipeline sends has only its key.
pub fn parse_records<T>(
    event: &Value,
    bucket: &str,
    parse_key: impl Fn(&str, &str) -> Result<T, String>,
) -> Records<T> {
    let refused = |refusal: Refusal| Records {
        objects: vec![Err(refusal)],
        ignored: Vec::new(),
    };
    let eventbridge =
        event.get("source") == Some(&Value::from("aws.s3")) && event.get("detail-type").is_some();
    if eventbridge && event.get("Records").is_some() {
        return refused(Refusal::new(
            "Records",
            "the event is both an EventBridge event (\"source\": \"aws.s3\") and an S3 \
             notification (\"Records\"): which one it is cannot be told",
        ));
    }
    if eventbridge {
        let object = event.pointer("/detail/object").unwrap_or(&Value::Null);
        let kind = event.get("detail-type").unwrap_or(&Value::Null);
        if kind != "Object Created" {
            return Records {
                objects: Vec::new(),
                ignored: vec![Ignored {
                    item: item_name(object),
                    reason: format!("detail-type {} is not a new object", quote::json(kind)),
                }],
            };
        }
        let in_bucket = event.pointer("/detail/bucket/name");
        return Records {
            objects: vec![
                check_bucket("detail.bucket.name", in_bucket, bucket, object)
                    .and_then(|()| parse_object("detail.object.key", object, &parse_key)),
            ],
            ignored: Vec::new(),
        };
    }
    if let Some(test) = event.get("Event").filter(|name| *name == "s3:TestEvent")
        && event.get("Records").is_none()
    {
        return Records {
            objects: Vec::new(),
            ignored: vec![Ignored {
                item: "s3:TestEvent".into(),
                reason: format!(
                    "Event {} is S3's test of a new notification configuration",
                    quote::json(test)
                ),
            }],
        };
    }
    let Some(records) = event.get("Records").and_then(Value::as_array) else {
        return refused(Refusal::new(
            "Records",
            format!(
                "the event has no \"Records\" list (an S3 event looks like \
                 {{\"Records\": [{{\"s3\": {{\"object\": {{\"key\": ...}}}}}}]}}), got {}",
                quote::json(event)
            ),
        ));
    };
    if records.is_empty() {
        return refused(Refusal::new("Records", "the event's \"Records\" list is empty"));
    }
    let mut parsed = Records {
        objects: Vec::new(),
        ignored: Vec::new(),
    };
    for (index, record) in records.iter().enumerate() {
        let object = record.pointer("/s3/object").unwrap_or(&Value::Null);
        match record.get("eventName") {
            Some(Value::String(name)) if name.starts_with("ObjectCreated:") => {}
            None => {}
            Some(other) => {
                parsed.ignored.push(Ignored {
                    item: item_name(object),
                    reason: format!(
                        "Records[{index}].eventName {} is not a new object",
                        quote::json(other)
                    ),
                });
                continue;
            }
        }
        let in_bucket = record.pointer("/s3/bucket/name");
        parsed.objects.push(
            check_bucket(
                &format!("Records[{index}].s3.bucket.name"),
                in_bucket,
                bucket,
                object,
            )
            .and_then(|()| parse_object(&format!("Records[{index}].s3.object.key"), object, &parse_key)),
        );
    }
    parsed
}

/// An object's bucket, when the event names one, must be the pipeline's.
fn check_bucket(field: &str, named: Option<&Value>, bucket: &str, object: &Value) -> Result<(), Refusal> {
    match named {
        None => Ok(()),
        Some(Value::String(name)) if name == bucket => Ok(()),
        Some(other) => Err(Refusal::new(
            item_name(object),
            format!(
                "{field} {} is not the pipeline's bucket {} (EMMAA_BUCKET)",
                quote::json(other),
                quote(bucket)
            ),
        )),
    }
}

/// How an object is named in an answer: its key, decoded when it can be.
fn item_name(object: &Value) -> String {
    match object.get("key") {
        Some(Value::String(raw)) => decode_key(raw).unwrap_or_else(|_| raw.clone()),
        Some(other) => quote::json(other),
        None => "(no key)".into(),
    }
}

/// One object of an event: `parse_key` of its decoded key, and its work.
fn parse_object<T>(
    field: &str,
    object: &Value,
    parse_key: impl Fn(&str, &str) -> Result<T, String>,
) -> Result<(T, Work), Refusal> {
    let raw = object
        .get("key")
        .ok_or_else(|| Refusal::new(field, format!("{field} is missing")))?;
    let raw = raw.as_str().ok_or_else(|| {
        let raw = quote::json(raw);
        Refusal::new(&raw, format!("{field} must be a string, got {raw}"))
    })?;
    let key = decode_key(raw).map_err(|why| Refusal::new(raw, format!("{field} {} {why}", quote(raw))))?;
    let parsed = parse_key(field, &key).map_err(|why| Refusal::new(key.as_str(), why))?;
    let sequencer = object.get("sequencer").and_then(Value::as_str);
    Ok((parsed, work::of_record(&key, sequencer)))
}

/// Decodes an S3 event key: `+` is a space and `%XX` (exactly `%` and two
/// hex digits) a byte.
pub fn decode_key(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let byte = match bytes.get(at + 1..at + 3) {
                    Some(&[high, low]) => hex_digit(high).zip(hex_digit(low)).map(|(h, l)| h << 4 | l),
                    _ => None,
                }
                .ok_or_else(|| {
                    format!("has a bad escape at byte {at}: % must be followed by two hex digits")
                })?;
                decoded.push(byte);
                at += 2;
            }
            byte => decoded.push(byte),
        }
        at += 1;
    }
    String::from_utf8(decoded).map_err(|_| "does not decode to UTF-8".to_owned())
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

/// The three segments of a key, or a reason naming the expected layout.
fn segments<'k>(field: &str, key: &'k str, layout: &str) -> Result<[&'k str; 3], String> {
    let parts: Vec<&str> = key.split('/').collect();
    <[&str; 3]>::try_from(parts).map_err(|_| not_layout(field, key, layout))
}

fn not_layout(field: &str, key: &str, layout: &str) -> String {
    format!("{field} {} does not have the layout {layout}", quote(key))
}

/// `models/{model}/{file}.pkl`: a new model state (model_manager_update).
pub fn model_state_key(field: &str, key: &str) -> Result<ModelName, String> {
    const LAYOUT: &str = "models/{model}/{file}.pkl";
    let [top, model, file] = segments(field, key, LAYOUT)?;
    let stem = file.strip_suffix(".pkl").unwrap_or_default();
    if top != "models" || stem.is_empty() {
        return Err(not_layout(field, key, LAYOUT));
    }
    model_in_key(field, key, model)
}

/// `results/{model}/model_manager_{date}.pkl`: a new model manager (after_update).
pub fn model_manager_key(field: &str, key: &str) -> Result<ModelName, String> {
    const LAYOUT: &str = "results/{model}/model_manager_{date}.pkl";
    let [top, model, file] = segments(field, key, LAYOUT)?;
    let date = file
        .strip_prefix("model_manager_")
        .and_then(|rest| rest.strip_suffix(".pkl"));
    if top != "results" || !date.is_some_and(is_date) {
        return Err(not_layout(field, key, LAYOUT));
    }
    model_in_key(field, key, model)
}

/// `results/{model}/results_[{corpus}_]{date}.json`: new test results
/// (test_stats). The old naming, with no corpus, means `large_corpus_tests`.
pub fn results_key(field: &str, key: &str) -> Result<(ModelName, TestCorpus), String> {
    const LAYOUT: &str = "results/{model}/results_[{corpus}_]{date}.json";
    let [top, model, file] = segments(field, key, LAYOUT)?;
    let middle = file
        .strip_prefix("results_")
        .and_then(|rest| rest.strip_suffix(".json"));
    let corpus = match middle {
        Some(date) if is_date(date) => None,
        Some(rest) => Some(corpus_before_date(rest).ok_or_else(|| not_layout(field, key, LAYOUT))?),
        None => return Err(not_layout(field, key, LAYOUT)),
    };
    if top != "results" {
        return Err(not_layout(field, key, LAYOUT));
    }
    let model = model_in_key(field, key, model)?;
    let corpus = match corpus {
        None => TestCorpus::default_corpus(),
        Some(corpus) => {
            TestCorpus::parse_from(|| format!("the test corpus in {field} {}", quote(key)), corpus)
                .map_err(|refusal| refusal.reason)?
        }
    };
    Ok((model, corpus))
}

fn model_in_key(field: &str, key: &str, model: &str) -> Result<ModelName, String> {
    ModelName::parse_from(|| format!("the model in {field} {}", quote(key)), model).map_err(|r| r.reason)
}

/// The `{corpus}` of `{corpus}_{date}`.
fn corpus_before_date(text: &str) -> Option<&str> {
    let at = text.len().checked_sub(DATE_LEN + 1)?;
    let (corpus, tail) = (text.get(..at)?, text.get(at..)?);
    tail.strip_prefix('_').is_some_and(is_date).then_some(corpus)
}

/// `YYYY-MM-DD-HH-MM-SS` is 19 characters.
const DATE_LEN: usize = 19;

/// Whether `text` is a `YYYY-MM-DD-HH-MM-SS` date.
fn is_date(text: &str) -> bool {
    text.len() == DATE_LEN
        && text.bytes().enumerate().all(|(at, byte)| match at {
            4 | 7 | 10 | 13 | 16 => byte == b'-',
            _ => byte.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event_with_keys(keys: &[&str]) -> Value {
        let records: Vec<Value> = keys
            .iter()
            .map(|key| json!({"s3": {"object": {"key": key}}}))
            .collect();
        json!({ "Records": records })
    }

    #[test]
    fn decodes_plus_and_percent_escapes() {
        assert_eq!(decode_key("a+b%2Fc%3B").unwrap(), "a b/c;");
        assert_eq!(decode_key("plain").unwrap(), "plain");
    }

    #[test]
    fn refuses_bad_percent_escapes() {
        assert!(decode_key("a%2").is_err());
        assert!(decode_key("a%zz").is_err());
        assert!(decode_key("%FF").is_err());
        assert!(decode_key("%+A").is_err());
        assert!(decode_key("%-1").is_err());
        assert!(decode_key("% A").is_err());
        assert_eq!(decode_key("%41%6a").unwrap(), "Aj");
    }

    #[test]
    fn reads_the_model_of_a_model_state_key() {
        let model = model_state_key("k", "models/aml/model_2020-01-01-00-00-00.pkl").unwrap();
        assert_eq!(model.as_str(), "aml");
    }

    #[test]
    fn refuses_keys_without_three_segments() {
        let why = model_state_key("k", "models/aml/extra/model.pkl").unwrap_err();
        assert_eq!(
            why,
            "k \"models/aml/extra/model.pkl\" does not have the layout models/{model}/{file}.pkl"
        );
        assert!(model_state_key("k", "models/aml").is_err());
        assert!(model_state_key("k", "models/aml/.pkl").is_err());
        assert!(model_state_key("k", "models/aml/config.json").is_err());
        assert!(model_state_key("k", "results/aml/model.pkl").is_err());
    }

    #[test]
    fn reads_model_manager_keys_with_a_date() {
        let key = "results/aml/model_manager_2020-02-04-12-00-00.pkl";
        assert_eq!(model_manager_key("k", key).unwrap().as_str(), "aml");
        assert!(model_manager_key("k", "results/aml/model_manager_latest.pkl").is_err());
    }

    #[test]
    fn reads_the_corpus_of_a_results_key() {
        let key = "results/aml/results_simple_tests_2020-02-04-12-00-00.json";
        let (model, corpus) = results_key("k", key).unwrap();
        assert_eq!((model.as_str(), corpus.as_str()), ("aml", "simple_tests"));
    }

    #[test]
    fn old_results_naming_means_large_corpus_tests() {
        let key = "results/aml/results_2020-02-04-12-00-00.json";
        let (_, corpus) = results_key("k", key).unwrap();
        assert_eq!(corpus.as_str(), "large_corpus_tests");
    }

    #[test]
    fn refuses_results_keys_with_a_bad_corpus_or_no_date() {
        let bad = results_key("k", "results/aml/results_a;b_2020-02-04-12-00-00.json");
        assert!(
            bad.unwrap_err()
                .contains("\"a;b\" is not a valid test corpus name")
        );
        assert!(results_key("k", "results/aml/results_.json").is_err());
        assert!(results_key("k", "results/aml/results__2020-02-04-12-00-00.json").is_err());
        assert!(results_key("k", "results/aml/stats_2020-02-04-12-00-00.json").is_err());
    }

    #[test]
    fn each_record_is_parsed_on_its_own() {
        let event = event_with_keys(&[
            "models/aml/model_2020-01-01-00-00-00.pkl",
            "models/a%3Bb/model_2020-01-01-00-00-00.pkl",
            "models/brca/model_2020-01-01-00-00-00.pkl",
        ]);
        let parsed = parse_records(&event, "emmaa", model_state_key).objects;
        assert_eq!(parsed[0].as_ref().unwrap().0.as_str(), "aml");
        let refusal = parsed[1].as_ref().unwrap_err();
        assert_eq!(refusal.item, "models/a;b/model_2020-01-01-00-00-00.pkl");
        assert!(refusal.reason.contains("Records[1].s3.object.key"));
        assert!(refusal.reason.contains("\"a;b\""));
        assert_eq!(parsed[2].as_ref().unwrap().0.as_str(), "brca");
    }

    #[test]
    fn a_record_with_a_sequencer_is_work_of_its_own() {
        crate::work::begin(&json!({}), "r1");
        let key = "models/aml/model_2020-01-01-00-00-00.pkl";
        let event = json!({"Records": [
            {"s3": {"object": {"key": key, "sequencer": "0A1B"}}},
            {"s3": {"object": {"key": key}}}
        ]});
        let parsed = parse_records(&event, "emmaa", model_state_key).objects;
        assert_eq!(
            parsed[0].as_ref().unwrap().1.as_deref(),
            Some("s3:models/aml/model_2020-01-01-00-00-00.pkl@0A1B")
        );
        assert_eq!(
            parsed[1].as_ref().unwrap().1.as_deref(),
            Some("request:r1:models/aml/model_2020-01-01-00-00-00.pkl")
        );
    }

    #[test]
    fn reads_eventbridges_object_created_event_as_one_record() {
        crate::work::begin(&json!({}), "r1");
        let event = json!({
            "version": "0", "detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": "emmaa"}, "object": {
                "key": "models/aml/model_2020-02-04-12-00-00.pkl", "sequencer": "0064D3901D00059242"
            }}
        });
        let parsed = parse_records(&event, "emmaa", model_state_key).objects;
        assert_eq!(parsed.len(), 1);
        let (model, work) = parsed[0].as_ref().unwrap();
        assert_eq!(model.as_str(), "aml");
        assert_eq!(
            work.as_deref(),
            Some("s3:models/aml/model_2020-02-04-12-00-00.pkl@0064D3901D00059242")
        );
        let bad = json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {"object": {"key": "models/a;b/x.pkl"}}});
        let refusal = parse_records(&bad, "emmaa", model_state_key)
            .objects
            .remove(0)
            .unwrap_err();
        assert!(
            refusal.reason.starts_with("the model in detail.object.key"),
            "{}",
            refusal.reason
        );
        let empty = json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {}});
        let refusal = parse_records(&empty, "emmaa", model_state_key)
            .objects
            .remove(0)
            .unwrap_err();
        assert_eq!(refusal.reason, "detail.object.key is missing");
    }

    #[test]
    fn decodes_keys_before_validating_them() {
        let event = event_with_keys(&["models/my+model/model_2020-01-01-00-00-00.pkl"]);
        let refusal = parse_records(&event, "emmaa", model_state_key)
            .objects
            .remove(0)
            .unwrap_err();
        assert!(refusal.reason.contains("\"my model\""), "{}", refusal.reason);
    }

    #[test]
    fn refuses_a_record_without_a_key() {
        let event = json!({"Records": [{"s3": {"object": {}}}, {"s3": {"object": {"key": 7}}}]});
        let parsed = parse_records(&event, "emmaa", model_state_key).objects;
        assert_eq!(
            parsed[0].as_ref().unwrap_err().reason,
            "Records[0].s3.object.key is missing"
        );
        assert_eq!(
            parsed[1].as_ref().unwrap_err().reason,
            "Records[1].s3.object.key must be a string, got 7"
        );
    }

    #[test]
    fn refuses_an_event_without_records() {
        let parsed = parse_records(&json!({"model": "aml"}), "emmaa", model_state_key).objects;
        assert_eq!(parsed.len(), 1);
        assert!(
            parsed[0]
                .as_ref()
                .unwrap_err()
                .reason
                .contains("no \"Records\" list")
        );
        let parsed = parse_records(&json!({"Records": []}), "emmaa", model_state_key).objects;
        assert!(parsed[0].as_ref().unwrap_err().reason.contains("empty"));
    }

    #[test]
    fn only_new_objects_are_work_and_the_rest_is_ignored_with_why() {
        let key = "models/aml/model_2020-01-01-00-00-00.pkl";
        let record = |name: &str| json!({"eventName": name, "s3": {"bucket": {"name": "emmaa"}, "object": {"key": key}}});
        let event = json!({"Records": [
            record("ObjectRemoved:Delete"),
            record("ObjectCreated:CompleteMultipartUpload"),
            record("LifecycleExpiration:Delete"),
            record("ObjectRestore:Completed"),
            record("Replication:OperationFailedReplication"),
        ]});
        let parsed = parse_records(&event, "emmaa", model_state_key);
        assert_eq!(parsed.objects.len(), 1);
        assert_eq!(parsed.objects[0].as_ref().unwrap().0.as_str(), "aml");
        let reasons: Vec<&str> = parsed.ignored.iter().map(|i| i.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "Records[0].eventName \"ObjectRemoved:Delete\" is not a new object",
                "Records[2].eventName \"LifecycleExpiration:Delete\" is not a new object",
                "Records[3].eventName \"ObjectRestore:Completed\" is not a new object",
                "Records[4].eventName \"Replication:OperationFailedReplication\" is not a new object",
            ]
        );
        assert!(parsed.ignored.iter().all(|ignored| ignored.item == key));
    }

    #[test]
    fn eventbridge_events_other_than_object_created_and_s3s_test_event_are_ignored() {
        let deleted = json!({"detail-type": "Object Deleted", "source": "aws.s3",
            "detail": {"bucket": {"name": "emmaa"}, "object": {"key": "models/aml/m.pkl"}}});
        let parsed = parse_records(&deleted, "emmaa", model_state_key);
        assert!(parsed.objects.is_empty());
        assert_eq!(
            parsed.ignored,
            [Ignored {
                item: "models/aml/m.pkl".into(),
                reason: "detail-type \"Object Deleted\" is not a new object".into()
            }]
        );
        let test = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2020-02-04T12:00:00.000Z",
            "Bucket": "emmaa", "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"});
        let parsed = parse_records(&test, "emmaa", model_state_key);
        assert!(parsed.objects.is_empty());
        assert_eq!(parsed.ignored[0].item, "s3:TestEvent");
    }

    #[test]
    fn an_object_in_another_bucket_is_refused_and_an_ambiguous_event_too() {
        let event = json!({"Records": [
            {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "elsewhere"},
                "object": {"key": "models/aml/model_2020-01-01-00-00-00.pkl"}}},
            {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "emmaa"},
                "object": {"key": "models/brca/model_2020-01-01-00-00-00.pkl"}}},
        ]});
        let parsed = parse_records(&event, "emmaa", model_state_key).objects;
        let refusal = parsed[0].as_ref().unwrap_err();
        assert_eq!(refusal.item, "models/aml/model_2020-01-01-00-00-00.pkl");
        assert_eq!(
            refusal.reason,
            "Records[0].s3.bucket.name \"elsewhere\" is not the pipeline's bucket \"emmaa\" (EMMAA_BUCKET)"
        );
        assert_eq!(parsed[1].as_ref().unwrap().0.as_str(), "brca");
        let bridge = json!({"detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": "elsewhere"}, "object": {"key": "models/aml/m.pkl"}}});
        let refusal = parse_records(&bridge, "emmaa", model_state_key)
            .objects
            .remove(0)
            .unwrap_err();
        assert!(
            refusal.reason.starts_with("detail.bucket.name \"elsewhere\""),
            "{}",
            refusal.reason
        );
        let both = json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {}, "Records": []});
        let refusal = parse_records(&both, "emmaa", model_state_key)
            .objects
            .remove(0)
            .unwrap_err();
        assert!(refusal.reason.contains("cannot be told"), "{}", refusal.reason);
    }
}
