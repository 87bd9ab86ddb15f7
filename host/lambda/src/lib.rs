//! The Lambda entry point (the bundle's `bootstrap`): find the guest for
//! `AWS_LAMBDA_FUNCTION_NAME` in the bundle's manifest, load its precompiled
//! component once, then run every event through a fresh instance of it with
//! the AWS backend ([`handle_event`]). A failed event becomes a Lambda
//! function error whose `errorType` says how it failed (`EmmaaEventRefused`,
//! `EmmaaGuestOutOfFuel`, ...); a partial answer (207) is a normal answer, so
//! Lambda does not retry the items that went through.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use serde_json::value::RawValue;

pub mod metrics;

use emmaa_aws::AwsEffects;
use emmaa_runtime::answer::{Answer, Failure};
use emmaa_runtime::context::EventContext;
use emmaa_runtime::effects::{Condition, Effects};
use emmaa_runtime::engine::GuestRuntime;
use emmaa_runtime::functions::{self, PipelineFunction};
use emmaa_runtime::guest::LoadedGuest;
use emmaa_runtime::manifest::Manifest;
use emmaa_runtime::settings::Settings;
use emmaa_runtime::trace::{Header, Recording, Tape, Trace};

/// Why the function could not start.
fn startup_error(message: String) -> lambda_runtime::Error {
    tracing::error!(%message, "cannot start");
    message.into()
}

/// Serves events until Lambda stops the process.
pub async fn serve() -> Result<(), lambda_runtime::Error> {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").map_err(|_| {
        startup_error(
            "AWS_LAMBDA_FUNCTION_NAME is not set: run this as a Lambda function, or use `emmaa-host replay`"
                .into(),
        )
    })?;
    let root = std::env::var_os("LAMBDA_TASK_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::current_exe().ok()?.parent().map(PathBuf::from))
        .ok_or_else(|| startup_error("cannot find the bundle: LAMBDA_TASK_ROOT is not set".into()))?;
    let manifest = Manifest::read(&root).map_err(|err| startup_error(err.to_string()))?;
    let entry = manifest.functions.get(&function).ok_or_else(|| {
        let known: Vec<&str> = manifest.functions.keys().map(String::as_str).collect();
        startup_error(format!(
            "this bundle has no component for function {function:?} (it serves {known:?}): \
             rebuild it with `deploy upload <guest> {function}`"
        ))
    })?;
    let settings =
        Arc::new(Settings::from_env().map_err(|err| startup_error(format!("bad setting: {err}")))?);
    let serves = PipelineFunction::by_guest(&entry.guest).ok_or_else(|| {
        startup_error(format!(
            "the manifest names guest {:?} for {function:?}, which is none of the pipeline's: {}",
            entry.guest,
            functions::known_names(&settings.pipeline.function_prefix)
        ))
    })?;
    // The two slow steps of the start, at once: the engine and component
    // (CPU) on a blocking thread, the AWS clients (files: credentials, TLS
    // roots) here: 8.4 ms to the first answer one after the other, 7.8 ms
    // at once (docs/benchmarks.md).
    let loading = {
        let (root, entry) = (root.clone(), entry.clone());
        tokio::task::spawn_blocking(move || {
            GuestRuntime::new().and_then(|runtime| runtime.load_entry(&root, &entry))
        })
    };
    let effects: Arc<dyn Effects> = Arc::new(AwsEffects::from_env().await);
    let guest = loading
        .await
        .map_err(|err| startup_error(format!("loading the component stopped: {err}")))?
        .map_err(|err| startup_error(err.to_string()))?;
    let guest = within_function_memory(guest.serving(serves), &root.join(&entry.component));
    tracing::info!(
        function,
        guest = entry.guest,
        language = entry.language.name(),
        fuel = guest.budget.fuel,
        memory_mib = guest.budget.memory >> 20,
        "ready"
    );
    let guest = Arc::new(guest);

    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let (guest, effects, settings) = (Arc::clone(&guest), Arc::clone(&effects), Arc::clone(&settings));
        async move { handle_event(&guest, effects, settings, event).await }
    }))
    .await
}

/// `guest` with no more memory than the function has beside the host and
/// `component` (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB, which Lambda
/// sets): past it, Lambda would kill the process, and the event would end
/// without an answer.
fn within_function_memory(guest: LoadedGuest, component: &std::path::Path) -> LoadedGuest {
    let given = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok();
    let Some(function_bytes) = given.as_deref().and_then(function_memory_bytes) else {
        if let Some(given) = given {
            tracing::warn!(
                value = given,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE is not a size in MB: the guest's memory is its language's limit"
            );
        }
        return guest;
    };
    let component_bytes = std::fs::metadata(component).map_or(0, |file| file.len() as usize);
    let budget = guest.budget.within_function(function_bytes, component_bytes);
    guest.with_budget(budget)
}

