//! `deploy`: bundles the host with a guest's component (or every guest's)
//! for Lambda (`provided.al2023`) and uploads it: `deploy upload <guest>
//! <function>` replaces `python update_lambda.py <script> <function>`, and
//! `deploy upload --all` updates every function of an installation.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use emmaa_deploy::bundle::{Arch, Bundle, BundleRequest, Serves, bundle};
use emmaa_deploy::template::{template, to_yaml};
use emmaa_deploy::upload::{AwsLambda, Patience, plan, upload};

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
    },
}

#[derive(Args)]
struct BuildOptions {
    /// The Lambda architecture: x86_64 or arm64 (only this machine's own can be built).
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
        Command::Upload {
            guest,
            function,
            all,
            build,
            dry_run,
            publish,
        } => {
            let bundle = bundle(&build.request(serves(guest, function, all)))?;
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
