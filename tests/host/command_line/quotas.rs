//! `emmaa-host simulate --quotas`: the day under AWS's quotas, in virtual time.

use super::*;

/// The jobs of the made-up bucket's day, by hand (as above).
fn made_up_jobs(models: u64) -> u64 {
    let updated = models - models / 4;
    let makers = models.div_ceil(10);
    let corpora = models.div_ceil(2) + 2 * (models / 2);
    updated + models + 2 * models + 2 * corpora + 2 * makers
}

/// `--quotas --format summary`, and its scale.
fn scale(args: &[&str], envs: &[(&str, &str)]) -> Value {
    scale_and_warnings(args, envs).0
}

/// `--quotas --format summary`: its scale, and what it said on standard error.
fn scale_and_warnings(args: &[&str], envs: &[(&str, &str)]) -> (Value, String) {
    let mut all = vec!["--quotas", "--format", "summary", "--now", NOW];
    all.extend_from_slice(args);
    let output = simulate_with(&all, envs);
    (
        stdout_json(&output)["scale"].clone(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// 10,000 models under Lambda's 1,000 concurrent executions, Batch's 50
/// SubmitJob a second and S3's rates, 20 ms a call, deployed as the stack
/// deploys them (queued invocations, 10 reserved executions a function):
/// every job goes through once, throttled calls are waited out, the last
/// job is submitted within 1.2 times the least time Batch's rate allows,
/// and the day never holds more than its reservations.
#[test]
fn ten_thousand_models_lose_and_repeat_nothing_under_aws_quotas() {
    let scale = scale(
        &["--models", "10000", "--function-concurrency", "10"],
        &[("EMMAA_INVOCATION_TYPE", "Event")],
    );
    assert_eq!(scale["expected_jobs"], made_up_jobs(10_000), "{scale:#}");
    assert_eq!(scale["submitted"], made_up_jobs(10_000), "{scale:#}");
    assert_eq!(scale["lost"], 0, "{scale:#}");
    assert_eq!(scale["duplicated"], 0, "{scale:#}");
    assert!(
        scale["throttled"].as_u64().unwrap() > 0,
        "the quotas bite: {scale:#}"
    );
    assert!(
        scale["peak_concurrency"].as_u64().unwrap() <= 11 * 10,
        "{scale:#}"
    );
    let of_bound = scale["of_bound"].as_f64().unwrap();
    assert!((1.0..=1.2).contains(&of_bound), "{scale:#}");
}

/// A storm: Batch throttles every SubmitJob for 400 s, longer than any
/// function's 300 s deadline, while S3 delivers every notification twice.
/// Functions still throttled at their deadline fail with everything they
/// did claimed, Lambda retries them, and the retries do only what is left.
/// The same day without Lambda's retries loses work; without the ledger's
/// claims it repeats work.
#[test]
fn a_throttling_storm_and_redelivery_lose_nothing_with_retries_and_claims_and_the_controls_fail() {
    let storm = ["--models", "1000", "--redeliver", "--storm", "20+400"];
    let (day, said) = scale_and_warnings(&storm, &[]);
    // Runs that failed and were done on Lambda's retry are in the summary,
    // not warnings.
    assert_eq!(said, "", "nothing was lost, so nothing is a warning");
    assert_eq!(
        (day["lost"].as_u64(), day["duplicated"].as_u64()),
        (Some(0), Some(0)),
        "{day:#}"
    );
    assert!(day["lambda_retries"].as_u64().unwrap() > 0, "{day:#}");
    assert!(day["given_up"].as_u64().unwrap() > 0, "the SDK gave up: {day:#}");

    let (without_retries, said) = scale_and_warnings(&[&storm[..], &["--async-retries", "0"]].concat(), &[]);
    assert!(
        without_retries["lost"].as_u64().unwrap() > 0,
        "{without_retries:#}"
    );
    assert_eq!(
        said,
        format!(
            "emmaa-host simulate: warning: of {} expected jobs, {} were never submitted and 0 more than once\n",
            without_retries["expected_jobs"], without_retries["lost"]
        )
    );

    let without_claims = scale(&storm, &[("EMMAA_LEDGER", "off")]);
    assert!(
        without_claims["duplicated"].as_u64().unwrap() > 0,
        "{without_claims:#}"
    );
}
