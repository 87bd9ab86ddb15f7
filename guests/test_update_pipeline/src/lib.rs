//! `emmaa-test-update-pipeline`, run daily: invoke `emmaa-test-update` for
//! every model in the bucket whose `make_tests` is true.

use emmaa_guest::fan_out::invoke_all;
use emmaa_guest::host::settings;
use emmaa_guest::models::listed_model_configs;
use emmaa_guest::{Call, Report, Value, json};

emmaa_guest::export_handler!(handle);

fn handle(_event: &Value, report: &mut Report) -> Result<(), String> {
    let settings = settings();
    let mut calls = Vec::new();
    for config in listed_model_configs(&settings, report)? {
        let model = config.model().as_str();
        if config.make_tests() {
            calls.push(Call::new(model, "test-update", json!({ "model": model })));
        } else {
            report.went_through();
        }
    }
    invoke_all(&settings, calls, report);
    Ok(())
}
