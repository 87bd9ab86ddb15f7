//! `emmaa-host simulate`: a whole day of the pipeline, here. It starts from the
//! two daily schedules, follows every invocation (as `replay --follow`),
//! treats each Batch job as writing the file the handler contract says it
//! writes (a model state, a model manager, test results) into an overlay of
//! the bucket directory, and runs the function whose S3 trigger matches
//! each new file, until nothing is left. The bucket directory is not
//! changed.
//!
//! Virtual time: the run started k-th sees the clock at `now` + k seconds,
//! so the names of jobs and files of different runs never collide.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::cascade::{Cascade, CascadeError, Watcher};
use crate::progress::Progress;
use crate::quota::{Account, Counters, Limits};
use crate::report::{Followed, RunReport};
use emmaa_runtime::action::Action;
use emmaa_runtime::clock;
use emmaa_runtime::effects::local::{LocalBucket, LocalEffects};
use emmaa_runtime::effects::{Invocation, Job};
use emmaa_runtime::engine::{Components, EngineError, GuestRuntime};
use emmaa_runtime::functions::{FUNCTIONS, PipelineFunction};
use emmaa_runtime::settings::Settings;

/// The bucket a day runs over.
#[derive(Debug, Clone)]
pub enum SimulatedBucket {
    /// A directory, as replay's `--bucket-dir`.
    Directory(PathBuf),
    /// `--models N`: N made-up models ([`synthetic_bucket`]).
    Synthetic(usize),
    /// Objects held in memory: the configs `deploy status` read from the
    /// bucket.
    Memory(BTreeMap<String, Vec<u8>>),
}

/// N models' configs, a fixed mix: three in four updated daily (the rest
/// curated, their managers rebuilt), one in ten making tests, half with
/// one test corpus and half with two.
pub fn synthetic_bucket(models: usize) -> BTreeMap<String, Vec<u8>> {
    (0..models)
        .map(|index| {
            let corpora = ["large_corpus_tests", "simple_model_tests"];
            let config = json!({
                "run_daily_update": index % 4 != 3,
                "run_daily_tests": index % 4 == 3,
                "make_tests": index % 10 == 0,
                "test": {"test_corpus": corpora[..1 + index % 2]},
            });
            (
                format!("models/model{index:05}/config.json"),
                config.to_string().into_bytes(),
            )
        })
        .collect()
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimulateRequest {
    pub bucket: SimulatedBucket,
    /// When the day starts (seconds since the epoch).
    pub now: u64,
    pub components: Components,
    /// Each function's deadline.
    pub deadline: Duration,
    /// Deliver every S3 notification twice.
    pub redeliver: bool,
    /// Run the day under these limits, in virtual time.
    pub quotas: Option<Limits>,
}

/// What started a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Start {
    /// A daily schedule (its template parameter).
    Schedule { schedule: String },
    /// A new object, written by a job, matched the function's S3 trigger.
    File {
        key: String,
        written_by: String,
        /// A second delivery of the same notification (`--redeliver`: S3
        /// notifications are at-least-once).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        redelivery: bool,
    },
    /// A guest's `Event` invocation, which Lambda queued (under a model of
    /// AWS's limits).
    Invocation { by: String },
}

/// One function started by a schedule or a file, with every run it led to
/// nested under its invocations.
#[derive(Debug, Clone, Serialize)]
pub struct SimulatedRun {
    pub start: Start,
    /// The clock the run saw (RFC 3339).
    pub at: String,
    pub event: Value,
    pub run: RunReport,
}

