//! How one event ended: the guest's answer, or a typed [`Failure`] that says
//! in words what happened, with its own Lambda `errorType` and replay
//! `kind`. When the guest fails after some of its invocations or jobs went
//! through, the host answers for it ([`salvage`]): a normal 207 listing what
//! went through and what did not, never an error that makes Lambda retry the
//! whole event and do the same work again.

use serde_json::{Map, Value, json};
use thiserror::Error;
use wasmtime::Trap;

use crate::difference::Diverged;
use crate::effects::{AwsError, ErrorKind};
use crate::limits::{Budget, DEADLINE_MARGIN};

/// Lambda's limit on a synchronous event (and so on any event): 6 MB.
pub const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024;

/// The most items a host-made answer lists; the rest are counted.
const MAX_LISTED: usize = 200;

/// Why an event got no answer from its guest.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Failure {
    /// The guest refused the event as a whole, every reason named.
    #[error("{0}")]
    Refused(String),
    #[error(
        "the event is {:.1} MB ({size} bytes); Lambda accepts at most 6 MB ({MAX_EVENT_BYTES} bytes)",
        *size as f64 / 1e6
    )]
    EventTooLarge { size: usize },
    #[error("the event is not JSON: {0}")]
    EventNotJson(String),
    #[error("the guest could not be started: {0}")]
    NotInstantiated(String),
    #[error("the guest used all of its fuel ({fuel} units, about one per wasm instruction) and was stopped")]
    OutOfFuel { fuel: u64 },
    #[error(
        "the guest used all of its {} MiB of memory (it asked for {} MiB) and was stopped",
        limit >> 20,
        asked >> 20
    )]
    OutOfMemory { asked: usize, limit: usize },
    #[error(
        "the guest was stopped {} ms before the function's deadline, which it would have passed",
        DEADLINE_MARGIN.as_millis()
    )]
    Deadline,
    #[error(
        "the guest tried to reach {0}, which the host does not allow: a guest reaches only what wit/emmaa.wit offers"
    )]
    OutsideContract(&'static str),
    #[error("the guest failed: {trap}{}", last_error.as_ref().map(|e| format!(" (it logged: {e})")).unwrap_or_default())]
    Trapped {
        trap: String,
        last_error: Option<String>,
    },
    #[error("the guest answered something that is not JSON ({error}): {answer}")]
    BadAnswer { error: String, answer: String },
    #[error(
        "the deadline came before {left} of the event's calls could be made or answered; \
         what went through is claimed, so a retry of the event does only what is left"
    )]
    CutShort { left: usize },
    #[error(
        "{failed} of the functions the event invoked failed; what went through is claimed, \
         so a retry of the event invokes them again and does only what is left"
    )]
    InvokedFailed { failed: usize },
    /// A replay from a trace stopped the guest: it asked for something
    /// other than what the trace recorded.
    #[error("the replay stopped the guest: {0}")]
    Diverged(String),
}

