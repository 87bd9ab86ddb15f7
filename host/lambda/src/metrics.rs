//! One CloudWatch Embedded Metric Format line per event, on standard
//! output (the function's log): CloudWatch Logs turns it into metrics, so
//! they cost the host no call of its own. Namespace [`NAMESPACE`], each
//! metric by `FunctionName` and by `Pipeline` (the function prefix: every
//! function of one installation, which the stack's alarm watches); the
//! request id and how the event ended ride along as properties,
//! searchable in Logs Insights without adding a metric per value.

use emmaa_runtime::action::Action;
use emmaa_runtime::answer::Answer;
use emmaa_runtime::guest::GuestRun;
use serde_json::{Value, json};

pub use emmaa_runtime::settings::METRICS_NAMESPACE as NAMESPACE;

/// The metrics of one event, each with its unit.
pub const METRICS: [(&str, &str); 9] = [
    ("JobsSubmitted", "Count"),
    ("Invocations", "Count"),
    ("Refused", "Count"),
    ("Ignored", "Count"),
    ("AlreadyDone", "Count"),
    ("ThrottleWaits", "Count"),
    ("Failed", "Count"),
    ("Partial", "Count"),
    ("Duration", "Milliseconds"),
];

/// How many items an answer's `field` holds: those listed and those
/// counted in `{field}_not_listed`.
fn counted(response: Option<&Value>, field: &str) -> u64 {
    let Some(response) = response else {
        return 0;
    };
    let listed = response[field].as_array().map_or(0, Vec::len);
    let not_listed = response[format!("{field}_not_listed")].as_u64().unwrap_or(0);
    u64::try_from(listed)
        .unwrap_or(u64::MAX)
        .saturating_add(not_listed)
}

/// The EMF document of one event of `function`, which took `duration_ms`
/// and ended as `outcome` says, at `timestamp_ms`.
pub fn event_metrics(
    function: &str,
    pipeline: &str,
    request_id: &str,
    outcome: &GuestRun,
    duration_ms: f64,
    timestamp_ms: u64,
) -> Value {
    let response = outcome.answer.response();
    let invocations = outcome
        .actions
        .iter()
        .enumerate()
        .filter(|(at, action)| {
            matches!(action, Action::LambdaInvoke { .. }) && !outcome.not_attempted.contains(at)
        })
        .count();
    let (ending, failed, partial) = match &outcome.answer {
        Answer::Guest(response) if response["statusCode"] == 207 => ("partial", 0, 1),
        Answer::Guest(_) => ("answered", 0, 0),
        Answer::Salvaged { .. } => ("partial", 0, 1),
        Answer::Failed(_) => ("failed", 1, 0),
    };
    let metrics: Vec<Value> = METRICS
        .iter()
        .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
        .collect();
    let mut document = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["FunctionName"], ["Pipeline"]],
                "Metrics": metrics,
            }],
        },
        "FunctionName": function,
        "Pipeline": pipeline,
        "RequestId": request_id,
        "Ending": ending,
        "JobsSubmitted": counted(response, "job_ids"),
        "Invocations": invocations,
        "Refused": counted(response, "refused"),
        "Ignored": counted(response, "ignored"),
        "AlreadyDone": counted(response, "already_submitted") + counted(response, "already_invoked"),
        "ThrottleWaits": outcome.throttle_waits,
        "Failed": failed,
        "Partial": partial,
        "Duration": (duration_ms * 1000.0).round() / 1000.0,
    });
    if let Some(failure) = outcome.answer.failure() {
        document["Failure"] = json!(failure.kind());
    }
    document
}
