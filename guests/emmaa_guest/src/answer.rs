//! The three kinds of answer a handler gives: everything went through (200),
//! some items were refused (207, a normal answer so Lambda does not retry the
//! good ones), or nothing could go through (a handler error).

use serde_json::{Map, Value, json};

use crate::quote::cut;

/// The most refusals an answer lists; the rest are counted
/// (`refused_not_listed`), so an answer stays far below Lambda's 6 MB
/// response limit however many items an event held.
pub const MAX_LISTED_REFUSALS: usize = 200;

/// The most characters of a refusal's reason: values in it are quoted cut
/// already; this bounds what else went in (an AWS error's message).
pub const MAX_REASON_CHARS: usize = 1_000;

/// An item (a record, a model, a corpus, a job) that was refused or failed,
/// with a reason naming the field and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub item: String,
    pub reason: String,
}

impl Refusal {
    /// The item is cut to a quotable length, the reason to
    /// [`MAX_REASON_CHARS`].
    pub fn new(item: impl AsRef<str>, reason: impl AsRef<str>) -> Self {
        let reason = reason.as_ref();
        let reason = match reason.char_indices().nth(MAX_REASON_CHARS) {
            Some((end, _)) => format!("{}...", &reason[..end]),
            None => reason.to_owned(),
        };
        Refusal {
            item: cut(item.as_ref()),
            reason,
        }
    }
}

/// What a handler did with one event, collected as it goes.
#[derive(Debug, Default)]
pub struct Report {
    went_through: usize,
    refused: Vec<Refusal>,
    fields: Map<String, Value>,
    /// Lists of the answer (`already_submitted`, ...): each with its first
    /// [`MAX_LISTED_REFUSALS`] items, and how many there were.
    lists: Vec<(String, Vec<Value>, usize)>,
}

impl Report {
    /// One action (an invocation, a submission, a decision that nothing is
    /// needed) went through.
    pub fn went_through(&mut self) {
        self.went_through += 1;
    }

    pub fn refuse(&mut self, refusal: Refusal) {
        self.refused.push(refusal);
    }

