//! `deploy status`: where each model's day stands. The expected day is the
//! one `emmaa-host simulate` computes, over the configs read from the
//! bucket; the actual day is what AWS holds (the day's jobs in Batch, the
//! files under `models/` and `results/`, the ledger's claims and, where
//! recorded, the traces). Matching the two gives every model's stages a
//! state: done, running, failed, stalled or unexpected.
//!
//! The matching is here, over plain values ([`ObservedDay`]), so it is
//! tested without AWS; [`read`] fills them from AWS.

pub mod read;
pub mod redrive;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use emmaa_offline::picture::Picture;
use emmaa_offline::report::{Followed, RunReport};
use emmaa_offline::simulate::{Simulation, Start, stem};
use emmaa_runtime::action::Action;
use serde::Serialize;
use serde_json::Value;

/// How one stage of a model's day stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Its job succeeded.
    Done,
    /// Its job is in Batch and has not ended.
    Running,
    /// Its job failed.
    Failed,
    /// Expected, but no job was submitted for it.
    Stalled,
    /// A job or file the expected day does not have.
    Unexpected,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Done,
        State::Running,
        State::Failed,
        State::Stalled,
        State::Unexpected,
    ];

    pub fn word(self) -> &'static str {
        match self {
            State::Done => "done",
            State::Running => "running",
            State::Failed => "failed",
            State::Stalled => "stalled",
            State::Unexpected => "unexpected",
        }
    }

    /// The colour of its box in the picture.
    pub fn fill(self) -> &'static str {
        match self {
            State::Done => "#bbf7d0",
            State::Running => "#bfdbfe",
            State::Failed => "#fca5a5",
            State::Stalled => "#fde68a",
            State::Unexpected => "#e9d5ff",
        }
    }
}

/// A Batch job of the day, as `ListJobs` and `DescribeJobs` tell it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobSeen {
    pub name: String,
    pub id: String,
    pub queue: String,
    /// Batch's status: SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED or FAILED.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_stream: Option<String>,
    /// When Batch created it (milliseconds since the epoch).
    pub created_ms: i64,
}

/// A claim in the ledger written that day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimSeen {
    pub key: String,
    /// `pending` or `done`.
    pub state: String,
    pub work: String,
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

/// An item a function refused, from a trace or from the expected day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub function: String,
    pub model: String,
    pub item: String,
    pub reason: String,
}

/// The actual day, as read from AWS.
#[derive(Debug, Clone, Default)]
pub struct ObservedDay {
    /// The day's jobs (their names carry the day).
    pub jobs: Vec<JobSeen>,
    /// The day's files under `models/` and `results/` (their keys carry the day).
    pub files: BTreeSet<String>,
    pub claims: Vec<ClaimSeen>,
    /// Refusals the day's traces recorded.
    pub refusals: Vec<Refusal>,
}

/// One stage of one model's day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    pub model: String,
    /// The work, as its job's name says it without the model and the time
    /// (`update`, `large_corpus_tests_tests`); a file's key for an
    /// unexpected file.
    pub stage: String,
    /// The function that submits its job.
    pub function: String,
    pub state: State,
    /// The job that stands for it: the one that succeeded, else the
    /// latest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobSeen>,
    /// Why it failed or stalled, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The expected job's name (with the simulated time), to find it in the picture.
    #[serde(skip)]
    pub expected_job: Option<String>,
}

/// The day, every model's stages with their states.
#[derive(Debug, Clone, Serialize)]
pub struct DayStatus {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub stages: Vec<Stage>,
    pub summary: BTreeMap<State, usize>,
    /// AWS calls made, per API.
    pub calls: BTreeMap<String, usize>,
    /// What the status could not see, in words.
    pub notes: Vec<String>,
}

impl DayStatus {
    /// Whether anything failed or stalled.
    pub fn troubled(&self) -> bool {
        self.stages
            .iter()
            .any(|stage| matches!(stage.state, State::Failed | State::Stalled))
    }

