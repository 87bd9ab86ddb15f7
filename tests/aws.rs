//! End to end against a real AWS API: the moto server on loopback, started
//! and stopped by each test. The AWS backend lists, reads, invokes and
//! submits through the SDK; the real `bootstrap` executable answers events
//! through Lambda's Runtime API; `deploy upload` replaces a function's code.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_batch::types::{
    CeType, ComputeEnvironmentOrder, ContainerProperties, JobDefinitionType, JqState, ResourceRequirement,
    ResourceType,
};
use emmaa_aws::AwsEffects;
use emmaa_deploy::arch::Arch;
use emmaa_deploy::bundle::{Bundle, BundleRequest, Serves, build_bootstrap, bundle};
use emmaa_runtime::Effects;
use emmaa_runtime::effects::{ErrorKind, Invocation, InvocationType};
use emmaa_runtime::{EventContext, GuestRun, Settings};
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use support::bundle::unzip;
use support::fault_proxy::{Fault, FaultProxy};
use support::guests::{NOW, STAMP, guest, settings};
use support::http::{Reply, serve};
use support::moto::{Moto, recorded_body};
use support::runtime_api::RuntimeApi;
use support::workspace;

const QUEUE: &str = "emmaa-models-update-test";
const DEFINITION: &str = "emmaa_jobdef";

/// Creates the default queue and job definition (Batch needs a role and a
/// compute environment under them).
async fn create_batch_queue(moto: &Moto, config: &SdkConfig) {
    let role = moto.create_role("emmaa-batch");
    let batch = aws_sdk_batch::Client::new(config);
    let environment = batch
        .create_compute_environment()
        .compute_environment_name("emmaa-unmanaged")
        .r#type(CeType::Unmanaged)
        .service_role(role)
        .send()
        .await
        .unwrap();
    let order = ComputeEnvironmentOrder::builder()
        .order(1)
        .compute_environment(environment.compute_environment_arn().unwrap())
        .build();
    batch
        .create_job_queue()
        .job_queue_name(QUEUE)
        .state(JqState::Enabled)
        .priority(1)
        .compute_environment_order(order)
        .send()
        .await
        .unwrap();
    let requirement = |kind, value: &str| ResourceRequirement::builder().r#type(kind).value(value).build();
    let container = ContainerProperties::builder()
        .image("emmaa")
        .resource_requirements(requirement(ResourceType::Vcpu, "1"))
        .resource_requirements(requirement(ResourceType::Memory, "512"))
        .build();
    batch
        .register_job_definition()
        .job_definition_name(DEFINITION)
        .r#type(JobDefinitionType::Container)
        .container_properties(container)
        .send()
        .await
        .unwrap();
}

/// Creates `bucket` holding `objects`, a few uploads at a time.
async fn create_bucket(config: &SdkConfig, bucket: &str, objects: Vec<(String, Vec<u8>)>) {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    futures::stream::iter(objects)
        .map(|(key, body)| {
            let s3 = s3.clone();
            async move {
                s3.put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(body.into())
                    .send()
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
}

/// The example bucket's files as (key, contents).
fn example_objects() -> Vec<(String, Vec<u8>)> {
    let root = workspace().join("examples/bucket");
    let mut objects = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let key = path.strip_prefix(&root).unwrap().to_str().unwrap().to_owned();
                objects.push((key, std::fs::read(&path).unwrap()));
            }
        }
    }
    objects
}

/// Runs `guest_name` on `event` with the production AWS clients (retries,
/// timeouts) pointed at `address`: moto, or a fault proxy in front of it.
async fn run_on_aws(guest_name: &str, event: Value, address: &str, settings: Settings) -> GuestRun {
    let context = EventContext {
        function_name: guest_name.into(),
        request_id: "e2e".into(),
        deadline_ms: NOW * 1000 + 900_000,
        time_left: std::time::Duration::from_secs(900),
        now: NOW,
    };
    guest(guest_name)
        .handle(
            &event.to_string(),
            &context,
            Arc::new(effects_for(address).await),
            Arc::new(settings),
        )
        .await
}