    /// Keeps the good items of `items` and refuses the others.
    pub fn keep_valid<T>(&mut self, items: Vec<Result<T, Refusal>>) -> Vec<T> {
        let mut valid = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Ok(item) => valid.push(item),
                Err(refusal) => self.refuse(refusal),
            }
        }
        valid
    }

    /// Notes an item the event held that is not work for this handler (an
    /// S3 deletion, say): listed under `ignored`, never refused, so Lambda
    /// neither retries nor dead-letters the event for it.
    pub fn ignore(&mut self, item: &str, reason: &str) {
        let Refusal { item, reason } = Refusal::new(item, reason);
        self.append("ignored", json!({"item": item, "reason": reason}));
    }

    /// Adds a field to the answer (`job_id`, `job_ids`).
    pub fn set(&mut self, field: &str, value: Value) {
        self.fields.insert(field.to_owned(), value);
    }

    /// Adds `item` to the list `field` of the answer; past
    /// [`MAX_LISTED_REFUSALS`] items a list is counted, not listed.
    pub fn append(&mut self, field: &str, item: Value) {
        let at = match self.lists.iter().position(|(name, _, _)| name == field) {
            Some(at) => at,
            None => {
                self.lists.push((field.to_owned(), Vec::new(), 0));
                self.lists.len() - 1
            }
        };
        let (_, items, count) = &mut self.lists[at];
        *count += 1;
        if items.len() < MAX_LISTED_REFUSALS {
            items.push(item);
        }
    }

    pub fn refused(&self) -> &[Refusal] {
        &self.refused
    }

    /// The answer: 200 when nothing was refused, 207 with the refusals when
    /// something else went through, and an error naming the reasons when
    /// nothing did. Past [`MAX_LISTED_REFUSALS`], refusals are counted, not
    /// listed.
    pub fn finish(self) -> Result<Value, String> {
        let mut answer = Map::new();
        let listed = &self.refused[..self.refused.len().min(MAX_LISTED_REFUSALS)];
        let not_listed = self.refused.len() - listed.len();
        if self.refused.is_empty() {
            answer.insert("statusCode".into(), json!(200));
            answer.insert("result".into(), json!("SUCCESS"));
        } else if self.went_through > 0 {
            answer.insert("statusCode".into(), json!(207));
            answer.insert("result".into(), json!("PARTIAL"));
            let refused = listed
                .iter()
                .map(|refusal| json!({"item": refusal.item, "reason": refusal.reason}))
                .collect();
            answer.insert("refused".into(), Value::Array(refused));
            if not_listed > 0 {
                answer.insert("refused_not_listed".into(), json!(not_listed));
            }
        } else {
            let mut reasons: Vec<&str> = listed.iter().map(|r| r.reason.as_str()).collect();
            let more = format!("and {not_listed} more refusals");
            if not_listed > 0 {
                reasons.push(&more);
            }
            return Err(reasons.join("; "));
        }
        answer.extend(self.fields);
        for (field, items, count) in self.lists {
            if count > items.len() {
                answer.insert(format!("{field}_not_listed"), json!(count - items.len()));
            }
            answer.insert(field, Value::Array(items));
        }
        Ok(Value::Object(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_success_when_nothing_was_refused() {
        let mut report = Report::default();
        report.went_through();
        report.set("job_id", json!("j1"));
        assert_eq!(
            report.finish().unwrap(),
            json!({"statusCode": 200, "result": "SUCCESS", "job_id": "j1"})
        );
    }

    #[test]
    fn answers_success_when_there_was_nothing_to_do() {
        let answer = Report::default().finish().unwrap();
        assert_eq!(answer, json!({"statusCode": 200, "result": "SUCCESS"}));
    }

    #[test]
    fn answers_partial_with_every_refusal_when_something_went_through() {
        let mut report = Report::default();
        report.went_through();
        report.refuse(Refusal::new("a b", "model \"a b\" is bad"));
        report.refuse(Refusal::new("c;d", "model \"c;d\" is bad"));
        let answer = report.finish().unwrap();
        assert_eq!(answer["statusCode"], 207);
        assert_eq!(answer["result"], "PARTIAL");
        assert_eq!(
            answer["refused"],
            json!([
                {"item": "a b", "reason": "model \"a b\" is bad"},
                {"item": "c;d", "reason": "model \"c;d\" is bad"}
            ])
        );
    }

    #[test]
    fn lists_the_first_refusals_and_counts_the_rest() {
        let mut report = Report::default();
        report.went_through();
        for n in 0..60_000 {
            report.refuse(Refusal::new(format!("m{n}"), "bad"));
        }
        let answer = report.finish().unwrap();
        assert_eq!(answer["refused"].as_array().unwrap().len(), MAX_LISTED_REFUSALS);
        assert_eq!(answer["refused_not_listed"], 60_000 - MAX_LISTED_REFUSALS);
        assert!(answer.to_string().len() < 20_000);
    }

    #[test]
    fn a_list_of_the_answer_is_cut_and_counted_like_the_refusals() {
        let mut report = Report::default();
        report.went_through();
        for n in 0..250 {
            report.append("already_submitted", json!(n));
        }
        report.append("in_progress_elsewhere", json!("x"));
        let answer = report.finish().unwrap();
        assert_eq!(
            answer["already_submitted"].as_array().unwrap().len(),
            MAX_LISTED_REFUSALS
        );
        assert_eq!(answer["already_submitted_not_listed"], 50);
        assert_eq!(answer["in_progress_elsewhere"], json!(["x"]));
    }

    #[test]
    fn an_error_names_the_first_reasons_and_counts_the_rest() {
        let mut report = Report::default();
        for n in 0..1_000 {
            report.refuse(Refusal::new(format!("m{n}"), format!("reason {n}")));
        }
        let error = report.finish().unwrap_err();
        assert!(error.starts_with("reason 0; reason 1;"), "{error}");
        assert!(error.ends_with("reason 199; and 800 more refusals"), "{error}");
    }

    #[test]
    fn a_refusal_cuts_a_huge_item_and_reason() {
        let refusal = Refusal::new("x".repeat(1 << 20), "y".repeat(1 << 20));
        assert!(refusal.item.len() < 300);
        assert_eq!(refusal.reason.len(), MAX_REASON_CHARS + 3);
    }

    #[test]
    fn fails_with_every_reason_when_nothing_went_through() {
        let mut report = Report::default();
        report.refuse(Refusal::new("x", "first reason"));
        report.refuse(Refusal::new("y", "second reason"));
        assert_eq!(report.finish().unwrap_err(), "first reason; second reason");
    }
}
