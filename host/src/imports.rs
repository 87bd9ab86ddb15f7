//! The host's side of the guest's imports (`wit/emmaa.wit`): each request
//! recorded as actions in the order the guest made it, performed through
//! the [`Effects`] backend at most `EMMAA_MAX_IN_FLIGHT` at a time, started
//! only while there is time left before the deadline, claimed in the
//! [`ledger`](crate::ledger) first when it stands for a unit of work, and
//! its result kept (so the host knows what went through even if the guest
//! then fails).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use futures::stream::{self, StreamExt};

use crate::action::Action;
use crate::bindings::emmaa::pipeline::batch::Submission;
use crate::bindings::emmaa::pipeline::errors::AwsError;
use crate::bindings::emmaa::pipeline::functions::Invoked;
use crate::bindings::emmaa::pipeline::{batch, environment, errors, functions, storage};
use crate::effects::{Effects, ErrorKind, Invocation, Job};
use crate::guests::Guest;
use crate::ledger::{Claimant, Ledger, Outcome};
use crate::store::{DEADLINE_MARGIN, Effect, HostState, LEDGER_OVERLAP, not_attempted};

/// The answer to a call the deadline cut short.
fn cut_short() -> AwsError {
    AwsError::new(
        ErrorKind::Unavailable,
        "DeadlineReached",
        "no answer before the function's deadline; the call may still have gone through",
    )
}

/// One call's result, and the actions it took.
type Done<R> = (Result<R, AwsError>, Vec<Action>);

impl HostState {
    /// Performs `calls`, each through the [`Gate`](crate::store::Gate) (at
    /// most `max_in_flight` at a time, none without time left); the answers
    /// come back in the order of `calls`. A call cut short at the interrupt
    /// point, or not started, has the `planned` action.
    async fn bounded<T, R, F>(
        &self,
        calls: Vec<T>,
        planned: impl Fn(&T) -> Action,
        call: impl Fn(Arc<dyn Effects>, T) -> F,
    ) -> Vec<Done<R>>
    where
        F: Future<Output = Done<R>>,
    {
        let effects = &self.effects;
        let interrupt_at = self.interrupt_at;
        let (call, planned) = (&call, &planned);
        stream::iter(calls)
            .map(|item| async move {
                let actions = vec![planned(&item)];
                tokio::time::timeout_at(interrupt_at, call(Arc::clone(effects), item))
                    .await
                    .unwrap_or_else(|_| (Err(cut_short()), actions))
            })
            .buffered(self.settings.max_in_flight * LEDGER_OVERLAP)
            .collect()
            .await
    }

