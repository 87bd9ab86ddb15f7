//! The bootstrap, as Lambda runs it: the real Runtime API loop, a bundle unzipped as Lambda unzips it.

use super::*;

/// The bootstrap, built once per test run in the tests' own profile.
pub(crate) fn bootstrap() -> &'static Path {
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
        python: Vec::new(),
    })
    .unwrap_or_else(|err| panic!("{err}"))
}

/// Starts `root/bootstrap` the way Lambda does, for `function`.
pub(crate) fn start_bootstrap(
    root: &Path,
    function: &str,
    api: &RuntimeApi,
    env: &[(String, String)],
) -> std::process::Child {
    start_bootstrap_at(root, function, &api.address, env)
}

/// Starts `root/bootstrap` for `function`, its Runtime API at `runtime_api`.
pub(crate) fn start_bootstrap_at(
    root: &Path,
    function: &str,
    runtime_api: &str,
    env: &[(String, String)],
) -> std::process::Child {
    start_bootstrap_with(
        Command::new(root.join("bootstrap")),
        root,
        function,
        runtime_api,
        env,
    )
}

/// Starts `command` (the bootstrap, or an emulator running it) the way
/// Lambda starts a bootstrap, for `function`.
fn start_bootstrap_with(
    mut command: Command,
    root: &Path,
    function: &str,
    runtime_api: &str,
    env: &[(String, String)],
) -> std::process::Child {
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root)
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("LAMBDA_TASK_ROOT", root)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A bootstrap just unzipped may still be open for writing in a child
    // another test thread forked meanwhile (until that child execs): Linux
    // then refuses to run it ("Text file busy") for a moment.
    for _ in 0..50 {
        match command.spawn() {
            Err(err) if err.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(Duration::from_millis(20));
            }
            spawned => return spawned.unwrap(),
        }
    }
    command.spawn().unwrap()
}

pub(crate) const PATIENCE: Duration = Duration::from_secs(120);

/// Runs `root/bootstrap` as `function` on one event (request id
/// `request-1`): what it posted to the Runtime API first, and its output.
pub(crate) fn answer_one_event(
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

/// The answer the bootstrap posted for request-1; the test fails, naming
/// `what`, when it posted none or posted an error.
fn response_to_request_1(
    posted: Option<support::http::Message>,
    output: &std::process::Output,
    what: &str,
) -> Value {
    let posted = posted.unwrap_or_else(|| {
        panic!(
            "{what}: no answer; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(
        posted
            .start
            .contains("/2018-06-01/runtime/invocation/request-1/response"),
        "{what}: {} {}",
        posted.start,
        posted.body_text()
    );
    serde_json::from_slice(&posted.body).unwrap()
}

/// The bootstrap's `ready` log line: the guest it loaded and its budget.
fn ready_line(output: &std::process::Output) -> Value {
    let logged = String::from_utf8_lossy(&output.stderr);
    logged
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["fields"]["message"] == "ready")
        .unwrap_or_else(|| panic!("no ready line: {logged}"))
}

/// One bundle for every function (`--all`), unzipped once per test run
/// as Lambda unzips it: where, and what it holds.
pub(crate) fn every_function() -> &'static (tempfile::TempDir, Bundle) {
    static ALL: OnceLock<(tempfile::TempDir, Bundle)> = OnceLock::new();
    ALL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let all = bundle(&BundleRequest {
            serves: Serves::All,
            arch: Arch::X86_64,
            profile: "dev".into(),
            bootstrap: Some(bootstrap().to_owned()),
            out: Some(dir.path().join("pipeline.zip")),
            function_prefix: "emmaa-".into(),
            python: Vec::new(),
        })
        .unwrap_or_else(|err| panic!("{err}"));
        unzip(&all.zip, dir.path());
        (dir, all)
    })
}

