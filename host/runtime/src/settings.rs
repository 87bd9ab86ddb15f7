//! The deployment settings, read from the function's environment (`EMMAA_*`
//! variables) with the defaults of the running EMMAA deployment. An unset
//! variable takes its default; one set to the empty string is empty, and is
//! refused unless emptiness has a meaning for it. Each variable accepts only
//! the forms AWS (or the shell command line it ends up in) accepts, so a
//! wrong value stops the host at start, named, instead of failing every job.

use thiserror::Error;

use crate::bindings::emmaa::pipeline::environment;
use crate::effects::{InvocationType, invocation_type_name};
use crate::ledger::Ledger;

pub const BUCKET: &str = "EMMAA_BUCKET";
pub const PROJECT: &str = "EMMAA_PROJECT";
pub const BRANCH: &str = "EMMAA_BRANCH";
pub const JOB_QUEUE: &str = "EMMAA_JOB_QUEUE";
pub const JOB_DEFINITION: &str = "EMMAA_JOB_DEFINITION";
pub const LARGE_MODELS: &str = "EMMAA_LARGE_MODELS";
pub const LARGE_JOB_QUEUE: &str = "EMMAA_LARGE_JOB_QUEUE";
pub const LARGE_JOB_DEFINITION: &str = "EMMAA_LARGE_JOB_DEFINITION";
pub const FUNCTION_PREFIX: &str = "EMMAA_FUNCTION_PREFIX";
pub const INVOCATION_TYPE: &str = "EMMAA_INVOCATION_TYPE";
pub const MAX_IN_FLIGHT: &str = "EMMAA_MAX_IN_FLIGHT";
pub const LEDGER: &str = "EMMAA_LEDGER";
pub const LEDGER_PREFIX: &str = "EMMAA_LEDGER_PREFIX";
pub const TRACE_PREFIX: &str = "EMMAA_TRACE_PREFIX";

/// The longest function name suffix (`test-update-pipeline`); a Lambda
/// function name has at most 64 characters.
pub const MAX_FUNCTION_PREFIX_LEN: usize = 64 - "test-update-pipeline".len();

/// The most bytes of a function's environment, every variable's name and
/// value together (Lambda's quota: 4 KB).
pub const MAX_ENVIRONMENT_BYTES: usize = 4_096;

/// The most calls in flight: Lambda's default account concurrency.
const MAX_IN_FLIGHT_LIMIT: usize = 1_000;

/// The most characters of a bad value an error quotes.
const MAX_QUOTED_CHARS: usize = 200;

/// One setting: its variable, default, the forms it accepts, and meaning.
pub struct Variable {
    pub name: &'static str,
    pub default: &'static str,
    pub accepts: &'static str,
    pub meaning: &'static str,
}

