//! Invoking the next handlers: one batch of invocations, recorded in the
//! order given, each reported on its own.

use serde_json::Value;

use crate::bindings::emmaa::pipeline::functions::{self, Invocation};
use crate::host::{self, Settings};
use crate::{Refusal, Report};

/// One invocation a handler wants made.
#[derive(Debug, Clone)]
pub struct Call {
    /// What the refusal names if the invocation fails (the model).
    pub item: String,
    /// The function, without `EMMAA_FUNCTION_PREFIX` (`model-update`).
    pub function: &'static str,
    pub payload: Value,
}

impl Call {
    pub fn new(item: impl Into<String>, function: &'static str, payload: Value) -> Self {
        Call {
            item: item.into(),
            function,
            payload,
        }
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
            Ok(outcome) => match outcome.function_error {
                None => report.went_through(),
                Some(kind) => report.refuse(failed(format!(
                    "failed in the function ({kind}): {}",
                    outcome.payload
                ))),
            },
            Err(err) => report.refuse(failed(format!("failed: {}", host::describe(&err)))),
        }
    }
}
