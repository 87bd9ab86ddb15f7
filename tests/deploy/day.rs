//! The day, seen: the eleven real bootstraps play a day against moto (the
//! test plays Lambda and the Batch containers, which moto does not), then
//! `deploy status` names where each model's day stands.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};

use emmaa_offline::simulate::{files_written, s3_event, triggered_by};

use super::*;
use bootstrap_on_lambda::{every_function, start_bootstrap_at};

/// How long a played event may take.
const EVENT_PATIENCE: Duration = Duration::from_secs(300);

/// What a function posted for one event.
#[derive(Debug, Clone)]
struct Answered {
    function: String,
    error: bool,
    body: Value,
}

/// An event waiting for its function, and who waits for its answer.
struct Queued {
    request_id: String,
    payload: String,
}

/// One function's events: waiting to be handed out, and handed out.
#[derive(Default)]
struct Inbox {
    queue: Mutex<VecDeque<Queued>>,
    arrived: Condvar,
    waiting: Mutex<HashMap<String, Option<mpsc::Sender<Answered>>>>,
}

/// What the played Lambda knows: each function's inbox, the events not
/// yet answered, and every answer.
#[derive(Default)]
struct Played {
    inboxes: BTreeMap<String, Arc<Inbox>>,
    outstanding: Mutex<usize>,
    settled: Condvar,
    answers: Mutex<Vec<Answered>>,
    next_request: AtomicUsize,
    /// While true, the functions are handed nothing: what is sent waits.
    paused: Mutex<bool>,
}

impl Played {
    /// Queues `payload` for `function`; `answer_to` hears its answer.
    fn enqueue(&self, function: &str, payload: String, answer_to: Option<mpsc::Sender<Answered>>) -> bool {
        let Some(inbox) = self.inboxes.get(function) else {
            return false;
        };
        let request_id = format!("{function}-{}", self.next_request.fetch_add(1, Ordering::SeqCst));
        *self.outstanding.lock().unwrap() += 1;
        inbox
            .waiting
            .lock()
            .unwrap()
            .insert(request_id.clone(), answer_to);
        inbox
            .queue
            .lock()
            .unwrap()
            .push_back(Queued { request_id, payload });
        inbox.arrived.notify_all();
        true
    }

    fn answered(&self, inbox: &Inbox, request_id: &str, answered: Answered) {
        self.answers.lock().unwrap().push(answered.clone());
        if let Some(Some(sender)) = inbox.waiting.lock().unwrap().remove(request_id) {
            let _ = sender.send(answered);
        }
        *self.outstanding.lock().unwrap() -= 1;
        self.settled.notify_all();
    }

    /// Hands nothing out until [`Played::resume`].
    fn pause(&self) {
        *self.paused.lock().unwrap() = true;
    }

    fn resume(&self) {
        *self.paused.lock().unwrap() = false;
        for inbox in self.inboxes.values() {
            inbox.arrived.notify_all();
        }
    }

    /// Waits until every queued event is answered.
    fn settle(&self) {
        let outstanding = self.outstanding.lock().unwrap();
        let (outstanding, waited) = self
            .settled
            .wait_timeout_while(outstanding, EVENT_PATIENCE, |outstanding| *outstanding > 0)
            .unwrap();
        assert!(!waited.timed_out(), "{outstanding} events still unanswered");
    }
}

/// The Runtime API of `function`: hands out its inbox's events, holding
/// `next` open until one comes, and takes its answers.
fn runtime_api(played: Arc<Played>, function: String) -> String {
    let inbox = Arc::clone(&played.inboxes[&function]);
    serve(move |request| {
        let path = request
            .start
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        if request.start.starts_with("GET ") && path.ends_with("/runtime/invocation/next") {
            let mut queue = inbox.queue.lock().unwrap();
            let queued = loop {
                if !*played.paused.lock().unwrap()
                    && let Some(queued) = queue.pop_front()
                {
                    break queued;
                }
                let (guard, waited) = inbox
                    .arrived
                    .wait_timeout(queue, Duration::from_secs(900))
                    .unwrap();
                queue = guard;
                if waited.timed_out() {
                    return Reply::Hold;
                }
            };
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 120_000;
            let headers = [
                ("Content-Type", "application/json".to_owned()),
                ("Lambda-Runtime-Aws-Request-Id", queued.request_id),
                ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
                (
                    "Lambda-Runtime-Invoked-Function-Arn",
                    format!("arn:aws:lambda:us-east-1:123456789012:function:{function}"),
                ),
            ];
            return Reply::Respond {
                status: 200,
                headers: headers
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), value))
                    .collect(),
                body: queued.payload.into_bytes(),
            };
        }
        if let Some(rest) = path.strip_prefix("/2018-06-01/runtime/invocation/") {
            let (request_id, kind) = rest.split_once('/').unwrap_or((rest, ""));
            let answered = Answered {
                function: function.clone(),
                error: kind == "error",
                body: serde_json::from_slice(&request.body).unwrap_or(Value::Null),
            };
            played.answered(&inbox, request_id, answered);
        }
        Reply::json(202, r#"{"status": "OK"}"#)
    })
}