    /// The claimant for this event's work. Its claims hold until the
    /// function's deadline by the wall clock (in replay, the event's
    /// `deadline-ms` follows `--now`, which may be years ago).
    fn claimant<'a>(&'a self, ledger: &'a Ledger, effects: &'a dyn Effects) -> Claimant<'a> {
        let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let now_ms = millis(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default());
        let time_left = self.interrupt_at.saturating_duration_since(Instant::now()) + DEADLINE_MARGIN;
        Claimant {
            ledger,
            effects,
            gate: &self.gate,
            function: &self.context.function_name,
            request_id: &self.context.request_id,
            deadline_ms: now_ms.saturating_add(millis(time_left)),
            now_ms,
        }
    }

    /// Refuses a call outside the function's reach (`host/src/guests.rs`),
    /// with a permission error naming the call and the reach.
    fn permit(
        &self,
        allowed: impl FnOnce(&Guest) -> bool,
        what: impl FnOnce() -> String,
    ) -> Result<(), AwsError> {
        match self.reach {
            Some(reach) if allowed(reach) => Ok(()),
            reach => Err(AwsError::new(
                ErrorKind::Denied,
                "OutsideReach",
                format!(
                    "{} may not {}: it may {}",
                    self.context.function_name,
                    what(),
                    reach.map_or_else(|| "reach nothing (no reach was given)".to_owned(), Guest::reach)
                ),
            )),
        }
    }

    fn in_bucket(&self, bucket: &str) -> bool {
        bucket == self.settings.pipeline.bucket
    }

    /// Whether `job` goes to the configured queues and definitions.
    fn configured(&self, job: &Job) -> bool {
        let pipeline = &self.settings.pipeline;
        [&pipeline.job_queue, &pipeline.large_job_queue].contains(&&job.queue)
            && [&pipeline.job_definition, &pipeline.large_job_definition].contains(&&job.definition)
    }

    /// Records the actions of `done`, in order, and answers the results.
    fn record<R>(&mut self, done: Vec<Done<R>>) -> Vec<Result<R, AwsError>> {
        done.into_iter()
            .map(|(result, actions)| {
                self.actions.extend(actions);
                result
            })
            .collect()
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
        let bucket = &bucket;
        let state: &HostState = self;
        let planned = |key: &String| Action::S3Get {
            bucket: bucket.clone(),
            key: key.clone(),
        };
        let done = state
            .bounded(keys, planned, |effects, key| async move {
                let allowed = |reach: &Guest| state.in_bucket(bucket) && reach.allows_read(&key);
                let read = match state.permit(allowed, || format!("read s3://{bucket}/{key}")) {
                    Ok(()) => {
                        state
                            .gate
                            .through(effects.get_object(bucket, &key, max_size))
                            .await
                    }
                    Err(err) => Err(err),
                };
                (read, vec![planned(&key)])
            })
            .await;
        self.record(done)
    }

    async fn list_prefixes(
        &mut self,
        bucket: String,
        prefix: String,
        delimiter: String,
    ) -> Result<Vec<String>, AwsError> {
        let planned = |(): &()| Action::S3List {
            bucket: bucket.clone(),
            prefix: prefix.clone(),
            delimiter: delimiter.clone(),
        };
        let (bucket, prefix, delimiter) = (&bucket, &prefix, &delimiter);
        let state: &HostState = self;
        let done = state
            .bounded(vec![()], planned, |effects, ()| async move {
                let allowed = |reach: &Guest| state.in_bucket(bucket) && reach.allows_list(prefix, delimiter);
                let listed = match state.permit(allowed, || format!("list s3://{bucket}/{prefix}")) {
                    Ok(()) => {
                        state
                            .gate
                            .through(effects.list_prefixes(bucket, prefix, delimiter))
                            .await
                    }
                    Err(err) => Err(err),
                };
                (listed, vec![planned(&())])
            })
            .await;
        self.record(done).pop().unwrap_or_else(|| Err(not_attempted()))
    }
}