/// Every setting (the README's table).
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: BUCKET,
        default: "emmaa",
        accepts: "an S3 bucket name: 3-63 of a-z 0-9 . -, a letter or digit at each end",
        meaning: "the S3 bucket with models/ and results/",
    },
    Variable {
        name: PROJECT,
        default: "aske",
        accepts: "letters, digits and . _ / @ + -, not empty, not starting with -",
        meaning: "the --project of run_in_batch",
    },
    Variable {
        name: BRANCH,
        default: "origin/master",
        accepts: "letters, digits and . _ / @ + -, not starting with -; empty leaves --branch out",
        meaning: "the --branch of git_and_run.sh",
    },
    Variable {
        name: JOB_QUEUE,
        default: "emmaa-models-update-test",
        accepts: "a job queue name (1-128 of A-Z a-z 0-9 _ -, a letter or digit first) or ARN",
        meaning: "the Batch queue",
    },
    Variable {
        name: JOB_DEFINITION,
        default: "emmaa_jobdef",
        accepts: "a job definition name, name:revision or ARN",
        meaning: "the Batch job definition",
    },
    Variable {
        name: LARGE_MODELS,
        default: "",
        accepts: "model names separated by commas",
        meaning: "models that get the large queue and definition",
    },
    Variable {
        name: LARGE_JOB_QUEUE,
        default: "emmaa-after-update",
        accepts: "as EMMAA_JOB_QUEUE",
        meaning: "the Batch queue of large models",
    },
    Variable {
        name: LARGE_JOB_DEFINITION,
        default: "emmaa_testing_jobs_def",
        accepts: "as EMMAA_JOB_DEFINITION",
        meaning: "the job definition of large models",
    },
    Variable {
        name: FUNCTION_PREFIX,
        default: "emmaa-",
        accepts: "at most 44 of A-Z a-z 0-9 _ -; may be empty",
        meaning: "the prefix of every Lambda function name",
    },
    Variable {
        name: INVOCATION_TYPE,
        default: "RequestResponse",
        accepts: "RequestResponse or Event",
        meaning: "how fan-out handlers invoke (Event: fire and forget)",
    },
    Variable {
        name: MAX_IN_FLIGHT,
        default: "16",
        accepts: "a whole number from 1 to 1000",
        meaning: "AWS calls of one batch the host performs at once",
    },
    Variable {
        name: LEDGER,
        default: "on",
        accepts: "on or off",
        meaning: "claim each unit of work before doing it (exactly once)",
    },
    Variable {
        name: LEDGER_PREFIX,
        default: "ledger/",
        accepts: "a key prefix ending in /, of A-Z a-z 0-9 ! - _ . * ' ( ) /, outside models/ and results/",
        meaning: "where in the bucket the claims are kept",
    },
    Variable {
        name: TRACE_PREFIX,
        default: "",
        accepts: "empty (off), or a key prefix as EMMAA_LEDGER_PREFIX",
        meaning: "where in the bucket the host writes a trace of each event (emmaa-host replay --trace)",
    },
];

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{variable}={} {problem}", quoted(value))]
pub struct SettingsError {
    pub variable: &'static str,
    pub value: String,
    pub problem: String,
}

/// `value` quoted, cut to a length an error message can carry.
fn quoted(value: &str) -> String {
    match value.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!(
            "{:?}... ({} more characters)",
            &value[..end],
            value[end..].chars().count()
        ),
        None => format!("{value:?}"),
    }
}

/// The CloudWatch namespace of the metrics the host writes per event (the
/// Lambda entry's Embedded Metric Format lines), which the stack's alarm
/// watches.
pub const METRICS_NAMESPACE: &str = "EMMAA";

/// The settings of one function: what its guest sees, and the host's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// What the guest gets from `get-settings`.
    pub pipeline: environment::Settings,
    /// How many AWS calls of one batch the host keeps in flight at once.
    pub max_in_flight: usize,
    /// Where the claims are kept in the bucket; `None`: the ledger is off.
    pub ledger_prefix: Option<String>,
    /// Where each event's trace is written in the bucket; `None`: no
    /// traces (the default).
    pub trace_prefix: Option<String>,
}

/// The settings as a Markdown table, for docs/settings.md.
pub fn settings_table() -> String {
    let mut table = String::from("| variable | default | meaning | accepts |\n|---|---|---|---|\n");
    for variable in VARIABLES {
        let default = match variable.default {
            "" => "(empty)".to_owned(),
            default => format!("`{default}`"),
        };
        table.push_str(&format!(
            "| `{}` | {default} | {} | {} |\n",
            variable.name, variable.meaning, variable.accepts
        ));
    }
    table
}

/// The settings as a table, for `--help`.
pub fn settings_help() -> String {
    let mut help =
        String::from("Settings (environment variables; unset takes the default, empty is empty):\n");
    for variable in VARIABLES {
        help.push_str(&format!(
            "  {:<28} default {:<26} {}\n  {:<28} accepts {}\n",
            variable.name, variable.default, variable.meaning, "", variable.accepts
        ));
    }
    help
}

