//! The pipeline as code: the generated template, linted, and the stack stood up against moto.

use super::*;

/// cfn-lint, installed into `target/cfn-lint-venv` (pinned, whatever the
/// machine has).
pub(crate) fn cfn_lint() -> PathBuf {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM
        .get_or_init(|| support::moto::venv_tool("cfn-lint-venv", "cfn-lint", &["cfn-lint==1.58.0"]))
        .clone()
}

fn lint(template: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, template).unwrap();
    Command::new(cfn_lint()).arg(&path).output().unwrap()
}

#[test]
fn the_pipeline_template_passes_cfn_lint() {
    let template = emmaa_deploy::template::to_yaml(&emmaa_deploy::template::template());
    let linted = lint(&template);
    assert!(
        linted.status.success(),
        "cfn-lint: {}{}",
        String::from_utf8_lossy(&linted.stdout),
        String::from_utf8_lossy(&linted.stderr)
    );
    // The linter does read it: a runtime Lambda does not have fails.
    let broken = lint(&template.replace("\"provided.al2023\"", "\"provided.al2099\""));
    assert!(!broken.status.success());
    assert!(String::from_utf8_lossy(&broken.stdout).contains("provided.al2099"));
}

/// checkov, installed into `target/checkov-venv` (pinned).
pub(crate) fn checkov() -> PathBuf {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM
        .get_or_init(|| support::moto::venv_tool("checkov-venv", "checkov", &["checkov==3.3.30"]))
        .clone()
}

