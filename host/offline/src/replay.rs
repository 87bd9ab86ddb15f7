//! `emmaa-host replay`: runs one event through a guest on this machine, with a
//! directory as the bucket and every invocation and Batch submission
//! recorded instead of performed, and prints what the handler would do.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cascade::{Cascade, CascadeError};
use crate::report::RunReport;
use emmaa_runtime::answer::{Failure, MAX_EVENT_BYTES};
use emmaa_runtime::context::EventContext;
use emmaa_runtime::difference::{Difference, first_difference};
use emmaa_runtime::effects::local::{LocalBucket, LocalEffects, LocalLedger};
use emmaa_runtime::engine::{Components, EngineError, GuestRuntime};
use emmaa_runtime::functions::{self, PipelineFunction};
use emmaa_runtime::guest::LoadedGuest;
use emmaa_runtime::settings::{Settings, SettingsError};
use emmaa_runtime::trace::{
    ComponentCheck, LeftOut, MAX_TRACE_BYTES, Player, TRACE_FORMAT, Tape, Trace, Verdict,
};

/// The request id replays give the guest.
pub const REPLAY_REQUEST_ID: &str = "replay";

/// How long a replayed event may take by default (`--deadline`): a minute
/// is far more than any handler needs against a local bucket, and a
/// runaway replay ends.
pub const DEFAULT_DEADLINE: &str = "60s";

/// What a replay needs to know.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    /// A Lambda function name or a guest name.
    pub function: String,
    /// A file, `-` for standard input, or nothing for `{}`.
    pub event: Option<PathBuf>,
    pub bucket_dir: Option<PathBuf>,
    /// Seconds since the Unix epoch; the real time when not given.
    pub now: Option<u64>,
    /// Where the guest components are (`<guest>.cwasm` or `<guest>.wasm`).
    pub components: Components,
    /// How long the event may take, as Lambda's deadline would allow.
    pub deadline: Duration,
    /// Lambda's request id for the event.
    pub request_id: String,
    /// Where claims are kept between runs; in memory, for this run, without.
    pub ledger_dir: Option<PathBuf>,
    /// Run every invoked function here too, nesting its run under the
    /// invoking action.
    pub follow: bool,
    /// Write the run's trace here, as the flight recorder writes one on
    /// Lambda (`replay --trace` replays it).
    pub record: Option<PathBuf>,
}

/// Why a replay could not start (usage errors: exit status 2).
#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("--record {path}: {source}")]
    Record {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown function {name:?}: use one of {known}")]
    UnknownFunction { name: String, known: String },
    #[error("cannot read the event {path}: {source}")]
    EventUnreadable { path: String, source: std::io::Error },
    #[error("the event {path} is not JSON: {source}")]
    EventNotJson { path: String, source: serde_json::Error },
    #[error("the event {path} is larger than Lambda accepts: {failure}")]
    EventTooLarge { path: String, failure: Failure },
    #[error("--deadline {value:?} is not a duration like 30s, 1500ms or 2m (from 1ms to 15m)")]
    BadDeadline { value: String },
    #[error(
        "--now {value:?} is not a time: use RFC 3339 (2020-02-04T12:00:00Z), a date (2020-02-04, its \
         midnight UTC), today, yesterday or now ({reason})"
    )]
    BadNow { value: String, reason: String },
    #[error("--bucket-dir {0} is not a directory")]
    BucketDirMissing(String),
    #[error("--ledger-dir {path} cannot be used: {source}")]
    LedgerDir { path: String, source: std::io::Error },
    #[error("bad setting: {0}")]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot read the trace {source_name}: {reason}")]
    TraceUnreadable { source_name: String, reason: String },
    #[error("the trace {source_name} cannot be replayed: {reason}")]
    TraceUnusable { source_name: String, reason: String },
    #[error(
        "--python builds the guest from its sources: run it inside the emmaa checkout (there is no guests/python/ above {here})"
    )]
    NotInCheckout { here: String },
    #[error("--python: {0}")]
    Python(#[from] crate::python::PythonError),
}

