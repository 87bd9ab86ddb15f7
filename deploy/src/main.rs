//! `deploy`: bundles the host with a guest's component for Lambda
//! (`provided.al2023`) and uploads it: `deploy upload <guest> <function>`
//! replaces `python update_lambda.py <script> <function>`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use emmaa_deploy::bundle::{Arch, Bundle, BundleRequest, bundle};
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
    /// Build the zip for a guest: bootstrap, precompiled component, manifest.
    Bundle {
        /// The guest (update_pipeline, model_updates, ...).
        guest: String,
        /// The function the bundle serves (default: the guest's, with EMMAA_FUNCTION_PREFIX).
        #[arg(long)]
        function: Option<String>,
        #[command(flatten)]
        build: BuildOptions,
    },
    /// Bundle a guest and replace the code of the existing Lambda function with it.
    Upload {
        /// The guest (update_pipeline, model_updates, ...).
        guest: String,
        /// The Lambda function to replace (emmaa-model-update, ...).
        function: String,
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

impl BuildOptions {
    fn request(self, guest: String, function: Option<String>) -> BundleRequest {
        BundleRequest {
            guest,
            function,
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
        "bundle {}: guest {} for function {} ({}), {} bytes, sha256 {}",
        bundle.path.display(),
        bundle.guest,
        bundle.function,
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
            build,
        } => {
            let bundle = bundle(&build.request(guest, function))?;
            println!("{}", describe(&bundle));
        }
        Command::Upload {
            guest,
            function,
            build,
            dry_run,
            publish,
        } => {
            let bundle = bundle(&build.request(guest, Some(function.clone())))?;
            println!("{}", describe(&bundle));
            let lambda = AwsLambda::from_env().await;
            let plan = plan(&lambda, &function)
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
                &lambda,
                &bundle,
                &plan,
                publish,
                Patience::default(),
                &mut |line| println!("{line}"),
            )
            .await
            .with_context(|| format!("uploading to {function}"))?;
        }
    }
    Ok(())
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