impl functions::Host for HostState {
    async fn invoke(&mut self, invocations: Vec<Invocation>) -> Vec<Result<Invoked, AwsError>> {
        let ledger = self.settings.ledger();
        let state: &HostState = self;
        let done = state
            .bounded(invocations.clone(), Action::invoke, |effects, invocation| {
                let ledger = ledger.clone();
                async move {
                    let prefix = &state.settings.pipeline.function_prefix;
                    let allowed = |reach: &Guest| reach.allows_invoke(&invocation.function_name, prefix);
                    if let Err(err) = state.permit(allowed, || format!("invoke {}", invocation.function_name))
                    {
                        return (Err(err), vec![Action::invoke(&invocation)]);
                    }
                    match (&ledger, &invocation.work) {
                        (Some(ledger), Some(work)) => {
                            let claimant = state.claimant(ledger, effects.as_ref());
                            let (outcome, actions) = claimant.invoke(&invocation, work).await;
                            let invoked = outcome.map(|outcome| match outcome {
                                Outcome::Now(outcome) => (Invoked::Now(outcome), true),
                                Outcome::Unclaimed(outcome) => (Invoked::Now(outcome), false),
                                Outcome::Already(_) => (Invoked::Already, true),
                                Outcome::InProgress(request_id) => (Invoked::InProgress(request_id), true),
                            });
                            (invoked, actions)
                        }
                        _ => {
                            let outcome = state.gate.through(effects.invoke(&invocation)).await;
                            let invoked = outcome.map(|outcome| (Invoked::Now(outcome), false));
                            (invoked, vec![Action::invoke(&invocation)])
                        }
                    }
                }
            })
            .await;
        let results = self.record(done);
        for (invocation, result) in invocations.into_iter().zip(&results) {
            let effect = match result {
                Ok((Invoked::Now(outcome), true)) if outcome.function_error.is_some() => {
                    Effect::InvokedFailed {
                        function_name: invocation.function_name,
                        payload: invocation.payload,
                    }
                }
                Ok((Invoked::Now(_), claimed)) => Effect::Invoked {
                    claimed: *claimed,
                    function_name: invocation.function_name,
                    payload: invocation.payload,
                },
                Ok((Invoked::Already | Invoked::InProgress(_), _)) => continue,
                Err(error) => Effect::Failed {
                    what: format!(
                        "invoking {} with {}",
                        invocation.function_name, invocation.payload
                    ),
                    error: error.clone(),
                },
            };
            self.done.push(effect);
        }
        results
            .into_iter()
            .map(|result| result.map(|(invoked, _)| invoked))
            .collect()
    }
}

impl batch::Host for HostState {
    async fn submit(&mut self, jobs: Vec<Job>) -> Vec<Result<Submission, AwsError>> {
        let ledger = self.settings.ledger();
        let names: Vec<String> = jobs.iter().map(|job| job.name.clone()).collect();
        let state: &HostState = self;
        let done = state
            .bounded(jobs, Action::submit, |effects, job| {
                let ledger = ledger.clone();
                async move {
                    let allowed = |reach: &Guest| reach.submits_jobs && state.configured(&job);
                    let what = || {
                        format!(
                            "submit job {} to queue {} with {}",
                            job.name, job.queue, job.definition
                        )
                    };
                    if let Err(err) = state.permit(allowed, what) {
                        return (Err(err), vec![Action::submit(&job)]);
                    }
                    match (&ledger, &job.work) {
                        (Some(ledger), Some(work)) => {
                            let claimant = state.claimant(ledger, effects.as_ref());
                            let (outcome, actions) = claimant.submit(&job, work).await;
                            let submission = outcome.map(|outcome| match outcome {
                                Outcome::Now(job_id) => (Submission::Submitted(job_id), true),
                                Outcome::Unclaimed(job_id) => (Submission::Submitted(job_id), false),
                                Outcome::Already(job_id) => {
                                    (Submission::AlreadySubmitted(job_id.unwrap_or_default()), true)
                                }
                                Outcome::InProgress(request_id) => (Submission::InProgress(request_id), true),
                            });
                            (submission, actions)
                        }
                        _ => {
                            let submitted = state.gate.through(effects.submit_job(&job)).await;
                            let submitted = submitted.map(|job_id| (Submission::Submitted(job_id), false));
                            (submitted, vec![Action::submit(&job)])
                        }
                    }
                }
            })
            .await;
        let results = self.record(done);
        for (job_name, result) in names.into_iter().zip(&results) {
            let effect = match result {
                Ok((Submission::Submitted(job_id), claimed)) => Effect::Submitted {
                    job_name,
                    job_id: job_id.clone(),
                    claimed: *claimed,
                },
                Ok((Submission::AlreadySubmitted(_) | Submission::InProgress(_), _)) => continue,
                Err(error) => Effect::Failed {
                    what: format!("job {job_name}"),
                    error: error.clone(),
                },
            };
            self.done.push(effect);
        }
        results
            .into_iter()
            .map(|result| result.map(|(submission, _)| submission))
            .collect()
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