impl Failure {
    /// The `kind` of the replay JSON's `error`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Refused(_) => "refused",
            Failure::EventTooLarge { .. } => "event-too-large",
            Failure::EventNotJson(_) => "event-not-json",
            Failure::NotInstantiated(_) => "not-instantiated",
            Failure::OutOfFuel { .. } => "out-of-fuel",
            Failure::OutOfMemory { .. } => "out-of-memory",
            Failure::Deadline => "deadline",
            Failure::OutsideContract(_) => "outside-contract",
            Failure::Trapped { .. } => "trapped",
            Failure::BadAnswer { .. } => "bad-answer",
            Failure::CutShort { .. } => "cut-short",
            Failure::InvokedFailed { .. } => "invoked-failed",
            Failure::Diverged(_) => "diverged",
        }
    }

    /// The `errorType` of the Lambda function error.
    pub fn error_type(&self) -> &'static str {
        match self {
            Failure::Refused(_) => "EmmaaEventRefused",
            Failure::EventTooLarge { .. } => "EmmaaEventTooLarge",
            Failure::EventNotJson(_) => "EmmaaEventNotJson",
            Failure::NotInstantiated(_) => "EmmaaGuestNotInstantiated",
            Failure::OutOfFuel { .. } => "EmmaaGuestOutOfFuel",
            Failure::OutOfMemory { .. } => "EmmaaGuestOutOfMemory",
            Failure::Deadline => "EmmaaGuestDeadline",
            Failure::OutsideContract(_) => "EmmaaGuestOutsideContract",
            Failure::Trapped { .. } => "EmmaaGuestTrapped",
            Failure::BadAnswer { .. } => "EmmaaGuestBadAnswer",
            Failure::CutShort { .. } => "EmmaaEventCutShort",
            Failure::InvokedFailed { .. } => "EmmaaInvokedFunctionFailed",
            Failure::Diverged(_) => "EmmaaReplayDiverged",
        }
    }

    /// What a failed guest call means, from wasmtime's error, the budget
    /// the guest ran under and what the store saw: a refused memory growth,
    /// the guest's last logged error.
    pub fn from_trap(
        err: &wasmtime::Error,
        budget: Budget,
        memory_refused: Option<usize>,
        last_error: Option<String>,
    ) -> Self {
        match err.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => return Failure::OutOfFuel { fuel: budget.fuel },
            Some(Trap::Interrupt) => return Failure::Deadline,
            _ => {}
        }
        if let Some(diverged) = err.downcast_ref::<Diverged>() {
            return Failure::Diverged(diverged.to_string());
        }
        if let Some(asked) = memory_refused {
            return Failure::OutOfMemory {
                asked,
                limit: budget.memory,
            };
        }
        if let Some(what) = err.chain().find_map(|cause| outside_contract(&cause.to_string())) {
            return Failure::OutsideContract(what);
        }
        let trap = match err.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => err.root_cause().to_string(),
        };
        Failure::Trapped { trap, last_error }
    }
}

/// What a guest reached for, in words, from the message of the trap that an
/// import outside the contract raises (`unknown import: `wasi:...``).
fn outside_contract(message: &str) -> Option<&'static str> {
    let import = message.strip_prefix("unknown import: `")?;
    let reached = [
        ("wasi:filesystem/", "files"),
        ("wasi:cli/environment", "environment variables or arguments"),
        ("wasi:cli/std", "standard input or output"),
        ("wasi:cli/terminal", "a terminal"),
        ("wasi:cli/exit", "the process exit"),
        ("wasi:clocks/", "a clock"),
        ("wasi:sockets/", "the network"),
        ("wasi:random/", "randomness"),
        ("wasi:http/", "the network"),
    ];
    Some(
        reached
            .iter()
            .find(|(prefix, _)| import.starts_with(prefix))
            .map_or("an interface outside the contract", |(_, what)| what),
    )
}

/// The error code of a call the deadline cut short, under a claim (or
/// never sent): the event's retry looks for it before making it again.
pub const DEADLINE_REACHED: &str = "DeadlineReached";

/// The error code of a call the deadline cut short after it was sent with
/// no claim: it may have gone through, and a retry could make it twice.
pub const DEADLINE_REACHED_UNCLAIMED: &str = "DeadlineReachedUnclaimed";

/// What became of one invocation or submission the host made.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// `claimed`: under a claim in the ledger, so a retry does not repeat it.
    Invoked {
        function_name: String,
        payload: String,
        claimed: bool,
    },
    Submitted {
        job_name: String,
        job_id: String,
        claimed: bool,
    },
    /// The invoked function ran and failed; its claim was released, so a
    /// retry of the event invokes it again.
    InvokedFailed { function_name: String, payload: String },
    /// `what` names the call (the job, or the function and payload).
    Failed { what: String, error: AwsError },
}