/// A Batch job and what it would write.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimulatedJob {
    pub name: String,
    pub queue: String,
    pub definition: String,
    pub submitted_by: String,
    /// The model (`--model`), when the command names one.
    pub model: Option<String>,
    /// The keys the job writes, by the contract.
    pub writes: Vec<String>,
    /// The functions those keys trigger.
    pub fires: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Runs per function, invoked ones included.
    pub functions: BTreeMap<String, usize>,
    pub runs: usize,
    pub invocations: usize,
    pub jobs: usize,
    pub files: usize,
    /// Items a handler refused (its answers' `refused` lists) and runs that
    /// failed.
    pub refusals: usize,
    pub cycles: usize,
    /// Notifications delivered a second time (`--redeliver`).
    pub redelivered: usize,
    /// Jobs submitted again for the same start (0 is the goal: the ledger's
    /// claims make a redelivery do nothing twice).
    pub duplicated: usize,
    /// Per model, its jobs in the order they were submitted.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, Vec<String>>,
}

/// The day under AWS's limits (`--quotas`), against the same day with none.
#[derive(Debug, Clone, Serialize)]
pub struct Scale {
    pub limits: Limits,
    /// Jobs the day submits with no limits.
    pub expected_jobs: usize,
    /// The least time the quotas allow for them: jobs ÷ `SubmitJob`'s rate.
    pub bound_s: f64,
    /// When the last job was submitted, as a multiple of the bound (the
    /// goal: at most 1.2).
    pub of_bound: f64,
    /// Expected jobs never submitted.
    pub lost: usize,
    /// Jobs submitted more often than the day with no limits submits them.
    pub duplicated: usize,
    #[serde(flatten)]
    pub counters: Counters,
}

impl Scale {
    fn new(limits: Limits, counters: Counters) -> Self {
        Scale {
            limits,
            expected_jobs: 0,
            bound_s: 0.0,
            of_bound: 0.0,
            lost: 0,
            duplicated: 0,
            counters,
        }
    }

    /// Compares the jobs `done` with those `expected`, by name without the
    /// time (a day's work is the same whenever it runs).
    fn compare(&mut self, expected: &[SimulatedJob], done: &[SimulatedJob]) {
        let mut balance: BTreeMap<&str, i64> = BTreeMap::new();
        for job in expected {
            *balance.entry(stem(&job.name)).or_default() += 1;
        }
        for job in done {
            *balance.entry(stem(&job.name)).or_default() -= 1;
        }
        let count =
            |keep: fn(i64) -> i64| balance.values().map(|n| keep(*n)).sum::<i64>().unsigned_abs() as usize;
        self.lost = count(|n| n.max(0));
        self.duplicated = count(|n| n.min(0));
        self.expected_jobs = expected.len();
        self.bound_s = expected.len() as f64 / f64::from(self.limits.submit_per_second.max(1));
        if self.bound_s > 0.0 {
            self.of_bound = self.counters.last_submitted_s / self.bound_s;
        }
    }
}

impl Summary {
    /// The counts without the per-model lists (`--format summary`).
    pub fn counts(&self) -> Summary {
        Summary {
            models: BTreeMap::new(),
            ..self.clone()
        }
    }
}

/// The day, as `emmaa-host simulate` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Simulation {
    pub now: String,
    pub runs: Vec<SimulatedRun>,
    pub jobs: Vec<SimulatedJob>,
    pub summary: Summary,
    /// Under AWS's limits (`--quotas`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<Scale>,
}

