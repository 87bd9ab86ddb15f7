//! The flight recorder. With `EMMAA_TRACE_PREFIX` set, the Lambda host
//! writes one trace per event: the event, its context, the settings, the
//! clock, the guest and its component's hash, and every call the guest made
//! through its imports with the answer it got, in the guest's order, with
//! the actions the host took for it (claims included) and how the run ended.
//! A guest is deterministic given all of that, so [`Player`] can answer the
//! same calls from the trace, here, with no AWS, and [`verdict`] says
//! whether a build (the recording one, or a new one) did exactly the same.
//!
//! Bodies (the event, the objects read) are kept once each, by content
//! hash. A trace larger than [`MAX_TRACE_BYTES`] leaves out its largest
//! bodies, says so, and its replay says it cannot be exact.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::action::Action;
use crate::answer::{Answer, Failure};
use crate::bindings::emmaa::pipeline::batch::Submission;
use crate::bindings::emmaa::pipeline::functions::Invoked;
use crate::difference::{Difference, Diverged, first_difference};
use crate::digest::content_hash;
use crate::effects::{AwsError, Invocation, Job};
use crate::limits::Budget;
use crate::settings::Settings;

/// The trace format this host writes and reads.
pub const TRACE_FORMAT: u32 = 1;

/// The most bytes a trace keeps; past it, the largest bodies are left out.
/// Eight MiB holds a fan-out over about 20,000 models with every config
/// body distinct, and is one S3 PUT of well under a second from Lambda.
pub const MAX_TRACE_BYTES: usize = 8 << 20;

/// One call the guest made through an import, with its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "import")]
pub enum Call {
    #[serde(rename = "storage.get-objects")]
    GetObjects {
        bucket: String,
        keys: Vec<String>,
        max_size: u64,
    },
    #[serde(rename = "storage.list-prefixes")]
    ListPrefixes {
        bucket: String,
        prefix: String,
        delimiter: String,
    },
    #[serde(rename = "functions.invoke")]
    Invoke { invocations: Vec<Invocation> },
    #[serde(rename = "batch.submit")]
    Submit { jobs: Vec<Job> },
}

impl Call {
    /// The call as JSON, as a difference shows it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    fn import(&self) -> &'static str {
        match self {
            Call::GetObjects { .. } => "storage.get-objects",
            Call::ListPrefixes { .. } => "storage.list-prefixes",
            Call::Invoke { .. } => "functions.invoke",
            Call::Submit { .. } => "batch.submit",
        }
    }
}

/// An invocation's or submission's result, and whether it was claimed in
/// the ledger first (a host decision the answer depends on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claimed<T> {
    pub result: T,
    pub claimed: bool,
}

/// What a call got back: per item, in the guest's order. Objects are
/// named by the hash of their body in [`Trace::bodies`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reply {
    Objects(Vec<Result<String, AwsError>>),
    Prefixes(Result<Vec<String>, AwsError>),
    Invoked(Vec<Result<Claimed<Invoked>, AwsError>>),
    Submissions(Vec<Result<Claimed<Submission>, AwsError>>),
}

/// One import call as it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceCall {
    pub call: Call,
    pub reply: Reply,
    /// What the host did for it, in the guest's order: reads, claims,
    /// invocations, submissions (what `emmaa-host replay` prints).
    pub actions: Vec<Action>,
}

/// A body, as text when it is UTF-8.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Body {
    Text(String),
    Base64(String),
}

impl Body {
    fn of(bytes: &[u8]) -> Body {
        match std::str::from_utf8(bytes) {
            Ok(text) => Body::Text(text.to_owned()),
            Err(_) => Body::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
        }
    }

