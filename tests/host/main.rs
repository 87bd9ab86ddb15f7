//! The host's tests, one module per capability. Every guest run by the
//! host against the in-memory backend (the exact actions each handler asks
//! for under every rule of the handler contract, the three kinds of answer,
//! the sandbox, the ledger, the flight recorder), and the command line over
//! the shipped example bucket and events (`command_line`).

#[path = "../support/guests.rs"]
mod support;
#[path = "../support/workspace.rs"]
mod workspace;

mod batch_handlers;
mod command_line;
mod concurrency;
mod event_shapes;
mod fan_out_handlers;
mod hardening;
mod ledger;
mod properties;
mod python;
mod reach;
mod recorder;
mod sandbox;

use concurrency::Slow;
use ledger::submitted;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use emmaa_runtime::Effects;
use emmaa_runtime::effects::local::{LocalBucket, LocalEffects, LocalLedger};
use emmaa_runtime::effects::{AwsError, Condition, ErrorKind, Invocation, InvocationOutcome, Job};
use emmaa_runtime::{Answer, Failure};
use serde_json::{Value, json};
use support::{STAMP, actions, bucket, command, run, run_as, run_in_time, run_with, s3_event, settings};

const DAILY: &str = r#"{"run_daily_update": true}"#;
const OLD_DAILY: &str = r#"{"run_model_update": true}"#;
const DAILY_TESTS: &str = r#"{"run_daily_update": false, "run_daily_tests": true}"#;
const MAKES_TESTS: &str = r#"{"make_tests": true}"#;
const IDLE: &str = r#"{"run_daily_update": "true", "make_tests": "yes"}"#;

fn get(key: &str) -> Value {
    json!({"op": "s3.get", "bucket": "emmaa", "key": key})
}

fn list_models() -> Value {
    json!({"op": "s3.list", "bucket": "emmaa", "prefix": "models/", "delimiter": "/"})
}

fn invoke(function: &str, payload: Value) -> Value {
    json!({"op": "lambda.invoke", "function_name": function, "invocation_type": "RequestResponse", "payload": payload})
}

fn submit(job_name: &str, purpose: &str, script: &str) -> Value {
    json!({
        "op": "batch.submit",
        "job_name": job_name,
        "job_queue": "emmaa-models-update-test",
        "job_definition": "emmaa_jobdef",
        "command": command(purpose, script),
        "depends_on": []
    })
}

fn refused(outcome: &emmaa_runtime::GuestRun) -> Vec<(String, String)> {
    let refused = outcome
        .response()
        .and_then(|r| r.get("refused"))
        .cloned()
        .unwrap_or(json!([]));
    refused
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["item"].as_str().unwrap().to_owned(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn success() -> Value {
    json!({"statusCode": 200, "result": "SUCCESS"})
}

fn job_success(job_ids: &[&str]) -> Value {
    json!({"statusCode": 200, "result": "SUCCESS", "job_id": job_ids.last().unwrap(), "job_ids": job_ids})
}