impl Simulation {
    /// The summary (and, under the quotas, the scale) as a table for a
    /// person: one row per count, then the runs per function.
    pub fn summary_table(&self) -> String {
        let summary = &self.summary;
        let mut rows: Vec<(&str, String)> = vec![
            ("runs", summary.runs.to_string()),
            ("invocations", summary.invocations.to_string()),
            ("jobs", summary.jobs.to_string()),
            ("files", summary.files.to_string()),
            ("refusals", summary.refusals.to_string()),
            ("cycles", summary.cycles.to_string()),
            ("redelivered", summary.redelivered.to_string()),
            ("duplicated", summary.duplicated.to_string()),
        ];
        if let Some(scale) = &self.scale {
            let counters = &scale.counters;
            rows.extend([
                ("expected jobs", scale.expected_jobs.to_string()),
                ("lost", scale.lost.to_string()),
                ("duplicated jobs", scale.duplicated.to_string()),
                ("last job at", format!("{:.0} s", counters.last_submitted_s)),
                (
                    "its bound",
                    format!("{:.0} s (x{:.2})", scale.bound_s, scale.of_bound),
                ),
                ("calls", counters.calls.to_string()),
                ("throttled", counters.throttled.to_string()),
                ("retried", counters.retried.to_string()),
                ("given up", counters.given_up.to_string()),
                ("Lambda's retries", counters.lambda_retries.to_string()),
                ("peak concurrency", counters.peak_concurrency.to_string()),
                ("environments", counters.environments.to_string()),
            ]);
        }
        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        let value_width = rows.iter().map(|(_, value)| value.len()).max().unwrap_or(0);
        let mut text = format!("the day from {}\n", self.now);
        for (name, value) in &rows {
            let _ = writeln!(text, "  {name:<width$}  {value:>value_width$}");
        }
        let function_width = summary
            .functions
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .max("function".len());
        let _ = writeln!(text, "\n  {:<function_width$}  runs", "function");
        for (function, runs) in &summary.functions {
            let _ = writeln!(text, "  {function:<function_width$}  {runs:>4}");
        }
        text
    }

    fn of(
        now: u64,
        runs: Vec<SimulatedRun>,
        jobs: Vec<SimulatedJob>,
        duplicated: usize,
        scale: Option<Scale>,
    ) -> Self {
        let mut summary = summarize(&runs, &jobs);
        summary.duplicated = duplicated;
        summary.redelivered = runs
            .iter()
            .filter(|run| matches!(run.start, Start::File { redelivery: true, .. }))
            .count();
        Simulation {
            now: rfc3339(now),
            runs,
            jobs,
            summary,
            scale,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("--bucket-dir {0} is not a directory")]
    BucketDirMissing(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Cascade(#[from] CascadeError),
    #[error("the simulation's runtime: {0}")]
    Runtime(String),
    #[error(
        "--now {0}: the day could run past the year 9999, which job names and keys cannot carry: \
         start it before {LATEST_START}"
    )]
    PastYear9999(String),
}

/// The last second a day may start at: a month before the end of 9999, room
/// for the longest day (runs a second apart, or the quotas' hours).
const LATEST_START_S: u64 = 253_399_622_400;
const LATEST_START: &str = "9999-12-01T00:00:00Z";

/// `2020-02-04T12:00:00Z`.
fn rfc3339(seconds: u64) -> String {
    OffsetDateTime::from_unix_timestamp(i64::try_from(seconds).unwrap_or(i64::MAX))
        .map(|time| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                time.year(),
                u8::from(time.month()),
                time.day(),
                time.hour(),
                time.minute(),
                time.second()
            )
        })
        .unwrap_or_default()
}

/// The contract's `{date}`: `YYYY-MM-DD-HH-MM-SS`.
fn key_date(seconds: u64) -> String {
    rfc3339(seconds).trim_end_matches('Z').replace(['T', ':'], "-")
}

/// The files a job writes, by the script its command runs (the contract's
/// table of keys): a model update writes a model state, a model manager
/// update a model manager, a model test its corpus's results. Other jobs
/// write nothing the contract names.
pub fn files_written(job: &Job, at: u64) -> (Option<String>, Vec<String>) {
    let core = job.command.last().map(String::as_str).unwrap_or("");
    let words: Vec<&str> = core.split_whitespace().collect();
    let argument = |flag: &str| {
        words
            .iter()
            .position(|word| *word == flag)
            .and_then(|at| words.get(at + 1))
            .map(|value| value.to_string())
    };
    let model = argument("--model");
    let date = key_date(at);
    let script = words
        .iter()
        .find(|word| word.starts_with("scripts/") && word.ends_with(".py"))
        .copied()
        .unwrap_or("");
    let writes = match (script, &model) {
        ("scripts/run_model_update.py", Some(model)) => vec![format!("models/{model}/model_{date}.pkl")],
        ("scripts/update_model_manager.py", Some(model)) => {
            vec![format!("results/{model}/model_manager_{date}.pkl")]
        }
        ("scripts/run_model_tests_from_s3.py", Some(model)) => match argument("--tests") {
            Some(tests) => vec![format!("results/{model}/results_{tests}_{date}.json")],
            None => vec![format!("results/{model}/results_{date}.json")],
        },
        _ => Vec::new(),
    };
    (model, writes)
}

