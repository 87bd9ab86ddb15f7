//! Where two runs of a guest differ: the first path at which a replayed
//! call, answer or action is not the recorded one, and the trap that stops
//! a guest there.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// The first place where a replay did not do what the trace recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// The import call (from 1), or none when the calls matched and the
    /// answer (or the actions) differ.
    pub call: Option<usize>,
    /// Where in the call (or the answer) the two differ: `jobs[0].name`.
    pub at: String,
    pub recorded: Value,
    /// What the replayed guest asked for, or answered.
    pub replayed: Value,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |value: &Value| {
            let text = value.to_string();
            match text.char_indices().nth(300) {
                Some((end, _)) => format!("{}...", &text[..end]),
                None => text,
            }
        };
        match self.call {
            Some(call) => write!(f, "call {call}")?,
            None => write!(f, "after the calls")?,
        }
        write!(
            f,
            ", at {}: recorded {}, replayed {}",
            self.at,
            shown(&self.recorded),
            shown(&self.replayed)
        )
    }
}

/// The first path at which `recorded` and `replayed` differ, with the
/// values there (`null` where one has nothing).
pub fn first_difference(recorded: &Value, replayed: &Value, path: &str) -> Option<(String, Value, Value)> {
    match (recorded, replayed) {
        (Value::Object(a), Value::Object(b)) => {
            let keys = a.keys().chain(b.keys().filter(|key| !a.contains_key(*key)));
            for key in keys {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let (x, y) = (
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                );
                if let Some(found) = first_difference(x, y, &at) {
                    return Some(found);
                }
            }
            None
        }
        (Value::Array(a), Value::Array(b)) => {
            for index in 0..a.len().max(b.len()) {
                let at = format!("{path}[{index}]");
                let (x, y) = (
                    a.get(index).unwrap_or(&Value::Null),
                    b.get(index).unwrap_or(&Value::Null),
                );
                if let Some(found) = first_difference(x, y, &at) {
                    return Some(found);
                }
            }
            None
        }
        _ if recorded == replayed => None,
        _ => Some((path.to_owned(), recorded.clone(), replayed.clone())),
    }
}

/// Why a replay from a trace stopped the guest.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Diverged(pub Difference);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_difference_names_the_path_and_both_values() {
        let recorded = json!({"jobs": [{"name": "a_update", "queue": "q"}, {"name": "b"}]});
        let replayed = json!({"jobs": [{"name": "a_stats", "queue": "q"}, {"name": "b"}]});
        assert_eq!(
            first_difference(&recorded, &replayed, ""),
            Some(("jobs[0].name".into(), json!("a_update"), json!("a_stats")))
        );
        let longer = json!({"jobs": [{"name": "a_update", "queue": "q"}, {"name": "b"}, {"name": "c"}]});
        assert_eq!(
            first_difference(&recorded, &longer, ""),
            Some(("jobs[2]".into(), Value::Null, json!({"name": "c"})))
        );
        assert_eq!(first_difference(&recorded, &recorded, ""), None);
    }
}
