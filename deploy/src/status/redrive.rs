//! `deploy redrive`: starts again exactly what failed or stalled, from each
//! model's earliest unfinished stage, through the pipeline's own functions
//! (that stage's invocation, or the S3 event its trigger file sent), never
//! twice and never with `"rerun": true`, which claims nothing.
//!
//! Against the ledger as it is:
//! - each redrive first claims what it starts, at
//!   `{ledger}redrive/{hash of date, model, stage and the unit it
//!   replaces}.json` with `If-None-Match: *`: a second or concurrent redrive
//!   finds the claim and does nothing, before the first one's jobs are in
//!   Batch or after;
//! - the failed unit's claim becomes `superseded` (naming the redrive, with
//!   the failed job's id), so that the same S3 event is free to submit
//!   again ([`emmaa_runtime::ledger::superseded`]); an invocation starts
//!   under a request id of its own, new work to the ledger.

use emmaa_offline::report::{Followed, RunReport};
use emmaa_offline::simulate::{Simulation, Start, s3_event, stem};
use emmaa_runtime::action::Action;
use emmaa_runtime::digest::sha256_hex;
use serde_json::{Value, json};

use super::read::DayRead;
use super::{ClaimSeen, Stage, State, key_shape};

/// How a stage's function was started in the expected day.
#[derive(Debug, Clone, PartialEq)]
enum Started {
    /// By a new object: the function and the key's shape.
    File { function: String, key: String },
    /// Invoked, with this payload.
    Invoked { function: String, payload: Value },
}

/// What a redrive does for one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub model: String,
    /// The stage started again (`mm_update`), or the one left alone.
    pub stage: String,
    /// Why it is started again, or why not.
    pub why: String,
    pub action: Option<Redrive>,
}

/// A stage started again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    /// Where this redrive's claim goes.
    pub claim_key: String,
    /// The unit of work it replaces (a failed job's claim), if known.
    pub replaces: Option<ClaimSeen>,
    pub function: String,
    pub payload: String,
    /// What the payload is, in words.
    pub what: String,
}