// ---- the AWS backend ----------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn update_pipeline_lists_every_page_reads_every_config_and_invokes_every_daily_model() {
    const MODELS: usize = 1_205;
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let model = |n: usize| format!("model{n:04}");
    let objects = (0..MODELS)
        .map(|n| {
            let config = match n % 3 {
                0 => json!({"run_daily_update": true}),
                1 => json!({"run_daily_tests": true}),
                _ => json!({"make_tests": true}),
            };
            (
                format!("models/{}/config.json", model(n)),
                config.to_string().into_bytes(),
            )
        })
        .collect();
    create_bucket(&config, "emmaa", objects).await;
    moto.start_recording();

    let outcome = run_on_aws("update_pipeline", json!({}), &moto.address, settings(&[])).await;
    assert_eq!(
        outcome.response().cloned(),
        Some(json!({"statusCode": 200, "result": "SUCCESS"})),
        "{:?}",
        outcome.error_message()
    );

    let recorded = moto.recording();
    let urls: Vec<&str> = recorded.iter().map(|r| r["url"].as_str().unwrap()).collect();
    let listings = urls.iter().filter(|url| url.contains("list-type=2")).count();
    assert_eq!(listings, 2, "1,205 prefixes take two pages of 1,000");
    let paths = urls.iter().map(|url| url.split('?').next().unwrap());
    let mut read: Vec<&str> = paths.filter(|path| path.ends_with("/config.json")).collect();
    read.sort();
    let expected: Vec<String> = (0..MODELS)
        .map(|n| format!("/emmaa/models/{}/config.json", model(n)))
        .collect();
    assert_eq!(read.len(), MODELS);
    assert!(
        read.iter()
            .zip(&expected)
            .all(|(url, key)| url.ends_with(key.as_str()))
    );

    let mut updates = Vec::new();
    let mut manager_updates = Vec::new();
    for request in recorded
        .iter()
        .filter(|r| r["url"].as_str().unwrap().contains("/invocations"))
    {
        let body: Value = serde_json::from_str(&recorded_body(request)).unwrap();
        let url = request["url"].as_str().unwrap();
        if url.contains("/functions/emmaa-model-update/") {
            updates.push(body["model"].as_str().unwrap().to_owned());
        } else {
            assert!(url.contains("/functions/emmaa-mm-update/"), "{url}");
            manager_updates.push(
                body["Records"][0]["s3"]["object"]["key"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    updates.sort();
    manager_updates.sort();
    let expected_updates: Vec<String> = (0..MODELS).filter(|n| n % 3 == 0).map(model).collect();
    let expected_manager_updates: Vec<String> = (0..MODELS)
        .filter(|n| n % 3 == 1)
        .map(|n| format!("models/{}/model_2020-01-01-00-00-00.pkl", model(n)))
        .collect();
    assert_eq!(updates, expected_updates);
    assert_eq!(manager_updates, expected_manager_updates);
    // The host's own record keeps the order the guest asked in.
    let invoked: Vec<&emmaa_runtime::Action> = outcome
        .actions
        .iter()
        .filter(|a| matches!(a, emmaa_runtime::Action::LambdaInvoke { .. }))
        .collect();
    assert_eq!(
        invoked.len(),
        expected_updates.len() + expected_manager_updates.len()
    );
    assert_eq!(outcome.actions.len(), 1 + MODELS + invoked.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn each_batch_handler_submits_the_job_describe_jobs_shows() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_batch_queue(&moto, &config).await;
    let cases = [
        (
            "model_updates",
            json!({"model": "aml"}),
            format!("aml_update_{STAMP}"),
            "update-emmaa-models",
            "python scripts/run_model_update.py --model aml",
        ),
        (
            "model_manager_update",
            json!({"Records": [{"s3": {"object": {"key": "models/aml/model_2020-02-04-12-00-00.pkl"}}}]}),
            format!("aml_mm_update_{STAMP}"),
            "update-emmaa-model-manager",
            "python scripts/update_model_manager.py --model aml",
        ),
        (
            "model_tests",
            json!({"model": "aml", "tests": "large_corpus_tests"}),
            format!("aml_large_corpus_tests_tests_{STAMP}"),
            "update-emmaa-results",
            "python scripts/run_model_tests_from_s3.py --model aml --tests large_corpus_tests",
        ),
        (
            "test_stats",
            json!({"Records": [{"s3": {"object": {"key": "results/aml/results_simple_tests_2020-02-04-12-00-00.json"}}}]}),
            format!("aml_simple_tests_stats_{STAMP}"),
            "update-emmaa-test-stats",
            "python scripts/run_model_stats_from_s3.py --model aml --stats_mode tests --tests simple_tests",
        ),
        (
            "model_stats",
            json!({"model": "aml"}),
            format!("aml_model_stats_{STAMP}"),
            "update-emmaa-model-stats",
            "python scripts/run_model_stats_from_s3.py --model aml --stats_mode model",
        ),
        (
            "model_queries",
            json!({"model": "aml"}),
            format!("aml_queries_{STAMP}"),
            "update-emmaa-queries",
            "python scripts/answer_queries_from_s3.py --model aml",
        ),
        (
            "test_update",
            json!({"model": "aml"}),
            format!("aml_test_update_{STAMP}"),
            "update-emmaa-tests",
            "python scripts/model_to_tests.py --model aml",
        ),
    ];
    let batch = aws_sdk_batch::Client::new(&config);
    for (guest_name, event, job_name, purpose, script) in cases {
        let outcome = run_on_aws(guest_name, event, &moto.address, settings(&[])).await;
        let response = outcome
            .response()
            .cloned()
            .unwrap_or_else(|| panic!("{guest_name}: {:?}", outcome.error_message()));
        let job_id = response["job_id"].as_str().unwrap();
        assert_eq!(response["job_ids"], json!([job_id]));
        let described = batch.describe_jobs().jobs(job_id).send().await.unwrap();
        let job = &described.jobs()[0];
        assert_eq!(job.job_name(), Some(job_name.as_str()), "{guest_name}");
        assert!(
            job.job_queue().unwrap().ends_with(&format!("job-queue/{QUEUE}")),
            "{guest_name}: {:?}",
            job.job_queue()
        );
        assert!(
            job.job_definition()
                .unwrap()
                .contains(&format!("job-definition/{DEFINITION}:")),
            "{guest_name}"
        );
        let command = job.container().unwrap().command();
        assert_eq!(
            json!(command),
            support::guests::command(purpose, script),
            "{guest_name}"
        );
        assert!(job.depends_on().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_job_queue_is_refused_with_batchs_client_exception() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_batch_queue(&moto, &config).await;
    let settings = settings(&[
        ("EMMAA_LARGE_MODELS", "covid19"),
        ("EMMAA_LARGE_JOB_QUEUE", "no-such-queue"),
    ]);
    let event = json!({"Records": [
        {"s3": {"object": {"key": "models/aml/model_2020-02-04-12-00-00.pkl"}}},
        {"s3": {"object": {"key": "models/covid19/model_2020-02-04-12-00-00.pkl"}}}
    ]});
    let outcome = run_on_aws("model_manager_update", event, &moto.address, settings).await;
    let response = outcome.response().cloned().unwrap();
    assert_eq!(response["statusCode"], 207);
    assert_eq!(
        response["job_ids"].as_array().unwrap().len(),
        1,
        "aml's job still went through"
    );
    let refusal = &response["refused"][0];
    assert_eq!(refusal["item"], format!("covid19_mm_update_{STAMP}"));
    let reason = refusal["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "submitting job \"covid19_mm_update_{STAMP}\" to queue \"no-such-queue\" failed: ClientException"
        )),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_config_is_named_by_model() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_bucket(
        &config,
        "emmaa",
        vec![(
            "models/aml/config.json".into(),
            br#"{"make_tests": true}"#.to_vec(),
        )],
    )
    .await;
    let outcome = run_on_aws(
        "test_pipeline",
        json!({"model": "brca"}),
        &moto.address,
        settings(&[]),
    )
    .await;
    assert_eq!(outcome.response(), None);
    let error = outcome.error_message().unwrap();
    assert!(
        error.starts_with("reading s3://emmaa/models/brca/config.json failed: NoSuchKey"),
        "{error}"
    );
    let event = json!({"Records": [{"s3": {"object": {"key": "results/brca/model_manager_2020-02-04-12-00-00.pkl"}}}]});
    let outcome = run_on_aws("after_update", event, &moto.address, settings(&[])).await;
    assert_eq!(
        outcome.status_code(),
        Some(207),
        "the three invocations still went out"
    );
    assert_eq!(outcome.actions.len(), 4);
}

// ---- the bootstrap, as Lambda runs it -----------------------------------

/// The bootstrap, built once per test run in the tests' own profile.
fn bootstrap() -> &'static Path {
    static BOOTSTRAP: OnceLock<PathBuf> = OnceLock::new();
    BOOTSTRAP.get_or_init(|| {
        build_bootstrap("dev", Arch::X86_64, &mut |line| eprintln!("{line}"))
            .unwrap_or_else(|err| panic!("{err}"))
    })
}

fn bundle_for(guest: &str, dir: &Path) -> Bundle {
    bundle(&BundleRequest {
        serves: Serves::One {
            guest: guest.into(),
            function: None,
        },
        arch: Arch::X86_64,
        profile: "dev".into(),
        bootstrap: Some(bootstrap().to_owned()),
        out: Some(dir.join(format!("{guest}.zip"))),
        function_prefix: "emmaa-".into(),
    })
    .unwrap_or_else(|err| panic!("{err}"))
}

/// Starts `root/bootstrap` the way Lambda does, for `function`.
fn start_bootstrap(
    root: &Path,
    function: &str,
    api: &RuntimeApi,
    env: &[(String, String)],
) -> std::process::Child {
    start_bootstrap_with(Command::new(root.join("bootstrap")), root, function, api, env)
}

/// Starts `command` (the bootstrap, or an emulator running it) the way
/// Lambda starts a bootstrap, for `function`.
fn start_bootstrap_with(
    mut command: Command,
    root: &Path,
    function: &str,
    api: &RuntimeApi,
    env: &[(String, String)],
) -> std::process::Child {
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root)
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("LAMBDA_TASK_ROOT", root)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

const PATIENCE: Duration = Duration::from_secs(120);

/// Runs `root/bootstrap` as `function` on one event (request id
/// `request-1`): what it posted to the Runtime API first, and its output.
fn answer_one_event(
    root: &Path,
    function: &str,
    event: &str,
    env: &[(String, String)],
) -> (Option<support::http::Message>, std::process::Output) {
    let api = RuntimeApi::start(vec![("request-1".into(), event.to_owned())]);
    let mut child = start_bootstrap(root, function, &api, env);
    let posted = api.next_post(PATIENCE);
    let _ = child.kill();
    (posted, child.wait_with_output().unwrap())
}

/// Bundles `guest` and unzips it into `dir`, as Lambda does.
fn unpacked_bundle(guest: &str, dir: &Path) -> Bundle {
    let bundle = bundle_for(guest, dir);
    unzip(&bundle.zip, dir);
    bundle
}

#[tokio::test(flavor = "multi_thread")]
async fn one_bundle_for_every_function_answers_each_functions_example_event_through_the_runtime_api() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_bucket(&config, "emmaa", example_objects()).await;
    create_batch_queue(&moto, &config).await;
    let dir = tempfile::tempdir().unwrap();
    let all = bundle(&BundleRequest {
        serves: Serves::All,
        arch: Arch::X86_64,
        profile: "dev".into(),
        bootstrap: Some(bootstrap().to_owned()),
        out: Some(dir.path().join("pipeline.zip")),
        function_prefix: "emmaa-".into(),
    })
    .unwrap_or_else(|err| panic!("{err}"));
    unzip(&all.zip, dir.path());
    let expected: BTreeMap<String, String> = emmaa_runtime::functions::FUNCTIONS
        .iter()
        .map(|entry| (format!("emmaa-{}", entry.function), entry.guest.to_owned()))
        .collect();
    assert_eq!(all.functions, expected, "one zip serves all eleven functions");
    for (function, guest) in &all.functions {
        let event =
            std::fs::read_to_string(workspace().join(format!("examples/events/{function}.json"))).unwrap();
        let (posted, output) = answer_one_event(dir.path(), function, &event, &moto.env());
        let posted = posted.unwrap_or_else(|| {
            panic!(
                "{guest}: no answer; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        assert!(
            posted
                .start
                .contains("/2018-06-01/runtime/invocation/request-1/response"),
            "{guest}: {} {}",
            posted.start,
            posted.body_text()
        );
        let answer: Value = serde_json::from_slice(&posted.body).unwrap();
        assert_eq!(answer["statusCode"], 200, "{guest}: {answer}");
        assert_eq!(answer["result"], "SUCCESS", "{guest}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_event_becomes_a_function_error_with_type_and_message() {
    let dir = tempfile::tempdir().unwrap();
    unpacked_bundle("model_updates", dir.path());
    let (posted, _) = answer_one_event(
        dir.path(),
        "emmaa-model-update",
        r#"{"model": "aml && reboot"}"#,
        &[],
    );
    let posted = posted.expect("the bootstrap answers");
    assert!(
        posted
            .start
            .contains("/2018-06-01/runtime/invocation/request-1/error"),
        "{}",
        posted.start
    );
    let error: Value = serde_json::from_slice(&posted.body).unwrap();
    assert_eq!(error["errorType"], "EmmaaEventRefused");
    assert_eq!(
        error["errorMessage"],
        "model \"aml && reboot\" is not a valid model name: it must match ^[A-Za-z0-9][A-Za-z0-9_-]*$"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_credentials_the_job_fails_with_a_clear_reason() {
    let dir = tempfile::tempdir().unwrap();
    unpacked_bundle("model_updates", dir.path());
    let env = [
        ("AWS_ENDPOINT_URL".to_owned(), "http://127.0.0.1:9".to_owned()),
        ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
    ];
    let (posted, _) = answer_one_event(dir.path(), "emmaa-model-update", r#"{"model": "aml"}"#, &env);
    let error: Value = serde_json::from_slice(&posted.expect("the bootstrap answers").body).unwrap();
    let message = error["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("NoCredentials: no usable AWS credentials"),
        "{message}"
    );
}

#[test]
fn the_bootstrap_refuses_to_start_for_a_function_its_manifest_does_not_serve() {
    let dir = tempfile::tempdir().unwrap();
    unpacked_bundle("model_updates", dir.path());
    let api = RuntimeApi::start(Vec::new());
    let child = start_bootstrap(dir.path(), "emmaa-queries", &api, &[]);
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains(r#"this bundle has no component for function \"emmaa-queries\" (it serves [\"emmaa-model-update\"])"#),
        "{log}"
    );
}

#[test]
fn the_bootstrap_carries_no_compiler_and_refuses_an_uncompiled_component() {
    let dir = tempfile::tempdir().unwrap();
    unpacked_bundle("model_updates", dir.path());
    let wasm = Path::new(emmaa_runtime::functions::GUEST_DIR).join("model_updates.wasm");
    std::fs::copy(wasm, dir.path().join("model_updates.wasm")).unwrap();
    let manifest_path = dir.path().join("manifest.json");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(
        &manifest_path,
        manifest.replace("model_updates.cwasm", "model_updates.wasm"),
    )
    .unwrap();
    let api = RuntimeApi::start(Vec::new());
    let output = start_bootstrap(dir.path(), "emmaa-model-update", &api, &[])
        .wait_with_output()
        .unwrap();
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("is not precompiled and this host has no compiler"),
        "{log}"
    );
}

#[test]
fn the_bootstrap_needs_no_glibc_newer_than_amazon_linux_2023s() {
    let output = Command::new("objdump")
        .arg("-T")
        .arg(bootstrap())
        .output()
        .expect("objdump (binutils) runs");
    assert!(output.status.success());
    let symbols = String::from_utf8_lossy(&output.stdout);
    let versions: Vec<(u32, u32)> = symbols
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|version| {
            let mut parts = version.split('.');
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .collect();
    assert!(!versions.is_empty(), "the bootstrap links glibc dynamically");
    let newest = versions.iter().max().unwrap();
    assert!(
        *newest <= (2, 34),
        "the bootstrap needs GLIBC_{}.{}",
        newest.0,
        newest.1
    );
    assert_eq!(
        emmaa_deploy::glibc::newest_glibc_version(&std::fs::read(bootstrap()).unwrap()),
        Some(*newest)
    );
}

// ---- deploy upload ------------------------------------------------------

/// A zip holding a Python handler, as the original functions were deployed.
fn python_zip() -> Vec<u8> {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file("model_updates.py", zip::write::SimpleFileOptions::default())
        .unwrap();
    writer
        .write_all(b"def lambda_handler(event, context):\n    return {}\n")
        .unwrap();
    writer.finish().unwrap().into_inner()
}

fn deploy(args: &[&str], moto: &Moto) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_deploy"))
        .args(args)
        .envs(moto.env())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_upload_replaces_a_python_function_and_switches_its_runtime() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let role = moto.create_role("emmaa-lambda");
    let lambda = aws_sdk_lambda::Client::new(&config);
    lambda
        .create_function()
        .function_name("emmaa-model-update")
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .handler("model_updates.lambda_handler")
        .role(role)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(python_zip().into())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let configuration = || async {
        let request = lambda
            .get_function_configuration()
            .function_name("emmaa-model-update");
        request.send().await.unwrap()
    };
    let before = configuration().await;
    bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("upload.zip");
    let zip_arg = zip_path.to_str().unwrap();

    let upload_with = |flag: &str| {
        let args = [
            "upload",
            "model_updates",
            "emmaa-model-update",
            "--profile",
            "dev",
            "--out",
            zip_arg,
            flag,
        ];
        deploy(&args, &moto)
    };
    let dry = upload_with("--dry-run");
    let dry_out = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{dry_out}{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(dry_out.contains("dry run: would switch emmaa-model-update: runtime python3.12 -> provided.al2023, handler model_updates.lambda_handler -> bootstrap"), "{dry_out}");
    let unchanged = configuration().await;
    assert_eq!(unchanged.code_sha256(), before.code_sha256());
    assert_eq!(unchanged.runtime(), before.runtime());

    let upload = upload_with("--publish");
    let out = String::from_utf8_lossy(&upload.stdout);
    assert!(
        upload.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&upload.stderr)
    );
    let zip = std::fs::read(&zip_path).unwrap();
    use base64::Engine as _;
    use sha2::Digest as _;
    let sha = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&zip));
    assert!(
        out.contains(&format!("AWS answered: CodeSha256 {sha} (matches the bundle)")),
        "{out}"
    );
    assert!(
        out.contains("switching emmaa-model-update: runtime python3.12 -> provided.al2023"),
        "{out}"
    );
    assert!(
        out.contains("AWS answered: runtime provided.al2023, handler bootstrap"),
        "{out}"
    );
    let window = out
        .lines()
        .find_map(|line| line.strip_prefix("the switch ended "))
        .and_then(|rest| rest.split_once(" ms"))
        .map(|(ms, _)| ms.parse::<u64>().unwrap())
        .unwrap_or_else(|| panic!("the upload says how long the switch took: {out}"));
    eprintln!("runtime switch window against moto: {window} ms");
    assert!(out.contains("published emmaa-model-update version"), "{out}");

    let after = configuration().await;
    assert_eq!(after.code_sha256(), Some(sha.as_str()));
    assert_eq!(after.runtime().map(|r| r.as_str()), Some("provided.al2023"));
    assert_eq!(after.handler(), Some("bootstrap"));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut manifest = String::new();
    archive
        .by_name("manifest.json")
        .unwrap()
        .read_to_string(&mut manifest)
        .unwrap();
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(
        manifest["functions"]["emmaa-model-update"]["guest"],
        "model_updates"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_upload_to_a_missing_function_says_to_create_it() {
    let moto = Moto::start();
    bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.zip");
    let output = deploy(
        &[
            "upload",
            "model_updates",
            "emmaa-nope",
            "--profile",
            "dev",
            "--out",
            out.to_str().unwrap(),
        ],
        &moto,
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("function \"emmaa-nope\" does not exist: create it first"),
        "{stderr}"
    );
}

// ---- throttling ---------------------------------------------------------

/// An endpoint that answers `throttled` to the first `times` requests, then
/// `ok`; and the number of requests it got.
fn throttling_endpoint(
    times: usize,
    throttled: fn() -> Reply,
    ok: fn() -> Reply,
) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let address = serve(move |_request| {
        if seen.fetch_add(1, Ordering::SeqCst) < times {
            throttled()
        } else {
            ok()
        }
    });
    (address, calls)
}

fn slow_down() -> Reply {
    Reply::Respond {
        status: 503,
        headers: vec![("Content-Type".into(), "application/xml".into())],
        body: b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            .to_vec(),
    }
}

/// The production clients (retries, timeouts) pointed at `address`.
async fn effects_for(address: &str) -> AwsEffects {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://{address}"))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "test",
        ));
    AwsEffects::from_loader(loader).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_invocation_is_retried_until_it_goes_through() {
    let (address, calls) = throttling_endpoint(
        2,
        || {
            let mut reply = Reply::json(429, r#"{"message": "Rate exceeded"}"#);
            if let Reply::Respond { headers, .. } = &mut reply {
                headers.push(("x-amzn-ErrorType".into(), "TooManyRequestsException".into()));
            }
            reply
        },
        || Reply::json(200, r#"{"statusCode": 200}"#),
    );
    let invocation = Invocation {
        function_name: "emmaa-model-update".into(),
        invocation_type: InvocationType::RequestResponse,
        payload: r#"{"model": "aml"}"#.into(),
        work: None,
    };
    let outcome = effects_for(&address).await.invoke(&invocation).await.unwrap();
    assert_eq!(
        (outcome.status_code, outcome.payload.as_str()),
        (200, r#"{"statusCode": 200}"#)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_slow_down_is_retried_until_it_goes_through() {
    let (address, calls) =
        throttling_endpoint(2, slow_down, || Reply::json(200, r#"{"run_daily_update": true}"#));
    let config = effects_for(&address)
        .await
        .get_object("emmaa", "models/aml/config.json", 1 << 20)
        .await
        .unwrap();
    assert_eq!(config, br#"{"run_daily_update": true}"#);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_that_outlasts_the_sdks_attempts_is_answered_as_throttled_for_the_host_to_wait_out() {
    let (address, calls) = throttling_endpoint(usize::MAX, slow_down, || Reply::json(200, "{}"));
    let err = effects_for(&address)
        .await
        .get_object("emmaa", "models/aml/config.json", 1 << 20)
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Throttled, "SlowDown"));
    assert_eq!(calls.load(Ordering::SeqCst), emmaa_aws::MAX_ATTEMPTS as usize);
}

// ---- faults through the production client -------------------------------

/// A bucket of daily models (and, for `without_config`, a model with no
/// `config.json`) in moto, and a fault proxy in front of moto.
async fn daily_models_behind_a_proxy(moto: &Moto, daily: &[&str], without_config: &[&str]) -> FaultProxy {
    let config = moto.sdk_config().await;
    let mut objects: Vec<(String, Vec<u8>)> = daily
        .iter()
        .map(|model| {
            let config = json!({"run_daily_update": true}).to_string().into_bytes();
            (format!("models/{model}/config.json"), config)
        })
        .collect();
    objects.extend(without_config.iter().map(|model| {
        (
            format!("models/{model}/model_2020-01-01-00-00-00.pkl"),
            Vec::new(),
        )
    }));
    create_bucket(&config, "emmaa", objects).await;
    FaultProxy::start(&moto.address)
}

/// The invocation payload update_pipeline sends for `model`.
fn update_payload(model: &str) -> String {
    json!({ "model": model }).to_string()
}

/// Checks that each of `models` reached Lambda through `proxy` exactly once.
fn assert_each_invoked_once(proxy: &FaultProxy, models: &[impl AsRef<str>]) {
    for model in models {
        let model = model.as_ref();
        let passed = proxy
            .seen(&update_payload(model))
            .iter()
            .filter(|seen| seen.passed)
            .count();
        assert_eq!(passed, 1, "{model} was invoked {passed} times");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_faults_are_retried_by_the_production_client_and_no_model_is_lost() {
    let moto = Moto::start();
    let models = ["aaa", "bbb", "ccc", "ddd"];
    let proxy = daily_models_behind_a_proxy(&moto, &models, &[]).await;
    // Four SlowDowns in a row: more than the SDK's default of three
    // attempts, so only the production retry settings get through.
    proxy
        .fail("/models/aaa/config.json", vec![Fault::s3_slow_down(); 4])
        .fail(
            "/models/bbb/config.json",
            vec![Fault::s3_internal_error(), Fault::Reset],
        )
        .fail("list-type=2", vec![Fault::s3_slow_down()])
        .fail(&update_payload("ccc"), vec![Fault::too_many_requests(); 4]);

    let outcome = run_on_aws("update_pipeline", json!({}), &proxy.address, settings(&[])).await;

    assert_eq!(
        outcome.response(),
        Some(&json!({"statusCode": 200, "result": "SUCCESS"})),
        "{:?}",
        outcome.error_message()
    );
    assert_eq!(proxy.seen("/models/aaa/config.json").len(), 5);
    assert_eq!(proxy.seen("/models/bbb/config.json").len(), 3);
    assert_eq!(proxy.seen(&update_payload("ccc")).len(), 5);
    assert_each_invoked_once(&proxy, &models);
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_past_the_retries_is_waited_out_and_permanent_faults_are_reported_per_model() {
    let moto = Moto::start();
    let proxy = daily_models_behind_a_proxy(&moto, &["bbb", "ccc", "ddd"], &["aaa"]).await;
    proxy
        .fail(&update_payload("bbb"), vec![Fault::function_error()])
        .fail(&update_payload("ccc"), vec![Fault::too_many_requests(); 5]);

    let outcome = run_on_aws("update_pipeline", json!({}), &proxy.address, settings(&[])).await;

    let response = outcome
        .response()
        .unwrap_or_else(|| panic!("{:?}", outcome.error_message()));
    assert_eq!(response["statusCode"], 207);
    let items: Vec<&str> = response["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|refused| refused["item"].as_str().unwrap())
        .collect();
    assert_eq!(items, ["aaa", "bbb"], "{response:#}");
    // ccc's five 429s outlast the SDK's attempts; the host pauses and
    // calls again, and the sixth goes through.
    let ccc = proxy.seen(&update_payload("ccc"));
    assert_eq!(ccc.len(), 6);
    assert_eq!(ccc.iter().filter(|seen| seen.passed).count(), 1);
    let passed = proxy
        .seen(&update_payload("ddd"))
        .iter()
        .filter(|seen| seen.passed)
        .count();
    assert_eq!(passed, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_faults_are_retried_or_reported_per_record_and_a_silent_endpoint_times_out() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_batch_queue(&moto, &config).await;
    let proxy = FaultProxy::start(&moto.address);
    let job = |model: &str| format!("{model}_mm_update_{STAMP}");
    proxy
        .fail(&job("aaa"), vec![Fault::too_many_requests(); 2])
        .fail(
            &job("bbb"),
            vec![Fault::json_error(400, "ClientException", "Job queue is disabled")],
        )
        .fail(&job("ccc"), vec![Fault::Hold]);
    let keys: Vec<String> = ["aaa", "bbb", "ccc"]
        .iter()
        .map(|model| format!("models/{model}/model_2020-02-04-12-00-00.pkl"))
        .collect();
    let event = json!({"Records": keys.iter().map(|key| json!({"s3": {"object": {"key": key}}})).collect::<Vec<_>>()});

    let run = run_on_aws("model_manager_update", event, &proxy.address, settings(&[]));
    let outcome = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("a call that gets no answer is given up and retried, not waited on forever");

    let response = outcome
        .response()
        .unwrap_or_else(|| panic!("{:?}", outcome.error_message()));
    assert_eq!(response["statusCode"], 207);
    assert_eq!(response["refused"][0]["item"], job("bbb"));
    let reason = response["refused"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("ClientException: Job queue is disabled"),
        "{reason}"
    );
    assert_eq!(response["job_ids"].as_array().unwrap().len(), 2);
    let batch = aws_sdk_batch::Client::new(&config);
    for model in ["aaa", "ccc"] {
        let filter = aws_sdk_batch::types::KeyValuesPair::builder()
            .name("JOB_NAME")
            .values(job(model))
            .build();
        let listed = batch
            .list_jobs()
            .job_queue(QUEUE)
            .filters(filter)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.job_summary_list().len(), 1, "{model}");
    }
}

// ---- exactly once, through the real bootstrap ---------------------------

/// `moto.env()` with the AWS endpoint moved to `address` (a proxy) and
/// one call in flight at a time, so a kill lands between two known calls.
fn env_through(moto: &Moto, address: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = moto
        .env()
        .into_iter()
        .filter(|(name, _)| name != "AWS_ENDPOINT_URL")
        .collect();
    env.push(("AWS_ENDPOINT_URL".into(), format!("http://{address}")));
    env.push(("EMMAA_MAX_IN_FLIGHT".into(), "1".into()));
    env
}

/// An S3 event of one `models/{model}/...pkl` record per model, with sequencers.
fn model_states_event(models: &[String]) -> String {
    let records: Vec<Value> = models
        .iter()
        .enumerate()
        .map(|(n, model)| {
            let key = format!("models/{model}/model_2020-02-04-12-00-00.pkl");
            json!({"s3": {"object": {"key": key, "sequencer": format!("0C{n:04}")}}})
        })
        .collect();
    json!({ "Records": records }).to_string()
}

/// The names of every job in the default queue, without their `_NOW`.
async fn job_stems(config: &SdkConfig) -> Vec<String> {
    let batch = aws_sdk_batch::Client::new(config);
    let listed = batch.list_jobs().job_queue(QUEUE).send().await.unwrap();
    let mut stems: Vec<String> = listed
        .job_summary_list()
        .iter()
        .map(|job| {
            let name = job.job_name().unwrap();
            name[..name.len() - "_YYYYMMDD_HHMMSS".len()].to_owned()
        })
        .collect();
    stems.sort();
    stems
}

/// How long a runtime about to be killed gets to finish what is in flight
/// besides the call that never returns.
const SETTLE: Duration = Duration::from_secs(1);

/// The request id of the killed runtime's event, and of Lambda's retry.
const KILLED_REQUEST: &str = "request-1";

/// Runs `root/bootstrap` as `function` on `event` until `proxy` has seen a
/// request containing `needle`, lets what else is in flight land
/// ([`SETTLE`]), and kills it.
fn kill_when_seen(
    root: &Path,
    function: &str,
    event: &str,
    env: &[(String, String)],
    proxy: &FaultProxy,
    needle: &str,
) {
    let api = RuntimeApi::start(vec![(KILLED_REQUEST.into(), event.to_owned())]);
    let mut killed = start_bootstrap(root, function, &api, env);
    let started = std::time::Instant::now();
    while proxy.seen(needle).is_empty() {
        assert!(started.elapsed() < PATIENCE, "no request with {needle} came");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(SETTLE);
    killed.kill().unwrap();
    let _ = killed.wait();
}

/// Lambda's retry of the killed event (the same request id) in a fresh
/// runtime: its answer.
fn answer_retry(root: &Path, function: &str, event: &str, env: &[(String, String)]) -> Value {
    let api = RuntimeApi::start(vec![(KILLED_REQUEST.into(), event.to_owned())]);
    let mut retry = start_bootstrap(root, function, &api, env);
    let answer = api.next_post(PATIENCE).expect("an answer to the retry");
    let _ = retry.kill();
    let _ = retry.wait();
    serde_json::from_slice(&answer.body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_s3_event_delivered_twice_to_the_bootstrap_gets_one_job_per_record() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_bucket(&config, "emmaa", Vec::new()).await;
    create_batch_queue(&moto, &config).await;
    let dir = tempfile::tempdir().unwrap();
    unpacked_bundle("model_manager_update", dir.path());
    let models: Vec<String> = ["aml", "brca", "covid19"].map(str::to_owned).to_vec();
    let event = model_states_event(&models);
    let api = RuntimeApi::start(vec![
        ("delivery-1".into(), event.clone()),
        ("delivery-2".into(), event),
    ]);
    let mut child = start_bootstrap(dir.path(), "emmaa-mm-update", &api, &moto.env());
    let first = api.next_post(PATIENCE).expect("an answer to the first delivery");
    let second = api.next_post(PATIENCE).expect("an answer to the second delivery");
    let _ = child.kill();
    let _ = child.wait();
    let (first, second): (Value, Value) = (
        serde_json::from_slice(&first.body).unwrap(),
        serde_json::from_slice(&second.body).unwrap(),
    );
    assert_eq!(first["statusCode"], 200, "{first}");
    assert_eq!(second["statusCode"], 200, "{second}");
    assert_eq!(second["job_ids"], first["job_ids"]);
    assert_eq!(second["already_submitted"].as_array().unwrap().len(), 3);
    let expected: Vec<String> = models.iter().map(|model| format!("{model}_mm_update")).collect();
    assert_eq!(job_stems(&config).await, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runtime_killed_half_way_and_retried_leaves_exactly_one_job_per_record() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_bucket(&config, "emmaa", Vec::new()).await;
    create_batch_queue(&moto, &config).await;
    let proxy = FaultProxy::start(&moto.address);
    // The 21st submission reaches Batch, but its answer never comes back:
    // the job exists, and the runtime dies before it can record it.
    proxy.fail(r#""jobName":"m20_mm_update_"#, vec![Fault::Swallow]);
    let dir = tempfile::tempdir().unwrap();
    unpacked_bundle("model_manager_update", dir.path());
    let models: Vec<String> = (0..40).map(|n| format!("m{n:02}")).collect();
    let event = model_states_event(&models);
    let env = env_through(&moto, &proxy.address);

    // Killed long before the swallowed call's 10 s attempt timeout would
    // make the SDK send it again.
    kill_when_seen(
        dir.path(),
        "emmaa-mm-update",
        &event,
        &env,
        &proxy,
        r#""jobName":"m20_mm_update_"#,
    );
    // Those before m20 and m20 itself, which Batch got: claims overlap the
    // work, so which records went first is not fixed, only that some did.
    let before = job_stems(&config).await.len();
    assert!((1..40).contains(&before), "{before} jobs before the retry");

    let answer = answer_retry(dir.path(), "emmaa-mm-update", &event, &env);
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(
        answer["already_submitted"].as_array().unwrap().len(),
        before,
        "every job there before the retry, the swallowed one found by ListJobs: {answer}"
    );
    let expected: Vec<String> = models.iter().map(|model| format!("{model}_mm_update")).collect();
    assert_eq!(job_stems(&config).await, expected, "exactly one job per record");
}

#[tokio::test(flavor = "multi_thread")]
async fn update_pipeline_killed_half_way_and_retried_invokes_each_daily_model_once() {
    let moto = Moto::start();
    let models: Vec<String> = (0..10).map(|n| format!("m{n:02}")).collect();
    let names: Vec<&str> = models.iter().map(String::as_str).collect();
    let proxy = daily_models_behind_a_proxy(&moto, &names, &[]).await;
    // The sixth invocation never reaches Lambda; the runtime dies waiting.
    proxy.fail(&update_payload("m05"), vec![Fault::Hold]);
    let dir = tempfile::tempdir().unwrap();
    unpacked_bundle("update_pipeline", dir.path());
    let env = env_through(&moto, &proxy.address);

    kill_when_seen(
        dir.path(),
        "emmaa-update-pipeline",
        "{}",
        &env,
        &proxy,
        &update_payload("m05"),
    );
    let invoked_before = |model: &String| proxy.seen(&update_payload(model)).iter().any(|seen| seen.passed);
    let before = models.iter().filter(|model| invoked_before(model)).count();
    // Claims overlap the work, so which models went first is not fixed.
    assert!(
        (1..10).contains(&before),
        "{before} models invoked before the retry"
    );

    let answer = answer_retry(dir.path(), "emmaa-update-pipeline", "{}", &env);
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(
        answer["already_invoked"].as_array().unwrap().len(),
        before,
        "{answer}"
    );
    assert_each_invoked_once(&proxy, &models);
}

// ---- the flight recorder ----------------------------------------------

/// The `host` command, built (if it is not already) in the workspace's
/// target directory with the workspace's features, as the test command
/// builds it.
fn host_cli() -> &'static Path {
    static HOST: OnceLock<PathBuf> = OnceLock::new();
    HOST.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace())
            .args(["build", "--workspace", "--bin", "host", "--quiet"])
            .status()
            .unwrap();
        assert!(status.success(), "building the host command failed");
        workspace().join("target/debug/host")
    })
}

/// Runs `host` with `args` and only `env` (and PATH): its JSON, or its
/// lines, and its exit status.
fn host(args: &[&str], env: &[(String, String)]) -> (String, Option<i32>) {
    let output = Command::new(host_cli())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("EMMAA_COMPILE_CACHE", "")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.code() != Some(2), "host {args:?}: {stderr}");
    (String::from_utf8(output.stdout).unwrap(), output.status.code())
}

/// Every object under `prefix` in the bucket `emmaa`, by key.
async fn objects_under(config: &SdkConfig, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    );
    let listed = s3
        .list_objects_v2()
        .bucket("emmaa")
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    let mut objects = BTreeMap::new();
    for key in listed.contents().iter().filter_map(|object| object.key()) {
        let object = s3.get_object().bucket("emmaa").key(key).send().await.unwrap();
        objects.insert(key.to_owned(), object.body.collect().await.unwrap().to_vec());
    }
    objects
}

#[tokio::test(flavor = "multi_thread")]
async fn traces_recorded_by_the_bootstrap_replay_here_exactly_and_check_a_changed_guest() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let daily = json!({"run_daily_update": true}).to_string().into_bytes();
    let objects = ["aaa", "bbb"].map(|model| (format!("models/{model}/config.json"), daily.clone()));
    create_bucket(&config, "emmaa", objects.to_vec()).await;
    create_batch_queue(&moto, &config).await;
    let proxy = FaultProxy::start(&moto.address);
    // Batch refuses bbb's job: the model manager's answer is partial, with
    // an AWS error in it.
    proxy.fail(
        r#""jobName":"bbb_mm_update_"#,
        vec![Fault::json_error(400, "ClientException", "Job queue is disabled")],
    );
    let mut env = env_through(&moto, &proxy.address);
    env.push(("EMMAA_TRACE_PREFIX".into(), "traces/".into()));
    let records = model_states_event(&["aaa".into(), "bbb".into()]);
    let events = [
        ("update_pipeline", "emmaa-update-pipeline", "{}".to_owned()),
        (
            "model_updates",
            "emmaa-model-update",
            json!({"model": "aaa"}).to_string(),
        ),
        ("model_manager_update", "emmaa-mm-update", records),
    ];
    let mut answers = BTreeMap::new();
    for (guest, function, event) in &events {
        let dir = tempfile::tempdir().unwrap();
        unpacked_bundle(guest, dir.path());
        let (posted, output) = answer_one_event(dir.path(), function, event, &env);
        let posted = posted.unwrap_or_else(|| panic!("{guest}: {}", String::from_utf8_lossy(&output.stderr)));
        answers.insert(
            function.to_string(),
            serde_json::from_slice::<Value>(&posted.body).unwrap(),
        );
    }
    assert_eq!(answers["emmaa-update-pipeline"]["statusCode"], 200);
    assert_eq!(answers["emmaa-model-update"]["statusCode"], 200);
    let partial = &answers["emmaa-mm-update"];
    assert_eq!(partial["statusCode"], 207, "{partial}");
    assert!(
        partial["refused"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("ClientException")
    );

    // One trace per event, by function and day, written before the answer.
    let traces = objects_under(&config, "traces/").await;
    let functions: Vec<&str> = traces.keys().map(|key| key.split('/').nth(1).unwrap()).collect();
    assert_eq!(
        functions,
        ["emmaa-mm-update", "emmaa-model-update", "emmaa-update-pipeline"]
    );
    let key_of = |function: &str| {
        traces
            .keys()
            .find(|key| key.starts_with(&format!("traces/{function}/")))
            .unwrap()
            .clone()
    };
    let fan_out = key_of("emmaa-update-pipeline");
    assert!(fan_out.contains("/request-1-"), "{fan_out}");

    // The fan-out, straight from S3; the others from files, with no AWS
    // settings at all.
    let (printed, status) = host(
        &["replay", "--trace", &format!("s3://emmaa/{fan_out}")],
        &moto.env(),
    );
    let mut replays = BTreeMap::new();
    replays.insert(
        "emmaa-update-pipeline".to_owned(),
        (serde_json::from_str::<Value>(&printed).unwrap(), status),
    );
    let files = tempfile::tempdir().unwrap();
    for (key, body) in &traces {
        std::fs::write(files.path().join(key.replace('/', "_")), body).unwrap();
    }
    for function in ["emmaa-model-update", "emmaa-mm-update"] {
        let file = files.path().join(key_of(function).replace('/', "_"));
        let (printed, status) = host(&["replay", "--trace", file.to_str().unwrap()], &[]);
        replays.insert(
            function.to_owned(),
            (serde_json::from_str::<Value>(&printed).unwrap(), status),
        );
    }
    for (function, (replay, status)) in &replays {
        let trace: Value = serde_json::from_slice(&traces[&key_of(function)]).unwrap();
        assert_eq!(
            replay["response"], answers[function],
            "{function}: the answer Lambda got"
        );
        assert_eq!(replay["response"], trace["answer"]["response"], "{function}");
        let recorded: Vec<&Value> = trace["calls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|call| call["actions"].as_array().unwrap())
            .collect();
        let replayed: Vec<&Value> = replay["actions"].as_array().unwrap().iter().collect();
        assert_eq!(replayed, recorded, "{function}");
        assert_eq!(replay["trace"]["same"], true, "{function}: {replay:#}");
        assert_eq!(replay["trace"]["exact"], true, "{function}");
        assert_eq!(
            replay["trace"]["component"]["same"], true,
            "{function}: {replay:#}"
        );
        assert_eq!(*status, Some(0), "{function}");
    }
    // What the host decided is in the trace: claims, and Batch's error.
    let fan_out_actions = replays["emmaa-update-pipeline"].0["actions"].to_string();
    assert_eq!(
        fan_out_actions.matches("ledger.claim").count(),
        2,
        "{fan_out_actions}"
    );
    assert_eq!(fan_out_actions.matches("lambda.invoke").count(), 2);
    let mm: Value = serde_json::from_slice(&traces[&key_of("emmaa-mm-update")]).unwrap();
    assert!(
        mm["calls"].to_string().contains("Job queue is disabled"),
        "{mm:#}"
    );

    // A new build of model_updates that submits another job: reported with
    // its first difference; the others are the same.
    let changed = tempfile::tempdir().unwrap();
    for guest in ["update_pipeline", "model_manager_update"] {
        std::fs::copy(
            Path::new(emmaa_runtime::functions::GUEST_DIR).join(format!("{guest}.wasm")),
            changed.path().join(format!("{guest}.wasm")),
        )
        .unwrap();
    }
    std::fs::copy(
        Path::new(emmaa_runtime::functions::GUEST_DIR).join("model_stats.wasm"),
        changed.path().join("model_updates.wasm"),
    )
    .unwrap();
    let dir = files.path().to_str().unwrap();
    let (lines, status) = host(
        &["check", dir, "--components", changed.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(status, Some(1), "{lines}");
    let different: Vec<&str> = lines
        .lines()
        .filter(|line| line.starts_with("DIFFERENT"))
        .collect();
    assert_eq!(different.len(), 1, "{lines}");
    assert!(different[0].contains("emmaa-model-update"), "{lines}");
    assert!(
        different[0].contains("call 1, at jobs[0].name: recorded \"aaa_update_")
            && different[0].contains("replayed \"aaa_model_stats_"),
        "{lines}"
    );
    assert!(lines.ends_with("3 traces: 2 same, 1 not\n"), "{lines}");
    let (lines, status) = host(&["check", dir], &[]);
    assert_eq!(
        (status, lines.lines().last()),
        (Some(0), Some("3 traces: 3 same, 0 not")),
        "{lines}"
    );

    // A trace that cannot be written changes nothing in the answer.
    proxy.fail("/emmaa/traces/", vec![Fault::s3_internal_error(); 20]);
    let dir = tempfile::tempdir().unwrap();
    unpacked_bundle("model_updates", dir.path());
    let event = json!({"model": "bbb"}).to_string();
    let (posted, output) = answer_one_event(dir.path(), "emmaa-model-update", &event, &env);
    let answer: Value = serde_json::from_slice(&posted.expect("an answer").body).unwrap();
    assert_eq!(
        (answer["statusCode"].clone(), answer["result"].clone()),
        (json!(200), json!("SUCCESS")),
        "{answer}"
    );
    assert!(answer["job_id"].is_string(), "{answer}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the trace was not written"), "{stderr}");
    assert_eq!(objects_under(&config, "traces/").await.len(), 3);
}

// ---- the pipeline as code -----------------------------------------------

/// cfn-lint, installed into `target/cfn-lint-venv` (pinned, whatever the
/// machine has).
fn cfn_lint() -> PathBuf {
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

/// Each statement's actions, as a sorted list of strings; a conditional
/// statement (`Fn::If`) counts as its first branch: the test's stack meets
/// every condition.
fn actions_of(statements: &Value) -> Vec<String> {
    let mut actions: Vec<String> = statements
        .as_array()
        .unwrap()
        .iter()
        .map(|statement| statement.get("Fn::If").map_or(statement, |branches| &branches[1]))
        .flat_map(|statement| match &statement["Action"] {
            Value::Array(many) => many.iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
            one => vec![one.as_str().unwrap().to_owned()],
        })
        .collect();
    actions.sort();
    actions
}

fn deploy_stack(moto: &Moto, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "stack",
        "--stack-name",
        "emmaa-next",
        "--artifact-bucket",
        "emmaa-artifacts",
        "--profile",
        "dev",
        "--bootstrap",
        bootstrap().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--poll",
        "0.1",
    ];
    args.extend_from_slice(extra);
    let output = deploy(&args, moto);
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
/// on an existing bucket whose other notification must survive.
#[tokio::test(flavor = "multi_thread")]
async fn deploy_stack_stands_up_every_function_role_rule_permission_log_group_and_queue() {
    use emmaa_deploy::template::template;
    use emmaa_runtime::functions::{FUNCTIONS, Trigger};
    let moto = Moto::start_unconfigured();
    let config = moto.sdk_config().await;
    create_bucket(&config, "emmaa", vec![]).await;
    let queue = moto.json_call("sqs", "AmazonSQS.CreateQueue", json!({"QueueName": "existing"}));
    assert!(queue["QueueUrl"].is_string(), "{queue}");
    let existing_queue = "arn:aws:sqs:us-east-1:123456789012:existing";
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
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
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("pipeline.zip");

    // A dry run changes nothing but prints every resource it would add.
    let dry = deploy_stack(
        &moto,
        &zip_path,
        &["--parameter", "FunctionPrefix=emmaa-next-", "--dry-run"],
    );
    assert!(
        dry.contains("Add     UpdatePipelineFunction (AWS::Lambda::Function)"),
        "{dry}"
    );
    assert!(dry.contains("dry run: would switch EventBridge notifications on for bucket emmaa, writing back its 1 other notifications"), "{dry}");
    let lambda = aws_sdk_lambda::Client::new(&config);
    let listed = lambda.list_functions().send().await.unwrap();
    assert!(listed.functions().is_empty(), "a dry run made functions");

    moto.start_recording();
    let out = deploy_stack(
        &moto,
        &zip_path,
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
    let zip = std::fs::read(&zip_path).unwrap();
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

    // Lambda: eleven functions, named with the stack's prefix, each running
    // the one bundle on provided.al2023 with its own role.
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
        assert_eq!(function.code_sha256(), Some(code_sha.as_str()), "{name}");
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
        let id: String = entry
            .guest
            .split('_')
            .map(|w| w[..1].to_uppercase() + &w[1..])
            .collect();
        let role = function.role().unwrap().rsplit('/').next().unwrap().to_owned();
        assert!(role.contains(&format!("{id}Role")), "{name}: role {role}");
        let document = policy_document(&moto, &role, "reach");
        let expected = &template["Resources"][format!("{id}Role")]["Properties"]["Policies"][0]["PolicyDocument"]
            ["Statement"];
        assert_eq!(actions_of(&document["Statement"]), actions_of(expected), "{name}");
        let text = document.to_string();
        for invoked in entry.invokes {
            assert!(
                text.contains(&format!("function:emmaa-next-{invoked}")),
                "{name} may invoke {invoked}: {text}"
            );
        }
        assert!(!text.contains("function:emmaa-model-update\""), "{name}: {text}");
        assert!(
            text.contains(&format!("emmaa/traces/{name}/*")),
            "{name} may write its traces: {text}"
        );
        assert_eq!(variables["EMMAA_TRACE_PREFIX"], "traces/", "{name}");
    }

    // Events: two schedules and three S3 patterns, each aimed at its
    // function, and (as asked) disabled.
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
            Trigger::NewObject { prefix, suffix } => Some((
                format!("emmaa-next-{}", entry.function),
                format!("{prefix}*{suffix}"),
            )),
            _ => None,
        })
        .collect();
    expected_patterns.sort();
    assert_eq!(patterns, expected_patterns);

    // Lambda permissions: EventBridge may invoke each triggered function,
    // from its own rule only.
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
        let id: String = entry
            .guest
            .split('_')
            .map(|w| w[..1].to_uppercase() + &w[1..])
            .collect();
        assert!(
            source.contains(&format!(":rule/emmaa-next-{id}Trigger")),
            "{name}: {source}"
        );
    }

    // Logs: a group per function, with the retention.
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

    // S3: EventBridge was added by writing back the whole configuration,
    // and the bucket's own queue notification survived it.
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
    assert!(out.contains("switched EventBridge notifications on"), "{out}");

    // A second run switches the triggers on and keeps the earlier prefix.
    let out = deploy_stack(&moto, &zip_path, &["--parameter", "Triggers=ENABLED"]);
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
    assert_eq!(names.len(), FUNCTIONS.len());
}

/// The arm64 bundle, cross-built here (bootstrap by cargo-zigbuild against
/// glibc 2.34, components precompiled for aarch64), answers an event under
/// qemu's user-mode emulation: Runtime API, S3 and Batch through moto.
/// Slow (the cross build takes minutes), so the README's test command skips
/// it and `.ci/run` runs it, after installing qemu-user-static and the
/// arm64 C library from Debian.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "cross-builds the arm64 bootstrap and needs qemu-user-static: .ci/run runs it"]
async fn the_arm64_bundle_answers_an_event_under_qemu() {
    let qemu = ["/usr/bin/qemu-aarch64-static", "/usr/bin/qemu-aarch64"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .expect("qemu-user-static is installed (.ci/run installs it)");
    let sysroot = Path::new("/usr/aarch64-linux-gnu");
    assert!(
        sysroot.join("lib/ld-linux-aarch64.so.1").is_file(),
        "the arm64 C library is installed (Debian libc6-arm64-cross; .ci/run installs it)"
    );
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_bucket(&config, "emmaa", example_objects()).await;
    create_batch_queue(&moto, &config).await;
    let dir = tempfile::tempdir().unwrap();
    // The tests' profile with unoptimised dependencies: what is tested is
    // the cross build, the glibc it needs and the components precompiled
    // for arm64 (a release build takes CI twice as long).
    let arm = bundle(&BundleRequest {
        serves: Serves::All,
        arch: Arch::Arm64,
        profile: "cross-test".into(),
        bootstrap: None,
        out: Some(dir.path().join("pipeline-arm64.zip")),
        function_prefix: "emmaa-".into(),
    })
    .unwrap_or_else(|err| panic!("{err}"));
    unzip(&arm.zip, dir.path());
    let bootstrap = std::fs::read(dir.path().join("bootstrap")).unwrap();
    assert_eq!(emmaa_deploy::arch::elf_arch(&bootstrap), Some(Arch::Arm64));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["arch"], "arm64");

    for function in ["emmaa-model-update", "emmaa-update-pipeline"] {
        let event =
            std::fs::read_to_string(workspace().join(format!("examples/events/{function}.json"))).unwrap();
        let api = RuntimeApi::start(vec![("request-1".into(), event)]);
        let mut command = Command::new(&qemu);
        command.arg("-L").arg(sysroot).arg(dir.path().join("bootstrap"));
        let mut child = start_bootstrap_with(command, dir.path(), function, &api, &moto.env());
        let posted = api.next_post(PATIENCE);
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        let posted = posted.unwrap_or_else(|| {
            panic!(
                "{function}: no answer; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        assert!(
            posted.start.contains("/runtime/invocation/request-1/response"),
            "{function}: {} {}",
            posted.start,
            posted.body_text()
        );
        let answer: Value = serde_json::from_slice(&posted.body).unwrap();
        assert_eq!(answer["statusCode"], 200, "{function}: {answer}");
    }
    // The job model_updates submitted from the arm64 bootstrap is in Batch.
    let batch = aws_sdk_batch::Client::new(&config);
    let listed = batch.list_jobs().job_queue(QUEUE).send().await.unwrap();
    let names: Vec<&str> = listed
        .job_summary_list()
        .iter()
        .filter_map(|job| job.job_name())
        .collect();
    assert!(
        names.iter().any(|name| name.starts_with("aml")),
        "the arm64 bootstrap's job for aml reached Batch: {names:?}"
    );
}
