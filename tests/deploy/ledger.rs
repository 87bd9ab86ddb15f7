//! Exactly once, through the real bootstrap: the ledger on S3 under redelivery and retries.

use super::*;

/// `moto.env()` with the AWS endpoint moved to `address` (a proxy) and
/// one call in flight at a time, so a kill lands between two known calls.
pub(crate) fn env_through(moto: &Moto, address: &str) -> Vec<(String, String)> {
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
pub(crate) fn model_states_event(models: &[String]) -> String {
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

/// The ledger's own writes fail through the production client: a claim
/// throttled twice and one whose connection is reset (retried, claimed,
/// one job each); a done mark that fails through every attempt (the job
/// went through: the claim stays pending and the next delivery finds the
/// job by ListJobs instead of submitting it again); a submission Batch
/// refuses whose release then fails (the claim stays pending, and the next
/// delivery takes it over and submits the one job). Every model ends with
/// exactly one job.
#[tokio::test(flavor = "multi_thread")]
async fn faults_in_the_ledgers_own_writes_neither_lose_nor_repeat_a_job() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_bucket(&config, "emmaa", Vec::new()).await;
    create_batch_queue(&moto, &config).await;
    let proxy = FaultProxy::start(&moto.address);
    let models: Vec<String> = (0..4).map(|n| format!("m{n}")).collect();
    let event: Value = serde_json::from_str(&model_states_event(&models)).unwrap();
    let key = |n: usize| {
        let work = format!("s3:models/m{n}/model_2020-02-04-12-00-00.pkl@0C000{n}");
        emmaa_runtime::ledger::claim_key("ledger/", "model_manager_update", &work)
    };
    let (pending, done) = (r#""state": "pending""#, r#""state": "done""#);
    proxy
        .fail_all(&[&key(0), pending], vec![Fault::s3_slow_down(); 2])
        .fail_all(&[&key(1), pending], vec![Fault::Reset])
        .fail_all(&[&key(2), done], vec![Fault::s3_internal_error(); 5])
        .fail(
            r#""jobName":"m3_mm_update_"#,
            vec![Fault::json_error(
                400,
                "ClientException",
                "the queue is not valid",
            )],
        )
        .fail_all(&["DELETE ", &key(3)], vec![Fault::s3_internal_error(); 5]);
    // The writes of model `n`'s claim that say `state`.
    let writes = |n: usize, state: &str| -> Vec<support::fault_proxy::Seen> {
        proxy
            .seen(&key(n))
            .into_iter()
            .filter(|seen| seen.start.starts_with("PUT ") && seen.body.contains(state))
            .collect()
    };
    let settings = || crate::settings(&[("EMMAA_LEDGER", "on")]);

    let first = run_on_aws("model_manager_update", event.clone(), &proxy.address, settings()).await;
    let answer = first
        .response()
        .unwrap_or_else(|| panic!("{:?}", first.error_message()));
    assert_eq!(answer["statusCode"], 207, "{answer:#}");
    assert_eq!(answer["job_ids"].as_array().unwrap().len(), 3, "{answer:#}");
    assert_eq!(answer["refused"].as_array().unwrap().len(), 1, "{answer:#}");
    assert!(
        answer["refused"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("ClientException"),
        "{answer:#}"
    );
    // Each fault was met: retried writes, and the mark and the release
    // given up after the SDK's five attempts.
    assert_eq!(writes(0, pending).len(), 3);
    assert_eq!(writes(1, pending).len(), 2);
    let marks = writes(2, done);
    assert_eq!(marks.len(), 5);
    assert!(marks.iter().all(|seen| !seen.passed));
    let released = proxy.seen(&key(3));
    assert_eq!(
        released
            .iter()
            .filter(|seen| seen.start.starts_with("DELETE "))
            .count(),
        5
    );
    let stems = job_stems(&config).await;
    assert_eq!(stems, ["m0_mm_update", "m1_mm_update", "m2_mm_update"]);

    let listed_before = proxy.seen("/v1/listjobs").len();
    let second = run_on_aws("model_manager_update", event, &proxy.address, settings()).await;
    let answer = second
        .response()
        .unwrap_or_else(|| panic!("{:?}", second.error_message()));
    assert_eq!(answer["statusCode"], 200, "{answer:#}");
    assert_eq!(answer["job_ids"].as_array().unwrap().len(), 4, "{answer:#}");
    assert_eq!(
        answer["already_submitted"].as_array().unwrap().len(),
        3,
        "{answer:#}"
    );
    // m2's pending claim and m3's: both looked for in Batch first.
    assert_eq!(proxy.seen("/v1/listjobs").len() - listed_before, 2);
    let expected: Vec<String> = models.iter().map(|model| format!("{model}_mm_update")).collect();
    assert_eq!(job_stems(&config).await, expected, "exactly one job per model");
}

/// Two real bootstraps racing on one S3 record (two deliveries, two
/// request ids) over the S3 ledger. moto checks `If-None-Match` and writes
/// without a lock, so a free race would prove little: the fault proxy holds
/// the first claim until the second arrives, then lets them through one at
/// a time. One claim wins, the other is told the work is in progress
/// elsewhere, and Batch has exactly one job.
#[tokio::test(flavor = "multi_thread")]
async fn two_bootstraps_racing_on_one_record_over_the_s3_ledger_submit_one_job() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_bucket(&config, "emmaa", Vec::new()).await;
    create_batch_queue(&moto, &config).await;
    let proxy = FaultProxy::start(&moto.address);
    let work = "s3:models/aml/model_2020-02-04-12-00-00.pkl@0C0000";
    let key = emmaa_runtime::ledger::claim_key("ledger/", "emmaa-mm-update", work);
    let barrier = support::fault_proxy::Barrier::new(2);
    proxy.fail_all(
        &["PUT ", &key, r#""state": "pending""#],
        vec![Fault::Barrier(barrier.clone()), Fault::Barrier(barrier)],
    );
    let dir = tempfile::tempdir().unwrap();
    unpacked_bundle("model_manager_update", dir.path());
    let event = model_states_event(&["aml".to_owned()]);
    let env = env_through(&moto, &proxy.address);
    let apis: Vec<RuntimeApi> = ["delivery-1", "delivery-2"]
        .map(|request| RuntimeApi::start(vec![(request.into(), event.clone())]))
        .into();
    let mut runtimes: Vec<_> = apis
        .iter()
        .map(|api| start_bootstrap(dir.path(), "emmaa-mm-update", api, &env))
        .collect();
    let mut answers: Vec<Value> = apis
        .iter()
        .map(|api| {
            let posted = api.next_post(PATIENCE).expect("an answer to each delivery");
            serde_json::from_slice(&posted.body).unwrap()
        })
        .collect();
    for runtime in &mut runtimes {
        let _ = runtime.kill();
        let _ = runtime.wait();
    }
    let claims = proxy.seen(&key);
    let raced: Vec<_> = claims
        .iter()
        .filter(|seen| seen.start.starts_with("PUT ") && seen.body.contains(r#""state": "pending""#))
        .collect();
    assert_eq!(raced.len(), 2, "both claimed: {claims:?}");
    // The loser found the claim pending (in progress elsewhere) or, if the
    // winner was quicker, done (already submitted): either way it did not
    // submit.
    let lost = |answer: &Value| {
        answer
            .get("in_progress_elsewhere")
            .or(answer.get("already_submitted"))
            .is_some()
    };
    answers.sort_by_key(lost);
    assert!(
        answers.iter().all(|answer| answer["statusCode"] == 200),
        "{answers:?}"
    );
    assert!(
        !lost(&answers[0]) && lost(&answers[1]),
        "one winner, one loser: {answers:?}"
    );
    assert_eq!(job_stems(&config).await, ["aml_mm_update"], "exactly one job");
}
