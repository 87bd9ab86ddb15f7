//! Values quoted in refusals. A refusal names the value it refuses, but a
//! value can be megabytes long (a model name in a hostile event, a whole
//! event): quoted, it is cut to a length an operator can read and an answer
//! can carry many of.

use serde_json::Value;

/// The most characters of a value a refusal quotes.
pub const MAX_QUOTED_CHARS: usize = 200;

/// The first [`MAX_QUOTED_CHARS`] characters of `value`, and what a cut
/// value ends with (`... (N more characters)`; nothing when it is whole).
fn split(value: &str) -> (&str, String) {
    match value.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => {
            let more = value[end..].chars().count();
            (&value[..end], format!("... ({more} more characters)"))
        }
        None => (value, String::new()),
    }
}

/// `value` cut to [`MAX_QUOTED_CHARS`] characters, with how much was cut.
pub fn cut(value: &str) -> String {
    let (head, more) = split(value);
    format!("{head}{more}")
}

/// `value` as a Rust string literal (`"a b"`), cut.
pub fn quote(value: &str) -> String {
    let (head, more) = split(value);
    format!("{head:?}{more}")
}

/// A JSON value as JSON text, cut.
pub fn json(value: &Value) -> String {
    cut(&value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole() {
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(cut("a b"), "a b");
    }

    #[test]
    fn long_values_are_cut_and_say_how_much_was_left_out() {
        let long = "x".repeat(5_000_000);
        let quoted = quote(&long);
        assert!(quoted.len() < 300, "{}", quoted.len());
        assert!(quoted.ends_with("... (4999800 more characters)"), "{quoted}");
        assert!(cut(&long).starts_with(&"x".repeat(MAX_QUOTED_CHARS)));
    }

    #[test]
    fn cutting_keeps_whole_characters() {
        let long = "é".repeat(300);
        assert!(quote(&long).starts_with(&format!("\"{}\"", "é".repeat(200))));
    }
}
