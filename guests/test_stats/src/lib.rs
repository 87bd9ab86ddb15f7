//! `emmaa-test-stats`, triggered by a new `results/M/results_[T_]{date}.json`:
//! submit one Batch job per record that computes the statistics of corpus T
//! (`M_T_stats_NOW`; the old naming without T means `large_corpus_tests`).

use emmaa_guest::batch_job::JobKind;
use emmaa_guest::batch_job::submit_each;
use emmaa_guest::host::settings;
use emmaa_guest::s3_event::{parse_records, results_key};
use emmaa_guest::{JobRequest, ModelName, Report, TestCorpus, Value};

emmaa_guest::export_handler!(handle);

fn handle(event: &Value, report: &mut Report) -> Result<(), String> {
    let bucket = settings().bucket;
    let records = parse_records(event, &bucket, results_key).noting_ignored(report);
    submit_each(records, report, test_stats_job);
    Ok(())
}

fn test_stats_job((model, corpus): (ModelName, TestCorpus)) -> JobRequest {
    let script = format!(
        "python scripts/run_model_stats_from_s3.py --model {model} --stats_mode tests --tests {corpus}"
    );
    JobRequest::for_corpus(JobKind::TestStats, model, corpus, script)
}