    /// One line per stage, then the counts.
    pub fn table(&self) -> String {
        let width = |of: fn(&Stage) -> usize, title: &str| {
            self.stages.iter().map(of).max().unwrap_or(0).max(title.len())
        };
        let model = width(|stage| stage.model.chars().count(), "model");
        let stage_width = width(|stage| stage.stage.chars().count(), "stage");
        let mut out = format!(
            "{:model$}  {:stage_width$}  {:10}  detail\n",
            "model", "stage", "state"
        );
        for stage in &self.stages {
            let _ = writeln!(
                out,
                "{:model$}  {:stage_width$}  {:10}  {}",
                stage.model,
                stage.stage,
                stage.state.word(),
                detail(stage)
            );
        }
        let _ = writeln!(out, "{} on {}", self.counts(), self.date);
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    /// `done 6, running 0, failed 1, stalled 4, unexpected 0`.
    pub fn counts(&self) -> String {
        State::ALL
            .iter()
            .map(|state| {
                format!(
                    "{} {}",
                    state.word(),
                    self.summary.get(state).copied().unwrap_or(0)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The day's picture, each box coloured by its stage's state.
    pub fn picture(&self, expected: &Simulation) -> Picture {
        let by_job: BTreeMap<&str, &Stage> = self
            .stages
            .iter()
            .filter_map(|stage| Some((stage.expected_job.as_deref()?, stage)))
            .collect();
        let models: BTreeSet<&str> = self.stages.iter().map(|stage| stage.model.as_str()).collect();
        let mut picture = Picture::of(expected);
        picture.rows.retain(|row| models.contains(row.model.as_str()));
        picture.coloured(|job| {
            let stage = by_job.get(job)?;
            Some((stage.state.word().to_owned(), stage.state.fill()))
        })
    }
}

/// A stage's job, or why it has none.
fn detail(stage: &Stage) -> String {
    let mut parts = Vec::new();
    if let Some(job) = &stage.job {
        parts.push(format!("{} ({})", job.name, job.status));
        if let Some(code) = job.exit_code {
            parts.push(format!("exit code {code}"));
        }
        if let Some(stream) = &job.log_stream {
            parts.push(format!("log stream {stream}"));
        }
    }
    if let Some(why) = &stage.why {
        parts.push(why.clone());
    }
    parts.join("; ")
}

/// Batch's statuses of a job that has not ended.
const ACTIVE: [&str; 5] = ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"];

/// The date part of a key's `{date}` (`YYYY-MM-DD-HH-MM-SS`): the key cut
/// around it, so keys of the same kind on any day and time compare equal.
pub fn key_shape(key: &str) -> Option<(&str, &str)> {
    let bytes = key.as_bytes();
    (0..bytes.len().saturating_sub(18)).rev().find_map(|at| {
        let candidate = &bytes[at..at + 19];
        let is_date = candidate.iter().enumerate().all(|(i, b)| match i {
            4 | 7 | 10 | 13 | 16 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
        is_date.then(|| (&key[..at], &key[at + 19..]))
    })
}

/// Matches the expected day against the observed one. `models`: the
/// models to report (all when empty).
pub fn compare(expected: &Simulation, observed: &ObservedDay, date: &str, models: &[String]) -> DayStatus {
    let wanted = |model: &str| models.is_empty() || models.iter().any(|wanted| wanted == model);
    let known_models: BTreeSet<String> = expected
        .jobs
        .iter()
        .filter_map(|job| job.model.clone())
        .chain(
            expected_refusals(expected)
                .into_iter()
                .map(|refusal| refusal.model),
        )
        .collect();
    let picture = Picture::of(expected);
    let upstream: BTreeMap<&str, (&str, &str)> = picture
        .arrows
        .iter()
        .map(|arrow| (arrow.to.as_str(), (arrow.from.as_str(), arrow.file.as_str())))
        .collect();
    let mut by_stem: BTreeMap<&str, Vec<&JobSeen>> = BTreeMap::new();
    for job in &observed.jobs {
        by_stem.entry(stem(&job.name)).or_default().push(job);
    }
    let mut stages = Vec::new();
    let mut state_of_job: BTreeMap<&str, State> = BTreeMap::new();
    // In the expected order, so an upstream stage's state is known first.
    for job in &expected.jobs {
        let model = job.model.clone().unwrap_or_else(|| "(no model)".to_owned());
        let job_stem = stem(&job.name);
        let seen = by_stem.get(job_stem).map(Vec::as_slice).unwrap_or_default();
        let (state, shown) = state_of_jobs(seen);
        let why = match state {
            State::Failed => Some(
                shown
                    .and_then(|job| job.reason.clone())
                    .unwrap_or_else(|| "no reason given".to_owned()),
            ),
            State::Stalled => Some(why_stalled(
                job_stem,
                &model,
                &job.submitted_by,
                upstream.get(job.name.as_str()).copied(),
                &state_of_job,
                observed,
            )),
            _ => None,
        };
        state_of_job.insert(&job.name, state);
        stages.push(Stage {
            stage: stage_name(&model, job_stem),
            model,
            function: job.submitted_by.clone(),
            state,
            job: shown.cloned(),
            why,
            expected_job: Some(job.name.clone()),
        });
    }
    // What the functions refuse given these configs: never a job.
    for refusal in expected_refusals(expected) {
        stages.push(Stage {
            model: refusal.model.clone(),
            stage: refusal.item.clone(),
            function: refusal.function.clone(),
            state: State::Stalled,
            job: None,
            why: Some(format!("{} refuses it: {}", refusal.function, refusal.reason)),
            expected_job: None,
        });
    }
    let expected_stems: BTreeSet<&str> = expected.jobs.iter().map(|job| stem(&job.name)).collect();
    for (job_stem, seen) in &by_stem {
        if expected_stems.contains(job_stem) {
            continue;
        }
        let model = model_of(job_stem, &known_models);
        let (_, shown) = state_of_jobs(seen);
        stages.push(Stage {
            stage: stage_name(&model, job_stem),
            model,
            function: String::new(),
            state: State::Unexpected,
            job: shown.cloned(),
            why: Some("the expected day has no such job".to_owned()),
            expected_job: None,
        });
    }
    let expected_shapes: BTreeSet<(&str, &str)> = expected
        .jobs
        .iter()
        .flat_map(|job| job.writes.iter().filter_map(|key| key_shape(key)))
        .collect();
    for file in &observed.files {
        if key_shape(file).is_some_and(|shape| expected_shapes.contains(&shape)) {
            continue;
        }
        let model = file.split('/').nth(1).unwrap_or_default().to_owned();
        stages.push(Stage {
            model,
            stage: file.clone(),
            function: String::new(),
            state: State::Unexpected,
            job: None,
            why: Some("the expected day writes no such file".to_owned()),
            expected_job: None,
        });
    }
    stages.retain(|stage| wanted(&stage.model));
    stages.sort_by(|a, b| a.model.cmp(&b.model));
    let mut summary: BTreeMap<State, usize> = State::ALL.iter().map(|state| (*state, 0)).collect();
    for stage in &stages {
        *summary.entry(stage.state).or_default() += 1;
    }
    DayStatus {
        date: date.to_owned(),
        stages,
        summary,
        calls: BTreeMap::new(),
        notes: Vec::new(),
    }
}

/// The state of a stage from its jobs, and the job that stands for it.
fn state_of_jobs<'a>(seen: &[&'a JobSeen]) -> (State, Option<&'a JobSeen>) {
    let latest = |status: &dyn Fn(&str) -> bool| {
        seen.iter()
            .filter(|job| status(&job.status))
            .max_by_key(|job| job.created_ms)
            .copied()
    };
    if let Some(job) = latest(&|status| status == "SUCCEEDED") {
        return (State::Done, Some(job));
    }
    if let Some(job) = latest(&|status| ACTIVE.contains(&status)) {
        return (State::Running, Some(job));
    }
    match latest(&|_| true) {
        Some(job) => (State::Failed, Some(job)),
        None => (State::Stalled, None),
    }
}

/// What is known of why the job `job_stem` was never submitted.
fn why_stalled(
    job_stem: &str,
    model: &str,
    function: &str,
    upstream: Option<(&str, &str)>,
    state_of_job: &BTreeMap<&str, State>,
    observed: &ObservedDay,
) -> String {
    let mut why = match upstream {
        Some((from, file)) => {
            let appeared = key_shape(file)
                .and_then(|shape| observed.files.iter().find(|seen| key_shape(seen) == Some(shape)));
            match appeared {
                Some(key) => format!("its trigger file {key} appeared, but no job was submitted"),
                None => {
                    let upstream_state = state_of_job.get(from).copied().unwrap_or(State::Stalled);
                    let shown = key_shape(file)
                        .map(|(before, after)| format!("{before}*{after}"))
                        .unwrap_or_else(|| file.to_owned());
                    format!(
                        "its trigger file {shown} never appeared ({} {})",
                        stem(from),
                        upstream_state.word()
                    )
                }
            }
        }
        None => "the schedule's fan-out did not submit it".to_owned(),
    };
    if let Some(claim) = observed
        .claims
        .iter()
        .find(|claim| claim.state == "pending" && claim.job_name.as_deref().map(stem) == Some(job_stem))
    {
        let _ = write!(
            why,
            "; a claim on it is still pending (request {}, {})",
            claim.request_id, claim.key
        );
    }
    for refusal in observed
        .refusals
        .iter()
        .filter(|refusal| refusal.model == model && refusal.function == function)
    {
        let _ = write!(
            why,
            "; {} refused {}: {}",
            refusal.function, refusal.item, refusal.reason
        );
    }
    why
}

/// `aml_large_corpus_tests_tests` → `large_corpus_tests_tests`.
fn stage_name(model: &str, job_stem: &str) -> String {
    job_stem
        .strip_prefix(model)
        .and_then(|rest| rest.strip_prefix('_'))
        .unwrap_or(job_stem)
        .to_owned()
}

/// The model a job's stem names: the longest known model it starts with.
fn model_of(job_stem: &str, known: &BTreeSet<String>) -> String {
    known
        .iter()
        .filter(|model| {
            job_stem
                .strip_prefix(model.as_str())
                .is_some_and(|rest| rest.starts_with('_'))
        })
        .max_by_key(|model| model.len())
        .cloned()
        .unwrap_or_else(|| "(no model)".to_owned())
}

/// Every item the expected day's functions refuse, with its model.
pub fn expected_refusals(expected: &Simulation) -> Vec<Refusal> {
    let mut found = Vec::new();
    for run in &expected.runs {
        let hint = match &run.start {
            Start::File { key, .. } => key.split('/').nth(1).unwrap_or_default().to_owned(),
            _ => String::new(),
        };
        refusals_of(&run.run, &hint, &mut found);
    }
    found
}

fn refusals_of(report: &RunReport, hint: &str, into: &mut Vec<Refusal>) {
    into.extend(refused_items(&report.function, report.response.as_ref(), hint));
    for reported in &report.actions {
        if let (Action::LambdaInvoke { payload, .. }, Some(Followed::Ran(inner))) =
            (&reported.action, reported.run.as_deref())
        {
            let hint = model_in(payload).unwrap_or_else(|| hint.to_owned());
            if let Some(error) = &inner.error {
                into.push(Refusal {
                    function: inner.function.clone(),
                    model: hint.clone(),
                    item: "(the event)".to_owned(),
                    reason: error.message.clone(),
                });
            }
            refusals_of(inner, &hint, into);
        }
    }
}

/// The `refused` items of an answer, each with its model: the item
/// itself when it is a name, the second segment of a key, else `hint`.
pub fn refused_items(function: &str, response: Option<&Value>, hint: &str) -> Vec<Refusal> {
    let Some(refused) = response.and_then(|response| response["refused"].as_array()) else {
        return Vec::new();
    };
    refused
        .iter()
        .map(|refusal| {
            let item = refusal["item"].as_str().unwrap_or_default().to_owned();
            let model = match item.split('/').nth(1) {
                Some(model) => model.to_owned(),
                None if !hint.is_empty() => hint.to_owned(),
                None => item.clone(),
            };
            Refusal {
                function: function.to_owned(),
                model,
                item,
                reason: refusal["reason"].as_str().unwrap_or_default().to_owned(),
            }
        })
        .collect()
}

/// The model an invocation's payload names: `{"model": M}`, or the key of
/// its first S3 record.
fn model_in(payload: &Value) -> Option<String> {
    if let Some(model) = payload["model"].as_str() {
        return Some(model.to_owned());
    }
    let key = payload["Records"][0]["s3"]["object"]["key"].as_str()?;
    key.split('/').nth(1).map(str::to_owned)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_key_is_cut_around_its_date() {
        assert_eq!(
            key_shape("results/aml/results_large_corpus_tests_2020-02-04-12-00-06.json"),
            Some(("results/aml/results_large_corpus_tests_", ".json"))
        );
        assert_eq!(
            key_shape("models/m2020-01-01-00-00-00x/model_2026-12-05-05-00-01.pkl"),
            Some(("models/m2020-01-01-00-00-00x/model_", ".pkl"))
        );
        assert_eq!(key_shape("models/aml/config.json"), None);
    }

    #[test]
    fn a_stage_is_named_without_its_model() {
        assert_eq!(
            stage_name("aml", "aml_large_corpus_tests_tests"),
            "large_corpus_tests_tests"
        );
        let known: BTreeSet<String> = ["marm".to_owned(), "marm_model".to_owned()].into();
        assert_eq!(model_of("marm_model_update", &known), "marm_model");
        assert_eq!(model_of("other_update", &known), "(no model)");
    }

    pub(crate) fn job(name: &str, status: &str, created_ms: i64) -> JobSeen {
        JobSeen {
            name: name.to_owned(),
            id: format!("id-{created_ms}"),
            queue: "q".to_owned(),
            status: status.to_owned(),
            reason: None,
            exit_code: None,
            log_stream: None,
            created_ms,
        }
    }

    #[test]
    fn a_success_outweighs_a_failure_and_the_latest_job_stands_for_the_rest() {
        let failed = job("aml_update_20261205_050001", "FAILED", 1);
        let succeeded = job("aml_update_20261205_060001", "SUCCEEDED", 2);
        assert_eq!(
            state_of_jobs(&[&failed, &succeeded]),
            (State::Done, Some(&succeeded))
        );
        let running = job("aml_update_20261205_070001", "RUNNABLE", 3);
        assert_eq!(
            state_of_jobs(&[&failed, &running]),
            (State::Running, Some(&running))
        );
        let later = job("aml_update_20261205_080001", "FAILED", 4);
        assert_eq!(state_of_jobs(&[&later, &failed]), (State::Failed, Some(&later)));
        assert_eq!(state_of_jobs(&[]), (State::Stalled, None));
    }

    /// The expected day of two models: `aml` updated daily, `bad` with a
    /// test corpus whose name the pipeline refuses.
    pub(crate) async fn expected_day() -> Simulation {
        use emmaa_offline::simulate::{SimulateRequest, SimulatedBucket, simulate};
        let configs = [
            ("models/aml/config.json", r#"{"run_daily_update": true}"#),
            (
                "models/bad/config.json",
                r#"{"run_daily_update": true, "test": {"test_corpus": ["ok_tests", "no good"]}}"#,
            ),
        ];
        let request = SimulateRequest {
            bucket: SimulatedBucket::Memory(
                configs
                    .iter()
                    .map(|(key, config)| ((*key).to_owned(), config.as_bytes().to_vec()))
                    .collect(),
            ),
            now: 1_764_910_800,
            components: emmaa_runtime::engine::Components::BuiltIn,
            deadline: std::time::Duration::from_secs(60),
            redeliver: false,
            quotas: None,
        };
        let settings = emmaa_runtime::settings::Settings::from_lookup(|_| None).unwrap();
        simulate(&request, settings).await.unwrap()
    }

    pub(crate) fn expected_name<'a>(expected: &'a Simulation, stem_wanted: &str) -> &'a str {
        let job = expected.jobs.iter().find(|job| stem(&job.name) == stem_wanted);
        &job.unwrap_or_else(|| panic!("no {stem_wanted} in the expected day"))
            .name
    }

    #[tokio::test]
    async fn each_stage_gets_its_state_and_a_failure_stalls_what_follows_it() {
        let expected = expected_day().await;
        let update = expected_name(&expected, "aml_update");
        let mm_update = expected_name(&expected, "aml_mm_update");
        let mut failed = job(mm_update, "FAILED", 2);
        failed.reason = Some("Essential container in task exited".to_owned());
        failed.exit_code = Some(1);
        let observed = ObservedDay {
            jobs: vec![
                job(update, "SUCCEEDED", 1),
                failed,
                job(expected_name(&expected, "bad_update"), "RUNNING", 3),
                job("stranger_update_20251205_050001", "SUCCEEDED", 4),
            ],
            files: ["models/aml/model_2025-12-05-05-00-09.pkl".to_owned()].into(),
            claims: Vec::new(),
            refusals: Vec::new(),
        };
        let status = compare(&expected, &observed, "2025-12-05", &[]);
        let state = |model: &str, stage: &str| {
            let found = status
                .stages
                .iter()
                .find(|found| found.model == model && found.stage == stage);
            found.unwrap_or_else(|| panic!("no stage {model} {stage} in {:#?}", status.stages))
        };
        assert_eq!(state("aml", "update").state, State::Done);
        let mm = state("aml", "mm_update");
        assert_eq!(mm.state, State::Failed);
        assert_eq!(mm.why.as_deref(), Some("Essential container in task exited"));
        assert_eq!(mm.job.as_ref().and_then(|job| job.exit_code), Some(1));
        let stats = state("aml", "model_stats");
        assert_eq!(stats.state, State::Stalled);
        assert_eq!(
            stats.why.as_deref(),
            Some("its trigger file results/aml/model_manager_*.pkl never appeared (aml_mm_update failed)")
        );
        assert_eq!(state("bad", "update").state, State::Running);
        let refused = state("bad", "no good");
        assert_eq!(refused.state, State::Stalled);
        assert!(
            refused
                .why
                .as_deref()
                .is_some_and(|why| why.starts_with("emmaa-test-pipeline refuses it: ")),
            "{refused:?}"
        );
        let stranger = state("(no model)", "stranger_update");
        assert_eq!(stranger.state, State::Unexpected);
        assert!(status.troubled());
        assert_eq!(status.summary[&State::Done], 1);
        assert_eq!(status.summary[&State::Failed], 1);
        assert_eq!(status.summary[&State::Unexpected], 1);
    }

    #[tokio::test]
    async fn a_trigger_file_that_appeared_and_a_pending_claim_are_named() {
        let expected = expected_day().await;
        let update = expected_name(&expected, "aml_update");
        let observed = ObservedDay {
            jobs: vec![job(update, "SUCCEEDED", 1)],
            files: ["models/aml/model_2025-12-05-05-00-09.pkl".to_owned()].into(),
            claims: vec![ClaimSeen {
                key: "ledger/emmaa-mm-update/0f.json".to_owned(),
                state: "pending".to_owned(),
                work: "s3:models/aml/model_2025-12-05-05-00-09.pkl@0A".to_owned(),
                request_id: "r-7".to_owned(),
                job_name: Some("aml_mm_update_20251205_050010".to_owned()),
                job_id: None,
            }],
            refusals: Vec::new(),
        };
        let status = compare(&expected, &observed, "2025-12-05", &["aml".to_owned()]);
        assert!(status.stages.iter().all(|stage| stage.model == "aml"));
        let mm = status
            .stages
            .iter()
            .find(|stage| stage.stage == "mm_update")
            .unwrap();
        assert_eq!(mm.state, State::Stalled);
        assert_eq!(
            mm.why.as_deref(),
            Some(
                "its trigger file models/aml/model_2025-12-05-05-00-09.pkl appeared, but no job was submitted; \
                 a claim on it is still pending (request r-7, ledger/emmaa-mm-update/0f.json)"
            )
        );
    }

    #[tokio::test]
    async fn the_picture_colours_each_box_by_its_state() {
        let expected = expected_day().await;
        let update = expected_name(&expected, "aml_update");
        let observed = ObservedDay {
            jobs: vec![job(update, "FAILED", 1)],
            ..ObservedDay::default()
        };
        let status = compare(&expected, &observed, "2025-12-05", &["aml".to_owned()]);
        let dot = status.picture(&expected).dot();
        assert!(dot.contains("label=\"update\\nfailed\""), "{dot}");
        assert!(dot.contains(State::Failed.fill()), "{dot}");
        assert!(dot.contains(State::Stalled.fill()), "{dot}");
        assert!(!dot.contains("row_1"), "only aml's row: {dot}");
    }

    #[test]
    fn refused_items_are_given_the_model_their_item_or_event_names() {
        let answer = serde_json::json!({"refused": [
            {"item": "results/aml/x.json", "reason": "bad key"},
            {"item": "bad corpus", "reason": "corpus \"bad corpus\" is not a valid name"},
        ]});
        let refused = refused_items("emmaa-test-pipeline", Some(&answer), "brca");
        assert_eq!(refused[0].model, "aml");
        assert_eq!(refused[1].model, "brca");
        assert_eq!(refused[1].reason, "corpus \"bad corpus\" is not a valid name");
    }
}