    fn bytes(&self) -> Option<Vec<u8>> {
        match self {
            Body::Text(text) => Some(text.clone().into_bytes()),
            Body::Base64(encoded) => base64::engine::general_purpose::STANDARD.decode(encoded).ok(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Body::Text(text) => text.len(),
            Body::Base64(encoded) => encoded.len(),
        }
    }
}

impl Trace {
    /// Why the trace cannot be trusted as it is, if it cannot: a body whose
    /// bytes do not hash to its name (edited, or damaged on the way), or a
    /// guest the pipeline does not have.
    pub fn integrity_problem(&self) -> Option<String> {
        if crate::functions::PipelineFunction::by_guest(&self.guest).is_none() {
            return Some(format!(
                "it names guest {:?}, which is none of the pipeline's",
                short(&self.guest)
            ));
        }
        for (name, body) in &self.bodies {
            match body.bytes() {
                Some(bytes) if content_hash(&bytes) == *name => {}
                Some(_) => {
                    return Some(format!(
                        "it is corrupt: body {:?} does not hash to its name",
                        short(name)
                    ));
                }
                None => {
                    return Some(format!(
                        "it is corrupt: body {:?} is not valid base64",
                        short(name)
                    ));
                }
            }
        }
        None
    }
}

/// At most 100 characters of `text`, for a message.
fn short(text: &str) -> &str {
    text.char_indices().nth(100).map_or(text, |(end, _)| &text[..end])
}

/// How the run ended, as the Lambda host answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedAnswer {
    pub response: Option<Value>,
    /// `{"kind", "message"}`, as replay's `error`.
    pub error: Option<Value>,
}

/// What the trace had to leave out to stay within [`MAX_TRACE_BYTES`]:
/// bodies, largest first, then (a fan-out over some 13,000 models and
/// more) the last calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeftOut {
    pub bodies: usize,
    #[serde(default)]
    pub calls: usize,
    pub bytes: usize,
    pub limit: usize,
}

/// One invocation of a function, recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub format: u32,
    pub function: String,
    pub guest: String,
    /// `sha256:<hex>` of the guest's `.wasm` (from the bundle's manifest),
    /// when known.
    pub component: Option<String>,
    pub request_id: String,
    /// Lambda's deadline, in milliseconds since the epoch, as the guest
    /// was told it.
    pub deadline_ms: u64,
    /// How long the host had for the event when it started.
    pub time_left_ms: u64,
    /// The clock the guest got (`now`), in seconds since the epoch.
    pub now: u64,
    /// Every `EMMAA_*` setting, as the host read it.
    pub settings: BTreeMap<String, String>,
    /// The event's body hash in `bodies`.
    pub event: String,
    pub calls: Vec<TraceCall>,
    pub answer: RecordedAnswer,
    /// The host's decision outside the calls: `deadline` when it stopped
    /// the guest at its deadline (a replay stops it after the same calls);
    /// and the fuel the guest burned.
    pub stopped: Option<String>,
    pub fuel_used: u64,
    /// The fuel and memory the guest ran under (its language's, or less
    /// memory in a small Lambda function): a replay runs it with no more
    /// memory than this, so that a guest stopped for memory stops again,
    /// and with the fuel of the build that replays it (never more than its
    /// language's of either: a trace is input). Traces from before budgets
    /// were recorded have none: the guest's own then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    pub bodies: BTreeMap<String, Body>,
    pub left_out: Option<LeftOut>,
}

/// The calls of one event as the host makes them, and their bodies.
#[derive(Debug, Default)]
pub struct Recording {
    pub calls: Vec<TraceCall>,
    pub bodies: BTreeMap<String, Body>,
}

impl Recording {
    /// Keeps `bytes` once and answers its hash.
    pub fn body(&mut self, bytes: &[u8]) -> String {
        let hash = content_hash(bytes);
        self.bodies.entry(hash.clone()).or_insert_with(|| Body::of(bytes));
        hash
    }
}

/// What a run needs to make its trace, besides its calls.
pub struct Header<'a> {
    pub function: &'a str,
    pub guest: &'a str,
    pub component: Option<&'a str>,
    pub request_id: &'a str,
    pub deadline_ms: u64,
    pub time_left_ms: u64,
    pub now: u64,
    pub settings: &'a Settings,
    pub event: &'a str,
    /// The fuel and memory the guest ran under.
    pub budget: Budget,
}

impl Trace {
    /// The trace of a run: its header, its recording and its answer.
    pub fn new(header: Header<'_>, mut recording: Recording, answer: &Answer, fuel_used: u64) -> Trace {
        let event = recording.body(header.event.as_bytes());
        let mut trace = Trace {
            format: TRACE_FORMAT,
            function: header.function.to_owned(),
            guest: header.guest.to_owned(),
            component: header.component.map(str::to_owned),
            request_id: header.request_id.to_owned(),
            deadline_ms: header.deadline_ms,
            time_left_ms: header.time_left_ms,
            now: header.now,
            settings: header.settings.variables(),
            event,
            calls: recording.calls,
            answer: RecordedAnswer::of(answer),
            stopped: answer
                .failure()
                .filter(|failure| matches!(failure, Failure::Deadline))
                .map(|failure| failure.kind().to_owned()),
            fuel_used,
            budget: Some(header.budget),
            bodies: recording.bodies,
            left_out: None,
        };
        trace.fit(MAX_TRACE_BYTES);
        trace
    }

