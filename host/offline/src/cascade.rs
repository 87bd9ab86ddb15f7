//! Following a run across functions, on this machine: every invocation a
//! guest makes runs the invoked function's guest here (its whole run nested
//! under the invoking action), and a `RequestResponse` caller gets that
//! run's real answer, as on Lambda (an `Event` caller gets 202). A cycle
//! between functions is reported and not followed. `emmaa-host replay --follow`
//! is one such run; `emmaa-host simulate` (the `simulate` module) starts runs from
//! the daily schedules and from the files Batch jobs would write.

use std::collections::{BTreeMap, HashMap, VecDeque};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use emmaa_runtime::action::Action;
use emmaa_runtime::context::EventContext;
use emmaa_runtime::digest::sha256_hex;
use emmaa_runtime::effects::local::LocalEffects;
use emmaa_runtime::effects::{
    AwsError, Condition, Effects, ErrorKind, Invocation, InvocationOutcome, InvocationType, Job,
};
use emmaa_runtime::engine::{Components, EngineError, GuestRuntime};
use emmaa_runtime::functions::{FUNCTIONS, PipelineFunction, find_in};
use emmaa_runtime::guest::LoadedGuest;
use emmaa_runtime::settings::Settings;
use emmaa_runtime::trace::{Header, Recording, Tape, Trace};

use crate::quota::{Account, Environment, Limit, Place};
use crate::report::{Followed, ReportedAction, RunReport, accepted, function_error};

