//! The operator's command line: the AWS flags as `aws` and `sam` have them,
//! AWS's failures as one sentence with the fix (faults injected by the
//! proxy in front of moto), dry runs that make no AWS call, and the guest
//! checked against the function it goes to.

use std::net::TcpListener;

use super::*;

/// `deploy` with no AWS settings at all but `env`: every `AWS_*` variable
/// of this process removed, the config files pointed at nothing, EC2's
/// metadata off.
fn deploy_bare<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_deploy"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("AWS_")) {
        command.env_remove(name);
    }
    command
        .args(args)
        .env("AWS_CONFIG_FILE", "/nonexistent/emmaa-test/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/emmaa-test/credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

const CREDENTIALS: [(&str, &str); 2] = [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The error of a failed run: exactly one line on standard error.
fn one_line_error(output: &std::process::Output) -> String {
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{}{stderr}", text(&output.stdout));
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.starts_with("deploy: warning:"))
        .collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    lines[0].to_owned()
}

/// `upload model_updates emmaa-model-update` with the tests' bootstrap,
/// and `more`.
fn upload_args(dir: &Path, more: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["upload", "model_updates", "emmaa-model-update", "--bootstrap"]
        .map(String::from)
        .into();
    args.push(bootstrap().display().to_string());
    args.push("--out".into());
    args.push(dir.join("upload.zip").display().to_string());
    args.extend(more.iter().map(|arg| arg.to_string()));
    args
}

#[test]
fn without_credentials_or_a_region_deploy_says_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let args = upload_args(dir.path(), &["--plan"]);
    let no_credentials = deploy_bare(&args, &[("AWS_REGION", "us-east-1")]);
    let line = one_line_error(&no_credentials);
    assert!(
        line.starts_with("deploy: no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, run `aws configure`"),
        "{line}"
    );
    assert!(!line.contains("DispatchFailure") && line.len() < 300, "{line}");
    // -v adds the SDK's own account.
    let verbose = deploy_bare(
        &[&args[..], &["-v".into()]].concat(),
        &[("AWS_REGION", "us-east-1")],
    );
    let stderr = text(&verbose.stderr);
    assert!(stderr.contains("the AWS SDK said: "), "{stderr}");

    let no_profile = deploy_bare(
        &[&args[..], &["--profile".into(), "nosuch".into()]].concat(),
        &[("AWS_REGION", "us-east-1")],
    );
    assert_eq!(
        one_line_error(&no_profile),
        "deploy: profile nosuch is in neither /nonexistent/emmaa-test/config nor \
         /nonexistent/emmaa-test/credentials: run `aws configure --profile nosuch`, or name another with --profile"
    );

    let no_region = deploy_bare(&args, &CREDENTIALS);
    let line = one_line_error(&no_region);
    assert!(
        line.starts_with("deploy: no AWS region: pass --region (e.g. --region us-east-1), set AWS_REGION"),
        "{line}"
    );
    assert!(
        !dir.path().join("upload.zip").exists(),
        "nothing is built for an account that is not set up"
    );
}

