//! The flight recorder on AWS: traces written by the bootstrap, replayed and checked here.

use super::*;

/// The `host` command, built (if it is not already) in the workspace's
/// target directory with the workspace's features, as the test command
/// builds it.
pub(crate) fn host_cli() -> &'static Path {
    static HOST: OnceLock<PathBuf> = OnceLock::new();
    HOST.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace())
            .args(["build", "--workspace", "--bin", "emmaa-host", "--quiet"])
            .status()
            .unwrap();
        assert!(status.success(), "building the host command failed");
        workspace().join("target/debug/emmaa-host")
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

    // The fan-out, straight from S3 (the account named by the AWS flags,
    // only the credentials in the environment); the others from files, with
    // no AWS settings at all.
    let credentials: Vec<(String, String)> = moto
        .env()
        .into_iter()
        .filter(|(name, _)| name.starts_with("AWS_ACCESS") || name.starts_with("AWS_SECRET"))
        .collect();
    let endpoint = moto.endpoint();
    let (printed, status) = host(
        &[
            "replay",
            "--trace",
            &format!("s3://emmaa/{fan_out}"),
            "--endpoint-url",
            &endpoint,
            "--region",
            "us-east-1",
        ],
        &credentials,
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
    // model_stats' code, marked as a build of model_updates.
    let other =
        std::fs::read(Path::new(emmaa_runtime::functions::GUEST_DIR).join("model_stats.wasm")).unwrap();
    std::fs::write(
        changed.path().join("model_updates.wasm"),
        emmaa_runtime::mark::with_guest_mark(&other, "model_updates").unwrap(),
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
