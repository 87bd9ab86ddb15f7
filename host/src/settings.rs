//! The deployment settings, read from the function's environment (`EMMAA_*`
//! variables) with the defaults of the running EMMAA deployment. An unset
//! variable takes its default; one set to the empty string is empty.

use thiserror::Error;

use crate::bindings::emmaa::pipeline::{environment, functions::InvocationType};

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{variable}={value:?} {problem}")]
pub struct SettingsError {
    pub variable: &'static str,
    pub value: String,
    pub problem: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub bucket: String,
    pub project: String,
    pub branch: String,
    pub job_queue: String,
    pub job_definition: String,
    pub large_models: Vec<String>,
    pub large_job_queue: String,
    pub large_job_definition: String,
    pub function_prefix: String,
    pub invocation_type: InvocationType,
    /// How many AWS calls of one batch the host keeps in flight at once.
    pub max_in_flight: usize,
}

/// Every variable, its default and what it means (the README's table).
pub const VARIABLES: &[(&str, &str, &str)] = &[
    ("EMMAA_BUCKET", "emmaa", "the S3 bucket with models/ and results/"),
    ("EMMAA_PROJECT", "aske", "the --project of run_in_batch"),
    (
        "EMMAA_BRANCH",
        "origin/master",
        "the --branch of git_and_run.sh (empty: left out)",
    ),
    ("EMMAA_JOB_QUEUE", "emmaa-models-update-test", "the Batch queue"),
    ("EMMAA_JOB_DEFINITION", "emmaa_jobdef", "the Batch job definition"),
    (
        "EMMAA_LARGE_MODELS",
        "",
        "comma-separated models that get the large queue and definition",
    ),
    (
        "EMMAA_LARGE_JOB_QUEUE",
        "emmaa-after-update",
        "the Batch queue of large models",
    ),
    (
        "EMMAA_LARGE_JOB_DEFINITION",
        "emmaa_testing_jobs_def",
        "the job definition of large models",
    ),
    (
        "EMMAA_FUNCTION_PREFIX",
        "emmaa-",
        "the prefix of every Lambda function name",
    ),
    (
        "EMMAA_INVOCATION_TYPE",
        "RequestResponse",
        "RequestResponse, or Event for fire-and-forget fan-out",
    ),
    (
        "EMMAA_MAX_IN_FLIGHT",
        "16",
        "AWS calls of one batch the host performs at once",
    ),
];

/// The settings as a table, for `--help`.
pub fn settings_help() -> String {
    let mut help =
        String::from("Settings (environment variables; unset takes the default, empty is empty):\n");
    for (variable, default, meaning) in VARIABLES {
        help.push_str(&format!("  {variable:<28} default {default:<26} {meaning}\n"));
    }
    help
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (a variable's value, if set).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |variable: &str| {
            lookup(variable).unwrap_or_else(|| {
                let (_, default, _) = VARIABLES
                    .iter()
                    .find(|(name, _, _)| *name == variable)
                    .expect("every setting has a default");
                (*default).to_owned()
            })
        };
        let invocation_type = match get("EMMAA_INVOCATION_TYPE").as_str() {
            "RequestResponse" => InvocationType::RequestResponse,
            "Event" => InvocationType::Event,
            other => {
                return Err(SettingsError {
                    variable: "EMMAA_INVOCATION_TYPE",
                    value: other.to_owned(),
                    problem: "is not an invocation type: use RequestResponse or Event".into(),
                });
            }
        };
        let max_in_flight = get("EMMAA_MAX_IN_FLIGHT");
        let max_in_flight = match max_in_flight.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(SettingsError {
                    variable: "EMMAA_MAX_IN_FLIGHT",
                    value: max_in_flight,
                    problem: "must be a whole number of at least 1".into(),
                });
            }
        };
        let settings = Settings {
            bucket: get("EMMAA_BUCKET"),
            project: shell_word("EMMAA_PROJECT", get("EMMAA_PROJECT"))?,
            branch: shell_word("EMMAA_BRANCH", get("EMMAA_BRANCH"))?,
            job_queue: get("EMMAA_JOB_QUEUE"),
            job_definition: get("EMMAA_JOB_DEFINITION"),
            large_models: get("EMMAA_LARGE_MODELS")
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect(),
            large_job_queue: get("EMMAA_LARGE_JOB_QUEUE"),
            large_job_definition: get("EMMAA_LARGE_JOB_DEFINITION"),
            function_prefix: get("EMMAA_FUNCTION_PREFIX"),
            invocation_type,
            max_in_flight,
        };
        if settings.bucket.is_empty() {
            return Err(SettingsError {
                variable: "EMMAA_BUCKET",
                value: settings.bucket,
                problem: "must name a bucket".into(),
            });
        }
        Ok(settings)
    }

    /// The settings as the guests see them.
    pub fn for_guest(&self) -> environment::Settings {
        environment::Settings {
            bucket: self.bucket.clone(),
            project: self.project.clone(),
            branch: self.branch.clone(),
            job_queue: self.job_queue.clone(),
            job_definition: self.job_definition.clone(),
            large_models: self.large_models.clone(),
            large_job_queue: self.large_job_queue.clone(),
            large_job_definition: self.large_job_definition.clone(),
            function_prefix: self.function_prefix.clone(),
            invocation_type: self.invocation_type,
        }
    }
}