/// Parses `--deadline`: a whole number with `ms`, `s` or `m`.
pub fn parse_deadline(value: &str) -> Result<Duration, ReplayError> {
    let bad = || ReplayError::BadDeadline {
        value: value.to_owned(),
    };
    let (number, unit_ms) = if let Some(ms) = value.strip_suffix("ms") {
        (ms, 1)
    } else if let Some(s) = value.strip_suffix('s') {
        (s, 1_000)
    } else if let Some(m) = value.strip_suffix('m') {
        (m, 60_000)
    } else {
        return Err(bad());
    };
    let millis = number
        .parse::<u64>()
        .map_err(|_| bad())?
        .checked_mul(unit_ms)
        .ok_or_else(bad)?;
    if (1..=15 * 60_000).contains(&millis) {
        Ok(Duration::from_millis(millis))
    } else {
        Err(bad())
    }
}

/// The real time, in seconds since the epoch: `--now`'s default.
pub fn clock_now() -> u64 {
    OffsetDateTime::now_utc().unix_timestamp().max(0) as u64
}

/// Parses `--now` (every date flag): an RFC 3339 time
/// (`2020-02-04T12:00:00Z`), a date (`2020-02-04`: its midnight, UTC),
/// `today` or `yesterday` (their midnight, UTC) or `now`; UTC seconds.
pub fn parse_now(value: &str) -> Result<u64, ReplayError> {
    parse_now_at(value, clock_now())
}

/// [`parse_now`] with the clock at `clock` (seconds since the epoch).
pub fn parse_now_at(value: &str, clock: u64) -> Result<u64, ReplayError> {
    let bad = |reason: String| ReplayError::BadNow {
        value: value.to_owned(),
        reason,
    };
    const DAY: u64 = 86_400;
    let midnight = clock - clock % DAY;
    let seconds = match value.trim() {
        "now" => return Ok(clock),
        "today" => return Ok(midnight),
        "yesterday" => return Ok(midnight.saturating_sub(DAY)),
        date if date.len() == 10 && date.as_bytes().get(4) == Some(&b'-') => {
            let part =
                |range: std::ops::Range<usize>| date.get(range).and_then(|text| text.parse::<i32>().ok());
            let (Some(year), Some(month), Some(day)) = (part(0..4), part(5..7), part(8..10)) else {
                return Err(bad("a date is YYYY-MM-DD".into()));
            };
            let month = u8::try_from(month)
                .ok()
                .and_then(|month| time::Month::try_from(month).ok())
                .ok_or_else(|| bad(format!("there is no month {month}")))?;
            let day = u8::try_from(day).map_err(|_| bad(format!("there is no day {day}")))?;
            time::Date::from_calendar_date(year, month, day)
                .map_err(|err| bad(err.to_string()))?
                .midnight()
                .assume_utc()
                .unix_timestamp()
        }
        time => OffsetDateTime::parse(time, &Rfc3339)
            .map_err(|err| bad(err.to_string()))?
            .unix_timestamp(),
    };
    u64::try_from(seconds).map_err(|_| bad("it is before 1970".into()))
}

/// Reads the event: at most one byte more than Lambda accepts, so that
/// `/dev/zero` or a huge file is refused at once in bounded memory.
fn read_event(path: Option<&Path>) -> Result<String, ReplayError> {
    let Some(path) = path else {
        return Ok("{}".to_owned());
    };
    let shown = if path == Path::new("-") {
        "on standard input".to_owned()
    } else {
        path.display().to_string()
    };
    let unreadable = |source| ReplayError::EventUnreadable {
        path: shown.clone(),
        source,
    };
    let limit = MAX_EVENT_BYTES as u64 + 1;
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
    } else {
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let metadata = file.metadata().map_err(unreadable)?;
        if metadata.is_dir() {
            return Err(unreadable(std::io::Error::other("it is a directory")));
        }
        file.take(limit).read_to_end(&mut bytes).map_err(unreadable)?;
    }
    if bytes.len() > MAX_EVENT_BYTES {
        let size = match std::fs::metadata(path) {
            Ok(metadata) if metadata.is_file() => usize::try_from(metadata.len()).unwrap_or(usize::MAX),
            _ => bytes.len(),
        };
        return Err(ReplayError::EventTooLarge {
            path: shown,
            failure: Failure::EventTooLarge { size },
        });
    }
    let text = String::from_utf8(bytes).map_err(|err| unreadable(std::io::Error::other(err)))?;
    serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(|source| ReplayError::EventNotJson {
        path: shown.clone(),
        source,
    })?;
    Ok(text)
}

