//! Cold start, warm cost and the daily fan-out, side by side, through one
//! harness: each way is started as Lambda starts a runtime (a fresh
//! process, the Runtime API on loopback, served here).
//!
//! Cold start and warm cost: `model_updates` answers `{"model": "aml"}` by
//! submitting one Batch job to a loopback endpoint that answers at once.
//!
//! - `bootstrap`: the host with the precompiled `model_updates` component,
//!   unzipped from the bundle `deploy` makes (the ledger off: the same one
//!   call as the others);
//! - `native`: `deploy/baseline`, the same work as a plain `lambda_runtime`
//!   and AWS SDK binary, no WebAssembly (a workspace of its own, built here
//!   in release by `--full` only);
//! - `python`: the original `model_updates.py` (PyPI's `emmaa` 1.17.0,
//!   fetched into target/) with boto3, under `deploy/baseline/python_runtime.py`.
//!
//! Cold: from spawning the process to the Runtime API receiving the first
//! answer. Warm: a runtime answers the same event many times; each event
//! from the Runtime API handing it out to the answer arriving.
//!
//! The fan-out: `update_pipeline` over daily models against a loopback S3
//! and Lambda that answer every call after 20 ms, as AWS does (moto is
//! CPU-bound and would measure moto): the bootstrap at the default
//! settings (the ledger's claims included) against the original
//! `update_pipeline.py`, with each process's peak resident memory.
//!
//! The README's test command runs the short form (two starts of the
//! bootstrap as the tests build it and of Python, a few warm events, a
//! fan-out over 20 models; no timing is asserted, only that each way
//! answers and does the work). The benchmark, whose figures are in
//! docs/benchmarks.md:
//!
//!     cargo test -p emmaa-deploy --test side_by_side -- --full
//!
//! `--python` measures instead the bootstrap's cold start and warm cost
//! with `model_stats` in Rust and with its Python build (built here by
//! componentize-py), each precompiled into a bundle of its own.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use emmaa_deploy::arch::Arch;
use emmaa_deploy::bundle::{BUNDLE_GOAL_BYTES, BundleRequest, Serves, build_bootstrap, bundle, workspace};
use serde_json::Value;
use support::bundle::unzip;
use support::http::{Reply, serve};
use support::moto::venv_tool;
use support::runtime_api::RuntimeApi;

/// The Python the original ran with here, and its only dependency.
const BOTO3: &str = "boto3==1.43.11";
const EMMAA_WHEEL: &str = "emmaa==1.17.0";
const EVENT: &str = r#"{"model": "aml"}"#;
/// Every S3 and Lambda call's round trip in the fan-out.
const LATENCY: Duration = Duration::from_millis(20);

