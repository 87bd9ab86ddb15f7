//! `deploy`: bundles the host with a guest's component (or every guest's)
//! for Lambda (`provided.al2023`) and uploads it: `deploy upload <guest>
//! <function>` replaces `python update_lambda.py <script> <function>`, and
//! `deploy upload --all` updates every function of an installation.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use emmaa_deploy::arch::Arch;
use emmaa_deploy::aws::{Account, AwsProblem, AwsTarget, connect};
use emmaa_deploy::bundle::{Bundle, BundleRequest, Serves, bundle};
use emmaa_deploy::remote::{self, Remote, Seen};
use emmaa_deploy::rollback::{self, Keeper, Kept};
use emmaa_deploy::stack::{self, AwsStack, StackRequest, deploy_stack};
use emmaa_deploy::status;
use emmaa_deploy::template::{template, to_yaml};
use emmaa_deploy::upload::{AwsLambda, GuestMatch, Patience, match_guest, plan, upload};
use emmaa_offline::replay::{TraceReplayer, TraceSource};
use emmaa_runtime::engine::Components;

#[derive(Parser)]
#[command(
    name = "deploy",
    version,
    about = "Bundles EMMAA handlers for AWS Lambda and uploads them"
)]
struct Cli {
    /// Say more: the AWS SDK's own account of a failure.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

/// The AWS account, as the AWS CLI and SAM name it.
#[derive(Args, Clone)]
struct AwsOptions {
    /// The AWS profile (of ~/.aws/config; default: AWS_PROFILE, else `default`).
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// The AWS region (default: AWS_REGION, else the profile's).
    #[arg(long)]
    region: Option<String>,
    /// Send every AWS call to this URL, e.g. moto or LocalStack (default:
    /// AWS_ENDPOINT_URL, else AWS).
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
}

impl AwsOptions {
    /// The account, its region and credentials found, or a sentence saying
    /// what to set.
    async fn connect(&self) -> Result<Account, AwsProblem> {
        connect(&self.target()).await
    }

