#![allow(dead_code, reason = "each test binary uses part of the shared helpers")]

//! A fault-injecting HTTP proxy on loopback, in front of moto: requests pass
//! through unchanged, except those a rule matches, which get the rule's
//! faults first (an error answer, a reset connection, an answer that never
//! comes), one per matching request, and pass after that. The production
//! AWS client is pointed at the proxy, so its retries, backoff and timeouts
//! are what a test exercises.

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use super::http::{Message, read_message, write_response};

/// What the proxy does with one matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status, headers and body instead of passing it on.
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Close the connection without answering.
    Reset,
    /// Keep the connection open and never answer.
    Hold,
    /// Pass the request on, then never answer: it happened, but the
    /// caller cannot know.
    Swallow,
    /// Hold the request until as many requests as the barrier waits for
    /// have come, then pass them on one at a time, in the order they came
    /// (each answered before the next goes): a race made deterministic.
    Barrier(Barrier),
}

/// The shared state of [`Fault::Barrier`]: give the same barrier to each of
/// the requests that are to meet.
#[derive(Debug, Clone)]
pub struct Barrier {
    waits_for: usize,
    state: Arc<(Mutex<(usize, usize)>, std::sync::Condvar)>,
}

impl Barrier {
    /// A barrier for `waits_for` requests.
    pub fn new(waits_for: usize) -> Barrier {
        Barrier {
            waits_for,
            state: Arc::new((Mutex::new((0, 0)), std::sync::Condvar::new())),
        }
    }

    /// Waits for the request's turn (after all have come), runs `pass`,
    /// and gives the turn to the next.
    fn pass_in_turn<T>(&self, pass: impl FnOnce() -> T) -> T {
        let (lock, turns) = &*self.state;
        let mut state = lock.lock().unwrap();
        let ticket = state.0;
        state.0 += 1;
        turns.notify_all();
        while state.0 < self.waits_for || state.1 != ticket {
            state = turns.wait(state).unwrap();
        }
        drop(state);
        let passed = pass();
        lock.lock().unwrap().1 += 1;
        turns.notify_all();
        passed
    }
}

impl Fault {
    /// S3's 503 `SlowDown`.
    pub fn s3_slow_down() -> Fault {
        Fault::xml(503, "SlowDown", "Please reduce your request rate.")
    }

    /// S3's 500 `InternalError`.
    pub fn s3_internal_error() -> Fault {
        Fault::xml(
            500,
            "InternalError",
            "We encountered an internal error. Please try again.",
        )
    }

    fn xml(status: u16, code: &str, message: &str) -> Fault {
        Fault::Answer {
            status,
            headers: vec![("Content-Type".into(), "application/xml".into())],
            body: format!("<Error><Code>{code}</Code><Message>{message}</Message></Error>"),
        }
    }

    /// A JSON error as Lambda and Batch answer one (`x-amzn-ErrorType`).
    pub fn json_error(status: u16, error_type: &str, message: &str) -> Fault {
        Fault::Answer {
            status,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("x-amzn-ErrorType".into(), error_type.into()),
            ],
            body: format!(r#"{{"message": "{message}"}}"#),
        }
    }

    /// A 429 `TooManyRequestsException` (Lambda's and Batch's throttling).
    pub fn too_many_requests() -> Fault {
        Fault::json_error(429, "TooManyRequestsException", "Rate exceeded")
    }

    /// An invoked function that failed (Lambda's `X-Amz-Function-Error`).
    pub fn function_error() -> Fault {
        Fault::Answer {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("X-Amz-Function-Error".into(), "Unhandled".into()),
            ],
            body: r#"{"errorType": "EmmaaGuestTrapped", "errorMessage": "the guest failed"}"#.into(),
        }
    }
}

/// Faults for the requests whose request line or body contains each of
/// `needles`.
struct Rule {
    needles: Vec<String>,
    faults: Vec<Fault>,
}

impl Rule {
    fn matches(&self, start: &str, body: &str) -> bool {
        self.needles
            .iter()
            .all(|needle| start.contains(needle.as_str()) || body.contains(needle.as_str()))
    }
}

/// A request the proxy saw: its request line, and what it did.
#[derive(Debug, Clone)]
pub struct Seen {
    pub start: String,
    pub body: String,
    pub passed: bool,
    /// The AWS SDK's `amz-sdk-request` header (`attempt=2; max=5`): which
    /// attempt of one SDK call this request was.
    pub attempt: Option<String>,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
}

