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

/// Unicode's bidirectional controls: they reorder what a screen shows
/// (U+202E makes `exe.txt` read as `txt.exe`), so an echoed value shows
/// them as escapes.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character and bidirectional control written
/// as an escape (`\u{202e}`).
fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || is_bidi_control(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// `value` cut to [`MAX_QUOTED_CHARS`] characters, with how much was cut,
/// its control and bidirectional characters escaped: what an answer echoes
/// of a value (a refused item) shows it as it is.
pub fn cut(value: &str) -> String {
    let (head, more) = split(value);
    format!("{}{more}", escaped(head))
}

/// `value` in double quotes (`"a b"`), cut: `"`, `\\`, tab, CR, LF and NUL
/// written as in a string literal, every other control and bidirectional
/// character as `\u{...}`, the rest as it is. No Unicode table but the
/// control characters' (a fixed set), so the Python guests quote the same.
pub fn quote(value: &str) -> String {
    let (head, more) = split(value);
    let mut out = String::with_capacity(head.len() + 2);
    out.push('"');
    for c in head.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() || is_bidi_control(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out.push('"');
    format!("{out}{more}")
}

/// A JSON value as JSON text, cut.
pub fn json(value: &Value) -> String {
    cut(&value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidirectional_characters_are_echoed_as_escapes() {
        assert_eq!(cut("exe\u{202e}txt.\u{1b}[2J"), "exe\\u{202e}txt.\\u{1b}[2J");
        assert_eq!(quote("a\u{2066}b\n"), "\"a\\u{2066}b\\n\"");
        assert_eq!(cut("päth/ünïcode"), "päth/ünïcode");
    }

    #[test]
    fn only_control_and_bidirectional_characters_are_escaped_whatever_the_unicode_version() {
        // As the Python guests quote: no Unicode table but the control
        // characters' decides (a combining mark, a zero-width space and a
        // sign newer than some Python's tables are written as they are).
        assert_eq!(
            quote("\u{301}a\u{301}\u{200b}\u{20c1}"),
            "\"\u{301}a\u{301}\u{200b}\u{20c1}\""
        );
        assert_eq!(quote("a\"b\\c\td\0\u{85}"), "\"a\\\"b\\\\c\\td\\0\\u{85}\"");
    }

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
