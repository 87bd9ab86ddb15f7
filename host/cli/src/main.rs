//! `emmaa-host`: the command line. `emmaa-host replay` runs an event through
//! a guest on this machine, `emmaa-host simulate` runs a whole day of the
//! pipeline here, and `emmaa-host check` replays recorded traces with a new
//! build; each runs the guests built into it unless given `--components`. Each command
//! parses its flags into a request; the work is done in `emmaa-offline`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use emmaa_offline::events::{EventRequest, Shape, generate_event};
use emmaa_offline::picture::Picture;
use emmaa_offline::quota::{Limits, Storm};
use emmaa_offline::replay::{
    AwsTarget, DEFAULT_DEADLINE, REPLAY_REQUEST_ID, ReplayError, ReplayRequest, TraceReplayer, TraceSource,
    clock_now, parse_deadline, parse_now, replay,
};
use emmaa_offline::report::RunReport;
use emmaa_offline::simulate::{SimulateRequest, SimulatedBucket, simulate};
use emmaa_runtime::Settings;
use emmaa_runtime::effects::MAX_ATTEMPTS;
use emmaa_runtime::engine::Components;
use emmaa_runtime::settings::settings_help;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "emmaa-host",
    version,
    about = "Replays EMMAA handler events here, checks recorded traces, and simulates the pipeline's day"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The AWS account of traces on S3, as the AWS CLI names it (a build with
/// the `aws` feature reads them).
#[derive(Args)]
struct AwsFlags {
    /// The AWS profile for traces on S3 (default: AWS_PROFILE, else `default`).
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// The AWS region for traces on S3 (default: AWS_REGION, else the profile's).
    #[arg(long)]
    region: Option<String>,
    /// Read traces on S3 from this URL, e.g. moto (default: AWS_ENDPOINT_URL, else AWS).
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
}

impl AwsFlags {
    fn target(self) -> AwsTarget {
        AwsTarget {
            profile: self.profile,
            region: self.region,
            endpoint_url: self.endpoint_url,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run one event through a handler here and print what it would do.
    ///
    /// Prints one JSON document: {"function", "guest", "response", "error", "actions"};
    /// "error" is null or {"kind", "message"}.
    /// Exit status: 0 when the answer is a 200, 1 when it is partial (207) or the
    /// handler refused or failed, 2 for usage errors. Settings come from the
    /// same EMMAA_* environment variables as on Lambda.
    ///
    /// With --trace, runs a recorded invocation instead (EMMAA_TRACE_PREFIX on
    /// Lambda writes one per event): every import is answered from the trace,
    /// with no AWS and no bucket, and "trace" in the JSON says whether the
    /// calls, actions and answer are the recorded ones, or names the first
    /// difference. Exit status with --trace: 0 when they are, 1 when not.
    #[command(after_long_help = settings_help())]
    Replay {
        /// A Lambda function name (emmaa-update-pipeline) or a guest name (update_pipeline).
        #[arg(required_unless_present = "trace")]
        function: Option<String>,
        /// The event file, or - for standard input; without it the event is {}.
        event: Option<PathBuf>,
        /// A directory standing for the bucket: key models/a/config.json is DIR/models/a/config.json.
        #[arg(long, value_name = "DIR")]
        bucket_dir: Option<PathBuf>,
        /// Fix the clock: 2020-02-04T12:00:00Z (RFC 3339), 2020-02-04 (its midnight,
        /// UTC), today, yesterday or now (default: now).
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
        #[command(flatten)]
        components: ComponentFlags,
        /// How long the event may take (30s, 1500ms, 2m; at most 15m), as Lambda's deadline.
        #[arg(long, value_name = "DURATION", default_value = DEFAULT_DEADLINE)]
        deadline: String,
        /// Lambda's request id for the event (a retry by Lambda keeps it; a redelivery does not).
        #[arg(long, value_name = "ID", default_value = REPLAY_REQUEST_ID)]
        request_id: String,
        /// Keep the ledger's claims in DIR between runs, to try redelivery (default: in memory).
        #[arg(long, value_name = "DIR")]
        ledger_dir: Option<PathBuf>,
        /// Run every function the handler invokes here too, recursively: each
        /// run is nested under its invocation ("run": {...}), a RequestResponse
        /// caller gets its real answer, and a cycle is reported, not followed.
        #[arg(long)]
        follow: bool,
        /// Record the run's trace into FILE, as EMMAA_TRACE_PREFIX records one on
        /// Lambda (replay it with --trace FILE; `emmaa-host check` compares a new build with it).
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
        /// Replay a recorded invocation: a trace file, or s3://bucket/key.
        #[arg(long, value_name = "FILE|S3_URL", conflicts_with_all = ["function", "event", "bucket_dir", "now", "request_id", "ledger_dir", "follow", "record"])]
        trace: Option<String>,
        #[command(flatten)]
        aws: AwsFlags,
    },
    /// Replay recorded traces with these components (a new build) and say, per
    /// trace, whether it makes the same calls, takes the same actions and gives
    /// the same answer, or where it first differs.
    ///
    /// Prints one line per trace: "same", "DIFFERENT" with the first difference,
    /// or "UNCHECKED" with why (unreadable, or left out bodies so it cannot be
    /// exact), then a count. Exit status: 0 when every trace is the same, 1
    /// when one is not, 2 for usage errors (no traces found).
    Check {
        /// Trace files, directories of them, or s3://bucket/prefix (read with
        /// the usual AWS settings: AWS_REGION, credentials, AWS_ENDPOINT_URL).
        #[arg(required = true, value_name = "TRACES")]
        traces: Vec<String>,
        #[command(flatten)]
        components: ComponentFlags,
        /// How long each replay may take (as replay's --deadline).
        #[arg(long, value_name = "DURATION", default_value = DEFAULT_DEADLINE)]
        deadline: String,
        #[command(flatten)]
        aws: AwsFlags,
    },
    /// Print the event a function gets, as AWS sends it: a daily schedule's,
    /// a new object's (EventBridge's "Object Created", or the bucket's
    /// notification), or the payload its caller invokes it with.
    ///
    /// The key of a new object is made from --model as the Batch jobs name
    /// their files (or given with --key). Pipe it into replay:
    /// `emmaa-host generate-event emmaa-model-update --model aml | emmaa-host
    /// replay emmaa-model-update - --bucket-dir examples/bucket`. Exit status:
    /// 0, or 2 for usage errors (a flag the function needs, or cannot use).
    GenerateEvent {
        /// A Lambda function name (emmaa-mm-update) or a guest name (model_manager_update).
        function: String,
        /// The model the event is about.
        #[arg(long, value_name = "M")]
        model: Option<String>,
        /// The test corpus (model_tests' payload; test_stats' results key).
        #[arg(long, value_name = "T")]
        tests: Option<String>,
        /// The new object's key, instead of one made from --model.
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        /// How a new object's event comes: eventbridge (the stack's rules) or
        /// notification (a bucket notification: {"Records": [...]}, the key URL-encoded).
        #[arg(long, default_value = "eventbridge", value_parser = ["eventbridge", "notification"])]
        shape: String,
        /// The bucket (default: EMMAA_BUCKET's value).
        #[arg(long)]
        bucket: Option<String>,
        /// The region in the event's ARNs and fields.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// The event's time: RFC 3339, a date, today, yesterday or now (default: now).
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
    },
    /// Print a shell's completions for emmaa-host (bash, zsh, fish, elvish,
    /// powershell): e.g. `emmaa-host completions bash > ~/.local/share/bash-completion/completions/emmaa-host`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Simulate a whole day here: the two daily schedules, every invocation,
    /// each Batch job writing the file the handler contract names, and the
    /// function each new file triggers, until nothing is left.
    ///
    /// The bucket directory is not changed (new files go to an overlay in
    /// memory). Prints every run with its event and answer, every job with
    /// the files it would write and the functions they fire, and a summary;
    /// or the day as a graph (--format mermaid or dot). Exit status: 0 when
    /// every run answered 200, 1 when one did not, 2 for usage errors.
    #[command(after_long_help = settings_help())]
    Simulate {
        /// A directory standing for the bucket (as replay's --bucket-dir).
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "models",
            conflicts_with = "models"
        )]
        bucket_dir: Option<PathBuf>,
        /// Instead of a bucket directory: N made-up models (three in four
        /// updated daily, the rest curated; one in ten making tests), from 1
        /// to 100000.
        #[arg(long, value_name = "N", value_parser = parse_models)]
        models: Option<usize>,
        /// When the day starts: RFC 3339, a date (its midnight, UTC), today,
        /// yesterday or now (default: now); each run started
        /// after it sees the clock one second later.
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
        /// json (everything), summary (the counts, and --quotas' scale: a table on a
        /// terminal, JSON when piped), table (the summary as a table), mermaid or
        /// dot (the graph).
        #[arg(long, default_value = "json", value_parser = ["json", "summary", "table", "mermaid", "dot"])]
        format: String,
        /// Deliver every S3 notification twice, as S3 may: with the ledger on
        /// (EMMAA_LEDGER), the summary's "duplicated" stays 0.
        #[arg(long)]
        redeliver: bool,
        /// With mermaid or dot: draw only what concerns this model.
        #[arg(long, value_name = "MODEL")]
        model: Option<String>,
        #[command(flatten)]
        components: ComponentFlags,
        /// Each function's deadline (30s, 1500ms, 2m; at most 15m): by default
        /// the template's Timeout.
        #[arg(long, value_name = "DURATION", default_value = "300s")]
        deadline: String,
        /// Run the day under AWS's limits, in virtual time: both schedules
        /// fire at once, every call takes --latency-ms, Lambda runs at most
        /// --lambda-concurrency functions at once, Batch takes --submit-rate
        /// SubmitJob a second, S3 5,500 reads and 3,500 writes a second per
        /// prefix; throttled calls are retried as the host's AWS client
        /// retries them, failed asynchronous events as Lambda retries them.
        /// The summary's "scale" says when the last job was submitted against
        /// the bound the quotas set, and what was throttled, retried, lost
        /// and duplicated (against the same day with no limits).
        #[arg(long)]
        quotas: bool,
        /// With --quotas: every call's round trip.
        #[arg(long, value_name = "MS", default_value_t = 20, requires = "quotas")]
        latency_ms: u64,
        /// With --quotas: how long a Batch job runs before its files appear.
        #[arg(long, value_name = "SECONDS", default_value_t = 0, requires = "quotas")]
        job_time_s: u64,
        /// With --quotas: Batch throttles every SubmitJob from FROM seconds into
        /// the day for LASTS seconds (60+30, say).
        #[arg(long, value_name = "FROM+LASTS", value_parser = parse_storm, requires = "quotas")]
        storm: Option<Storm>,
        /// With --quotas: off makes the AWS client give up at the first throttle.
        #[arg(long, default_value = "on", value_parser = ["on", "off"], requires = "quotas")]
        client_retries: String,
        /// With --quotas: Lambda's retries of a failed asynchronous event
        /// (the template's AsyncRetries).
        #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=2), requires = "quotas")]
        async_retries: u32,
        /// With --quotas: Lambda's concurrent executions in the account.
        #[arg(long, value_name = "N", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..), requires = "quotas")]
        lambda_concurrency: u32,
        /// With --quotas: each function's reserved concurrency (the template's
        /// FunctionConcurrency; default: none, only the account's limit).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), requires = "quotas")]
        function_concurrency: Option<u32>,
        /// With --quotas: Batch SubmitJob calls a second in the account.
        #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..), requires = "quotas")]
        submit_rate: u32,
        /// With --quotas: the seed of the retries' jitter.
        #[arg(long, value_name = "N", default_value_t = 1, requires = "quotas")]
        seed: u64,
    },
}

/// `--storm FROM+LASTS`, in seconds.
fn parse_storm(value: &str) -> Result<Storm, String> {
    let bad = || format!("{value:?} is not FROM+LASTS in whole seconds (60+30, say)");
    let (from, lasts) = value.split_once('+').ok_or_else(bad)?;
    Ok(Storm {
        from_s: from.trim().parse().map_err(|_| bad())?,
        lasts_s: lasts.trim().parse().map_err(|_| bad())?,
    })
}

/// A line on standard error: a closed standard error loses it, and never
/// panics as `eprintln!` would.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Where a command's guest components come from.
#[derive(Args)]
struct ComponentFlags {
    /// Run the guest components of this directory (<guest>.cwasm or <guest>.wasm)
    /// instead of the ones built into this program.
    #[arg(long, value_name = "DIR", env = "EMMAA_COMPONENTS")]
    components: Option<PathBuf>,
    /// Run the Python build of this guest (model_stats, after_update), built from
    /// guests/python/ of the checkout around the current directory with
    /// componentize-py (installed into target/ the first time); repeatable.
    #[arg(long, value_name = "GUEST")]
    python: Vec<String>,
}

impl ComponentFlags {
    /// The components a command runs: the Python builds named, and those
    /// of the directory given or the guests built into this program.
    fn resolve(self) -> Result<Components, ReplayError> {
        let rest = self.components.map_or(Components::BuiltIn, Components::Directory);
        if self.python.is_empty() {
            return Ok(rest);
        }
        let here = std::env::current_dir().unwrap_or_default();
        let workspace = here
            .ancestors()
            .find(|dir| {
                dir.join(emmaa_offline::python::PYTHON_GUESTS_DIR).is_dir() && dir.join("wit").is_dir()
            })
            .ok_or_else(|| ReplayError::NotInCheckout {
                here: here.display().to_string(),
            })?;
        let dir = workspace.join("target").join("python-guests");
        for guest in &self.python {
            say!("emmaa-host: building the Python guest {guest} (componentize-py)");
            emmaa_offline::python::build(workspace, guest, &dir)?;
        }
        Ok(Components::Mixed {
            guests: self.python,
            dir,
            rest: Box::new(rest),
        })
    }
}

/// The most made-up models a simulated day takes.
const MAX_MODELS: usize = 100_000;

/// `--models N`: from 1 to [`MAX_MODELS`].
fn parse_models(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_MODELS).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a number of models from 1 to {MAX_MODELS}"
        )),
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            say!("emmaa-host: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Check {
            traces,
            components,
            deadline,
            aws,
        } => {
            log_to_stderr();
            let components = match components.resolve() {
                Ok(components) => components,
                Err(err) => {
                    say!("emmaa-host check: {err}");
                    return ExitCode::from(2);
                }
            };
            run_check(&runtime, &traces, components, &deadline, aws.target())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "emmaa-host", &mut script);
            match std::io::stdout().lock().write_all(&script) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    say!("emmaa-host completions: cannot print: {err}");
                    ExitCode::from(2)
                }
            }
        }
        Command::GenerateEvent {
            function,
            model,
            tests,
            key,
            shape,
            bucket,
            region,
            now,
        } => {
            let event = now
                .as_deref()
                .map(parse_now)
                .transpose()
                .map_err(|err| err.to_string())
                .and_then(|now| {
                    let settings = Settings::from_env().map_err(|err| format!("bad setting: {err}"))?;
                    let request = EventRequest {
                        function,
                        model,
                        tests,
                        key,
                        shape: if shape == "notification" {
                            Shape::Notification
                        } else {
                            Shape::EventBridge
                        },
                        bucket: bucket.unwrap_or(settings.pipeline.bucket),
                        region,
                        now: now.unwrap_or_else(clock_now),
                        function_prefix: settings.pipeline.function_prefix,
                    };
                    generate_event(&request).map_err(|err| err.to_string())
                });
            match event {
                Ok(event) => {
                    let text = serde_json::to_string_pretty(&event).unwrap_or_default();
                    let mut out = std::io::stdout().lock();
                    match writeln!(out, "{text}") {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(_) => ExitCode::from(2),
                    }
                }
                Err(err) => {
                    say!("emmaa-host generate-event: {err}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Simulate {
            bucket_dir,
            models,
            now,
            format,
            model,
            redeliver,
            components,
            deadline,
            quotas,
            latency_ms,
            job_time_s,
            storm,
            client_retries,
            async_retries,
            lambda_concurrency,
            function_concurrency,
            submit_rate,
            seed,
        } => {
            // A day's refusals and failures are in its report and summary, and
            // Lambda retries a failed event: a run that failed and was done
            // on a retry is not a warning. What is lost is (below).
            log_at("warn,guest=error");
            let quotas = quotas.then(|| Limits {
                lambda_concurrency: lambda_concurrency as usize,
                function_concurrency: function_concurrency.map(|places| places as usize),
                submit_per_second: submit_rate,
                latency_ms,
                max_attempts: if client_retries == "off" { 1 } else { MAX_ATTEMPTS },
                async_retries,
                job_time_s,
                storm,
                seed,
                ..Limits::default()
            });
            let bucket = match (bucket_dir, models) {
                (Some(dir), _) => SimulatedBucket::Directory(dir),
                (None, models) => SimulatedBucket::Synthetic(models.unwrap_or_default()),
            };
            let request = now.as_deref().map(parse_now).transpose().and_then(|now| {
                Ok(SimulateRequest {
                    bucket,
                    now: now.unwrap_or_else(clock_now),
                    components: components.resolve()?,
                    deadline: parse_deadline(&deadline)?,
                    redeliver,
                    quotas,
                })
            });
            run_simulate(&runtime, request, &format, model.as_deref())
        }
        Command::Replay {
            function,
            event,
            bucket_dir,
            now,
            components,
            deadline,
            request_id,
            ledger_dir,
            follow,
            record,
            trace,
            aws,
        } => {
            log_to_stderr();
            if let Some(trace) = trace {
                let components = match components.resolve() {
                    Ok(components) => components,
                    Err(err) => return print_report(Err(err), |_| 0),
                };
                return replay_trace(&runtime, &trace, components, &deadline, aws.target());
            }
            let request = now.as_deref().map(parse_now).transpose().and_then(|now| {
                Ok(ReplayRequest {
                    function: function.unwrap_or_default(),
                    event,
                    bucket_dir,
                    now,
                    components: components.resolve()?,
                    deadline: parse_deadline(&deadline)?,
                    request_id,
                    ledger_dir,
                    follow,
                    record,
                })
            });
            let report = request.and_then(|request| {
                let settings = Settings::from_env()?;
                runtime.block_on(replay(&request, settings))
            });
            print_report(report, |report| report.exit_code() as u8)
        }
    }
}

/// `emmaa-host replay --trace`: prints the replay's JSON, with its verdict.
fn replay_trace(
    runtime: &tokio::runtime::Runtime,
    trace: &str,
    components: Components,
    deadline: &str,
    aws: AwsTarget,
) -> ExitCode {
    let source = TraceSource::parse(trace);
    let report = parse_deadline(deadline).and_then(|deadline| {
        let mut player = TraceReplayer::new(components, deadline)?.with_aws(aws);
        runtime.block_on(async {
            let recorded = player.read(&source).await?;
            player.replay(&recorded, trace).await
        })
    });
    print_report(report, |report| {
        let same = report
            .trace
            .as_ref()
            .is_some_and(|verdict| verdict.same && verdict.exact);
        u8::from(!same)
    })
}

/// Prints a replay's JSON and exits with `status` of it; 2 when there is
/// no report.
fn print_report(report: Result<RunReport, ReplayError>, status: impl FnOnce(&RunReport) -> u8) -> ExitCode {
    let report = match report {
        Ok(report) => report,
        Err(err) => {
            say!("emmaa-host replay: {err}");
            return ExitCode::from(2);
        }
    };
    let printed = serde_json::to_string_pretty(&report)
        .map_err(std::io::Error::other)
        .and_then(|json| writeln!(std::io::stdout().lock(), "{json}"));
    match printed {
        Ok(()) => ExitCode::from(status(&report)),
        Err(err) => {
            say!("emmaa-host replay: cannot print the report: {err}");
            ExitCode::from(2)
        }
    }
}

/// `emmaa-host check`: one line per trace, then the count.
fn run_check(
    runtime: &tokio::runtime::Runtime,
    traces: &[String],
    components: Components,
    deadline: &str,
    aws: AwsTarget,
) -> ExitCode {
    let sources: Vec<TraceSource> = traces.iter().map(|trace| TraceSource::parse(trace)).collect();
    let checked = parse_deadline(deadline).and_then(|deadline| {
        let mut player = TraceReplayer::new(components, deadline)?.with_aws(aws);
        runtime.block_on(player.check(&sources, None))
    });
    let checked = match checked {
        Ok(checked) if checked.is_empty() => {
            say!("emmaa-host check: no traces (*.json) in {}", traces.join(" "));
            return ExitCode::from(2);
        }
        Ok(checked) => checked,
        Err(err) => {
            say!("emmaa-host check: {err}");
            return ExitCode::from(2);
        }
    };
    let mut text = String::new();
    for one in &checked {
        text.push_str(&one.line());
        text.push('\n');
    }
    let same = checked.iter().filter(|one| one.same()).count();
    text.push_str(&format!(
        "{} traces: {same} same, {} not\n",
        checked.len(),
        checked.len() - same
    ));
    if let Err(err) = std::io::stdout().lock().write_all(text.as_bytes()) {
        say!("emmaa-host check: cannot print: {err}");
        return ExitCode::from(2);
    }
    if same == checked.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Local commands log warnings (or `RUST_LOG`) to standard error, leaving
/// standard output to their JSON.
fn log_to_stderr() {
    log_at("warn");
}

/// Logs to standard error at `default` unless RUST_LOG says otherwise.
fn log_at(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// `emmaa-host simulate`: prints the day in the format asked for.
fn run_simulate(
    runtime: &tokio::runtime::Runtime,
    request: Result<SimulateRequest, ReplayError>,
    format: &str,
    model: Option<&str>,
) -> ExitCode {
    let simulation = request.map_err(|err| err.to_string()).and_then(|request| {
        let settings = Settings::from_env().map_err(|err| format!("bad setting: {err}"))?;
        runtime
            .block_on(simulate(&request, settings))
            .map_err(|err| err.to_string())
    });
    let simulation = match simulation {
        Ok(simulation) => simulation,
        Err(err) => {
            say!("emmaa-host simulate: {err}");
            return ExitCode::from(2);
        }
    };
    if let Some(model) = model
        && !simulation.summary.models.contains_key(model)
    {
        let known: Vec<&str> = simulation
            .summary
            .models
            .keys()
            .take(10)
            .map(String::as_str)
            .collect();
        let more = simulation.summary.models.len().saturating_sub(known.len());
        say!(
            "emmaa-host simulate: --model {model:?}: no model of that name has a job in the day (it has: {}{})",
            known.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
        return ExitCode::from(2);
    }
    let picture = || {
        let picture = Picture::of(&simulation);
        match model {
            Some(model) => picture.for_model(model),
            None => picture,
        }
    };
    let text = match format {
        "mermaid" => Ok(picture().mermaid()),
        "dot" => Ok(picture().dot()),
        "table" => Ok(simulation.summary_table()),
        "summary" if std::io::stdout().is_terminal() => Ok(simulation.summary_table()),
        "summary" => serde_json::to_string_pretty(&serde_json::json!({
            "now": simulation.now,
            "summary": simulation.summary.counts(),
            "scale": simulation.scale,
        }))
        .map(|json| json + "\n"),
        _ => serde_json::to_string_pretty(&simulation).map(|json| json + "\n"),
    };
    let printed = text
        .map_err(std::io::Error::other)
        .and_then(|text| std::io::stdout().lock().write_all(text.as_bytes()));
    // Under the quotas, work that was lost or done twice is the warning.
    if let Some(scale) = simulation
        .scale
        .as_ref()
        .filter(|scale| scale.lost + scale.duplicated > 0)
    {
        say!(
            "emmaa-host simulate: warning: of {} expected jobs, {} were never submitted and {} more than once",
            scale.expected_jobs,
            scale.lost,
            scale.duplicated
        );
    }
    match printed {
        Ok(()) if simulation.runs.iter().all(|run| run.run.exit_code() == 0) => ExitCode::SUCCESS,
        Ok(()) => ExitCode::from(1),
        Err(err) => {
            say!("emmaa-host simulate: cannot print: {err}");
            ExitCode::from(2)
        }
    }
}
