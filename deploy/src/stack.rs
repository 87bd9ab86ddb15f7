//! `deploy stack`: the whole pipeline from code. It uploads the one bundle
//! and the template to an artifact bucket under keys holding their sha256
//! (so a change set sees new code as a change), creates or updates the
//! stack through a change set, waits, and prints what changed or, on
//! failure, the failing resource and AWS's reason. For a bucket the stack
//! does not make, it switches the bucket's EventBridge notifications on by
//! reading its notification configuration and writing it back with
//! EventBridge added (the write replaces the whole configuration).
//!
//! Two steps short of that: [`dry_run`] checks everything that can be
//! checked without AWS (the parameters, the settings they give, the
//! template, the bundle); a plan ([`StackRequest::plan`]) makes the change
//! set, prints it and deletes it (and the review stack a new stack's change
//! set makes), uploading nothing but a template too big to send inline.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{Capability, ChangeSetType, Parameter};
use serde_json::Value;
use thiserror::Error;

use emmaa_offline::progress::Progress;
use emmaa_runtime::functions::FUNCTIONS;
use emmaa_runtime::settings::{MAX_ENVIRONMENT_BYTES, Settings};

use crate::arch::Arch;
use crate::aws::{Account, AwsProblem, Call, ProblemKind, explain};
use crate::bundle::Bundle;
use crate::template::{
    EXISTING_LOGS_AND_QUEUE, Lint, check_template, environment_bytes, failed_events_queue,
    lint_with_cfn_lint, log_group_name, parameter_of, to_yaml,
};

/// Parameters `deploy stack` sets itself.
const SET_BY_DEPLOY: [&str; 4] = [
    "ArtifactBucket",
    "ArtifactKey",
    "Architecture",
    EXISTING_LOGS_AND_QUEUE,
];

/// The concurrency Lambda keeps unreserved in every account: reservations
/// may take an account's unreserved executions down to this and no lower.
pub const UNRESERVED_MINIMUM: i64 = 100;

/// The quota to raise for more concurrent executions (Service Quotas).
const CONCURRENCY_QUOTA: &str = "Service Quotas, AWS Lambda, Concurrent executions (L-B99A9384)";

/// The largest template CloudFormation takes inline (`TemplateBody`); a
/// bigger one is read from S3.
pub const TEMPLATE_BODY_LIMIT: usize = 51_200;

/// A stack as DescribeStacks answers it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StackState {
    pub status: String,
    pub reason: Option<String>,
    pub parameters: BTreeMap<String, String>,
}

/// One line of a change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceChange {
    /// `Add`, `Modify`, `Remove`, ...
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    /// `True`, `False` or `Conditional`, for `Modify`.
    pub replacement: Option<String>,
}

impl std::fmt::Display for ResourceChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<7} {} ({})",
            self.action, self.logical_id, self.resource_type
        )?;
        match self.replacement.as_deref() {
            Some("True") => write!(f, ", replaced"),
            Some("Conditional") => write!(f, ", maybe replaced"),
            _ => Ok(()),
        }
    }
}

/// A change set as DescribeChangeSet answers it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeSetState {
    /// `CREATE_PENDING`, `CREATE_IN_PROGRESS`, `CREATE_COMPLETE`, `FAILED`.
    pub status: String,
    pub reason: Option<String>,
    pub changes: Vec<ResourceChange>,
}

/// A resource that failed, from the stack's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedResource {
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

impl std::fmt::Display for FailedResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}) {}: {}",
            self.logical_id, self.resource_type, self.status, self.reason
        )
    }
}

/// What a bucket's notification configuration holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notifications {
    pub eventbridge: bool,
    /// Topic, queue and Lambda notifications: kept by the write-back.
    pub others: usize,
}

/// An account's Lambda concurrency (GetAccountSettings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountConcurrency {
    pub limit: i64,
    pub unreserved: i64,
}

/// Which of the resources a stack keeps when it is deleted (its functions'
/// log groups, the failed-events queue) exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept {
    /// The log groups found, by name.
    pub log_groups: Vec<String>,
    pub queue: bool,
}

/// A failed CloudFormation or S3 call, as one sentence.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(transparent)]
pub struct CloudError(#[from] pub AwsProblem);

impl CloudError {
    fn other(sentence: impl Into<String>) -> Self {
        CloudError(AwsProblem::new(ProblemKind::Other, sentence))
    }
}

/// The CloudFormation and S3 calls `deploy stack` makes.
#[async_trait]
pub trait StackControl: Send + Sync {
    /// None when the stack does not exist.
    async fn describe_stack(&self, stack: &str) -> Result<Option<StackState>, CloudError>;
    /// Makes the bucket unless it exists; answers whether it made it.
    async fn ensure_bucket(&self, bucket: &str) -> Result<bool, CloudError>;
    async fn bucket_exists(&self, bucket: &str) -> Result<bool, CloudError>;
    /// Puts the object unless a key holds it already; answers whether it put it.
    async fn put_if_absent(&self, bucket: &str, key: &str, body: &[u8]) -> Result<bool, CloudError>;
    /// The URL CloudFormation reads a template at.
    fn object_url(&self, bucket: &str, key: &str) -> String;
    async fn create_change_set(&self, request: &ChangeSetRequest) -> Result<String, CloudError>;
    async fn describe_change_set(&self, id: &str) -> Result<ChangeSetState, CloudError>;
    async fn execute_change_set(&self, id: &str) -> Result<(), CloudError>;
    async fn delete_change_set(&self, id: &str) -> Result<(), CloudError>;
    async fn delete_stack(&self, stack: &str) -> Result<(), CloudError>;
    /// The stack's resources that failed since `since` (seconds since the
    /// epoch), oldest first.
    async fn failures_since(&self, stack: &str, since: f64) -> Result<Vec<FailedResource>, CloudError>;
    async fn notifications(&self, bucket: &str) -> Result<Notifications, CloudError>;
    /// Reads the bucket's notification configuration and writes it back
    /// with EventBridge on.
    async fn enable_eventbridge(&self, bucket: &str) -> Result<Notifications, CloudError>;
    /// The account's Lambda concurrency: its limit and what is unreserved.
    async fn account_concurrency(&self) -> Result<AccountConcurrency, CloudError>;
    /// Which of `log_groups` and the queue `queue` exist.
    async fn kept(&self, log_groups: &[String], queue: &str) -> Result<Kept, CloudError>;
    /// Makes a log group with a retention, as the template would.
    async fn make_log_group(&self, name: &str, retention_days: i32) -> Result<(), CloudError>;
    /// Makes the failed-events queue, as the template would.
    async fn make_queue(&self, name: &str) -> Result<(), CloudError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSetRequest {
    pub stack: String,
    pub name: String,
    pub create: bool,
    pub template: TemplateSource,
    pub parameters: BTreeMap<String, String>,
}

/// Where CloudFormation reads the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    /// An object's URL (the template uploaded to the artifact bucket).
    Url(String),
    /// The template itself (compact JSON), at most [`TEMPLATE_BODY_LIMIT`] bytes.
    Body(String),
}

/// What `deploy stack` is asked to do.
#[derive(Debug, Clone)]
pub struct StackRequest {
    pub stack: String,
    pub artifact_bucket: String,
    /// Where in the artifact bucket (ends with `/`).
    pub artifact_prefix: String,
    /// `--parameter Name=Value`, as given.
    pub parameters: BTreeMap<String, String>,
    pub arch: Arch,
    /// `--plan`: make the change set, print it and delete it.
    pub plan: bool,
    pub poll: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Error)]
pub enum StackError {
    #[error("--parameter {0:?}: the template has no such parameter (it has: {1})")]
    UnknownParameter(String, String),
    #[error("--parameter {0}: deploy stack sets it itself ({1})")]
    SetByDeploy(String, &'static str),
    /// `flag` is `--parameter ` for a value given, else says whose it is.
    #[error("{flag}{name}={value:?}: {why}")]
    BadParameter {
        flag: &'static str,
        name: String,
        value: String,
        why: String,
    },
    #[error(
        "plan: the template ({bytes} bytes) is over CloudFormation's 51,200-byte inline limit and must \
         be read from S3, but the artifact bucket {bucket} does not exist: a plan makes no bucket \
         (`deploy stack` makes it)"
    )]
    PlanWithoutBucket { bucket: String, bytes: usize },
    #[error("the template does not check: {}", .0.join("; "))]
    Template(Vec<String>),
    #[error("cfn-lint finds fault with the template:\n{0}")]
    Lint(String),
    #[error(
        "stack {stack} is {status}{reason}: it cannot be updated; delete it first \
         (aws cloudformation delete-stack --stack-name {stack})"
    )]
    Unusable {
        stack: String,
        status: String,
        reason: String,
    },
    #[error("stack {stack} is {status}: another operation is running; wait for it to end")]
    Busy { stack: String, status: String },
    #[error("the change set for {stack} failed: {reason}")]
    ChangeSetFailed { stack: String, reason: String },
    #[error("{}", describe_failure(.stack, .status, .failures))]
    Failed {
        stack: String,
        status: String,
        failures: Vec<FailedResource>,
    },
    #[error(
        "FunctionConcurrency={per_function} reserves {wanted} concurrent executions ({per_function} for \
         each of the {functions} functions), but this account has {unreserved} of its {limit} unreserved\
         {held_text} and Lambda keeps {UNRESERVED_MINIMUM} unreserved: at most {fits} per function fits. \
         Pass --parameter FunctionConcurrency={fits} (0: no reservation), or ask AWS for more \
         ({CONCURRENCY_QUOTA})",
        held_text = if *held > 0 { format!(" (the stack holds {held} more now)") } else { String::new() }
    )]
    Concurrency {
        per_function: i64,
        functions: usize,
        wanted: i64,
        limit: i64,
        unreserved: i64,
        held: i64,
        fits: i64,
    },
    #[error(
        "the functions' settings come to {bytes} bytes, over Lambda's {limit} for a function's \
         environment (every EMMAA_* name and value); the largest is {largest} ({largest_bytes} bytes)"
    )]
    EnvironmentTooBig {
        bytes: usize,
        limit: usize,
        largest: String,
        largest_bytes: usize,
    },
    #[error("gave up after {seconds} s: {what}")]
    TimedOut { seconds: u64, what: String },
    #[error("building the bundle: {0}")]
    Bundle(String),
    #[error(
        "interrupted: the plan's change set was deleted, not executed{}",
        if *review_stack { ", and so was the review stack it made" } else { "" }
    )]
    Interrupted { review_stack: bool },
    #[error(transparent)]
    Cloud(#[from] CloudError),
}