/// The bytes of a function's memory size in MB, as Lambda gives it: none
/// for 0, what is not a number, or what does not fit.
fn function_memory_bytes(mb: &str) -> Option<usize> {
    mb.parse::<usize>()
        .ok()
        .filter(|mb| *mb > 0)
        .and_then(|mb| mb.checked_mul(1 << 20))
}

/// The longest a trace write may take (the SDK's own retries included).
const TRACE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes a trace at `key`, within [`TRACE_WRITE_TIMEOUT`] and 200 ms
/// before Lambda's deadline (`deadline_ms`); answers the key when it was
/// written. A write that fails is logged: it never changes the answer.
async fn write_trace(
    effects: &dyn Effects,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    deadline_ms: u64,
) -> Option<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let left = Duration::from_millis(deadline_ms)
        .saturating_sub(now)
        .saturating_sub(Duration::from_millis(200))
        .min(TRACE_WRITE_TIMEOUT);
    let bytes = body.len();
    let write = effects.put_object_if(bucket, key, body, Condition::Absent);
    match tokio::time::timeout(left, write).await {
        Ok(Ok(_)) => Some(key.to_owned()),
        Ok(Err(error)) => {
            tracing::warn!(
                key,
                bytes,
                code = error.code,
                error = error.message,
                "the trace was not written"
            );
            None
        }
        Err(_) => {
            tracing::warn!(key, bytes, "the trace was not written: no answer in time");
            None
        }
    }
}

/// Handles one Lambda event: the guest's answer, or a function error whose
/// `errorType` names the kind of failure. With `EMMAA_TRACE_PREFIX` set,
/// it first writes the event's trace.
pub async fn handle_event(
    guest: &LoadedGuest,
    effects: Arc<dyn Effects>,
    settings: Arc<Settings>,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<Value, Diagnostic> {
    let started = std::time::Instant::now();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let time_left = Duration::from_millis(event.context.deadline).saturating_sub(now);
    let context = EventContext {
        function_name: event.context.env_config.function_name.clone(),
        request_id: event.context.request_id.clone(),
        deadline_ms: event.context.deadline,
        time_left,
        now: now.as_secs(),
    };
    let tape = match settings.trace_prefix {
        Some(_) => Tape::Recording(Recording::default()),
        None => Tape::Off,
    };
    let (outcome, tape) = guest
        .handle_taped(
            event.payload.get(),
            &context,
            effects.clone(),
            settings.clone(),
            tape,
        )
        .await;
    // Before the answer: Lambda may freeze the process once it has it.
    let trace = match (&settings.trace_prefix, tape) {
        (Some(prefix), Tape::Recording(recording)) => {
            let header = Header {
                function: &context.function_name,
                guest: guest.function().map_or("", |function| function.guest),
                component: guest.component.as_deref(),
                budget: guest.budget,
                request_id: &context.request_id,
                deadline_ms: context.deadline_ms,
                time_left_ms: u64::try_from(context.time_left.as_millis()).unwrap_or(u64::MAX),
                now: context.now,
                settings: &settings,
                event: event.payload.get(),
            };
            let trace = Trace::new(header, recording, &outcome.answer, outcome.fuel_used);
            let key = trace.key(prefix, u64::try_from(now.as_millis()).unwrap_or(u64::MAX));
            write_trace(
                effects.as_ref(),
                &settings.pipeline.bucket,
                &key,
                trace.to_json(),
                event.context.deadline,
            )
            .await
        }
        _ => None,
    };
    tracing::info!(
        request_id = context.request_id,
        trace,
        actions = outcome.actions.len(),
        fuel_used = outcome.fuel_used,
        status = outcome.status_code(),
        failure = outcome.answer.failure().map(Failure::kind),
        "handled"
    );
    // The event's metrics, as a line of the log CloudWatch reads them from.
    let metrics = metrics::event_metrics(
        &context.function_name,
        &settings.pipeline.function_prefix,
        &context.request_id,
        &outcome,
        started.elapsed().as_secs_f64() * 1000.0,
        u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
    );
    println!("{metrics}");
    match outcome.answer {
        Answer::Guest(response) => Ok(response),
        Answer::Salvaged { response, failure } => {
            tracing::warn!(
                request_id = context.request_id,
                %failure,
                "the guest failed after some of its calls went through: answered 207 for it"
            );
            Ok(response)
        }
        // lambda_runtime logs the error it reports; no need to log it twice.
        Answer::Failed(failure) => Err(Diagnostic {
            error_type: failure.error_type().to_owned(),
            error_message: failure.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_memory_size_that_is_not_one_is_none() {
        assert_eq!(function_memory_bytes("256"), Some(256 << 20));
        assert_eq!(function_memory_bytes("10240"), Some(10240 << 20));
        for bad in [
            "0",
            "",
            "lots",
            "-128",
            "99999999999999999999",
            &(usize::MAX / 2).to_string(),
        ] {
            assert_eq!(function_memory_bytes(bad), None, "{bad:?}");
        }
    }
}
