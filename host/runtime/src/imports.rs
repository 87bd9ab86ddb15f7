//! The host's side of the guest's imports (`wit/emmaa.wit`): the state they
//! work on for one event ([`HostState`]), and each request
//! recorded as actions in the order the guest made it, performed through
//! the [`Effects`] backend at most `EMMAA_MAX_IN_FLIGHT` at a time, started
//! only while there is time left before the deadline, claimed in the
//! [`ledger`](crate::ledger) first when it stands for a unit of work, and
//! its result kept (so the host knows what went through even if the guest
//! then fails). With a [`Tape`] the calls are recorded for the flight
//! recorder, or answered from a trace instead of performed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt};

use crate::action::Action;
use crate::answer::{DEADLINE_REACHED, DEADLINE_REACHED_UNCLAIMED, Effect};
use crate::bindings::emmaa::pipeline::batch::Submission;
use crate::bindings::emmaa::pipeline::errors::AwsError;
use crate::bindings::emmaa::pipeline::functions::Invoked;
use crate::bindings::emmaa::pipeline::{batch, environment, errors, functions, storage};
use crate::clock;
use crate::context::EventContext;
use crate::effects::patient::Patient;
use crate::effects::{Effects, ErrorKind, Invocation, Job};
use crate::functions::PipelineFunction;
use crate::gate::Gate;
use crate::gate::not_attempted;
use crate::ledger::{Claimant, Handled, Ledger};
use crate::limits::{CALL_RESERVE, MemoryLimiter};
use crate::limits::{DEADLINE_MARGIN, LEDGER_OVERLAP};
use crate::settings::Settings;
use crate::trace::{Call, Claimed, Recording, Reply, Tape, TraceCall};
use crate::wasi::WasiState;

/// The store's data: what the host functions need for one event, and what
/// they did.
pub struct HostState {
    pub(crate) effects: Arc<dyn Effects>,
    /// The same backend, for how often it waited out throttling.
    pub(crate) patience: Arc<Patient>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) context: EventContext,
    /// When the guest is interrupted.
    pub(crate) interrupt_at: Instant,
    /// The calls to AWS services, bounded and timed.
    pub(crate) gate: Gate,
    pub(crate) actions: Vec<Action>,
    /// The places in `actions` of calls the host did not make (answered
    /// `not-attempted`: too little time was left).
    pub(crate) not_attempted: Vec<usize>,
    /// Every invocation and submission, as it turned out.
    pub(crate) done: Vec<Effect>,
    pub(crate) limiter: MemoryLimiter,
    /// The last error the guest logged (a panic's message, say).
    pub(crate) last_guest_error: Option<String>,
    /// The function the guest serves, whose reach bounds its calls; `None`:
    /// it may reach nothing.
    pub(crate) function: Option<&'static PipelineFunction>,
    /// Whether the calls are recorded, or answered from a trace.
    pub(crate) tape: Tape,
    /// The answers to WASI: the clocks, randomness, standard streams.
    pub(crate) wasi: WasiState,
}

impl HostState {
    pub fn new(
        effects: Arc<dyn Effects>,
        settings: Arc<Settings>,
        context: EventContext,
        function: Option<&'static PipelineFunction>,
    ) -> Self {
        let interrupt_at = interrupt_point(clock::now(), context.time_left);
        let gate = Gate::new(settings.max_in_flight, interrupt_at);
        let wasi = WasiState::new(
            &context.function_name,
            &context.request_id,
            context.now,
            context.time_left.saturating_sub(DEADLINE_MARGIN),
        );
        let patience = Arc::new(Patient::new(
            effects,
            interrupt_at.checked_sub(CALL_RESERVE).unwrap_or(interrupt_at),
            &context.request_id,
        ));
        HostState {
            gate,
            effects: patience.clone(),
            patience,
            settings,
            context,
            interrupt_at,
            actions: Vec::new(),
            not_attempted: Vec::new(),
            done: Vec::new(),
            limiter: MemoryLimiter::default(),
            last_guest_error: None,
            function,
            tape: Tape::Off,
            wasi,
        }
    }
}