/// The functions whose S3 trigger matches `key`.
pub fn triggered_by(key: &str, prefix: &str) -> Vec<String> {
    FUNCTIONS
        .iter()
        .filter(|entry| entry.started_by(key))
        .map(|entry| format!("{prefix}{}", entry.function))
        .collect()
}

/// The S3 notification Lambda gets for a new object.
/// The notification S3 sends for a new object `key` (EventBridge off).
pub fn s3_event(bucket: &str, key: &str, sequencer: usize, at: u64) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": rfc3339(at),
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 0, "sequencer": format!("{sequencer:016X}")},
        },
    }]})
}

/// The event a daily schedule sends (EventBridge's "Scheduled Event").
fn scheduled_event(rule: &str, at: u64) -> Value {
    json!({
        "version": "0",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": rfc3339(at),
        "resources": [format!("arn:aws:events:us-east-1:123456789012:rule/{rule}")],
        "detail": {},
    })
}

/// What a delivery stands for: the start it came from. A redelivery of a
/// notification, or Lambda's retry of an event, stands for the same one.
#[derive(Default)]
struct Day {
    /// The start key of each delivery's request id.
    starts: BTreeMap<String, String>,
    /// The jobs submitted since the driver last took them.
    jobs: Vec<SimulatedJob>,
    /// Each job's id, by queue and name (Batch `ListJobs`).
    ids: BTreeMap<(String, String), Vec<String>>,
    /// Each job (its name without the time) per start it came from.
    seen: BTreeSet<(String, String)>,
    /// Jobs submitted again for a start that had already led to them.
    duplicated: usize,
}

/// A job's name without its `_YYYYMMDD_HHMMSS` time: the same work on
/// another day, or in another delivery of the same event, has the same stem.
pub fn stem(name: &str) -> &str {
    name.rsplitn(3, '_').nth(2).unwrap_or(name)
}

/// What the timed driver is told while runs go on.
enum Delivery {
    /// A job was submitted: the files it writes fire their triggers.
    Job(SimulatedJob),
    /// A guest sent an `Event` invocation: Lambda queues it.
    Event {
        caller: String,
        function: String,
        payload: String,
        request_id: String,
    },
}

/// The cascade's watcher: keeps the jobs, writes their files into the
/// overlay, and (timed) tells the driver.
struct DayWatcher {
    day: Mutex<Day>,
    written: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    driver: Option<mpsc::UnboundedSender<Delivery>>,
}

impl DayWatcher {
    fn day(&self) -> std::sync::MutexGuard<'_, Day> {
        self.day.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `request_id`'s deliveries stand for `start`.
    fn register(&self, request_id: &str, start: &Start) {
        let key = match start {
            Start::Schedule { schedule } => schedule.clone(),
            Start::File { key, .. } => key.clone(),
            Start::Invocation { .. } => return,
        };
        self.day().starts.insert(request_id.to_owned(), key);
    }
}