impl Effect {
    /// Whether it went through without a claim, or may have (the deadline
    /// cut it short after it was sent unclaimed): a retry would repeat it.
    pub fn unclaimed(&self) -> bool {
        match self {
            Effect::Invoked { claimed, .. } | Effect::Submitted { claimed, .. } => !claimed,
            Effect::Failed { error, .. } => error.code == DEADLINE_REACHED_UNCLAIMED,
            Effect::InvokedFailed { .. } => false,
        }
    }

    /// Whether the deadline kept it from being made, or from being answered.
    pub fn stopped_by_deadline(&self) -> bool {
        matches!(self, Effect::Failed { error, .. }
            if error.kind == ErrorKind::NotAttempted
                || error.code == DEADLINE_REACHED
                || error.code == DEADLINE_REACHED_UNCLAIMED)
    }
}

/// How one event ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The guest's own answer.
    Guest(Value),
    /// The guest failed after some of its calls went through: the host's
    /// 207 answer says what went through and what did not.
    Salvaged { response: Value, failure: Failure },
    /// Nothing went through.
    Failed(Failure),
}

impl Answer {
    /// The answer Lambda returns, when there is one.
    pub fn response(&self) -> Option<&Value> {
        match self {
            Answer::Guest(response) | Answer::Salvaged { response, .. } => Some(response),
            Answer::Failed(_) => None,
        }
    }

    /// What went wrong, when something did.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Answer::Guest(_) => None,
            Answer::Salvaged { failure, .. } | Answer::Failed(failure) => Some(failure),
        }
    }

    /// The answer's `statusCode` (200, 207), when there is an answer.
    pub fn status_code(&self) -> Option<u64> {
        self.response()?.get("statusCode")?.as_u64()
    }
}

/// How an event ends, given the guest's answer and what its calls did.
///
/// - A guest that failed: a failure when a retry of the event would repeat
///   nothing (no call went through, or every one that did is claimed in the
///   ledger: Lambda retries an asynchronous event, and the retry does only
///   what is left); else a 207 listing what went through, what failed, and
///   why the rest was not done.
/// - A guest that answered, but the deadline kept some calls from being
///   made, or a function it invoked failed (throttled past its own
///   deadline, say): with everything that went through claimed, a failure,
///   so that the retry makes them; else the guest's answer (they are named
///   in it).
pub fn conclude(answer: Result<Value, Failure>, done: &[Effect]) -> Answer {
    let retry_repeats_nothing = !done.iter().any(Effect::unclaimed);
    let left = done.iter().filter(|effect| effect.stopped_by_deadline()).count();
    match answer {
        Ok(response) => {
            let failed = done
                .iter()
                .filter(|effect| matches!(effect, Effect::InvokedFailed { .. }))
                .count();
            match (left, failed) {
                (1.., _) if retry_repeats_nothing => Answer::Failed(Failure::CutShort { left }),
                (0, 1..) if retry_repeats_nothing => Answer::Failed(Failure::InvokedFailed { failed }),
                _ => Answer::Guest(response),
            }
        }
        // A refusal because the deadline cut calls short is the deadline's.
        Err(Failure::Refused(_)) if retry_repeats_nothing && left > 0 => {
            Answer::Failed(Failure::CutShort { left })
        }
        Err(failure) if retry_repeats_nothing => Answer::Failed(failure),
        Err(failure) => salvage(failure, done),
    }
}

