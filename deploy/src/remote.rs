//! The deployed functions, used as `sam remote invoke` and `sam logs` use
//! them: invoke one and print its answer and the log lines its request
//! wrote; read or follow a function's log lines (CloudWatch Logs), by
//! request id or level. Following polls FilterLogEvents, as `sam logs
//! --tail` does, and prints each line once.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType, LogType};
use base64::Engine as _;
use serde_json::Value;

use crate::aws::{Account, AwsProblem, Call, ProblemKind, explain};

/// A function's log group, as Lambda names it.
pub fn log_group(function: &str) -> String {
    format!("/aws/lambda/{function}")
}

/// The answer of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoked {
    pub request_id: String,
    pub status: i32,
    /// `Unhandled` or `Handled` when the function failed.
    pub function_error: Option<String>,
    pub payload: String,
    /// The last lines of the log (Lambda's `LogType=Tail`, synchronous
    /// invocations only; moto sends none).
    pub log_tail: Option<String>,
}

impl Invoked {
    /// A failed function's answer in one line: "Unhandled: errorType: errorMessage".
    pub fn failure(&self) -> Option<String> {
        let kind = self.function_error.as_deref()?;
        let error: Value = serde_json::from_str(&self.payload).unwrap_or(Value::Null);
        let part = |field: &str| error[field].as_str().map(str::to_owned);
        Some(match (part("errorType"), part("errorMessage")) {
            (Some(kind_of), Some(message)) => format!("{kind}: {kind_of}: {message}"),
            (None, Some(message)) => format!("{kind}: {message}"),
            _ => format!("{kind}: {}", self.payload.trim()),
        })
    }
}

/// One line of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub id: String,
    pub timestamp_ms: i64,
    pub message: String,
}

impl LogLine {
    /// The line's level: a JSON line's `level` (the host's logs), or
    /// `None` (Lambda's START/END/REPORT lines and plain text).
    pub fn level(&self) -> Option<String> {
        let value: Value = serde_json::from_str(self.message.trim()).ok()?;
        value["level"].as_str().map(str::to_uppercase)
    }

    /// Whether the line is Lambda's last one of request `request_id`.
    pub fn ends(&self, request_id: &str) -> bool {
        self.message
            .starts_with(&format!("REPORT RequestId: {request_id}"))
    }
}

/// The levels from least to most severe, as `tracing` names them.
const LEVELS: [&str; 5] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

/// A level as given (`warn`, `WARNING`, `error`): its place in [`LEVELS`].
pub fn parse_level(text: &str) -> Result<usize, String> {
    let upper = text.to_uppercase();
    let name = if upper == "WARNING" {
        "WARN"
    } else {
        upper.as_str()
    };
    LEVELS
        .iter()
        .position(|level| *level == name)
        .ok_or_else(|| format!("--level {text:?}: use one of {}", LEVELS.join(", ")))
}