impl Watcher for DayWatcher {
    fn submitted(&self, function: &str, request_id: &str, at: u64, job: &Job) -> String {
        let (model, writes) = files_written(job, at);
        if let Ok(mut written) = self.written.lock() {
            for key in &writes {
                written.insert(key.clone(), Vec::new());
            }
        }
        let submitted = SimulatedJob {
            name: job.name.clone(),
            queue: job.queue.clone(),
            definition: job.definition.clone(),
            submitted_by: function.to_owned(),
            model,
            writes,
            // Filled in by the driver, with the starts it queues.
            fires: Vec::new(),
        };
        let id = format!("sim-{}", job.name);
        let mut day = self.day();
        let root = request_id.split('/').next().unwrap_or(request_id);
        let start = day.starts.get(root).cloned().unwrap_or_else(|| root.to_owned());
        if !day.seen.insert((start, stem(&job.name).to_owned())) {
            day.duplicated += 1;
        }
        day.ids
            .entry((job.queue.clone(), job.name.clone()))
            .or_default()
            .push(id.clone());
        match &self.driver {
            Some(driver) => {
                let _ = driver.send(Delivery::Job(submitted));
            }
            None => day.jobs.push(submitted),
        }
        id
    }

    fn find_jobs(&self, queue: &str, job_name: &str) -> Vec<String> {
        self.day()
            .ids
            .get(&(queue.to_owned(), job_name.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    fn queue_event(&self, caller: &str, invocation: &Invocation, request_id: &str) -> bool {
        self.driver.as_ref().is_some_and(|driver| {
            driver
                .send(Delivery::Event {
                    caller: caller.to_owned(),
                    function: invocation.function_name.clone(),
                    payload: invocation.payload.clone(),
                    request_id: request_id.to_owned(),
                })
                .is_ok()
        })
    }
}

/// The two daily schedules in the order they fire by default (the
/// template's `TestUpdateSchedule` at 04:00, `UpdateSchedule` at 05:00).
const SCHEDULES: [(&str, &str); 2] = [
    ("TestUpdateSchedule", "test_update_pipeline"),
    ("UpdateSchedule", "update_pipeline"),
];

/// The day's cascade over an overlay of the bucket, and its watcher.
fn day_cascade(
    request: &SimulateRequest,
    settings: Settings,
    driver: Option<mpsc::UnboundedSender<Delivery>>,
) -> Result<(Cascade, Arc<DayWatcher>), SimulateError> {
    if let SimulatedBucket::Directory(dir) = &request.bucket
        && !dir.is_dir()
    {
        return Err(SimulateError::BucketDirMissing(dir.display().to_string()));
    }
    let written: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
    let watcher = Arc::new(DayWatcher {
        day: Mutex::default(),
        written: written.clone(),
        driver,
    });
    let base = match &request.bucket {
        SimulatedBucket::Directory(dir) => LocalBucket::Directory(dir.clone()),
        SimulatedBucket::Synthetic(models) => LocalBucket::Memory(synthetic_bucket(*models)),
        SimulatedBucket::Memory(objects) => LocalBucket::Memory(objects.clone()),
    };
    let bucket = LocalBucket::Overlay {
        base: Box::new(base),
        written,
    };
    let cascade = Cascade::new(
        request.components.clone(),
        settings,
        request.now,
        request.deadline,
        LocalEffects::new(bucket),
    )?
    .with_watcher(watcher.clone());
    Ok((cascade, watcher))
}

/// The schedules' starts: each function with the event its rule sends.
fn schedule_starts(prefix: &str, at: u64) -> Vec<(Start, String, Value)> {
    SCHEDULES
        .iter()
        .map(|(schedule, guest)| {
            let function = PipelineFunction::by_guest(guest)
                .map(|function| function.name(prefix))
                .unwrap_or_default();
            let start = Start::Schedule {
                schedule: (*schedule).to_owned(),
            };
            (start, function, scheduled_event(schedule, at))
        })
        .collect()
}

/// The starts the files `job` writes lead to (each notification twice
/// with `redeliver`), filling in the functions the job fires.
fn file_starts(
    job: &mut SimulatedJob,
    bucket: &str,
    prefix: &str,
    sequencer: &mut usize,
    at: u64,
    redeliver: bool,
) -> Vec<(Start, String, Value)> {
    let mut starts = Vec::new();
    for key in &job.writes {
        for fired in triggered_by(key, prefix) {
            job.fires.push(fired.clone());
            *sequencer += 1;
            let event = s3_event(bucket, key, *sequencer, at);
            for redelivery in [false, true].into_iter().take(1 + usize::from(redeliver)) {
                let start = Start::File {
                    key: key.clone(),
                    written_by: job.name.clone(),
                    redelivery,
                };
                starts.push((start, fired.clone(), event.clone()));
            }
        }
    }
    starts
}

/// Simulates the day: one run at a time (the k-th sees the clock k
/// seconds after `now`), or, with `request.quotas`, every run when AWS
/// would start it, under the quotas, in virtual time.
pub async fn simulate(request: &SimulateRequest, settings: Settings) -> Result<Simulation, SimulateError> {
    if request.now > LATEST_START_S {
        return Err(SimulateError::PastYear9999(rfc3339(request.now)));
    }
    let Some(limits) = request.quotas.clone() else {
        return simulate_in_order(request, settings).await;
    };
    // The day with no limits: the work that must happen, each once.
    let expected = simulate_in_order(
        &SimulateRequest {
            redeliver: false,
            ..request.clone()
        },
        settings.clone(),
    )
    .await?;
    // The timed day runs on a thread and a clock of its own: a virtual
    // one, which jumps to the next timer whenever every run is waiting.
    let (answer, answered) = tokio::sync::oneshot::channel();
    let timed = request.clone();
    std::thread::spawn(move || {
        let day = clock::run_virtual(simulate_timed(&timed, settings, limits));
        let _ = answer.send(day);
    });
    let mut simulation = answered
        .await
        .map_err(|_| SimulateError::Runtime("the simulation's thread ended without an answer".into()))??;
    if let Some(scale) = &mut simulation.scale {
        scale.compare(&expected.jobs, &simulation.jobs);
    }
    Ok(simulation)
}

/// The day, one run at a time.
async fn simulate_in_order(
    request: &SimulateRequest,
    settings: Settings,
) -> Result<Simulation, SimulateError> {
    let prefix = settings.pipeline.function_prefix.clone();
    let bucket_name = settings.pipeline.bucket.clone();
    let (cascade, watcher) = day_cascade(request, settings, None)?;
    let cascade = Arc::new(cascade);
    let mut pending: VecDeque<(Start, String, Value)> = schedule_starts(&prefix, request.now).into();
    let mut runs = Vec::new();
    let mut jobs = Vec::new();
    let mut sequencer = 0;
    let progress = Progress::start("simulating the day");
    while let Some((start, function, event)) = pending.pop_front() {
        let at = request.now + runs.len() as u64;
        let event = match &start {
            Start::Schedule { schedule } => scheduled_event(schedule, at),
            _ => event,
        };
        let request_id = format!("simulate-{}", runs.len());
        watcher.register(&request_id, &start);
        let run = cascade
            .run_at(&function, &event.to_string(), &request_id, at)
            .await?;
        let mut submitted = std::mem::take(&mut watcher.day().jobs);
        // The host may submit a fan-out's jobs concurrently: in the order
        // the guests asked for them, so the day reads the same every time.
        let mut order: HashMap<String, usize> = HashMap::new();
        for (place, name) in submissions(&run).into_iter().enumerate() {
            order.entry(name).or_insert(place);
        }
        submitted.sort_by_key(|job| order.get(&job.name).copied());
        for job in &mut submitted {
            pending.extend(file_starts(
                job,
                &bucket_name,
                &prefix,
                &mut sequencer,
                at,
                request.redeliver,
            ));
        }
        jobs.extend(submitted);
        runs.push(SimulatedRun {
            start,
            at: rfc3339(at),
            event,
            run,
        });
        progress.note(&format!("{} runs, {} jobs", runs.len(), jobs.len()));
    }
    let duplicated = watcher.day().duplicated;
    Ok(Simulation::of(request.now, runs, jobs, duplicated, None))
}

/// One run of the timed day, from its delivery to its report.
type DayRun = Pin<Box<dyn Future<Output = Result<SimulatedRun, CascadeError>>>>;

/// The day under AWS's limits, in virtual time: both schedules fire at
/// `now`, every asynchronous event waits for a place in the account's
/// concurrency, and each job's files appear `job_time_s` after it is
/// submitted.
async fn simulate_timed(
    request: &SimulateRequest,
    settings: Settings,
    limits: Limits,
) -> Result<Simulation, SimulateError> {
    let prefix = settings.pipeline.function_prefix.clone();
    let bucket_name = settings.pipeline.bucket.clone();
    let (sender, mut deliveries) = mpsc::unbounded_channel();
    let (cascade, watcher) = day_cascade(request, settings, Some(sender))?;
    let account = Account::new(limits.clone());
    let cascade = Arc::new(
        cascade
            .with_runtime(GuestRuntime::on_demand()?)
            .with_account(account.clone()),
    );
    let job_time = Duration::from_secs(limits.job_time_s);
    // The day's runs, each driven by this future (on `run_virtual`'s thread).
    let mut tasks: FuturesUnordered<DayRun> = FuturesUnordered::new();
    let mut delivered = 0;
    let mut deliver = |tasks: &mut FuturesUnordered<DayRun>,
                       (start, function, event): (Start, String, Value),
                       request_id: Option<String>,
                       delay: Duration| {
        let request_id = request_id.unwrap_or_else(|| format!("simulate-{delivered}"));
        delivered += 1;
        watcher.register(&request_id, &start);
        let (cascade, account, now) = (cascade.clone(), account.clone(), request.now);
        tasks.push(Box::pin(async move {
            clock::sleep(delay).await;
            let at = account.clock(now);
            let run = cascade
                .deliver(&function, &event.to_string(), &request_id)
                .await?;
            Ok(SimulatedRun {
                start,
                at: rfc3339(at),
                event,
                run,
            })
        }));
    };
    for start in schedule_starts(&prefix, request.now) {
        deliver(&mut tasks, start, None, Duration::ZERO);
    }
    let (mut runs, mut jobs, mut sequencer) = (Vec::new(), Vec::new(), 0);
    let progress = Progress::start("simulating the day under the quotas");
    loop {
        tokio::select! {
            biased;
            Some(delivery) = deliveries.recv() => match delivery {
                Delivery::Job(mut job) => {
                    let at = account.clock(request.now) + limits.job_time_s;
                    for start in file_starts(&mut job, &bucket_name, &prefix, &mut sequencer, at, request.redeliver) {
                        deliver(&mut tasks, start, None, job_time);
                    }
                    jobs.push(job);
                }
                Delivery::Event { caller, function, payload, request_id } => {
                    let event = serde_json::from_str(&payload).unwrap_or(Value::String(payload));
                    let start = (Start::Invocation { by: caller }, function, event);
                    deliver(&mut tasks, start, Some(request_id), Duration::ZERO);
                }
            },
            ran = tasks.next() => match ran {
                Some(run) => {
                    runs.push(run?);
                    progress.note(&format!(
                        "{} runs, {} jobs, {} s into the day",
                        runs.len(),
                        jobs.len(),
                        account.elapsed().as_secs()
                    ));
                }
                None => break,
            },
        }
    }
    let duplicated = watcher.day().duplicated;
    let scale = Scale::new(limits, account.counters());
    Ok(Simulation::of(request.now, runs, jobs, duplicated, Some(scale)))
}

/// The jobs a run and the runs it led to submitted, in the order the
/// guests asked for them.
fn submissions(report: &RunReport) -> Vec<String> {
    let mut names = Vec::new();
    for reported in &report.actions {
        match (&reported.action, reported.run.as_deref()) {
            (Action::BatchSubmit { job_name, .. }, _) => names.push(job_name.clone()),
            (Action::LambdaInvoke { .. }, Some(Followed::Ran(inner))) => names.extend(submissions(inner)),
            _ => {}
        }
    }
    names
}

/// Counts what the day did.
fn summarize(runs: &[SimulatedRun], jobs: &[SimulatedJob]) -> Summary {
    let mut summary = Summary {
        runs: runs.len(),
        jobs: jobs.len(),
        files: jobs.iter().map(|job| job.writes.len()).sum(),
        ..Summary::default()
    };
    fn count(report: &RunReport, summary: &mut Summary) {
        *summary.functions.entry(report.function.clone()).or_default() += 1;
        let refused = report
            .response
            .as_ref()
            .and_then(|response| response.get("refused")?.as_array().map(Vec::len))
            .unwrap_or(0);
        summary.refusals += refused + usize::from(report.error.is_some());
        for reported in &report.actions {
            if let Action::LambdaInvoke { .. } = reported.action {
                summary.invocations += 1;
                match reported.run.as_deref() {
                    Some(Followed::Ran(inner)) => count(inner, summary),
                    Some(Followed::Cycle { .. }) => summary.cycles += 1,
                    None => {}
                }
            }
        }
    }
    for run in runs {
        count(&run.run, &mut summary);
    }
    for job in jobs {
        if let Some(model) = &job.model {
            summary
                .models
                .entry(model.clone())
                .or_default()
                .push(job.name.clone());
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(core: &str) -> Job {
        Job {
            name: "x".into(),
            queue: "q".into(),
            definition: "d".into(),
            command: vec!["python".into(), core.into()],
            depends_on: Vec::new(),
            work: None,
        }
    }

    #[test]
    fn the_latest_start_is_a_month_before_the_end_of_9999() {
        assert_eq!(rfc3339(LATEST_START_S), LATEST_START);
    }

    #[test]
    fn each_job_writes_the_file_the_contract_names() {
        let at = 1_580_817_600; // 2020-02-04T12:00:00Z
        let update =
            job("bash scripts/git_and_run.sh --branch b python scripts/run_model_update.py --model aml");
        assert_eq!(update.command.len(), 2);
        assert_eq!(
            files_written(&update, at),
            (
                Some("aml".into()),
                vec!["models/aml/model_2020-02-04-12-00-00.pkl".into()]
            )
        );
        let manager = job("bash scripts/git_and_run.sh python scripts/update_model_manager.py --model aml");
        assert_eq!(
            files_written(&manager, at).1,
            ["results/aml/model_manager_2020-02-04-12-00-00.pkl"]
        );
        let tests = job("python scripts/run_model_tests_from_s3.py --model aml --tests large_corpus_tests");
        assert_eq!(
            files_written(&tests, at).1,
            ["results/aml/results_large_corpus_tests_2020-02-04-12-00-00.json"]
        );
        let stats = job("python scripts/run_model_stats_from_s3.py --model aml --stats_mode model");
        assert_eq!(files_written(&stats, at), (Some("aml".into()), Vec::new()));
    }

    #[test]
    fn a_new_file_fires_the_function_whose_trigger_matches_it() {
        assert_eq!(
            triggered_by("models/aml/model_2020.pkl", "emmaa-"),
            ["emmaa-mm-update"]
        );
        assert_eq!(
            triggered_by("results/aml/model_manager_2020.pkl", "emmaa-"),
            ["emmaa-after-update"]
        );
        assert_eq!(
            triggered_by("results/aml/results_x_2020.json", "emmaa-"),
            ["emmaa-test-stats"]
        );
        assert!(triggered_by("models/aml/config.json", "emmaa-").is_empty());
    }
}