/// Runs the replay and answers the report to print.
pub async fn replay(request: &ReplayRequest, settings: Settings) -> Result<RunReport, ReplayError> {
    let prefix = settings.pipeline.function_prefix.clone();
    let unknown = || ReplayError::UnknownFunction {
        name: request.function.clone(),
        known: functions::known_names(&prefix),
    };
    let function = PipelineFunction::find(&request.function, &prefix).ok_or_else(unknown)?;
    let event = read_event(request.event.as_deref())?;
    let bucket = match &request.bucket_dir {
        Some(dir) if dir.is_dir() => LocalBucket::Directory(dir.clone()),
        Some(dir) => return Err(ReplayError::BucketDirMissing(dir.display().to_string())),
        None => LocalBucket::Empty,
    };
    let now = request.now.unwrap_or_else(clock_now);
    let ledger = match &request.ledger_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| ReplayError::LedgerDir {
                path: dir.display().to_string(),
                source,
            })?;
            LocalLedger::Directory(dir.clone())
        }
        None => LocalLedger::default(),
    };
    let effects = LocalEffects::new(bucket).with_ledger(ledger);
    let cascade = Arc::new(
        Cascade::new(
            request.components.clone(),
            settings,
            now,
            request.deadline,
            effects,
        )?
        .following(request.follow),
    );
    let (report, trace) = cascade
        .run_recorded(&function.name(&prefix), &event, &request.request_id)
        .await
        .map_err(|err| match err {
            CascadeError::UnknownFunction(_) => unknown(),
            CascadeError::Engine(err) => ReplayError::Engine(err),
        })?;
    if let (Some(path), Some(trace)) = (&request.record, trace) {
        std::fs::write(path, trace.to_json()).map_err(|source| ReplayError::Record {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(report)
}

/// Where traces are: a file, a directory (every `.json` under it), or
/// `s3://bucket/key-or-prefix` (read with the AWS SDK's usual settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceSource {
    Path(PathBuf),
    S3 {
        bucket: String,
        key: String,
    },
    /// An entry of a directory that is not read: why.
    Refused {
        path: PathBuf,
        reason: String,
    },
}

/// The most bytes a trace file may have: [`MAX_TRACE_BYTES`] and room.
const MAX_TRACE_FILE_BYTES: u64 = 2 * MAX_TRACE_BYTES as u64;

impl TraceSource {
    pub fn parse(text: &str) -> TraceSource {
        match text.strip_prefix("s3://").and_then(|rest| rest.split_once('/')) {
            Some((bucket, key)) => TraceSource::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            },
            None => match text.strip_prefix("s3://") {
                Some(bucket) => TraceSource::S3 {
                    bucket: bucket.to_owned(),
                    key: String::new(),
                },
                None => TraceSource::Path(PathBuf::from(text)),
            },
        }
    }

    fn shown(&self) -> String {
        match self {
            TraceSource::Path(path) | TraceSource::Refused { path, .. } => path.display().to_string(),
            TraceSource::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
        }
    }

    /// Every trace this names: itself, or what is under it.
    async fn expand(&self, aws: &AwsTraces) -> Result<Vec<TraceSource>, ReplayError> {
        let unreadable = |reason: String| ReplayError::TraceUnreadable {
            source_name: self.shown(),
            reason,
        };
        match self {
            TraceSource::Path(path) if path.is_dir() => walk(path).map_err(unreadable),
            TraceSource::Path(_) | TraceSource::Refused { .. } => Ok(vec![self.clone()]),
            TraceSource::S3 { key, .. } if key.ends_with(".json") => Ok(vec![self.clone()]),
            TraceSource::S3 { bucket, key } => {
                let keys = aws.list_keys(bucket, key).await.map_err(unreadable)?;
                Ok(keys
                    .into_iter()
                    .filter(|key| key.ends_with(".json"))
                    .map(|key| TraceSource::S3 {
                        bucket: bucket.clone(),
                        key,
                    })
                    .collect())
            }
        }
    }

    /// Reads and parses the trace.
    async fn read(&self, aws: &AwsTraces) -> Result<Trace, ReplayError> {
        let unreadable = |reason: String| ReplayError::TraceUnreadable {
            source_name: self.shown(),
            reason,
        };
        let bytes = match self {
            TraceSource::Refused { reason, .. } => return Err(unreadable(reason.clone())),
            TraceSource::Path(path) => {
                let metadata = std::fs::metadata(path).map_err(|err| unreadable(err.to_string()))?;
                if !metadata.is_file() {
                    return Err(unreadable(not_a_file(&metadata)));
                }
                let file = std::fs::File::open(path).map_err(|err| unreadable(err.to_string()))?;
                let mut bytes = Vec::new();
                file.take(MAX_TRACE_FILE_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|err| unreadable(err.to_string()))?;
                if bytes.len() as u64 > MAX_TRACE_FILE_BYTES {
                    return Err(unreadable(format!("it is over {MAX_TRACE_FILE_BYTES} bytes")));
                }
                bytes
            }
            TraceSource::S3 { bucket, key } => aws
                .get_object(bucket, key, MAX_TRACE_FILE_BYTES)
                .await
                .map_err(unreadable)?,
        };
        let trace: Trace = serde_json::from_slice(&bytes)
            .map_err(|err| unreadable(format!("it is not a trace of this host: {err}")))?;
        if trace.format != TRACE_FORMAT {
            return Err(unreadable(format!(
                "it has format {}; this host reads format {TRACE_FORMAT}",
                trace.format
            )));
        }
        if let Some(problem) = trace.integrity_problem() {
            return Err(unreadable(problem));
        }
        Ok(trace)
    }
}

