//! Not a handler: a guest for the host's sandbox tests. Sent
//! `{"reach": WHAT}`, it tries to reach WHAT on its own, with plain `std`,
//! and answers what it got: the host's answers to WASI
//! (`host/runtime/src/wasi.rs`: no files, no environment, the event's
//! clock, waits that never sleep) or a trap (`network`, `exit`). Its Python
//! twin, `guests/python/sandbox_probe`, answers the same cases alike. `spin` and
//! `memory` try to run past the host's fuel, time and memory limits;
//! `submit-then-spin` and `submit-then-panic` fail after a job went through,
//! `panic` before anything did; `bad-answer` answers something that is not
//! JSON, which no handler built on `emmaa_guest` can;
//! `beyond-reach` asks the host for a read, a listing, an invocation and a
//! job outside any function's reach, and answers the error codes it got;
//! `relay` invokes the functions it is sent, each relaying to the next.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use emmaa_guest::batch_job::{JobKind, submit_each};
use emmaa_guest::{JobRequest, ModelName, Report, Value, json};

/// `emmaa_guest::export_handler!`, by hand: its answers are always JSON,
/// and `bad-answer` must not be.
struct Component;

impl emmaa_guest::bindings::Guest for Component {
    fn handle(event: String, context: emmaa_guest::bindings::Context) -> Result<String, String> {
        let reach = event
            .parse::<Value>()
            .ok()
            .and_then(|event| event["reach"].as_str().map(str::to_owned));
        if reach.as_deref() == Some("bad-answer") {
            return Ok("{\"statusCode\": 200,".to_owned());
        }
        emmaa_guest::run(&event, &context, handle)
    }
}

emmaa_guest::bindings::export_world!(Component);

fn handle(event: &Value, report: &mut Report) -> Result<(), String> {
    let what = event["reach"].as_str().unwrap_or_default();
    let reached = match what {
        "files" => match std::fs::read("/etc/passwd") {
            Ok(bytes) => format!("read {} bytes", bytes.len()),
            Err(_) => "refused".to_owned(),
        },
        "listing" => match std::fs::read_dir("/") {
            Ok(listing) => format!("listed {}", listing.count()),
            Err(_) => "refused".to_owned(),
        },
        "environment" => format!("{} variables", std::env::vars_os().count()),
        "arguments" => format!("{} arguments", std::env::args_os().count()),
        "clock" => seconds_since_the_epoch().to_string(),
        "sleep" => {
            let (wall, started) = (seconds_since_the_epoch(), std::time::Instant::now());
            std::thread::sleep(std::time::Duration::from_secs(5));
            format!(
                "slept {:.1} s; the wall clock moved {} s",
                started.elapsed().as_secs_f64(),
                seconds_since_the_epoch() - wall
            )
        }
        "sleep-past-deadline" => {
            std::thread::sleep(std::time::Duration::from_secs(24 * 3600));
            "woke".to_owned()
        }
        "network" => match std::net::TcpStream::connect("127.0.0.1:9") {
            Ok(_) => "connected".to_owned(),
            Err(_) => "refused".to_owned(),
        },
        "name-lookup" => match std::net::ToSocketAddrs::to_socket_addrs(&("example.org", 443)) {
            Ok(found) => format!("found {}", found.count()),
            Err(_) => "refused".to_owned(),
        },
        "stdin" => {
            let mut text = String::new();
            match std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
                Ok(read) => format!("{read} bytes"),
                Err(_) => "refused".to_owned(),
            }
        }
        "stdout" => {
            println!("escaped");
            eprintln!("to standard error");
            "printed".to_owned()
        }
        "exit" => std::process::exit(3),
        "hash-seed" => RandomState::new().hash_one("emmaa").to_string(),
        "spin" => loop {
            std::hint::black_box(what);
        },
        "memory" => std::hint::black_box(vec![1_u8; 512 << 20]).len().to_string(),
        "panic" => panic!("deliberately, before anything went through"),
        "beyond-reach" => beyond_reach(),
        "relay" => relay(event),
        "submit-then-spin" | "submit-then-panic" => {
            let model = emmaa_guest::work::in_this_request(ModelName::parse("model", "probe"));
            submit_each(vec![model], report, |model| {
                JobRequest::for_model(JobKind::Update, model, "true".to_owned())
            });
            if what == "submit-then-panic" {
                panic!("deliberately, after a job went through");
            }
            loop {
                std::hint::black_box(what);
            }
        }
        other => return Err(format!("reach {other:?}: unknown target")),
    };
    report.set("reached", json!(reached));
    Ok(())
}

/// The wall clock's whole seconds since the Unix epoch.
fn seconds_since_the_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Sent `{"reach": "relay", "to": [F, G, ...]}`: invokes F (waiting for
/// its answer) with `{"reach": "relay", "to": [G, ..., F]}`, and answers
/// what F answered: functions relaying to each other form a cycle.
fn relay(event: &Value) -> String {
    use emmaa_guest::bindings::emmaa::pipeline::functions;
    let to: Vec<String> = event["to"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|name| name.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let Some((first, rest)) = to.split_first() else {
        return "nobody to relay to".to_owned();
    };
    let mut next = rest.to_vec();
    next.push(first.clone());
    let invocation = functions::Invocation {
        function_name: first.clone(),
        invocation_type: functions::InvocationType::RequestResponse,
        payload: json!({"reach": "relay", "to": next}).to_string(),
        work: None,
    };
    match functions::invoke(&[invocation]).remove(0) {
        Ok(functions::Invoked::Now(outcome)) => match outcome.function_error {
            Some(error) => format!("{first} failed ({error}): {}", outcome.payload),
            None => format!("{first} answered {}", outcome.payload),
        },
        Ok(other) => format!("{first}: {other:?}"),
        Err(err) => format!("{first}: {}", err.code),
    }
}

/// The error code of each request outside the reach, `granted` if one got through.
fn beyond_reach() -> String {
    use emmaa_guest::bindings::emmaa::pipeline::{batch, functions, storage};
    let code = |result: Result<(), String>| result.err().unwrap_or_else(|| "granted".to_owned());
    let read = storage::get_objects("emmaa", &["secrets/key".to_owned()], 100).remove(0);
    let listed = storage::list_prefixes("another-bucket", "models/", "/");
    let invocation = functions::Invocation {
        function_name: "emmaa-delete-everything".into(),
        invocation_type: functions::InvocationType::Event,
        payload: "{}".into(),
        work: None,
    };
    let invoked = functions::invoke(&[invocation]).remove(0);
    let job = batch::Job {
        name: "probe_elsewhere".into(),
        queue: "another-queue".into(),
        definition: "emmaa_jobdef".into(),
        command: vec!["true".into()],
        depends_on: Vec::new(),
        work: None,
    };
    let submitted = batch::submit(&[job]).remove(0);
    [
        code(read.map(drop).map_err(|err| err.code)),
        code(listed.map(drop).map_err(|err| err.code)),
        code(invoked.map(drop).map_err(|err| err.code)),
        code(submitted.map(drop).map_err(|err| err.code)),
    ]
    .join(",")
}