/// Lambda's Invoke, for the bootstraps: each call handed to the invoked
/// function's bootstrap, answered with what it answers (`Event`: at once).
fn lambda_api(played: Arc<Played>) -> String {
    serve(move |request| {
        let path = request
            .start
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let Some(function) = path
            .strip_prefix("/2015-03-31/functions/")
            .and_then(|rest| rest.strip_suffix("/invocations"))
        else {
            return Reply::json(400, r#"{"message": "not an Invoke"}"#);
        };
        let queued = request.header("x-amz-invocation-type") == Some("Event");
        let (sender, answer) = mpsc::channel();
        let payload = request.body_text();
        if !played.enqueue(function, payload, (!queued).then_some(sender)) {
            return Reply::Respond {
                status: 404,
                headers: vec![("x-amzn-ErrorType".into(), "ResourceNotFoundException".into())],
                body: format!(r#"{{"message": "Function not found: {function}"}}"#).into_bytes(),
            };
        }
        if queued {
            return Reply::Respond {
                status: 202,
                headers: Vec::new(),
                body: Vec::new(),
            };
        }
        let answered = answer
            .recv_timeout(EVENT_PATIENCE)
            .expect("the invoked function answers");
        let mut headers = vec![("X-Amz-Executed-Version".to_owned(), "$LATEST".to_owned())];
        if answered.error {
            headers.push(("X-Amz-Function-Error".into(), "Unhandled".into()));
        }
        Reply::Respond {
            status: 200,
            headers,
            body: answered.body.to_string().into_bytes(),
        }
    })
}

/// The pipeline's eleven functions, each its real bootstrap behind a
/// Runtime API of its own, with Lambda played for their invocations.
struct PlayedPipeline {
    played: Arc<Played>,
    bootstraps: Vec<std::process::Child>,
    /// Every line the bootstraps wrote on standard output (their log).
    logged: Arc<Mutex<Vec<String>>>,
    /// `AWS_ENDPOINT_URL_LAMBDA` for the played Lambda.
    lambda: (String, String),
}

impl PlayedPipeline {
    /// Starts the functions with `env` (where AWS is); their invocations
    /// go to the played Lambda.
    fn start(env: &[(String, String)]) -> PlayedPipeline {
        let (dir, all) = every_function();
        let played = Arc::new(Played {
            inboxes: all
                .functions
                .keys()
                .map(|function| (function.clone(), Arc::default()))
                .collect(),
            ..Played::default()
        });
        let lambda = (
            "AWS_ENDPOINT_URL_LAMBDA".to_owned(),
            format!("http://{}", lambda_api(Arc::clone(&played))),
        );
        let mut env = env.to_vec();
        env.push(lambda.clone());
        let logged: Arc<Mutex<Vec<String>>> = Arc::default();
        let bootstraps = all
            .functions
            .keys()
            .map(|function| {
                let api = runtime_api(Arc::clone(&played), function.clone());
                let mut child = start_bootstrap_at(dir.path(), function, &api, &env);
                // Read as Lambda reads the log, so that a full pipe never
                // stops a bootstrap.
                let stdout = child.stdout.take().unwrap();
                let into = Arc::clone(&logged);
                std::thread::spawn(move || {
                    use std::io::BufRead;
                    for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                        into.lock().unwrap().push(line);
                    }
                });
                let stderr = child.stderr.take().unwrap();
                std::thread::spawn(move || std::io::copy(&mut { stderr }, &mut std::io::sink()));
                child
            })
            .collect();
        PlayedPipeline {
            played,
            bootstraps,
            logged,
            lambda,
        }
    }

    /// Sends `payload` to `function` as its trigger would, and waits until
    /// it and everything it invoked answered.
    fn deliver(&self, function: &str, payload: &Value) {
        assert!(
            self.played.enqueue(function, payload.to_string(), None),
            "{function}"
        );
        self.played.settle();
    }

    fn answers(&self) -> Vec<Answered> {
        self.played.answers.lock().unwrap().clone()
    }

    /// The Embedded Metric Format lines the bootstraps logged.
    fn metric_lines(&self) -> Vec<Value> {
        self.logged
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line.get("_aws").is_some())
            .collect()
    }
}

