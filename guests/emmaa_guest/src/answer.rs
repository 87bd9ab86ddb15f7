//! The three kinds of answer a handler gives: everything went through (200),
//! some items were refused (207, a normal answer so Lambda does not retry the
//! good ones), or nothing could go through (a handler error).

use serde_json::{Map, Value, json};

/// An item (a record, a model, a corpus, a job) that was refused or failed,
/// with a reason naming the field and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub item: String,
    pub reason: String,
}

impl Refusal {
    pub fn new(item: impl Into<String>, reason: impl Into<String>) -> Self {
        Refusal {
            item: item.into(),
            reason: reason.into(),
        }
    }
}

/// What a handler did with one event, collected as it goes.
#[derive(Debug, Default)]
pub struct Report {
    went_through: usize,
    refused: Vec<Refusal>,
    fields: Map<String, Value>,
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

    /// Adds a field to the answer (`job_id`, `job_ids`).
    pub fn set(&mut self, field: &str, value: Value) {
        self.fields.insert(field.to_owned(), value);
    }

    pub fn refused(&self) -> &[Refusal] {
        &self.refused
    }

    /// The answer: 200 when nothing was refused, 207 with every refusal when
    /// something else went through, and an error naming every reason when
    /// nothing did.
    pub fn finish(self) -> Result<Value, String> {
        let mut answer = Map::new();
        if self.refused.is_empty() {
            answer.insert("statusCode".into(), json!(200));
            answer.insert("result".into(), json!("SUCCESS"));
        } else if self.went_through > 0 {
            answer.insert("statusCode".into(), json!(207));
            answer.insert("result".into(), json!("PARTIAL"));
            let refused = self
                .refused
                .iter()
                .map(|refusal| json!({"item": refusal.item, "reason": refusal.reason}))
                .collect();
            answer.insert("refused".into(), Value::Array(refused));
        } else {
            let reasons: Vec<&str> = self.refused.iter().map(|r| r.reason.as_str()).collect();
            return Err(reasons.join("; "));
        }
        answer.extend(self.fields);
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
    fn fails_with_every_reason_when_nothing_went_through() {
        let mut report = Report::default();
        report.refuse(Refusal::new("x", "first reason"));
        report.refuse(Refusal::new("y", "second reason"));
        assert_eq!(report.finish().unwrap_err(), "first reason; second reason");
    }
}
