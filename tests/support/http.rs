#![allow(dead_code, reason = "each test binary uses part of the shared helpers")]

//! A minimal HTTP/1.1 client and server for tests: enough for moto's
//! `/moto-api` routes and for serving Lambda's Runtime API to `bootstrap`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

/// A request or response head and body as read off the wire.
#[derive(Debug, Clone)]
pub struct Message {
    /// The request line (`GET /path HTTP/1.1`) or status line.
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one message; `None` when the peer closed the connection first.
pub fn read_message(reader: &mut impl BufRead) -> Option<Message> {
    let mut start = String::new();
    if reader.read_line(&mut start).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let mut message = Message {
        start: start.trim_end().to_owned(),
        headers,
        body: Vec::new(),
    };
    if message
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            message.body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = message
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        message.body = vec![0; length];
        reader.read_exact(&mut message.body).ok()?;
    }
    Some(message)
}

/// Sends one request on a fresh connection and reads the answer.
pub fn request(address: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Message {
    try_request(address, method, path, headers, body)
        .unwrap_or_else(|err| panic!("{method} {path} to {address}: {err}"))
}

/// As [`request`], saying why there is no answer instead of panicking.
pub fn try_request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Message, String> {
    let mut stream = TcpStream::connect(address).map_err(|err| format!("connecting: {err}"))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .map_err(|err| format!("sending: {err}"))?;
    read_message(&mut BufReader::new(stream)).ok_or_else(|| "no answer".to_owned())
}

/// The status code of a response.
pub fn status(response: &Message) -> u16 {
    response
        .start
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// What a test server does with a request.
pub enum Reply {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Keep the request open and answer nothing (until the test ends).
    Hold,
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Reply {
        Reply::Respond {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }
}

/// Writes a response, framed by its length; framing headers of `headers`
/// (a response passed on from elsewhere) are left out.
pub fn write_response(
    writer: &mut impl Write,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        let framing = ["content-length", "transfer-encoding", "connection"];
        if !framing.iter().any(|framing| name.eq_ignore_ascii_case(framing)) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    // One write: a head and a body in two small writes meet Nagle's
    // algorithm and the peer's delayed ACK, 40 ms a response.
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    writer.write_all(&message)
}

/// Serves `handle` on a free loopback port, one thread per connection,
/// keep-alive included; answers the address.
pub fn serve(handle: impl Fn(Message) -> Reply + Send + Sync + 'static) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let handle = std::sync::Arc::new(handle);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handle = std::sync::Arc::clone(&handle);
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                while let Some(request) = read_message(&mut reader) {
                    let (status, headers, body) = match handle(request) {
                        Reply::Hold => {
                            std::thread::sleep(std::time::Duration::from_secs(3600));
                            return;
                        }
                        Reply::Respond {
                            status,
                            headers,
                            body,
                        } => (status, headers, body),
                    };
                    if write_response(&mut writer, status, &headers, &body).is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}
