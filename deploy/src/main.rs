//! `deploy`: bundles the host with a guest's component (or every guest's)
//! for Lambda (`provided.al2023`) and uploads it: `deploy upload <guest>
//! <function>` replaces `python update_lambda.py <script> <function>`, and
//! `deploy upload --all` updates every function of an installation.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use emmaa_deploy::arch::Arch;
use emmaa_deploy::aws::{Account, AwsProblem, AwsTarget, connect};
use emmaa_deploy::bundle::{Bundle, BundleRequest, Serves, bundle};
use emmaa_deploy::stack::{self, AwsStack, StackRequest, deploy_stack};
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
        #[command(flatten)]
        check: CheckOptions,
        #[command(flatten)]
        aws: AwsOptions,
    },
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
    /// this build ships; an error unless every one is the same, or the
    /// user said to go on despite differences.
    async fn check(&self, guest: Option<&str>, aws: &AwsTarget) -> anyhow::Result<()> {
        if self.check_against.is_empty() {
            return Ok(());
        }
        let sources: Vec<TraceSource> = self
            .check_against
            .iter()
            .map(|trace| TraceSource::parse(trace))
            .collect();
        let mut player =
            TraceReplayer::new(Components::BuiltIn, Duration::from_secs(60))?.with_aws(aws.clone());
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
            check.check(None, &aws.target()).await?;
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
            let account = if dry_run { None } else { Some(aws.connect().await?) };
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
        Command::Upload {
            guest,
            function,
            all,
            build,
            dry_run,
            plan,
            publish,
            force,
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
            match &serves {
                Serves::One { guest, .. } => check.check(Some(guest), &aws.target()).await?,
                Serves::All => check.check(None, &aws.target()).await?,
            }
            // The account first: a missing region or credentials is said at
            // once, not after the build.
            let account = if dry_run { None } else { Some(aws.connect().await?) };
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
            for function in bundle.functions.keys() {
                upload_one(&lambda, &bundle, function, plan, publish).await?;
            }
        }
    }
    Ok(())
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
            if let Some(details) = aws_problem(&err).and_then(|problem| problem.details.as_deref())
                && verbose
            {
                eprintln!("  the AWS SDK said: {details}");
            }
            ExitCode::FAILURE
        }
    }
}
