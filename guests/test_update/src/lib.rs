//! `emmaa-test-update`, invoked with `{"model": M}`: submit the Batch job
//! that turns the model into a test corpus (`M_test_update_NOW`).

use emmaa_guest::batch_job::JobKind;
use emmaa_guest::batch_job::submit_each;
use emmaa_guest::work::in_this_request;
use emmaa_guest::{JobRequest, ModelName, Report, Value};

emmaa_guest::export_handler!(handle);

fn handle(event: &Value, report: &mut Report) -> Result<(), String> {
    submit_each(
        vec![in_this_request(emmaa_guest::event::model(event))],
        report,
        test_update_job,
    );
    Ok(())
}

fn test_update_job(model: ModelName) -> JobRequest {
    let script = format!("python scripts/model_to_tests.py --model {model}");
    JobRequest::for_model(JobKind::TestUpdate, model, script)
}
