//! The pipeline as code: a CloudFormation template made from the reach
//! table (`emmaa_runtime::functions::FUNCTIONS`) and the settings table
//! (`emmaa_runtime::settings::VARIABLES`), so the roles, triggers and settings
//! cannot drift from what the host enforces.
//!
//! It holds, per function: the function (`provided.al2023`, handler
//! `bootstrap`, the one bundle of `deploy bundle --all` from an artifact
//! bucket), a role allowed exactly its reach, a log group with a retention;
//! the two daily schedules and the three S3 triggers as EventBridge rules
//! (S3 → EventBridge needs no custom resource, and works for a bucket the
//! stack makes as for an existing one); asynchronous-invocation settings
//! (retries, an on-failure queue) for the functions invoked with `Event`;
//! and every `EMMAA_*` setting as a parameter.

use serde_json::{Map, Value, json};

use emmaa_runtime::functions::{FUNCTIONS, PipelineFunction, Trigger};
use emmaa_runtime::settings::{self, VARIABLES, Variable};

/// `update_pipeline` → `UpdatePipeline`: a logical id.
fn logical_id(snake: &str) -> String {
    snake
        .split(['_', '-'])
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `EMMAA_JOB_QUEUE` → `JobQueue`: the parameter of a setting.
pub fn parameter_of(variable: &str) -> String {
    logical_id(&variable.trim_start_matches("EMMAA_").to_ascii_lowercase())
}

fn sub(text: &str) -> Value {
    json!({ "Fn::Sub": text })
}

fn reference(name: &str) -> Value {
    json!({ "Ref": name })
}

/// The function's name, with the prefix parameter.
fn function_name(function: &PipelineFunction) -> Value {
    sub(&format!("${{FunctionPrefix}}{}", function.function))
}

fn function_arn(suffix: &str) -> Value {
    sub(&format!(
        "arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:${{FunctionPrefix}}{suffix}"
    ))
}

fn bucket_arn(path: &str) -> Value {
    sub(&format!("arn:${{AWS::Partition}}:s3:::${{Bucket}}{path}"))
}

/// The Batch parameters a submission names: queues and job definitions.
const BATCH_PARAMETERS: [&str; 4] = ["JobQueue", "LargeJobQueue", "JobDefinition", "LargeJobDefinition"];

/// What `SubmitJob` may name for the Batch parameter `parameter`, given as
/// a name or an ARN (as the settings accept either): an ARN as it is; a
/// queue's name as its ARN; a job definition's `name:revision` as its ARN,
/// and a bare name as any revision of exactly that name (`name:*`, never
/// `name*`, which would grant `name_other` too).
fn batch_resource(parameter: &str) -> Value {
    let kind = if parameter.ends_with("Queue") {
        "job-queue"
    } else {
        "job-definition"
    };
    let arn = |suffix: &str| {
        sub(&format!(
            "arn:${{AWS::Partition}}:batch:${{AWS::Region}}:${{AWS::AccountId}}:{kind}/${{{parameter}}}{suffix}"
        ))
    };
    let by_name = match kind {
        "job-queue" => arn(""),
        _ => json!({"Fn::If": [format!("{parameter}HasRevision"), arn(""), arn(":*")]}),
    };
    json!({"Fn::If": [format!("{parameter}IsArn"), reference(parameter), by_name]})
}

/// The conditions [`batch_resource`] asks: whether each Batch parameter is
/// an ARN (`arn:...`), and whether a job definition names its revision.
fn batch_conditions() -> Vec<(String, Value)> {
    let first_of = |parameter: &str| json!({"Fn::Select": [0, {"Fn::Split": [":", reference(parameter)]}]});
    let mut conditions = Vec::new();
    for parameter in BATCH_PARAMETERS {
        conditions.push((
            format!("{parameter}IsArn"),
            json!({"Fn::Equals": [first_of(parameter), "arn"]}),
        ));
        if parameter.ends_with("Definition") {
            conditions.push((
                format!("{parameter}HasRevision"),
                json!({"Fn::Not": [{"Fn::Equals": [first_of(parameter), reference(parameter)]}]}),
            ));
        }
    }
    conditions
}

/// The statements of `function`'s role: logs, its reach, the ledger, the
/// traces (when they are on).
fn statements(function: &PipelineFunction) -> Vec<Value> {
    let mut statements = vec![json!({
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": sub(&format!(
            "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:/aws/lambda/${{FunctionPrefix}}{}:*",
            function.function
        )),
    })];
    for prefix in function.lists {
        statements.push(json!({
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn(""),
            "Condition": {"StringEquals": {"s3:prefix": prefix, "s3:delimiter": "/"}},
        }));
    }
    if !function.reads.is_empty() {
        let keys: Vec<Value> = function
            .reads
            .iter()
            .map(|key| bucket_arn(&format!("/{key}")))
            .collect();
        statements.push(json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": keys}));
    }
    if !function.invokes.is_empty() {
        let functions: Vec<Value> = function
            .invokes
            .iter()
            .map(|suffix| function_arn(suffix))
            .collect();
        statements.push(json!({"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": functions}));
    }
    statements.push(json!({
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
        "Resource": bucket_arn(&format!("/${{LedgerPrefix}}${{FunctionPrefix}}{}/*", function.function)),
    }));
    // Every function's failed events go to the queue (its on-failure
    // destination).
    statements.push(json!({
        "Effect": "Allow",
        "Action": "sqs:SendMessage",
        "Resource": sub(FAILED_EVENTS_ARN),
    }));
    statements
}

/// The policy of every role whose function submits Batch jobs: one
/// policy attached to each of them (the grant is the same for all, and a
/// copy in each role's own policy would put the template over
/// CloudFormation's 51,200 bytes inline).
fn submit_jobs_policy() -> Value {
    let roles: Vec<Value> = FUNCTIONS
        .iter()
        .filter(|function| function.submits_jobs)
        .map(|function| reference(&format!("{}Role", logical_id(function.guest))))
        .collect();
    json!({
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": "submit-jobs",
            "Roles": roles,
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "batch:SubmitJob",
                    "Resource": [
                        batch_resource("JobQueue"),
                        batch_resource("LargeJobQueue"),
                        batch_resource("JobDefinition"),
                        batch_resource("LargeJobDefinition"),
                    ],
                },
                // ListJobs has no resource-level permissions.
                {"Effect": "Allow", "Action": "batch:ListJobs", "Resource": "*"},
            ]},
        },
    })
}