/// The redrive of the day `day` read: for each model, its earliest stage
/// that failed or stalled, and how to start it again.
pub fn plan(day: &DayRead) -> Vec<Planned> {
    let ledger = day.settings.ledger_prefix.clone().unwrap_or_default();
    let bucket = &day.settings.pipeline.bucket;
    let picture = emmaa_offline::picture::Picture::of(&day.expected);
    let state_of: std::collections::BTreeMap<&str, State> = day
        .status
        .stages
        .iter()
        .filter_map(|stage| Some((stage.expected_job.as_deref()?, stage.state)))
        .collect();
    let mut planned: Vec<Planned> = Vec::new();
    let mut targets = std::collections::BTreeSet::new();
    let left_alone = |stage: &Stage, why: String| Planned {
        model: stage.model.clone(),
        stage: stage.stage.clone(),
        why,
        action: None,
    };
    for stage in &day.status.stages {
        if !matches!(stage.state, State::Failed | State::Stalled) {
            continue;
        }
        let Some(expected_job) = &stage.expected_job else {
            let why = format!(
                "not started again: {} (a redrive cannot change that; the config can)",
                stage.why.clone().unwrap_or_default()
            );
            planned.push(left_alone(stage, why));
            continue;
        };
        // Only the earliest unfinished stage of each branch, once the stage
        // before it is done: what follows starts again when its files
        // appear, and a stage whose predecessor still runs is not stalled.
        let upstream = picture.arrows.iter().find(|arrow| &arrow.to == expected_job);
        if upstream.is_some_and(|arrow| state_of.get(arrow.from.as_str()) != Some(&State::Done)) {
            continue;
        }
        let Some((target, why)) = what_to_start(day, &picture, stage, expected_job) else {
            continue;
        };
        if !targets.insert(stem(&target).to_owned()) {
            continue;
        }
        let Some(started) = started(&day.expected, &target) else {
            continue;
        };
        // Someone holds the work: the delivery at it may still submit.
        if let Some(claim) = day.observed.claims.iter().find(|claim| {
            claim.state == "pending" && claim.job_name.as_deref().map(stem) == Some(stem(&target))
        }) {
            let why = format!(
                "not started again: a claim on it is pending (request {}, {}): that delivery may still do it",
                claim.request_id, claim.key
            );
            planned.push(left_alone(stage, why));
            continue;
        }
        // The job of the stage started again: the failed one, or the one
        // that succeeded without writing its file.
        let replaced_job = day.status.stages.iter().find_map(|stage| {
            let job = stage.job.as_ref()?;
            (stage.expected_job.as_deref() == Some(target.as_str())).then_some(job)
        });
        let (function, payload, what, replaces) = match &started {
            // A new request id: new work to the ledger, nothing to supersede.
            Started::Invoked { function, payload } => (
                function.clone(),
                payload.to_string(),
                format!("its invocation {payload}"),
                None,
            ),
            Started::File { function, key } => {
                // The S3 event as it was: the same sequencer names the same
                // unit of work, so what went through is not done again; the
                // failed job's claim is superseded so that it is free.
                let key = observed_key(day, key).unwrap_or_else(|| key.clone());
                let unit = day.observed.claims.iter().find(|claim| {
                    s3_unit(&claim.work).is_some_and(|(claimed, _)| claimed == key)
                        && (claim.state != "done"
                            || replaced_job
                                .is_some_and(|job| claim.job_id.as_deref() == Some(job.id.as_str())))
                });
                if let Some(claim) = unit.filter(|claim| claim.state == "pending") {
                    let why = format!(
                        "not started again: a claim on its event is pending (request {}, {}): that delivery may still do it",
                        claim.request_id, claim.key
                    );
                    planned.push(left_alone(stage, why));
                    continue;
                }
                let sequencer = unit
                    .and_then(|claim| s3_unit(&claim.work))
                    .map(|(_, sequencer)| sequencer);
                let mut event = s3_event(bucket, &key, 0, now_s());
                match &sequencer {
                    Some(sequencer) => event["Records"][0]["s3"]["object"]["sequencer"] = json!(sequencer),
                    None => {
                        if let Some(object) = event["Records"][0]["s3"]["object"].as_object_mut() {
                            object.remove("sequencer");
                        }
                    }
                }
                let replaces = unit.filter(|claim| claim.state == "done").cloned();
                (
                    function.clone(),
                    event.to_string(),
                    format!("the S3 event of {key}"),
                    replaces,
                )
            }
        };
        // Keyed by the job it replaces (none: a stage that never had one),
        // so a redrive of a later failure of the same stage is a new one.
        let unit = replaced_job.map_or_else(|| "-".to_owned(), |job| job.id.clone());
        let stage_name = super::stage_name(&stage.model, stem(&target));
        let identity = format!("{}|{}|{}|{unit}", day.status.date, stage.model, stage_name);
        let claim_key = format!("{ledger}redrive/{}.json", &sha256_hex(identity.as_bytes())[..32]);
        planned.push(Planned {
            model: stage.model.clone(),
            stage: stage_name,
            why,
            action: Some(Redrive {
                claim_key,
                replaces,
                function,
                payload,
                what,
            }),
        });
    }
    planned
}

/// The expected job to start again for `stage` (itself, or the stage
/// before it when that one's job succeeded but its file never appeared),
/// and why.
fn what_to_start(
    day: &DayRead,
    picture: &emmaa_offline::picture::Picture,
    stage: &Stage,
    expected_job: &str,
) -> Option<(String, String)> {
    let why = stage.why.clone().unwrap_or_default();
    if stage.state == State::Failed {
        return Some((expected_job.to_owned(), format!("its job failed: {why}")));
    }
    let upstream = picture.arrows.iter().find(|arrow| arrow.to == expected_job);
    match upstream {
        Some(arrow) => {
            let appeared = key_shape(&arrow.file)
                .is_some_and(|shape| day.observed.files.iter().any(|key| key_shape(key) == Some(shape)));
            if appeared {
                return Some((expected_job.to_owned(), format!("stalled: {why}")));
            }
            Some((
                arrow.from.clone(),
                format!(
                    "{} succeeded but {} never appeared",
                    stem(&arrow.from),
                    key_shape(&arrow.file)
                        .map(|(before, after)| format!("{before}*{after}"))
                        .unwrap_or_else(|| arrow.file.clone())
                ),
            ))
        }
        None => Some((expected_job.to_owned(), format!("stalled: {why}"))),
    }
}