fn describe_failure(stack: &str, status: &str, failures: &[FailedResource]) -> String {
    let mut text = format!("stack {stack} ended {status}");
    match failures.split_first() {
        None => text.push_str(" (its events name no failed resource)"),
        Some((first, rest)) => {
            text.push_str(&format!("; the first resource to fail: {first}"));
            for other in rest {
                text.push_str(&format!("\n  then: {other}"));
            }
        }
    }
    text
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackOutcome {
    /// The change set was executed; the stack's final status.
    Done {
        status: String,
        changes: Vec<ResourceChange>,
    },
    /// The template, code and parameters are those the stack has.
    Unchanged,
    /// `--plan`: the changes that would be made.
    Planned { changes: Vec<ResourceChange> },
}

/// The template's parameters and their defaults.
pub fn template_parameters(template: &Value) -> BTreeMap<String, Option<String>> {
    template["Parameters"]
        .as_object()
        .map(|parameters| {
            parameters
                .iter()
                .map(|(name, parameter)| {
                    let default = match &parameter["Default"] {
                        Value::Null => None,
                        Value::String(text) => Some(text.clone()),
                        other => Some(other.to_string()),
                    };
                    (name.clone(), default)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The parameters the stack gets, before the artifact's: the template's
/// defaults, overridden by what the stack has now (so a second run keeps
/// earlier choices), overridden by what is given.
pub fn merge_parameters(
    template: &Value,
    current: Option<&StackState>,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, StackError> {
    let known = template_parameters(template);
    for name in given.keys() {
        if let Some(set) = SET_BY_DEPLOY.iter().find(|set| *set == name) {
            let why = match *set {
                "Architecture" => "use --arch",
                _ => "the bundle's location",
            };
            return Err(StackError::SetByDeploy(name.clone(), why));
        }
        if !known.contains_key(name) {
            let names: Vec<&str> = known.keys().map(String::as_str).collect();
            return Err(StackError::UnknownParameter(name.clone(), names.join(", ")));
        }
    }
    let mut merged = BTreeMap::new();
    for (name, default) in &known {
        if SET_BY_DEPLOY.contains(&name.as_str()) {
            continue;
        }
        let value = given
            .get(name)
            .or_else(|| current.and_then(|stack| stack.parameters.get(name)))
            .or(default.as_ref());
        if let Some(value) = value {
            merged.insert(name.clone(), value.clone());
        }
    }
    Ok(merged)
}

/// Checks `given` against the template, without AWS: every name is a
/// parameter deploy does not set itself, every value is one the parameter
/// allows (`AllowedValues`, a number within `MinValue`/`MaxValue`), and the
/// settings the parameters give the functions (`EMMAA_*`) are settings the
/// host starts with.
pub fn check_parameters(template: &Value, given: &BTreeMap<String, String>) -> Result<(), StackError> {
    let merged = merge_parameters(template, None, given)?;
    for (name, value) in given {
        let parameter = &template["Parameters"][name];
        let bad = |why: String| StackError::BadParameter {
            flag: "--parameter ",
            name: name.clone(),
            value: value.clone(),
            why,
        };
        if let Some(allowed) = parameter["AllowedValues"].as_array() {
            let allowed: Vec<String> = allowed.iter().map(plain).collect();
            if !allowed.contains(value) {
                return Err(bad(format!("not one of {}", allowed.join(", "))));
            }
        }
        let length = value.chars().count();
        if let Some(min) = parameter["MinLength"]
            .as_u64()
            .filter(|min| (length as u64) < *min)
        {
            return Err(bad(format!("shorter than {min} characters")));
        }
        if let Some(max) = parameter["MaxLength"]
            .as_u64()
            .filter(|max| (length as u64) > *max)
        {
            return Err(bad(format!("longer than {max} characters")));
        }
        if parameter["Type"] == "Number" {
            let number: f64 = value.trim().parse().map_err(|_| bad("not a number".into()))?;
            let (min, max) = (parameter["MinValue"].as_f64(), parameter["MaxValue"].as_f64());
            if min.is_some_and(|min| number < min) || max.is_some_and(|max| number > max) {
                let bound = |bound: Option<f64>| bound.map_or("any".to_owned(), |bound| bound.to_string());
                return Err(bad(format!("outside {} to {}", bound(min), bound(max))));
            }
        }
    }
    check_settings(&merged, given)
}

/// The settings `parameters` give the functions, as the host reads them.
fn check_settings(
    parameters: &BTreeMap<String, String>,
    given: &BTreeMap<String, String>,
) -> Result<(), StackError> {
    let (bytes, largest) = environment_bytes(parameters);
    if bytes > MAX_ENVIRONMENT_BYTES {
        let (largest, largest_bytes) = largest.unwrap_or_default();
        return Err(StackError::EnvironmentTooBig {
            bytes,
            limit: MAX_ENVIRONMENT_BYTES,
            largest,
            largest_bytes,
        });
    }
    Settings::from_lookup(|variable| parameters.get(&parameter_of(variable)).cloned())
        .map(drop)
        .map_err(|err| {
            let name = parameter_of(err.variable);
            StackError::BadParameter {
                flag: if given.contains_key(&name) {
                    "--parameter "
                } else {
                    "the stack's parameter "
                },
                value: parameters.get(&name).cloned().unwrap_or_default(),
                name,
                why: format!("the functions would not start: {err}"),
            }
        })
}

/// A template's scalar as text (`30`, not `30.0`; strings unquoted).
fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The key a bundle goes to in the artifact bucket.
fn bundle_key(request: &StackRequest, bundle: &Bundle) -> String {
    format!("{}pipeline-{}.zip", request.artifact_prefix, bundle.sha256_hex())
}

/// The key a template goes to in the artifact bucket.
fn template_key(request: &StackRequest, yaml: &str) -> String {
    format!(
        "{}template-{}.yaml",
        request.artifact_prefix,
        emmaa_runtime::digest::sha256_hex(yaml.as_bytes())
    )
}

/// `deploy stack --dry-run`: everything that can be checked without AWS.
/// The parameters given (names, allowed values, the settings they make),
/// the template (the project's own checks, then cfn-lint when it is on the
/// PATH), and the bundle, built and verified. It makes no AWS call; what
/// the stack would change is `--plan`'s to say.
pub fn dry_run(
    request: &StackRequest,
    template: &Value,
    bundle_for: &mut dyn FnMut(&str) -> Result<Bundle, String>,
    say: &mut dyn FnMut(String),
) -> Result<(), StackError> {
    check_parameters(template, &request.parameters)?;
    let parameters = merge_parameters(template, None, &request.parameters)?;
    say(format!(
        "dry run: {} parameters given, the functions' settings check",
        request.parameters.len()
    ));
    check_template(template).map_err(StackError::Template)?;
    let yaml = to_yaml(template);
    say(format!(
        "dry run: the template checks ({} bytes, {} resources)",
        yaml.len(),
        template["Resources"]
            .as_object()
            .map_or(0, |resources| resources.len())
    ));
    match lint_with_cfn_lint(&yaml) {
        Lint::Passed => say("dry run: cfn-lint passes the template".into()),
        Lint::NotInstalled => {
            say("dry run: cfn-lint is not on the PATH: not linted (pip install cfn-lint)".into())
        }
        Lint::Failed(report) => return Err(StackError::Lint(report)),
    }
    let prefix = parameters.get("FunctionPrefix").cloned().unwrap_or_default();
    let bundle = bundle_for(&prefix).map_err(StackError::Bundle)?;
    let bucket = &request.artifact_bucket;
    say(format!(
        "dry run: would upload s3://{bucket}/{} ({} bytes) and s3://{bucket}/{}, then make and \
         execute a change set for stack {}",
        bundle_key(request, &bundle),
        bundle.zip.len(),
        template_key(request, &yaml),
        request.stack
    ));
    say("dry run: nothing was sent to AWS (--plan shows what the stack would change)".into());
    Ok(())
}

fn is_no_change(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or_default()
}

/// Stands up or updates the stack. `bundle_for` builds the one bundle for
/// the function prefix the stack will use; `say` gets a line per step.
pub async fn deploy_stack(
    control: &dyn StackControl,
    request: &StackRequest,
    template: &Value,
    bundle_for: &mut dyn FnMut(&str) -> Result<Bundle, String>,
    say: &mut dyn FnMut(String),
) -> Result<StackOutcome, StackError> {
    let stack = &request.stack;
    check_parameters(template, &request.parameters)?;
    let current = control.describe_stack(stack).await?;
    // DescribeStacks may still answer a just-deleted stack by its name.
    let fresh = current
        .as_ref()
        .is_none_or(|state| state.status == "DELETE_COMPLETE");
    let create = match &current {
        None => true,
        _ if fresh => true,
        Some(state) if state.status == "REVIEW_IN_PROGRESS" => true,
        Some(state) if state.status.ends_with("_IN_PROGRESS") => {
            return Err(StackError::Busy {
                stack: stack.clone(),
                status: state.status.clone(),
            });
        }
        Some(state)
            if matches!(
                state.status.as_str(),
                "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "DELETE_FAILED"
            ) =>
        {
            return Err(StackError::Unusable {
                stack: stack.clone(),
                status: state.status.clone(),
                reason: state
                    .reason
                    .as_ref()
                    .map(|reason| format!(" ({reason})"))
                    .unwrap_or_default(),
            });
        }
        Some(_) => false,
    };
    let kept = if create { None } else { current.as_ref() };
    let mut parameters = merge_parameters(template, kept, &request.parameters)?;
    check_settings(&parameters, &request.parameters)?;
    let prefix = parameters.get("FunctionPrefix").cloned().unwrap_or_default();
    check_concurrency(control, &parameters, kept, say).await?;
    let existing = existing_logs_and_queue(control, request, &parameters, kept, say).await?;
    parameters.insert(EXISTING_LOGS_AND_QUEUE.into(), existing.to_string());

    let bundle = bundle_for(&prefix).map_err(StackError::Bundle)?;
    let yaml = to_yaml(template);
    let bucket = &request.artifact_bucket;
    let bundle_key = bundle_key(request, &bundle);
    let template_key = template_key(request, &yaml);
    // A plan uploads only what CloudFormation must read from S3: a template
    // too big to send inline (content-addressed, so it changes nothing).
    let mut uploads = vec![(&template_key, yaml.as_bytes())];
    if !request.plan {
        uploads.insert(0, (&bundle_key, bundle.zip.as_slice()));
    }
    // Inline, the template goes as compact JSON (which CloudFormation reads
    // as well as YAML): about three quarters of the YAML's size.
    let json = serde_json::to_string(template).unwrap_or_default();
    let inline = request.plan && json.len() <= TEMPLATE_BODY_LIMIT;
    if inline {
        uploads.clear();
    }
    if request.plan && !uploads.is_empty() && !control.bucket_exists(bucket).await? {
        return Err(StackError::PlanWithoutBucket {
            bucket: bucket.clone(),
            bytes: yaml.len(),
        });
    }
    if !uploads.is_empty() && control.ensure_bucket(bucket).await? {
        say(format!("made the artifact bucket {bucket}"));
    }
    for (key, body) in uploads {
        let put = control.put_if_absent(bucket, key, body).await?;
        say(format!(
            "{}{} s3://{bucket}/{key} ({} bytes)",
            if request.plan {
                "plan: the template is over CloudFormation's 51,200-byte inline limit: "
            } else {
                ""
            },
            if put { "uploaded" } else { "already there:" },
            body.len()
        ));
    }
    if request.plan {
        say(format!(
            "plan: the bundle would go to s3://{bucket}/{bundle_key} ({} bytes); not uploaded",
            bundle.zip.len()
        ));
    }
    parameters.insert("ArtifactBucket".into(), bucket.clone());
    parameters.insert("ArtifactKey".into(), bundle_key.clone());
    parameters.insert("Architecture".into(), request.arch.lambda_name().into());

    let started = now_seconds();
    let name = format!("deploy-{}-{}", &bundle.sha256_hex()[..12], started as u64);
    let id = control
        .create_change_set(&ChangeSetRequest {
            stack: stack.clone(),
            name: name.clone(),
            create,
            template: if inline {
                TemplateSource::Body(json.clone())
            } else {
                TemplateSource::Url(control.object_url(bucket, &template_key))
            },
            parameters: parameters.clone(),
        })
        .await?;
    say(format!(
        "change set {name}: {} stack {stack}",
        if create { "creating" } else { "updating" }
    ));
    let bucket_is_ours = parameters.get("CreateBucket").map(String::as_str) == Some("true");
    let data_bucket = parameters.get("Bucket").cloned().unwrap_or_default();
    if request.plan {
        // Whatever happens, the change set goes, and with a new stack the
        // review stack CreateChangeSet made (which takes its change sets).
        let review_stack = create && fresh;
        // Ctrl-C while the plan waits stops the waiting, not the clean-up.
        let planned = tokio::select! {
            planned = plan_changes(
                control,
                request,
                &id,
                (!bucket_is_ours).then_some(&data_bucket),
                say,
            ) => planned,
            () = interrupted() => Err(StackError::Interrupted { review_stack }),
        };
        let cleaned = clean_up_plan(control, request, &id, review_stack).await;
        return match (planned, cleaned) {
            (Ok(outcome), Ok(())) => {
                say(format!(
                    "plan: the change set was deleted, not executed{}",
                    if review_stack {
                        ", and so was the review stack it made"
                    } else {
                        ""
                    }
                ));
                Ok(outcome)
            }
            (Err(err), _) | (Ok(_), Err(err)) => Err(err),
        };
    }
    let change_set = poll(
        request,
        "waiting for the change set",
        "the change set stayed pending",
        || async {
            let state = control.describe_change_set(&id).await?;
            let pending = matches!(state.status.as_str(), "CREATE_PENDING" | "CREATE_IN_PROGRESS");
            Ok((!pending).then_some(state))
        },
    )
    .await?;
    if change_set.status == "FAILED" {
        let reason = change_set.reason.unwrap_or_else(|| "AWS gave no reason".into());
        if is_no_change(&reason) {
            control.delete_change_set(&id).await?;
            say(format!(
                "no changes: stack {stack} already has this code, template and parameters"
            ));
            if !bucket_is_ours {
                eventbridge_on(control, &data_bucket, say).await?;
            }
            return Ok(StackOutcome::Unchanged);
        }
        return Err(StackError::ChangeSetFailed {
            stack: stack.clone(),
            reason,
        });
    }
    say(format!("{} changes:", change_set.changes.len()));
    for change in &change_set.changes {
        say(format!("  {change}"));
    }

    control.execute_change_set(&id).await?;
    say(format!("executing {name}"));
    let state = poll(
        request,
        "CloudFormation is changing the stack",
        "the stack stayed in progress",
        || async {
            let state = control.describe_stack(stack).await?;
            Ok(state.filter(|state| !state.status.ends_with("_IN_PROGRESS")))
        },
    )
    .await?;
    if !matches!(state.status.as_str(), "CREATE_COMPLETE" | "UPDATE_COMPLETE") {
        let failures = control.failures_since(stack, started - 1.0).await?;
        return Err(StackError::Failed {
            stack: stack.clone(),
            status: state.status,
            failures,
        });
    }
    say(format!("stack {stack}: {}", state.status));
    if !bucket_is_ours {
        eventbridge_on(control, &data_bucket, say).await?;
    }
    Ok(StackOutcome::Done {
        status: state.status,
        changes: change_set.changes,
    })
}

/// Reads the account's Lambda limits and refuses a reservation Lambda
/// would refuse halfway through the stack's change (every function's
/// `ReservedConcurrentExecutions` must leave [`UNRESERVED_MINIMUM`]
/// unreserved), saying what would fit. What the stack reserves now (an
/// update) counts as free. When the limits cannot be read, says so and
/// goes on: CloudFormation has the last word.
async fn check_concurrency(
    control: &dyn StackControl,
    parameters: &BTreeMap<String, String>,
    current: Option<&StackState>,
    say: &mut dyn FnMut(String),
) -> Result<(), StackError> {
    let per_function = |parameters: &BTreeMap<String, String>| {
        parameters
            .get("FunctionConcurrency")
            .and_then(|value| value.trim().parse::<i64>().ok())
            .unwrap_or(0)
    };
    let functions = FUNCTIONS.len();
    let count = functions as i64;
    let wanted = per_function(parameters) * count;
    let held = current.map_or(0, |stack| per_function(&stack.parameters) * count);
    if wanted == 0 {
        return Ok(());
    }
    let account = match control.account_concurrency().await {
        Ok(account) => account,
        Err(err) => {
            say(format!(
                "the account's Lambda limits are unknown ({err}): the reservation of {wanted} concurrent \
                 executions is not checked"
            ));
            return Ok(());
        }
    };
    let free = account.unreserved + held - UNRESERVED_MINIMUM;
    if wanted > free {
        return Err(StackError::Concurrency {
            per_function: per_function(parameters),
            functions,
            wanted,
            limit: account.limit,
            unreserved: account.unreserved,
            held,
            fits: (free / count).max(0),
        });
    }
    say(format!(
        "Lambda: this account allows {} concurrent executions, {} unreserved; the stack reserves {wanted}",
        account.limit, account.unreserved
    ));
    Ok(())
}

/// Whether the stack is to use log groups and a failed-events queue that
/// exist already: a stack deleted keeps them (DeletionPolicy `Retain`),
/// and a stack stood up again with the same function prefix would fail
/// making them. Looked up when the stack makes them anew (a new stack, or
/// a new function prefix); otherwise the stack's current choice stands.
/// When some exist and some do not, the missing ones are made here, as
/// the template would make them, so the stack can use all of them (a plan
/// says so and makes nothing).
async fn existing_logs_and_queue(
    control: &dyn StackControl,
    request: &StackRequest,
    parameters: &BTreeMap<String, String>,
    current: Option<&StackState>,
    say: &mut dyn FnMut(String),
) -> Result<bool, StackError> {
    let prefix = parameters.get("FunctionPrefix").cloned().unwrap_or_default();
    if let Some(current) = current
        && current.parameters.get("FunctionPrefix") == Some(&prefix)
    {
        return Ok(current
            .parameters
            .get(EXISTING_LOGS_AND_QUEUE)
            .map(String::as_str)
            == Some("true"));
    }
    let log_groups: Vec<String> = FUNCTIONS
        .iter()
        .map(|function| log_group_name(&prefix, function))
        .collect();
    let queue = failed_events_queue(&prefix);
    let kept = control.kept(&log_groups, &queue).await?;
    if kept.log_groups.is_empty() && !kept.queue {
        return Ok(false);
    }
    let missing: Vec<&String> = log_groups
        .iter()
        .filter(|name| !kept.log_groups.contains(name))
        .collect();
    say(format!(
        "found {} of the {} log groups{} kept from an earlier stack with function prefix {prefix:?}: the \
         stack uses them as they are ({EXISTING_LOGS_AND_QUEUE}=true)",
        kept.log_groups.len(),
        log_groups.len(),
        if kept.queue {
            format!(" and the failed-events queue {queue}")
        } else {
            String::new()
        }
    ));
    let retention: i32 = parameters
        .get("LogRetentionDays")
        .and_then(|days| days.parse().ok())
        .unwrap_or(30);
    let verb = if request.plan { "plan: would make" } else { "made" };
    for name in missing {
        if !request.plan {
            control.make_log_group(name, retention).await?;
        }
        say(format!("{verb} the missing log group {name} ({retention} days)"));
    }
    if !kept.queue {
        if !request.plan {
            control.make_queue(&queue).await?;
        }
        say(format!("{verb} the missing failed-events queue {queue}"));
    }
    Ok(true)
}

/// Ctrl-C (SIGINT), or never when the signal cannot be watched.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A plan's change set, waited for and printed, and what would happen to
/// `data_bucket`'s notifications (a bucket the stack does not make).
async fn plan_changes(
    control: &dyn StackControl,
    request: &StackRequest,
    id: &str,
    data_bucket: Option<&String>,
    say: &mut dyn FnMut(String),
) -> Result<StackOutcome, StackError> {
    let change_set = poll(
        request,
        "waiting for the change set",
        "the change set stayed pending",
        || async {
            let state = control.describe_change_set(id).await?;
            let pending = matches!(state.status.as_str(), "CREATE_PENDING" | "CREATE_IN_PROGRESS");
            Ok((!pending).then_some(state))
        },
    )
    .await?;
    if change_set.status == "FAILED" {
        let reason = change_set.reason.unwrap_or_else(|| "AWS gave no reason".into());
        if is_no_change(&reason) {
            say(format!(
                "plan: no changes: stack {} already has this code, template and parameters",
                request.stack
            ));
            return Ok(StackOutcome::Unchanged);
        }
        return Err(StackError::ChangeSetFailed {
            stack: request.stack.clone(),
            reason,
        });
    }
    say(format!("{} changes:", change_set.changes.len()));
    for change in &change_set.changes {
        say(format!("  {change}"));
    }
    if let Some(bucket) = data_bucket {
        let notifications = control.notifications(bucket).await?;
        if !notifications.eventbridge {
            say(format!(
                "plan: would switch EventBridge notifications on for bucket {bucket}, \
                 writing back its {} other notifications",
                notifications.others
            ));
        }
    }
    Ok(StackOutcome::Planned {
        changes: change_set.changes,
    })
}

/// Leaves the account as a plan found it: the change set deleted or, for a
/// new stack, the review stack (with its change sets), waited out.
async fn clean_up_plan(
    control: &dyn StackControl,
    request: &StackRequest,
    id: &str,
    review_stack: bool,
) -> Result<(), StackError> {
    if !review_stack {
        return Ok(control.delete_change_set(id).await?);
    }
    control.delete_stack(&request.stack).await?;
    poll(
        request,
        "deleting the review stack",
        "the review stack stayed in DELETE_IN_PROGRESS",
        || async {
            let state = control.describe_stack(&request.stack).await?;
            let gone = state.is_none_or(|state| state.status == "DELETE_COMPLETE");
            Ok(gone.then_some(()))
        },
    )
    .await
}

/// Switches EventBridge notifications on for a bucket the stack does not
/// make, saying what the whole-configuration write kept.
async fn eventbridge_on(
    control: &dyn StackControl,
    bucket: &str,
    say: &mut dyn FnMut(String),
) -> Result<(), StackError> {
    let before = control.notifications(bucket).await?;
    if before.eventbridge {
        say(format!("bucket {bucket}: EventBridge notifications already on"));
        return Ok(());
    }
    let after = control.enable_eventbridge(bucket).await?;
    say(format!(
        "bucket {bucket}: switched EventBridge notifications on (S3 replaces the whole \
         notification configuration: its {} other notifications were read and written back; \
         now {})",
        before.others, after.others
    ));
    Ok(())
}

/// Calls `check` every `request.poll` until it answers something, showing
/// `doing` on a terminal; gives up, saying `what` did not end, after
/// `request.timeout`.
async fn poll<T, F, Fut>(
    request: &StackRequest,
    doing: &str,
    what: &str,
    mut check: F,
) -> Result<T, StackError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, StackError>>,
{
    let started = Instant::now();
    let progress = Progress::start(doing);
    loop {
        progress.tick();
        if let Some(found) = check().await? {
            return Ok(found);
        }
        if started.elapsed() >= request.timeout {
            return Err(StackError::TimedOut {
                seconds: request.timeout.as_secs(),
                what: what.into(),
            });
        }
        tokio::time::sleep(request.poll).await;
    }
}

// ---- the AWS side -----------------------------------------------------------

/// CloudFormation and S3 through the AWS SDK.
pub struct AwsStack {
    cloudformation: aws_sdk_cloudformation::Client,
    s3: aws_sdk_s3::Client,
    lambda: aws_sdk_lambda::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    sqs: aws_sdk_sqs::Client,
    account: Account,
}

impl AwsStack {
    pub fn new(account: &Account) -> Self {
        AwsStack {
            cloudformation: aws_sdk_cloudformation::Client::new(&account.config),
            s3: aws_sdk_s3::Client::new(&account.config),
            lambda: aws_sdk_lambda::Client::new(&account.config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&account.config),
            sqs: aws_sdk_sqs::Client::new(&account.config),
            account: account.clone(),
        }
    }

    /// `err`, a failure of `action` on `resource`, as one sentence.
    fn error<E>(
        &self,
        action: &str,
        resource: &str,
        err: aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> CloudError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        CloudError(explain(&err, Call { action, resource }, &self.account))
    }
}

impl AwsStack {
    async fn notification_configuration(
        &self,
        bucket: &str,
    ) -> Result<aws_sdk_s3::operation::get_bucket_notification_configuration::GetBucketNotificationConfigurationOutput, CloudError>
    {
        self.s3
            .get_bucket_notification_configuration()
            .bucket(bucket)
            .send()
            .await
            .map_err(|err| self.error("s3:GetBucketNotification", &format!("bucket {bucket}"), err))
    }
}

#[async_trait]
impl StackControl for AwsStack {
    async fn describe_stack(&self, stack: &str) -> Result<Option<StackState>, CloudError> {
        let answer = self
            .cloudformation
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await;
        let output = match answer {
            Ok(output) => output,
            Err(err)
                if err.code() == Some("ValidationError")
                    && err.message().unwrap_or("").contains("does not exist") =>
            {
                return Ok(None);
            }
            Err(err) => {
                return Err(self.error("cloudformation:DescribeStacks", &format!("stack {stack}"), err));
            }
        };
        Ok(output.stacks().first().map(|found| StackState {
            status: found
                .stack_status()
                .map(|status| status.as_str().to_owned())
                .unwrap_or_default(),
            reason: found.stack_status_reason().map(str::to_owned),
            parameters: found
                .parameters()
                .iter()
                .filter_map(|parameter| {
                    Some((
                        parameter.parameter_key()?.to_owned(),
                        parameter.parameter_value()?.to_owned(),
                    ))
                })
                .collect(),
        }))
    }

    async fn bucket_exists(&self, bucket: &str) -> Result<bool, CloudError> {
        match self.s3.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(true),
            Err(err) if err.raw_response().map(|raw| raw.status().as_u16()) == Some(404) => Ok(false),
            Err(err) => Err(self.error("s3:ListBucket", &format!("bucket {bucket}"), err)),
        }
    }

    async fn ensure_bucket(&self, bucket: &str) -> Result<bool, CloudError> {
        if self.bucket_exists(bucket).await? {
            return Ok(false);
        }
        let mut create = self.s3.create_bucket().bucket(bucket);
        if self.account.region != "us-east-1" {
            create = create.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        self.account.region.as_str(),
                    ))
                    .build(),
            );
        }
        create
            .send()
            .await
            .map_err(|err| self.error("s3:CreateBucket", &format!("bucket {bucket}"), err))?;
        Ok(true)
    }

    async fn put_if_absent(&self, bucket: &str, key: &str, body: &[u8]) -> Result<bool, CloudError> {
        let answer = self
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .if_none_match("*")
            .body(body.to_vec().into())
            .send()
            .await;
        match answer {
            Ok(_) => Ok(true),
            Err(err) if err.raw_response().map(|raw| raw.status().as_u16()) == Some(412) => Ok(false),
            Err(err) => Err(self.error("s3:PutObject", &format!("s3://{bucket}/{key}"), err)),
        }
    }

    fn object_url(&self, bucket: &str, key: &str) -> String {
        format!("https://{bucket}.s3.{}.amazonaws.com/{key}", self.account.region)
    }

    async fn create_change_set(&self, request: &ChangeSetRequest) -> Result<String, CloudError> {
        let parameters = request
            .parameters
            .iter()
            .map(|(name, value)| {
                Parameter::builder()
                    .parameter_key(name)
                    .parameter_value(value)
                    .build()
            })
            .collect();
        let output = self
            .cloudformation
            .create_change_set()
            .stack_name(&request.stack)
            .change_set_name(&request.name)
            .change_set_type(if request.create {
                ChangeSetType::Create
            } else {
                ChangeSetType::Update
            })
            .set_template_url(match &request.template {
                TemplateSource::Url(url) => Some(url.clone()),
                TemplateSource::Body(_) => None,
            })
            .set_template_body(match &request.template {
                TemplateSource::Body(body) => Some(body.clone()),
                TemplateSource::Url(_) => None,
            })
            .set_parameters(Some(parameters))
            .capabilities(Capability::CapabilityIam)
            .send()
            .await
            .map_err(|err| {
                self.error(
                    "cloudformation:CreateChangeSet",
                    &format!("stack {}", request.stack),
                    err,
                )
            })?;
        output
            .id()
            .map(str::to_owned)
            .ok_or_else(|| CloudError::other("CreateChangeSet answered no id"))
    }

    async fn describe_change_set(&self, id: &str) -> Result<ChangeSetState, CloudError> {
        let mut state = ChangeSetState::default();
        let mut next = None;
        loop {
            let output = self
                .cloudformation
                .describe_change_set()
                .change_set_name(id)
                .set_next_token(next)
                .send()
                .await
                .map_err(|err| {
                    self.error(
                        "cloudformation:DescribeChangeSet",
                        &format!("change set {id}"),
                        err,
                    )
                })?;
            state.status = output
                .status()
                .map(|status| status.as_str().to_owned())
                .unwrap_or_default();
            state.reason = output.status_reason().map(str::to_owned);
            state.changes.extend(output.changes().iter().filter_map(|change| {
                let resource = change.resource_change()?;
                Some(ResourceChange {
                    action: resource.action()?.as_str().to_owned(),
                    logical_id: resource.logical_resource_id()?.to_owned(),
                    resource_type: resource.resource_type().unwrap_or("").to_owned(),
                    replacement: resource
                        .replacement()
                        .map(|replacement| replacement.as_str().to_owned()),
                })
            }));
            next = output.next_token().map(str::to_owned);
            if next.is_none() {
                return Ok(state);
            }
        }
    }

    async fn execute_change_set(&self, id: &str) -> Result<(), CloudError> {
        self.cloudformation
            .execute_change_set()
            .change_set_name(id)
            .send()
            .await
            .map_err(|err| {
                self.error(
                    "cloudformation:ExecuteChangeSet",
                    &format!("change set {id}"),
                    err,
                )
            })?;
        Ok(())
    }

    async fn delete_change_set(&self, id: &str) -> Result<(), CloudError> {
        self.cloudformation
            .delete_change_set()
            .change_set_name(id)
            .send()
            .await
            .map_err(|err| self.error("cloudformation:DeleteChangeSet", &format!("change set {id}"), err))?;
        Ok(())
    }

    async fn delete_stack(&self, stack: &str) -> Result<(), CloudError> {
        self.cloudformation
            .delete_stack()
            .stack_name(stack)
            .send()
            .await
            .map_err(|err| self.error("cloudformation:DeleteStack", &format!("stack {stack}"), err))?;
        Ok(())
    }

    async fn failures_since(&self, stack: &str, since: f64) -> Result<Vec<FailedResource>, CloudError> {
        let mut failures = Vec::new();
        let mut next = None;
        'pages: loop {
            let output = self
                .cloudformation
                .describe_stack_events()
                .stack_name(stack)
                .set_next_token(next)
                .send()
                .await
                .map_err(|err| {
                    self.error(
                        "cloudformation:DescribeStackEvents",
                        &format!("stack {stack}"),
                        err,
                    )
                })?;
            // Newest first.
            for event in output.stack_events() {
                let at = event.timestamp().map(|at| at.as_secs_f64()).unwrap_or_default();
                if at < since {
                    break 'pages;
                }
                let status = event
                    .resource_status()
                    .map(|status| status.as_str())
                    .unwrap_or("");
                let logical_id = event.logical_resource_id().unwrap_or("");
                if status.ends_with("_FAILED") && logical_id != stack {
                    failures.push(FailedResource {
                        logical_id: logical_id.to_owned(),
                        resource_type: event.resource_type().unwrap_or("").to_owned(),
                        status: status.to_owned(),
                        reason: event
                            .resource_status_reason()
                            .unwrap_or("AWS gave no reason")
                            .to_owned(),
                    });
                }
            }
            next = output.next_token().map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        failures.reverse();
        Ok(failures)
    }

    async fn notifications(&self, bucket: &str) -> Result<Notifications, CloudError> {
        let output = self.notification_configuration(bucket).await?;
        Ok(Notifications {
            eventbridge: output.event_bridge_configuration().is_some(),
            others: output.topic_configurations().len()
                + output.queue_configurations().len()
                + output.lambda_function_configurations().len(),
        })
    }

    async fn enable_eventbridge(&self, bucket: &str) -> Result<Notifications, CloudError> {
        let current = self.notification_configuration(bucket).await?;
        let configuration = aws_sdk_s3::types::NotificationConfiguration::builder()
            .set_topic_configurations(Some(current.topic_configurations().to_vec()))
            .set_queue_configurations(Some(current.queue_configurations().to_vec()))
            .set_lambda_function_configurations(Some(current.lambda_function_configurations().to_vec()))
            .event_bridge_configuration(aws_sdk_s3::types::EventBridgeConfiguration::builder().build())
            .build();
        self.s3
            .put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(configuration)
            .send()
            .await
            .map_err(|err| self.error("s3:PutBucketNotification", &format!("bucket {bucket}"), err))?;
        self.notifications(bucket).await
    }

    async fn account_concurrency(&self) -> Result<AccountConcurrency, CloudError> {
        let output = self
            .lambda
            .get_account_settings()
            .send()
            .await
            .map_err(|err| self.error("lambda:GetAccountSettings", "the account", err))?;
        let limit = output
            .account_limit()
            .ok_or_else(|| CloudError::other("GetAccountSettings answered no AccountLimit"))?;
        Ok(AccountConcurrency {
            limit: i64::from(limit.concurrent_executions()),
            unreserved: limit.unreserved_concurrent_executions().map_or(0, i64::from),
        })
    }

    async fn kept(&self, log_groups: &[String], queue: &str) -> Result<Kept, CloudError> {
        let mut kept = Kept::default();
        for name in log_groups {
            // By prefix, as DescribeLogGroups looks them up; the name is
            // then matched whole.
            let output = self
                .logs
                .describe_log_groups()
                .log_group_name_prefix(name)
                .limit(50)
                .send()
                .await
                .map_err(|err| self.error("logs:DescribeLogGroups", &format!("log group {name}"), err))?;
            if output
                .log_groups()
                .iter()
                .any(|group| group.log_group_name() == Some(name.as_str()))
            {
                kept.log_groups.push(name.clone());
            }
        }
        kept.queue = match self.sqs.get_queue_url().queue_name(queue).send().await {
            Ok(_) => true,
            Err(err)
                if err.code() == Some("AWS.SimpleQueueService.NonExistentQueue")
                    || err.code() == Some("QueueDoesNotExist") =>
            {
                false
            }
            Err(err) => return Err(self.error("sqs:GetQueueUrl", &format!("queue {queue}"), err)),
        };
        Ok(kept)
    }

    async fn make_log_group(&self, name: &str, retention_days: i32) -> Result<(), CloudError> {
        let resource = format!("log group {name}");
        self.logs
            .create_log_group()
            .log_group_name(name)
            .send()
            .await
            .map_err(|err| self.error("logs:CreateLogGroup", &resource, err))?;
        self.logs
            .put_retention_policy()
            .log_group_name(name)
            .retention_in_days(retention_days)
            .send()
            .await
            .map_err(|err| self.error("logs:PutRetentionPolicy", &resource, err))?;
        Ok(())
    }

    async fn make_queue(&self, name: &str) -> Result<(), CloudError> {
        use aws_sdk_sqs::types::QueueAttributeName;
        self.sqs
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
            .attributes(QueueAttributeName::SqsManagedSseEnabled, "true")
            .send()
            .await
            .map_err(|err| self.error("sqs:CreateQueue", &format!("queue {name}"), err))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;

    /// CloudFormation and S3 as scripted answers; every call is logged.
    struct Fake {
        stack: Mutex<Option<StackState>>,
        change_set: ChangeSetState,
        /// The status the stack ends in once executed.
        ends: String,
        failures: Vec<FailedResource>,
        eventbridge: Mutex<bool>,
        bucket_exists: Mutex<bool>,
        /// GetAccountSettings' answer; `None`: the call fails.
        account: Option<AccountConcurrency>,
        kept: Kept,
        calls: Mutex<Vec<String>>,
    }

    impl Fake {
        fn new(stack: Option<StackState>, change_set: ChangeSetState, ends: &str) -> Fake {
            Fake {
                stack: Mutex::new(stack),
                change_set,
                ends: ends.into(),
                failures: Vec::new(),
                eventbridge: Mutex::new(false),
                bucket_exists: Mutex::new(true),
                account: Some(AccountConcurrency {
                    limit: 1000,
                    unreserved: 1000,
                }),
                kept: Kept::default(),
                calls: Mutex::new(Vec::new()),
            }
        }

        fn log(&self, call: String) {
            self.calls.lock().unwrap().push(call);
        }

        /// The calls that change or upload something (the look-ups left
        /// out: the account's limits, what an earlier stack kept).
        fn calls(&self) -> Vec<String> {
            self.all_calls()
                .into_iter()
                .filter(|call| call != "account_concurrency" && !call.starts_with("kept "))
                .collect()
        }

        fn all_calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl StackControl for Fake {
        async fn describe_stack(&self, _: &str) -> Result<Option<StackState>, CloudError> {
            Ok(self.stack.lock().unwrap().clone())
        }
        async fn ensure_bucket(&self, bucket: &str) -> Result<bool, CloudError> {
            self.log(format!("ensure_bucket {bucket}"));
            Ok(false)
        }
        async fn bucket_exists(&self, _: &str) -> Result<bool, CloudError> {
            Ok(*self.bucket_exists.lock().unwrap())
        }
        async fn put_if_absent(&self, _: &str, key: &str, _: &[u8]) -> Result<bool, CloudError> {
            self.log(format!("put {key}"));
            Ok(true)
        }
        fn object_url(&self, bucket: &str, key: &str) -> String {
            format!("https://{bucket}/{key}")
        }
        async fn create_change_set(&self, request: &ChangeSetRequest) -> Result<String, CloudError> {
            self.log(format!(
                "create_change_set create={} prefix={} key={} existing={} template={}",
                request.create,
                request.parameters["FunctionPrefix"],
                request.parameters["ArtifactKey"],
                request.parameters[EXISTING_LOGS_AND_QUEUE],
                match request.template {
                    TemplateSource::Body(_) => "body",
                    TemplateSource::Url(_) => "url",
                }
            ));
            Ok("change-set-1".into())
        }
        async fn describe_change_set(&self, _: &str) -> Result<ChangeSetState, CloudError> {
            Ok(self.change_set.clone())
        }
        async fn execute_change_set(&self, _: &str) -> Result<(), CloudError> {
            self.log("execute".into());
            *self.stack.lock().unwrap() = Some(StackState {
                status: self.ends.clone(),
                ..StackState::default()
            });
            Ok(())
        }
        async fn delete_change_set(&self, _: &str) -> Result<(), CloudError> {
            self.log("delete_change_set".into());
            Ok(())
        }
        async fn delete_stack(&self, stack: &str) -> Result<(), CloudError> {
            self.log(format!("delete_stack {stack}"));
            *self.stack.lock().unwrap() = None;
            Ok(())
        }
        async fn failures_since(&self, _: &str, _: f64) -> Result<Vec<FailedResource>, CloudError> {
            Ok(self.failures.clone())
        }
        async fn notifications(&self, _: &str) -> Result<Notifications, CloudError> {
            Ok(Notifications {
                eventbridge: *self.eventbridge.lock().unwrap(),
                others: 2,
            })
        }
        async fn enable_eventbridge(&self, bucket: &str) -> Result<Notifications, CloudError> {
            self.log(format!("enable_eventbridge {bucket}"));
            *self.eventbridge.lock().unwrap() = true;
            self.notifications(bucket).await
        }
        async fn account_concurrency(&self) -> Result<AccountConcurrency, CloudError> {
            self.log("account_concurrency".into());
            self.account
                .ok_or_else(|| CloudError::other("lambda:GetAccountSettings: UnknownOperation"))
        }
        async fn kept(&self, log_groups: &[String], queue: &str) -> Result<Kept, CloudError> {
            self.log(format!("kept {} log groups, {queue}", log_groups.len()));
            Ok(self.kept.clone())
        }
        async fn make_log_group(&self, name: &str, retention_days: i32) -> Result<(), CloudError> {
            self.log(format!("make_log_group {name} {retention_days}"));
            Ok(())
        }
        async fn make_queue(&self, name: &str) -> Result<(), CloudError> {
            self.log(format!("make_queue {name}"));
            Ok(())
        }
    }

    fn template() -> Value {
        json!({"Parameters": {
            "FunctionPrefix": {"Type": "String", "Default": "emmaa-"},
            "Bucket": {"Type": "String", "Default": "emmaa"},
            "CreateBucket": {"Type": "String", "Default": "false"},
            "MemorySize": {"Type": "Number", "Default": 256},
            "FunctionConcurrency": {"Type": "Number", "Default": 10},
            "ExistingLogsAndQueue": {"Type": "String", "Default": "false"},
            "ArtifactBucket": {"Type": "String"},
            "ArtifactKey": {"Type": "String"},
            "Architecture": {"Type": "String", "Default": "x86_64"},
        }})
    }

    fn request(parameters: &[(&str, &str)], plan: bool) -> StackRequest {
        StackRequest {
            stack: "emmaa-pipeline".into(),
            artifact_bucket: "artifacts".into(),
            artifact_prefix: "deploy/".into(),
            parameters: parameters
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            arch: Arch::X86_64,
            plan,
            poll: Duration::from_millis(1),
            timeout: Duration::from_secs(5),
        }
    }

    fn adds() -> ChangeSetState {
        ChangeSetState {
            status: "CREATE_COMPLETE".into(),
            reason: None,
            changes: vec![ResourceChange {
                action: "Add".into(),
                logical_id: "UpdatePipelineFunction".into(),
                resource_type: "AWS::Lambda::Function".into(),
                replacement: None,
            }],
        }
    }

    fn existing(status: &str, prefix: &str) -> Option<StackState> {
        Some(StackState {
            status: status.into(),
            reason: None,
            parameters: [("FunctionPrefix".to_string(), prefix.to_string())].into(),
        })
    }

    /// Runs `deploy_stack`: its result, the prefixes the bundle was asked
    /// for, and what it said.
    async fn run(
        fake: &Fake,
        request: &StackRequest,
    ) -> (Result<StackOutcome, StackError>, Vec<String>, Vec<String>) {
        let mut prefixes = Vec::new();
        let mut lines = Vec::new();
        let result = deploy_stack(
            fake,
            request,
            &template(),
            &mut |prefix| {
                prefixes.push(prefix.to_owned());
                Ok(Bundle {
                    path: "pipeline.zip".into(),
                    functions: BTreeMap::new(),
                    arch: Arch::X86_64,
                    zip: b"zip".to_vec(),
                })
            },
            &mut |line| lines.push(line),
        )
        .await;
        (result, prefixes, lines)
    }

    #[test]
    fn parameters_given_beat_the_stacks_which_beat_the_defaults() {
        let current = existing("UPDATE_COMPLETE", "emmaa-next-");
        let given = [("MemorySize".to_string(), "512".to_string())].into();
        let merged = merge_parameters(&template(), current.as_ref(), &given).unwrap();
        assert_eq!(merged["FunctionPrefix"], "emmaa-next-");
        assert_eq!(merged["MemorySize"], "512");
        assert_eq!(merged["Bucket"], "emmaa");
        assert!(!merged.contains_key("ArtifactKey"), "deploy sets it");
    }

    #[test]
    fn an_unknown_or_reserved_parameter_is_named() {
        let given = [("MemorySise".to_string(), "512".to_string())].into();
        let err = merge_parameters(&template(), None, &given)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--parameter \"MemorySise\": the template has no such parameter"),
            "{err}"
        );
        let given = [("ArtifactKey".to_string(), "x".to_string())].into();
        let err = merge_parameters(&template(), None, &given)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--parameter ArtifactKey: deploy stack sets it itself"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_new_stack_is_created_and_eventbridge_switched_on_after_it() {
        let fake = Fake::new(None, adds(), "CREATE_COMPLETE");
        let (result, prefixes, lines) = run(&fake, &request(&[], false)).await;
        assert!(matches!(result.unwrap(), StackOutcome::Done { status, .. } if status == "CREATE_COMPLETE"));
        assert_eq!(prefixes, ["emmaa-"]);
        let calls = fake.calls();
        assert!(calls[1].starts_with("put deploy/pipeline-"), "{calls:?}");
        assert!(calls[3].starts_with("create_change_set create=true prefix=emmaa- key=deploy/pipeline-"));
        assert_eq!(
            calls[4..],
            ["execute".to_string(), "enable_eventbridge emmaa".to_string()]
        );
        assert!(
            lines
                .iter()
                .any(|line| line == "  Add     UpdatePipelineFunction (AWS::Lambda::Function)")
        );
        assert!(
            lines
                .iter()
                .any(|line| line.contains("its 2 other notifications were read and written back"))
        );
    }

    #[tokio::test]
    async fn an_update_keeps_the_stacks_prefix_for_the_bundle() {
        let fake = Fake::new(
            existing("UPDATE_COMPLETE", "emmaa-next-"),
            adds(),
            "UPDATE_COMPLETE",
        );
        let (result, prefixes, _) = run(&fake, &request(&[], false)).await;
        result.unwrap();
        assert_eq!(prefixes, ["emmaa-next-"]);
        assert!(fake.calls()[3].starts_with("create_change_set create=false prefix=emmaa-next-"));
    }

    #[tokio::test]
    async fn a_failed_stack_names_the_first_resource_to_fail_and_awss_reason() {
        let mut fake = Fake::new(
            existing("UPDATE_COMPLETE", "emmaa-"),
            adds(),
            "UPDATE_ROLLBACK_COMPLETE",
        );
        fake.failures = vec![
            FailedResource {
                logical_id: "ModelUpdatesFunction".into(),
                resource_type: "AWS::Lambda::Function".into(),
                status: "UPDATE_FAILED".into(),
                reason: "Error occurred while GetObject. S3 Error Code: NoSuchKey".into(),
            },
            FailedResource {
                logical_id: "TestStatsFunction".into(),
                resource_type: "AWS::Lambda::Function".into(),
                status: "UPDATE_FAILED".into(),
                reason: "Resource update cancelled".into(),
            },
        ];
        let (result, _, _) = run(&fake, &request(&[], false)).await;
        let err = result.unwrap_err().to_string();
        assert!(
            err.starts_with(
                "stack emmaa-pipeline ended UPDATE_ROLLBACK_COMPLETE; the first resource to fail: \
                 ModelUpdatesFunction (AWS::Lambda::Function) UPDATE_FAILED: Error occurred while GetObject"
            ),
            "{err}"
        );
        assert!(err.contains("\n  then: TestStatsFunction"), "{err}");
        assert!(
            !fake
                .calls()
                .iter()
                .any(|call| call.starts_with("enable_eventbridge"))
        );
    }

    #[tokio::test]
    async fn no_changes_executes_nothing() {
        let unchanged = ChangeSetState {
            status: "FAILED".into(),
            reason: Some("The submitted information didn't contain changes. Submit different information to create a change set.".into()),
            changes: Vec::new(),
        };
        let fake = Fake::new(
            existing("UPDATE_COMPLETE", "emmaa-"),
            unchanged,
            "UPDATE_COMPLETE",
        );
        *fake.eventbridge.lock().unwrap() = true;
        let (result, _, lines) = run(&fake, &request(&[], false)).await;
        assert_eq!(result.unwrap(), StackOutcome::Unchanged);
        assert!(!fake.calls().contains(&"execute".to_string()));
        assert!(fake.calls().contains(&"delete_change_set".to_string()));
        assert!(lines.iter().any(|line| line.starts_with("no changes")));
    }

    #[tokio::test]
    async fn a_failed_change_set_says_awss_reason() {
        let failed = ChangeSetState {
            status: "FAILED".into(),
            reason: Some("Parameter 'MemorySize' must be a number.".into()),
            changes: Vec::new(),
        };
        let fake = Fake::new(None, failed, "CREATE_COMPLETE");
        let (result, _, _) = run(&fake, &request(&[], false)).await;
        let err = result.unwrap_err().to_string();
        assert_eq!(
            err,
            "the change set for emmaa-pipeline failed: Parameter 'MemorySize' must be a number."
        );
    }

    #[tokio::test]
    async fn a_plan_prints_the_changes_and_leaves_stack_and_buckets_alone() {
        let fake = Fake::new(None, adds(), "CREATE_COMPLETE");
        let (result, _, lines) = run(&fake, &request(&[], true)).await;
        assert!(matches!(result.unwrap(), StackOutcome::Planned { changes } if changes.len() == 1));
        let calls = fake.calls();
        assert!(
            !calls
                .iter()
                .any(|call| call.starts_with("put") || call.starts_with("ensure_bucket")),
            "a plan uploads nothing (the template goes inline): {calls:?}"
        );
        assert!(
            calls.iter().any(|call| call.contains("template=body")),
            "{calls:?}"
        );
        assert!(!calls.contains(&"execute".to_string()), "{calls:?}");
        assert!(
            calls.contains(&"delete_stack emmaa-pipeline".to_string()),
            "the review stack goes, and its change set with it: {calls:?}"
        );
        assert!(!calls.iter().any(|call| call.starts_with("enable_eventbridge")));
        assert!(
            lines
                .iter()
                .any(|line| line.contains("would switch EventBridge notifications on for bucket emmaa"))
        );
    }

    #[tokio::test]
    async fn a_plan_uploads_only_a_template_too_big_to_send_inline() {
        let fake = Fake::new(None, adds(), "CREATE_COMPLETE");
        let mut big = template();
        big["Description"] = json!("x".repeat(TEMPLATE_BODY_LIMIT));
        let mut lines = Vec::new();
        let result = deploy_stack(
            &fake,
            &request(&[], true),
            &big,
            &mut |_| {
                Ok(Bundle {
                    path: "pipeline.zip".into(),
                    functions: BTreeMap::new(),
                    arch: Arch::X86_64,
                    zip: b"zip".to_vec(),
                })
            },
            &mut |line| lines.push(line),
        )
        .await;
        assert!(matches!(result.unwrap(), StackOutcome::Planned { .. }));
        let calls = fake.calls();
        let puts: Vec<&String> = calls.iter().filter(|call| call.starts_with("put")).collect();
        assert_eq!(puts.len(), 1, "the template only: {calls:?}");
        assert!(puts[0].starts_with("put deploy/template-"), "{calls:?}");
        assert!(
            calls.iter().any(|call| call.contains("template=url")),
            "{calls:?}"
        );
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("plan: the template is over CloudFormation's 51,200-byte inline limit: uploaded s3://artifacts/deploy/template-")),
            "{lines:?}"
        );
    }

    #[tokio::test]
    async fn a_plan_cleans_up_after_a_failed_change_set_too() {
        let failed = ChangeSetState {
            status: "FAILED".into(),
            reason: Some("Template error: unresolved resource dependencies".into()),
            changes: Vec::new(),
        };
        let fresh = Fake::new(None, failed.clone(), "CREATE_COMPLETE");
        let (result, _, _) = run(&fresh, &request(&[], true)).await;
        assert!(matches!(result, Err(StackError::ChangeSetFailed { .. })));
        assert!(
            fresh.calls().contains(&"delete_stack emmaa-pipeline".to_string()),
            "{:?}",
            fresh.calls()
        );
        let existing = Fake::new(existing("UPDATE_COMPLETE", "emmaa-"), failed, "UPDATE_COMPLETE");
        let (result, _, _) = run(&existing, &request(&[], true)).await;
        assert!(result.is_err());
        let calls = existing.calls();
        assert!(calls.contains(&"delete_change_set".to_string()), "{calls:?}");
        assert!(
            !calls.iter().any(|call| call.starts_with("delete_stack")),
            "{calls:?}"
        );
    }

    #[tokio::test]
    async fn a_plan_makes_no_bucket() {
        let fake = Fake::new(None, adds(), "CREATE_COMPLETE");
        *fake.bucket_exists.lock().unwrap() = false;
        let mut big = template();
        big["Description"] = json!("x".repeat(TEMPLATE_BODY_LIMIT));
        let result = deploy_stack(
            &fake,
            &request(&[], true),
            &big,
            &mut |_| {
                Ok(Bundle {
                    path: "pipeline.zip".into(),
                    functions: BTreeMap::new(),
                    arch: Arch::X86_64,
                    zip: b"zip".to_vec(),
                })
            },
            &mut |_| {},
        )
        .await;
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("the artifact bucket artifacts does not exist: a plan makes no bucket"),
            "{err}"
        );
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    }

    #[test]
    fn a_bad_setting_is_refused_before_aws_naming_the_parameter() {
        let mut template = template();
        template["Parameters"]["Bucket"] = json!({"Type": "String", "Default": "emmaa"});
        let given = [("Bucket".to_string(), "Not A Bucket".to_string())].into();
        let err = check_parameters(&template, &given).unwrap_err().to_string();
        assert!(
            err.starts_with("--parameter Bucket=\"Not A Bucket\": the functions would not start: ")
                && err.contains("EMMAA_BUCKET"),
            "{err}"
        );
        let given = [("MemorySize".to_string(), "lots".to_string())].into();
        assert_eq!(
            check_parameters(&template, &given).unwrap_err().to_string(),
            "--parameter MemorySize=\"lots\": not a number"
        );
    }

    #[tokio::test]
    async fn a_stack_whose_creation_rolled_back_must_be_deleted_first() {
        let fake = Fake::new(existing("ROLLBACK_COMPLETE", "emmaa-"), adds(), "CREATE_COMPLETE");
        let (result, prefixes, _) = run(&fake, &request(&[], false)).await;
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("is ROLLBACK_COMPLETE: it cannot be updated; delete it first"),
            "{err}"
        );
        assert!(
            prefixes.is_empty(),
            "nothing is built for a stack that cannot take it"
        );
    }

    #[tokio::test]
    async fn a_bucket_the_stack_makes_is_not_written_to() {
        let fake = Fake::new(None, adds(), "CREATE_COMPLETE");
        let (result, _, _) = run(&fake, &request(&[("CreateBucket", "true")], false)).await;
        result.unwrap();
        assert!(
            !fake
                .calls()
                .iter()
                .any(|call| call.starts_with("enable_eventbridge"))
        );
    }

    /// A new account's 10 concurrent executions take no reservation: the
    /// run stops before it builds or changes anything, saying what fits.
    #[tokio::test]
    async fn a_reservation_the_account_cannot_hold_is_refused_before_cloudformation() {
        let mut fake = Fake::new(None, adds(), "CREATE_COMPLETE");
        fake.account = Some(AccountConcurrency {
            limit: 10,
            unreserved: 10,
        });
        let (result, prefixes, _) = run(&fake, &request(&[], false)).await;
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                StackError::Concurrency {
                    wanted: 110,
                    fits: 0,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("FunctionConcurrency=10 reserves 110"), "{text}");
        assert!(text.contains("10 of its 10 unreserved"), "{text}");
        assert!(text.contains("--parameter FunctionConcurrency=0"), "{text}");
        assert!(prefixes.is_empty(), "no bundle was built");
        assert_eq!(fake.all_calls(), ["account_concurrency"]);

        // An account of 1,000 with 350 unreserved: 22 a function fits.
        fake.account = Some(AccountConcurrency {
            limit: 1000,
            unreserved: 350,
        });
        let (result, _, _) = run(&fake, &request(&[("FunctionConcurrency", "23")], false)).await;
        assert!(
            matches!(result, Err(StackError::Concurrency { fits: 22, .. })),
            "{result:?}"
        );
        let (result, _, lines) = run(&fake, &request(&[("FunctionConcurrency", "22")], false)).await;
        assert!(result.is_ok(), "{result:?}");
        assert!(
            lines.iter().any(|line| line.contains("the stack reserves 242")),
            "{lines:?}"
        );
    }

    /// An update counts what the stack reserves now as free; a run that
    /// cannot read the limits says so and goes on; no reservation asks
    /// nothing.
    #[tokio::test]
    async fn an_update_counts_its_own_reservation_and_unknown_limits_do_not_stop_it() {
        // A stack reserving 10 a function, in an account with 100 left.
        let stack = || {
            let mut current = existing("UPDATE_COMPLETE", "emmaa-");
            if let Some(stack) = current.as_mut() {
                stack.parameters.insert("FunctionConcurrency".into(), "10".into());
            }
            let mut fake = Fake::new(current, adds(), "UPDATE_COMPLETE");
            fake.account = Some(AccountConcurrency {
                limit: 1000,
                unreserved: 100,
            });
            fake
        };
        let (result, _, _) = run(&stack(), &request(&[], false)).await;
        assert!(result.is_ok(), "the stack's own 110 are free to it: {result:?}");
        let mut fake = stack();
        let (result, _, _) = run(&fake, &request(&[("FunctionConcurrency", "11")], false)).await;
        let text = result.unwrap_err().to_string();
        assert!(text.contains("(the stack holds 110 more now)"), "{text}");
        assert!(text.contains("at most 10 per function fits"), "{text}");

        fake.account = None;
        let (result, _, lines) = run(&fake, &request(&[("FunctionConcurrency", "50")], false)).await;
        assert!(result.is_ok(), "{result:?}");
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("the account's Lambda limits are unknown")
                    && line.contains("the reservation of 550 concurrent executions is not checked")),
            "{lines:?}"
        );
        let before = fake.all_calls().len();
        let (result, _, _) = run(&fake, &request(&[("FunctionConcurrency", "0")], false)).await;
        assert!(result.is_ok(), "{result:?}");
        assert!(!fake.all_calls()[before..].contains(&"account_concurrency".to_string()));
    }

    /// A stack stood up again where an earlier one was deleted finds the
    /// log groups and the queue it kept, makes what is missing, and uses
    /// them; with nothing kept the stack makes its own; an update with the
    /// same prefix keeps the stack's choice without looking.
    #[tokio::test]
    async fn a_new_stack_uses_the_logs_and_queue_an_earlier_one_kept() {
        let fake = Fake::new(None, adds(), "CREATE_COMPLETE");
        run(&fake, &request(&[], false)).await.0.unwrap();
        let calls = fake.all_calls();
        assert!(
            calls.contains(&"kept 11 log groups, emmaa-failed-events".to_string()),
            "{calls:?}"
        );
        assert!(
            calls.iter().any(|call| call.contains("existing=false")),
            "{calls:?}"
        );

        let mut fake = Fake::new(None, adds(), "CREATE_COMPLETE");
        fake.kept = Kept {
            log_groups: FUNCTIONS
                .iter()
                .skip(1)
                .map(|function| log_group_name("emmaa-", function))
                .collect(),
            queue: false,
        };
        let (result, _, lines) = run(&fake, &request(&[], false)).await;
        result.unwrap();
        let calls = fake.calls();
        assert!(
            calls.contains(&"make_log_group /aws/lambda/emmaa-update-pipeline 30".to_string()),
            "{calls:?}"
        );
        assert!(
            calls.contains(&"make_queue emmaa-failed-events".to_string()),
            "{calls:?}"
        );
        assert_eq!(
            calls.iter().filter(|call| call.starts_with("make_")).count(),
            2,
            "{calls:?}"
        );
        assert!(
            calls.iter().any(|call| call.contains("existing=true")),
            "{calls:?}"
        );
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("found 10 of the 11 log groups kept")),
            "{lines:?}"
        );
        // A plan makes nothing, and says what it would make.
        let before = fake.calls().len();
        let (_, _, lines) = run(&fake, &request(&[], true)).await;
        assert!(
            !fake.calls()[before..]
                .iter()
                .any(|call| call.starts_with("make_"))
        );
        assert!(
            lines
                .iter()
                .any(|line| line == "plan: would make the missing failed-events queue emmaa-failed-events"),
            "{lines:?}"
        );

        let mut current = existing("UPDATE_COMPLETE", "emmaa-");
        if let Some(stack) = current.as_mut() {
            stack
                .parameters
                .insert(EXISTING_LOGS_AND_QUEUE.into(), "true".into());
        }
        let fake = Fake::new(current, adds(), "UPDATE_COMPLETE");
        run(&fake, &request(&[], false)).await.0.unwrap();
        let calls = fake.all_calls();
        assert!(!calls.iter().any(|call| call.starts_with("kept")), "{calls:?}");
        assert!(
            calls.iter().any(|call| call.contains("existing=true")),
            "{calls:?}"
        );
    }

    /// Lambda's 4 KB for a function's settings together, checked before
    /// anything is sent, naming the largest.
    #[test]
    fn settings_over_lambdas_four_kilobytes_are_refused_by_their_largest() {
        let large = "m".repeat(3_000) + "," + &"n".repeat(1_500);
        let given = [("LargeModels".to_string(), large)].into();
        let parameters = merge_parameters(&crate::template::template(), None, &given).unwrap();
        let err = check_settings(&parameters, &given).unwrap_err();
        assert!(
            matches!(
                err,
                StackError::EnvironmentTooBig {
                    largest_bytes: 4_501,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("over Lambda's 4096"), "{text}");
        assert!(text.contains("the largest is LargeModels (4501 bytes)"), "{text}");
    }
}