/// checkov's JSON report on `template`, with the project's configuration
/// (deploy/checkov.yaml: the reviewed skip list).
fn scan(template: &Value) -> (bool, Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, emmaa_deploy::template::to_yaml(template)).unwrap();
    let config = support::workspace().join("deploy").join("checkov.yaml");
    let output = Command::new(checkov())
        .arg("--config-file")
        .arg(&config)
        .arg("-f")
        .arg(&path)
        .args(["--output", "json", "--compact"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "checkov's report: {err}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), report)
}

/// The check ids of one kind of result (`passed_checks`, `failed_checks`,
/// `skipped_checks`), with the resources each was run on.
fn checks(report: &Value, kind: &str) -> Vec<(String, String)> {
    report["results"][kind]
        .as_array()
        .into_iter()
        .flatten()
        .map(|check| {
            (
                check["check_id"].as_str().unwrap_or("").to_owned(),
                check["resource"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// The template under checkov: nothing fails but the reviewed skips (each
/// with its reason), and the five IAM checks that a conditional statement
/// once hid from it run on every role, and fail on a grant they should.
#[test]
fn the_pipeline_template_passes_checkov_with_its_reviewed_skips() {
    let config = std::fs::read_to_string(support::workspace().join("deploy").join("checkov.yaml")).unwrap();
    let skips: Vec<&str> = config
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- CKV"))
        .collect();
    assert_eq!(skips.len(), 5, "{config}");
    for skip in &skips {
        let reason = skip
            .split_once('#')
            .map(|(_, reason)| reason.trim())
            .unwrap_or("");
        assert!(
            reason.split_whitespace().count() >= 8,
            "a skip without its reason: CKV{skip}"
        );
    }

    let template = emmaa_deploy::template::template();
    let (passed, report) = scan(&template);
    let failed = checks(&report, "failed_checks");
    assert!(passed && failed.is_empty(), "checkov: {failed:?}");
    let ran = checks(&report, "passed_checks");
    // Every role and policy: 11 roles, the jobs' policy, 11 traces' policies.
    let iam_resources = template["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|resource| {
            matches!(
                resource["Type"].as_str(),
                Some("AWS::IAM::Role" | "AWS::IAM::Policy")
            )
        })
        .count();
    assert_eq!(iam_resources, 23);
    for check in [
        "CKV_AWS_107",
        "CKV_AWS_108",
        "CKV_AWS_109",
        "CKV_AWS_110",
        "CKV_AWS_111",
    ] {
        let policies = ran.iter().filter(|(id, _)| id == check).count();
        assert_eq!(
            policies, iam_resources,
            "{check} ran on {policies} of the roles and policies"
        );
    }
    // A skipped check is not run at all.
    assert!(!ran.iter().any(|(id, _)| id == "CKV_AWS_117"), "{ran:?}");

    // A role granted writes to every object fails them.
    let mut broad = template.clone();
    broad["Resources"]["UpdatePipelineRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}));
    let (passed, report) = scan(&broad);
    assert!(!passed);
    let failed = checks(&report, "failed_checks");
    assert!(
        failed.contains(&(
            "CKV_AWS_111".to_owned(),
            "AWS::IAM::Role.UpdatePipelineRole".to_owned()
        )),
        "{failed:?}"
    );
}

/// The values of every `<tag>` in `xml`, unescaped.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(value, _)| value))
        .map(|value| {
            value
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        })
        .collect()
}

/// A role's inline policy document as moto answers it (JSON, URL-encoded
/// JSON or, moto 5.2.1's own form, a Python dict's text).
fn policy_document(moto: &Moto, role: &str, policy: &str) -> Value {
    let xml = moto.query_call(
        "iam",
        &format!("Action=GetRolePolicy&Version=2010-05-08&RoleName={role}&PolicyName={policy}"),
    );
    let text = xml_values(&xml, "PolicyDocument")
        .pop()
        .expect("a policy document");
    let text = if text.starts_with('%') {
        percent_decode(&text)
    } else {
        text
    };
    serde_json::from_str(&text)
        .or_else(|_| serde_json::from_str(&text.replace('\'', "\"")))
        .unwrap_or_else(|err| panic!("{role}'s policy {text}: {err}"))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = text.get(at + 1..at + 3).filter(|_| bytes[at] == b'%');
        if let Some(byte) = escaped.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
            out.push(byte);
            at += 3;
            continue;
        }
        out.push(if bytes[at] == b'+' { b' ' } else { bytes[at] });
        at += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Each statement's actions, as a sorted list of strings.
fn actions_of(statements: &Value) -> Vec<String> {
    let mut actions: Vec<String> = statements
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|statement| match &statement["Action"] {
            Value::Array(many) => many.iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
            one => vec![one.as_str().unwrap().to_owned()],
        })
        .collect();
    actions.sort();
    actions
}

/// `deploy stack` for the tests' stack `emmaa-next`, with the tests' dev
/// bootstrap, its bundle written to `out`, polling every 0.1 s.
fn stack_command(moto: &Moto, out: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_deploy"));
    command
        .args([
            "stack",
            "--stack-name",
            "emmaa-next",
            "--artifact-bucket",
            "emmaa-artifacts",
        ])
        .args(["--build-profile", "dev", "--bootstrap"])
        .arg(bootstrap())
        .arg("--out")
        .arg(out)
        .args(["--poll", "0.1"])
        .envs(moto.env());
    command
}

fn deploy_stack(moto: &Moto, out: &Path, extra: &[&str]) -> String {
    let output = stack_command(moto, out).args(extra).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "deploy stack {extra:?}: {text}");
    text
}

/// `deploy stack` against moto's CloudFormation, checked service by service
/// (moto lists resource types it does not know as created, so the stack's
/// own resource list proves nothing): a stack beside a hand-made
/// installation (its own function prefix, triggers off), then switched on,
/// on an existing bucket whose other notification must survive; then
/// deleted, and stood up again on the logs and queue it kept.
#[tokio::test(flavor = "multi_thread")]
async fn deploy_stack_stands_up_every_function_role_rule_permission_log_group_and_queue() {
    let moto = Moto::start_unconfigured();
    let config = moto.sdk_config().await;
    let (s3, existing_queue) = bucket_with_a_queue_notification(&moto, &config).await;
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("pipeline.zip");
    deploy_plan_create_and_update(&moto, &config, &s3, existing_queue, &zip_path).await;
}

/// The bucket `emmaa`, with a notification to a queue of its own (which
/// the stack's write-back must keep; and moto answers an empty
/// configuration in a form the SDK refuses).
async fn bucket_with_a_queue_notification(
    moto: &Moto,
    config: &aws_config::SdkConfig,
) -> (aws_sdk_s3::Client, &'static str) {
    create_bucket(config, "emmaa", vec![]).await;
    let queue = moto.json_call("sqs", "AmazonSQS.CreateQueue", json!({"QueueName": "existing"}));
    assert!(queue["QueueUrl"].is_string(), "{queue}");
    let existing_queue = "arn:aws:sqs:us-east-1:123456789012:existing";
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    );
    s3.put_bucket_notification_configuration()
        .bucket("emmaa")
        .notification_configuration(
            aws_sdk_s3::types::NotificationConfiguration::builder()
                .queue_configurations(
                    aws_sdk_s3::types::QueueConfiguration::builder()
                        .queue_arn(existing_queue)
                        .events(aws_sdk_s3::types::Event::S3ObjectCreated)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    (s3, existing_queue)
}

async fn deploy_plan_create_and_update(
    moto: &Moto,
    config: &aws_config::SdkConfig,
    s3: &aws_sdk_s3::Client,
    existing_queue: &str,
    zip_path: &Path,
) {
    // A plan changes nothing but prints every resource it would add, and
    // deletes the review stack its change set made.
    let plan = deploy_stack(
        moto,
        zip_path,
        &["--parameter", "FunctionPrefix=emmaa-next-", "--plan"],
    );
    assert!(
        plan.contains("Add     UpdatePipelineFunction (AWS::Lambda::Function)"),
        "{plan}"
    );
    assert!(plan.contains("plan: would switch EventBridge notifications on for bucket emmaa, writing back its 1 other notifications"), "{plan}");
    assert!(
        plan.contains("plan: the change set was deleted, not executed, and so was the review stack it made"),
        "{plan}"
    );
    assert!(
        plan.contains("plan: the bundle would go to s3://emmaa-artifacts/artifacts/pipeline-"),
        "{plan}"
    );
    let lambda = aws_sdk_lambda::Client::new(config);
    let listed = lambda.list_functions().send().await.unwrap();
    assert!(listed.functions().is_empty(), "a plan made functions");
    let review = aws_sdk_cloudformation::Client::new(config)
        .describe_stacks()
        .stack_name("emmaa-next")
        .send()
        .await;
    match review {
        Ok(found) => assert!(
            found
                .stacks()
                .iter()
                .all(|stack| stack.stack_status().map(|status| status.as_str()) == Some("DELETE_COMPLETE")),
            "the review stack is gone: {found:?}"
        ),
        Err(err) => {
            use aws_sdk_cloudformation::error::ProvideErrorMetadata as _;
            assert!(
                err.message()
                    .is_some_and(|message| message.contains("does not exist")),
                "the review stack is gone: {err:?}"
            );
        }
    }

    moto.start_recording();
    let out = deploy_stack(
        moto,
        zip_path,
        &[
            "--parameter",
            "FunctionPrefix=emmaa-next-",
            "--parameter",
            "Triggers=DISABLED",
            "--parameter",
            "TracePrefix=traces/",
        ],
    );
    assert!(out.contains("stack emmaa-next: CREATE_COMPLETE"), "{out}");
    assert!(!out.contains("kept from an earlier stack"), "{out}");
    // moto serves no GetAccountSettings: the limits are unknown, and the
    // run goes on.
    assert!(out.contains("the account's Lambda limits are unknown"), "{out}");
    let zip = std::fs::read(zip_path).unwrap();
    use base64::Engine as _;
    use sha2::Digest as _;
    let code_sha = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&zip));
    let sha_hex: String = sha2::Sha256::digest(&zip)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        out.contains(&format!("artifacts/pipeline-{sha_hex}.zip")),
        "{out}"
    );

    check_functions_and_roles(moto, &lambda, &code_sha).await;

    check_disabled_rules(moto);
    check_invoke_permissions(&lambda).await;
    check_log_groups_and_failure_queue(moto);
    check_bucket_notifications(moto, s3, existing_queue).await;
    assert!(out.contains("switched EventBridge notifications on"), "{out}");

    // A second run switches the triggers on and keeps the earlier prefix.
    let out = deploy_stack(moto, zip_path, &["--parameter", "Triggers=ENABLED"]);
    assert!(out.contains("updating stack emmaa-next"), "{out}");
    assert!(out.contains("stack emmaa-next: UPDATE_COMPLETE"), "{out}");
    assert!(
        out.contains("already there: s3://emmaa-artifacts/artifacts/pipeline-"),
        "{out}"
    );
    let rules = moto.json_call("events", "AWSEvents.ListRules", json!({}));
    for rule in rules["Rules"].as_array().unwrap() {
        assert_eq!(rule["State"], "ENABLED", "{rule}");
    }
    let functions = lambda.list_functions().send().await.unwrap();
    let mut names: Vec<&str> = functions
        .functions()
        .iter()
        .filter_map(|f| f.function_name())
        .collect();
    names.sort();
    assert!(
        names.iter().all(|name| name.starts_with("emmaa-next-")),
        "{names:?}"
    );
    assert_eq!(names.len(), emmaa_runtime::functions::FUNCTIONS.len());

    delete_and_stand_up_again(moto, config, zip_path).await;
}

/// A stack deleted keeps its log groups and its failed-events queue (with
/// what is in it); a stack stood up again with the same function prefix
/// finds them and uses them, where making them again would fail.
async fn delete_and_stand_up_again(moto: &Moto, config: &aws_config::SdkConfig, zip: &Path) {
    let queue = moto.json_call(
        "sqs",
        "AmazonSQS.GetQueueUrl",
        json!({"QueueName": "emmaa-next-failed-events"}),
    );
    let queue_url = queue["QueueUrl"].as_str().unwrap().to_owned();
    moto.json_call(
        "sqs",
        "AmazonSQS.SendMessage",
        json!({"QueueUrl": queue_url, "MessageBody": "a failed event"}),
    );
    let cloudformation = aws_sdk_cloudformation::Client::new(config);
    cloudformation
        .delete_stack()
        .stack_name("emmaa-next")
        .send()
        .await
        .unwrap();
    let lambda = aws_sdk_lambda::Client::new(config);
    assert!(
        lambda
            .list_functions()
            .send()
            .await
            .unwrap()
            .functions()
            .is_empty()
    );
    check_log_groups_and_failure_queue(moto);

    let again = deploy_stack(moto, zip, &["--parameter", "FunctionPrefix=emmaa-next-"]);
    assert!(
        again.contains(
            "found 11 of the 11 log groups and the failed-events queue emmaa-next-failed-events kept from an \
             earlier stack with function prefix \"emmaa-next-\": the stack uses them as they are (ExistingLogsAndQueue=true)"
        ),
        "{again}"
    );
    assert!(again.contains("stack emmaa-next: CREATE_COMPLETE"), "{again}");
    assert_eq!(
        lambda.list_functions().send().await.unwrap().functions().len(),
        11
    );
    check_log_groups_and_failure_queue(moto);
    let received = moto.json_call(
        "sqs",
        "AmazonSQS.ReceiveMessage",
        json!({"QueueUrl": queue_url, "MaxNumberOfMessages": 10}),
    );
    assert_eq!(received["Messages"][0]["Body"], "a failed event", "{received}");
    let stacks = cloudformation
        .describe_stacks()
        .stack_name("emmaa-next")
        .send()
        .await
        .unwrap();
    let existing = stacks.stacks()[0]
        .parameters()
        .iter()
        .find(|parameter| parameter.parameter_key() == Some("ExistingLogsAndQueue"))
        .and_then(|parameter| parameter.parameter_value());
    assert_eq!(existing, Some("true"));
}

/// The template's logical id of a guest's resources: `model_updates` is
/// `ModelUpdates`.
fn logical_id(guest: &str) -> String {
    guest
        .split('_')
        .map(|w| w[..1].to_uppercase() + &w[1..])
        .collect()
}

/// Lambda: eleven functions, named with the stack's prefix, each running
/// the one bundle on provided.al2023 with its own role.
async fn check_functions_and_roles(moto: &Moto, lambda: &aws_sdk_lambda::Client, code_sha: &str) {
    use emmaa_deploy::template::template;
    use emmaa_runtime::functions::FUNCTIONS;
    let template = template();
    let functions = lambda.list_functions().send().await.unwrap();
    let by_name: BTreeMap<&str, _> = functions
        .functions()
        .iter()
        .map(|function| (function.function_name().unwrap(), function))
        .collect();
    assert_eq!(by_name.len(), FUNCTIONS.len(), "{:?}", by_name.keys());
    for entry in &FUNCTIONS {
        let name = format!("emmaa-next-{}", entry.function);
        let function = by_name
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(
            function.runtime().map(|r| r.as_str()),
            Some("provided.al2023"),
            "{name}"
        );
        assert_eq!(function.handler(), Some("bootstrap"), "{name}");
        assert_eq!(function.code_sha256(), Some(code_sha), "{name}");
        let variables = function.environment().unwrap().variables().unwrap();
        assert_eq!(variables["EMMAA_FUNCTION_PREFIX"], "emmaa-next-", "{name}");
        assert_eq!(variables["EMMAA_LEDGER"], "on", "{name}");
        assert_eq!(variables["EMMAA_INVOCATION_TYPE"], "Event", "{name}");
        let reserved = lambda
            .get_function_concurrency()
            .function_name(&name)
            .send()
            .await
            .unwrap();
        assert_eq!(reserved.reserved_concurrent_executions(), Some(10), "{name}");
        // IAM: the role holds exactly the template's statements for it.
        let id = logical_id(entry.guest);
        let role = function.role().unwrap().rsplit('/').next().unwrap().to_owned();
        assert!(role.contains(&format!("{id}Role")), "{name}: role {role}");
        let document = policy_document(moto, &role, "reach");
        let expected = &template["Resources"][format!("{id}Role")]["Properties"]["Policies"][0]["PolicyDocument"]
            ["Statement"];
        assert_eq!(actions_of(&document["Statement"]), actions_of(expected), "{name}");
        let mut text = document.to_string();
        if entry.submits_jobs {
            text.push_str(&policy_document(moto, &role, "submit-jobs").to_string());
        }
        for invoked in entry.invokes {
            assert!(
                text.contains(&format!("function:emmaa-next-{invoked}")),
                "{name} may invoke {invoked}: {text}"
            );
        }
        assert!(!text.contains("function:emmaa-model-update\""), "{name}: {text}");
        // CloudFormation resolved the Batch grant for the names given: any
        // revision of exactly the job definition, never `emmaa_jobdef*`.
        if entry.submits_jobs {
            for granted in [
                "job-queue/emmaa-models-update-test\"",
                "job-definition/emmaa_jobdef:*\"",
                "job-definition/emmaa_testing_jobs_def:*\"",
            ] {
                assert!(text.contains(granted), "{name} may submit to {granted}: {text}");
            }
        }
        // The traces, a policy of their own, there as TracePrefix is set.
        let traces = policy_document(moto, &role, "traces").to_string();
        assert!(
            traces.contains(&format!("emmaa/traces/{name}/*")),
            "{name} may write its traces: {traces}"
        );
        assert!(
            text.contains(":emmaa-next-failed-events\""),
            "{name} may send its failed events: {text}"
        );
        assert_eq!(variables["EMMAA_TRACE_PREFIX"], "traces/", "{name}");
    }
}

/// Events: two schedules and three S3 patterns, each aimed at its
/// function, and (as asked) disabled.
fn check_disabled_rules(moto: &Moto) {
    use emmaa_runtime::functions::{FUNCTIONS, Trigger};
    let rules = moto.json_call("events", "AWSEvents.ListRules", json!({}));
    let rules = rules["Rules"].as_array().unwrap().clone();
    assert_eq!(rules.len(), 5, "{rules:?}");
    let mut schedules = Vec::new();
    let mut patterns = Vec::new();
    for rule in &rules {
        assert_eq!(rule["State"], "DISABLED", "{rule}");
        let targets = moto.json_call(
            "events",
            "AWSEvents.ListTargetsByRule",
            json!({"Rule": rule["Name"]}),
        );
        let target = targets["Targets"][0]["Arn"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .to_owned();
        if let Some(schedule) = rule["ScheduleExpression"].as_str() {
            schedules.push((target, schedule.to_owned()));
        } else {
            let pattern: Value = serde_json::from_str(rule["EventPattern"].as_str().unwrap()).unwrap();
            assert_eq!(pattern["detail-type"], json!(["Object Created"]));
            assert_eq!(pattern["detail"]["bucket"]["name"], json!(["emmaa"]));
            let key = pattern["detail"]["object"]["key"][0]["wildcard"]
                .as_str()
                .unwrap()
                .to_owned();
            patterns.push((target, key));
        }
    }
    schedules.sort();
    patterns.sort();
    assert_eq!(
        schedules,
        [
            (
                "emmaa-next-test-update-pipeline".to_owned(),
                "cron(0 4 * * ? *)".to_owned()
            ),
            (
                "emmaa-next-update-pipeline".to_owned(),
                "cron(0 5 * * ? *)".to_owned()
            ),
        ]
    );
    let mut expected_patterns: Vec<(String, String)> = FUNCTIONS
        .iter()
        .filter_map(|entry| match entry.trigger {
            Trigger::NewObject { key } => Some((format!("emmaa-next-{}", entry.function), key.to_owned())),
            _ => None,
        })
        .collect();
    expected_patterns.sort();
    assert_eq!(patterns, expected_patterns);
}

/// Lambda permissions: EventBridge may invoke each triggered function,
/// from its own rule only.
async fn check_invoke_permissions(lambda: &aws_sdk_lambda::Client) {
    use emmaa_runtime::functions::{FUNCTIONS, Trigger};
    for entry in FUNCTIONS.iter().filter(|entry| entry.trigger != Trigger::Invoked) {
        let name = format!("emmaa-next-{}", entry.function);
        let policy = lambda.get_policy().function_name(&name).send().await.unwrap();
        let policy: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
        let statement = &policy["Statement"][0];
        assert_eq!(
            statement["Principal"]["Service"], "events.amazonaws.com",
            "{name}"
        );
        let source = statement["Condition"]["ArnLike"]["AWS:SourceArn"]
            .as_str()
            .unwrap();
        let id = logical_id(entry.guest);
        assert!(
            source.contains(&format!(":rule/emmaa-next-{id}Trigger")),
            "{name}: {source}"
        );
    }
}

/// Logs: a group per function, with the retention.
fn check_log_groups_and_failure_queue(moto: &Moto) {
    use emmaa_runtime::functions::FUNCTIONS;
    let groups = moto.json_call("logs", "Logs_20140328.DescribeLogGroups", json!({}));
    let mut groups: Vec<(String, u64)> = groups["logGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| {
            (
                group["logGroupName"].as_str().unwrap().to_owned(),
                group["retentionInDays"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    groups.sort();
    let mut expected_groups: Vec<(String, u64)> = FUNCTIONS
        .iter()
        .map(|entry| (format!("/aws/lambda/emmaa-next-{}", entry.function), 30))
        .collect();
    expected_groups.sort();
    assert_eq!(groups, expected_groups);

    // SQS: the on-failure queue of the Event-invoked functions.
    let queues = moto.json_call("sqs", "AmazonSQS.ListQueues", json!({}));
    let queues = queues["QueueUrls"].to_string();
    assert!(queues.contains("emmaa-next-failed-events"), "{queues}");
}

/// S3: EventBridge was added by writing back the whole configuration,
/// and the bucket's own queue notification survived it.
async fn check_bucket_notifications(moto: &Moto, s3: &aws_sdk_s3::Client, existing_queue: &str) {
    let written = moto
        .recording()
        .into_iter()
        .filter(|request| {
            request["method"] == "PUT" && request["url"].as_str().unwrap_or("").contains("notification")
        })
        .map(|request| recorded_body(&request))
        .collect::<Vec<_>>();
    assert_eq!(written.len(), 1, "one whole-configuration write: {written:?}");
    assert!(written[0].contains("<EventBridgeConfiguration"), "{}", written[0]);
    assert!(written[0].contains(existing_queue), "{}", written[0]);
    let notifications = s3
        .get_bucket_notification_configuration()
        .bucket("emmaa")
        .send()
        .await
        .unwrap();
    assert_eq!(notifications.queue_configurations().len(), 1);
}

/// Ctrl-C while a plan waits on CloudFormation: the change set and the
/// review stack a new stack's plan makes are deleted all the same, and the
/// command says so with a shell's status for an interrupted command.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_a_plan_still_deletes_the_review_stack() {
    let moto = Moto::start_unconfigured();
    let config = moto.sdk_config().await;
    create_bucket(&config, "emmaa", vec![]).await;
    let proxy = FaultProxy::start(&moto.address);
    // The plan's first look at its change set never gets an answer.
    proxy.fail("Action=DescribeChangeSet", vec![Fault::Hold]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pipeline.zip");
    let endpoint = format!("http://{}", proxy.address);
    let child = stack_command(&moto, &out)
        .args(["--plan", "--endpoint-url", &endpoint])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let waited = std::time::Instant::now();
    while proxy.seen("Action=DescribeChangeSet").is_empty() {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(300),
            "the plan never asked for its change set"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.trim_end().ends_with(
            "deploy: interrupted: the plan's change set was deleted, not executed, and so was the review stack it made"
        ),
        "{stderr}"
    );
    assert!(!proxy.seen("Action=DeleteStack").is_empty(), "no DeleteStack");
    let stacks = aws_sdk_cloudformation::Client::new(&config)
        .describe_stacks()
        .stack_name("emmaa-next")
        .send()
        .await;
    let live: Vec<String> = stacks
        .map(|found| {
            found
                .stacks()
                .iter()
                .filter_map(|stack| stack.stack_status().map(|status| status.as_str().to_owned()))
                .filter(|status| status != "DELETE_COMPLETE")
                .collect()
        })
        .unwrap_or_default();
    assert!(live.is_empty(), "the review stack is left: {live:?}");
}

/// `deploy stack` reads the account's Lambda limits before it changes
/// anything (moto serves no GetAccountSettings: a stub in front of it
/// answers as for a new account, 10 concurrent executions), refuses the
/// default reservation and says what to pass.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_accounts_ten_executions_stop_the_stack_before_cloudformation() {
    let moto = Moto::start_unconfigured();
    let config = moto.sdk_config().await;
    create_bucket(&config, "emmaa", vec![]).await;
    let proxy = FaultProxy::start(&moto.address);
    proxy.fail(
        "/account-settings",
        vec![Fault::Answer {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: json!({
                "AccountLimit": {"TotalCodeSize": 80_530_636_800_u64, "CodeSizeUnzipped": 262_144_000,
                    "CodeSizeZipped": 52_428_800, "ConcurrentExecutions": 10, "UnreservedConcurrentExecutions": 10},
                "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": 0},
            })
            .to_string(),
        }],
    );
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{}", proxy.address);
    let output = stack_command(&moto, &dir.path().join("pipeline.zip"))
        .args(["--endpoint-url", &endpoint])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "FunctionConcurrency=10 reserves 110 concurrent executions (10 for each of the 11 functions), but \
             this account has 10 of its 10 unreserved and Lambda keeps 100 unreserved: at most 0 per function fits. \
             Pass --parameter FunctionConcurrency=0"
        ),
        "{stderr}"
    );
    assert_eq!(proxy.seen("/account-settings").len(), 1);
    assert!(
        proxy.seen("Action=CreateChangeSet").is_empty(),
        "CloudFormation was asked"
    );
    assert!(proxy.seen("emmaa-artifacts").is_empty(), "something was uploaded");
}
