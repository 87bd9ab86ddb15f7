//! `emmaa-mm-update`, triggered by a new `models/M/<file>.pkl` (or invoked by
//! update_pipeline with a stand-in record): submit one Batch job per record
//! that re-assembles the model manager (`M_mm_update_NOW`).

use emmaa_guest::batch_job::JobKind;
use emmaa_guest::batch_job::submit_each;
use emmaa_guest::host::settings;
use emmaa_guest::s3_event::{model_state_key, parse_records};
use emmaa_guest::{JobRequest, ModelName, Report, Value};

emmaa_guest::export_handler!(handle);

fn handle(event: &Value, report: &mut Report) -> Result<(), String> {
    let bucket = settings().bucket;
    let records = parse_records(event, &bucket, model_state_key).noting_ignored(report);
    submit_each(records, report, model_manager_job);
    Ok(())
}

fn model_manager_job(model: ModelName) -> JobRequest {
    let script = format!("python scripts/update_model_manager.py --model {model}");
    JobRequest::for_model(JobKind::ModelManagerUpdate, model, script)
}