/// The host's 207 for a guest that ended with `failure` after some of its
/// calls went through.
fn salvage(failure: Failure, done: &[Effect]) -> Answer {
    let mut refused = vec![json!({
        "item": "(the rest of the event)",
        "reason": format!("{failure}; whatever the handler had not yet asked for was not done"),
    })];
    let mut job_ids = Vec::new();
    let mut invoked = Vec::new();
    for effect in done {
        match effect {
            Effect::Submitted { job_id, .. } => job_ids.push(json!(job_id)),
            Effect::Invoked {
                function_name,
                payload,
                ..
            } => invoked.push(json!({"function_name": function_name, "payload": payload})),
            Effect::Failed { what, error } => refused.push(json!({
                "item": what,
                "reason": format!("{what} failed: {}: {}", error.code, error.message),
            })),
            Effect::InvokedFailed {
                function_name,
                payload,
            } => refused.push(json!({
                "item": format!("invoking {function_name} with {payload}"),
                "reason": format!("{function_name} ran and failed"),
            })),
        }
    }
    let mut response = Map::new();
    response.insert("statusCode".into(), json!(207));
    response.insert("result".into(), json!("PARTIAL"));
    insert_listed(&mut response, "refused", refused);
    if let Some(last) = job_ids.last() {
        response.insert("job_id".into(), last.clone());
    }
    insert_listed(&mut response, "job_ids", job_ids);
    insert_listed(&mut response, "invoked", invoked);
    response.insert(
        "interrupted".into(),
        json!({"kind": failure.kind(), "message": failure.to_string()}),
    );
    Answer::Salvaged {
        response: Value::Object(response),
        failure,
    }
}

