//! `emmaa-model-stats`, invoked with `{"model": M}`: submit the Batch job
//! that computes the model's statistics (`M_model_stats_NOW`).

use emmaa_guest::batch_job::JobKind;
use emmaa_guest::batch_job::submit_each;
use emmaa_guest::work::in_this_request;
use emmaa_guest::{JobRequest, ModelName, Report, Value};

emmaa_guest::export_handler!(handle);

fn handle(event: &Value, report: &mut Report) -> Result<(), String> {
    submit_each(
        vec![in_this_request(emmaa_guest::event::model(event))],
        report,
        model_stats_job,
    );
    Ok(())
}

fn model_stats_job(model: ModelName) -> JobRequest {
    let script = format!("python scripts/run_model_stats_from_s3.py --model {model} --stats_mode model");
    JobRequest::for_model(JobKind::ModelStats, model, script)
}