/// How much to measure.
struct Plan {
    /// Cold starts per way.
    starts: usize,
    /// Events a warm runtime answers (after one to warm it).
    events: usize,
    /// Daily models in the fan-out.
    models: usize,
    /// Release builds, and the native baseline.
    full: bool,
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--full");
    // `--cold`: cold starts only, to profile the start.
    let cold_only = std::env::args().any(|arg| arg == "--cold");
    let plan = if full {
        Plan {
            starts: 40,
            events: 1_000,
            models: 1_000,
            full,
        }
    } else {
        Plan {
            starts: 2,
            events: 5,
            models: 20,
            full,
        }
    };
    let work = workspace().join("target").join("cold-start");
    std::fs::create_dir_all(&work).unwrap();
    let batch = BatchEndpoint::start();
    let python_build = std::env::args().any(|arg| arg == "--python");
    let mut ways = vec![bootstrap(&work, &plan, "model_updates")];
    if python_build {
        ways = vec![
            built(&work, &plan, "model_stats", false),
            built(&work, &plan, "model_stats", true),
        ];
    } else {
        if plan.full {
            ways.push(native(&work));
        }
        ways.push(python(&work, "model_updates"));
    }
    println!(
        "{} cold starts, {} warm events each (--full: release builds)",
        plan.starts, plan.events
    );
    // The ways take turns, so a slower minute of the machine's falls on
    // all of them alike.
    let mut colds = vec![Vec::new(); ways.len()];
    for _ in 0..plan.starts {
        for (way, cold) in ways.iter().zip(&mut colds) {
            cold.push(way.cold_start(&batch));
        }
    }
    let mut rows = Vec::new();
    for (way, cold) in ways.iter().zip(colds) {
        let warm = if cold_only {
            Vec::new()
        } else {
            way.warm(&batch, plan.events)
        };
        rows.push((way.name, cold, warm));
    }
    println!("| way | cold median | cold p90 | cold min–max | warm median | warm p99 |");
    println!("|---|---|---|---|---|---|");
    for (name, cold, warm) in &rows {
        println!(
            "| {name} | {} | {} | {}–{} | {} | {} |",
            shown(percentile(cold, 50)),
            shown(percentile(cold, 90)),
            shown(percentile(cold, 0)),
            shown(percentile(cold, 100)),
            shown(percentile(warm, 50)),
            shown(percentile(warm, 99)),
        );
    }
    let median = |name: &str| {
        rows.iter()
            .find(|(way, ..)| *way == name)
            .map(|(_, cold, _)| percentile(cold, 50).as_secs_f64())
    };
    if let (Some(bootstrap), Some(native)) = (median("bootstrap"), median("native")) {
        println!(
            "bootstrap ÷ native, cold: {:.2}× (goal: at most 1.5×)",
            bootstrap / native
        );
    }
    if let (Some(bootstrap), Some(python)) = (median("bootstrap"), median("python")) {
        println!(
            "python ÷ bootstrap, cold: {:.1}× (goal: at least 20×)",
            python / bootstrap
        );
    }
    println!("jobs submitted: {}", batch.submitted.load(Ordering::SeqCst));
    if !cold_only && !python_build {
        fan_out(&work, &plan);
        sizes(&work, &plan, &ways);
    }
}

/// `update_pipeline` both ways over `plan.models` daily models.
fn fan_out(work: &Path, plan: &Plan) {
    println!(
        "\nupdate_pipeline over {} daily models, every call answered after {} ms",
        plan.models,
        LATENCY.as_millis()
    );
    println!("| way | calls | time | peak resident memory |");
    println!("|---|---|---|---|");
    let mut times = Vec::new();
    for way in [
        bootstrap(work, plan, "update_pipeline"),
        python(work, "update_pipeline"),
    ] {
        let aws = AwsEndpoint::start(plan.models);
        let api = runtime_api(1, "{}");
        let mut child = way.spawn(&api, &aws.address);
        let answered = answer(&api, way.name);
        let peak = peak_memory(&child);
        let _ = child.kill();
        let _ = child.wait();
        let took = answered - api.handed()[0];
        let invoked = aws.invoked.load(Ordering::SeqCst);
        assert_eq!(invoked, plan.models, "{} invoked every model once", way.name);
        println!(
            "| {} | {} | {} | {} |",
            way.name,
            aws.calls.load(Ordering::SeqCst),
            shown(took),
            peak.map_or("?".into(), |kb| format!("{:.1} MB", kb as f64 / 1024.0))
        );
        times.push(took);
    }
    if let [bootstrap, python] = times[..] {
        println!(
            "python ÷ bootstrap, fan-out: {:.1}× (goal: at least 10×)",
            python.as_secs_f64() / bootstrap.as_secs_f64()
        );
    }
}

