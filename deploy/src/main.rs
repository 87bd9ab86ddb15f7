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
use emmaa_deploy::bundle::{Bundle, BundleRequest, Serves, bundle};
use emmaa_deploy::stack::{AwsStack, StackRequest, deploy_stack};
use emmaa_deploy::template::{template, to_yaml};
use emmaa_deploy::upload::{AwsLambda, Patience, plan, upload};
use emmaa_offline::replay::{TraceReplayer, TraceSource};
use emmaa_runtime::engine::Components;

#[derive(Parser)]
#[command(
    name = "deploy",
    version,
    about = "Bundles EMMAA handlers for AWS Lambda and uploads them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
        /// Upload the (content-addressed) artifacts, make the change set and
        /// print it, then delete it: the stack and the data bucket are left alone.
        #[arg(long)]
        dry_run: bool,
        /// Seconds between polls of CloudFormation.
        #[arg(long, default_value_t = 5.0)]
        poll: f64,
        #[command(flatten)]
        check: CheckOptions,
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
        /// Write the zip and print what would be sent and changed, touching nothing.
        #[arg(long)]
        dry_run: bool,
        /// Publish a version once the code is in place, and print it.
        #[arg(long)]
        publish: bool,
        #[command(flatten)]
        check: CheckOptions,
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
    async fn check(&self, guest: Option<&str>) -> anyhow::Result<()> {
        if self.check_against.is_empty() {
            return Ok(());
        }
        let sources: Vec<TraceSource> = self
            .check_against
            .iter()
            .map(|trace| TraceSource::parse(trace))
            .collect();
        let mut player = TraceReplayer::new(Components::BuiltIn, Duration::from_secs(60))?;
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
    #[arg(long, default_value = "release")]
    profile: String,
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
            profile: self.profile,
            bootstrap: self.bootstrap,
            out: self.out,
            function_prefix: std::env::var("EMMAA_FUNCTION_PREFIX").unwrap_or_else(|_| "emmaa-".into()),
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
            poll,
            check,
        } => {
            check.check(None).await?;
            let request = StackRequest {
                stack: stack_name,
                artifact_bucket,
                artifact_prefix,
                parameters: parameters.into_iter().collect(),
                arch: build.arch,
                dry_run,
                poll: Duration::from_secs_f64(poll.max(0.05)),
                timeout: Duration::from_secs(3600),
            };
            let control = AwsStack::from_env().await;
            let mut build = Some(build);
            let mut bundle_for = |prefix: &str| {
                let build = build.take().ok_or("the bundle is built once")?;
                let mut request = build.request(Serves::All);
                request.function_prefix = prefix.to_owned();
                let bundle = bundle(&request).map_err(|err| err.to_string())?;
                println!("{}", describe(&bundle));
                Ok(bundle)
            };
            deploy_stack(&control, &request, &template(), &mut bundle_for, &mut |line| {
                println!("{line}")
            })
            .await?;
        }
        Command::Upload {
            guest,
            function,
            all,
            build,
            dry_run,
            publish,
            check,
        } => {
            let serves = serves(guest, function, all);
            match &serves {
                Serves::One { guest, .. } => check.check(Some(guest)).await?,
                Serves::All => check.check(None).await?,
            }
            let bundle = bundle(&build.request(serves))?;
            println!("{}", describe(&bundle));
            let lambda = AwsLambda::from_env().await;
            for function in bundle.functions.keys() {
                upload_one(&lambda, &bundle, function, dry_run, publish).await?;
            }
        }
    }
    Ok(())
}

/// Replaces the code of `function` with `bundle` (or says what it would do).
async fn upload_one(
    lambda: &AwsLambda,
    bundle: &Bundle,
    function: &str,
    dry_run: bool,
    publish: bool,
) -> anyhow::Result<()> {
    let plan = plan(lambda, function)
        .await
        .with_context(|| format!("reading {function}"))?;
    if dry_run {
        println!(
            "dry run: would send {} bytes (CodeSha256 {}) to {function} with UpdateFunctionCode",
            bundle.zip.len(),
            bundle.code_sha256()
        );
        if plan.switch_runtime {
            println!("dry run: would switch {function}: {}", plan.describe_switch());
        }
        if publish {
            println!("dry run: would publish a version");
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    let result = runtime
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("deploy: {err:#}");
            ExitCode::FAILURE
        }
    }
}
