//! `emmaa-host simulate`: the whole day of the pipeline, from the schedules and the files Batch jobs would write.

use super::*;

/// `emmaa-host simulate ARGS` with only the EMMAA_* settings given.
pub(crate) fn simulate_with(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_emmaa-host"));
    command.current_dir(workspace()).arg("simulate").args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("EMMAA_") {
            command.env_remove(name);
        }
    }
    command.envs(envs.iter().copied()).output().unwrap()
}

fn simulate(args: &[&str]) -> Output {
    simulate_with(args, &[])
}

/// A job's name without its `_YYYYMMDD_HHMMSS` time.
fn stem(name: &str) -> String {
    name.rsplitn(3, '_').nth(2).unwrap().to_owned()
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

/// The day over the example bucket, worked out by hand from its five
/// configs and the contract: every job, every file and every trigger, and
/// nothing else.
#[test]
fn the_simulated_day_over_the_example_bucket_has_every_job_file_and_trigger_and_nothing_else() {
    let bucket = workspace().join("examples/bucket");
    let before = snapshot(&bucket);
    let output = simulate(&["--bucket-dir", "examples/bucket", "--now", NOW]);
    let day = succeeded(&output);
    assert_eq!(snapshot(&bucket), before, "the bucket directory is not changed");

    // aml, brca, covid19 update daily; marm_model is curated (its manager
    // is rebuilt); rasmodel's flag is the string "true", so nothing.
    // covid19 and marm_model make tests (at 04:00, and after their update).
    let expected = expected_job_stems();
    let jobs = day["jobs"].as_array().unwrap();
    let mut stems: Vec<String> = jobs
        .iter()
        .map(|job| stem(job["name"].as_str().unwrap()))
        .collect();
    stems.sort();
    assert_eq!(stems, expected);

    // Files: a model state per updated model, a model manager per model
    // whose manager was rebuilt, results per corpus; each fires one function.
    let files = written_files(jobs);
    let expected_files = expected_files();
    assert_eq!(files, expected_files);

    // Runs: two schedules, then one per file; every one answered 200.
    let runs = day["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2 + expected_files.len());
    assert_eq!(
        runs[0]["start"],
        json!({"kind": "schedule", "schedule": "TestUpdateSchedule"})
    );
    assert_eq!(runs[1]["run"]["function"], "emmaa-update-pipeline");
    for run in &runs[2..] {
        assert_eq!(run["start"]["kind"], "file");
        assert_eq!(
            run["event"]["Records"][0]["s3"]["object"]["key"],
            run["start"]["key"]
        );
    }
    let summary = &day["summary"];
    assert_eq!(summary["jobs"], 33);
    assert_eq!(summary["files"], 14);
    assert_eq!(summary["refusals"], 0);
    assert_eq!(summary["cycles"], 0);
    assert_eq!(summary["functions"]["emmaa-model-test"], 7);
    assert_eq!(summary["functions"]["emmaa-after-update"], 4);
    // One model's path, in order.
    let aml: Vec<String> = summary["models"]["aml"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| stem(name.as_str().unwrap()))
        .collect();
    assert_eq!(
        aml,
        [
            "aml_update",
            "aml_mm_update",
            "aml_model_stats",
            "aml_large_corpus_tests_tests",
            "aml_queries",
            "aml_large_corpus_tests_stats"
        ]
    );
}

/// The example bucket's models that are tested, and their test corpora.
const CORPORA: [(&str, &[&str]); 4] = [
    ("aml", &["large_corpus_tests"]),
    ("brca", &["large_corpus_tests", "simple_model_tests"]),
    (
        "covid19",
        &[
            "large_corpus_tests",
            "covid19_curated_tests",
            "covid19_mitre_tests",
        ],
    ),
    ("marm_model", &["large_corpus_tests"]),
];

/// The jobs of the example bucket's day, by stem (the name without its
/// timestamp), sorted, as worked out by hand from its five configs.
fn expected_job_stems() -> Vec<String> {
    let mut expected: Vec<String> = [
        "covid19_test_update",
        "marm_model_test_update",
        "aml_update",
        "brca_update",
        "covid19_update",
        "marm_model_mm_update",
        "aml_mm_update",
        "brca_mm_update",
        "covid19_mm_update",
        "covid19_test_update",
        "marm_model_test_update",
    ]
    .iter()
    .map(|name| name.to_string())
    .collect();
    for (model, tests) in &CORPORA {
        expected.push(format!("{model}_model_stats"));
        expected.push(format!("{model}_queries"));
        for corpus in *tests {
            expected.push(format!("{model}_{corpus}_tests"));
            expected.push(format!("{model}_{corpus}_stats"));
        }
    }
    expected.sort();
    expected
}

/// Each file the day's jobs write, as (its key without the timestamp, the
/// function it fires, the stem of the job that wrote it), sorted.
fn written_files(jobs: &[Value]) -> Vec<(String, String, String)> {
    let mut files: Vec<(String, String, String)> = jobs
        .iter()
        .flat_map(|job| {
            let writes = job["writes"].as_array().unwrap().clone();
            let fires = job["fires"].as_array().unwrap().clone();
            assert!(writes.len() <= 1 && fires.len() == writes.len(), "{job}");
            writes.into_iter().zip(fires).map(|(key, fired)| {
                let key = key.as_str().unwrap();
                let shape = key.rsplit_once('_').unwrap().0.to_owned();
                (
                    shape,
                    fired.as_str().unwrap().to_owned(),
                    stem(job["name"].as_str().unwrap()),
                )
            })
        })
        .collect();
    files.sort();
    files
}

/// The files of the example bucket's day, as [`written_files`] gives them.
fn expected_files() -> Vec<(String, String, String)> {
    let mut expected_files = Vec::new();
    for model in ["aml", "brca", "covid19"] {
        expected_files.push((
            format!("models/{model}/model"),
            "emmaa-mm-update".to_owned(),
            format!("{model}_update"),
        ));
    }
    for (model, tests) in &CORPORA {
        expected_files.push((
            format!("results/{model}/model_manager"),
            "emmaa-after-update".to_owned(),
            format!("{model}_mm_update"),
        ));
        for corpus in *tests {
            expected_files.push((
                format!("results/{model}/results_{corpus}"),
                "emmaa-test-stats".to_owned(),
                format!("{model}_{corpus}_tests"),
            ));
        }
    }
    expected_files.sort();
    expected_files
}

/// The example bucket's day drawn as `args` ask.
fn picture(args: &[&str]) -> String {
    let mut all = vec!["--bucket-dir", "examples/bucket", "--now", NOW];
    all.extend_from_slice(args);
    let output = simulate(&all);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The picture as `format` draws it, checked against its golden file
/// (`EMMAA_BLESS=1` writes the file again).
fn golden_picture(args: &[&str], golden: &str) -> String {
    let text = picture(args);
    let path = workspace().join("tests/expected").join(golden);
    if std::env::var_os("EMMAA_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, expected, "{golden} differs: EMMAA_BLESS=1 writes it again");
    text
}

#[test]
fn the_day_draws_a_row_per_model_a_column_per_stage_and_a_legend() {
    let text = golden_picture(&["--format", "dot"], "day.dot");
    assert!(text.starts_with("digraph day {") && text.trim_end().ends_with('}'));
    // Four stages wide, whatever the number of models: the page's width.
    let columns: Vec<&str> = text
        .lines()
        .filter(|line| line.trim_start().starts_with("{ rank=same; head_"))
        .collect();
    assert_eq!(columns.len(), 4, "{text}");
    let stage = |job: &str| {
        columns
            .iter()
            .position(|column| column.contains(&format!(" job_{job};")))
            .unwrap_or_else(|| panic!("{job} in no column:\n{text}"))
    };
    // aml's whole path, a stage to the right each time.
    let path = [
        "aml_update_20200204_120001",
        "aml_mm_update_20200204_120002",
        "aml_large_corpus_tests_tests_20200204_120006",
        "aml_large_corpus_tests_stats_20200204_120010",
    ];
    for (at, pair) in path.windows(2).enumerate() {
        assert!(
            text.contains(&format!("    job_{} -> job_{} [tooltip=", pair[0], pair[1])),
            "no arrow {} -> {}:\n{text}",
            pair[0],
            pair[1]
        );
        assert_eq!((stage(pair[0]), stage(pair[1])), (at, at + 1), "{text}");
    }
    // A curated model's model manager, started by the schedule, stands under
    // the others' model managers.
    assert_eq!(stage("marm_model_mm_update_20200204_120001"), 1);
    // The rows, in model order, each headed by its model and schedules.
    let rows: Vec<&str> = text
        .lines()
        .filter(|line| line.trim_start().starts_with("row_") && line.contains("[label="))
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    for (row, (model, schedules)) in rows.iter().zip([
        ("aml", "Update"),
        ("brca", "Update"),
        ("covid19", "TestUpdate, Update"),
        ("marm_model", "TestUpdate, Update"),
    ]) {
        assert!(row.contains(&format!("\"{model}\\n({schedules})\"")), "{row}");
    }
    assert!(text.contains("How to read the day"), "no legend:\n{text}");
    // Every job of the day, once.
    let jobs = text
        .lines()
        .filter(|line| line.contains("[label=") && line.trim_start().starts_with("job_"));
    assert_eq!(jobs.count(), 33, "{text}");
}

#[test]
fn one_models_picture_holds_its_row_and_no_other_model() {
    let text = golden_picture(&["--format", "mermaid", "--model", "aml"], "day-aml.mmd");
    assert!(text.starts_with("flowchart LR\n"));
    for other in ["brca", "covid19", "marm_model", "TestUpdate"] {
        assert!(!text.contains(other), "{other} in aml's picture:\n{text}");
    }
    for arrow in [
        "job_aml_update_20200204_120001 --> job_aml_mm_update_20200204_120002",
        "job_aml_mm_update_20200204_120002 --> job_aml_queries_20200204_120006",
        "job_aml_large_corpus_tests_tests_20200204_120006 --> job_aml_large_corpus_tests_stats_20200204_120010",
    ] {
        assert!(text.contains(arrow), "no {arrow}:\n{text}");
    }
    // Six jobs: aml's whole day, and the legend.
    let jobs = text
        .lines()
        .filter(|line| line.trim_start().starts_with("job_aml_") && line.ends_with("\"]"));
    assert_eq!(jobs.count(), 6, "{text}");
    assert!(text.contains("subgraph legend"), "{text}");
}

/// Replay keeps each compiled component in its cache and reuses it; a
/// damaged cache entry is compiled again, never trusted.
#[test]
fn compiled_components_are_cached_and_a_damaged_entry_is_compiled_again() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("components");
    let cache_arg = cache_dir.to_str().unwrap();
    let replay_cached = || {
        replay(
            &[
                "emmaa-model-update",
                "examples/events/emmaa-model-update.json",
                "--now",
                NOW,
            ],
            &[("EMMAA_COMPILE_CACHE", cache_arg)],
        )
    };
    let run = || succeeded(&replay_cached());
    let first = run();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    // The entry, and its digest beside it.
    assert_eq!(entries.len(), 2, "{entries:?}");
    let (entry, digest) = (&entries[0], &entries[1]);
    assert!(entry.extension().is_some_and(|ext| ext == "cwasm"), "{entries:?}");
    assert_eq!(
        digest.file_name(),
        entry.with_extension("cwasm.sha256").file_name()
    );
    let compiled = std::fs::read(entry).unwrap();
    assert_eq!(run(), first, "the cached component answers the same");
    std::fs::write(entry, b"not a component").unwrap();
    assert_eq!(run(), first, "a damaged entry is compiled again");
    assert_eq!(std::fs::read(entry).unwrap(), compiled, "and rewritten");
    // One byte flipped, which wasmtime's own checks may not see: the digest does.
    let mut flipped = compiled.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    std::fs::write(entry, &flipped).unwrap();
    assert_eq!(run(), first, "a changed entry is compiled again");
    assert_eq!(std::fs::read(entry).unwrap(), compiled, "and rewritten");
    // A cache directory others can write is not used, and the host says so.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&cache_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(entry, &flipped).unwrap();
    let output = replay_cached();
    assert_eq!(succeeded(&output), first);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr
            .matches("is writable by others (or not yours): not used")
            .count(),
        1,
        "{stderr}"
    );
    assert_eq!(std::fs::read(entry).unwrap(), flipped, "not read, not written");
    // EMMAA_COMPILE_CACHE empty: no cache at all.
    let output = replay(
        &[
            "emmaa-model-update",
            "examples/events/emmaa-model-update.json",
            "--now",
            NOW,
        ],
        &[("EMMAA_COMPILE_CACHE", "")],
    );
    assert!(output.status.success());
}

/// `--models N`: the made-up bucket's day, counted from its mix by hand:
/// three in four models updated daily, the rest curated; one in ten makes
/// tests; even models test one corpus, odd ones two.
#[test]
fn a_day_over_made_up_models_counts_every_job() {
    let output = simulate(&["--models", "200", "--now", NOW]);
    let summary = succeeded(&output)["summary"].clone();
    let (models, updated, makers, corpora) = (200, 150, 20, 100 + 2 * 100);
    let jobs = updated // model updates
        + models // manager updates (files, and the curated models directly)
        + 2 * models // model stats and queries, after every update
        + corpora // model tests
        + corpora // test statistics
        + 2 * makers; // test updates: at 04:00 and after the update
    assert_eq!(summary["jobs"], jobs);
    assert_eq!(summary["files"], updated + models + corpora);
    assert_eq!(summary["runs"], 2 + updated + models + corpora);
    assert_eq!(summary["refusals"], 0);
    assert_eq!(summary["models"].as_object().unwrap().len(), models);
}

/// S3 notifications are at-least-once: `--redeliver` delivers each twice.
/// With the ledger's claims the day is the same 33 jobs and nothing is
/// duplicated; with the ledger off, the same day counts duplicates (the
/// counter can fail).
#[test]
fn a_redelivered_day_duplicates_nothing_with_the_ledger_and_counts_duplicates_without() {
    let day = |ledger: &str| {
        let output = simulate_with(
            &["--bucket-dir", "examples/bucket", "--now", NOW, "--redeliver"],
            &[("EMMAA_LEDGER", ledger)],
        );
        succeeded(&output)
    };
    let claimed = day("on");
    let summary = &claimed["summary"];
    assert_eq!(summary["redelivered"], 14, "every file's notification twice");
    assert_eq!(summary["runs"], 2 + 2 * 14);
    assert_eq!(summary["jobs"], 33, "the same jobs as one delivery");
    assert_eq!(summary["duplicated"], 0);
    // A second delivery finds its work claimed and says so.
    let again = claimed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|run| run["start"]["redelivery"] == true && run["run"]["function"] == "emmaa-mm-update")
        .unwrap();
    assert_eq!(again["run"]["response"]["statusCode"], 200, "{again}");
    assert!(
        again["run"]["response"].to_string().contains("already_submitted"),
        "{again}"
    );

    let unclaimed = day("off");
    let duplicated = unclaimed["summary"]["duplicated"].as_u64().unwrap();
    assert!(duplicated > 0, "without claims a redelivery does the work again");
    assert!(unclaimed["summary"]["jobs"].as_u64().unwrap() > 33);
}

#[test]
fn the_summary_is_a_table_for_a_person_and_json_when_piped() {
    let args = ["--bucket-dir", "examples/bucket", "--now", NOW];
    let piped = simulate(&[&args[..], &["--format", "summary"]].concat());
    let json: Value = serde_json::from_slice(&piped.stdout).unwrap();
    let table = simulate(&[&args[..], &["--format", "table"]].concat());
    let text = String::from_utf8_lossy(&table.stdout);
    assert_eq!(table.status.code(), piped.status.code());
    assert!(text.starts_with(&format!("the day from {NOW}\n")), "{text}");
    let row = |name: &str| -> String {
        text.lines()
            .find_map(|line| {
                let line = line.trim();
                line.strip_prefix(name)
                    .filter(|rest| rest.starts_with("  "))
                    .map(|rest| rest.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no row {name}: {text}"))
    };
    for name in ["runs", "invocations", "jobs", "files", "refusals", "duplicated"] {
        assert_eq!(row(name), json["summary"][name].to_string(), "{name}");
    }
    for (function, runs) in json["summary"]["functions"].as_object().unwrap() {
        assert_eq!(row(function), runs.to_string(), "{function}");
    }
}

#[test]
fn out_of_range_days_and_unknown_models_are_usage_errors() {
    let stderr = |output: &Output| String::from_utf8_lossy(&output.stderr).trim_end().to_owned();
    for bad in ["0", "100001", "many"] {
        let output = simulate(&["--models", bad]);
        assert_eq!(output.status.code(), Some(2), "--models {bad}");
        assert!(
            stderr(&output).contains(&format!("{bad:?} is not a number of models from 1 to 100000")),
            "{}",
            stderr(&output)
        );
    }
    let output = simulate(&["--models", "1", "--now", "9999-12-31"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "emmaa-host simulate: --now 9999-12-31T00:00:00Z: the day could run past the year 9999, which \
         job names and keys cannot carry: start it before 9999-12-01T00:00:00Z"
    );
    // `marm` is the start of marm_model's jobs' names, not a model.
    let output = simulate(&[
        "--bucket-dir",
        "examples/bucket",
        "--now",
        NOW,
        "--format",
        "mermaid",
        "--model",
        "marm",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "emmaa-host simulate: --model \"marm\": no model of that name has a job in the day (it has: \
         aml, brca, covid19, marm_model)"
    );
}

/// `simulate --python` runs the day with the Python builds of the guests
/// that have one: the same day, byte for byte, as with the Rust builds.
#[test]
fn the_day_is_the_same_with_the_python_builds() {
    let day = ["--bucket-dir", "examples/bucket", "--now", NOW];
    let rust = simulate(&day);
    let python_flags = crate::support::PYTHON_TWINS
        .iter()
        .flat_map(|guest| ["--python", guest]);
    let args: Vec<&str> = day.into_iter().chain(python_flags).collect();
    let python = simulate(&args);
    let said = String::from_utf8_lossy(&python.stderr);
    assert_eq!(python.status.code(), Some(0), "{said}");
    for guest in crate::support::PYTHON_TWINS {
        assert!(
            said.contains(&format!("building the Python guest {guest}")),
            "{said}"
        );
    }
    assert!(!rust.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&python.stdout),
        String::from_utf8_lossy(&rust.stdout)
    );
}