impl Drop for PlayedPipeline {
    fn drop(&mut self) {
        for child in &mut self.bootstraps {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The day's schedules fire: each daily function runs, with all it invokes.
fn start_the_day(pipeline: &PlayedPipeline) {
    for (schedule, function) in [
        ("TestUpdatePipelineTrigger", "emmaa-test-update-pipeline"),
        ("UpdatePipelineTrigger", "emmaa-update-pipeline"),
    ] {
        let event = json!({"detail-type": "Scheduled Event", "source": "aws.events",
            "resources": [format!("arn:aws:events:us-east-1:123456789012:rule/{schedule}")], "detail": {}});
        pipeline.deliver(function, &event);
    }
}

/// Plays the Batch containers: each job that succeeded writes the files
/// the contract names (except those `withheld` matches), and S3 notifies
/// the functions they trigger; until no new job appears.
struct BatchPlayer {
    s3: aws_sdk_s3::Client,
    batch: aws_sdk_batch::Client,
    played: std::collections::BTreeSet<String>,
    sequencer: usize,
}

impl BatchPlayer {
    fn new(config: &SdkConfig, batch: &SdkConfig) -> BatchPlayer {
        BatchPlayer {
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(config)
                    .force_path_style(true)
                    .build(),
            ),
            batch: aws_sdk_batch::Client::new(batch),
            played: Default::default(),
            sequencer: 0,
        }
    }

    /// Every job in the queue, as ListJobs sums it up.
    async fn jobs(&self) -> Vec<aws_sdk_batch::types::JobSummary> {
        let since = aws_sdk_batch::types::KeyValuesPair::builder()
            .name("AFTER_CREATED_AT")
            .values("0")
            .build();
        let listed = self
            .batch
            .list_jobs()
            .job_queue(QUEUE)
            .filters(since)
            .send()
            .await
            .unwrap();
        listed.job_summary_list().to_vec()
    }

    /// Every job's name in the queue.
    async fn job_names(&self) -> Vec<String> {
        self.jobs()
            .await
            .iter()
            .filter_map(|job| job.job_name().map(str::to_owned))
            .collect()
    }

    async fn play(&mut self, pipeline: &PlayedPipeline, withheld: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        loop {
            let listed = self.jobs().await;
            let ids: Vec<String> = listed
                .iter()
                .filter(|job| job.status() == Some(&aws_sdk_batch::types::JobStatus::Succeeded))
                .filter_map(|job| job.job_id().map(str::to_owned))
                .filter(|id| self.played.insert(id.clone()))
                .collect();
            if ids.is_empty() {
                return;
            }
            let described = self
                .batch
                .describe_jobs()
                .set_jobs(Some(ids))
                .send()
                .await
                .unwrap();
            for detail in described.jobs() {
                let job = emmaa_runtime::effects::Job {
                    name: detail.job_name().unwrap_or_default().to_owned(),
                    queue: QUEUE.to_owned(),
                    definition: DEFINITION.to_owned(),
                    command: detail
                        .container()
                        .map(|c| c.command().to_vec())
                        .unwrap_or_default(),
                    depends_on: Vec::new(),
                    work: None,
                };
                for key in files_written(&job, now).1 {
                    if !withheld.is_empty() && key.contains(withheld) {
                        continue;
                    }
                    self.s3
                        .put_object()
                        .bucket("emmaa")
                        .key(&key)
                        .body(Vec::new().into())
                        .send()
                        .await
                        .unwrap();
                    for function in triggered_by(&key, "emmaa-") {
                        self.sequencer += 1;
                        pipeline.deliver(&function, &s3_event("emmaa", &key, self.sequencer, now));
                    }
                }
            }
        }
    }
}

/// How many of `names` have the stem `stem`.
fn count_of(names: &[String], stem: &str) -> usize {
    names
        .iter()
        .filter(|name| emmaa_offline::simulate::stem(name) == stem)
        .count()
}

/// `deploy redrive` with `args` against moto (`env`): started, then waited for.
fn deploy_redrive(args: &[&str], env: &[(String, String)]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_deploy"))
        .arg("redrive")
        .args(args)
        .env_remove("AWS_PROFILE")
        .envs(env.iter().map(|(name, value)| (name.as_str(), value.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A finished `deploy redrive`: its exit code and what it printed.
fn finished(child: std::process::Child) -> (i32, String) {
    let output = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), printed)
}

/// The errors of `lines` against the Embedded Metric Format's JSON Schema
/// as AWS Lambda Powertools for Python 1.10 ships it (PyPI; the schema of
/// AWS's EMF specification, a file later releases dropped), checked with
/// PyPI's jsonschema (checkov's, in its venv in `target/`): not against
/// this project's own writer.
fn emf_errors(lines: &[Value]) -> Vec<String> {
    let bin = super::stack::checkov().parent().unwrap().to_owned();
    let target = workspace().join("target/emf-schema");
    let schema = target.join("aws_lambda_powertools/metrics/schema.json");
    if !schema.is_file() {
        // Its schema alone is read: none of its dependencies.
        let status = Command::new(bin.join("pip"))
            .args(["install", "--quiet", "--no-compile", "--no-deps", "--target"])
            .arg(&target)
            .arg("aws-lambda-powertools==1.10.0")
            .status()
            .unwrap();
        assert!(status.success(), "installing aws-lambda-powertools 1.10.0 failed");
    }
    let script = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1]))\n\
        for line in sys.stdin:\n\
        \x20   for error in jsonschema.Draft7Validator(schema).iter_errors(json.loads(line)):\n\
        \x20       print(error.message)\n";
    let mut child = Command::new(bin.join("python"))
        .args(["-c", script])
        .arg(&schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = lines.iter().map(|line| format!("{line}\n")).collect();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the schema check did not run");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `deploy status` with `args` against moto (`env`): its exit code and
/// what it printed.
fn deploy_status(args: &[&str], env: &[(String, String)]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_deploy"))
        .arg("status")
        .args(args)
        .env_remove("AWS_PROFILE")
        .envs(env.iter().map(|(name, value)| (name.as_str(), value.as_str())))
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The states `deploy status --format json` gave, as (model, stage) → (state, why).
fn states(json: &str) -> BTreeMap<(String, String), (String, String)> {
    let status: Value = serde_json::from_str(json).unwrap_or_else(|err| panic!("{err}: {json}"));
    status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|stage| {
            let text = |field: &str| stage[field].as_str().unwrap_or_default().to_owned();
            ((text("model"), text("stage")), (text("state"), text("why")))
        })
        .collect()
}

const CONFIGS: [(&str, &str); 3] = [
    (
        "models/aml/config.json",
        r#"{"run_daily_update": true, "make_tests": true}"#,
    ),
    ("models/brca/config.json", r#"{"run_daily_update": true}"#),
    (
        "models/covid/config.json",
        r#"{"run_daily_update": true, "test": {"test_corpus": ["large_corpus_tests", "no good"]}}"#,
    ),
];

fn configs() -> Vec<(String, Vec<u8>)> {
    CONFIGS
        .iter()
        .map(|(key, config)| ((*key).to_owned(), config.as_bytes().to_vec()))
        .collect()
}

/// A day in which brca's model manager never reaches S3 and test_pipeline
/// refuses one of covid's corpora: status names each stalled stage and
/// why, and a model whose day went through is complete.
#[tokio::test(flavor = "multi_thread")]
async fn status_names_what_stalled_in_a_day_played_by_the_real_bootstraps() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_bucket(&config, "emmaa", configs()).await;
    create_batch_queue(&moto, &config).await;
    let pipeline = PlayedPipeline::start(&moto.env());
    let mut batch = BatchPlayer::new(&config, &config);
    start_the_day(&pipeline);
    batch.play(&pipeline, "results/brca/model_manager_").await;
    let answers = pipeline.answers();
    assert!(
        answers
            .iter()
            .any(|answer| answer.function == "emmaa-model-stats"),
        "{answers:?}"
    );
    // One metrics line per event, and their jobs are Batch's jobs.
    let metrics = pipeline.metric_lines();
    assert_eq!(metrics.len(), answers.len(), "{metrics:#?}");
    let sum = |metric: &str| -> u64 { metrics.iter().map(|line| line[metric].as_u64().unwrap()).sum() };
    assert_eq!(
        sum("JobsSubmitted"),
        batch.job_names().await.len() as u64,
        "{metrics:#?}"
    );
    assert_eq!(sum("Refused"), 1, "covid's corpus: {metrics:#?}");
    assert_eq!(emf_errors(&metrics), Vec::<String>::new());
    // The check can fail: a line without its timestamp is refused.
    let mut broken = metrics[0].clone();
    broken["_aws"].as_object_mut().unwrap().remove("Timestamp");
    assert_eq!(emf_errors(&[broken]), ["'Timestamp' is a required property"]);
    let (code, json, stderr) = deploy_status(&["--format", "json"], &moto.env());
    assert_eq!(code, 3, "{stderr}\n{json}");
    let states = states(&json);
    let state = |model: &str, stage: &str| {
        states
            .get(&(model.to_owned(), stage.to_owned()))
            .unwrap_or_else(|| panic!("no {model} {stage} in {states:#?}"))
            .clone()
    };
    for stage in [
        "update",
        "mm_update",
        "model_stats",
        "queries",
        "test_update",
        "large_corpus_tests_tests",
        "large_corpus_tests_stats",
    ] {
        assert_eq!(state("aml", stage).0, "done", "aml {stage}");
    }
    assert_eq!(state("brca", "mm_update").0, "done");
    for stage in ["model_stats", "queries", "large_corpus_tests_tests"] {
        let (state, why) = state("brca", stage);
        assert_eq!(state, "stalled", "brca {stage}");
        assert_eq!(
            why,
            "its trigger file results/brca/model_manager_*.pkl never appeared (brca_mm_update done)"
        );
    }
    // The stage after a stalled one names the file it waited for.
    assert_eq!(
        state("brca", "large_corpus_tests_stats"),
        (
            "stalled".to_owned(),
            "its trigger file results/brca/results_large_corpus_tests_*.json never appeared \
             (brca_large_corpus_tests_tests stalled)"
                .to_owned()
        )
    );
    let (refused, why) = state("covid", "no good");
    assert_eq!(refused, "stalled");
    assert!(why.starts_with("emmaa-test-pipeline refuses it: "), "{why}");
    assert_eq!(state("covid", "large_corpus_tests_stats").0, "done");
    assert!(
        states
            .values()
            .all(|(state, _)| state != "unexpected" && state != "failed"),
        "{states:#?}"
    );

    let (code, table, stderr) = deploy_status(&["--model", "aml"], &moto.env());
    assert_eq!(code, 0, "aml's day is complete: {stderr}\n{table}");
    assert!(
        table.contains("done 8, running 0, failed 0, stalled 0, unexpected 0"),
        "{table}"
    );
    let (_, dot, _) = deploy_status(&["--model", "brca", "--format", "dot"], &moto.env());
    assert!(dot.contains("label=\"model_stats\\nstalled\""), "{dot}");

    // The redrive starts brca's model manager again (its job succeeded but
    // its file never appeared); a second one, before the first one's job
    // is in Batch, does nothing.
    let mut env = moto.env();
    env.push(pipeline.lambda.clone());
    pipeline.played.pause();
    let (code, dry) = finished(deploy_redrive(&["--dry-run", "--skip-schedule-wait"], &env));
    assert_eq!(code, 0, "{dry}");
    assert!(dry.contains("would brca mm_update ("), "{dry}");
    assert!(!dry.contains("stages started again"), "{dry}");
    let (code, first) = finished(deploy_redrive(&["--skip-schedule-wait"], &env));
    assert_eq!(code, 0, "{first}");
    assert!(
        first.contains(
            "brca mm_update (brca_mm_update succeeded but results/brca/model_manager_*.pkl never appeared): \
             invoke emmaa-mm-update with the S3 event of models/brca/model_"
        ),
        "{first}"
    );
    assert!(first.contains("superseded"), "{first}");
    assert!(
        first.contains("covid no good: not started again: emmaa-test-pipeline refuses it"),
        "{first}"
    );
    assert!(first.ends_with("1 stages started again\n"), "{first}");
    let (code, second) = finished(deploy_redrive(&["--skip-schedule-wait"], &env));
    assert_eq!(code, 0, "{second}");
    assert!(second.contains("brca mm_update: already redriven"), "{second}");
    assert!(second.ends_with("0 stages started again\n"), "{second}");
    pipeline.played.resume();
    pipeline.played.settle();
    batch.play(&pipeline, "").await;
    let names = batch.job_names().await;
    assert_eq!(count_of(&names, "brca_mm_update"), 2, "once more: {names:?}");
    for stem in [
        "brca_update",
        "brca_model_stats",
        "brca_queries",
        "brca_large_corpus_tests_stats",
        "aml_mm_update",
    ] {
        assert_eq!(count_of(&names, stem), 1, "{stem}: {names:?}");
    }
    let (code, json, stderr) = deploy_status(&["--format", "json", "--model", "brca"], &moto.env());
    assert_eq!(code, 0, "brca's day is complete: {stderr}\n{json}");
    let brca = super::day::states(&json);
    assert!(
        !brca.is_empty() && brca.values().all(|(state, _)| state == "done"),
        "{brca:#?}"
    );
}

/// A day in which Batch fails every job: each model's first job failed,
/// with no reason given (moto gives none), and what follows it stalled.
#[tokio::test(flavor = "multi_thread")]
async fn status_shows_jobs_batch_failed_and_what_they_held_up() {
    let moto = Moto::start();
    let failing = Moto::start_failing_every_job();
    let config = moto.sdk_config().await;
    let batch = failing.sdk_config().await;
    create_bucket(&config, "emmaa", configs()).await;
    create_batch_queue(&failing, &batch).await;
    let mut env = moto.env();
    env.push(("AWS_ENDPOINT_URL_BATCH".into(), failing.endpoint()));
    let pipeline = PlayedPipeline::start(&env);
    let mut player = BatchPlayer::new(&config, &batch);
    start_the_day(&pipeline);
    player.play(&pipeline, "").await;
    let (code, json, stderr) = deploy_status(&["--format", "json"], &env);
    assert_eq!(code, 3, "{stderr}\n{json}");
    let states = states(&json);
    for model in ["aml", "brca", "covid"] {
        let (state, why) = &states[&(model.to_owned(), "update".to_owned())];
        assert_eq!(
            (state.as_str(), why.as_str()),
            ("failed", "no reason given"),
            "{model}"
        );
        let (state, why) = &states[&(model.to_owned(), "mm_update".to_owned())];
        assert_eq!(state, "stalled", "{model}");
        assert!(why.contains(&format!("({model}_update failed)")), "{why}");
    }
    assert_eq!(states[&("aml".to_owned(), "test_update".to_owned())].0, "failed");

    // Two redrives at once, before any of their jobs is in Batch: each
    // failed stage is started again by one of them, once.
    env.push(pipeline.lambda.clone());
    pipeline.played.pause();
    let both = [
        deploy_redrive(&["--skip-schedule-wait"], &env),
        deploy_redrive(&["--skip-schedule-wait"], &env),
    ];
    let printed: Vec<(i32, String)> = both.into_iter().map(finished).collect();
    let started: usize = printed
        .iter()
        .map(|(code, printed)| {
            assert_eq!(*code, 0, "{printed}");
            let last = printed.lines().last().unwrap_or_default();
            last.strip_suffix(" stages started again")
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    assert_eq!(started, 4, "{printed:?}");
    pipeline.played.resume();
    pipeline.played.settle();
    let names = player.job_names().await;
    for stem in ["aml_update", "brca_update", "covid_update", "aml_test_update"] {
        assert_eq!(count_of(&names, stem), 2, "{stem} once more: {names:?}");
    }
    assert_eq!(names.len(), 8, "{names:?}");
}

/// What `deploy status` costs (docs/benchmarks.md): AWS calls per API and
/// the time against moto, for `EMMAA_STATUS_MODELS` (default 40) made-up
/// models, none of whose work has started (every stage stalled, so the
/// ledger is read too). A benchmark, not a test: it asserts only that the
/// status read them all.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: cargo test -p emmaa-deploy --test deploy -- --ignored what_status_costs --nocapture"]
async fn what_status_costs() {
    let models: usize = std::env::var("EMMAA_STATUS_MODELS")
        .ok()
        .and_then(|models| models.parse().ok())
        .unwrap_or(40);
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let configs = emmaa_offline::simulate::synthetic_bucket(models)
        .into_iter()
        .collect();
    create_bucket(&config, "emmaa", configs).await;
    create_batch_queue(&moto, &config).await;
    let started = std::time::Instant::now();
    let (code, json, stderr) = deploy_status(&["--format", "json"], &moto.env());
    let took = started.elapsed();
    assert_eq!(code, 3, "{stderr}");
    let status: Value = serde_json::from_str(&json).unwrap();
    let models_seen: std::collections::BTreeSet<&str> = status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|stage| stage["model"].as_str())
        .collect();
    assert_eq!(models_seen.len(), models);
    let calls: u64 = status["calls"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum();
    println!(
        "{models} models: {} stages, {calls} calls in {took:.1?} against moto: {}",
        status["stages"].as_array().unwrap().len(),
        status["calls"]
    );
}
