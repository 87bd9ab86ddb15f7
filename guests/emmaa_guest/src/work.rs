//! Units of work: what makes a job or an invocation the same as one that an
//! earlier delivery of the event already did. The host claims each unit in
//! its ledger before it acts, so AWS's at-least-once delivery does not do
//! the same work twice. The guest decides what counts as the same work:
//!
//! - an S3 record with a `sequencer` (real S3 events have one): its key and
//!   sequencer. A redelivered notification carries the same pair; a new
//!   upload of the same key gets a new sequencer, so it is new work;
//! - anything else (an invocation, update_pipeline's stand-in record, whose
//!   key is the same every day): the request id, which Lambda keeps across
//!   its own retries of an event, and the item;
//! - an event with `"rerun": true` claims nothing: an operator re-running
//!   work on purpose.

use std::cell::RefCell;

use serde_json::Value;

/// A unit of work's identity; `None`: nothing to claim.
pub type Work = Option<String>;

struct Delivery {
    request_id: String,
    rerun: bool,
}

thread_local! {
    static DELIVERY: RefCell<Delivery> = const {
        RefCell::new(Delivery {
            request_id: String::new(),
            rerun: false,
        })
    };
}

/// Remembers the event's request id, and whether it asks to re-run.
pub(crate) fn begin(event: &Value, request_id: &str) {
    DELIVERY.with_borrow_mut(|delivery| {
        delivery.request_id = request_id.to_owned();
        delivery.rerun = event.get("rerun") == Some(&Value::Bool(true));
    });
}

/// `item`, as work of this request.
pub fn in_request(item: &str) -> Work {
    DELIVERY
        .with_borrow(|delivery| (!delivery.rerun).then(|| format!("request:{}:{item}", delivery.request_id)))
}

/// An S3 record's work: its key and sequencer, or the request and the key.
pub fn of_record(key: &str, sequencer: Option<&str>) -> Work {
    match sequencer {
        Some(sequencer) => {
            DELIVERY.with_borrow(|delivery| (!delivery.rerun).then(|| format!("s3:{key}@{sequencer}")))
        }
        None => in_request(key),
    }
}

/// The part `part` of `work` (one of several invocations an S3 record leads to).
pub fn part_of(work: &Work, part: &str) -> Work {
    work.as_ref().map(|work| format!("{work}|{part}"))
}

/// An item with nothing claimed yet: the handler claims it as work of this
/// request when it acts on it.
pub fn in_this_request<T, E>(item: Result<T, E>) -> Result<(T, Work), E> {
    item.map(|item| (item, None))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_record_with_a_sequencer_is_its_key_and_sequencer_whatever_the_request() {
        begin(&json!({}), "first");
        let first = of_record("models/aml/model.pkl", Some("0055AED6DCD90281E5"));
        begin(&json!({}), "second");
        assert_eq!(
            first,
            of_record("models/aml/model.pkl", Some("0055AED6DCD90281E5"))
        );
        assert_ne!(
            first,
            of_record("models/aml/model.pkl", Some("0055AED6DCD90281E6"))
        );
    }

    #[test]
    fn anything_else_is_the_request_and_the_item() {
        begin(&json!({}), "r1");
        assert_eq!(in_request("aml").as_deref(), Some("request:r1:aml"));
        assert_eq!(
            of_record("models/aml/model_2020-01-01-00-00-00.pkl", None).as_deref(),
            Some("request:r1:models/aml/model_2020-01-01-00-00-00.pkl")
        );
        begin(&json!({}), "r2");
        assert_eq!(in_request("aml").as_deref(), Some("request:r2:aml"));
    }

    #[test]
    fn a_rerun_claims_nothing() {
        begin(&json!({"rerun": true}), "r1");
        assert_eq!(in_request("aml"), None);
        assert_eq!(of_record("k", Some("s")), None);
        begin(&json!({"rerun": "yes"}), "r1");
        assert!(in_request("aml").is_some());
    }
}