    /// The trace as compact JSON, as the Lambda host writes it.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Leaves out the largest bodies (the event last), then the last calls,
    /// until the trace fits in `limit` bytes; `left_out` says what went.
    pub fn fit(&mut self, limit: usize) {
        let mut size = self.to_json().len();
        if size <= limit {
            return;
        }
        // The largest first, the event last: without it nothing replays.
        let mut by_size: Vec<(bool, usize, String)> = self
            .bodies
            .iter()
            .map(|(hash, body)| (*hash != self.event, body.len(), hash.clone()))
            .collect();
        by_size.sort_unstable_by(|a, b| b.cmp(a));
        let mut left_out = LeftOut {
            bodies: 0,
            calls: 0,
            bytes: 0,
            limit,
        };
        for (_, len, hash) in by_size {
            if size <= limit {
                break;
            }
            self.bodies.remove(&hash);
            left_out.bodies += 1;
            left_out.bytes += len;
            size = size.saturating_sub(len);
        }
        while size > limit {
            let Some(call) = self.calls.pop() else { break };
            let len = serde_json::to_vec(&call).map_or(0, |json| json.len() + 1);
            left_out.calls += 1;
            left_out.bytes += len;
            size = size.saturating_sub(len);
        }
        self.left_out = Some(left_out);
    }

    /// Where the Lambda host writes this trace under `prefix`:
    /// `<prefix><function>/<date>/<request id>-<started ms>.json`. By
    /// function and day, so one function's day is one prefix to check; the
    /// start time keeps Lambda's retries of a request (same id) apart.
    pub fn key(&self, prefix: &str, started_ms: u64) -> String {
        let date = time::OffsetDateTime::from_unix_timestamp(i64::try_from(self.now).unwrap_or(0))
            .map(|time| time.date())
            .unwrap_or(time::Date::MIN);
        let (year, month, day) = (date.year(), u8::from(date.month()), date.day());
        let request_id: String = self
            .request_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!(
            "{prefix}{}/{year:04}-{month:02}-{day:02}/{request_id}-{started_ms}.json",
            self.function
        )
    }

    /// The event, unless it was left out.
    pub fn event(&self) -> Option<String> {
        let bytes = self.bodies.get(&self.event)?.bytes()?;
        String::from_utf8(bytes).ok()
    }

    /// The settings the run had.
    pub fn settings(&self) -> Result<Settings, crate::settings::SettingsError> {
        Settings::from_lookup(|name| self.settings.get(name).cloned())
    }

    /// Every action the host took, in the guest's order.
    pub fn actions(&self) -> Vec<Action> {
        self.calls.iter().flat_map(|call| call.actions.clone()).collect()
    }
}

impl RecordedAnswer {
    pub fn of(answer: &Answer) -> Self {
        RecordedAnswer {
            response: answer.response().cloned(),
            error: answer
                .failure()
                .map(|failure| json!({"kind": failure.kind(), "message": failure.to_string()})),
        }
    }
}

/// Answers a guest's calls from a trace, in order, and stops it at the
/// first call that is not the recorded one.
#[derive(Debug)]
pub struct Player {
    calls: Vec<TraceCall>,
    bodies: BTreeMap<String, Body>,
    next: usize,
    stopped: bool,
    /// Calls made after the last one kept, left out of the trace.
    calls_left_out: usize,
    /// Why the guest was stopped, if it was.
    pub difference: Option<Difference>,
    /// How long the recorded event had when it started.
    time_left: Duration,
}

impl Player {
    pub fn new(trace: &Trace) -> Player {
        Player {
            calls: trace.calls.clone(),
            bodies: trace.bodies.clone(),
            next: 0,
            stopped: trace.stopped.is_some(),
            calls_left_out: trace.left_out.as_ref().map_or(0, |left| left.calls),
            difference: None,
            time_left: Duration::from_millis(trace.time_left_ms),
        }
    }

