//! `emmaa-test-pipeline`, invoked with `{"model": M}`: read the model's
//! `config.json` and invoke `emmaa-model-test` with `{"model": M, "tests": T}`
//! for each of its test corpora whose job names fit AWS Batch's limit.

use emmaa_guest::batch_job::{JobKind, check_job_names};
use emmaa_guest::fan_out::invoke_all;
use emmaa_guest::host::settings;
use emmaa_guest::models::read_config;
use emmaa_guest::{Call, Report, Value, json};

emmaa_guest::export_handler!(handle);

fn handle(event: &Value, report: &mut Report) -> Result<(), String> {
    let settings = settings();
    let model = emmaa_guest::event::model(event).map_err(|refusal| refusal.reason)?;
    let config = read_config(&settings, &model).map_err(|refusal| refusal.reason)?;
    let corpora = config.test_corpora().map_err(|refusal| refusal.reason)?;
    let corpora = corpora.into_iter().map(|corpus| {
        let corpus = corpus?;
        check_job_names(&JobKind::PER_CORPUS, &model, Some(&corpus))?;
        Ok(corpus)
    });
    let calls = report
        .keep_valid(corpora.collect())
        .into_iter()
        .map(|corpus| {
            let payload = json!({"model": model.as_str(), "tests": corpus.as_str()});
            Call::new(corpus.as_str(), "model-test", payload)
        })
        .collect();
    invoke_all(&settings, calls, report);
    Ok(())
}