/// When a guest that started at `start` with `time_left` is interrupted.
fn interrupt_point(start: Instant, time_left: Duration) -> Instant {
    start + time_left.saturating_sub(DEADLINE_MARGIN)
}

/// The answer to a call the deadline cut short. `unclaimed`: the call was
/// sent with no claim in the ledger (the ledger off, or its role may not
/// write it), so a retry of the event could make it twice: the event is
/// then answered, not failed (`answer::conclude`), and the item says so.
fn deadline_reached(unclaimed: bool) -> AwsError {
    match unclaimed {
        false => AwsError::new(
            ErrorKind::Unavailable,
            DEADLINE_REACHED,
            "no answer before the function's deadline; the call may still have gone through \
             (under its claim: the event's retry looks for it before making it again)",
        ),
        true => AwsError::new(
            ErrorKind::Unavailable,
            DEADLINE_REACHED_UNCLAIMED,
            "no answer before the function's deadline; the call may still have gone through, \
             and no claim covers it: the event is answered, not retried, so that it is not made \
             twice; see whether it went through",
        ),
    }
}

/// One call's result, and the actions it took.
type Performed<R> = (Result<R, AwsError>, Vec<Action>);

impl HostState {
    /// Performs `calls`, each through the [`Gate`](crate::gate::Gate) (at
    /// most `max_in_flight` at a time, none without time left); the answers
    /// come back in the order of `calls`. A call cut short at the interrupt
    /// point, or not started, has the `planned` action.
    ///
    /// `call` gets a flag to raise just before it sends a call that no
    /// claim covers: cut short after that, the call may have gone through
    /// unclaimed ([`DEADLINE_REACHED_UNCLAIMED`]).
    async fn bounded<T, R, F>(
        &self,
        calls: Vec<T>,
        planned: impl Fn(&T) -> Action,
        call: impl Fn(Arc<dyn Effects>, T, Arc<AtomicBool>) -> F,
    ) -> Vec<Performed<R>>
    where
        F: Future<Output = Performed<R>>,
    {
        let effects = &self.effects;
        let interrupt_at = self.interrupt_at;
        let (call, planned) = (&call, &planned);
        stream::iter(calls)
            .map(|item| async move {
                let actions = vec![planned(&item)];
                let sent_unclaimed = Arc::new(AtomicBool::new(false));
                let performed = call(Arc::clone(effects), item, Arc::clone(&sent_unclaimed));
                clock::timeout_at(interrupt_at, performed)
                    .await
                    .unwrap_or_else(|_| {
                        (
                            Err(deadline_reached(sent_unclaimed.load(Ordering::SeqCst))),
                            actions,
                        )
                    })
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
        let time_left = self.interrupt_at.saturating_duration_since(clock::now()) + DEADLINE_MARGIN;
        Claimant {
            ledger,
            effects,
            gate: &self.gate,
            function: &self.context.function_name,
            request_id: &self.context.request_id,
            deadline_ms: now_ms.saturating_add(millis(time_left)),
            now_ms,
            sent_unclaimed: None,
        }
    }

    /// Refuses a call outside the function's reach (`functions.rs`), with a
    /// permission error naming the call and the reach.
    fn permit(
        &self,
        allowed: impl FnOnce(&PipelineFunction) -> bool,
        what: impl FnOnce() -> String,
    ) -> Result<(), AwsError> {
        match self.function {
            Some(function) if allowed(function) => Ok(()),
            function => Err(AwsError::new(
                ErrorKind::Denied,
                "OutsideReach",
                format!(
                    "{} may not {}: it may {}",
                    self.context.function_name,
                    what(),
                    function.map_or_else(
                        || "reach nothing (no reach was given)".to_owned(),
                        PipelineFunction::describe_reach
                    )
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
    fn record<R>(&mut self, done: Vec<Performed<R>>) -> Vec<Result<R, AwsError>> {
        done.into_iter()
            .map(|(result, actions)| {
                if matches!(&result, Err(error) if error.kind == ErrorKind::NotAttempted) {
                    self.not_attempted
                        .extend(self.actions.len()..self.actions.len() + actions.len());
                }
                self.actions.extend(actions);
                result
            })
            .collect()
    }
}

impl errors::Host for HostState {}

/// The trap for a recorded reply of another kind than its call's (a trace
/// edited by hand, or broken).
fn reply_mismatch(call: &Call) -> wasmtime::Error {
    wasmtime::Error::msg(format!(
        "the trace's reply to {call:?} is not of the kind that call gets: the trace is broken"
    ))
}

impl HostState {
    /// The call and its recorded reply when the event is replayed from a
    /// trace (the recorded actions kept); `None` when it is to be
    /// performed. The call is made only when it is replayed.
    fn played(&mut self, call: impl FnOnce() -> Call) -> wasmtime::Result<Option<(Call, Reply)>> {
        let Tape::Playing(player) = &mut self.tape else {
            return Ok(None);
        };
        let call = call();
        let (reply, actions) = player.answer(&call)?;
        self.actions.extend(actions);
        Ok(Some((call, reply)))
    }

    /// The call to keep, made only when the event is recorded: a call
    /// performed without a recording copies nothing.
    fn to_record(&self, call: impl FnOnce() -> Call) -> Option<Call> {
        matches!(self.tape, Tape::Recording(_)).then(call)
    }

    /// Replaying a run its deadline stopped, after its last call: the
    /// recorded guest got that call's answer and was stopped before it
    /// asked for more, so this one is stopped here, with the call's
    /// actions and effects taken as they were. (Running it on would burn
    /// fuel or time the recorded run never had.)
    fn stop_where_recorded(&self) -> wasmtime::Result<()> {
        match &self.tape {
            Tape::Playing(player) if player.stopped() && player.all_made() => {
                Err(wasmtime::Trap::Interrupt.into())
            }
            _ => Ok(()),
        }
    }

    /// Keeps `call` (from [`HostState::to_record`]), its reply and the
    /// actions since `first_action` in the recording.
    fn recorded(
        &mut self,
        call: Option<Call>,
        first_action: usize,
        reply: impl FnOnce(&mut Recording) -> Reply,
    ) {
        if let (Some(call), Tape::Recording(recording)) = (call, &mut self.tape) {
            let reply = reply(recording);
            recording.calls.push(TraceCall {
                call,
                reply,
                actions: self.actions[first_action..].to_vec(),
            });
        }
    }

    async fn perform_get_objects(
        &self,
        bucket: &str,
        keys: Vec<String>,
        max_size: u64,
    ) -> Vec<Performed<Vec<u8>>> {
        let planned = |key: &String| Action::S3Get {
            bucket: bucket.to_owned(),
            key: key.clone(),
        };
        self.bounded(keys, planned, |effects, key, _| async move {
            let allowed = |function: &PipelineFunction| self.in_bucket(bucket) && function.allows_read(&key);
            let read = match self.permit(allowed, || format!("read s3://{bucket}/{key}")) {
                Ok(()) => {
                    self.gate
                        .through(effects.get_object(bucket, &key, max_size))
                        .await
                }
                Err(err) => Err(err),
            };
            (read, vec![planned(&key)])
        })
        .await
    }

    async fn perform_list_prefixes(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: &str,
    ) -> Vec<Performed<Vec<String>>> {
        let planned = |(): &()| Action::S3List {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            delimiter: delimiter.to_owned(),
        };
        self.bounded(vec![()], planned, |effects, (), _| async move {
            let allowed = |function: &PipelineFunction| {
                self.in_bucket(bucket) && function.allows_list(prefix, delimiter)
            };
            let listed = match self.permit(allowed, || format!("list s3://{bucket}/{prefix}")) {
                Ok(()) => {
                    self.gate
                        .through(effects.list_prefixes(bucket, prefix, delimiter))
                        .await
                }
                Err(err) => Err(err),
            };
            (listed, vec![planned(&())])
        })
        .await
    }

    /// Each invocation's result, and whether it was claimed.
    async fn perform_invoke(&self, invocations: Vec<Invocation>) -> Vec<Performed<(Invoked, bool)>> {
        let ledger = self.settings.ledger();
        self.bounded(
            invocations,
            Action::invoke,
            |effects, invocation, sent_unclaimed| {
                let ledger = ledger.clone();
                async move {
                    let prefix = &self.settings.pipeline.function_prefix;
                    let allowed = |function: &PipelineFunction| {
                        function.allows_invoke(&invocation.function_name, prefix)
                    };
                    if let Err(err) = self.permit(allowed, || format!("invoke {}", invocation.function_name))
                    {
                        return (Err(err), vec![Action::invoke(&invocation)]);
                    }
                    match (&ledger, &invocation.work) {
                        (Some(ledger), Some(work)) => {
                            let mut claimant = self.claimant(ledger, effects.as_ref());
                            claimant.sent_unclaimed = Some(&sent_unclaimed);
                            let (outcome, actions) = claimant.invoke(&invocation, work).await;
                            let invoked = outcome.map(|outcome| match outcome {
                                Handled::Now(outcome) => (Invoked::Now(outcome), true),
                                Handled::Unclaimed(outcome) => (Invoked::Now(outcome), false),
                                Handled::Already(_) => (Invoked::Already, true),
                                Handled::InProgress(request_id) => (Invoked::InProgress(request_id), true),
                            });
                            (invoked, actions)
                        }
                        _ => {
                            sent_unclaimed.store(true, Ordering::SeqCst);
                            let outcome = self.gate.through(effects.invoke(&invocation)).await;
                            let invoked = outcome.map(|outcome| (Invoked::Now(outcome), false));
                            (invoked, vec![Action::invoke(&invocation)])
                        }
                    }
                }
            },
        )
        .await
    }

    /// Each job's submission, and whether it was claimed.
    async fn perform_submit(&self, jobs: Vec<Job>) -> Vec<Performed<(Submission, bool)>> {
        let ledger = self.settings.ledger();
        self.bounded(jobs, Action::submit, |effects, job, sent_unclaimed| {
            let ledger = ledger.clone();
            async move {
                let allowed = |function: &PipelineFunction| function.submits_jobs && self.configured(&job);
                let what = || {
                    format!(
                        "submit job {} to queue {} with {}",
                        job.name, job.queue, job.definition
                    )
                };
                if let Err(err) = self.permit(allowed, what) {
                    return (Err(err), vec![Action::submit(&job)]);
                }
                match (&ledger, &job.work) {
                    (Some(ledger), Some(work)) => {
                        let mut claimant = self.claimant(ledger, effects.as_ref());
                        claimant.sent_unclaimed = Some(&sent_unclaimed);
                        let (outcome, actions) = claimant.submit(&job, work).await;
                        let submission = outcome.map(|outcome| match outcome {
                            Handled::Now(job_id) => (Submission::Submitted(job_id), true),
                            Handled::Unclaimed(job_id) => (Submission::Submitted(job_id), false),
                            Handled::Already(job_id) => {
                                (Submission::AlreadySubmitted(job_id.unwrap_or_default()), true)
                            }
                            Handled::InProgress(request_id) => (Submission::InProgress(request_id), true),
                        });
                        (submission, actions)
                    }
                    _ => {
                        sent_unclaimed.store(true, Ordering::SeqCst);
                        let submitted = self.gate.through(effects.submit_job(&job)).await;
                        let submitted = submitted.map(|job_id| (Submission::Submitted(job_id), false));
                        (submitted, vec![Action::submit(&job)])
                    }
                }
            }
        })
        .await
    }
}

/// A claimed result as the trace keeps it.
fn claimed<T: Clone>(result: &Result<(T, bool), AwsError>) -> Result<Claimed<T>, AwsError> {
    result
        .clone()
        .map(|(result, claimed)| Claimed { result, claimed })
}

/// A claimed result as the trace gave it back.
fn unclaimed<T>(result: Result<Claimed<T>, AwsError>) -> Result<(T, bool), AwsError> {
    result.map(|Claimed { result, claimed }| (result, claimed))
}

impl storage::Host for HostState {
    async fn get_objects(
        &mut self,
        bucket: String,
        keys: Vec<String>,
        max_size: u64,
    ) -> wasmtime::Result<Vec<Result<Vec<u8>, AwsError>>> {
        let call = || Call::GetObjects {
            bucket: bucket.clone(),
            keys: keys.clone(),
            max_size,
        };
        if let Some((call, reply)) = self.played(call)? {
            let (Reply::Objects(objects), Tape::Playing(player)) = (reply, &mut self.tape) else {
                return Err(reply_mismatch(&call));
            };
            let objects = objects
                .into_iter()
                .map(|object| match object {
                    Ok(hash) => player.body(&hash).map(Ok),
                    Err(err) => Ok(Err(err)),
                })
                .collect();
            self.stop_where_recorded()?;
            return objects;
        }
        let call = self.to_record(call);
        let first_action = self.actions.len();
        let done = self.perform_get_objects(&bucket, keys, max_size).await;
        let results = self.record(done);
        self.recorded(call, first_action, |recording| {
            Reply::Objects(
                results
                    .iter()
                    .map(|result| {
                        result
                            .as_ref()
                            .map(|bytes| recording.body(bytes))
                            .map_err(Clone::clone)
                    })
                    .collect(),
            )
        });
        Ok(results)
    }

    async fn list_prefixes(
        &mut self,
        bucket: String,
        prefix: String,
        delimiter: String,
    ) -> wasmtime::Result<Result<Vec<String>, AwsError>> {
        let call = || Call::ListPrefixes {
            bucket: bucket.clone(),
            prefix: prefix.clone(),
            delimiter: delimiter.clone(),
        };
        if let Some((call, reply)) = self.played(call)? {
            let Reply::Prefixes(prefixes) = reply else {
                return Err(reply_mismatch(&call));
            };
            self.stop_where_recorded()?;
            return Ok(prefixes);
        }
        let call = self.to_record(call);
        let first_action = self.actions.len();
        let done = self.perform_list_prefixes(&bucket, &prefix, &delimiter).await;
        let listed = self.record(done).pop().unwrap_or_else(|| Err(not_attempted()));
        self.recorded(call, first_action, |_| Reply::Prefixes(listed.clone()));
        Ok(listed)
    }
}

impl functions::Host for HostState {
    async fn invoke(
        &mut self,
        invocations: Vec<Invocation>,
    ) -> wasmtime::Result<Vec<Result<Invoked, AwsError>>> {
        let call = || Call::Invoke {
            invocations: invocations.clone(),
        };
        let results = match self.played(call)? {
            Some((_, Reply::Invoked(items))) => items.into_iter().map(unclaimed).collect(),
            Some((call, _)) => return Err(reply_mismatch(&call)),
            None => {
                let call = self.to_record(call);
                let first_action = self.actions.len();
                // The invocations stay for their effects below.
                let done = self.perform_invoke(invocations.clone()).await;
                let results = self.record(done);
                self.recorded(call, first_action, |_| {
                    Reply::Invoked(results.iter().map(claimed).collect())
                });
                results
            }
        };
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
        self.stop_where_recorded()?;
        Ok(results
            .into_iter()
            .map(|result| result.map(|(invoked, _)| invoked))
            .collect())
    }
}

impl batch::Host for HostState {
    async fn submit(&mut self, jobs: Vec<Job>) -> wasmtime::Result<Vec<Result<Submission, AwsError>>> {
        let names: Vec<String> = jobs.iter().map(|job| job.name.clone()).collect();
        let call = || Call::Submit { jobs: jobs.clone() };
        let results = match self.played(call)? {
            Some((_, Reply::Submissions(items))) => items.into_iter().map(unclaimed).collect(),
            Some((call, _)) => return Err(reply_mismatch(&call)),
            None => {
                let call = self.to_record(call);
                let first_action = self.actions.len();
                let done = self.perform_submit(jobs).await;
                let results = self.record(done);
                self.recorded(call, first_action, |_| {
                    Reply::Submissions(results.iter().map(claimed).collect())
                });
                results
            }
        };
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
        self.stop_where_recorded()?;
        Ok(results
            .into_iter()
            .map(|result| result.map(|(submission, _)| submission))
            .collect())
    }
}

impl environment::Host for HostState {
    async fn get_settings(&mut self) -> wasmtime::Result<environment::Settings> {
        Ok(self.settings.pipeline.clone())
    }

    async fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(self.context.now)
    }

    async fn log(&mut self, level: environment::Level, message: String) -> wasmtime::Result<()> {
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
        Ok(())
    }
}
