//! Invoking the next handlers: one batch of invocations, recorded in the
//! order given, each claimed as a unit of work and reported on its own.

use serde_json::{Value, json};

use crate::bindings::emmaa::pipeline::functions::{self, Invocation, Invoked};
use crate::host::{self, Settings};
use crate::work::{self, Work};
use crate::{Refusal, Report};

/// One invocation a handler wants made.
#[derive(Debug, Clone)]
pub struct Call {
    /// What the refusal names if the invocation fails (the model).
    pub item: String,
    /// The function, without `EMMAA_FUNCTION_PREFIX` (`model-update`).
    pub function: &'static str,
    pub payload: Value,
    /// The unit of work the invocation stands for.
    pub work: Work,
}

impl Call {
    /// An invocation claimed as work of this request: the function and item.
    pub fn new(item: impl Into<String>, function: &'static str, payload: Value) -> Self {
        let item = item.into();
        let work = work::in_request(&format!("{function}/{item}"));
        Call {
            item,
            function,
            payload,
            work,
        }
    }

    /// The same invocation, claimed as `work` instead.
    pub fn claiming(mut self, work: Work) -> Self {
        self.work = work;
        self
    }
}

/// Makes every call in one batch, with the configured invocation type, and
/// records in `report` each one that went through and each that failed
/// (the call itself, or the function it invoked).
pub fn invoke_all(settings: &Settings, calls: Vec<Call>, report: &mut Report) {
    if calls.is_empty() {
        return;
    }
    let invocations: Vec<Invocation> = calls
        .iter()
        .map(|call| Invocation {
            function_name: format!("{}{}", settings.function_prefix, call.function),
            invocation_type: settings.invocation_type,
            payload: call.payload.to_string(),
            work: call.work.clone(),
        })
        .collect();
    let outcomes = functions::invoke(&invocations);
    for ((call, invocation), outcome) in calls.iter().zip(&invocations).zip(outcomes) {
        let failed = |why: String| {
            Refusal::new(
                call.item.as_str(),
                format!(
                    "invoking {} with {} {why}",
                    invocation.function_name, invocation.payload
                ),
            )
        };
        match outcome {
            Ok(Invoked::Now(outcome)) => match outcome.function_error {
                None => report.went_through(),
                Some(kind) => report.refuse(failed(format!(
                    "failed in the function ({kind}): {}",
                    outcome.payload
                ))),
            },
            Ok(Invoked::Already) => {
                report.went_through();
                let invoked = json!({"function_name": invocation.function_name, "item": call.item});
                report.append("already_invoked", invoked);
            }
            Ok(Invoked::InProgress(request_id)) => {
                report.went_through();
                let invoking = json!({"function_name": invocation.function_name, "item": call.item, "request_id": request_id});
                report.append("in_progress_elsewhere", invoking);
            }
            Err(err) => report.refuse(failed(format!("failed: {}", host::describe(&err)))),
        }
    }
}