/// Whether `line` is at `least` or more severe; a line without a level
/// passes only when no level is asked for.
pub fn at_least(line: &LogLine, least: Option<usize>) -> bool {
    match least {
        None => true,
        Some(least) => line
            .level()
            .and_then(|level| LEVELS.iter().position(|known| *known == level))
            .is_some_and(|level| level >= least),
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// The deployed functions and their logs.
pub struct Remote {
    lambda: aws_sdk_lambda::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    account: Account,
}

impl Remote {
    pub fn new(account: &Account) -> Self {
        Remote {
            lambda: aws_sdk_lambda::Client::new(&account.config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&account.config),
            account: account.clone(),
        }
    }

    /// Invokes `function` with `payload`: synchronously (with the log's
    /// tail), or queued (`Event`).
    pub async fn invoke(&self, function: &str, payload: &[u8], queued: bool) -> Result<Invoked, AwsProblem> {
        let mut request = self
            .lambda
            .invoke()
            .function_name(function)
            .payload(Blob::new(payload));
        request = if queued {
            request.invocation_type(InvocationType::Event)
        } else {
            request
                .invocation_type(InvocationType::RequestResponse)
                .log_type(LogType::Tail)
        };
        let output = request.send().await.map_err(|err| {
            let resource = format!("function {function}");
            explain(
                &err,
                Call {
                    action: "lambda:InvokeFunction",
                    resource: &resource,
                },
                &self.account,
            )
        })?;
        use aws_sdk_lambda::operation::RequestId;
        let log_tail = output.log_result().and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        });
        Ok(Invoked {
            request_id: output.request_id().unwrap_or("").to_owned(),
            status: output.status_code(),
            function_error: output.function_error().map(str::to_owned),
            payload: output
                .payload()
                .map(|blob| String::from_utf8_lossy(blob.as_ref()).into_owned())
                .unwrap_or_default(),
            log_tail,
        })
    }

    /// The lines of `function`'s log since `since_ms`, oldest first, only
    /// those holding `term` when given (a quoted term: CloudWatch Logs
    /// matches it as a phrase).
    pub async fn lines_since(
        &self,
        function: &str,
        since_ms: i64,
        term: Option<&str>,
    ) -> Result<Vec<LogLine>, AwsProblem> {
        let group = log_group(function);
        let mut lines = Vec::new();
        let mut next = None;
        loop {
            let output = self
                .logs
                .filter_log_events()
                .log_group_name(&group)
                .start_time(since_ms)
                .set_filter_pattern(term.map(|term| format!("\"{}\"", term.replace('"', ""))))
                .set_next_token(next)
                .send()
                .await
                .map_err(|err| {
                    let resource = format!("log group {group}");
                    explain(
                        &err,
                        Call {
                            action: "logs:FilterLogEvents",
                            resource: &resource,
                        },
                        &self.account,
                    )
                })?;
            lines.extend(output.events().iter().map(|event| LogLine {
                id: event.event_id().unwrap_or("").to_owned(),
                timestamp_ms: event.timestamp().unwrap_or_default(),
                message: event.message().unwrap_or("").trim_end().to_owned(),
            }));
            next = output.next_token().map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        lines.sort_by_key(|line| line.timestamp_ms);
        Ok(lines)
    }

    /// The log lines of request `request_id`: polled every `poll` until
    /// Lambda's REPORT line for it is there or `wait` has passed (logs
    /// reach CloudWatch seconds after the answer).
    pub async fn request_lines(
        &self,
        function: &str,
        request_id: &str,
        since_ms: i64,
        wait: Duration,
        poll: Duration,
    ) -> Result<Vec<LogLine>, AwsProblem> {
        let started = std::time::Instant::now();
        loop {
            // A function's first run makes its log group: until then, no lines.
            let lines = match self.lines_since(function, since_ms, Some(request_id)).await {
                Err(problem) if problem.kind == ProblemKind::Missing => Vec::new(),
                answer => answer?,
            };
            if lines.iter().any(|line| line.ends(request_id)) || started.elapsed() >= wait {
                return Ok(lines);
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// The lines not printed yet, remembered by id (lines of the same
/// millisecond come again when the next poll starts at it).
#[derive(Default)]
pub struct Seen(HashSet<String>);

impl Seen {
    /// `lines` minus those already seen; they are seen from now on.
    pub fn new_lines(&mut self, lines: Vec<LogLine>) -> Vec<LogLine> {
        lines
            .into_iter()
            .filter(|line| self.0.insert(format!("{}#{}", line.id, line.message)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(message: &str) -> LogLine {
        LogLine {
            id: message.into(),
            timestamp_ms: 0,
            message: message.into(),
        }
    }

    #[test]
    fn a_level_keeps_its_own_and_the_more_severe_lines() {
        let warn = parse_level("warning").unwrap();
        assert!(at_least(&line(r#"{"level":"ERROR","fields":{}}"#), Some(warn)));
        assert!(at_least(&line(r#"{"level":"WARN"}"#), Some(warn)));
        assert!(!at_least(&line(r#"{"level":"INFO"}"#), Some(warn)));
        assert!(!at_least(&line("REPORT RequestId: r Duration: 1 ms"), Some(warn)));
        assert!(at_least(&line("REPORT RequestId: r Duration: 1 ms"), None));
        assert_eq!(
            parse_level("loud").unwrap_err(),
            "--level \"loud\": use one of TRACE, DEBUG, INFO, WARN, ERROR"
        );
    }

    #[test]
    fn a_failed_functions_answer_is_one_line() {
        let invoked = Invoked {
            request_id: "r".into(),
            status: 200,
            function_error: Some("Unhandled".into()),
            payload: r#"{"errorType": "GuestTrapped", "errorMessage": "the guest trapped"}"#.into(),
            log_tail: None,
        };
        assert_eq!(
            invoked.failure().as_deref(),
            Some("Unhandled: GuestTrapped: the guest trapped")
        );
    }

    #[test]
    fn each_line_is_printed_once() {
        let mut seen = Seen::default();
        assert_eq!(seen.new_lines(vec![line("a"), line("b")]).len(), 2);
        let again = seen.new_lines(vec![line("b"), line("c")]);
        assert_eq!(again, vec![line("c")]);
    }
}
