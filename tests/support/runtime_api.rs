#![allow(dead_code, reason = "each test binary uses part of the shared helpers")]

//! Lambda's Runtime API, served to a `bootstrap` under test: it hands out
//! the queued events on `GET .../invocation/next` (and holds the request
//! open once there are none, as Lambda does), and passes on every response,
//! error and init error the bootstrap posts.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::http::{Message, Reply, serve};

pub struct RuntimeApi {
    pub address: String,
    /// What the bootstrap posted, and when it arrived.
    posted: Receiver<(Instant, Message)>,
    /// When each event was handed out, in order.
    handed: Arc<Mutex<Vec<Instant>>>,
}

/// One event: its request id and payload.
pub type QueuedEvent = (String, String);

impl RuntimeApi {
    pub fn start(events: Vec<QueuedEvent>) -> RuntimeApi {
        let events = Mutex::new(VecDeque::from(events));
        let (sender, posted) = channel();
        let sender = Mutex::new(sender);
        let handed = Arc::new(Mutex::new(Vec::new()));
        let handing = Arc::clone(&handed);
        let address = serve(move |request| {
            if !(request.start.starts_with("GET ") && request.start.contains("/runtime/invocation/next")) {
                let _ = sender.lock().unwrap().send((Instant::now(), request));
                return Reply::json(202, r#"{"status": "OK"}"#);
            }
            let Some((request_id, payload)) = events.lock().unwrap().pop_front() else {
                return Reply::Hold;
            };
            handing.lock().unwrap().push(Instant::now());
            let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() + 60_000;
            let headers = [
                ("Content-Type", "application/json".to_owned()),
                ("Lambda-Runtime-Aws-Request-Id", request_id),
                ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
                (
                    "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:test".into(),
                ),
                (
                    "Lambda-Runtime-Trace-Id",
                    "Root=1-00000000-000000000000000000000000".into(),
                ),
            ];
            Reply::Respond {
                status: 200,
                headers: headers
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), value))
                    .collect(),
                body: payload.into_bytes(),
            }
        });
        RuntimeApi {
            address,
            posted,
            handed,
        }
    }

    /// The next thing the bootstrap posted, waiting at most `patience`.
    pub fn next_post(&self, patience: Duration) -> Option<Message> {
        self.next_post_at(patience).map(|(_, message)| message)
    }

    /// As [`RuntimeApi::next_post`], with when it arrived.
    pub fn next_post_at(&self, patience: Duration) -> Option<(Instant, Message)> {
        self.posted.recv_timeout(patience).ok()
    }

    /// When each event was handed out so far, in order.
    pub fn handed(&self) -> Vec<Instant> {
        self.handed.lock().unwrap().clone()
    }
}
