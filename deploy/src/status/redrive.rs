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
    let unfinished = |state: Option<&State>| matches!(state, Some(State::Failed | State::Stalled));
    let mut planned: Vec<Planned> = Vec::new();
    let mut targets = std::collections::BTreeSet::new();
    for stage in &day.status.stages {
        if !matches!(stage.state, State::Failed | State::Stalled) {
            continue;
        }
        let Some(expected_job) = &stage.expected_job else {
            planned.push(Planned {
                model: stage.model.clone(),
                stage: stage.stage.clone(),
                why: format!(
                    "not started again: {} (a redrive cannot change that; the config can)",
                    stage.why.clone().unwrap_or_default()
                ),
                action: None,
            });
            continue;
        };
        // Only the earliest unfinished stage of each branch: what follows
        // it starts again when its files appear.
        let upstream = picture.arrows.iter().find(|arrow| &arrow.to == expected_job);
        if upstream.is_some_and(|arrow| unfinished(state_of.get(arrow.from.as_str()))) {
            continue;
        }
        let Some((target, why)) = what_to_start(day, stage, expected_job) else {
            continue;
        };
        if !targets.insert(stem(&target).to_owned()) {
            continue;
        }
        let Some(started) = started(&day.expected, &target) else {
            continue;
        };
        // The job of the stage started again: the failed one, or the one
        // that succeeded without writing its file.
        let replaced_job = day.status.stages.iter().find_map(|stage| {
            let job = stage.job.as_ref()?;
            (stage.expected_job.as_deref() == Some(target.as_str())).then_some(job)
        });
        let replaces = replaced_job.and_then(|job| {
            day.observed
                .claims
                .iter()
                .find(|claim| claim.job_id.as_deref() == Some(job.id.as_str()))
                .cloned()
        });
        let (function, payload, what) = match &started {
            Started::Invoked { function, payload } => (
                function.clone(),
                payload.to_string(),
                format!("its invocation {payload}"),
            ),
            Started::File { function, key } => {
                // The S3 event as it was: the same sequencer names the same
                // unit of work, so what went through is not done again.
                let (key, sequencer) = match replaces.as_ref().and_then(|claim| s3_unit(&claim.work)) {
                    Some((key, sequencer)) => (key, Some(sequencer)),
                    None => (observed_key(day, key).unwrap_or_else(|| key.clone()), None),
                };
                let mut event = s3_event(bucket, &key, 0, now_s());
                match &sequencer {
                    Some(sequencer) => event["Records"][0]["s3"]["object"]["sequencer"] = json!(sequencer),
                    None => {
                        if let Some(object) = event["Records"][0]["s3"]["object"].as_object_mut() {
                            object.remove("sequencer");
                        }
                    }
                }
                (
                    function.clone(),
                    event.to_string(),
                    format!("the S3 event of {key}"),
                )
            }
        };
        let unit = replaces
            .as_ref()
            .map(|claim| claim.work.clone())
            .or_else(|| replaced_job.map(|job| job.id.clone()))
            .unwrap_or_else(|| "-".to_owned());
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
fn what_to_start(day: &DayRead, stage: &Stage, expected_job: &str) -> Option<(String, String)> {
    let why = stage.why.clone().unwrap_or_default();
    if stage.state == State::Failed {
        return Some((expected_job.to_owned(), format!("its job failed: {why}")));
    }
    let picture = emmaa_offline::picture::Picture::of(&day.expected);
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
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&account.config)
            .force_path_style(account.endpoint.is_some())
            .build(),
    );
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
            Err(err) if err.raw_response().is_some_and(|raw| raw.status().as_u16() == 412) => {
                say(format!(
                    "{} {}: already redriven (s3://{bucket}/{}): nothing done",
                    planned.model, planned.stage, redrive.claim_key
                ));
                continue;
            }
            Err(err) => return Err(problem(&err, "s3:PutObject", &redrive.claim_key)),
        }
        if let Some(replaced) = &redrive.replaces {
            let read = s3.get_object().bucket(bucket).key(&replaced.key).send().await;
            let read = read.map_err(|err| problem(&err, "s3:GetObject", &replaced.key))?;
            let etag = read.e_tag().unwrap_or_default().to_owned();
            let held = read
                .body
                .collect()
                .await
                .map(|bytes| bytes.to_vec())
                .unwrap_or_default();
            if let Some(body) = emmaa_runtime::ledger::superseded(&held, &id) {
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
                    Err(err) if err.raw_response().is_some_and(|raw| raw.status().as_u16() == 412) => {
                        let _ = s3
                            .delete_object()
                            .bucket(bucket)
                            .key(&redrive.claim_key)
                            .send()
                            .await;
                        say(format!(
                            "{} {}: its claim {} changed while it was superseded (a delivery of its event is at it): nothing started",
                            planned.model, planned.stage, replaced.key
                        ));
                        continue;
                    }
                    Err(err) => return Err(problem(&err, "s3:PutObject", &replaced.key)),
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
            // Nothing started: the redrive's claim goes, so a later one can.
            let _ = s3
                .delete_object()
                .bucket(bucket)
                .key(&redrive.claim_key)
                .send()
                .await;
            return Err(problem(&err, "lambda:InvokeFunction", &redrive.function));
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
