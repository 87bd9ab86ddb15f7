//! The Lambda entry point (the bundle's `bootstrap`): find the guest for
//! `AWS_LAMBDA_FUNCTION_NAME` in the bundle's manifest, load its precompiled
//! component once, then run every event through a fresh instance of it with
//! the AWS backend. A refused event becomes a Lambda function error
//! (`errorType`, `errorMessage`); a partial answer (207) is a normal answer,
//! so Lambda does not retry the items that went through.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

use crate::effects::aws::AwsEffects;
use crate::engine::GuestRuntime;
use crate::manifest::Manifest;
use crate::run::EventContext;
use crate::settings::Settings;

/// `errorType` of an event the guest refused as a whole.
pub const REFUSED_ERROR_TYPE: &str = "EmmaaEventRefused";

/// Why the function could not start.
fn startup_error(message: String) -> lambda_runtime::Error {
    tracing::error!(%message, "cannot start");
    message.into()
}

/// Serves events until Lambda stops the process.
pub async fn serve() -> Result<(), lambda_runtime::Error> {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").map_err(|_| {
        startup_error(
            "AWS_LAMBDA_FUNCTION_NAME is not set: run this as a Lambda function, or use `host replay`".into(),
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
    let guest = GuestRuntime::new()
        .and_then(|runtime| runtime.load(&root.join(&entry.component)))
        .map_err(|err| startup_error(err.to_string()))?;
    let guest = Arc::new(guest);
    let effects = Arc::new(AwsEffects::from_env().await);
    tracing::info!(function, guest = entry.guest, "ready");

    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (guest, effects, settings) = (Arc::clone(&guest), Arc::clone(&effects), Arc::clone(&settings));
        async move {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            let context = EventContext {
                function_name: event.context.env_config.function_name.clone(),
                request_id: event.context.request_id.clone(),
                deadline_ms: event.context.deadline,
                now,
            };
            let outcome = guest
                .handle(&event.payload.to_string(), &context, effects, settings)
                .await;
            tracing::info!(
                request_id = context.request_id,
                actions = outcome.actions.len(),
                fuel_used = outcome.fuel_used,
                status = outcome.status_code(),
                "handled"
            );
            match (outcome.response, outcome.error) {
                (Some(response), _) => Ok(response),
                (None, error) => {
                    // lambda_runtime logs the error it reports; no need to log it twice.
                    let error_message = error.unwrap_or_else(|| "the handler gave no answer".into());
                    Err(Diagnostic {
                        error_type: REFUSED_ERROR_TYPE.to_owned(),
                        error_message,
                    })
                }
            }
        }
    }))
    .await
}