/// The project and branch go into a shell command line as single words.
fn shell_word(variable: &'static str, value: String) -> Result<String, SettingsError> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "._/@+-".contains(c);
    if value.chars().all(safe) {
        Ok(value)
    } else {
        Err(SettingsError {
            variable,
            value,
            problem: "may only hold letters, digits and . _ / @ + - (it becomes a word of a shell command)"
                .into(),
        })
    }
}

/// The name Lambda and the AWS APIs use for an invocation type.
pub fn invocation_type_name(invocation_type: InvocationType) -> &'static str {
    match invocation_type {
        InvocationType::RequestResponse => "RequestResponse",
        InvocationType::Event => "Event",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn unset_variables_take_the_defaults() {
        let settings = settings(&[]).unwrap();
        assert_eq!(settings.bucket, "emmaa");
        assert_eq!(settings.project, "aske");
        assert_eq!(settings.branch, "origin/master");
        assert_eq!(settings.job_queue, "emmaa-models-update-test");
        assert_eq!(settings.job_definition, "emmaa_jobdef");
        assert!(settings.large_models.is_empty());
        assert_eq!(settings.large_job_queue, "emmaa-after-update");
        assert_eq!(settings.large_job_definition, "emmaa_testing_jobs_def");
        assert_eq!(settings.function_prefix, "emmaa-");
        assert_eq!(settings.invocation_type, InvocationType::RequestResponse);
    }

    #[test]
    fn an_empty_branch_stays_empty() {
        assert_eq!(settings(&[("EMMAA_BRANCH", "")]).unwrap().branch, "");
    }

    #[test]
    fn large_models_are_trimmed_and_split_on_commas() {
        let settings = settings(&[("EMMAA_LARGE_MODELS", " aml , covid19,,")]).unwrap();
        assert_eq!(settings.large_models, ["aml", "covid19"]);
    }

    #[test]
    fn refuses_an_unknown_invocation_type_naming_variable_and_value() {
        let err = settings(&[("EMMAA_INVOCATION_TYPE", "Async")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "EMMAA_INVOCATION_TYPE=\"Async\" is not an invocation type: use RequestResponse or Event"
        );
        let event = settings(&[("EMMAA_INVOCATION_TYPE", "Event")]).unwrap();
        assert_eq!(event.invocation_type, InvocationType::Event);
    }

    #[test]
    fn refuses_a_branch_that_would_break_the_shell_command() {
        let err = settings(&[("EMMAA_BRANCH", "main; rm -rf /")]).unwrap_err();
        assert_eq!(err.variable, "EMMAA_BRANCH");
        assert!(settings(&[("EMMAA_BRANCH", "origin/feature-1.2")]).is_ok());
    }

    #[test]
    fn refuses_zero_calls_in_flight() {
        assert_eq!(
            settings(&[("EMMAA_MAX_IN_FLIGHT", "0")]).unwrap_err().variable,
            "EMMAA_MAX_IN_FLIGHT"
        );
    }
}
