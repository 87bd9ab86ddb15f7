//! `emmaa-queries`, invoked with `{"model": M}`: submit the Batch job that
//! answers the model's queries (`M_queries_NOW`).

use emmaa_guest::batch_job::JobKind;
use emmaa_guest::batch_job::submit_each;
use emmaa_guest::work::in_this_request;
use emmaa_guest::{JobRequest, ModelName, Report, Value};

emmaa_guest::export_handler!(handle);

fn handle(event: &Value, report: &mut Report) -> Result<(), String> {
    submit_each(
        vec![in_this_request(emmaa_guest::event::model(event))],
        report,
        queries_job,
    );
    Ok(())
}

fn queries_job(model: ModelName) -> JobRequest {
    let script = format!("python scripts/answer_queries_from_s3.py --model {model}");
    JobRequest::for_model(JobKind::Queries, model, script)
}
