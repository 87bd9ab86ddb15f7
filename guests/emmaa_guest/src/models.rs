//! The models of the bucket: their listing under `models/` and their
//! `config.json` files, read in batches, with every name and file that
//! cannot be used refused by name.

use crate::batch_job::{JobKind, check_job_names};
use crate::bindings::emmaa::pipeline::storage;
use crate::config::{MAX_CONFIG_BYTES, config_key};
use crate::host::{Settings, describe};
use crate::quote::quote;
use crate::{ModelConfig, ModelName, Refusal, Report};

/// How many `config.json` files a handler asks for at once: enough for the
/// host to keep its calls in flight, few enough that the files of one batch
/// (at most [`MAX_CONFIG_BYTES`] each) take at most a quarter of the guest's memory.
pub const CONFIG_BATCH: usize = 64;

/// Lists every model under `models/` of the bucket, in S3's order. Names
/// that are not valid model names, or too long for a job some handler
/// downstream would submit, are refused in `report`; a listing that fails
/// fails the handler.
pub fn list_models(settings: &Settings, report: &mut Report) -> Result<Vec<ModelName>, String> {
    let prefixes = storage::list_prefixes(&settings.bucket, "models/", "/").map_err(|err| {
        format!(
            "listing the models in s3://{}/models/ failed: {}",
            settings.bucket,
            describe(&err)
        )
    })?;
    let models = prefixes
        .iter()
        .map(|prefix| {
            let name = prefix
                .strip_prefix("models/")
                .and_then(|rest| rest.strip_suffix('/'))
                .unwrap_or(prefix);
            let model = ModelName::parse_from(
                || format!("the model in the listed prefix {}", quote(prefix)),
                name,
            )?;
            check_job_names(&JobKind::PER_MODEL, &model, None)?;
            Ok(model)
        })
        .collect();
    Ok(report.keep_valid(models))
}

/// Reads the `config.json` of each model, [`CONFIG_BATCH`] at a time, and
/// keeps only the fields the handlers use. Each result is the
/// configuration, or why it could not be read.
pub fn read_configs(settings: &Settings, models: &[ModelName]) -> Vec<Result<ModelConfig, Refusal>> {
    models
        .chunks(CONFIG_BATCH)
        .flat_map(|batch| read_config_batch(settings, batch))
        .collect()
}

fn read_config_batch(settings: &Settings, models: &[ModelName]) -> Vec<Result<ModelConfig, Refusal>> {
    let keys: Vec<String> = models.iter().map(config_key).collect();
    let objects = storage::get_objects(&settings.bucket, &keys, MAX_CONFIG_BYTES);
    models
        .iter()
        .zip(objects)
        .map(|(model, object)| {
            let bytes = object.map_err(|err| {
                Refusal::new(
                    model.as_str(),
                    format!(
                        "reading s3://{}/{} failed: {}",
                        settings.bucket,
                        config_key(model),
                        describe(&err)
                    ),
                )
            })?;
            ModelConfig::parse(model, &bytes)
        })
        .collect()
}

/// Reads the `config.json` of one model.
pub fn read_config(settings: &Settings, model: &ModelName) -> Result<ModelConfig, Refusal> {
    let mut configs = read_configs(settings, std::slice::from_ref(model));
    configs.pop().unwrap_or_else(|| {
        Err(Refusal::new(
            model.as_str(),
            "the host answered no result for config.json",
        ))
    })
}

/// The model configurations of every listed model that has a readable one;
/// the others are refused in `report`, by name.
pub fn listed_model_configs(settings: &Settings, report: &mut Report) -> Result<Vec<ModelConfig>, String> {
    let models = list_models(settings, report)?;
    let configs = read_configs(settings, &models);
    Ok(report.keep_valid(configs))
}