/// What users deploy, and the parts of it, beside the native binary.
fn sizes(work: &Path, plan: &Plan, ways: &[Way]) {
    let profile = if plan.full { "release" } else { "dev" };
    let bootstrap = build_bootstrap(profile, Arch::X86_64, &mut say).unwrap_or_else(|err| panic!("{err}"));
    let everything = bundle(&BundleRequest {
        serves: Serves::All,
        arch: Arch::X86_64,
        profile: profile.into(),
        bootstrap: Some(bootstrap.clone()),
        out: Some(work.join(format!("pipeline-{profile}.zip"))),
        function_prefix: "emmaa-".into(),
        python: Vec::new(),
    })
    .unwrap_or_else(|err| panic!("{err}"));
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |metadata| metadata.len());
    println!("\n| what ({profile}) | bytes |");
    println!("|---|---|");
    println!(
        "| pipeline.zip, every function (goal: at most {BUNDLE_GOAL_BYTES} bytes) | {} |",
        everything.zip.len()
    );
    println!("| bootstrap | {} |", size(&bootstrap));
    if let Some(native) = ways.iter().find(|way| way.name == "native") {
        println!("| native baseline binary | {} |", size(&native.program));
    }
    let guests = Path::new(emmaa_runtime::functions::GUEST_DIR);
    for entry in &emmaa_runtime::functions::FUNCTIONS {
        println!(
            "| {}.wasm | {} |",
            entry.guest,
            size(&guests.join(format!("{}.wasm", entry.guest)))
        );
    }
    // The release bundle is what users deploy: over the goal, the run fails.
    assert!(
        !plan.full || everything.zip.len() <= BUNDLE_GOAL_BYTES,
        "the release bundle is {} bytes, over the goal of {BUNDLE_GOAL_BYTES}",
        everything.zip.len()
    );
}

/// A process's peak resident memory, in KiB (`VmHWM`).
fn peak_memory(child: &Child) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// S3 and Lambda as `update_pipeline` uses them: `models` daily models,
/// the ledger's conditional writes accepted, every call answered after
/// [`LATENCY`].
struct AwsEndpoint {
    address: String,
    calls: Arc<AtomicUsize>,
    invoked: Arc<AtomicUsize>,
}

impl AwsEndpoint {
    fn start(models: usize) -> AwsEndpoint {
        let (calls, invoked) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (counted, invocations) = (Arc::clone(&calls), Arc::clone(&invoked));
        let address = serve(move |request| {
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(LATENCY);
            let target = request.start.split_whitespace().nth(1).unwrap_or("").to_owned();
            let method = request.start.split_whitespace().next().unwrap_or("");
            let xml = |status: u16, body: String| Reply::Respond {
                status,
                headers: vec![("Content-Type".into(), "application/xml".into())],
                body: body.into_bytes(),
            };
            match method {
                "GET" if target.contains("list-type=2") => {
                    let prefixes: String = (0..models)
                        .map(|index| format!("<CommonPrefixes><Prefix>models/m{index:05}/</Prefix></CommonPrefixes>"))
                        .collect();
                    xml(
                        200,
                        format!(
                            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>emmaa</Name><Prefix>models/</Prefix><Delimiter>/</Delimiter><MaxKeys>1000</MaxKeys><KeyCount>{models}</KeyCount><IsTruncated>false</IsTruncated>{prefixes}</ListBucketResult>"
                        ),
                    )
                }
                "GET" if target.contains("/config.json") => Reply::Respond {
                    status: 200,
                    headers: vec![
                        ("Content-Type".into(), "application/json".into()),
                        ("ETag".into(), "\"config\"".into()),
                    ],
                    body: br#"{"run_daily_update": true}"#.to_vec(),
                },
                "PUT" => Reply::Respond {
                    status: 200,
                    headers: vec![("ETag".into(), "\"claim\"".into())],
                    body: Vec::new(),
                },
                "DELETE" => Reply::Respond {
                    status: 204,
                    headers: Vec::new(),
                    body: Vec::new(),
                },
                "POST" if target.contains("/invocations") => {
                    invocations.fetch_add(1, Ordering::SeqCst);
                    Reply::json(200, r#"{"statusCode": 200, "result": "SUCCESS"}"#)
                }
                _ => xml(
                    404,
                    "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>".into(),
                ),
            }
        });
        AwsEndpoint {
            address,
            calls,
            invoked,
        }
    }
}

/// The `p`-th percentile (0: the least, 100: the most).
fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let index = (sorted.len().saturating_sub(1) * p).div_ceil(100);
    sorted.get(index).copied().unwrap_or_default()
}