/// `field` with the first [`MAX_LISTED`] of `items`, and `{field}_not_listed`
/// counting the rest; nothing when there are no items.
fn insert_listed(response: &mut Map<String, Value>, field: &str, mut items: Vec<Value>) {
    if items.is_empty() {
        return;
    }
    if items.len() > MAX_LISTED {
        response.insert(format!("{field}_not_listed"), json!(items.len() - MAX_LISTED));
        items.truncate(MAX_LISTED);
    }
    response.insert(field.into(), Value::Array(items));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submitted(n: usize) -> Effect {
        Effect::Submitted {
            job_name: format!("m{n}_update_20200204_120000"),
            job_id: format!("id-{n}"),
            claimed: false,
        }
    }

    #[test]
    fn a_failure_before_any_call_went_through_stays_a_failure() {
        let failed = Effect::Failed {
            what: "job x".into(),
            error: AwsError::new(ErrorKind::Rejected, "ClientException", "no queue"),
        };
        assert_eq!(
            conclude(
                Err(Failure::OutOfFuel {
                    fuel: Budget::RUST.fuel
                }),
                &[failed]
            ),
            Answer::Failed(Failure::OutOfFuel {
                fuel: Budget::RUST.fuel
            })
        );
    }

    #[test]
    fn a_failure_after_calls_went_through_is_a_partial_answer_naming_them() {
        let failed = Effect::Failed {
            what: "job m2_update_20200204_120000".into(),
            error: AwsError::new(ErrorKind::Rejected, "ClientException", "no queue"),
        };
        let answer = conclude(
            Err(Failure::OutOfFuel {
                fuel: Budget::RUST.fuel,
            }),
            &[submitted(0), submitted(1), failed],
        );
        let response = answer.response().unwrap();
        assert_eq!(answer.status_code(), Some(207));
        assert_eq!(response["job_ids"], json!(["id-0", "id-1"]));
        assert_eq!(response["job_id"], "id-1");
        assert_eq!(response["interrupted"]["kind"], "out-of-fuel");
        let refused = response["refused"].as_array().unwrap();
        assert_eq!(refused.len(), 2);
        assert!(
            refused[0]["reason"]
                .as_str()
                .unwrap()
                .starts_with("the guest used all of its fuel")
        );
        assert_eq!(
            refused[1]["reason"],
            "job m2_update_20200204_120000 failed: ClientException: no queue"
        );
    }

    /// A guest's refusal is the deadline's only when the deadline kept
    /// calls from being made: then the retry makes them.
    #[test]
    fn a_refusal_is_cut_short_only_when_the_deadline_kept_calls_from_being_made() {
        let refused = || Err(Failure::Refused("listing the models failed".into()));
        assert_eq!(
            conclude(refused(), &[]),
            Answer::Failed(Failure::Refused("listing the models failed".into()))
        );
        let not_made = Effect::Failed {
            what: "listing s3://emmaa/models/".into(),
            error: AwsError::new(
                ErrorKind::NotAttempted,
                "NotAttempted",
                "too little time was left",
            ),
        };
        assert_eq!(
            conclude(refused(), &[not_made]),
            Answer::Failed(Failure::CutShort { left: 1 })
        );
    }

    /// Exactly as many items as are listed: all listed, none counted.
    #[test]
    fn a_list_of_exactly_the_listed_length_counts_nothing_more() {
        let mut response = Map::new();
        insert_listed(&mut response, "job_ids", vec![json!("id"); MAX_LISTED]);
        assert_eq!(response["job_ids"].as_array().map(Vec::len), Some(MAX_LISTED));
        assert!(!response.contains_key("job_ids_not_listed"), "{response:?}");
    }

    #[test]
    fn a_salvaged_answer_lists_the_first_items_and_counts_the_rest() {
        let done: Vec<Effect> = (0..60_000).map(submitted).collect();
        let answer = conclude(Err(Failure::Deadline), &done);
        let response = answer.response().unwrap();
        assert_eq!(response["job_ids"].as_array().unwrap().len(), MAX_LISTED);
        assert_eq!(response["job_ids_not_listed"], 60_000 - MAX_LISTED);
        assert_eq!(response["job_id"], "id-59999");
    }

    #[test]
    fn a_failure_after_claimed_calls_is_a_failure_so_that_lambda_retries_the_rest() {
        let claimed = Effect::Submitted {
            job_name: "m0_update_20200204_120000".into(),
            job_id: "id-0".into(),
            claimed: true,
        };
        assert_eq!(
            conclude(
                Err(Failure::OutOfFuel {
                    fuel: Budget::RUST.fuel
                }),
                std::slice::from_ref(&claimed)
            ),
            Answer::Failed(Failure::OutOfFuel {
                fuel: Budget::RUST.fuel
            })
        );
        let not_attempted = Effect::Failed {
            what: "job m1".into(),
            error: AwsError::new(ErrorKind::NotAttempted, "NotAttempted", "no time"),
        };
        let answer = conclude(Ok(json!({"statusCode": 207})), &[claimed, not_attempted.clone()]);
        assert_eq!(answer, Answer::Failed(Failure::CutShort { left: 1 }));
        // Without claims a retry would submit m0 again: the guest's 207 stands.
        let answer = conclude(Ok(json!({"statusCode": 207})), &[submitted(0), not_attempted]);
        assert_eq!(answer, Answer::Guest(json!({"statusCode": 207})));
    }

    #[test]
    fn an_import_outside_the_contract_is_named_in_words() {
        assert_eq!(
            outside_contract(
                "unknown import: `wasi:filesystem/types@0.2.6#[method]descriptor.read-via-stream` has not been defined"
            ),
            Some("files")
        );
        assert_eq!(outside_contract("something else"), None);
    }

    #[test]
    fn an_event_too_large_is_measured_in_words() {
        assert_eq!(
            Failure::EventTooLarge { size: 31_400_000 }.to_string(),
            "the event is 31.4 MB (31400000 bytes); Lambda accepts at most 6 MB (6291456 bytes)"
        );
    }

    #[test]
    fn a_failed_invoked_function_fails_the_event_when_everything_else_is_claimed() {
        let failed = Effect::InvokedFailed {
            function_name: "emmaa-model-stats".into(),
            payload: "{}".into(),
        };
        let claimed = Effect::Submitted {
            job_name: "m0_model_stats_20200204_120000".into(),
            job_id: "id-0".into(),
            claimed: true,
        };
        let answer = conclude(Ok(json!({"statusCode": 207})), &[claimed, failed.clone()]);
        assert_eq!(answer, Answer::Failed(Failure::InvokedFailed { failed: 1 }));
        let unclaimed = Effect::Invoked {
            function_name: "emmaa-queries".into(),
            payload: "{}".into(),
            claimed: false,
        };
        let answer = conclude(Ok(json!({"statusCode": 207})), &[unclaimed, failed]);
        assert_eq!(answer, Answer::Guest(json!({"statusCode": 207})));
    }
}