impl Settings {
    /// Reads the settings from the process environment.
    /// A value that is not UTF-8 is refused by name, never taken as unset.
    pub fn from_env() -> Result<Self, SettingsError> {
        for variable in VARIABLES {
            if let Err(std::env::VarError::NotUnicode(raw)) = std::env::var(variable.name) {
                return Err(SettingsError {
                    variable: variable.name,
                    value: raw.to_string_lossy().into_owned(),
                    problem: "is not valid UTF-8".into(),
                });
            }
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (a variable's value, if set).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &'static str| Setting {
            name,
            value: lookup(name).unwrap_or_else(|| {
                let variable = VARIABLES
                    .iter()
                    .find(|variable| variable.name == name)
                    .expect("every setting has a default");
                variable.default.to_owned()
            }),
        };
        let pipeline = environment::Settings {
            bucket: get(BUCKET).bucket()?,
            project: get(PROJECT).shell_word(false)?,
            branch: get(BRANCH).shell_word(true)?,
            job_queue: get(JOB_QUEUE).batch_resource(BatchResource::JobQueue)?,
            job_definition: get(JOB_DEFINITION).batch_resource(BatchResource::JobDefinition)?,
            large_models: get(LARGE_MODELS).model_names()?,
            large_job_queue: get(LARGE_JOB_QUEUE).batch_resource(BatchResource::JobQueue)?,
            large_job_definition: get(LARGE_JOB_DEFINITION).batch_resource(BatchResource::JobDefinition)?,
            function_prefix: get(FUNCTION_PREFIX).function_prefix()?,
            invocation_type: get(INVOCATION_TYPE).invocation_type()?,
        };
        let ledger_prefix = get(LEDGER_PREFIX).key_prefix("a claim")?;
        let trace_prefix = get(TRACE_PREFIX);
        Ok(Settings {
            pipeline,
            max_in_flight: get(MAX_IN_FLIGHT).max_in_flight()?,
            ledger_prefix: get(LEDGER).on_or_off()?.then_some(ledger_prefix),
            trace_prefix: match trace_prefix.value.is_empty() {
                true => None,
                false => Some(trace_prefix.key_prefix("a trace")?),
            },
        })
    }

    /// Every setting as the variable that gives it: what a trace records,
    /// and [`Settings::from_lookup`] reads back.
    pub fn variables(&self) -> std::collections::BTreeMap<String, String> {
        let pipeline = &self.pipeline;
        let default_ledger_prefix = || {
            VARIABLES
                .iter()
                .find(|variable| variable.name == LEDGER_PREFIX)
                .map_or("", |variable| variable.default)
                .to_owned()
        };
        [
            (BUCKET, pipeline.bucket.clone()),
            (PROJECT, pipeline.project.clone()),
            (BRANCH, pipeline.branch.clone()),
            (JOB_QUEUE, pipeline.job_queue.clone()),
            (JOB_DEFINITION, pipeline.job_definition.clone()),
            (LARGE_MODELS, pipeline.large_models.join(",")),
            (LARGE_JOB_QUEUE, pipeline.large_job_queue.clone()),
            (LARGE_JOB_DEFINITION, pipeline.large_job_definition.clone()),
            (FUNCTION_PREFIX, pipeline.function_prefix.clone()),
            (
                INVOCATION_TYPE,
                invocation_type_name(pipeline.invocation_type).to_owned(),
            ),
            (MAX_IN_FLIGHT, self.max_in_flight.to_string()),
            (
                LEDGER,
                if self.ledger_prefix.is_some() { "on" } else { "off" }.to_owned(),
            ),
            (
                LEDGER_PREFIX,
                self.ledger_prefix.clone().unwrap_or_else(default_ledger_prefix),
            ),
            (TRACE_PREFIX, self.trace_prefix.clone().unwrap_or_default()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// The ledger, when it is on.
    pub fn ledger(&self) -> Option<Ledger> {
        self.ledger_prefix.as_ref().map(|prefix| Ledger {
            bucket: self.pipeline.bucket.clone(),
            prefix: prefix.clone(),
        })
    }
}

/// A variable and the value it has (or its default).
struct Setting {
    name: &'static str,
    value: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BatchResource {
    JobQueue,
    JobDefinition,
}

impl Setting {
    fn refuse<T>(self, problem: impl Into<String>) -> Result<T, SettingsError> {
        Err(SettingsError {
            variable: self.name,
            value: self.value,
            problem: problem.into(),
        })
    }

    fn bucket(self) -> Result<String, SettingsError> {
        let value = self.value.as_str();
        let allowed = value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        let ends = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if (3..=63).contains(&value.len())
            && allowed
            && ends(value.bytes().next())
            && ends(value.bytes().last())
            && !value.contains("..")
        {
            Ok(self.value)
        } else {
            self.refuse(
                "is not an S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, \
                 beginning and ending with a letter or digit",
            )
        }
    }

    /// The project and branch go into a shell command line as single words,
    /// after an option: they may not look like an option themselves.
    fn shell_word(self, may_be_empty: bool) -> Result<String, SettingsError> {
        let safe = |c: char| c.is_ascii_alphanumeric() || "._/@+-".contains(c);
        if self.value.is_empty() && !may_be_empty {
            self.refuse("may not be empty")
        } else if self.value.starts_with('-') {
            self.refuse("may not start with - (it would be read as an option of the Batch command)")
        } else if self.value.chars().all(safe) {
            Ok(self.value)
        } else {
            self.refuse(
                "may only hold letters, digits and . _ / @ + - (it becomes a word of a shell command)",
            )
        }
    }

    fn batch_resource(self, resource: BatchResource) -> Result<String, SettingsError> {
        let (what, arn_type) = match resource {
            BatchResource::JobQueue => ("job queue", "job-queue"),
            BatchResource::JobDefinition => ("job definition", "job-definition"),
        };
        let with_revision = resource == BatchResource::JobDefinition;
        let named = |text: &str| match text.split_once(':') {
            Some((name, revision)) if with_revision => is_batch_name(name) && is_revision(revision),
            Some(_) => false,
            None => is_batch_name(text),
        };
        let arn = self
            .value
            .strip_prefix("arn:")
            .and_then(|rest| {
                let [partition, service, region, account, resource] =
                    <[&str; 5]>::try_from(rest.splitn(5, ':').collect::<Vec<_>>()).ok()?;
                let ok = partition.starts_with("aws")
                    && service == "batch"
                    && !region.is_empty()
                    && region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit());
                ok.then_some(resource)
            })
            .and_then(|resource| resource.strip_prefix(arn_type)?.strip_prefix('/'))
            .is_some_and(named);
        if arn || named(&self.value) {
            Ok(self.value)
        } else {
            let forms = if with_revision {
                "a name, name:revision or an ARN"
            } else {
                "a name or an ARN"
            };
            self.refuse(format!(
                "is not a {what}: use {forms} (a name is 1 to 128 letters, digits, _ and -, \
                 beginning with a letter or digit)"
            ))
        }
    }

    fn model_names(self) -> Result<Vec<String>, SettingsError> {
        let names: Vec<String> = self
            .value
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        match names.iter().find(|name| !is_model_name(name)) {
            Some(bad) => {
                let problem = format!(
                    "holds {}, which is not a model name (^[A-Za-z0-9][A-Za-z0-9_-]*$)",
                    quoted(bad)
                );
                self.refuse(problem)
            }
            None => Ok(names),
        }
    }

    fn function_prefix(self) -> Result<String, SettingsError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if self.value.len() <= MAX_FUNCTION_PREFIX_LEN && self.value.chars().all(allowed) {
            Ok(self.value)
        } else {
            self.refuse(format!(
                "is not the start of a Lambda function name: at most {MAX_FUNCTION_PREFIX_LEN} \
                 letters, digits, - and _"
            ))
        }
    }

    fn invocation_type(self) -> Result<InvocationType, SettingsError> {
        match self.value.as_str() {
            "RequestResponse" => Ok(InvocationType::RequestResponse),
            "Event" => Ok(InvocationType::Event),
            _ => self.refuse("is not an invocation type: use RequestResponse or Event"),
        }
    }

    fn on_or_off(self) -> Result<bool, SettingsError> {
        match self.value.as_str() {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => self.refuse("must be on or off"),
        }
    }

    /// A claim or trace (`what`) under `models/` would be listed as a
    /// model, one under `results/` would fire a trigger.
    fn key_prefix(self, what: &str) -> Result<String, SettingsError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "!-_.*'()/".contains(c);
        // S3 keeps `.`, `..` and empty segments as they are, where a bucket
        // directory (or a person) reads `./models/` as `models/`.
        let odd_segment = self
            .value
            .strip_suffix('/')
            .unwrap_or(&self.value)
            .split('/')
            .any(|segment| matches!(segment, "" | "." | ".."));
        if !self.value.ends_with('/') || self.value.starts_with('/') || !self.value.chars().all(allowed) {
            self.refuse("is not a key prefix: letters, digits and ! - _ . * ' ( ) /, ending in /")
        } else if odd_segment {
            self.refuse("has an empty, . or .. segment, which S3 keeps as it is: name the prefix plainly")
        } else if self.value.starts_with("models/") || self.value.starts_with("results/") {
            self.refuse(format!(
                "is under models/ or results/, where {what} would be listed as a model or fire a trigger"
            ))
        } else {
            Ok(self.value)
        }
    }

    fn max_in_flight(self) -> Result<usize, SettingsError> {
        match self.value.parse::<usize>() {
            Ok(n) if (1..=MAX_IN_FLIGHT_LIMIT).contains(&n) => Ok(n),
            _ => self.refuse(format!("must be a whole number from 1 to {MAX_IN_FLIGHT_LIMIT}")),
        }
    }
}

fn is_batch_name(text: &str) -> bool {
    (1..=128).contains(&text.len())
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_revision(text: &str) -> bool {
    !text.is_empty() && text.len() <= 10 && text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0')
}

fn is_model_name(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    /// docs/settings.md's table is this table.
    #[test]
    fn the_documented_settings_table_is_made_from_the_variables() {
        crate::generated::check_block(
            "docs/settings.md",
            "settings-table",
            "host/runtime/src/settings.rs",
            &settings_table(),
        );
    }

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    fn refused(variable: &str, value: &str) -> bool {
        settings(&[(variable, value)]).is_err_and(|err| err.variable == variable)
    }

    #[test]
    fn unset_variables_take_the_defaults() {
        let settings = settings(&[]).unwrap();
        let pipeline = &settings.pipeline;
        assert_eq!(pipeline.bucket, "emmaa");
        assert_eq!(pipeline.project, "aske");
        assert_eq!(pipeline.branch, "origin/master");
        assert_eq!(pipeline.job_queue, "emmaa-models-update-test");
        assert_eq!(pipeline.job_definition, "emmaa_jobdef");
        assert!(pipeline.large_models.is_empty());
        assert_eq!(pipeline.large_job_queue, "emmaa-after-update");
        assert_eq!(pipeline.large_job_definition, "emmaa_testing_jobs_def");
        assert_eq!(pipeline.function_prefix, "emmaa-");
        assert_eq!(pipeline.invocation_type, InvocationType::RequestResponse);
        assert_eq!(settings.max_in_flight, 16);
    }

    #[test]
    fn an_empty_branch_and_an_empty_function_prefix_keep_their_meaning() {
        let settings = settings(&[(BRANCH, ""), (FUNCTION_PREFIX, "")]).unwrap();
        assert_eq!(settings.pipeline.branch, "");
        assert_eq!(settings.pipeline.function_prefix, "");
    }

    #[test]
    fn large_models_are_trimmed_and_split_on_commas() {
        let settings = settings(&[(LARGE_MODELS, " aml , covid19,,")]).unwrap();
        assert_eq!(settings.pipeline.large_models, ["aml", "covid19"]);
        assert!(refused(LARGE_MODELS, "aml,a b"));
    }

    #[test]
    fn refuses_an_unknown_invocation_type_naming_variable_and_value() {
        let err = settings(&[(INVOCATION_TYPE, "Async")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "EMMAA_INVOCATION_TYPE=\"Async\" is not an invocation type: use RequestResponse or Event"
        );
        let event = settings(&[(INVOCATION_TYPE, "Event")]).unwrap();
        assert_eq!(event.pipeline.invocation_type, InvocationType::Event);
    }

    #[test]
    fn refuses_a_branch_that_would_break_the_shell_command() {
        assert!(refused(BRANCH, "main; rm -rf /"));
        assert!(settings(&[(BRANCH, "origin/feature-1.2")]).is_ok());
    }

    #[test]
    fn refuses_a_project_or_branch_that_looks_like_an_option() {
        assert!(refused(PROJECT, "--purpose"));
        assert!(refused(BRANCH, "-x"));
        assert!(refused(PROJECT, ""));
    }

    #[test]
    fn refuses_an_empty_or_option_like_queue_or_definition() {
        for variable in [JOB_QUEUE, JOB_DEFINITION, LARGE_JOB_QUEUE, LARGE_JOB_DEFINITION] {
            assert!(refused(variable, ""), "{variable}");
            assert!(refused(variable, "--queue"), "{variable}");
            assert!(refused(variable, "a b"), "{variable}");
            assert!(refused(variable, &"q".repeat(129)), "{variable}");
        }
    }

    #[test]
    fn accepts_queues_and_definitions_as_aws_does() {
        let arn_queue = "arn:aws:batch:us-east-1:123456789012:job-queue/emmaa-models";
        let arn_definition = "arn:aws:batch:us-east-1:123456789012:job-definition/emmaa_jobdef:3";
        let accepted = settings(&[
            (JOB_QUEUE, arn_queue),
            (JOB_DEFINITION, "emmaa_jobdef:12"),
            (LARGE_JOB_DEFINITION, arn_definition),
        ])
        .unwrap();
        assert_eq!(accepted.pipeline.job_queue, arn_queue);
        assert!(refused(JOB_QUEUE, "emmaa:1"));
        assert!(refused(JOB_DEFINITION, "emmaa_jobdef:"));
        assert!(refused(JOB_DEFINITION, "emmaa_jobdef:x"));
        assert!(refused(
            JOB_QUEUE,
            "arn:aws:batch:us-east-1:123456789012:job-definition/emmaa"
        ));
        assert!(refused(
            JOB_QUEUE,
            "arn:aws:s3:us-east-1:123456789012:job-queue/emmaa"
        ));
    }

    #[test]
    fn refuses_a_bucket_that_s3_would_refuse() {
        for bad in [
            "",
            "ab",
            "Emmaa",
            "-emmaa",
            "emmaa-",
            "em..maa",
            "em_maa",
            &"b".repeat(64),
        ] {
            assert!(refused(BUCKET, bad), "{bad:?}");
        }
        assert!(settings(&[(BUCKET, "my.emmaa-bucket2")]).is_ok());
    }

    #[test]
    fn refuses_a_function_prefix_lambda_would_refuse() {
        assert!(refused(FUNCTION_PREFIX, "emmaa:"));
        assert!(refused(FUNCTION_PREFIX, "a/b"));
        assert!(refused(FUNCTION_PREFIX, &"p".repeat(45)));
        assert!(settings(&[(FUNCTION_PREFIX, &"p".repeat(44))]).is_ok());
    }

    #[test]
    fn refuses_calls_in_flight_out_of_range() {
        for bad in ["0", "-1", "1001", "many", ""] {
            assert!(refused(MAX_IN_FLIGHT, bad), "{bad:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn any_value_is_accepted_in_a_safe_form_or_refused_by_name(
            index in 0..VARIABLES.len(),
            value in proptest::prop_oneof!["[a-z0-9._/:-]{0,20}", ".{0,30}", "-[a-z-]{0,10}"],
        ) {
            let variable = VARIABLES[index].name;
            match settings(&[(variable, &value)]) {
                Ok(settings) => {
                    let pipeline = &settings.pipeline;
                    let words = [
                        &pipeline.bucket,
                        &pipeline.project,
                        &pipeline.branch,
                        &pipeline.job_queue,
                        &pipeline.job_definition,
                        &pipeline.large_job_queue,
                        &pipeline.large_job_definition,
                    ];
                    for word in words {
                        proptest::prop_assert!(!word.starts_with('-'), "{variable}={value:?} gave {word:?}");
                        proptest::prop_assert!(!word.contains([' ', ';', '$', '`', '\'', '"']), "{word:?}");
                    }
                }
                Err(err) => {
                    proptest::prop_assert_eq!(err.variable, variable);
                    let named = format!("{variable}=");
                    proptest::prop_assert!(err.to_string().starts_with(&named));
                }
            }
        }
    }

    #[test]
    fn the_ledger_is_on_by_default_outside_models_and_results() {
        let on = settings(&[]).unwrap();
        assert_eq!(on.ledger().unwrap().prefix, "ledger/");
        assert_eq!(on.ledger().unwrap().bucket, "emmaa");
        assert_eq!(settings(&[(LEDGER, "off")]).unwrap().ledger(), None);
        assert!(refused(LEDGER, "yes"));
        for bad in [
            "models/ledger/",
            "results/",
            "ledger",
            "/ledger/",
            "led ger/",
            "",
            "./models/",
            "x/../models/",
            "ledger//",
            "a/./b/",
        ] {
            assert!(refused(LEDGER_PREFIX, bad), "{bad:?}");
        }
        assert!(settings(&[(LEDGER_PREFIX, "ops/claims/")]).is_ok());
    }

    #[test]
    fn traces_are_off_by_default_and_kept_outside_models_and_results() {
        assert_eq!(settings(&[]).unwrap().trace_prefix, None);
        assert_eq!(
            settings(&[(TRACE_PREFIX, "traces/")])
                .unwrap()
                .trace_prefix
                .as_deref(),
            Some("traces/")
        );
        for bad in ["models/traces/", "results/", "traces", "/traces/"] {
            assert!(refused(TRACE_PREFIX, bad), "{bad:?}");
        }
    }

    #[test]
    fn the_variables_of_settings_read_back_as_the_same_settings() {
        let all = [
            (LARGE_MODELS, "a, b"),
            (INVOCATION_TYPE, "Event"),
            (MAX_IN_FLIGHT, "7"),
            (LEDGER, "off"),
            (TRACE_PREFIX, "ops/traces/"),
            (BRANCH, ""),
        ];
        for vars in [&all[..], &[]] {
            let original = settings(vars).unwrap();
            let variables = original.variables();
            assert_eq!(variables.len(), VARIABLES.len());
            let read_back = Settings::from_lookup(|name| variables.get(name).cloned()).unwrap();
            assert_eq!(read_back, original);
        }
    }

    #[test]
    fn a_huge_bad_value_is_quoted_cut() {
        let huge = "x ".repeat(2_500_000);
        let message = settings(&[(PROJECT, &huge)]).unwrap_err().to_string();
        assert!(message.len() < 500, "{}", message.len());
        assert!(message.starts_with("EMMAA_PROJECT=\"x x "), "{message}");
        assert!(message.contains("(4999800 more characters)"), "{message}");
    }
}