fn shown(duration: Duration) -> String {
    if duration < Duration::from_millis(1) {
        format!("{} µs", duration.as_micros())
    } else {
        format!("{:.1} ms", duration.as_secs_f64() * 1e3)
    }
}

/// Batch's `SubmitJob`, answered at once.
struct BatchEndpoint {
    address: String,
    submitted: Arc<AtomicUsize>,
}

impl BatchEndpoint {
    fn start() -> BatchEndpoint {
        let submitted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&submitted);
        let address = serve(move |request| {
            assert!(request.start.contains("/v1/submitjob"), "{}", request.start);
            let name = serde_json::from_slice::<Value>(&request.body).unwrap_or_default()["jobName"].clone();
            let id = count.fetch_add(1, Ordering::SeqCst);
            let body = serde_json::json!({
                "jobArn": format!("arn:aws:batch:us-east-1:123456789012:job/{id}"),
                "jobName": name,
                "jobId": format!("job-{id}"),
            });
            Reply::json(200, &body.to_string())
        });
        BatchEndpoint { address, submitted }
    }
}

/// Lambda's Runtime API for one process, serving `events` copies of
/// `payload`.
fn runtime_api(events: usize, payload: &str) -> RuntimeApi {
    RuntimeApi::start(
        (0..events)
            .map(|id| (format!("side-by-side-{id}"), payload.to_owned()))
            .collect(),
    )
}

/// The next answer, checked to be a success; when it arrived.
fn answer(api: &RuntimeApi, way: &str) -> Instant {
    let (at, message) = api
        .next_post_at(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{way} gave no answer within a minute"));
    let body = message.body_text();
    assert!(
        message.start.contains("/response") && body.contains("SUCCESS"),
        "{way} answered {} {body}",
        message.start
    );
    at
}

/// One way to run a handler: a program, its arguments, its directory.
struct Way {
    name: &'static str,
    /// The Lambda function it serves.
    function: String,
    program: PathBuf,
    args: Vec<String>,
    root: PathBuf,
    env: Vec<(String, String)>,
}

impl Way {
    /// Starts the runtime against `api`, every AWS service at `endpoint`.
    fn spawn(&self, api: &RuntimeApi, endpoint: &str) -> Child {
        Command::new(&self.program)
            .args(&self.args)
            .current_dir(&self.root)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.root)
            .env("LAMBDA_TASK_ROOT", &self.root)
            .env("AWS_LAMBDA_RUNTIME_API", &api.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.function)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_ENDPOINT_URL", format!("http://{endpoint}"))
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("starting {}: {err}", self.program.display()))
    }

    /// From spawning the process to its first answer.
    fn cold_start(&self, batch: &BatchEndpoint) -> Duration {
        let api = runtime_api(1, EVENT);
        let started = Instant::now();
        let mut child = self.spawn(&api, &batch.address);
        let answered = answer(&api, self.name);
        let _ = child.kill();
        let _ = child.wait();
        answered - started
    }

    /// Each of `events` answered by a warm runtime (after one more).
    fn warm(&self, batch: &BatchEndpoint, events: usize) -> Vec<Duration> {
        let api = runtime_api(events + 1, EVENT);
        let mut child = self.spawn(&api, &batch.address);
        let answered: Vec<Instant> = (0..=events).map(|_| answer(&api, self.name)).collect();
        let _ = child.kill();
        let _ = child.wait();
        let handed = api.handed();
        answered
            .iter()
            .zip(handed.iter())
            .skip(1)
            .map(|(answered, handed)| *answered - *handed)
            .collect()
    }
}

fn say(line: String) {
    eprintln!("{line}");
}

/// The bootstrap and `guest`'s precompiled component, unzipped from the
/// bundle.
fn bootstrap(work: &Path, plan: &Plan, guest: &str) -> Way {
    built(work, plan, guest, false)
}