/// Bundles `guest` and unzips it into `dir`, as Lambda does.
pub(crate) fn unpacked_bundle(guest: &str, dir: &Path) -> Bundle {
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
    let (dir, all) = every_function();
    let expected: BTreeMap<String, String> = emmaa_runtime::functions::FUNCTIONS
        .iter()
        .map(|entry| (format!("emmaa-{}", entry.function), entry.guest.to_owned()))
        .collect();
    assert_eq!(all.functions, expected, "one zip serves all eleven functions");
    for (function, guest) in &all.functions {
        let event =
            std::fs::read_to_string(workspace().join(format!("examples/events/{function}.json"))).unwrap();
        let (posted, output) = answer_one_event(dir.path(), function, &event, &moto.env());
        let answer = response_to_request_1(posted, &output, guest);
        assert_eq!(answer["statusCode"], 200, "{guest}: {answer}");
        assert_eq!(answer["result"], "SUCCESS", "{guest}");
    }
}

/// A Python build shipped as `deploy bundle --python` ships it: the
/// manifest names the guest's language, the bootstrap gives the guest the
/// Python budget within the function's memory, and it answers the guest's
/// example event through the Runtime API with the job submitted to Batch.
#[tokio::test(flavor = "multi_thread")]
async fn a_python_bundle_answers_through_the_runtime_api_under_the_python_budget() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_bucket(&config, "emmaa", example_objects()).await;
    create_batch_queue(&moto, &config).await;
    let dir = tempfile::tempdir().unwrap();
    let python = bundle(&BundleRequest {
        serves: Serves::One {
            guest: "model_stats".into(),
            function: None,
        },
        arch: Arch::X86_64,
        profile: "dev".into(),
        bootstrap: Some(bootstrap().to_owned()),
        out: Some(dir.path().join("model_stats.zip")),
        function_prefix: "emmaa-".into(),
        python: vec!["model_stats".into()],
    })
    .unwrap_or_else(|err| panic!("{err}"));
    unzip(&python.zip, dir.path());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    let entry = &manifest["functions"]["emmaa-model-stats"];
    assert_eq!(entry["language"], "python", "{manifest}");

    let event = std::fs::read_to_string(workspace().join("examples/events/emmaa-model-stats.json")).unwrap();
    let mut env = moto.env();
    env.push(("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "256".into()));
    let (posted, output) = answer_one_event(dir.path(), "emmaa-model-stats", &event, &env);
    let ready = ready_line(&output);
    let component = dir.path().join(entry["component"].as_str().unwrap());
    let component_bytes = std::fs::metadata(&component).unwrap().len() as usize;
    let budget = emmaa_runtime::limits::Budget::PYTHON.within_function(256 << 20, component_bytes);
    assert_eq!(ready["fields"]["language"], "python", "{ready}");
    assert_eq!(
        ready["fields"]["fuel"],
        emmaa_runtime::limits::PYTHON_FUEL_PER_EVENT,
        "{ready}"
    );
    assert_eq!(ready["fields"]["memory_mib"], budget.memory >> 20, "{ready}");

    let answer = response_to_request_1(posted, &output, "model_stats (Python)");
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let job_id = answer["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a job id: {answer}"));
    let batch = aws_sdk_batch::Client::new(&config);
    let described = batch.describe_jobs().jobs(job_id).send().await.unwrap();
    let names: Vec<&str> = described.jobs().iter().filter_map(|job| job.job_name()).collect();
    assert_eq!(names.len(), 1, "the Python guest's job is in Batch: {names:?}");
    assert!(names[0].starts_with("aml_model_stats"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_event_becomes_a_function_error_with_type_and_message() {
    let dir = tempfile::tempdir().unwrap();
    unpacked_bundle("model_updates", dir.path());
    let (posted, output) = answer_one_event(
        dir.path(),
        "emmaa-model-update",
        r#"{"model": "aml && reboot"}"#,
        &[],
    );
    // The function has 128 MB (AWS_LAMBDA_FUNCTION_MEMORY_SIZE): the
    // guest gets what the host and the component leave of it, not the
    // 384 MiB a Rust guest may have where there is room.
    let ready = ready_line(&output);
    assert_eq!(ready["fields"]["memory_mib"], 63, "{ready}");
    assert_eq!(ready["fields"]["language"], "rust", "{ready}");
    assert_eq!(
        ready["fields"]["fuel"],
        emmaa_runtime::limits::FUEL_PER_EVENT,
        "{ready}"
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
        python: Vec::new(),
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
        let mut child = start_bootstrap_with(command, dir.path(), function, &api.address, &moto.env());
        let posted = api.next_post(PATIENCE);
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        let answer = response_to_request_1(posted, &output, function);
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
