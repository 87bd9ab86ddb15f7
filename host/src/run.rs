//! One event through one guest: a fresh store, the guest's requests
//! performed through an [`Effects`] backend, every action recorded in the
//! order the guest asked for it, and the guest's answer.

use std::sync::Arc;

use futures::stream::{self, StreamExt};
use serde_json::Value;
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder};

use crate::action::Action;
use crate::bindings::emmaa::pipeline::{batch, environment, errors, functions, storage};
use crate::bindings::{Context, emmaa::pipeline::errors::AwsError};
use crate::effects::{Effects, Invocation, InvocationOutcome, Job};
use crate::engine::{FUEL_PER_EVENT, LoadedGuest, MAX_GUEST_MEMORY};
use crate::settings::{Settings, invocation_type_name};

/// What Lambda tells a handler about the event.
#[derive(Debug, Clone)]
pub struct EventContext {
    pub function_name: String,
    pub request_id: String,
    /// When Lambda stops the function, in milliseconds since the Unix epoch.
    pub deadline_ms: u64,
    /// The invocation's time, in seconds since the Unix epoch.
    pub now: u64,
}

/// What the guest answered, and what it asked the host to do.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerOutcome {
    /// The handler's answer, when it gave one.
    pub response: Option<Value>,
    /// Why nothing went through (every reason), or why the guest failed.
    pub error: Option<String>,
    pub actions: Vec<Action>,
    /// The fuel the guest burned (about one unit per wasm instruction).
    pub fuel_used: u64,
}

impl HandlerOutcome {
    /// The answer's `statusCode` (200, 207), when there is an answer.
    pub fn status_code(&self) -> Option<u64> {
        status_code(self.response.as_ref()?)
    }
}

/// The `statusCode` of a handler's answer.
pub fn status_code(response: &Value) -> Option<u64> {
    response.get("statusCode")?.as_u64()
}

/// The store's data: what the host functions need for one event.
pub struct HostState {
    effects: Arc<dyn Effects>,
    settings: Arc<Settings>,
    guest_settings: environment::Settings,
    context: EventContext,
    actions: Vec<Action>,
    limits: StoreLimits,
}

impl LoadedGuest {
    /// Runs the guest on `event` (a JSON document).
    pub async fn handle(
        &self,
        event: &str,
        context: &EventContext,
        effects: Arc<dyn Effects>,
        settings: Arc<Settings>,
    ) -> HandlerOutcome {
        let state = HostState {
            effects,
            guest_settings: settings.for_guest(),
            settings,
            context: context.clone(),
            actions: Vec::new(),
            limits: StoreLimitsBuilder::new().memory_size(MAX_GUEST_MEMORY).build(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limits);
        let answer = match store.set_fuel(FUEL_PER_EVENT) {
            Ok(()) => self.call(&mut store, event, context).await,
            Err(err) => Err(format!("could not give the guest fuel: {err:#}")),
        };
        let actions = std::mem::take(&mut store.data_mut().actions);
        let fuel_used = FUEL_PER_EVENT.saturating_sub(store.get_fuel().unwrap_or_default());
        let (response, error) = match answer {
            Ok(response) => (Some(response), None),
            Err(error) => (None, Some(error)),
        };
        HandlerOutcome {
            response,
            error,
            actions,
            fuel_used,
        }
    }

    async fn call(
        &self,
        store: &mut Store<HostState>,
        event: &str,
        context: &EventContext,
    ) -> Result<Value, String> {
        let handler = self
            .pre
            .instantiate_async(&mut *store)
            .await
            .map_err(|err| format!("could not instantiate the guest: {err:#}"))?;
        let guest_context = Context {
            function_name: context.function_name.clone(),
            request_id: context.request_id.clone(),
            deadline_ms: context.deadline_ms,
        };
        let answer = handler
            .call_handle(&mut *store, event, &guest_context)
            .await
            .map_err(|err| format!("the guest failed (trapped): {err:#}"))??;
        serde_json::from_str(&answer)
            .map_err(|err| format!("the guest answered something that is not JSON ({err}): {answer}"))
    }
}

impl HostState {
    /// Performs `calls` at most `max_in_flight` at a time; the answers come
    /// back in the order of `calls`.
    async fn bounded<T, R, F>(&self, calls: Vec<T>, call: impl Fn(Arc<dyn Effects>, T) -> F) -> Vec<R>
    where
        F: Future<Output = R>,
    {
        let effects = &self.effects;
        stream::iter(calls)
            .map(|item| call(Arc::clone(effects), item))
            .buffered(self.settings.max_in_flight)
            .collect()
            .await
    }
}

impl errors::Host for HostState {}

impl storage::Host for HostState {
    async fn get_objects(&mut self, bucket: String, keys: Vec<String>) -> Vec<Result<Vec<u8>, AwsError>> {
        self.actions.extend(keys.iter().map(|key| Action::S3Get {
            bucket: bucket.clone(),
            key: key.clone(),
        }));
        let bucket = &bucket;
        self.bounded(keys, |effects, key| async move {
            effects.get_object(bucket, &key).await
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
        self.effects.list_prefixes(&bucket, &prefix, &delimiter).await
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
        self.bounded(invocations, |effects, invocation| async move {
            effects.invoke(&invocation).await
        })
        .await
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
        self.bounded(jobs, |effects, job| async move { effects.submit_job(&job).await })
            .await
    }
}

impl environment::Host for HostState {
    async fn get_settings(&mut self) -> environment::Settings {
        self.guest_settings.clone()
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
            environment::Level::Error => tracing::error!(target: "guest", function, "{message}"),
        }
    }
}
