//! `deploy upload`: every check an operator would make by hand, against moto.

use super::*;

/// A zip holding a Python handler, as the original functions were deployed.
pub(crate) fn python_zip() -> Vec<u8> {
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

pub(crate) fn deploy(args: &[&str], moto: &Moto) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_deploy"))
        .args(args)
        .envs(moto.env())
        .output()
        .unwrap()
}

/// `deploy upload` over a Python function: refused while a trace it is
/// checked against behaves differently (`--check-against`), planned, then
/// shipped despite the difference when told, switching the runtime, and
/// shipped without being told when every trace is the same.
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

    let upload_with = |flags: &[&str]| {
        let mut args = vec![
            "upload",
            "model_updates",
            "emmaa-model-update",
            "--build-profile",
            "dev",
            "--out",
            zip_arg,
        ];
        args.extend_from_slice(flags);
        deploy(&args, &moto)
    };

    // --check-against: the example trace, and a copy whose recorded answer
    // was changed, which this build does not reproduce: nothing shipped.
    let recorded = workspace().join("examples/traces/emmaa-model-update.json");
    let tampered_dir = tempfile::tempdir().unwrap();
    let mut trace: Value = serde_json::from_slice(&std::fs::read(&recorded).unwrap()).unwrap();
    trace["answer"]["response"]["job_ids"] = json!(["local-another_job"]);
    let tampered = tampered_dir.path().join("emmaa-model-update.json");
    std::fs::write(&tampered, trace.to_string()).unwrap();
    let traces = [
        "--check-against",
        recorded.to_str().unwrap(),
        "--check-against",
        tampered.to_str().unwrap(),
    ];
    let refused = upload_with(&traces);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(
        text.contains("checked 2 traces of model_updates: 1 same, 1 not"),
        "{text}"
    );
    assert!(
        text.contains("1 of 2 traces behave differently with this build: nothing shipped"),
        "{text}"
    );
    assert_eq!(
        configuration().await.code_sha256(),
        before.code_sha256(),
        "nothing shipped"
    );

    let planned = upload_with(&["--plan"]);
    let plan_out = String::from_utf8_lossy(&planned.stdout);
    assert!(
        planned.status.success(),
        "{plan_out}{}",
        String::from_utf8_lossy(&planned.stderr)
    );
    assert!(plan_out.contains("plan: would switch emmaa-model-update: runtime python3.12 -> provided.al2023, handler model_updates.lambda_handler -> bootstrap"), "{plan_out}");
    assert!(
        plan_out.contains(&format!(
            "plan: would replace emmaa-model-update's code (CodeSha256 {} -> ",
            before.code_sha256().unwrap()
        )),
        "{plan_out}"
    );
    let unchanged = configuration().await;
    assert_eq!(unchanged.code_sha256(), before.code_sha256());
    assert_eq!(unchanged.runtime(), before.runtime());

    // Shipped despite the difference, when told.
    let upload = upload_with(&[&["--publish", "--despite-differences"], &traces[..]].concat());
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
    assert!(
        out.contains("shipping despite the differences (--despite-differences)"),
        "{out}"
    );

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

    // Every trace the same: shipped without being told.
    let same = upload_with(&["--check-against", recorded.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&same.stdout);
    assert!(
        same.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&same.stderr)
    );
    assert!(
        out.contains("checked 1 traces of model_updates: 1 same, 0 not"),
        "{out}"
    );
    assert!(!out.contains("despite"), "{out}");
    let sha = base64::engine::general_purpose::STANDARD
        .encode(sha2::Sha256::digest(std::fs::read(&zip_path).unwrap()));
    assert!(
        out.contains(&format!("AWS answered: CodeSha256 {sha} (matches the bundle)")),
        "{out}"
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
            "--build-profile",
            "dev",
            "--out",
            out.to_str().unwrap(),
        ],
        &moto,
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "deploy: function emmaa-nope does not exist in {} (us-east-1): check the name and --region",
            moto.endpoint()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("deploy: warning: emmaa-nope is none of the pipeline's functions"),
        "{stderr}"
    );
}

/// The function's CodeSha256 as Lambda reports it.
async fn code_sha256(lambda: &aws_sdk_lambda::Client, function: &str) -> String {
    let configuration = lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .unwrap();
    configuration.code_sha256().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_rollback_goes_back_to_the_bundle_uploaded_before_and_forward_again() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_bucket(&config, "emmaa-artifacts", vec![]).await;
    let role = moto.create_role("emmaa-lambda");
    let lambda = aws_sdk_lambda::Client::new(&config);
    lambda
        .create_function()
        .function_name("emmaa-model-update")
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(python_zip().into())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = bootstrap().to_str().unwrap().to_owned();
    let upload = |guest: &str| {
        let out = dir.path().join(format!("{guest}.zip"));
        let args = [
            "upload",
            guest,
            "emmaa-model-update",
            "--force",
            "--bootstrap",
            &bootstrap,
            "--out",
            out.to_str().unwrap(),
            "--artifact-bucket",
            "emmaa-artifacts",
        ];
        let output = deploy(&args, &moto);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let zip = std::fs::read(out).unwrap();
        (text, emmaa_runtime::digest::sha256_hex(&zip))
    };
    let (_, first) = upload("model_updates");
    let first_sha = code_sha256(&lambda, "emmaa-model-update").await;
    let (out, second) = upload("model_stats");
    assert_ne!(first, second);
    let kept = |sha: &str| format!("s3://emmaa-artifacts/artifacts/pipeline-{sha}.zip");
    assert!(
        out.contains(&format!("kept the bundle at {}", kept(&second))),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "emmaa-model-update can go back to {} (deploy rollback emmaa-model-update)",
            kept(&first)
        )),
        "{out}"
    );
    let second_sha = code_sha256(&lambda, "emmaa-model-update").await;
    assert_ne!(first_sha, second_sha);

    let rollback = |more: &[&str]| {
        let output = deploy(&[&["rollback", "emmaa-model-update"][..], more].concat(), &moto);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        text
    };
    let plan = rollback(&["--plan"]);
    assert!(
        plan.contains(&format!(
            "plan: would roll emmaa-model-update back from {} to {}",
            kept(&second),
            kept(&first)
        )),
        "{plan}"
    );
    assert_eq!(
        code_sha256(&lambda, "emmaa-model-update").await,
        second_sha,
        "a plan changes nothing"
    );
    let back = rollback(&[]);
    assert!(
        back.contains(&format!(
            "AWS answered: CodeSha256 {first_sha} (matches {})",
            kept(&first)
        )),
        "{back}"
    );
    assert_eq!(code_sha256(&lambda, "emmaa-model-update").await, first_sha);
    // A second rollback goes forward again.
    rollback(&[]);
    assert_eq!(code_sha256(&lambda, "emmaa-model-update").await, second_sha);

    // A function no upload kept a bundle for has nowhere to go.
    lambda
        .create_function()
        .function_name("emmaa-queries")
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(moto.create_role("emmaa-queries"))
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(python_zip().into())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let never = deploy(&["rollback", "emmaa-queries"], &moto);
    let stderr = String::from_utf8_lossy(&never.stderr);
    assert!(
        stderr.starts_with("deploy: emmaa-queries has no earlier bundle to go back to: its tag emmaa:previous-code is missing"),
        "{stderr}"
    );
}