/// A profile in files of its own, as `aws configure --profile moto` writes it.
fn profile_files(dir: &Path) -> [(String, String); 2] {
    let config = dir.join("config");
    let credentials = dir.join("credentials");
    std::fs::write(&config, "[profile moto]\nregion = us-east-1\n").unwrap();
    std::fs::write(
        &credentials,
        "[moto]\naws_access_key_id = test\naws_secret_access_key = test\n",
    )
    .unwrap();
    [
        ("AWS_CONFIG_FILE".into(), config.display().to_string()),
        (
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            credentials.display().to_string(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn the_profile_region_and_endpoint_flags_name_the_account() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let role = moto.create_role("emmaa-lambda");
    aws_sdk_lambda::Client::new(&config)
        .create_function()
        .function_name("emmaa-model-update")
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(upload::python_zip().into())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = profile_files(dir.path());
    let env: Vec<(&str, &str)> = files
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let endpoint = moto.endpoint();
    let args = upload_args(
        dir.path(),
        &["--plan", "--profile", "moto", "--endpoint-url", &endpoint],
    );
    let planned = deploy_bare(&args, &env);
    let out = text(&planned.stdout);
    assert!(planned.status.success(), "{out}{}", text(&planned.stderr));
    assert!(
        out.contains("plan: would replace emmaa-model-update's code (CodeSha256 "),
        "{out}"
    );

    // --region beats the profile's: the function is not in eu-west-1.
    let elsewhere = deploy_bare(
        &[&args[..], &["--region".into(), "eu-west-1".into()]].concat(),
        &env,
    );
    let line = one_line_error(&elsewhere);
    assert_eq!(
        line,
        format!(
            "deploy: function emmaa-model-update does not exist in {endpoint} (eu-west-1): check the name \
             and --region (`deploy stack` creates the pipeline's functions)"
        )
    );
}

#[test]
fn an_unreachable_endpoint_is_one_sentence() {
    // Port 1 (tcpmux, privileged) has no listener: a port freed by the test
    // itself could be taken meanwhile by a moto another test starts.
    let endpoint = "http://127.0.0.1:1".to_owned();
    assert!(
        std::net::TcpStream::connect("127.0.0.1:1").is_err(),
        "something listens on port 1 here"
    );
    let dir = tempfile::tempdir().unwrap();
    let args = upload_args(
        dir.path(),
        &["--plan", "--endpoint-url", &endpoint, "--region", "us-east-1"],
    );
    let line = one_line_error(&deploy_bare(&args, &CREDENTIALS));
    assert_eq!(
        line,
        format!(
            "deploy: cannot reach {endpoint} (us-east-1) for lambda:GetFunctionConfiguration (the connection \
             failed): check --endpoint-url (or AWS_ENDPOINT_URL), --region and the network"
        )
    );
}

#[test]
fn access_denied_and_throttling_name_the_call_and_what_to_do() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.address);
    let endpoint = format!("http://{}", proxy.address);
    let dir = tempfile::tempdir().unwrap();
    let args = upload_args(
        dir.path(),
        &["--plan", "--endpoint-url", &endpoint, "--region", "us-east-1"],
    );
    let denied = "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: \
                  lambda:GetFunctionConfiguration on resource: emmaa-model-update because no \
                  identity-based policy allows it";
    proxy.fail(
        "/configuration",
        vec![Fault::json_error(403, "AccessDeniedException", denied)],
    );
    let line = one_line_error(&deploy_bare(&args, &CREDENTIALS));
    assert_eq!(
        line,
        format!(
            "deploy: access denied: lambda:GetFunctionConfiguration on function emmaa-model-update \
             (AccessDeniedException: {denied}): allow it in the IAM policy of the identity you deploy as"
        )
    );

    // The SDK's three attempts, each throttled.
    proxy.fail("/configuration", vec![Fault::too_many_requests(); 3]);
    let line = one_line_error(&deploy_bare(&args, &CREDENTIALS));
    assert_eq!(
        line,
        "deploy: AWS throttled lambda:GetFunctionConfiguration on function emmaa-model-update \
         (TooManyRequestsException) through every retry: wait a minute and run it again"
    );
    assert_eq!(
        proxy.seen("/configuration").len(),
        4,
        "one denied, three throttled"
    );
}

/// A loopback port that counts the connections made to it.
fn listening_port() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

fn assert_untouched(listener: &TcpListener) {
    assert!(
        matches!(listener.accept(), Err(err) if err.kind() == std::io::ErrorKind::WouldBlock),
        "a dry run connected to the endpoint"
    );
}

#[test]
fn a_dry_run_builds_and_checks_everything_without_aws() {
    let (listener, endpoint) = listening_port();
    let dir = tempfile::tempdir().unwrap();
    let env = [("AWS_ENDPOINT_URL", endpoint.as_str())];
    let upload = deploy_bare(&upload_args(dir.path(), &["--dry-run", "--publish"]), &env);
    let out = text(&upload.stdout);
    assert!(upload.status.success(), "{out}{}", text(&upload.stderr));
    let zip = std::fs::read(dir.path().join("upload.zip")).unwrap();
    assert!(
        out.contains(&format!("dry run: would send {} bytes (CodeSha256 ", zip.len()))
            && out.contains("to emmaa-model-update with UpdateFunctionCode, then publish a version"),
        "{out}"
    );
    assert!(out.contains("dry run: nothing was sent to AWS"), "{out}");

    // cfn-lint found on the PATH is run; deploy itself needs no Python.
    let lint_dir = stack::cfn_lint().parent().unwrap().to_owned();
    let path = std::env::join_paths(std::iter::once(lint_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let path = path.to_str().unwrap();
    let zip = dir.path().join("pipeline.zip");
    let stack_args = [
        "stack",
        "--artifact-bucket",
        "emmaa-artifacts",
        "--bootstrap",
        bootstrap().to_str().unwrap(),
        "--out",
        zip.to_str().unwrap(),
        "--parameter",
        "FunctionPrefix=emmaa-next-",
        "--dry-run",
    ];
    let stack = deploy_bare(
        &stack_args,
        &[("AWS_ENDPOINT_URL", endpoint.as_str()), ("PATH", path)],
    );
    let out = text(&stack.stdout);
    assert!(stack.status.success(), "{out}{}", text(&stack.stderr));
    for said in [
        "dry run: 1 parameters given, the functions' settings check",
        "dry run: the template checks (",
        "dry run: cfn-lint passes the template",
        "dry run: would upload s3://emmaa-artifacts/artifacts/pipeline-",
        "dry run: nothing was sent to AWS (--plan shows what the stack would change)",
    ] {
        assert!(out.contains(said), "{said}: {out}");
    }
    // Traces on S3 are not read by a dry run.
    let traces = deploy_bare(
        &[&stack_args[..], &["--check-against", "s3://emmaa/traces/"]].concat(),
        &[("AWS_ENDPOINT_URL", endpoint.as_str())],
    );
    assert_eq!(
        one_line_error(&traces),
        "deploy: --check-against s3://emmaa/traces/: a dry run makes no AWS call; copy the traces here \
         (aws s3 cp --recursive) and give their directory"
    );
    // Without cfn-lint it says so, and checks the rest.
    let unlinted = deploy_bare(
        &stack_args,
        &[("AWS_ENDPOINT_URL", endpoint.as_str()), ("PATH", "/nonexistent")],
    );
    let out = text(&unlinted.stdout);
    assert!(unlinted.status.success(), "{out}{}", text(&unlinted.stderr));
    assert!(out.contains("cfn-lint is not on the PATH: not linted"), "{out}");
    assert_untouched(&listener);
}

#[test]
fn a_dry_run_refuses_bad_parameters_by_name_without_aws() {
    let (listener, endpoint) = listening_port();
    let env = [("AWS_ENDPOINT_URL", endpoint.as_str())];
    let stack = |parameter: &str| {
        let args = [
            "stack",
            "--artifact-bucket",
            "a",
            "--dry-run",
            "--parameter",
            parameter,
        ];
        one_line_error(&deploy_bare(&args, &env))
    };
    assert!(
        stack("MemorySise=512")
            .starts_with("deploy: --parameter \"MemorySise\": the template has no such parameter (it has: "),
        "{}",
        stack("MemorySise=512")
    );
    assert_eq!(
        stack("MemorySize=99999"),
        "deploy: --parameter MemorySize=\"99999\": outside 128 to 10240"
    );
    assert_eq!(
        stack("Triggers=enabled"),
        "deploy: --parameter Triggers=\"enabled\": not one of ENABLED, DISABLED"
    );
    let line = stack("Bucket=Not A Bucket");
    assert!(
        line.starts_with("deploy: --parameter Bucket=\"Not A Bucket\": the functions would not start: ")
            && line.contains("EMMAA_BUCKET"),
        "{line}"
    );
    assert_untouched(&listener);
}

#[test]
fn a_guest_goes_to_its_own_function_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.zip");
    let out = out.to_str().unwrap();
    let bootstrap = bootstrap().to_str().unwrap();
    let upload = |function: &str, more: &[&str]| {
        let args = [
            &[
                "upload",
                "model_updates",
                function,
                "--dry-run",
                "--bootstrap",
                bootstrap,
                "--out",
                out,
            ][..],
            more,
        ]
        .concat();
        deploy_bare(&args, &[])
    };
    let line = one_line_error(&upload("emmaa-update-pipeline", &[]));
    assert_eq!(
        line,
        "deploy: emmaa-update-pipeline is update_pipeline's function: uploading model_updates to it would \
         replace its handler (--force uploads it anyway)"
    );
    let forced = upload("emmaa-update-pipeline", &["--force"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    // Another installation's function, whatever its prefix.
    let line = one_line_error(&upload("emmaa-next-update-pipeline", &[]));
    assert!(
        line.starts_with("deploy: emmaa-next-update-pipeline is update_pipeline's function"),
        "{line}"
    );
    let unknown = upload("emmaa-model-update-copy", &[]);
    assert!(unknown.status.success(), "{}", text(&unknown.stderr));
    assert!(
        text(&unknown.stderr).contains(
            "deploy: warning: emmaa-model-update-copy is none of the pipeline's functions; uploading \
             model_updates to it anyway"
        ),
        "{}",
        text(&unknown.stderr)
    );
}

#[test]
fn completions_name_every_command() {
    let output = deploy_bare(&["completions", "bash"], &[]);
    let script = text(&output.stdout);
    assert!(
        output.status.success() && script.contains("_deploy()"),
        "{script}"
    );
    for command in [
        "upload",
        "stack",
        "invoke",
        "logs",
        "rollback",
        "--endpoint-url",
        "--build-profile",
    ] {
        assert!(script.contains(command), "bash completions lack {command}");
    }
}
