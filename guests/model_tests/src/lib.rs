//! `emmaa-model-test`, invoked with `{"model": M, "tests": T}`: submit the
//! Batch job that tests the model against corpus T (`M_T_tests_NOW`).

use emmaa_guest::batch_job::JobKind;
use emmaa_guest::batch_job::submit_each;
use emmaa_guest::event::model_and_tests;
use emmaa_guest::work::in_this_request;
use emmaa_guest::{JobRequest, ModelName, Report, TestCorpus, Value};

emmaa_guest::export_handler!(handle);

fn handle(event: &Value, report: &mut Report) -> Result<(), String> {
    submit_each(vec![in_this_request(model_and_tests(event))], report, test_job);
    Ok(())
}

fn test_job((model, corpus): (ModelName, TestCorpus)) -> JobRequest {
    let script = format!("python scripts/run_model_tests_from_s3.py --model {model} --tests {corpus}");
    JobRequest::for_corpus(JobKind::Tests, model, corpus, script)
}
