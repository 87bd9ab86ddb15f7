//! The Lambda bootstrap: the name a `provided.al2023` function runs. It
//! serves the events of the function it is deployed as, with the component
//! the bundle's manifest names; `deploy` builds it without a compiler (it
//! only loads precompiled components) and without the command line.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        eprintln!(
            "bootstrap: not running in Lambda (AWS_LAMBDA_RUNTIME_API is not set); \
             to run an event here, use `emmaa-host replay`"
        );
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("bootstrap: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(emmaa_lambda::serve()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bootstrap: {err}");
            ExitCode::FAILURE
        }
    }
}