/// The observed key of the shape of `key`.
fn observed_key(day: &DayRead, key: &str) -> Option<String> {
    let shape = key_shape(key)?;
    day.observed
        .files
        .iter()
        .find(|seen| key_shape(seen) == Some(shape))
        .cloned()
}

/// `s3:<key>@<sequencer>` into the key and the sequencer.
fn s3_unit(work: &str) -> Option<(String, String)> {
    let (key, sequencer) = work.strip_prefix("s3:")?.rsplit_once('@')?;
    Some((key.to_owned(), sequencer.to_owned()))
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// How the function that submitted `job` was started in the expected day.
fn started(expected: &Simulation, job: &str) -> Option<Started> {
    expected.runs.iter().find_map(|run| {
        let top = match &run.start {
            Start::File { key, .. } => Some(Started::File {
                function: run.run.function.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        started_in(&run.run, job, top)
    })
}

fn started_in(report: &RunReport, job: &str, this: Option<Started>) -> Option<Started> {
    for reported in &report.actions {
        match (&reported.action, reported.run.as_deref()) {
            (Action::BatchSubmit { job_name, .. }, _) if job_name == job => return this,
            (
                Action::LambdaInvoke {
                    function_name,
                    payload,
                    ..
                },
                Some(Followed::Ran(inner)),
            ) => {
                let invoked = Started::Invoked {
                    function: function_name.clone(),
                    payload: payload.clone(),
                };
                if let Some(found) = started_in(inner, job, Some(invoked)) {
                    return Some(found);
                }
            }
            _ => {}
        }
    }
    None
}

/// The redrive's account of itself, in the claim it writes.
fn redrive_claim(id: &str, date: &str, planned: &Planned, redrive: &Redrive) -> Vec<u8> {
    let claim = json!({
        "redrive": id,
        "date": date,
        "model": planned.model,
        "stage": planned.stage,
        "replaces": redrive.replaces.as_ref().map(|claim| &claim.work),
        "replaced_job_id": redrive.replaces.as_ref().and_then(|claim| claim.job_id.as_ref()),
        "function": redrive.function,
        "payload": redrive.payload,
    });
    serde_json::to_vec_pretty(&claim).unwrap_or_default()
}

/// Does what `plan` planned (or, `dry_run`, says what it would do): for
/// each stage, claims the redrive, supersedes the unit it replaces and
/// invokes the function; one line each through `say`.
pub async fn redrive(
    account: &crate::aws::Account,
    day: &DayRead,
    dry_run: bool,
    say: &mut dyn FnMut(String),
) -> Result<usize, crate::aws::AwsProblem> {
    let planned = plan(day);
    if planned.is_empty() {
        say(format!(
            "nothing to redrive on {}: nothing failed or stalled",
            day.status.date
        ));
        return Ok(0);
    }
    let bucket = &day.settings.pipeline.bucket;
    let s3 = super::read::s3_client(account);
    let lambda = aws_sdk_lambda::Client::new(&account.config);
    let id = format!("redrive-{}-{}", now_s(), std::process::id());
    let problem =
        |err: &dyn ExplainableError, action: &str, resource: &str| err.explain(action, resource, account);
    let mut started = 0;
    for planned in &planned {
        let Some(redrive) = &planned.action else {
            say(format!("{} {}: {}", planned.model, planned.stage, planned.why));
            continue;
        };
        let doing = format!(
            "{} {} ({}): invoke {} with {}",
            planned.model, planned.stage, planned.why, redrive.function, redrive.what
        );
        if dry_run {
            say(format!("would {doing}"));
            continue;
        }
        let place = format!("s3://{bucket}/{}", redrive.claim_key);
        let claimed = s3
            .put_object()
            .bucket(bucket)
            .key(&redrive.claim_key)
            .if_none_match("*")
            .body(redrive_claim(&id, &day.status.date, planned, redrive).into())
            .send()
            .await;
        match claimed {
            Ok(_) => {}
            Err(err) if lost_race(&err) => {
                say(format!(
                    "{} {}: already redriven ({place}): nothing done",
                    planned.model, planned.stage
                ));
                continue;
            }
            Err(err) => return Err(problem(&err, "s3:PutObject", &place)),
        }
        // From here on a failure releases the redrive's claim, so that a
        // later redrive can do what this one did not.
        let release = || async {
            match s3
                .delete_object()
                .bucket(bucket)
                .key(&redrive.claim_key)
                .send()
                .await
            {
                Ok(_) => None,
                Err(err) => Some(format!(
                    "could not release the redrive's claim ({}): delete {place} by hand before redriving again",
                    problem(&err, "s3:DeleteObject", &place).sentence
                )),
            }
        };
        if let Some(replaced) = &redrive.replaces {
            let held = format!("s3://{bucket}/{}", replaced.key);
            let read = match s3.get_object().bucket(bucket).key(&replaced.key).send().await {
                Ok(read) => read,
                Err(err) => {
                    if let Some(warning) = release().await {
                        say(warning);
                    }
                    return Err(problem(&err, "s3:GetObject", &held));
                }
            };
            let etag = read.e_tag().unwrap_or_default().to_owned();
            let body = match read.body.collect().await {
                Ok(bytes) => bytes.to_vec(),
                Err(err) => {
                    if let Some(warning) = release().await {
                        say(warning);
                    }
                    return Err(crate::aws::AwsProblem::new(
                        crate::aws::ProblemKind::Other,
                        format!("reading {held}: {err}"),
                    ));
                }
            };
            let job_id = replaced.job_id.clone().unwrap_or_default();
            let Some(body) = emmaa_runtime::ledger::superseded(&body, &id, &job_id) else {
                if let Some(warning) = release().await {
                    say(warning);
                }
                say(format!(
                    "{} {}: its claim {held} is no longer done with job {job_id}: nothing started",
                    planned.model, planned.stage
                ));
                continue;
            };
            let written = s3
                .put_object()
                .bucket(bucket)
                .key(&replaced.key)
                .if_match(etag)
                .body(body.into())
                .send()
                .await;
            match written {
                Ok(_) => {}
                // A delivery of the event is at it now: leave it be.
                Err(err) if lost_race(&err) => {
                    if let Some(warning) = release().await {
                        say(warning);
                    }
                    say(format!(
                        "{} {}: its claim {held} changed while it was superseded (a delivery of its event is at it): nothing started",
                        planned.model, planned.stage
                    ));
                    continue;
                }
                Err(err) => {
                    if let Some(warning) = release().await {
                        say(warning);
                    }
                    return Err(problem(&err, "s3:PutObject", &held));
                }
            }
        }
        let invoked = lambda
            .invoke()
            .function_name(&redrive.function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(redrive.payload.clone().into_bytes().into())
            .send()
            .await;
        if let Err(err) = invoked {
            // Refused for sure (a 4xx): nothing started, so the claim goes.
            // A timeout or a 5xx may have been taken: the claim stays, and
            // says so, rather than a later redrive starting it twice.
            let refused = err
                .raw_response()
                .is_some_and(|raw| raw.status().is_client_error());
            if refused && let Some(warning) = release().await {
                say(warning);
            }
            let mut failed = problem(&err, "lambda:InvokeFunction", &redrive.function);
            if !refused {
                failed.sentence.push_str(&format!(
                    "; the invocation may have been taken, so the redrive's claim {place} stays: \
                     see deploy status, and delete it to redrive this stage again"
                ));
            }
            return Err(failed);
        }
        started += 1;
        let superseded = redrive
            .replaces
            .as_ref()
            .map(|claim| format!("; {} superseded", claim.key))
            .unwrap_or_default();
        say(format!("{doing}{superseded}"));
    }
    Ok(started)
}

/// Whether a conditional write lost to another: 412, or 409 when S3 saw
/// two conditional writes to the key at once.
fn lost_race<E>(
    err: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> bool {
    err.raw_response()
        .is_some_and(|raw| matches!(raw.status().as_u16(), 409 | 412))
}

/// An AWS SDK error, as one sentence ([`crate::aws::explain`]).
trait ExplainableError {
    fn explain(&self, action: &str, resource: &str, account: &crate::aws::Account) -> crate::aws::AwsProblem;
}

impl<E> ExplainableError
    for aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn explain(&self, action: &str, resource: &str, account: &crate::aws::Account) -> crate::aws::AwsProblem {
        crate::aws::explain(self, crate::aws::Call { action, resource }, account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::status::tests::{expected_day, expected_name, job};
    use crate::status::{ClaimSeen, ObservedDay, compare};

    async fn day_of(observed: ObservedDay) -> DayRead {
        let expected = expected_day().await;
        let settings = emmaa_runtime::settings::Settings::from_lookup(|_| None).unwrap();
        DayRead {
            status: compare(&expected, &observed, "2025-12-05", &["aml".to_owned()]),
            expected,
            observed,
            settings,
            redrivable_from: 0,
        }
    }

    /// aml's model manager still running: what follows it is not
    /// stalled yet, and nothing is started again.
    #[tokio::test]
    async fn a_stage_whose_predecessor_still_runs_is_not_started_again() {
        let expected = expected_day().await;
        let observed = ObservedDay {
            jobs: vec![
                job(expected_name(&expected, "aml_update"), "SUCCEEDED", 1),
                job(expected_name(&expected, "aml_mm_update"), "RUNNING", 2),
            ],
            files: ["models/aml/model_2025-12-05-05-00-09.pkl".to_owned()].into(),
            ..ObservedDay::default()
        };
        assert_eq!(plan(&day_of(observed).await), Vec::<Planned>::new());
    }

    /// A stage whose trigger file appeared while a claim on its event is
    /// still pending: that delivery may still submit, so it is left alone.
    #[tokio::test]
    async fn a_stage_someone_holds_a_claim_on_is_left_alone() {
        let expected = expected_day().await;
        let key = "models/aml/model_2025-12-05-05-00-09.pkl";
        let observed = ObservedDay {
            jobs: vec![job(expected_name(&expected, "aml_update"), "SUCCEEDED", 1)],
            files: [key.to_owned()].into(),
            claims: vec![ClaimSeen {
                key: "ledger/emmaa-mm-update/0f.json".to_owned(),
                state: "pending".to_owned(),
                work: format!("s3:{key}@0A"),
                request_id: "r-7".to_owned(),
                job_name: Some("aml_mm_update_20251205_050010".to_owned()),
                job_id: None,
            }],
            ..ObservedDay::default()
        };
        let planned = plan(&day_of(observed).await);
        assert_eq!(planned.len(), 1, "{planned:?}");
        assert_eq!(planned[0].action, None);
        assert!(
            planned[0].why.contains("a claim on it is pending (request r-7"),
            "{planned:?}"
        );
    }

    /// A failed job started by a file: its event again with the claim's
    /// sequencer, the claim superseded, and the redrive keyed by the job.
    #[tokio::test]
    async fn a_failed_job_started_by_a_file_gets_its_event_again_with_its_sequencer() {
        let expected = expected_day().await;
        let key = "models/aml/model_2025-12-05-05-00-09.pkl";
        let failed = job(expected_name(&expected, "aml_mm_update"), "FAILED", 2);
        let claim = ClaimSeen {
            key: "ledger/emmaa-mm-update/0f.json".to_owned(),
            state: "done".to_owned(),
            work: format!("s3:{key}@0A1F"),
            request_id: "r-7".to_owned(),
            job_name: Some(failed.name.clone()),
            job_id: Some(failed.id.clone()),
        };
        let observed = ObservedDay {
            jobs: vec![
                job(expected_name(&expected, "aml_update"), "SUCCEEDED", 1),
                failed,
            ],
            files: [key.to_owned()].into(),
            claims: vec![claim.clone()],
            ..ObservedDay::default()
        };
        let planned = plan(&day_of(observed).await);
        let redrive = planned[0].action.as_ref().unwrap();
        assert_eq!(redrive.function, "emmaa-mm-update");
        assert_eq!(redrive.replaces.as_ref(), Some(&claim));
        let event: Value = serde_json::from_str(&redrive.payload).unwrap();
        assert_eq!(event["Records"][0]["s3"]["object"]["key"], key);
        assert_eq!(event["Records"][0]["s3"]["object"]["sequencer"], "0A1F");
        assert!(
            redrive.claim_key.starts_with("ledger/redrive/"),
            "{}",
            redrive.claim_key
        );
    }

    #[test]
    fn an_s3_unit_gives_its_key_and_sequencer() {
        assert_eq!(
            s3_unit("s3:models/a@b/model_2026-12-05-05-00-01.pkl@0A1F"),
            Some((
                "models/a@b/model_2026-12-05-05-00-01.pkl".to_owned(),
                "0A1F".to_owned()
            ))
        );
        assert_eq!(s3_unit("request:r1:aml_update"), None);
    }
}