/// The proxy: its address, its rules and what it saw.
#[derive(Clone)]
pub struct FaultProxy {
    pub address: String,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of `upstream` (`host:port`).
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let proxy = FaultProxy { address, state };
        let serving = proxy.clone();
        let upstream = upstream.to_owned();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (proxy, upstream) = (serving.clone(), upstream.clone());
                std::thread::spawn(move || proxy.serve(client, &upstream));
            }
        });
        proxy
    }

    /// The next requests containing `needle` (in the request line or the
    /// body) get `faults`, one each, in order.
    pub fn fail(&self, needle: &str, faults: Vec<Fault>) -> &Self {
        self.fail_all(&[needle], faults)
    }

    /// The next requests containing every one of `needles` (each in the
    /// request line or the body) get `faults`, one each, in order.
    pub fn fail_all(&self, needles: &[&str], faults: Vec<Fault>) -> &Self {
        self.state.lock().unwrap().rules.push(Rule {
            needles: needles.iter().map(|needle| needle.to_string()).collect(),
            faults,
        });
        self
    }

    /// The requests seen so far that contain `needle`.
    pub fn seen(&self, needle: &str) -> Vec<Seen> {
        let state = self.state.lock().unwrap();
        state
            .seen
            .iter()
            .filter(|seen| seen.start.contains(needle) || seen.body.contains(needle))
            .cloned()
            .collect()
    }

    fn next_fault(&self, request: &Message) -> Option<Fault> {
        let body = request.body_text();
        let mut state = self.state.lock().unwrap();
        let fault = state
            .rules
            .iter_mut()
            .find(|rule| !rule.faults.is_empty() && rule.matches(&request.start, &body))
            .map(|rule| rule.faults.remove(0));
        state.seen.push(Seen {
            start: request.start.clone(),
            body,
            passed: matches!(fault, None | Some(Fault::Barrier(_))),
            attempt: request.header("amz-sdk-request").map(str::to_owned),
        });
        fault
    }

    fn serve(&self, client: TcpStream, upstream: &str) {
        let mut writer = client.try_clone().unwrap();
        let mut reader = BufReader::new(client);
        while let Some(request) = read_message(&mut reader) {
            let (status, headers, body) = match self.next_fault(&request) {
                Some(Fault::Reset) => {
                    let _ = writer.shutdown(Shutdown::Both);
                    return;
                }
                Some(Fault::Hold) => {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                    return;
                }
                Some(Fault::Swallow) => {
                    forward(upstream, &request);
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                    return;
                }
                Some(Fault::Answer {
                    status,
                    headers,
                    body,
                }) => (status, headers, body.into_bytes()),
                Some(Fault::Barrier(barrier)) => {
                    let Some(passed) = barrier.pass_in_turn(|| passed_on(upstream, &request)) else {
                        return;
                    };
                    passed
                }
                None => {
                    let Some(passed) = passed_on(upstream, &request) else {
                        return;
                    };
                    passed
                }
            };
            if write_response(&mut writer, status, &headers, &body).is_err() {
                return;
            }
        }
    }
}

/// An answer to write back: its status, headers and body.
type Answered = (u16, Vec<(String, String)>, Vec<u8>);

/// `request` passed on to `upstream`, and its answer.
fn passed_on(upstream: &str, request: &Message) -> Option<Answered> {
    let response = forward(upstream, request)?;
    let status = response
        .start
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(502);
    Some((status, response.headers, response.body))
}

/// Sends `request` as it came (its body re-framed by length) on a fresh
/// connection to `upstream`, and reads the answer.
fn forward(upstream: &str, request: &Message) -> Option<Message> {
    let mut stream = TcpStream::connect(upstream).ok()?;
    let mut head = format!(
        "{}\r\nContent-Length: {}\r\nConnection: close\r\n",
        request.start,
        request.body.len()
    );
    for (name, value) in &request.headers {
        let hop = ["content-length", "transfer-encoding", "connection"];
        if !hop.iter().any(|hop| name.eq_ignore_ascii_case(hop)) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(&request.body).ok()?;
    let mut reader = BufReader::new(stream);
    let mut response = read_message(&mut reader)?;
    let framed = ["content-length", "transfer-encoding"];
    if framed.iter().all(|name| response.header(name).is_none()) {
        reader.read_to_end(&mut response.body).ok()?;
    }
    Some(response)
}
