//! Events sent by another handler: `{"model": M}` and `{"model": M, "tests": T}`.

use serde_json::Value;

use crate::quote;
use crate::{ModelName, Refusal, TestCorpus};

/// The string in `field` of an event that must be a JSON object.
fn string_field<'e>(event: &'e Value, field: &str) -> Result<&'e str, Refusal> {
    let Value::Object(fields) = event else {
        let event = quote::json(event);
        return Err(Refusal::new(
            &event,
            format!("the event must be a JSON object like {{\"{field}\": ...}}, got {event}"),
        ));
    };
    match fields.get(field) {
        Some(Value::String(value)) => Ok(value),
        Some(other) => {
            let other = quote::json(other);
            Err(Refusal::new(
                &other,
                format!("{field} must be a string, got {other}"),
            ))
        }
        None => {
            let event = quote::json(event);
            Err(Refusal::new(
                &event,
                format!("the event has no \"{field}\" field: {event}"),
            ))
        }
    }
}

/// The model of `{"model": M}`.
pub fn model(event: &Value) -> Result<ModelName, Refusal> {
    ModelName::parse("model", string_field(event, "model")?)
}

/// The corpus of `{"tests": T}`.
pub fn tests(event: &Value) -> Result<TestCorpus, Refusal> {
    TestCorpus::parse("tests", string_field(event, "tests")?)
}

/// The model and corpus of `{"model": M, "tests": T}`; when both are bad,
/// the refusal gives both reasons.
pub fn model_and_tests(event: &Value) -> Result<(ModelName, TestCorpus), Refusal> {
    match (model(event), tests(event)) {
        (Ok(model), Ok(corpus)) => Ok((model, corpus)),
        (Err(refusal), Ok(_)) | (Ok(_), Err(refusal)) => Err(refusal),
        (Err(bad_model), Err(bad_tests)) => Err(Refusal::new(
            quote::json(event),
            format!("{}; {}", bad_model.reason, bad_tests.reason),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_the_model() {
        assert_eq!(model(&json!({"model": "aml"})).unwrap().as_str(), "aml");
    }

    #[test]
    fn names_the_field_and_the_value_when_refusing() {
        assert_eq!(
            model(&json!({"model": 5})).unwrap_err().reason,
            "model must be a string, got 5"
        );
        assert_eq!(
            model(&json!({})).unwrap_err().reason,
            "the event has no \"model\" field: {}"
        );
        assert!(
            model(&json!("aml"))
                .unwrap_err()
                .reason
                .contains("must be a JSON object")
        );
        assert!(
            tests(&json!({"tests": "a b"}))
                .unwrap_err()
                .reason
                .starts_with("tests \"a b\"")
        );
    }
}