/// The policy that lets `function` write its flight recorder's traces,
/// made only while `EMMAA_TRACE_PREFIX` is set: a resource of its own
/// with a condition, so every policy document is plain IAM (checkov
/// leaves a role's IAM checks unknown when one of its statements is an
/// `Fn::If`, and moto's CloudFormation fails on an `Fn::If` that leaves a
/// role's policy out).
fn traces_policy(function: &PipelineFunction) -> Value {
    json!({
        "Type": "AWS::IAM::Policy",
        "Condition": "RecordsTraces",
        "Properties": {
            "PolicyName": "traces",
            "Roles": [reference(&format!("{}Role", logical_id(function.guest)))],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": bucket_arn(&format!("/${{TracePrefix}}${{FunctionPrefix}}{}/*", function.function)),
            }]},
        },
    })
}

/// The policy that lets the functions that submit jobs submit them.
pub const SUBMIT_JOBS: &str = "SubmitJobsPolicy";

/// The failed-events queue, by the name the stack gives it: the same
/// whether the stack made it or found it kept from an earlier stack.
const FAILED_EVENTS_ARN: &str =
    "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${FunctionPrefix}failed-events";

/// The queue, as the asynchronous-invocation settings name it: through
/// the stack's own queue when the stack makes it, so CloudFormation makes
/// the queue first.
fn failed_events_destination() -> Value {
    json!({"Fn::If": [MAKES_LOGS_AND_QUEUE, {"Fn::GetAtt": ["FailedEvents", "Arn"]}, sub(FAILED_EVENTS_ARN)]})
}

/// The condition under which the stack makes the log groups and the
/// failed-events queue: unless they exist, kept from an earlier stack
/// with the same function prefix (`ExistingLogsAndQueue`).
pub const MAKES_LOGS_AND_QUEUE: &str = "MakesLogsAndQueue";

/// The parameter naming the SNS topic the alarms notify.
pub const ALARM_TOPIC: &str = "AlarmTopic";

/// An alarm when `metric` (its namespace, name and dimension), by
/// `statistic`, is at least one over five minutes, notifying the alarm
/// topic if there is one.
fn alarm(
    description: &str,
    namespace: &str,
    (metric, statistic): (&str, &str),
    dimension: (&str, Value),
) -> Value {
    json!({
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": [{"Name": dimension.0, "Value": dimension.1}],
            "Statistic": statistic,
            "Period": 300,
            "EvaluationPeriods": 1,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": {"Fn::If": ["NotifiesAlarms", [reference(ALARM_TOPIC)], {"Ref": "AWS::NoValue"}]},
        },
    })
}

/// The parameter `deploy stack` sets when the log groups and the queue
/// exist already.
pub const EXISTING_LOGS_AND_QUEUE: &str = "ExistingLogsAndQueue";

/// The name of a function's log group.
pub fn log_group_name(function_prefix: &str, function: &PipelineFunction) -> String {
    format!("/aws/lambda/{function_prefix}{}", function.function)
}

/// The name of the failed-events queue.
pub fn failed_events_queue(function_prefix: &str) -> String {
    format!("{function_prefix}failed-events")
}

/// Where the stack's default differs from the host's: on AWS the fan-out
/// invokes asynchronously. Measured with `emmaa-host simulate --quotas`: at
/// 10,000 models a synchronous fan-out runs out of its deadline waiting for
/// Batch's 50 submissions a second, while queued invocations lose nothing
/// (a failed one goes to the FailedEvents queue after Lambda's retries).
const STACK_DEFAULTS: [(&str, &str); 1] = [(settings::INVOCATION_TYPE, "Event")];

/// The stack's default for `variable`.
fn stack_default(variable: &Variable) -> &'static str {
    STACK_DEFAULTS
        .iter()
        .find(|(name, _)| *name == variable.name)
        .map_or(variable.default, |(_, default)| default)
}

/// Every `EMMAA_*` setting, from its parameter.
fn environment() -> Value {
    let variables: Map<String, Value> = VARIABLES
        .iter()
        .map(|variable| (variable.name.to_owned(), reference(&parameter_of(variable.name))))
        .collect();
    json!({ "Variables": variables })
}

/// AWS's limits on a setting, as its parameter's constraints, so that
/// CloudFormation refuses a value AWS would (the host checks each value
/// fully at start, and `deploy stack` before it sends anything; Lambda's
/// 4 KB for the settings together is `deploy stack`'s to check).
fn limits(variable: &str) -> Value {
    let prefix = settings::MAX_FUNCTION_PREFIX_LEN;
    match variable {
        settings::BUCKET => {
            json!({"MinLength": 3, "MaxLength": 63, "AllowedPattern": "^[a-z0-9][a-z0-9.-]*[a-z0-9]$"})
        }
        settings::FUNCTION_PREFIX => json!({"MaxLength": prefix, "AllowedPattern": "^[A-Za-z0-9_-]*$"}),
        settings::INVOCATION_TYPE => json!({"AllowedValues": ["RequestResponse", "Event"]}),
        settings::LEDGER => json!({"AllowedValues": ["on", "off"]}),
        settings::MAX_IN_FLIGHT => json!({"AllowedPattern": "^[0-9]{1,4}$"}),
        // A queue's ARN is under 200 characters; a definition's name
        // 128 and its revision a number.
        settings::JOB_QUEUE
        | settings::LARGE_JOB_QUEUE
        | settings::JOB_DEFINITION
        | settings::LARGE_JOB_DEFINITION => {
            json!({"MinLength": 1, "MaxLength": 256})
        }
        // S3's keys are at most 1,024 bytes; the ledger's and the traces'
        // keys add the function name and a 64-character digest or a
        // request id to the prefix.
        settings::LEDGER_PREFIX | settings::TRACE_PREFIX => json!({"MaxLength": 512}),
        _ => json!({}),
    }
}

fn parameters() -> Map<String, Value> {
    let mut parameters = Map::new();
    for variable in VARIABLES {
        let mut parameter = json!({
            "Type": "String",
            "Default": stack_default(variable),
            "Description": format!("{}: {} ({})", variable.name, variable.meaning, variable.accepts),
        });
        if let (Some(parameter), Value::Object(limits)) = (parameter.as_object_mut(), limits(variable.name)) {
            parameter.extend(limits);
        }
        parameters.insert(parameter_of(variable.name), parameter);
    }
    let more = [
        (
            "CreateBucket",
            json!({"Type": "String", "Default": "false", "AllowedValues": ["true", "false"],
            "Description": "true: the stack makes the bucket, with EventBridge notifications on; false: the bucket exists (deploy stack switches EventBridge on for it)"}),
        ),
        (
            "ArtifactBucket",
            json!({"Type": "String", "Description": "The bucket holding the bundle of deploy bundle --all"}),
        ),
        (
            "ArtifactKey",
            json!({"Type": "String", "Description": "The bundle's key (it holds its sha256, so new code is a change)"}),
        ),
        (
            "Triggers",
            json!({"Type": "String", "Default": "ENABLED", "AllowedValues": ["ENABLED", "DISABLED"],
            "Description": "The state of the two schedules and three S3 triggers: DISABLED lets a stack stand beside a hand-made installation without both acting"}),
        ),
        (
            "Architecture",
            json!({"Type": "String", "Default": "x86_64", "AllowedValues": ["x86_64", "arm64"]}),
        ),
        (
            "FunctionConcurrency",
            json!({"Type": "Number", "Default": 10, "MinValue": 0, "MaxValue": 80,
            "Description": "Each function's reserved concurrency: it paces the day at Batch's 50 SubmitJob a second (emmaa-host simulate --quotas: 10 keeps 10,000 models within 1.02 times that bound, with 79 executions at most instead of the account's 1,000); 0: no reservation"}),
        ),
        (
            "MemorySize",
            json!({"Type": "Number", "Default": 256, "MinValue": 128, "MaxValue": 10240}),
        ),
        (
            "Timeout",
            json!({"Type": "Number", "Default": 300, "MinValue": 10, "MaxValue": 900,
            "Description": "Seconds; the host interrupts a guest a second before"}),
        ),
        (
            "UpdateSchedule",
            json!({"Type": "String", "Default": "cron(0 5 * * ? *)",
            "Description": "When emmaa-update-pipeline runs (UTC)"}),
        ),
        (
            "TestUpdateSchedule",
            json!({"Type": "String", "Default": "cron(0 4 * * ? *)",
            "Description": "When emmaa-test-update-pipeline runs (UTC)"}),
        ),
        (
            "LogRetentionDays",
            json!({"Type": "Number", "Default": 30,
            "AllowedValues": [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653]}),
        ),
        (
            EXISTING_LOGS_AND_QUEUE,
            json!({"Type": "String", "Default": "false", "AllowedValues": ["true", "false"],
            "Description": "true: the log groups and the failed-events queue exist, kept from an earlier stack with this function prefix, and the stack uses them instead of making them (deploy stack sets it)"}),
        ),
        (
            "AsyncRetries",
            json!({"Type": "Number", "Default": 2, "MinValue": 0, "MaxValue": 2,
            "Description": "Lambda's retries of a failed Event invocation (claims make a retry do only what is left)"}),
        ),
        (
            ALARM_TOPIC,
            json!({"Type": "String", "Default": "", "MaxLength": 256,
            "Description": "An SNS topic's ARN the alarms notify (empty: the alarms notify nobody, and show in CloudWatch)"}),
        ),
    ];
    for (name, parameter) in more {
        parameters.insert(name.to_owned(), parameter);
    }
    parameters
}

/// The template, as a JSON value (CloudFormation's own structure).
pub fn template() -> Value {
    let mut resources = Map::new();
    resources.insert(
        "DataBucket".into(),
        json!({
            "Type": "AWS::S3::Bucket",
            "Condition": "CreatesBucket",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "BucketName": reference("Bucket"),
                "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": true}},
            },
        }),
    );
    // The failed events and the logs outlive the stack: deleting or
    // replacing it keeps them (a stack stood up again with the same
    // function prefix finds them and uses them: ExistingLogsAndQueue).
    resources.insert(
        "FailedEvents".into(),
        json!({
            "Type": "AWS::SQS::Queue",
            "Condition": MAKES_LOGS_AND_QUEUE,
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "QueueName": sub("${FunctionPrefix}failed-events"),
                "MessageRetentionPeriod": 1_209_600,
                "SqsManagedSseEnabled": true,
            },
        }),
    );
    resources.insert(SUBMIT_JOBS.into(), submit_jobs_policy());
    for function in &FUNCTIONS {
        let id = logical_id(function.guest);
        resources.insert(
            format!("{id}Logs"),
            json!({
                "Type": "AWS::Logs::LogGroup",
                "Condition": MAKES_LOGS_AND_QUEUE,
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "LogGroupName": sub(&format!("/aws/lambda/${{FunctionPrefix}}{}", function.function)),
                    "RetentionInDays": reference("LogRetentionDays"),
                },
            }),
        );
        resources.insert(
            format!("{id}Role"),
            json!({
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
                    },
                    "Policies": [{
                        "PolicyName": "reach",
                        "PolicyDocument": {"Version": "2012-10-17", "Statement": statements(function)},
                    }],
                },
            }),
        );
        resources.insert(format!("{id}Traces"), traces_policy(function));
        resources.insert(
            format!("{id}Function"),
            json!({
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": function_name(function),
                    "Runtime": "provided.al2023",
                    "Handler": "bootstrap",
                    "Architectures": [reference("Architecture")],
                    "MemorySize": reference("MemorySize"),
                    "Timeout": reference("Timeout"),
                    "ReservedConcurrentExecutions": {
                        "Fn::If": ["ReservesConcurrency", reference("FunctionConcurrency"), {"Ref": "AWS::NoValue"}],
                    },
                    "Role": {"Fn::GetAtt": [format!("{id}Role"), "Arn"]},
                    "Code": {"S3Bucket": reference("ArtifactBucket"), "S3Key": reference("ArtifactKey")},
                    "Environment": environment(),
                    // Through the stack's log group when it makes one, so
                    // CloudFormation makes it first (Lambda would make it
                    // at the first event, and the stack's would then fail).
                    "LoggingConfig": {"LogGroup": {"Fn::If": [
                        MAKES_LOGS_AND_QUEUE,
                        reference(&format!("{id}Logs")),
                        {"Ref": "AWS::NoValue"},
                    ]}},
                },
            }),
        );
        // A function that submits jobs is made once its role may.
        if function.submits_jobs {
            resources[&format!("{id}Function")]["DependsOn"] = json!(SUBMIT_JOBS);
        }
        // Every function's asynchronous invocations (the schedules' and
        // EventBridge's included, not only the functions' own): Lambda's
        // retries, then the failed-events queue.
        resources.insert(
            format!("{id}Async"),
            json!({
                "Type": "AWS::Lambda::EventInvokeConfig",
                "Properties": {
                    "FunctionName": {"Ref": format!("{id}Function")},
                    "Qualifier": "$LATEST",
                    "MaximumRetryAttempts": reference("AsyncRetries"),
                    "DestinationConfig": {"OnFailure": {"Destination": failed_events_destination()}},
                },
            }),
        );
        let rule = |pattern_or_schedule: (&str, Value)| {
            let mut properties = Map::new();
            properties.insert(pattern_or_schedule.0.to_owned(), pattern_or_schedule.1);
            properties.insert("State".into(), reference("Triggers"));
            properties.insert(
                "Targets".into(),
                json!([{"Id": id.clone(), "Arn": {"Fn::GetAtt": [format!("{id}Function"), "Arn"]}}]),
            );
            json!({"Type": "AWS::Events::Rule", "Properties": properties})
        };
        let trigger = match function.trigger {
            Trigger::Daily => {
                let schedule = match function.guest {
                    "test_update_pipeline" => "TestUpdateSchedule",
                    _ => "UpdateSchedule",
                };
                Some(rule(("ScheduleExpression", reference(schedule))))
            }
            Trigger::NewObject { key } => Some(rule((
                "EventPattern",
                json!({
                    "source": ["aws.s3"],
                    "detail-type": ["Object Created"],
                    "detail": {
                        "bucket": {"name": [reference("Bucket")]},
                        "object": {"key": [{"wildcard": key}]},
                    },
                }),
            ))),
            Trigger::Invoked => None,
        };
        if let Some(rule) = trigger {
            resources.insert(format!("{id}Trigger"), rule);
            resources.insert(
                format!("{id}TriggerPermission"),
                json!({
                    "Type": "AWS::Lambda::Permission",
                    "Properties": {
                        "FunctionName": {"Ref": format!("{id}Function")},
                        "Action": "lambda:InvokeFunction",
                        "Principal": "events.amazonaws.com",
                        "SourceArn": {"Fn::GetAtt": [format!("{id}Trigger"), "Arn"]},
                    },
                }),
            );
        }
    }
    // An event failed (the host's metric, over every function of the
    // pipeline); and failed events wait in the queue after Lambda's
    // retries (timeouts and crashed runtimes included, which the host
    // cannot report).
    resources.insert(
        "EventsFailed".into(),
        alarm(
            "An event of the pipeline failed: deploy status says where the day stopped",
            emmaa_runtime::settings::METRICS_NAMESPACE,
            ("Failed", "Sum"),
            ("Pipeline", reference("FunctionPrefix")),
        ),
    );
    resources.insert(
        "FailedEventsWaiting".into(),
        alarm(
            "Failed events wait in the failed-events queue: deploy status and deploy redrive",
            "AWS/SQS",
            ("ApproximateNumberOfMessagesVisible", "Maximum"),
            ("QueueName", sub("${FunctionPrefix}failed-events")),
        ),
    );
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "The EMMAA model-update pipeline: eleven functions, their triggers and their rights (made by deploy template from host/runtime/src/functions.rs)",
        "Parameters": parameters(),
        "Conditions": conditions(),
        "Resources": resources,
    })
}

fn conditions() -> Value {
    let mut conditions = serde_json::Map::new();
    conditions.insert(
        "CreatesBucket".into(),
        json!({"Fn::Equals": [reference("CreateBucket"), "true"]}),
    );
    conditions.insert(
        "ReservesConcurrency".into(),
        json!({"Fn::Not": [{"Fn::Equals": [reference("FunctionConcurrency"), 0]}]}),
    );
    conditions.insert(
        MAKES_LOGS_AND_QUEUE.into(),
        json!({"Fn::Equals": [reference(EXISTING_LOGS_AND_QUEUE), "false"]}),
    );
    conditions.insert(
        "NotifiesAlarms".into(),
        json!({"Fn::Not": [{"Fn::Equals": [reference(ALARM_TOPIC), ""]}]}),
    );
    conditions.insert(
        "RecordsTraces".into(),
        json!({"Fn::Not": [{"Fn::Equals": [reference("TracePrefix"), ""]}]}),
    );
    conditions.extend(batch_conditions());
    Value::Object(conditions)
}

/// The bytes of a function's environment for these parameters: every
/// `EMMAA_*` variable's name and value (what Lambda counts against its
/// 4 KB), and the largest value's parameter.
pub fn environment_bytes(
    parameters: &std::collections::BTreeMap<String, String>,
) -> (usize, Option<(String, usize)>) {
    let mut total = 0;
    let mut largest: Option<(String, usize)> = None;
    for variable in VARIABLES {
        let parameter = parameter_of(variable.name);
        let value = parameters.get(&parameter).map_or(0, String::len);
        total += variable.name.len() + value;
        if largest.as_ref().is_none_or(|(_, size)| value > *size) {
            largest = Some((parameter, value));
        }
    }
    (total, largest)
}

/// CloudFormation's pseudo parameters, which `Ref` and `Fn::Sub` may name.
const PSEUDO_PARAMETERS: [&str; 8] = [
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
];

/// CloudFormation's quotas on a template read from S3.
const MAX_TEMPLATE_BYTES: usize = 1_000_000;
const MAX_RESOURCES: usize = 500;
const MAX_PARAMETERS: usize = 200;

/// The project's own checks of a template, without AWS: within
/// CloudFormation's quotas, every resource typed, and every name a `Ref`,
/// `Fn::GetAtt`, `Fn::Sub`, `DependsOn`, `Condition` or `Fn::If` uses
/// defined. Answers every fault found.
pub fn check_template(template: &Value) -> Result<(), Vec<String>> {
    let mut faults = Vec::new();
    let names = |section: &str| -> Vec<String> {
        template[section]
            .as_object()
            .map(|map| map.keys().cloned().collect())
            .unwrap_or_default()
    };
    let (parameters, resources, conditions) = (names("Parameters"), names("Resources"), names("Conditions"));
    let size = to_yaml(template).len();
    if size > MAX_TEMPLATE_BYTES {
        faults.push(format!(
            "{size} bytes, over CloudFormation's {MAX_TEMPLATE_BYTES}"
        ));
    }
    if resources.is_empty() || resources.len() > MAX_RESOURCES {
        faults.push(format!("{} resources (1 to {MAX_RESOURCES})", resources.len()));
    }
    if parameters.len() > MAX_PARAMETERS {
        faults.push(format!(
            "{} parameters (at most {MAX_PARAMETERS})",
            parameters.len()
        ));
    }
    let defined = |name: &str| {
        parameters.iter().chain(&resources).any(|known| known == name) || PSEUDO_PARAMETERS.contains(&name)
    };
    for (name, resource) in template["Resources"].as_object().into_iter().flatten() {
        if !resource["Type"]
            .as_str()
            .is_some_and(|kind| kind.starts_with("AWS::"))
        {
            faults.push(format!("resource {name} has no AWS:: Type"));
        }
        let depends = match &resource["DependsOn"] {
            Value::String(one) => vec![one.clone()],
            Value::Array(many) => many
                .iter()
                .filter_map(|one| one.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        for target in depends {
            if !resources.contains(&target) {
                faults.push(format!(
                    "resource {name} depends on {target}, which is not a resource"
                ));
            }
        }
        if let Some(condition) = resource["Condition"].as_str()
            && !conditions.iter().any(|known| known == condition)
        {
            faults.push(format!(
                "resource {name} has condition {condition}, which is not defined"
            ));
        }
    }
    let mut uses = Vec::new();
    for section in ["Resources", "Outputs", "Conditions"] {
        collect_uses(section, &template[section], &mut uses);
    }
    for (place, kind, name) in uses {
        let known = match kind {
            "Ref" | "Fn::Sub" => defined(&name),
            "Fn::GetAtt" => resources.contains(&name),
            _ => conditions.contains(&name),
        };
        if !known {
            faults.push(format!("{place}: {kind} names {name}, which is not defined"));
        }
    }
    if faults.is_empty() { Ok(()) } else { Err(faults) }
}

/// Every name `value` uses through `Ref`, `Fn::GetAtt`, `Fn::Sub`,
/// `Condition` and `Fn::If`, with the path it is at.
fn collect_uses(path: &str, value: &Value, uses: &mut Vec<(String, &'static str, String)>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(name)) = map.get("Ref") {
                uses.push((path.to_owned(), "Ref", name.clone()));
            }
            if let Some(target) = map.get("Fn::GetAtt") {
                let resource = match target {
                    Value::Array(parts) => parts.first().and_then(Value::as_str).map(str::to_owned),
                    Value::String(dotted) => dotted.split('.').next().map(str::to_owned),
                    _ => None,
                };
                uses.extend(resource.map(|name| (path.to_owned(), "Fn::GetAtt", name)));
            }
            if let Some(sub) = map.get("Fn::Sub") {
                let (text, variables) = match sub {
                    Value::String(text) => (text.as_str(), None),
                    Value::Array(parts) => {
                        (parts.first().and_then(Value::as_str).unwrap_or(""), parts.get(1))
                    }
                    _ => ("", None),
                };
                for name in sub_names(text) {
                    if variables.is_none_or(|variables| variables.get(&name).is_none()) {
                        uses.push((path.to_owned(), "Fn::Sub", name));
                    }
                }
            }
            if let Some(Value::Array(branches)) = map.get("Fn::If")
                && let Some(Value::String(condition)) = branches.first()
            {
                uses.push((path.to_owned(), "Fn::If", condition.clone()));
            }
            if let Some(Value::String(condition)) = map.get("Condition")
                && path.matches('/').count() > 1
            {
                uses.push((path.to_owned(), "Condition", condition.clone()));
            }
            for (key, item) in map {
                collect_uses(&format!("{path}/{key}"), item, uses);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                collect_uses(&format!("{path}/{index}"), item, uses);
            }
        }
        _ => {}
    }
}

/// The names `${Name}` and `${Name.Attribute}` in an `Fn::Sub` string
/// (`${!Literal}` is text).
fn sub_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find('}') else { break };
        let name = &rest[..end];
        if !name.starts_with('!') {
            names.push(name.split('.').next().unwrap_or(name).to_owned());
        }
        rest = &rest[end + 1..];
    }
    names
}

/// What cfn-lint said of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lint {
    Passed,
    /// Errors (the report), or cfn-lint could not run.
    Failed(String),
    NotInstalled,
}

/// `cfn-lint` on the PATH, if there is one (`deploy` does not need Python).
pub fn find_cfn_lint() -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("cfn-lint"))
        .find(|path| path.is_file())
}

/// Lints `yaml` with the cfn-lint on the PATH.
pub fn lint_with_cfn_lint(yaml: &str) -> Lint {
    find_cfn_lint().map_or(Lint::NotInstalled, |program| lint_with(&program, yaml))
}

/// Lints `yaml` with `program` (cfn-lint): its errors fail, its warnings
/// and notes (exit codes 4 and 8) do not.
pub fn lint_with(program: &std::path::Path, yaml: &str) -> Lint {
    let path = std::env::temp_dir().join(format!(
        "emmaa-template-{}-{}.yaml",
        std::process::id(),
        emmaa_runtime::digest::sha256_hex(yaml.as_bytes())
    ));
    if let Err(err) = std::fs::write(&path, yaml) {
        return Lint::Failed(format!("writing {}: {err}", path.display()));
    }
    let output = std::process::Command::new(program).arg(&path).output();
    let _ = std::fs::remove_file(&path);
    match output {
        Err(err) => Lint::Failed(format!("running {}: {err}", program.display())),
        Ok(output) => match output.status.code() {
            Some(code) if code & !(4 | 8) == 0 => Lint::Passed,
            _ => Lint::Failed(format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )),
        },
    }
}

/// `value` as YAML, block style; every string double-quoted (JSON's
/// escapes are YAML's), so no value is read as another type.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    write_yaml(value, 0, &mut out);
    out
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => Value::String(text.clone()).to_string(),
        other => other.to_string(),
    }
}

fn write_yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, item) in map {
                let key = scalar(&Value::String(key.clone()));
                match item {
                    Value::Object(inner) if !inner.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        write_yaml(item, indent + 2, out);
                    }
                    Value::Array(items) if !items.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        write_yaml(item, indent, out);
                    }
                    _ => out.push_str(&format!("{pad}{key}: {}\n", flow(item))),
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                match item {
                    Value::Object(inner) if !inner.is_empty() => {
                        let mut nested = String::new();
                        write_yaml(item, indent + 2, &mut nested);
                        out.push_str(&format!("{pad}- {}", &nested[indent + 2..]));
                    }
                    Value::Array(inner) if !inner.is_empty() => {
                        out.push_str(&format!("{pad}-\n"));
                        write_yaml(item, indent + 2, out);
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", flow(item))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", flow(other))),
    }
}

/// A scalar, or an empty list or map, on one line.
fn flow(value: &Value) -> String {
    match value {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => scalar(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipeline_template_passes_its_own_checks() {
        assert_eq!(check_template(&template()), Ok(()));
    }

    #[test]
    fn an_undefined_name_or_type_fails_the_checks() {
        let mut broken = template();
        broken["Resources"]["UpdatePipelineFunction"]["Properties"]["Role"] =
            json!({"Fn::GetAtt": ["NoSuchRole", "Arn"]});
        broken["Resources"]["Extra"] =
            json!({"Properties": {"Name": {"Fn::Sub": "${Nope}-${AWS::Region}-${!Literal}"}}});
        broken["Resources"]["Other"] = json!({"Type": "AWS::SQS::Queue", "DependsOn": "Gone",
            "Properties": {"QueueName": {"Ref": "Missing"}, "X": {"Fn::If": ["NoCondition", 1, 2]}}});
        let faults = check_template(&broken).unwrap_err();
        let expected = [
            "Resources/UpdatePipelineFunction/Properties/Role: Fn::GetAtt names NoSuchRole",
            "resource Extra has no AWS:: Type",
            "Fn::Sub names Nope,",
            "resource Other depends on Gone",
            "Ref names Missing",
            "Fn::If names NoCondition",
        ];
        for fault in expected {
            assert!(
                faults.iter().any(|found| found.contains(fault)),
                "{fault}: {faults:?}"
            );
        }
        assert!(
            !faults
                .iter()
                .any(|found| found.contains("Literal") || found.contains("AWS::Region")),
            "{faults:?}"
        );
    }

    #[test]
    fn names_parameters_and_resources_in_camel_case() {
        assert_eq!(parameter_of("EMMAA_JOB_QUEUE"), "JobQueue");
        assert_eq!(parameter_of("EMMAA_BUCKET"), "Bucket");
        assert_eq!(logical_id("update_pipeline"), "UpdatePipeline");
    }

    /// moto's CloudFormation lists `AWS::CloudWatch::Alarm` as created
    /// without making it: the alarms are checked here (and by cfn-lint and
    /// checkov over the whole template).
    #[test]
    fn failed_events_and_events_waiting_in_the_queue_raise_alarms_that_notify_the_topic_if_given() {
        let template = template();
        let resources = template["Resources"].as_object().unwrap();
        let alarms: Vec<&String> = resources
            .iter()
            .filter(|(_, resource)| resource["Type"] == "AWS::CloudWatch::Alarm")
            .map(|(id, _)| id)
            .collect();
        assert_eq!(alarms, ["EventsFailed", "FailedEventsWaiting"]);
        let notify = json!({"Fn::If": ["NotifiesAlarms", [{"Ref": ALARM_TOPIC}], {"Ref": "AWS::NoValue"}]});
        let failed = &resources["EventsFailed"]["Properties"];
        assert_eq!(
            (failed["Namespace"].as_str(), failed["MetricName"].as_str()),
            (Some(emmaa_runtime::settings::METRICS_NAMESPACE), Some("Failed"))
        );
        assert_eq!(
            failed["Dimensions"],
            json!([{"Name": "Pipeline", "Value": {"Ref": "FunctionPrefix"}}])
        );
        assert_eq!(failed["AlarmActions"], notify);
        let waiting = &resources["FailedEventsWaiting"]["Properties"];
        assert_eq!(waiting["MetricName"], "ApproximateNumberOfMessagesVisible");
        assert_eq!(waiting["Statistic"], "Maximum");
        assert_eq!(
            waiting["Dimensions"][0]["Value"],
            json!({"Fn::Sub": "${FunctionPrefix}failed-events"})
        );
        assert_eq!(waiting["AlarmActions"], notify);
        assert_eq!(
            template["Conditions"]["NotifiesAlarms"],
            json!({"Fn::Not": [{"Fn::Equals": [{"Ref": ALARM_TOPIC}, ""]}]})
        );
        assert_eq!(template["Parameters"][ALARM_TOPIC]["Default"], "");
    }

    #[test]
    fn every_function_has_a_role_a_log_group_and_its_trigger() {
        let template = template();
        let resources = template["Resources"].as_object().unwrap();
        let of_type = |kind: &str| resources.values().filter(|r| r["Type"] == kind).count();
        assert_eq!(of_type("AWS::Lambda::Function"), 11);
        assert_eq!(of_type("AWS::IAM::Role"), 11);
        assert_eq!(of_type("AWS::Logs::LogGroup"), 11);
        assert_eq!(
            of_type("AWS::Events::Rule"),
            5,
            "two schedules, three S3 triggers"
        );
        let schedule = &resources["UpdatePipelineTrigger"]["Properties"]["ScheduleExpression"];
        assert_eq!(schedule, &json!({"Ref": "UpdateSchedule"}));
        let pattern = &resources["TestStatsTrigger"]["Properties"]["EventPattern"];
        assert_eq!(
            pattern["detail"]["object"]["key"],
            json!([{"wildcard": "results/*/results_*.json"}])
        );
        let pattern = &resources["AfterUpdateTrigger"]["Properties"]["EventPattern"];
        assert_eq!(
            pattern["detail"]["object"]["key"],
            json!([{"wildcard": "results/*/model_manager_*.pkl"}])
        );
    }

    /// Every function, scheduled and S3-triggered ones too, sends the
    /// events it failed (after Lambda's retries) to the queue, and its role
    /// may. moto's CloudFormation lists `AWS::Lambda::EventInvokeConfig` as
    /// made without making it, so the template is where this is checked.
    #[test]
    fn every_function_has_a_failure_destination_its_role_may_send_to() {
        let template = template();
        let resources = &template["Resources"];
        let queue = json!({"Fn::If": ["MakesLogsAndQueue", {"Fn::GetAtt": ["FailedEvents", "Arn"]}, {"Fn::Sub": FAILED_EVENTS_ARN}]});
        for function in &FUNCTIONS {
            let id = logical_id(function.guest);
            let settings = &resources[format!("{id}Async")];
            assert_eq!(settings["Type"], "AWS::Lambda::EventInvokeConfig", "{id}");
            assert_eq!(
                settings["Properties"]["FunctionName"],
                json!({"Ref": format!("{id}Function")})
            );
            assert_eq!(
                settings["Properties"]["DestinationConfig"]["OnFailure"]["Destination"], queue,
                "{id}"
            );
            let statements =
                &resources[format!("{id}Role")]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"];
            assert!(
                statements.as_array().unwrap().contains(
                    &json!({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::Sub": FAILED_EVENTS_ARN}})
                ),
                "{id}: {statements}"
            );
        }
    }

    /// The logs and the failed events outlive the stack, and the stack
    /// makes them only when they do not exist already; the queue is
    /// encrypted at rest.
    #[test]
    fn logs_and_failed_events_are_kept_and_made_only_when_missing() {
        let template = template();
        let resources = template["Resources"].as_object().unwrap();
        let kept: Vec<&String> = resources
            .iter()
            .filter(|(_, resource)| {
                resource["DeletionPolicy"] == "Retain" && resource["UpdateReplacePolicy"] == "Retain"
            })
            .map(|(id, _)| id)
            .collect();
        assert_eq!(
            kept.len(),
            11 + 1 + 1,
            "log groups, the queue, the bucket: {kept:?}"
        );
        for (id, resource) in resources {
            if matches!(
                resource["Type"].as_str(),
                Some("AWS::Logs::LogGroup" | "AWS::SQS::Queue")
            ) {
                assert_eq!(resource["Condition"], MAKES_LOGS_AND_QUEUE, "{id}");
                assert!(kept.contains(&id), "{id}");
            }
        }
        assert_eq!(
            resources["FailedEvents"]["Properties"]["SqsManagedSseEnabled"],
            true
        );
        assert_eq!(
            template["Conditions"][MAKES_LOGS_AND_QUEUE],
            json!({"Fn::Equals": [{"Ref": EXISTING_LOGS_AND_QUEUE}, "false"]})
        );
        // A function logs to the stack's group when the stack makes one.
        assert_eq!(
            resources["ModelTestsFunction"]["Properties"]["LoggingConfig"]["LogGroup"],
            json!({"Fn::If": [MAKES_LOGS_AND_QUEUE, {"Ref": "ModelTestsLogs"}, {"Ref": "AWS::NoValue"}]})
        );
    }

    /// The parameters carry AWS's limits, so CloudFormation itself refuses
    /// what AWS would.
    #[test]
    fn parameters_carry_aws_limits() {
        let template = template();
        let parameters = &template["Parameters"];
        assert_eq!(parameters["FunctionPrefix"]["MaxLength"], 44);
        assert_eq!(parameters["FunctionPrefix"]["AllowedPattern"], "^[A-Za-z0-9_-]*$");
        assert_eq!(parameters["Bucket"]["MaxLength"], 63);
        assert_eq!(parameters["Bucket"]["MinLength"], 3);
        assert_eq!(parameters["Ledger"]["AllowedValues"], json!(["on", "off"]));
        assert_eq!(parameters["JobQueue"]["MaxLength"], 256);
        // Each setting's default meets its own limits.
        for (name, parameter) in parameters.as_object().unwrap() {
            let Some(default) = parameter["Default"].as_str() else {
                continue;
            };
            let length = default.chars().count() as u64;
            assert!(
                parameter["MaxLength"].as_u64().is_none_or(|max| length <= max),
                "{name}"
            );
            assert!(
                parameter["MinLength"].as_u64().is_none_or(|min| length >= min),
                "{name}"
            );
            if let Some(allowed) = parameter["AllowedValues"].as_array() {
                assert!(allowed.contains(&parameter["Default"]), "{name}");
            }
        }
    }

    /// The intrinsic functions the Batch grant uses, evaluated as
    /// CloudFormation does for the parameter values given.
    fn evaluate(value: &Value, template: &Value, parameters: &[(&str, &str)]) -> Value {
        let eval = |value: &Value| evaluate(value, template, parameters);
        let Value::Object(map) = value else {
            return match value {
                Value::Array(items) => Value::Array(items.iter().map(eval).collect()),
                other => other.clone(),
            };
        };
        let Some((name, args)) = map.iter().next().filter(|_| map.len() == 1) else {
            return value.clone();
        };
        match name.as_str() {
            "Ref" => json!(parameters.iter().find(|(k, _)| args == k).expect("a parameter").1),
            "Fn::Sub" => {
                let mut text = args.as_str().unwrap().to_owned();
                for (name, value) in parameters {
                    text = text.replace(&format!("${{{name}}}"), value);
                }
                json!(text)
            }
            "Fn::If" => {
                let condition = &template["Conditions"][args[0].as_str().unwrap()];
                match eval(condition) == json!(true) {
                    true => eval(&args[1]),
                    false => eval(&args[2]),
                }
            }
            "Fn::Equals" => json!(eval(&args[0]) == eval(&args[1])),
            "Fn::Not" => json!(eval(&args[0]) != json!(true)),
            "Fn::Select" => eval(&args[1])[args[0].as_u64().unwrap() as usize].clone(),
            "Fn::Split" => json!(
                eval(&args[1])
                    .as_str()
                    .unwrap()
                    .split(args[0].as_str().unwrap())
                    .collect::<Vec<_>>()
            ),
            _ => value.clone(),
        }
    }

    /// Given a name or an ARN, the grant names exactly the queue or the job
    /// definition the settings name (a bare definition name: any of its
    /// revisions, never another definition whose name starts the same).
    #[test]
    fn the_batch_grant_matches_a_name_or_an_arn_exactly() {
        let template = template();
        let statements = &template["Resources"][SUBMIT_JOBS]["Properties"]["PolicyDocument"]["Statement"];
        let submit = statements
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Action"] == "batch:SubmitJob")
            .unwrap();
        let arn = |rest: &str| format!("arn:aws:batch:us-east-1:123456789012:{rest}");
        let granted = |values: &[(&str, &str)]| {
            let mut parameters = vec![
                ("AWS::Partition", "aws"),
                ("AWS::Region", "us-east-1"),
                ("AWS::AccountId", "123456789012"),
                ("JobQueue", "emmaa-models-update-test"),
                ("LargeJobQueue", "emmaa-after-update"),
                ("JobDefinition", "emmaa_jobdef"),
                ("LargeJobDefinition", "emmaa_testing_jobs_def"),
            ];
            for (name, value) in values {
                parameters.iter_mut().find(|(k, _)| k == name).unwrap().1 = value;
            }
            evaluate(&submit["Resource"], &template, &parameters)
        };
        assert_eq!(
            granted(&[]),
            json!([
                arn("job-queue/emmaa-models-update-test"),
                arn("job-queue/emmaa-after-update"),
                arn("job-definition/emmaa_jobdef:*"),
                arn("job-definition/emmaa_testing_jobs_def:*"),
            ])
        );
        let queue = arn("job-queue/other-queue");
        let definition = arn("job-definition/other_def:4");
        assert_eq!(
            granted(&[
                ("JobQueue", &queue),
                ("JobDefinition", &definition),
                ("LargeJobDefinition", "emmaa_testing_jobs_def:12"),
            ]),
            json!([
                queue,
                arn("job-queue/emmaa-after-update"),
                definition,
                arn("job-definition/emmaa_testing_jobs_def:12"),
            ])
        );
    }

    #[test]
    fn a_role_allows_its_reach_and_nothing_else() {
        let template = template();
        let policy = |id: &str| {
            template["Resources"][format!("{id}Role")]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].clone()
        };
        let actions = |id: &str| -> Vec<Value> {
            policy(id)
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["Action"].clone())
                .collect()
        };
        let queries = actions("ModelQueries");
        assert!(!queries.contains(&json!("lambda:InvokeFunction")));
        // The functions that submit jobs, and only they, have the policy
        // that lets them, and are made after it.
        let submitting = template["Resources"][SUBMIT_JOBS]["Properties"]["Roles"].clone();
        let expected: Vec<Value> = FUNCTIONS
            .iter()
            .filter(|function| function.submits_jobs)
            .map(|function| json!({"Ref": format!("{}Role", logical_id(function.guest))}))
            .collect();
        assert_eq!(submitting, json!(expected));
        assert!(
            submitting
                .as_array()
                .unwrap()
                .contains(&json!({"Ref": "ModelQueriesRole"}))
        );
        assert_eq!(
            template["Resources"]["ModelQueriesFunction"]["DependsOn"],
            SUBMIT_JOBS
        );
        assert_eq!(
            template["Resources"]["UpdatePipelineFunction"].get("DependsOn"),
            None
        );
        assert!(!queries.contains(&json!("s3:ListBucket")));
        let pipeline = policy("UpdatePipeline");
        let invoke = pipeline
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Action"] == "lambda:InvokeFunction")
            .unwrap();
        assert_eq!(invoke["Resource"].as_array().unwrap().len(), 2);
        assert!(!actions("UpdatePipeline").contains(&json!("batch:SubmitJob")));
        // Every statement of a policy is plain IAM (no condition around a
        // statement, which scanners cannot read).
        assert!(
            pipeline
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["Effect"] == "Allow")
        );
        // Traces may be written under the trace prefix only, and only when
        // there is one: a policy of their own, on the function's role only.
        let traces = &template["Resources"]["UpdatePipelineTraces"];
        assert_eq!(traces["Condition"], "RecordsTraces");
        assert_eq!(
            traces["Properties"]["Roles"],
            json!([{"Ref": "UpdatePipelineRole"}])
        );
        let statements = &traces["Properties"]["PolicyDocument"]["Statement"];
        assert_eq!(statements.as_array().unwrap().len(), 1);
        assert_eq!(statements[0]["Action"], "s3:PutObject");
        assert_eq!(
            statements[0]["Resource"]["Fn::Sub"],
            "arn:${AWS::Partition}:s3:::${Bucket}/${TracePrefix}${FunctionPrefix}update-pipeline/*"
        );
        assert_eq!(
            template["Conditions"]["RecordsTraces"],
            json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "TracePrefix"}, ""]}]})
        );
    }

    #[test]
    fn every_setting_is_a_parameter_reaching_every_function() {
        let template = template();
        for variable in VARIABLES {
            let parameter = parameter_of(variable.name);
            assert_eq!(
                template["Parameters"][&parameter]["Default"],
                stack_default(variable),
                "{parameter}"
            );
            let set = &template["Resources"]["ModelUpdatesFunction"]["Properties"]["Environment"]["Variables"]
                [variable.name];
            assert_eq!(set, &json!({"Ref": parameter}));
        }
    }

    #[test]
    fn the_stack_paces_the_day_with_queued_invocations_and_reserved_concurrency() {
        let template = template();
        assert_eq!(template["Parameters"]["InvocationType"]["Default"], "Event");
        assert_eq!(template["Parameters"]["FunctionConcurrency"]["Default"], 10);
        let resources = template["Resources"].as_object().unwrap();
        let functions: Vec<&Value> = resources
            .values()
            .filter(|resource| resource["Type"] == "AWS::Lambda::Function")
            .collect();
        assert_eq!(functions.len(), 11);
        for function in functions {
            assert_eq!(
                function["Properties"]["ReservedConcurrentExecutions"]["Fn::If"][1],
                json!({"Ref": "FunctionConcurrency"})
            );
        }
    }

    #[test]
    fn yaml_keeps_nesting_lists_and_quoting() {
        let value = json!({"A": {"B": ["x", {"C": 1, "D": [true]}], "E": {}}, "F": "a: b"});
        assert_eq!(
            to_yaml(&value),
            "\"A\":\n  \"B\":\n  - \"x\"\n  - \"C\": 1\n    \"D\":\n    - true\n  \"E\": {}\n\"F\": \"a: b\"\n"
        );
    }
}