/// Why a cascade cannot run a function.
#[derive(Debug, thiserror::Error)]
pub enum CascadeError {
    #[error("unknown function {0:?}")]
    UnknownFunction(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What the cascade hands to whoever runs it (`emmaa-host simulate`): the jobs
/// the guests submit, and, under a model of AWS's limits, the asynchronous
/// events they send.
pub trait Watcher: Send + Sync {
    /// `job` was submitted by `function`, in request `request_id` (a run
    /// started by a delivery, or one nested under it), with the clock at
    /// `at`; answers its id.
    fn submitted(&self, function: &str, request_id: &str, at: u64, job: &Job) -> String;

    /// The ids of the jobs named `job_name` in `queue` (Batch `ListJobs`).
    fn find_jobs(&self, queue: &str, job_name: &str) -> Vec<String>;

    /// Takes an `Event` invocation to deliver on its own, as Lambda queues
    /// it, and answers true; false (the default): the cascade follows it
    /// in place.
    fn queue_event(&self, _caller: &str, _invocation: &Invocation, _request_id: &str) -> bool {
        false
    }
}

/// Runs functions and follows their invocations.
pub struct Cascade {
    runtime: GuestRuntime,
    components: Components,
    /// The functions (names without the prefix) and the guests serving them.
    functions: &'static [PipelineFunction],
    settings: Arc<Settings>,
    now: u64,
    deadline: Duration,
    effects: Arc<LocalEffects>,
    /// Each function's guest, loaded once (by function: two functions may
    /// run one guest with different reaches).
    loaded: Mutex<HashMap<&'static str, Arc<LoadedGuest>>>,
    watcher: Option<Arc<dyn Watcher>>,
    /// AWS's limits, in virtual time (`emmaa-host simulate --quotas`).
    account: Option<Arc<Account>>,
    /// Whether invocations run the invoked function (else the local
    /// backend answers them, as a plain replay does).
    follow: bool,
}

impl Cascade {
    pub fn new(
        components: Components,
        settings: Settings,
        now: u64,
        deadline: Duration,
        effects: LocalEffects,
    ) -> Result<Self, EngineError> {
        Ok(Cascade {
            runtime: GuestRuntime::new()?,
            components,
            functions: &FUNCTIONS,
            settings: Arc::new(settings),
            now,
            deadline,
            effects: Arc::new(effects),
            loaded: Mutex::default(),
            watcher: None,
            account: None,
            follow: true,
        })
    }

    /// Whether to follow invocations (the default) or let the local
    /// backend answer them.
    pub fn following(mut self, follow: bool) -> Self {
        self.follow = follow;
        self
    }

    /// Serves other functions than the pipeline's (test fixtures).
    pub fn with_functions(mut self, functions: &'static [PipelineFunction]) -> Self {
        self.functions = functions;
        self
    }

    /// Runs the guests in `runtime` (made before any guest is loaded).
    pub fn with_runtime(mut self, runtime: GuestRuntime) -> Self {
        self.runtime = runtime;
        self
    }

    /// Hands every submitted job to `watcher` instead of the local backend.
    pub fn with_watcher(mut self, watcher: Arc<dyn Watcher>) -> Self {
        self.watcher = Some(watcher);
        self
    }

    /// Counts every call against `account`'s limits, in its time: a
    /// latency, throttling and the client's retries; each run in an
    /// execution environment of its function, holding a place in the
    /// account's concurrency.
    pub fn with_account(mut self, account: Arc<Account>) -> Self {
        self.account = Some(account);
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The function `name` names (a function name with the prefix, or a
    /// guest name), and its name with the prefix.
    pub fn function(&self, name: &str) -> Option<(&'static PipelineFunction, String)> {
        let prefix = &self.settings.pipeline.function_prefix;
        find_in(self.functions, name, prefix).map(|function| (function, function.name(prefix)))
    }

    fn guest(&self, served: &'static PipelineFunction) -> Result<Arc<LoadedGuest>, CascadeError> {
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(guest) = loaded.get(served.function) {
            return Ok(guest.clone());
        }
        let guest = Arc::new(
            self.runtime
                .load_guest(&self.components, served.guest)?
                .serving(served),
        );
        loaded.insert(served.function, guest.clone());
        Ok(guest)
    }

    /// Runs `function` on `event` as request `request_id`, following every
    /// invocation it makes.
    pub async fn run(
        self: &Arc<Self>,
        function: &str,
        event: &str,
        request_id: &str,
    ) -> Result<RunReport, CascadeError> {
        let (report, _) = self
            .run_in_chain(function, event, request_id, self.now, Vec::new(), false)
            .await?;
        Ok(report)
    }

    /// As [`Cascade::run`], recording the run's calls as the flight
    /// recorder does on Lambda: the report and the run's trace.
    pub async fn run_recorded(
        self: &Arc<Self>,
        function: &str,
        event: &str,
        request_id: &str,
    ) -> Result<(RunReport, Option<Trace>), CascadeError> {
        self.run_in_chain(function, event, request_id, self.now, Vec::new(), true)
            .await
    }

    /// As [`Cascade::run`], with the clock at `now` for this run and the
    /// runs it leads to.
    pub async fn run_at(
        self: &Arc<Self>,
        function: &str,
        event: &str,
        request_id: &str,
        now: u64,
    ) -> Result<RunReport, CascadeError> {
        let (report, _) = self
            .run_in_chain(function, event, request_id, now, Vec::new(), false)
            .await?;
        Ok(report)
    }

    /// Delivers an asynchronous event (a schedule's, an S3 notification, an
    /// `Event` invocation) as Lambda does: under a model of AWS's limits,
    /// once a place in the account's concurrency is free, and again with
    /// the same request id after the function failed, as often as Lambda
    /// retries; answers the last run.
    pub async fn deliver(
        self: &Arc<Self>,
        function: &str,
        event: &str,
        request_id: &str,
    ) -> Result<RunReport, CascadeError> {
        let Some(account) = &self.account else {
            return self.run(function, event, request_id).await;
        };
        let mut tries = 0;
        loop {
            let place = account.queue_for_concurrency(function).await;
            let report = self.run(function, event, request_id).await?;
            drop(place);
            tries += 1;
            if report.error.is_none() || !account.retries_async(tries) {
                return Ok(report);
            }
            account.before_async_retry(tries - 1).await;
        }
    }

    async fn run_in_chain(
        self: &Arc<Self>,
        function: &str,
        event: &str,
        request_id: &str,
        now: u64,
        mut chain: Vec<String>,
        record: bool,
    ) -> Result<(RunReport, Option<Trace>), CascadeError> {
        let (served, name) = self
            .function(function)
            .ok_or_else(|| CascadeError::UnknownFunction(function.to_owned()))?;
        let guest = self.guest(served)?;
        chain.push(name.clone());
        let now = match &self.account {
            Some(account) => account.clock(self.now),
            None => now,
        };
        let effects = Arc::new(Following {
            cascade: self.clone(),
            chain,
            request_id: request_id.to_owned(),
            now,
            runs: Mutex::default(),
            environment: self.account.as_ref().map(|account| account.environment(&name)),
        });
        let context = EventContext {
            function_name: name.clone(),
            request_id: request_id.to_owned(),
            deadline_ms: (now * 1000)
                .saturating_add(u64::try_from(self.deadline.as_millis()).unwrap_or(u64::MAX)),
            time_left: self.deadline,
            now,
        };
        let tape = if record {
            Tape::Recording(Recording::default())
        } else {
            Tape::Off
        };
        let (outcome, tape) = guest
            .handle_taped(event, &context, effects.clone(), self.settings.clone(), tape)
            .await;
        let trace = match tape {
            Tape::Recording(recording) => {
                let header = Header {
                    function: &name,
                    guest: served.guest,
                    component: guest.component.as_deref(),
                    budget: guest.budget,
                    request_id,
                    deadline_ms: context.deadline_ms,
                    time_left_ms: u64::try_from(context.time_left.as_millis()).unwrap_or(u64::MAX),
                    now,
                    settings: &self.settings,
                    event,
                };
                Some(Trace::new(header, recording, &outcome.answer, outcome.fuel_used))
            }
            _ => None,
        };
        let mut report = RunReport::of(&name, served.guest, outcome);
        effects.attach(&mut report.actions);
        if let (Some(account), Some(environment)) = (&self.account, &effects.environment) {
            account.release(environment.clone());
        }
        Ok((report, trace))
    }
}

/// The effects of one run: the local backend's, except that invocations
/// run the invoked function here.
struct Following {
    cascade: Arc<Cascade>,
    /// The functions running, outermost first; the last is this run's.
    chain: Vec<String>,
    request_id: String,
    /// The clock of this run and those it leads to.
    now: u64,
    /// The runs of the invocations made, by function and payload, in the
    /// order they were made.
    runs: Mutex<BTreeMap<(String, String), VecDeque<Followed>>>,
    /// The execution environment it runs in, under a model of AWS's
    /// limits; taken back when the run ends.
    environment: Option<Environment>,
}

/// An invocation's key: the function and its payload as the action shows it.
fn run_key(function: &str, payload: &Value) -> (String, String) {
    (function.to_owned(), payload.to_string())
}

impl Following {
    /// Counts a call against the account's `limit` (for S3: the prefix of
    /// `key`), when the cascade has one; a synchronous invocation answers
    /// its place in the account's concurrency.
    async fn limited(&self, limit: Limit, key: &str) -> Result<Place, AwsError> {
        match (&self.cascade.account, &self.environment) {
            (Some(account), Some(environment)) => account.call(environment, limit, key).await,
            _ => Ok(Place::default()),
        }
    }

    fn record(&self, invocation: &Invocation, followed: Followed) {
        let Action::LambdaInvoke { payload, .. } = Action::invoke(invocation) else {
            return;
        };
        self.runs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(run_key(&invocation.function_name, &payload))
            .or_default()
            .push_back(followed);
    }

    /// Puts each run under the action that invoked it.
    fn attach(&self, actions: &mut [ReportedAction]) {
        let mut runs = self.runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for reported in actions {
            if let Action::LambdaInvoke {
                function_name,
                payload,
                ..
            } = &reported.action
            {
                reported.run = runs
                    .get_mut(&run_key(function_name, payload))
                    .and_then(VecDeque::pop_front)
                    .map(Box::new);
            }
        }
    }

    /// A request id for the invoked run that is the same every time the
    /// same event is replayed.
    fn child_request_id(&self, invocation: &Invocation) -> String {
        let digest = sha256_hex(
            &[
                self.request_id.as_bytes(),
                invocation.function_name.as_bytes(),
                invocation.payload.as_bytes(),
            ]
            .join(&0u8),
        );
        format!("{}/{}", self.request_id, &digest[..12])
    }
}

#[async_trait]
impl Effects for Following {
    async fn list_prefixes(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: &str,
    ) -> Result<Vec<String>, AwsError> {
        let prefixes = self
            .cascade
            .effects
            .list_prefixes(bucket, prefix, delimiter)
            .await?;
        for _page in 0..Account::list_pages(prefixes.len()) {
            self.limited(Limit::S3Read, prefix).await?;
        }
        Ok(prefixes)
    }

    async fn get_object(&self, bucket: &str, key: &str, max_size: u64) -> Result<Vec<u8>, AwsError> {
        self.limited(Limit::S3Read, key).await?;
        self.cascade.effects.get_object(bucket, key, max_size).await
    }

    async fn invoke(&self, invocation: &Invocation) -> Result<InvocationOutcome, AwsError> {
        if !self.cascade.follow {
            return self.cascade.effects.invoke(invocation).await;
        }
        let function = &invocation.function_name;
        if self.cascade.function(function).is_none() {
            return Err(AwsError::new(
                ErrorKind::NotFound,
                "ResourceNotFoundException",
                format!("Function not found: {function}"),
            ));
        }
        if self.chain.iter().any(|running| running == function) {
            let mut cycle = self.chain.clone();
            cycle.push(function.clone());
            let message = format!("not followed: a cycle {}", cycle.join(" -> "));
            self.record(invocation, Followed::Cycle { cycle });
            return Ok(match invocation.invocation_type {
                InvocationType::Event => accepted(),
                InvocationType::RequestResponse => function_error("Cycle", &message),
            });
        }
        let request_id = self.child_request_id(invocation);
        if invocation.invocation_type == InvocationType::Event
            && let Some(watcher) = &self.cascade.watcher
            && self.cascade.account.is_some()
        {
            self.limited(Limit::Latency, function).await?;
            let caller = self.chain.last().map(String::as_str).unwrap_or("");
            if watcher.queue_event(caller, invocation, &request_id) {
                return Ok(accepted());
            }
        }
        let place = match invocation.invocation_type {
            InvocationType::RequestResponse => self.limited(Limit::Invoke, function).await?,
            InvocationType::Event => Place::default(),
        };
        let run = Box::pin(self.cascade.run_in_chain(
            function,
            &invocation.payload,
            &request_id,
            self.now,
            self.chain.clone(),
            false,
        ))
        .await
        .map(|(report, _)| report)
        .map_err(|err| AwsError::new(ErrorKind::Unavailable, "ServiceException", err.to_string()))?;
        drop(place);
        let outcome = run.invocation_outcome(invocation.invocation_type);
        self.record(invocation, Followed::Ran(Box::new(run)));
        Ok(outcome)
    }

    async fn submit_job(&self, job: &Job) -> Result<String, AwsError> {
        self.limited(Limit::SubmitJob, &job.name).await?;
        match &self.cascade.watcher {
            Some(watcher) => {
                let function = self.chain.last().map(String::as_str).unwrap_or("");
                Ok(watcher.submitted(function, &self.request_id, self.now, job))
            }
            None => self.cascade.effects.submit_job(job).await,
        }
    }

    async fn get_object_tagged(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, String)>, AwsError> {
        self.limited(Limit::S3Read, key).await?;
        self.cascade.effects.get_object_tagged(bucket, key).await
    }

    async fn put_object_if(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        condition: Condition,
    ) -> Result<String, AwsError> {
        self.limited(Limit::S3Write, key).await?;
        self.cascade
            .effects
            .put_object_if(bucket, key, body, condition)
            .await
    }

    async fn delete_object_if(&self, bucket: &str, key: &str, etag: &str) -> Result<(), AwsError> {
        self.limited(Limit::S3Write, key).await?;
        self.cascade.effects.delete_object_if(bucket, key, etag).await
    }

    async fn find_jobs(&self, queue: &str, job_name: &str) -> Result<Vec<String>, AwsError> {
        self.limited(Limit::Latency, job_name).await?;
        match &self.cascade.watcher {
            Some(watcher) => Ok(watcher.find_jobs(queue, job_name)),
            None => self.cascade.effects.find_jobs(queue, job_name).await,
        }
    }
}