/// The bootstrap with `guest`'s Rust build, or (`python`) its Python one.
fn built(work: &Path, plan: &Plan, guest: &str, python: bool) -> Way {
    let profile = if plan.full { "release" } else { "dev" };
    let program = build_bootstrap(profile, Arch::X86_64, &mut say).unwrap_or_else(|err| panic!("{err}"));
    let language = if python { "-python" } else { "" };
    let root = work.join(format!("bootstrap-{profile}-{guest}{language}"));
    std::fs::create_dir_all(&root).unwrap();
    let function = emmaa_runtime::functions::PipelineFunction::by_guest(guest)
        .expect("a pipeline guest")
        .name("emmaa-");
    let made = bundle(&BundleRequest {
        serves: Serves::One {
            guest: guest.into(),
            function: None,
        },
        arch: Arch::X86_64,
        profile: profile.into(),
        bootstrap: Some(program),
        out: Some(root.join(format!("{guest}.zip"))),
        function_prefix: "emmaa-".into(),
        python: if python { vec![guest.into()] } else { Vec::new() },
    })
    .unwrap_or_else(|err| panic!("{err}"));
    unzip(&made.zip, &root);
    // One Batch job is the same work as the others' only with no claims;
    // the fan-out keeps the default settings, the ledger's claims included.
    let ledger = if guest == "update_pipeline" { "on" } else { "off" };
    Way {
        name: match (python, guest) {
            (false, "model_stats") => "bootstrap, model_stats in Rust",
            (true, _) => "bootstrap, model_stats in Python",
            _ => "bootstrap",
        },
        function,
        program: root.join("bootstrap"),
        args: Vec::new(),
        root,
        env: vec![("EMMAA_LEDGER".into(), ledger.into())],
    }
}

/// `deploy/baseline`, built in release into target/baseline.
fn native(work: &Path) -> Way {
    let manifest = workspace().join("deploy").join("baseline").join("Cargo.toml");
    let target = workspace().join("target").join("baseline");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success(), "building the native baseline failed");
    let root = work.join("native");
    std::fs::create_dir_all(&root).unwrap();
    Way {
        name: "native",
        function: "emmaa-model-update".into(),
        program: target.join("release").join("emmaa-native-baseline"),
        args: Vec::new(),
        root,
        env: Vec::new(),
    }
}

/// The original `guest` from PyPI's wheel, with boto3 in a venv of its own.
fn python(work: &Path, guest: &str) -> Way {
    let python = venv_tool("python-baseline-venv", "python3", &[BOTO3]);
    let root = work.join("python");
    std::fs::create_dir_all(&root).unwrap();
    let handler = root.join(format!("{guest}.py"));
    if !handler.is_file() {
        let wheels = workspace().join("target").join("emmaa-wheel");
        let status = Command::new(&python)
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                EMMAA_WHEEL,
                "--dest",
            ])
            .arg(&wheels)
            .status()
            .unwrap();
        assert!(status.success(), "pip download {EMMAA_WHEEL} failed");
        let wheel = std::fs::read_dir(&wheels)
            .unwrap()
            .flatten()
            .map(|entry| entry.path())
            .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
            .expect("the emmaa wheel");
        let mut archive = zip::ZipArchive::new(std::fs::File::open(wheel).unwrap()).unwrap();
        let mut source = String::new();
        archive
            .by_name(&format!("emmaa/aws_lambda_functions/{guest}.py"))
            .unwrap()
            .read_to_string(&mut source)
            .unwrap();
        std::fs::write(&handler, source).unwrap();
    }
    let runtime = workspace()
        .join("deploy")
        .join("baseline")
        .join("python_runtime.py");
    Way {
        name: "python",
        function: emmaa_runtime::functions::PipelineFunction::by_guest(guest)
            .expect("a pipeline guest")
            .name("emmaa-"),
        program: python,
        args: vec![runtime.display().to_string()],
        root,
        env: vec![("_HANDLER".into(), format!("{guest}.lambda_handler"))],
    }
}
