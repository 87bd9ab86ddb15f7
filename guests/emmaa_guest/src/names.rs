//! Model and test corpus names. They end up in Batch job names and inside a
//! shell command line, so they are checked once, here, and only a valid name
//! can be held by a [`ModelName`] or a [`TestCorpus`].

use std::fmt;

use crate::Refusal;
use crate::quote::quote;

/// The pattern every model and corpus name must match.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_-]*$";

fn is_valid_name(value: &str) -> bool {
    let mut chars = value.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `value` if it is a valid name; `field` is only built for the refusal
/// (checking thousands of names must not format thousands of messages).
fn checked(what: &str, field: impl FnOnce() -> String, value: &str) -> Result<String, Refusal> {
    if is_valid_name(value) {
        Ok(value.to_owned())
    } else {
        Err(Refusal::new(
            value,
            format!(
                "{} {} is not a valid {what}: it must match {NAME_PATTERN}",
                field(),
                quote(value)
            ),
        ))
    }
}

/// A model's name, as in `models/{model}/config.json`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ModelName(String);

impl ModelName {
    /// Checks `value`, read from `field` (named in the refusal).
    pub fn parse(field: &str, value: &str) -> Result<Self, Refusal> {
        Self::parse_from(|| field.to_owned(), value)
    }

    /// Checks `value`, read from the field `field()` names.
    pub fn parse_from(field: impl FnOnce() -> String, value: &str) -> Result<Self, Refusal> {
        checked("model name", field, value).map(ModelName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A test corpus's name, as in `results/{model}/results_{corpus}_{date}.json`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TestCorpus(String);

impl TestCorpus {
    /// The corpus tests run against when a model names none.
    pub const DEFAULT: &str = "large_corpus_tests";

    /// Checks `value`, read from `field` (named in the refusal).
    pub fn parse(field: &str, value: &str) -> Result<Self, Refusal> {
        Self::parse_from(|| field.to_owned(), value)
    }

    /// Checks `value`, read from the field `field()` names.
    pub fn parse_from(field: impl FnOnce() -> String, value: &str) -> Result<Self, Refusal> {
        checked("test corpus name", field, value).map(TestCorpus)
    }

    pub fn default_corpus() -> Self {
        TestCorpus(Self::DEFAULT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for TestCorpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_emmaa_model_names() {
        for name in ["aml", "marm_model", "covid19", "rasmodel", "nf-1", "0x"] {
            assert_eq!(ModelName::parse("model", name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn refuses_model_name_with_shell_metacharacters() {
        for name in ["a;rm -rf /", "a b", "$(id)", "a`b`", "a|b", "a&b", "a\nb", "a/b"] {
            let refusal = ModelName::parse("model", name).unwrap_err();
            // A control character is echoed as an escape.
            let shown = if name == "a\nb" { "a\\u{a}b" } else { name };
            assert_eq!(refusal.item, shown);
            assert!(refusal.reason.starts_with(&format!("model {name:?} ")));
            assert!(refusal.reason.contains(NAME_PATTERN));
        }
    }

    #[test]
    fn refuses_names_that_start_with_a_dash_or_underscore_or_are_empty() {
        for name in ["-rf", "_x", "", "ümlaut"] {
            assert!(TestCorpus::parse("tests", name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn refusal_names_the_field_it_came_from() {
        let refusal = TestCorpus::parse("test.test_corpus[1]", "a b").unwrap_err();
        assert_eq!(
            refusal.reason,
            format!(
                "test.test_corpus[1] \"a b\" is not a valid test corpus name: it must match {NAME_PATTERN}"
            )
        );
    }
}
