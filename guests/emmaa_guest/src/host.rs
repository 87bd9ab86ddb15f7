//! The host's environment, in the handlers' own terms: the settings, the
//! clock, the log, and AWS errors in words. The other imports are called
//! where their results are used: the models module lists and reads
//! models, batch_job submits jobs, fan_out invokes functions.

use crate::bindings::emmaa::pipeline::{environment, errors::AwsError};

pub use environment::Settings;

pub fn settings() -> Settings {
    environment::get_settings()
}

/// The invocation's time, in seconds since the Unix epoch.
pub fn now() -> u64 {
    environment::now()
}

/// Writes a warning to the host's log.
pub fn log_warning(message: &str) {
    environment::log(environment::Level::Warn, message);
}

/// Writes an error to the host's log.
pub fn log_error(message: &str) {
    environment::log(environment::Level::Error, message);
}

/// `code: message`, as an operator reads an AWS error.
pub fn describe(err: &AwsError) -> String {
    format!("{}: {}", err.code, err.message)
}