/// Every `.json` under `root`, each once, sorted. The walk stays inside
/// `root`: a link that leads out of it (`..`, an absolute path) is listed as
/// refused, a directory reached twice (a link loop) is walked once, and an
/// entry that is not a regular file (a FIFO, a device) is refused by name,
/// never opened.
fn walk(root: &Path) -> Result<Vec<TraceSource>, String> {
    let real_root = root.canonicalize().map_err(|err| err.to_string())?;
    let mut walked = HashSet::from([real_root.clone()]);
    let mut traces = HashSet::new();
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|err| err.to_string())?.path();
            let refuse = |reason: String| TraceSource::Refused {
                path: path.clone(),
                reason,
            };
            let json = path.extension().is_some_and(|ext| ext == "json");
            let (metadata, real) = match (std::fs::metadata(&path), path.canonicalize()) {
                (Ok(metadata), Ok(real)) => (metadata, real),
                (Err(err), _) | (_, Err(err)) => {
                    if json {
                        found.push(refuse(err.to_string()));
                    }
                    continue;
                }
            };
            if !real.starts_with(&real_root) {
                if json || metadata.is_dir() {
                    found.push(refuse(format!("it leads out of {}", root.display())));
                }
            } else if metadata.is_dir() {
                if walked.insert(real) {
                    dirs.push(path);
                }
            } else if json && !metadata.is_file() {
                found.push(refuse(not_a_file(&metadata)));
            } else if json && traces.insert(real) {
                found.push(TraceSource::Path(path));
            }
        }
    }
    found.sort_by_key(TraceSource::shown);
    Ok(found)
}

/// Why an entry that is not a regular file is not read.
fn not_a_file(metadata: &std::fs::Metadata) -> String {
    use std::os::unix::fs::FileTypeExt as _;
    let kind = metadata.file_type();
    let what = if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    };
    format!("it is {what}, not a regular file: not read")
}

/// Which AWS account traces on S3 are read from (the AWS CLI's
/// `--profile`, `--region`, `--endpoint-url`).
pub use emmaa_runtime::effects::AwsTarget;

