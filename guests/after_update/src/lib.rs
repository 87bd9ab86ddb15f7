//! `emmaa-after-update`, triggered by a new `results/M/model_manager_{date}.pkl`:
//! invoke `emmaa-model-stats`, `emmaa-test-pipeline` and `emmaa-queries`
//! with `{"model": M}`, then `emmaa-test-update` if the model makes tests.
//! The three invocations go out even when `config.json` cannot be read.

use emmaa_guest::batch_job::{JobKind, check_job_names};
use emmaa_guest::fan_out::invoke_all;
use emmaa_guest::host::settings;
use emmaa_guest::models::read_configs;
use emmaa_guest::s3_event::{model_manager_key, parse_records};
use emmaa_guest::work::part_of;
use emmaa_guest::{Call, ModelName, Report, Value, json};

emmaa_guest::export_handler!(handle);

fn handle(event: &Value, report: &mut Report) -> Result<(), String> {
    let settings = settings();
    let records = parse_records(event, &settings.bucket, |field, key| {
        let model = model_manager_key(field, key)?;
        check_job_names(&JobKind::PER_MODEL, &model, None).map_err(|refusal| refusal.reason)?;
        Ok(model)
    })
    .noting_ignored(report);
    let records = report.keep_valid(records);
    let after_update_calls = records
        .iter()
        .flat_map(|(model, work)| {
            ["model-stats", "test-pipeline", "queries"].map(|function| {
                Call::new(model.as_str(), function, json!({ "model": model.as_str() }))
                    .claiming(part_of(work, function))
            })
        })
        .collect();
    invoke_all(&settings, after_update_calls, report);

    let models: Vec<ModelName> = records.iter().map(|(model, _)| model.clone()).collect();
    let mut test_update_calls = Vec::new();
    for (config, (model, work)) in read_configs(&settings, &models).into_iter().zip(&records) {
        match config {
            Ok(config) if config.make_tests() => test_update_calls.push(
                Call::new(model.as_str(), "test-update", json!({ "model": model.as_str() }))
                    .claiming(part_of(work, "test-update")),
            ),
            Ok(_) => {}
            Err(refusal) => report.refuse(refusal),
        }
    }
    invoke_all(&settings, test_update_calls, report);
    Ok(())
}
