//! `host replay`: runs one event through a guest on this machine, with a
//! directory as the bucket and every invocation and Batch submission
//! recorded instead of performed, and prints what the handler would do.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::action::Action;
use crate::effects::local::{LocalBucket, LocalEffects};
use crate::engine::{EngineError, GuestRuntime};
use crate::guests;
use crate::run::{EventContext, HandlerOutcome, status_code};
use crate::settings::{Settings, SettingsError};

/// The request id replays give the guest.
pub const REPLAY_REQUEST_ID: &str = "replay";

/// How long a replayed event may take, as Lambda's deadline (15 minutes).
const REPLAY_DEADLINE_MS: u64 = 15 * 60 * 1000;

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
    #[error("--now {value:?} is not an RFC 3339 time like 2020-02-04T12:00:00Z: {reason}")]
    BadNow { value: String, reason: String },
    #[error("--bucket-dir {0} is not a directory")]
    BucketDirMissing(String),
    #[error("bad setting: {0}")]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The JSON document `host replay` prints (the replay contract).
#[derive(Debug, Serialize)]
pub struct ReplayReport {
    pub function: String,
    pub guest: String,
    pub response: Option<Value>,
    pub error: Option<ErrorReport>,
    pub actions: Vec<Action>,
}

#[derive(Debug, Serialize)]
pub struct ErrorReport {
    pub message: String,
}

impl ReplayReport {
    /// 0 when everything went through; 1 for a partial answer or a failure.
    pub fn exit_code(&self) -> i32 {
        let succeeded = self.response.as_ref().and_then(status_code) == Some(200);
        if succeeded { 0 } else { 1 }
    }
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

fn read_event(path: Option<&Path>) -> Result<String, ReplayError> {
    let Some(path) = path else {
        return Ok("{}".to_owned());
    };
    let shown = path.display().to_string();
    let unreadable = |source| ReplayError::EventUnreadable {
        path: shown.clone(),
        source,
    };
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(unreadable)?;
        text
    } else {
        std::fs::read_to_string(path).map_err(unreadable)?
    };
    serde_json::from_str::<Value>(&text).map_err(|source| ReplayError::EventNotJson {
        path: if shown == "-" {
            "on standard input".into()
        } else {
            shown.clone()
        },
        source,
    })?;
    Ok(text)
}

/// The component file of `guest` in `dir`: precompiled if there is one.
fn component_path(dir: &Path, guest: &str) -> PathBuf {
    let precompiled = dir.join(format!("{guest}.cwasm"));
    if precompiled.is_file() {
        precompiled
    } else {
        dir.join(format!("{guest}.wasm"))
    }
}

/// Runs the replay and answers the report to print.
pub async fn replay(request: &ReplayRequest, settings: Settings) -> Result<ReplayReport, ReplayError> {
    let handler = guests::find(&request.function, &settings.function_prefix).ok_or_else(|| {
        ReplayError::UnknownFunction {
            name: request.function.clone(),
            known: guests::known_names(&settings.function_prefix),
        }
    })?;
    let event = read_event(request.event.as_deref())?;
    let bucket = match &request.bucket_dir {
        Some(dir) if dir.is_dir() => LocalBucket::Directory(dir.clone()),
        Some(dir) => return Err(ReplayError::BucketDirMissing(dir.display().to_string())),
        None => LocalBucket::Empty,
    };
    let now = request
        .now
        .unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp().max(0) as u64);
    let guest = GuestRuntime::new()?.load(&component_path(&request.components, handler.guest))?;
    let context = EventContext {
        function_name: handler.function.clone(),
        request_id: REPLAY_REQUEST_ID.to_owned(),
        deadline_ms: now * 1000 + REPLAY_DEADLINE_MS,
        now,
    };
    let effects = Arc::new(LocalEffects::new(bucket));
    let HandlerOutcome {
        response,
        error,
        actions,
        ..
    } = guest.handle(&event, &context, effects, Arc::new(settings)).await;
    Ok(ReplayReport {
        function: handler.function,
        guest: handler.guest.to_owned(),
        response,
        error: error.map(|message| ErrorReport { message }),
        actions,
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
    fn now_refuses_what_is_not_rfc_3339() {
        let err = parse_now("yesterday").unwrap_err().to_string();
        assert!(
            err.starts_with("--now \"yesterday\" is not an RFC 3339 time"),
            "{err}"
        );
    }
}