/// The AWS client for traces on S3 in the account named, made when first needed.
#[cfg(feature = "aws")]
#[derive(Default)]
struct AwsTraces(tokio::sync::OnceCell<emmaa_aws::AwsEffects>, AwsTarget);

#[cfg(feature = "aws")]
impl AwsTraces {
    async fn client(&self) -> &emmaa_aws::AwsEffects {
        self.0
            .get_or_init(|| emmaa_aws::AwsEffects::for_target(&self.1))
            .await
    }

    async fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, String> {
        let aws = self.client().await;
        aws.list_keys(bucket, prefix)
            .await
            .map_err(|err| short_aws_error(&err))
    }

    async fn get_object(&self, bucket: &str, key: &str, max_size: u64) -> Result<Vec<u8>, String> {
        use emmaa_runtime::effects::Effects;
        let aws = self.client().await;
        aws.get_object(bucket, key, max_size)
            .await
            .map_err(|err| short_aws_error(&err))
    }
}

/// An S3 read's failure in one line: the code and the first line of the
/// message (the SDK's own account runs to many).
#[cfg(feature = "aws")]
fn short_aws_error(err: &emmaa_runtime::effects::AwsError) -> String {
    let first = err.message.lines().next().unwrap_or("");
    let cut: String = first.chars().take(200).collect();
    format!("{}: {cut}", err.code)
}

/// A build without the AWS backend reads traces from files only.
#[cfg(not(feature = "aws"))]
#[derive(Default)]
struct AwsTraces(());

#[cfg(not(feature = "aws"))]
impl AwsTraces {
    const MISSING: &'static str = "this host was built without AWS access (cargo's `aws` feature): copy the \
                           traces here (aws s3 cp --recursive) and give their directory, or run \
                           `cargo run -p emmaa-host --features aws -- ...`";

    async fn list_keys(&self, _bucket: &str, _prefix: &str) -> Result<Vec<String>, String> {
        Err(Self::MISSING.to_owned())
    }

    async fn get_object(&self, _bucket: &str, _key: &str, _max_size: u64) -> Result<Vec<u8>, String> {
        Err(Self::MISSING.to_owned())
    }
}

/// Runs recorded invocations with every import answered from their
/// traces: each guest loaded once from `components`.
pub struct TraceReplayer {
    runtime: GuestRuntime,
    components: Components,
    deadline: Duration,
    loaded: BTreeMap<String, Arc<LoadedGuest>>,
    aws: AwsTraces,
}

impl TraceReplayer {
    pub fn new(components: Components, deadline: Duration) -> Result<Self, ReplayError> {
        Ok(TraceReplayer {
            runtime: GuestRuntime::new()?,
            components,
            deadline,
            loaded: BTreeMap::new(),
            aws: AwsTraces::default(),
        })
    }

    /// Reads traces on S3 from `target`'s account (by default, the one the
    /// environment names).
    #[cfg(feature = "aws")]
    pub fn with_aws(mut self, target: AwsTarget) -> Self {
        self.aws = AwsTraces(Default::default(), target);
        self
    }

    /// A build without the AWS backend reads no S3, whatever the account.
    #[cfg(not(feature = "aws"))]
    pub fn with_aws(self, _target: AwsTarget) -> Self {
        self
    }

    /// Reads the trace at `source`.
    pub async fn read(&self, source: &TraceSource) -> Result<Trace, ReplayError> {
        source.read(&self.aws).await
    }

