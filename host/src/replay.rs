//! `host replay`: runs one event through a guest on this machine, with a
//! directory as the bucket and every invocation and Batch submission
//! recorded instead of performed, and prints what the handler would do.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cascade::{Cascade, CascadeError, RunReport};
use crate::effects::local::{LocalBucket, LocalEffects, LocalLedger};
use crate::engine::EngineError;
use crate::guests;
use crate::outcome::{Failure, MAX_EVENT_BYTES};
use crate::settings::{Settings, SettingsError};

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
    pub components: PathBuf,
    /// How long the event may take, as Lambda's deadline would allow.
    pub deadline: Duration,
    /// Lambda's request id for the event.
    pub request_id: String,
    /// Where claims are kept between runs; in memory, for this run, without.
    pub ledger_dir: Option<PathBuf>,
    /// Run every invoked function here too, nesting its run under the
    /// invoking action.
    pub follow: bool,
}

/// Why a replay could not start (usage errors: exit status 2).
#[derive(Debug, Error)]
pub enum ReplayError {
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
    #[error("--now {value:?} is not an RFC 3339 time like 2020-02-04T12:00:00Z: {reason}")]
    BadNow { value: String, reason: String },
    #[error("--bucket-dir {0} is not a directory")]
    BucketDirMissing(String),
    #[error("--ledger-dir {path} cannot be used: {source}")]
    LedgerDir { path: String, source: std::io::Error },
    #[error("bad setting: {0}")]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The JSON document `host replay` prints (the replay contract).
pub type ReplayReport = RunReport;

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

/// Parses `--now`: an RFC 3339 time, converted to UTC seconds.
pub fn parse_now(value: &str) -> Result<u64, ReplayError> {
    let bad = |reason: String| ReplayError::BadNow {
        value: value.to_owned(),
        reason,
    };
    let time = OffsetDateTime::parse(value, &Rfc3339).map_err(|err| bad(err.to_string()))?;
    u64::try_from(time.unix_timestamp()).map_err(|_| bad("it is before 1970".into()))
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
pub async fn replay(request: &ReplayRequest, settings: Settings) -> Result<ReplayReport, ReplayError> {
    let prefix = settings.pipeline.function_prefix.clone();
    let unknown = || ReplayError::UnknownFunction {
        name: request.function.clone(),
        known: guests::known_names(&prefix),
    };
    let handler = guests::find(&request.function, &prefix).ok_or_else(unknown)?;
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
    cascade
        .run(&handler.function, &event, &request.request_id)
        .await
        .map_err(|err| match err {
            CascadeError::UnknownFunction(_) => unknown(),
            CascadeError::Engine(err) => ReplayError::Engine(err),
        })
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
    fn now_refuses_what_is_not_rfc_3339() {
        let err = parse_now("yesterday").unwrap_err().to_string();
        assert!(
            err.starts_with("--now \"yesterday\" is not an RFC 3339 time"),
            "{err}"
        );
    }
}