    /// How long the recorded event had when it started: what bounds the
    /// replayed guest's waits, whatever the replay's own deadline.
    pub fn recorded_time_left(&self) -> Duration {
        self.time_left
    }

    /// The recorded reply and actions of the guest's next call, if it is
    /// the recorded one; else the trap that stops the guest: the first
    /// difference, or the interruption the recorded run had at this point.
    pub fn answer(&mut self, call: &Call) -> wasmtime::Result<(Reply, Vec<Action>)> {
        let number = self.next + 1;
        let Some(recorded) = self.calls.get(self.next) else {
            if self.calls_left_out > 0 {
                return Err(self.diverged(Difference {
                    call: Some(number),
                    at: "import".into(),
                    recorded: json!(format!(
                        "left out of the trace, with {} calls after it (over its size limit)",
                        self.calls_left_out - 1
                    )),
                    replayed: call.to_json(),
                }));
            }
            if self.stopped {
                // The recorded guest was stopped (its deadline) before it
                // made this call: so is this one.
                return Err(wasmtime::Trap::Interrupt.into());
            }
            return Err(self.diverged(Difference {
                call: Some(number),
                at: "import".into(),
                recorded: Value::Null,
                replayed: call.to_json(),
            }));
        };
        if recorded.call != *call {
            let (at, was, asked) = if recorded.call.import() == call.import() {
                first_difference(&recorded.call.to_json(), &call.to_json(), "").unwrap_or_default()
            } else {
                ("import".into(), recorded.call.to_json(), call.to_json())
            };
            return Err(self.diverged(Difference {
                call: Some(number),
                at,
                recorded: was,
                replayed: asked,
            }));
        }
        self.next += 1;
        Ok((recorded.reply.clone(), recorded.actions.clone()))
    }

    /// The body with `hash`, or the trap saying the trace left it out.
    pub fn body(&mut self, hash: &str) -> wasmtime::Result<Vec<u8>> {
        match self.bodies.get(hash).and_then(Body::bytes) {
            Some(bytes) => Ok(bytes),
            None => Err(self.diverged(Difference {
                call: Some(self.next),
                at: "reply".into(),
                recorded: json!(format!(
                    "{hash} (left out of the trace, which was over its size limit)"
                )),
                replayed: json!("a body this replay cannot give: it cannot be exact"),
            })),
        }
    }

    fn diverged(&mut self, difference: Difference) -> wasmtime::Error {
        self.difference = Some(difference.clone());
        wasmtime::Error::new(Diverged(difference))
    }

    /// Calls the trace holds that the guest did not make.
    pub fn unmade(&self) -> Option<&TraceCall> {
        self.calls.get(self.next)
    }

    /// Whether the guest has made every call the recorded one made (the
    /// trace may have left the last ones out).
    pub fn all_made(&self) -> bool {
        self.next == self.calls.len() && self.calls_left_out == 0
    }

    /// How many calls the guest made.
    pub fn made(&self) -> usize {
        self.next
    }

    /// Whether the recorded run was stopped by its deadline.
    pub fn stopped(&self) -> bool {
        self.stopped
    }
}

/// How the calls of one event are handled: performed (and perhaps
/// recorded), or answered from a trace.
#[derive(Debug, Default)]
pub enum Tape {
    #[default]
    Off,
    Recording(Recording),
    Playing(Box<Player>),
}

