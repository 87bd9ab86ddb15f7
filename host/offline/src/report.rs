//! What one function did with one event, as `emmaa-host replay` prints it (the
//! replay contract's document), and what an invocation it made led to
//! when the run is followed across functions.

use serde::Serialize;
use serde_json::{Value, json};

use emmaa_runtime::Action;
use emmaa_runtime::effects::{InvocationOutcome, InvocationType};
use emmaa_runtime::guest::GuestRun;
use emmaa_runtime::trace::{RecordedAnswer, Verdict};

/// What one function did with one event: the replay contract's document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub function: String,
    pub guest: String,
    pub response: Option<Value>,
    pub error: Option<ErrorReport>,
    pub actions: Vec<ReportedAction>,
    /// With `replay --trace`: whether the replay did what the trace
    /// recorded, and if not, the first difference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Verdict>,
}

/// Why the guest gave no answer of its own: `kind` as in
/// [`Failure::kind`](emmaa_runtime::Failure::kind).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorReport {
    pub kind: &'static str,
    pub message: String,
    /// Lambda's `errorType` for it.
    #[serde(skip)]
    pub error_type: &'static str,
}

impl RunReport {
    /// 0 when everything went through; 1 for a partial answer or a failure.
    pub fn exit_code(&self) -> i32 {
        let status = self
            .response
            .as_ref()
            .and_then(|response| response.get("statusCode")?.as_u64());
        if status == Some(200) { 0 } else { 1 }
    }

    pub fn of(function: &str, guest: &str, outcome: GuestRun) -> RunReport {
        RunReport {
            function: function.to_owned(),
            guest: guest.to_owned(),
            response: outcome.answer.response().cloned(),
            error: outcome.answer.failure().map(|failure| ErrorReport {
                kind: failure.kind(),
                message: failure.to_string(),
                error_type: failure.error_type(),
            }),
            actions: outcome
                .actions
                .into_iter()
                .enumerate()
                .map(|(at, action)| ReportedAction {
                    attempted: !outcome.not_attempted.contains(&at),
                    ..ReportedAction::from(action)
                })
                .collect(),
            trace: None,
        }
    }

    /// The run's answer as the trace format keeps answers.
    pub fn recorded_answer(&self) -> RecordedAnswer {
        RecordedAnswer {
            response: self.response.clone(),
            error: self
                .error
                .as_ref()
                .map(|error| json!({"kind": error.kind, "message": error.message})),
        }
    }

    /// What Lambda answers a caller of this run.
    pub(crate) fn invocation_outcome(&self, invocation_type: InvocationType) -> InvocationOutcome {
        match (invocation_type, &self.response, &self.error) {
            (InvocationType::Event, _, _) => accepted(),
            (InvocationType::RequestResponse, Some(response), _) => InvocationOutcome {
                status_code: 200,
                payload: response.to_string(),
                function_error: None,
            },
            (InvocationType::RequestResponse, None, error) => {
                let (error_type, message) = error
                    .as_ref()
                    .map(|error| (error.error_type, error.message.clone()))
                    .unwrap_or(("Unknown", "the function gave no answer".into()));
                function_error(error_type, &message)
            }
        }
    }
}

/// Lambda's answer to an `Event` invocation: queued.
pub(crate) fn accepted() -> InvocationOutcome {
    InvocationOutcome {
        status_code: 202,
        payload: String::new(),
        function_error: None,
    }
}

/// Lambda's answer to a `RequestResponse` caller of a function that failed.
pub(crate) fn function_error(error_type: &str, message: &str) -> InvocationOutcome {
    InvocationOutcome {
        status_code: 200,
        payload: json!({"errorType": error_type, "errorMessage": message}).to_string(),
        function_error: Some("Unhandled".into()),
    }
}

/// What became of an invocation that was followed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Followed {
    /// The invoked function ran here.
    Ran(Box<RunReport>),
    /// The invoked function is already running further up this chain of
    /// invocations: following it would never end.
    Cycle { cycle: Vec<String> },
}

/// An action as a run's report shows it: with `replay --follow` and in
/// `simulate`, an invocation carries the run it led to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportedAction {
    #[serde(flatten)]
    pub action: Action,
    /// What the invoked function did, run here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<Box<Followed>>,
    /// False (and shown) when the host did not make the call: too little
    /// time was left before the deadline.
    #[serde(skip_serializing_if = "is_true")]
    pub attempted: bool,
}

fn is_true(value: &bool) -> bool {
    *value
}

impl From<Action> for ReportedAction {
    fn from(action: Action) -> Self {
        ReportedAction {
            action,
            run: None,
            attempted: true,
        }
    }
}