    fn guest(&mut self, name: &str, shown: &str) -> Result<Arc<LoadedGuest>, ReplayError> {
        if let Some(guest) = self.loaded.get(name) {
            return Ok(guest.clone());
        }
        // Any component in the directory, by its plain name: a replay makes
        // no call of its own, so it needs no reach (a pipeline guest gets
        // its own all the same).
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ReplayError::TraceUnusable {
                source_name: shown.to_owned(),
                reason: format!("it names guest {name:?}, which is not a component name"),
            });
        }
        let loaded = self.runtime.load_guest(&self.components, name)?;
        let guest = Arc::new(match PipelineFunction::by_guest(name) {
            Some(entry) => loaded.serving(entry),
            None => loaded,
        });
        self.loaded.insert(name.to_owned(), guest.clone());
        Ok(guest)
    }

    /// Runs `trace` with this build's component of its guest.
    pub async fn replay(&mut self, trace: &Trace, shown: &str) -> Result<RunReport, ReplayError> {
        let unusable = |reason: String| ReplayError::TraceUnusable {
            source_name: shown.to_owned(),
            reason,
        };
        let guest = self.guest(&trace.guest, shown)?;
        // Under the memory it was recorded with (a Lambda function's may
        // have been less than the language's), never more than this
        // build's language allows; with this build's fuel (a trace is
        // input, and the build replaying it may be another language's).
        let guest = match trace.budget {
            Some(recorded) if recorded.memory < guest.budget.memory => {
                let budget = emmaa_runtime::limits::Budget {
                    memory: recorded.memory,
                    ..guest.budget
                };
                Arc::new(LoadedGuest::clone(&guest).with_budget(budget))
            }
            _ => guest,
        };
        let settings = trace
            .settings()
            .map_err(|err| unusable(format!("its settings are refused here: {err}")))?;
        let event = trace
            .event()
            .ok_or_else(|| unusable("its event was left out (the trace was over its size limit)".into()))?;
        let context = EventContext {
            function_name: trace.function.clone(),
            request_id: trace.request_id.clone(),
            deadline_ms: trace.deadline_ms,
            time_left: self.deadline,
            now: trace.now,
        };
        // Never called: every import is answered from the trace.
        let effects = Arc::new(LocalEffects::new(LocalBucket::Empty));
        let tape = Tape::Playing(Box::new(Player::new(trace)));
        let (outcome, tape) = guest
            .handle_taped(&event, &context, effects, Arc::new(settings), tape)
            .await;
        let mut report = RunReport::of(&trace.function, &trace.guest, outcome);
        if let Tape::Playing(player) = tape {
            report.trace = Some(verdict(trace, &report, &player, guest.component.as_deref()));
        }
        Ok(report)
    }

    /// Replays every trace `sources` name; `only_guest`: only that guest's.
    pub async fn check(
        &mut self,
        sources: &[TraceSource],
        only_guest: Option<&str>,
    ) -> Result<Vec<Checked>, ReplayError> {
        let mut checked = Vec::new();
        for source in sources {
            for trace_source in source.expand(&self.aws).await? {
                let name = trace_source.shown();
                let result = match self.read(&trace_source).await {
                    Ok(trace) if only_guest.is_some_and(|guest| guest != trace.guest) => continue,
                    Ok(trace) => self.replay(&trace, &name).await,
                    Err(err) => Err(err),
                };
                checked.push(Checked {
                    name,
                    verdict: result
                        .map_err(|err| err.to_string())
                        .and_then(|report| report.trace.ok_or_else(|| "no verdict".to_owned())),
                });
            }
        }
        Ok(checked)
    }
}

/// One trace checked: its verdict, or why it could not be replayed.
#[derive(Debug, Clone)]
pub struct Checked {
    pub name: String,
    pub verdict: Result<Verdict, String>,
}

impl Checked {
    /// Whether the trace was replayed and did exactly what was recorded.
    pub fn same(&self) -> bool {
        self.verdict
            .as_ref()
            .is_ok_and(|verdict| verdict.same && verdict.exact)
    }

    /// One line for an operator: `same`, `DIFFERENT` or `UNCHECKED`, the
    /// trace, and the verdict in words.
    pub fn line(&self) -> String {
        match &self.verdict {
            Ok(verdict) if verdict.same && verdict.exact => format!("same       {}", self.name),
            Ok(verdict) if !verdict.exact => format!("UNCHECKED  {}: {}", self.name, verdict.message),
            Ok(verdict) => format!("DIFFERENT  {}: {}", self.name, verdict.message),
            Err(reason) => format!("UNCHECKED  {}: {reason}", self.name),
        }
    }
}

