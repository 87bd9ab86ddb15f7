//! A model's `config.json`: only the fields the handlers read, with the
//! spec's rules (only JSON `true` is true; a missing corpus list means
//! `large_corpus_tests`). Every other field is ignored, whatever it holds,
//! and dropped as soon as the file is read, so a handler's memory grows with
//! the number of models, not with the size of their configurations.

use serde_json::Value;

use crate::quote;
use crate::{ModelName, Refusal, TestCorpus};

/// The largest `config.json` a handler reads (EMMAA's are a few KiB). A
/// larger one is refused for its model alone, without being read, so one
/// runaway file cannot take the memory every other model needs.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Where a model's configuration lives in the bucket.
pub fn config_key(model: &ModelName) -> String {
    format!("models/{model}/config.json")
}

#[derive(Debug, Clone)]
pub struct ModelConfig {
    model: ModelName,
    run_daily_update: bool,
    run_daily_tests: bool,
    make_tests: bool,
    /// `test.test_corpus` as the file has it, or why `test` has the wrong shape.
    test_corpus: Result<Option<Value>, Refusal>,
}

impl ModelConfig {
    /// Reads the configuration of `model` from the bytes of its `config.json`.
    pub fn parse(model: &ModelName, bytes: &[u8]) -> Result<Self, Refusal> {
        let refuse = |why: String| Refusal::new(model.as_str(), format!("{} {why}", config_key(model)));
        let mut fields = match serde_json::from_slice(bytes) {
            Ok(Value::Object(fields)) => fields,
            Ok(other) => return Err(refuse(format!("is not a JSON object: {}", kind_of(&other)))),
            Err(err) => return Err(refuse(format!("is not JSON: {err}"))),
        };
        let is_true = |field: &str| fields.get(field) == Some(&Value::Bool(true));
        let (run_daily_update, run_daily_tests, make_tests) = (
            is_true("run_daily_update") || is_true("run_model_update"),
            is_true("run_daily_tests"),
            is_true("make_tests"),
        );
        let test_corpus = match fields.remove("test") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(mut test)) => Ok(test.remove("test_corpus")),
            Some(other) => Err(refuse(format!(
                "test must be an object, got {}",
                quote::json(&other)
            ))),
        };
        Ok(ModelConfig {
            model: model.clone(),
            run_daily_update,
            run_daily_tests,
            make_tests,
            test_corpus,
        })
    }

    pub fn model(&self) -> &ModelName {
        &self.model
    }

    /// `run_daily_update`, or its older spelling `run_model_update`.
    pub fn run_daily_update(&self) -> bool {
        self.run_daily_update
    }

    pub fn run_daily_tests(&self) -> bool {
        self.run_daily_tests
    }

    pub fn make_tests(&self) -> bool {
        self.make_tests
    }

    /// The test corpora of `test.test_corpus`: each valid one, or why it is
    /// refused. Fails as a whole when the field has the wrong shape.
    pub fn test_corpora(&self) -> Result<Vec<Result<TestCorpus, Refusal>>, Refusal> {
        let at = |field: &str| format!("{} {field}", config_key(&self.model));
        match self.test_corpus.clone()? {
            None | Some(Value::Null) => Ok(vec![Ok(TestCorpus::default_corpus())]),
            Some(Value::String(name)) => Ok(vec![TestCorpus::parse(&at("test.test_corpus"), &name)]),
            Some(Value::Array(names)) => Ok(names
                .iter()
                .enumerate()
                .map(|(index, name)| {
                    let field = at(&format!("test.test_corpus[{index}]"));
                    match name {
                        Value::String(name) => TestCorpus::parse(&field, name),
                        other => {
                            let other = quote::json(other);
                            Err(Refusal::new(
                                &other,
                                format!("{field} must be a string, got {other}"),
                            ))
                        }
                    }
                })
                .collect()),
            Some(other) => Err(Refusal::new(
                self.model.as_str(),
                format!(
                    "{} must be a string or a list of strings, got {}",
                    at("test.test_corpus"),
                    quote::json(&other)
                ),
            )),
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(value: Value) -> ModelConfig {
        let model = ModelName::parse("model", "aml").unwrap();
        ModelConfig::parse(&model, value.to_string().as_bytes()).unwrap()
    }

    fn corpora(value: Value) -> Vec<Result<String, String>> {
        config(value)
            .test_corpora()
            .unwrap()
            .into_iter()
            .map(|corpus| corpus.map(|c| c.as_str().to_owned()).map_err(|r| r.reason))
            .collect()
    }

    #[test]
    fn only_json_true_counts_as_true() {
        assert!(config(json!({"run_daily_update": true})).run_daily_update());
        assert!(config(json!({"run_model_update": true})).run_daily_update());
        assert!(config(json!({"run_daily_update": false, "run_model_update": true})).run_daily_update());
        assert!(!config(json!({"run_daily_update": "true"})).run_daily_update());
        assert!(!config(json!({"run_daily_tests": 1})).run_daily_tests());
        assert!(!config(json!({})).make_tests());
    }

    #[test]
    fn missing_test_corpus_means_large_corpus_tests() {
        assert_eq!(corpora(json!({})), [Ok("large_corpus_tests".to_owned())]);
        assert_eq!(
            corpora(json!({"test": {}})),
            [Ok("large_corpus_tests".to_owned())]
        );
    }

    #[test]
    fn test_corpus_may_be_a_string_or_a_list() {
        assert_eq!(
            corpora(json!({"test": {"test_corpus": "a"}})),
            [Ok("a".to_owned())]
        );
        assert_eq!(
            corpora(json!({"test": {"test_corpus": ["a", "b"]}})),
            [Ok("a".to_owned()), Ok("b".to_owned())]
        );
        assert!(corpora(json!({"test": {"test_corpus": []}})).is_empty());
    }

    #[test]
    fn refuses_each_bad_corpus_and_keeps_the_others() {
        let found = corpora(json!({"test": {"test_corpus": ["a", "b c", 5, "d"]}}));
        assert_eq!(found[0], Ok("a".to_owned()));
        assert!(
            found[1]
                .as_ref()
                .unwrap_err()
                .contains("models/aml/config.json test.test_corpus[1] \"b c\"")
        );
        assert_eq!(
            found[2],
            Err("models/aml/config.json test.test_corpus[2] must be a string, got 5".to_owned())
        );
        assert_eq!(found[3], Ok("d".to_owned()));
    }

    #[test]
    fn refuses_a_test_corpus_of_the_wrong_shape() {
        let refusal = config(json!({"test": {"test_corpus": 5}}))
            .test_corpora()
            .unwrap_err();
        assert_eq!(
            refusal.reason,
            "models/aml/config.json test.test_corpus must be a string or a list of strings, got 5"
        );
    }

    #[test]
    fn refuses_config_that_is_not_a_json_object() {
        let model = ModelName::parse("model", "aml").unwrap();
        let refusal = ModelConfig::parse(&model, b"[1]").unwrap_err();
        assert_eq!(
            refusal.reason,
            "models/aml/config.json is not a JSON object: a list"
        );
        let refusal = ModelConfig::parse(&model, b"{nope").unwrap_err();
        assert!(refusal.reason.starts_with("models/aml/config.json is not JSON: "));
        assert_eq!(refusal.item, "aml");
    }
}