    fn target(&self) -> AwsTarget {
        AwsTarget {
            profile: self.profile.clone(),
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Build the zip for a guest (or, with --all, every guest): bootstrap,
    /// precompiled components, manifest.
    Bundle {
        /// The guest (update_pipeline, model_updates, ...).
        #[arg(required_unless_present = "all")]
        guest: Option<String>,
        /// The function the bundle serves (default: the guest's, with EMMAA_FUNCTION_PREFIX).
        #[arg(long, conflicts_with = "all")]
        function: Option<String>,
        /// One zip for every function: each picks its component by name.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        build: BuildOptions,
    },
    /// Write the CloudFormation template of the whole pipeline (YAML): the
    /// functions, their roles, triggers, log groups and settings.
    Template {
        /// Where to write it (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Stand up or update the whole pipeline as a CloudFormation stack: upload
    /// the one bundle and the template, make a change set, print it, execute
    /// it and wait.
    Stack {
        /// The stack's name.
        #[arg(long, default_value = "emmaa-pipeline")]
        stack_name: String,
        /// The bucket for the bundle and the template (made if missing).
        #[arg(long)]
        artifact_bucket: String,
        /// Where in the artifact bucket.
        #[arg(long, default_value = "artifacts/")]
        artifact_prefix: String,
        /// A template parameter, Name=Value (repeat it); others keep the
        /// stack's current value, or the template's default.
        #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = name_value)]
        parameters: Vec<(String, String)>,
        #[command(flatten)]
        build: BuildOptions,
        /// Check everything that can be checked without AWS (parameters, the
        /// settings they give, the template, cfn-lint if installed, the
        /// bundle) and make no AWS call.
        #[arg(long, conflicts_with = "plan")]
        dry_run: bool,
        /// Make the change set, print it, then delete it (and the review stack
        /// of a new stack): nothing is uploaded but a template over 51,200
        /// bytes (content-addressed), and the stack and the buckets are left alone.
        #[arg(long)]
        plan: bool,
        /// Seconds between polls of CloudFormation.
        #[arg(long, default_value_t = 5.0)]
        poll: f64,
        #[command(flatten)]
        check: CheckOptions,
        #[command(flatten)]
        aws: AwsOptions,
    },
    /// Where each model's day stands: every stage done, running, failed,
    /// stalled or unexpected, the expected day (as `emmaa-host simulate`
    /// computes it from the bucket's configs) against what S3 and Batch
    /// hold. Exit status 3 when something failed or stalled.
    Status {
        #[command(flatten)]
        day: DayOptions,
        /// table: one line per stage; json: everything; dot or mermaid: the
        /// day's picture coloured by state.
        #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
        format: StatusFormat,
    },
    /// Start again exactly what failed or stalled: each model's earliest
    /// unfinished stage, through the pipeline's own functions, claimed in
    /// the ledger so that a second redrive does nothing.
    Redrive {
        #[command(flatten)]
        day: DayOptions,
        /// Say what would be started, and start nothing.
        #[arg(long)]
        dry_run: bool,
        /// Redrive before half an hour after the day's last schedule (its
        /// runs are over: it was started by hand, say).
        #[arg(long)]
        skip_schedule_wait: bool,
    },
    /// Invoke a deployed function and print its answer (standard output) and
    /// the log lines its request wrote (standard error). `emmaa-host replay`
    /// runs the same event here instead. Exit status: 0, or 1 when the
    /// function failed.
    Invoke {
        /// The Lambda function (emmaa-model-update, ...).
        function: String,
        #[command(flatten)]
        input: EventOptions,
        /// Queue the event (InvocationType Event), as the schedules and the
        /// fan-out do; its log lines are read from CloudWatch Logs.
        #[arg(long)]
        queued: bool,
        /// How long to wait for the request's log lines (seconds; 0: do not read them).
        #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
        logs_wait: f64,
        #[command(flatten)]
        aws: AwsOptions,
    },
    /// Print a shell's completions for deploy (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Point a function's code back at the bundle it ran before (kept by
    /// `deploy upload --artifact-bucket`); a second rollback goes forward again.
    Rollback {
        /// The Lambda function (emmaa-model-update, ...).
        function: String,
        /// Say what it would do, changing nothing.
        #[arg(long)]
        plan: bool,
        #[command(flatten)]
        aws: AwsOptions,
    },
    /// Print a deployed function's log lines (CloudWatch Logs), and with
    /// --tail follow them as they come.
    Logs {
        /// The Lambda function (emmaa-model-update, ...).
        function: String,
        /// From how long ago: 30s, 10m, 2h, 1d.
        #[arg(long, value_name = "AGE", default_value = "10m")]
        since: String,
        /// Only the lines of this request.
        #[arg(long, value_name = "ID")]
        request_id: Option<String>,
        /// Only lines of this level or more severe (TRACE, DEBUG, INFO, WARN, ERROR).
        #[arg(long)]
        level: Option<String>,
        /// Keep printing new lines as they come (polling, as `sam logs --tail`).
        #[arg(long)]
        tail: bool,
        /// With --tail, stop after this many seconds (default: never).
        #[arg(long = "for", value_name = "SECONDS", requires = "tail")]
        for_seconds: Option<f64>,
        /// Seconds between polls with --tail.
        #[arg(long, default_value_t = 2.0)]
        poll: f64,
        #[command(flatten)]
        aws: AwsOptions,
    },
    /// Bundle a guest and replace the code of the existing Lambda function with it;
    /// with --all, replace the code of every function with one bundle.
    Upload {
        /// The guest (update_pipeline, model_updates, ...).
        #[arg(required_unless_present = "all")]
        guest: Option<String>,
        /// The Lambda function to replace (emmaa-model-update, ...).
        #[arg(required_unless_present = "all")]
        function: Option<String>,
        /// Every function (with EMMAA_FUNCTION_PREFIX), one bundle for all.
        #[arg(long, conflicts_with_all = ["guest", "function"])]
        all: bool,
        #[command(flatten)]
        build: BuildOptions,
        /// Build and check the zip and say what would be sent, making no AWS call.
        #[arg(long, conflicts_with = "plan")]
        dry_run: bool,
        /// Read the function and say what the upload would change (its code,
        /// its runtime), changing nothing.
        #[arg(long)]
        plan: bool,
        /// Publish a version once the code is in place, and print it.
        #[arg(long)]
        publish: bool,
        /// Upload even to a function that runs another guest.
        #[arg(long)]
        force: bool,
        /// Keep the bundle in this bucket (artifacts/pipeline-<sha256>.zip) and tag
        /// the function with it, so that `deploy rollback` can go back to it.
        #[arg(long, value_name = "BUCKET")]
        artifact_bucket: Option<String>,
        #[command(flatten)]
        check: CheckOptions,
        #[command(flatten)]
        aws: AwsOptions,
    },
}

/// Which day `status` and `redrive` read, and where.
#[derive(Args)]
struct DayOptions {
    /// The day, YYYY-MM-DD (UTC; default: today).
    #[arg(long, value_name = "DATE")]
    date: Option<String>,
    /// Only this model (repeat it for more).
    #[arg(long = "model", value_name = "MODEL")]
    models: Vec<String>,
    /// The stack whose parameters say where the pipeline is (without it,
    /// the EMMAA_* environment does).
    #[arg(long, default_value = "emmaa-pipeline")]
    stack_name: String,
    #[command(flatten)]
    aws: AwsOptions,
}

impl DayOptions {
    /// The account, and the day read from it (`claims`: the day's claims
    /// even when nothing stalled).
    async fn read(self, claims: bool) -> anyhow::Result<(Account, status::read::DayRead)> {
        let account = self.aws.connect().await?;
        let request = status::read::StatusRequest {
            stack_name: self.stack_name,
            date: self.date,
            models: self.models,
            claims,
        };
        let day = status::read::read_day(&account, &request).await?;
        Ok((account, day))
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum StatusFormat {
    Table,
    Json,
    Dot,
    Mermaid,
}

/// The day has stages that failed or stalled: exit status 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Troubled(String);

/// What a command reads an event from.
#[derive(Args)]
struct EventOptions {
    /// The event: a file, or - for standard input (`emmaa-host generate-event` makes one).
    #[arg(long, value_name = "FILE", conflicts_with = "data")]
    event: Option<PathBuf>,
    /// The event itself, as JSON text.
    #[arg(long, value_name = "JSON")]
    data: Option<String>,
}

impl EventOptions {
    /// The event's bytes ({} when none is given).
    fn read(&self) -> anyhow::Result<Vec<u8>> {
        let bytes = match (&self.data, &self.event) {
            (Some(data), _) => data.clone().into_bytes(),
            (None, Some(path)) if path.as_os_str() == "-" => {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                    .context("reading standard input")?;
                bytes
            }
            (None, Some(path)) => {
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
            }
            (None, None) => b"{}".to_vec(),
        };
        serde_json::from_slice::<serde_json::Value>(&bytes).context("the event is not JSON")?;
        Ok(bytes)
    }
}

#[derive(Args)]
struct CheckOptions {
    /// First replay these recorded traces (files, directories, or
    /// s3://bucket/prefix; EMMAA_TRACE_PREFIX records them) with the guests
    /// about to be shipped, as `emmaa-host check` does, and ship nothing if one
    /// behaves differently (repeat it for more places).
    #[arg(long, value_name = "TRACES")]
    check_against: Vec<String>,
    /// Ship even if a trace behaves differently (the differences are printed).
    #[arg(long, requires = "check_against")]
    despite_differences: bool,
}

impl CheckOptions {
    /// Replays the traces of `guest` (every guest's: None) with the guests
    /// this build ships (the Python build of those in `python`); an error
    /// unless every one is the same, or the user said to go on despite
    /// differences. `offline` (a dry run): traces on S3 are refused, not
    /// read.
    async fn check(
        &self,
        guest: Option<&str>,
        python: &[String],
        aws: &AwsTarget,
        offline: bool,
    ) -> anyhow::Result<()> {
        if self.check_against.is_empty() {
            return Ok(());
        }
        if offline && let Some(s3) = self.check_against.iter().find(|place| place.starts_with("s3://")) {
            anyhow::bail!(
                "--check-against {s3}: a dry run makes no AWS call; copy the traces here \
                 (aws s3 cp --recursive) and give their directory"
            );
        }
        let sources: Vec<TraceSource> = self
            .check_against
            .iter()
            .map(|trace| TraceSource::parse(trace))
            .collect();
        let components = match python {
            [] => Components::BuiltIn,
            python => {
                let workspace = emmaa_deploy::bundle::workspace();
                let dir = workspace.join("target").join("python-guests");
                for guest in python {
                    emmaa_offline::python::build(&workspace, guest, &dir)?;
                }
                Components::Mixed {
                    guests: python.to_vec(),
                    dir,
                    rest: Box::new(Components::BuiltIn),
                }
            }
        };
        let mut player = TraceReplayer::new(components, Duration::from_secs(60))?.with_aws(aws.clone());
        let checked = player.check(&sources, guest).await?;
        for one in &checked {
            println!("{}", one.line());
        }
        let same = checked.iter().filter(|one| one.same()).count();
        let whose = guest.map_or_else(|| "any guest".to_owned(), |guest| guest.to_owned());
        println!(
            "checked {} traces of {whose}: {same} same, {} not",
            checked.len(),
            checked.len() - same
        );
        if checked.is_empty() {
            anyhow::bail!(
                "--check-against found no traces of {whose} in {}: nothing shipped",
                self.check_against.join(" ")
            );
        }
        if same < checked.len() {
            if self.despite_differences {
                println!("shipping despite the differences (--despite-differences)");
            } else {
                anyhow::bail!(
                    "{} of {} traces behave differently with this build: nothing shipped \
                     (--despite-differences ships anyway)",
                    checked.len() - same,
                    checked.len()
                );
            }
        }
        Ok(())
    }
}

#[derive(Args)]
struct BuildOptions {
    /// The Lambda architecture: x86_64 or arm64 (the other one than this
    /// machine's is cross-built with cargo-zigbuild, installed into target/cross).
    #[arg(long, default_value = "x86_64")]
    arch: Arch,
    /// Where to write the zip (default: target/bundles/<function>.zip).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The cargo profile to build the bootstrap with.
    #[arg(long, value_name = "PROFILE", default_value = "release")]
    build_profile: String,
    /// Use this bootstrap executable instead of building one.
    #[arg(long, value_name = "FILE")]
    bootstrap: Option<PathBuf>,
    /// Bundle the Python build of this guest (model_stats, after_update) instead
    /// of the Rust one, built from guests/python/ with componentize-py; repeatable.
    #[arg(long, value_name = "GUEST")]
    python: Vec<String>,
}

fn name_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

/// What `guest`, `function` and `--all` ask for.
fn serves(guest: Option<String>, function: Option<String>, all: bool) -> Serves {
    match guest {
        Some(guest) if !all => Serves::One { guest, function },
        _ => Serves::All,
    }
}

impl BuildOptions {
    fn request(self, serves: Serves) -> BundleRequest {
        BundleRequest {
            serves,
            arch: self.arch,
            profile: self.build_profile,
            bootstrap: self.bootstrap,
            out: self.out,
            function_prefix: function_prefix(),
            python: self.python,
        }
    }
}

fn describe(bundle: &Bundle) -> String {
    format!(
        "bundle {}: {} ({}), {} bytes, sha256 {}",
        bundle.path.display(),
        bundle.describe_functions(),
        bundle.arch.lambda_name(),
        bundle.zip.len(),
        bundle.sha256_hex()
    )
}

/// The prefix of the pipeline's function names.
fn function_prefix() -> String {
    std::env::var("EMMAA_FUNCTION_PREFIX").unwrap_or_else(|_| "emmaa-".into())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bundle {
            guest,
            function,
            all,
            build,
        } => {
            let bundle = bundle(&build.request(serves(guest, function, all)))?;
            println!("{}", describe(&bundle));
        }
        Command::Template { out } => {
            let yaml = to_yaml(&template());
            match out {
                Some(path) => {
                    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?
                }
                None => print!("{yaml}"),
            }
        }
        Command::Stack {
            stack_name,
            artifact_bucket,
            artifact_prefix,
            parameters,
            build,
            dry_run,
            plan,
            poll,
            check,
            aws,
        } => {
            let account = if dry_run { None } else { Some(aws.connect().await?) };
            check.check(None, &build.python, &aws.target(), dry_run).await?;
            let request = StackRequest {
                stack: stack_name,
                artifact_bucket,
                artifact_prefix,
                parameters: parameters.into_iter().collect(),
                arch: build.arch,
                plan,
                poll: Duration::from_secs_f64(poll.max(0.05)),
                timeout: Duration::from_secs(3600),
            };
            let mut build = Some(build);
            let mut bundle_for = |prefix: &str| {
                let build = build.take().ok_or("the bundle is built once")?;
                let mut request = build.request(Serves::All);
                request.function_prefix = prefix.to_owned();
                let bundle = bundle(&request).map_err(|err| err.to_string())?;
                println!("{}", describe(&bundle));
                Ok(bundle)
            };
            let mut say = |line: String| println!("{line}");
            match account {
                None => stack::dry_run(&request, &template(), &mut bundle_for, &mut say)?,
                Some(account) => {
                    let control = AwsStack::new(&account);
                    deploy_stack(&control, &request, &template(), &mut bundle_for, &mut say).await?;
                }
            }
        }
        Command::Invoke {
            function,
            input,
            queued,
            logs_wait,
            aws,
        } => {
            let payload = input.read()?;
            let account = aws.connect().await?;
            let wait = Duration::from_secs_f64(logs_wait.clamp(0.0, 900.0));
            invoke(&Remote::new(&account), &function, &payload, queued, wait).await?;
        }
        Command::Status { day, format } => {
            let (_, day) = day.read(false).await?;
            let shown = match format {
                StatusFormat::Table => day.status.table(),
                StatusFormat::Json => format!("{}\n", serde_json::to_string_pretty(&day.status)?),
                StatusFormat::Dot => day.status.picture(&day.expected).dot(),
                StatusFormat::Mermaid => day.status.picture(&day.expected).mermaid(),
            };
            print!("{shown}");
            if day.status.troubled() {
                return Err(Troubled(format!(
                    "the day {} has stages that failed or stalled: {}",
                    day.status.date,
                    day.status.counts()
                ))
                .into());
            }
        }
        Command::Redrive {
            day,
            dry_run,
            skip_schedule_wait,
        } => {
            let (account, day) = day.read(true).await?;
            if day.settings.ledger_prefix.is_none() {
                anyhow::bail!(
                    "the ledger is off (EMMAA_LEDGER, the stack's Ledger parameter): a redrive claims what it \
                     starts there, so that a second one does nothing; turn it on first"
                );
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX));
            if now < day.redrivable_from && !skip_schedule_wait {
                anyhow::bail!(
                    "the day {} is not redrivable yet: until half an hour after its last schedule its own runs \
                     may still be on their way, and a redrive would start them twice (--skip-schedule-wait when they are over); \
                     `deploy status` shows where it stands",
                    day.status.date
                );
            }
            let started =
                status::redrive::redrive(&account, &day, dry_run, &mut |line| println!("{line}")).await?;
            if !dry_run {
                println!("{started} stages started again");
            }
        }
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(shell, &mut Cli::command(), "deploy", &mut std::io::stdout());
        }
        Command::Rollback { function, plan, aws } => {
            let account = aws.connect().await?;
            let keeper = Keeper::new(&account);
            rollback::roll_back(&keeper, &function, plan, &mut |line| println!("{line}")).await?;
            if !plan {
                let lambda = AwsLambda::new(&account);
                emmaa_deploy::upload::wait_for_update(&lambda, &function, Patience::default(), &mut |line| {
                    println!("{line}")
                })
                .await?;
            }
        }
        Command::Logs {
            function,
            since,
            request_id,
            level,
            tail,
            for_seconds,
            poll,
            aws,
        } => {
            let since = parse_age(&since)?;
            let level = level
                .as_deref()
                .map(remote::parse_level)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let account = aws.connect().await?;
            let poll = Duration::from_secs_f64(poll.clamp(0.1, 60.0));
            print_logs(
                &Remote::new(&account),
                &function,
                since,
                request_id.as_deref(),
                level,
                tail,
                for_seconds,
                poll,
            )
            .await?;
        }
        Command::Upload {
            guest,
            function,
            all,
            build,
            dry_run,
            plan,
            publish,
            force,
            artifact_bucket,
            check,
            aws,
        } => {
            let serves = serves(guest, function, all);
            if let Serves::One {
                guest,
                function: Some(function),
            } = &serves
            {
                match match_guest(guest, function, &function_prefix()) {
                    GuestMatch::Same | GuestMatch::Other { .. } if force => {}
                    GuestMatch::Same => {}
                    other @ GuestMatch::Other { .. } => {
                        anyhow::bail!("{} (--force uploads it anyway)", other.describe())
                    }
                    other @ GuestMatch::Unknown { .. } => eprintln!("deploy: warning: {}", other.describe()),
                }
            }
            // The account first: a missing region or credentials is said at
            // once, not after the build.
            let account = if dry_run { None } else { Some(aws.connect().await?) };
            let guest = match &serves {
                Serves::One { guest, .. } => Some(guest.as_str()),
                Serves::All => None,
            };
            check.check(guest, &build.python, &aws.target(), dry_run).await?;
            let bundle = bundle(&build.request(serves))?;
            println!("{}", describe(&bundle));
            let Some(account) = account else {
                for function in bundle.functions.keys() {
                    println!(
                        "dry run: would send {} bytes (CodeSha256 {}) to {function} with UpdateFunctionCode{}",
                        bundle.zip.len(),
                        bundle.code_sha256(),
                        if publish { ", then publish a version" } else { "" }
                    );
                }
                println!(
                    "dry run: nothing was sent to AWS (--plan reads the functions and says what would change)"
                );
                return Ok(());
            };
            let lambda = AwsLambda::new(&account);
            let keeper = Keeper::new(&account);
            let kept = artifact_bucket.map(|bucket| Kept {
                bucket,
                key: rollback::bundle_key(&bundle.sha256_hex()),
            });
            if let Some(kept) = &kept {
                if plan {
                    println!("plan: would keep the bundle at {}", kept.url());
                } else {
                    let put = keeper.keep(kept, &bundle.zip).await?;
                    println!(
                        "{} {}",
                        if put {
                            "kept the bundle at"
                        } else {
                            "the bundle is kept already at"
                        },
                        kept.url()
                    );
                }
            }
            for function in bundle.functions.keys() {
                upload_one(&lambda, &bundle, function, plan, publish).await?;
                if let (Some(kept), false) = (&kept, plan) {
                    let (arn, tags) = keeper.tags(function).await?;
                    let tags = rollback::tags_after_upload(&tags, kept);
                    let previous = tags.get(rollback::PREVIOUS_TAG).cloned();
                    keeper.set_tags(function, &arn, tags).await?;
                    if let Some(previous) = previous {
                        println!("{function} can go back to {previous} (deploy rollback {function})");
                    }
                }
            }
        }
    }
    Ok(())
}

/// `deploy invoke`: the answer on standard output, the request's log lines
/// on standard error.
async fn invoke(
    remote: &Remote,
    function: &str,
    payload: &[u8],
    queued: bool,
    logs_wait: Duration,
) -> anyhow::Result<()> {
    let since = remote::now_ms() - 1_000;
    let invoked = remote.invoke(function, payload, queued).await?;
    eprintln!(
        "{function}: request {} answered {}",
        invoked.request_id, invoked.status
    );
    if !invoked.payload.is_empty() {
        println!("{}", invoked.payload);
    }
    match &invoked.log_tail {
        Some(tail) => tail.lines().for_each(|line| eprintln!("{line}")),
        None if !logs_wait.is_zero() && !invoked.request_id.is_empty() => {
            let lines = remote
                .request_lines(
                    function,
                    &invoked.request_id,
                    since,
                    logs_wait,
                    Duration::from_millis(500),
                )
                .await?;
            if lines.is_empty() {
                eprintln!(
                    "(no log lines of request {} reached CloudWatch Logs within {} s)",
                    invoked.request_id,
                    logs_wait.as_secs_f64()
                );
            }
            lines.iter().for_each(|line| eprintln!("{}", line.message));
        }
        None => {}
    }
    if let Some(failure) = invoked.failure() {
        anyhow::bail!("{function} failed: {failure}");
    }
    Ok(())
}

/// `deploy logs`: the lines since `since`, and with `tail` the new ones
/// as they come, each once.
#[allow(clippy::too_many_arguments)]
async fn print_logs(
    remote: &Remote,
    function: &str,
    since: Duration,
    request_id: Option<&str>,
    level: Option<usize>,
    tail: bool,
    for_seconds: Option<f64>,
    poll: Duration,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut from = remote::now_ms() - i64::try_from(since.as_millis()).unwrap_or(i64::MAX);
    let mut seen = Seen::default();
    loop {
        let lines = remote.lines_since(function, from, request_id).await?;
        if let Some(last) = lines.last() {
            from = from.max(last.timestamp_ms);
        }
        let mut out = std::io::stdout().lock();
        for line in seen.new_lines(lines) {
            if remote::at_least(&line, level) {
                writeln!(out, "{}", line.message).context("writing standard output")?;
            }
        }
        out.flush().context("writing standard output")?;
        drop(out);
        let done = for_seconds.is_some_and(|limit| started.elapsed().as_secs_f64() >= limit);
        if !tail || done {
            return Ok(());
        }
        tokio::time::sleep(poll).await;
    }
}

/// `30s`, `10m`, `2h`, `1d`: an age.
fn parse_age(text: &str) -> anyhow::Result<Duration> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let number: u64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("--since {text:?}: use a number and a unit: 30s, 10m, 2h, 1d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" | "" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => anyhow::bail!("--since {text:?}: use a number and a unit: 30s, 10m, 2h, 1d"),
    };
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

/// Replaces the code of `function` with `bundle` (or, planning, says what
/// it would change).
async fn upload_one(
    lambda: &AwsLambda,
    bundle: &Bundle,
    function: &str,
    planning: bool,
    publish: bool,
) -> anyhow::Result<()> {
    let plan = plan(lambda, function).await?;
    if planning {
        let sent = bundle.code_sha256();
        match plan.before.code_sha256.as_deref() {
            Some(deployed) if deployed == sent => {
                println!("plan: {function} already runs this code (CodeSha256 {sent})")
            }
            deployed => println!(
                "plan: would replace {function}'s code (CodeSha256 {} -> {sent}, {} bytes)",
                deployed.unwrap_or("(none)"),
                bundle.zip.len()
            ),
        }
        if plan.switch_runtime {
            println!("plan: would switch {function}: {}", plan.describe_switch());
        }
        if publish {
            println!("plan: would publish a version");
        }
        return Ok(());
    }
    upload(
        lambda,
        bundle,
        function,
        &plan,
        publish,
        Patience::default(),
        &mut |line| println!("{line}"),
    )
    .await
    .with_context(|| format!("uploading to {function}"))
}

/// The AWS failure behind `err`, if one is.
fn aws_problem(err: &anyhow::Error) -> Option<&AwsProblem> {
    use emmaa_deploy::stack::{CloudError, StackError};
    use emmaa_deploy::upload::{ControlError, UploadError};
    err.chain().find_map(|cause| {
        fn control(control: &ControlError) -> Option<&AwsProblem> {
            match control {
                ControlError::Aws(problem) => Some(problem),
                ControlError::Conflict(_) => None,
            }
        }
        if let Some(problem) = cause.downcast_ref::<AwsProblem>() {
            Some(problem)
        } else if let Some(CloudError(problem)) = cause.downcast_ref::<CloudError>() {
            Some(problem)
        } else if let Some(StackError::Cloud(CloudError(problem))) = cause.downcast_ref::<StackError>() {
            Some(problem)
        } else if let Some(error) = cause.downcast_ref::<ControlError>() {
            control(error)
        } else if let Some(UploadError::Control(error)) = cause.downcast_ref::<UploadError>() {
            control(error)
        } else {
            None
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = cli.verbose;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    let result = runtime
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("deploy: {err:#}");
            let interrupted = err.chain().any(|cause| {
                matches!(
                    cause.downcast_ref::<emmaa_deploy::stack::StackError>(),
                    Some(emmaa_deploy::stack::StackError::Interrupted { .. })
                )
            });
            if let Some(details) = aws_problem(&err).and_then(|problem| problem.details.as_deref())
                && verbose
            {
                eprintln!("  the AWS SDK said: {details}");
            }
            if err.downcast_ref::<Troubled>().is_some() {
                return ExitCode::from(3);
            }
            // As a shell reports a command Ctrl-C stopped.
            if interrupted {
                return ExitCode::from(130);
            }
            ExitCode::FAILURE
        }
    }
}
