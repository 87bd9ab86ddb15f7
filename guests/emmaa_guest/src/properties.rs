//! Property tests over what arrives from outside: S3 keys, events and
//! `config.json` files of any shape. Whatever they hold, parsing never
//! panics, a refusal names its field, and nothing but `[A-Za-z0-9_-]`
//! reaches a job name or a `--model` / `--tests` argument.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::batch_job::{JobKind, JobRequest, MAX_JOB_NAME_LEN, build_job, check_job_names};
use crate::bindings::emmaa::pipeline::environment::Settings;
use crate::bindings::emmaa::pipeline::functions::InvocationType;
use crate::s3_event::{decode_key, model_manager_key, model_state_key, parse_records, results_key};
use crate::{ModelConfig, ModelName, TestCorpus, event};

fn cases() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

fn is_safe(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Keys near the real layouts, with hostile characters and escapes mixed in.
fn key() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        "[A-Za-z0-9_-]{1,12}",
        "[a-z;|&$`' %+/.\\\\]{0,8}",
        "%[0-9A-Fa-f+ -]{0,3}",
        ".{0,12}",
    ];
    let file = prop_oneof![
        Just("model_2020-01-01-00-00-00.pkl".to_owned()),
        Just("model_manager_2020-02-04-12-00-00.pkl".to_owned()),
        "results_[a-z_%;]{0,10}_?2020-02-04-12-00-00\\.json",
        ".{0,20}",
    ];
    (
        prop_oneof![Just("models"), Just("results"), Just("x")],
        segment,
        file,
    )
        .prop_map(|(top, model, file)| format!("{top}/{model}/{file}"))
}

/// JSON values of any shape, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// S3 events: records with keys of the key strategy, or anything else.
fn s3_event() -> impl Strategy<Value = Value> {
    let record = prop_oneof![
        key().prop_map(|key| json!({"s3": {"object": {"key": key}}})),
        json_value(),
    ];
    prop_oneof![
        prop::collection::vec(record, 0..6).prop_map(|records| json!({ "Records": records })),
        json_value(),
    ]
}

fn settings() -> Settings {
    Settings {
        bucket: "emmaa".into(),
        project: "aske".into(),
        branch: "origin/master".into(),
        job_queue: "emmaa-models-update-test".into(),
        job_definition: "emmaa_jobdef".into(),
        large_models: Vec::new(),
        large_job_queue: "emmaa-after-update".into(),
        large_job_definition: "emmaa_testing_jobs_def".into(),
        function_prefix: "emmaa-".into(),
        invocation_type: InvocationType::RequestResponse,
    }
}

/// The words of a Batch command's script that follow `--model` or `--tests`.
fn model_and_tests_arguments(script: &str) -> Vec<&str> {
    let words: Vec<&str> = script.split(' ').collect();
    words
        .windows(2)
        .filter(|pair| pair[0] == "--model" || pair[0] == "--tests")
        .map(|pair| pair[1])
        .collect()
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn decoding_a_key_never_panics_and_plain_keys_decode_to_themselves(raw in ".{0,40}") {
        let decoded = decode_key(&raw);
        if !raw.contains(['%', '+']) {
            prop_assert_eq!(decoded, Ok(raw));
        }
    }

    #[test]
    fn only_safe_names_come_out_of_a_key(key in key()) {
        if let Ok(model) = model_state_key("k", &key) {
            prop_assert!(is_safe(model.as_str()));
        }
        if let Ok(model) = model_manager_key("k", &key) {
            prop_assert!(is_safe(model.as_str()));
        }
        if let Ok((model, corpus)) = results_key("k", &key) {
            prop_assert!(is_safe(model.as_str()) && is_safe(corpus.as_str()));
        }
    }

    #[test]
    fn every_record_refusal_names_its_field(event in s3_event()) {
        for parsed in parse_records(&event, "emmaa", results_key).objects {
            match parsed {
                Ok(((model, corpus), _)) => prop_assert!(is_safe(model.as_str()) && is_safe(corpus.as_str())),
                Err(refusal) => prop_assert!(
                    refusal.reason.contains("Records"),
                    "{}", refusal.reason
                ),
            }
        }
    }

    #[test]
    fn every_invocation_event_refusal_names_its_field(event in json_value(), model in ".{0,20}") {
        let mut with_model = event.clone();
        if let Value::Object(fields) = &mut with_model {
            fields.insert("model".into(), json!(model));
        }
        for event in [event, with_model] {
            match event::model_and_tests(&event) {
                Ok((model, corpus)) => prop_assert!(is_safe(model.as_str()) && is_safe(corpus.as_str())),
                Err(refusal) => prop_assert!(
                    ["model", "tests", "the event"].iter().any(|field| refusal.reason.contains(field)),
                    "{}", refusal.reason
                ),
            }
        }
    }

    #[test]
    fn a_config_of_any_shape_is_read_or_refused_by_name(config in json_value(), raw in prop::collection::vec(any::<u8>(), 0..64)) {
        let model = ModelName::parse("model", "aml").unwrap();
        for bytes in [config.to_string().into_bytes(), raw] {
            match ModelConfig::parse(&model, &bytes) {
                Ok(config) => match config.test_corpora() {
                    Ok(corpora) => for corpus in corpora {
                        match corpus {
                            Ok(corpus) => prop_assert!(is_safe(corpus.as_str())),
                            Err(refusal) => prop_assert!(refusal.reason.contains("test.test_corpus")),
                        }
                    },
                    Err(refusal) => prop_assert!(refusal.reason.contains("models/aml/config.json test")),
                },
                Err(refusal) => prop_assert!(refusal.reason.starts_with("models/aml/config.json is not")),
            }
        }
    }

    #[test]
    fn a_job_built_from_any_accepted_names_has_a_batch_name_and_safe_arguments(
        model in prop_oneof!["[A-Za-z0-9][A-Za-z0-9_-]{0,110}", ".{0,140}"],
        corpus in prop_oneof!["[A-Za-z0-9][A-Za-z0-9_-]{0,50}", "[a-z -;]{0,20}"],
    ) {
        let (Ok(model), Ok(corpus)) = (ModelName::parse("model", &model), TestCorpus::parse("tests", &corpus)) else {
            return Ok(());
        };
        let script = format!("python scripts/run_model_tests_from_s3.py --model {model} --tests {corpus}");
        let request = JobRequest::for_corpus(JobKind::Tests, model.clone(), corpus.clone(), script);
        let fits = check_job_names(&JobKind::PER_CORPUS, &model, Some(&corpus)).is_ok();
        match build_job(&settings(), &request, "20200204_120000", None) {
            Ok(job) => {
                prop_assert!(fits);
                prop_assert!(is_safe(&job.name) && job.name.len() <= MAX_JOB_NAME_LEN, "{}", job.name);
                let script = job.command.last().unwrap();
                for argument in model_and_tests_arguments(script) {
                    prop_assert!(is_safe(argument), "{argument:?} in {script:?}");
                }
            }
            Err(refusal) => {
                prop_assert!(!fits);
                prop_assert!(refusal.reason.contains("characters long"));
            }
        }
    }
}