/// Compares the replay of `trace` (its report, and where its player got
/// to) with what was recorded.
pub fn verdict(trace: &Trace, report: &RunReport, player: &Player, component: Option<&str>) -> Verdict {
    let component = ComponentCheck {
        recorded: trace.component.clone(),
        replayed: component.map(str::to_owned),
        same: trace.component.is_some() && trace.component.as_deref() == component,
    };
    let replayed = report.recorded_answer();
    let difference = player.difference.clone().or_else(|| {
        if let Some(unmade) = player.unmade() {
            return Some(Difference {
                call: Some(player.made() + 1),
                at: "import".into(),
                recorded: unmade.call.to_json(),
                replayed: json!("nothing: the guest answered without making this call"),
            });
        }
        let answers = (
            serde_json::to_value(&trace.answer).unwrap_or_default(),
            serde_json::to_value(&replayed).unwrap_or_default(),
        );
        if let Some((at, was, now)) = first_difference(&answers.0, &answers.1, "answer") {
            return Some(Difference {
                call: None,
                at,
                recorded: was,
                replayed: now,
            });
        }
        let actions = (
            serde_json::to_value(trace.actions()).unwrap_or_default(),
            serde_json::to_value(&report.actions).unwrap_or_default(),
        );
        first_difference(&actions.0, &actions.1, "actions").map(|(at, was, now)| Difference {
            call: None,
            at,
            recorded: was,
            replayed: now,
        })
    });
    let exact = trace.left_out.is_none();
    let same = difference.is_none();
    let left_out = |left: &LeftOut| {
        format!(
            "it cannot be exact: the trace left out {} bodies and {} calls ({} bytes) to stay within {} bytes",
            left.bodies, left.calls, left.bytes, left.limit
        )
    };
    let message = match (&difference, &trace.left_out, component.same) {
        (Some(difference), Some(left), _) => {
            format!("{}; the replay stopped at {difference}", left_out(left))
        }
        (None, Some(left), _) => format!("same as far as the trace goes, but {}", left_out(left)),
        (None, None, true) => format!(
            "identical: the recording component made the recorded calls ({}), took the recorded actions ({}) and gave the recorded answer",
            trace.calls.len(),
            report.actions.len()
        ),
        (None, None, false) => format!(
            "same: this component made the recorded calls ({}), took the recorded actions ({}) and gave the recorded answer",
            trace.calls.len(),
            report.actions.len()
        ),
        (Some(difference), None, _) => format!("different: {difference}"),
    };
    Verdict {
        same,
        exact,
        component,
        difference,
        left_out: trace.left_out.clone(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_accepts_utc_and_converts_offsets() {
        assert_eq!(parse_now("2020-02-04T12:00:00Z").unwrap(), 1_580_817_600);
        assert_eq!(parse_now("2020-02-04T13:00:00+01:00").unwrap(), 1_580_817_600);
    }

    #[test]
    fn deadline_takes_milliseconds_seconds_or_minutes() {
        assert_eq!(parse_deadline("1500ms").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_deadline("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_deadline("15m").unwrap(), Duration::from_secs(900));
        for bad in ["16m", "0s", "10", "s", "-1s", "1h"] {
            assert!(parse_deadline(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn now_takes_a_date_today_yesterday_and_now_through_one_parser() {
        let clock = 1_580_817_600 + 3_723; // 2020-02-04T13:02:03Z
        let midnight = 1_580_774_400; // 2020-02-04T00:00:00Z
        assert_eq!(parse_now_at("2020-02-04", clock).unwrap(), midnight);
        assert_eq!(parse_now_at("today", clock).unwrap(), midnight);
        assert_eq!(parse_now_at("yesterday", clock).unwrap(), midnight - 86_400);
        assert_eq!(parse_now_at("now", clock).unwrap(), clock);
        assert_eq!(
            parse_now_at("2020-02-04T12:00:00Z", clock).unwrap(),
            1_580_817_600
        );
    }

    #[test]
    fn now_refuses_what_is_neither_a_time_nor_a_date() {
        let err = parse_now("last week").unwrap_err().to_string();
        assert!(
            err.starts_with("--now \"last week\" is not a time: use RFC 3339"),
            "{err}"
        );
        for bad in ["2020-13-01", "2020-02-30", "2020-2-4", "1969-12-31"] {
            assert!(parse_now(bad).is_err(), "{bad}");
        }
    }
}
