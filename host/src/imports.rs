//! The host's side of the guest's imports (`wit/emmaa.wit`): each request
//! recorded as an action in the order the guest made it, performed through
//! the [`Effects`] backend at most `EMMAA_MAX_IN_FLIGHT` at a time, started
//! only while there is time left before the deadline, and its result kept
//! (so the host knows what went through even if the guest then fails).

use std::sync::Arc;
use std::time::Instant;

use futures::stream::{self, StreamExt};
use serde_json::Value;

use crate::action::Action;
use crate::bindings::emmaa::pipeline::errors::AwsError;
use crate::bindings::emmaa::pipeline::{batch, environment, errors, functions, storage};
use crate::effects::{Effects, ErrorKind, Invocation, InvocationOutcome, Job};
use crate::settings::invocation_type_name;
use crate::store::{CALL_RESERVE, Effect, HostState};

/// The answer to a call the host did not start.
fn not_attempted() -> AwsError {
    AwsError::new(
        ErrorKind::NotAttempted,
        "NotAttempted",
        "not attempted: too little time was left before the function's deadline",
    )
}

/// The answer to a call the deadline cut short.
fn cut_short() -> AwsError {
    AwsError::new(
        ErrorKind::Unavailable,
        "DeadlineReached",
        "no answer before the function's deadline; the call may still have gone through",
    )
}

impl HostState {
    /// Performs `calls` at most `max_in_flight` at a time; the answers come
    /// back in the order of `calls`. A call is started only if at least
    /// [`CALL_RESERVE`] is left before the interrupt point, and is cut short
    /// at it.
    async fn bounded<T, R, F>(
        &self,
        calls: Vec<T>,
        call: impl Fn(Arc<dyn Effects>, T) -> F,
    ) -> Vec<Result<R, AwsError>>
    where
        F: Future<Output = Result<R, AwsError>>,
    {
        let effects = &self.effects;
        let interrupt_at = tokio::time::Instant::from_std(self.interrupt_at);
        let call = &call;
        stream::iter(calls)
            .map(|item| async move {
                if Instant::now() + CALL_RESERVE > self.interrupt_at {
                    return Err(not_attempted());
                }
                tokio::time::timeout_at(interrupt_at, call(Arc::clone(effects), item))
                    .await
                    .unwrap_or_else(|_| Err(cut_short()))
            })
            .buffered(self.settings.max_in_flight)
            .collect()
            .await
    }
}

impl errors::Host for HostState {}

impl storage::Host for HostState {
    async fn get_objects(
        &mut self,
        bucket: String,
        keys: Vec<String>,
        max_size: u64,
    ) -> Vec<Result<Vec<u8>, AwsError>> {
        self.actions.extend(keys.iter().map(|key| Action::S3Get {
            bucket: bucket.clone(),
            key: key.clone(),
        }));
        let bucket = &bucket;
        self.bounded(keys, |effects, key| async move {
            effects.get_object(bucket, &key, max_size).await
        })
        .await
    }

    async fn list_prefixes(
        &mut self,
        bucket: String,
        prefix: String,
        delimiter: String,
    ) -> Result<Vec<String>, AwsError> {
        self.actions.push(Action::S3List {
            bucket: bucket.clone(),
            prefix: prefix.clone(),
            delimiter: delimiter.clone(),
        });
        let (bucket, prefix, delimiter) = (&bucket, &prefix, &delimiter);
        self.bounded(vec![()], |effects, ()| async move {
            effects.list_prefixes(bucket, prefix, delimiter).await
        })
        .await
        .pop()
        .unwrap_or_else(|| Err(not_attempted()))
    }
}

impl functions::Host for HostState {
    async fn invoke(&mut self, invocations: Vec<Invocation>) -> Vec<Result<InvocationOutcome, AwsError>> {
        self.actions.extend(invocations.iter().map(|invocation| {
            Action::LambdaInvoke {
                function_name: invocation.function_name.clone(),
                invocation_type: invocation_type_name(invocation.invocation_type).to_owned(),
                payload: serde_json::from_str(&invocation.payload)
                    .unwrap_or_else(|_| Value::String(invocation.payload.clone())),
            }
        }));
        let outcomes = self
            .bounded(invocations.clone(), |effects, invocation| async move {
                effects.invoke(&invocation).await
            })
            .await;
        for (invocation, outcome) in invocations.into_iter().zip(&outcomes) {
            self.done.push(match outcome {
                Ok(_) => Effect::Invoked {
                    function_name: invocation.function_name,
                    payload: invocation.payload,
                },
                Err(error) => Effect::Failed {
                    what: format!(
                        "invoking {} with {}",
                        invocation.function_name, invocation.payload
                    ),
                    error: error.clone(),
                },
            });
        }
        outcomes
    }
}

impl batch::Host for HostState {
    async fn submit(&mut self, jobs: Vec<Job>) -> Vec<Result<String, AwsError>> {
        self.actions.extend(jobs.iter().map(|job| Action::BatchSubmit {
            job_name: job.name.clone(),
            job_queue: job.queue.clone(),
            job_definition: job.definition.clone(),
            command: job.command.clone(),
            depends_on: job.depends_on.clone(),
        }));
        let names: Vec<String> = jobs.iter().map(|job| job.name.clone()).collect();
        let results = self
            .bounded(jobs, |effects, job| async move { effects.submit_job(&job).await })
            .await;
        for (job_name, result) in names.into_iter().zip(&results) {
            self.done.push(match result {
                Ok(job_id) => Effect::Submitted {
                    job_name,
                    job_id: job_id.clone(),
                },
                Err(error) => Effect::Failed {
                    what: format!("job {job_name}"),
                    error: error.clone(),
                },
            });
        }
        results
    }
}

impl environment::Host for HostState {
    async fn get_settings(&mut self) -> environment::Settings {
        self.settings.pipeline.clone()
    }

    async fn now(&mut self) -> u64 {
        self.context.now
    }

    async fn log(&mut self, level: environment::Level, message: String) {
        let function = self.context.function_name.as_str();
        match level {
            environment::Level::Debug => tracing::debug!(target: "guest", function, "{message}"),
            environment::Level::Info => tracing::info!(target: "guest", function, "{message}"),
            environment::Level::Warn => tracing::warn!(target: "guest", function, "{message}"),
            environment::Level::Error => {
                tracing::error!(target: "guest", function, "{message}");
                self.last_guest_error = Some(message);
            }
        }
    }
}