/// What a replay from a trace found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The replay made the recorded calls, took the recorded actions and
    /// gave the recorded answer.
    pub same: bool,
    /// Nothing was left out of the trace, so the replay could be exact.
    pub exact: bool,
    pub component: ComponentCheck,
    pub difference: Option<Difference>,
    pub left_out: Option<LeftOut>,
    /// The verdict in words.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentCheck {
    pub recorded: Option<String>,
    pub replayed: Option<String>,
    /// The replay ran the component that recorded the trace.
    pub same: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_kept_once_however_often_it_is_read() {
        let mut recording = Recording::default();
        let first = recording.body(b"{\"daily\": true}");
        let second = recording.body(b"{\"daily\": true}");
        let binary = recording.body(&[0xff, 0x00]);
        assert_eq!(first, second);
        assert_eq!(recording.bodies.len(), 2);
        assert_eq!(recording.bodies[&binary], Body::Base64("/wA=".into()));
        assert_eq!(recording.bodies[&binary].bytes(), Some(vec![0xff, 0x00]));
    }

    fn trace_with(calls: Vec<TraceCall>, bodies: BTreeMap<String, Body>) -> Trace {
        Trace {
            format: TRACE_FORMAT,
            function: "emmaa-model-update".into(),
            guest: "model_updates".into(),
            component: None,
            request_id: "r".into(),
            deadline_ms: 0,
            time_left_ms: 0,
            now: 1_580_817_600,
            settings: BTreeMap::new(),
            event: content_hash(b"{}"),
            calls,
            answer: RecordedAnswer {
                response: None,
                error: None,
            },
            stopped: None,
            fuel_used: 0,
            budget: None,
            bodies,
            left_out: None,
        }
    }

    #[test]
    fn a_trace_over_its_limit_leaves_out_its_largest_bodies_and_says_so() {
        let mut recording = Recording::default();
        let big = recording.body(&vec![b'x'; 10_000]);
        let small = recording.body(b"small");
        let mut trace = trace_with(Vec::new(), recording.bodies);
        trace.fit(5_000);
        assert!(!trace.bodies.contains_key(&big));
        assert!(trace.bodies.contains_key(&small));
        assert_eq!(
            trace.left_out,
            Some(LeftOut {
                bodies: 1,
                calls: 0,
                bytes: 10_000,
                limit: 5_000
            })
        );
        assert!(trace.to_json().len() <= 5_000);
    }

    #[test]
    fn a_trace_whose_calls_alone_are_over_its_limit_leaves_out_the_last_and_a_replay_stops_there() {
        let call = |n: usize| TraceCall {
            call: Call::ListPrefixes {
                bucket: "emmaa".into(),
                prefix: format!("models/{n:04}/"),
                delimiter: "/".into(),
            },
            reply: Reply::Prefixes(Ok(Vec::new())),
            actions: Vec::new(),
        };
        let mut trace = trace_with((0..100).map(call).collect(), BTreeMap::new());
        trace.fit(6_000);
        assert!(trace.to_json().len() <= 6_000, "{}", trace.to_json().len());
        let kept = trace.calls.len();
        assert_eq!(trace.left_out.as_ref().unwrap().calls, 100 - kept);
        let mut player = Player::new(&trace);
        for n in 0..kept {
            player.answer(&call(n).call).unwrap();
        }
        assert!(!player.all_made());
        let err = player.answer(&call(kept).call).unwrap_err();
        let difference = &err.downcast_ref::<Diverged>().unwrap().0;
        assert_eq!(difference.call, Some(kept + 1));
        assert!(
            difference.recorded.to_string().contains("left out of the trace"),
            "{difference}"
        );
    }

    #[test]
    fn the_player_answers_the_recorded_call_and_stops_at_another() {
        let call = Call::ListPrefixes {
            bucket: "emmaa".into(),
            prefix: "models/".into(),
            delimiter: "/".into(),
        };
        let reply = Reply::Prefixes(Ok(vec!["models/aml/".into()]));
        let trace = trace_with(
            vec![TraceCall {
                call: call.clone(),
                reply: reply.clone(),
                actions: Vec::new(),
            }],
            BTreeMap::new(),
        );
        let mut player = Player::new(&trace);
        assert_eq!(player.answer(&call).unwrap().0, reply);
        let mut other = Player::new(&trace);
        let asked = Call::ListPrefixes {
            bucket: "emmaa".into(),
            prefix: "results/".into(),
            delimiter: "/".into(),
        };
        let err = other.answer(&asked).unwrap_err();
        let difference = &err.downcast_ref::<Diverged>().unwrap().0;
        assert_eq!(difference.call, Some(1));
        assert_eq!(difference.at, "prefix");
        assert_eq!(
            (&difference.recorded, &difference.replayed),
            (&json!("models/"), &json!("results/"))
        );
        // A call past the end of the trace is a difference too.
        let err = player.answer(&call).unwrap_err();
        assert_eq!(err.downcast_ref::<Diverged>().unwrap().0.call, Some(2));
    }

    #[test]
    fn a_key_holds_the_function_the_day_and_the_request() {
        let trace = trace_with(Vec::new(), BTreeMap::new());
        assert_eq!(
            trace.key("traces/", 1_580_817_600_123),
            "traces/emmaa-model-update/2020-02-04/r-1580817600123.json"
        );
    }
}
