#![allow(dead_code, reason = "each test binary uses part of the shared helpers")]

//! Lambda's Runtime API, served to a `bootstrap` under test: it hands out
//! the queued events on `GET .../invocation/next` (and holds the request
//! open once there are none, as Lambda does), and passes on every response,
//! error and init error the bootstrap posts.

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{Message, read_message};

pub struct RuntimeApi {
    pub address: String,
    posted: Receiver<Message>,
}

/// One event: its request id and payload.
pub type QueuedEvent = (String, String);

impl RuntimeApi {
    pub fn start(events: Vec<QueuedEvent>) -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let events = Arc::new(Mutex::new(VecDeque::from(events)));
        let (sender, posted) = channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (events, sender) = (Arc::clone(&events), sender.clone());
                std::thread::spawn(move || serve(stream, &events, &sender));
            }
        });
        RuntimeApi { address, posted }
    }

    /// The next thing the bootstrap posted, waiting at most `patience`.
    pub fn next_post(&self, patience: Duration) -> Option<Message> {
        self.posted.recv_timeout(patience).ok()
    }
}

fn serve(stream: TcpStream, events: &Mutex<VecDeque<QueuedEvent>>, posted: &Sender<Message>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_message(&mut reader) {
        if request.start.starts_with("GET ") && request.start.contains("/runtime/invocation/next") {
            let next = events.lock().unwrap().pop_front();
            let Some((request_id, payload)) = next else {
                // No more events: hold the request, as Lambda does.
                std::thread::sleep(Duration::from_secs(3600));
                return;
            };
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 60_000;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Lambda-Runtime-Aws-Request-Id: {request_id}\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:test\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\n\r\n",
                payload.len()
            );
            if writer
                .write_all(head.as_bytes())
                .and_then(|()| writer.write_all(payload.as_bytes()))
                .is_err()
            {
                return;
            }
        } else {
            let _ = posted.send(request);
            if writer
                .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n")
                .is_err()
            {
                return;
            }
        }
    }
}
