//! `emmaa-update-pipeline`, run daily: for every model in the bucket, invoke
//! `emmaa-model-update` when it is updated daily, or `emmaa-mm-update` with a
//! stand-in S3 event when it is only re-assembled and tested daily.

use emmaa_guest::fan_out::invoke_all;
use emmaa_guest::host::settings;
use emmaa_guest::models::listed_model_configs;
use emmaa_guest::{Call, Report, Value, json};

emmaa_guest::export_handler!(handle);

/// The key of the stand-in event: the model did not change, but its
/// manager must be rebuilt.
const STAND_IN_MODEL_FILE: &str = "model_2020-01-01-00-00-00.pkl";

fn handle(_event: &Value, report: &mut Report) -> Result<(), String> {
    let settings = settings();
    let mut calls = Vec::new();
    for config in listed_model_configs(&settings, report)? {
        let model = config.model().as_str();
        if config.run_daily_update() {
            calls.push(Call::new(model, "model-update", json!({ "model": model })));
        } else if config.run_daily_tests() {
            let key = format!("models/{model}/{STAND_IN_MODEL_FILE}");
            let stand_in = json!({"Records": [{"s3": {"object": {"key": key}}}]});
            calls.push(Call::new(model, "mm-update", stand_in));
        } else {
            report.went_through();
        }
    }
    invoke_all(&settings, calls, report);
    Ok(())
}
