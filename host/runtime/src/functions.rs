//! The pipeline's eleven functions and their reach: for each, the guest it
//! runs (named after the Python module it replaces), its name
//! (`EMMAA_FUNCTION_PREFIX` plus a fixed suffix), what triggers it, what it
//! lists and reads in the bucket, what it invokes, and whether it submits
//! Batch jobs. One table: the host's allowlist ([`PipelineFunction::allows_read`] and
//! the rest, applied to every call a guest asks for) and the documented IAM
//! table ([`iam_table`]) are made from it, so they cannot drift apart.

/// What starts a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A schedule, once a day.
    Daily,
    /// A new object in the bucket whose key matches `key`, a pattern in
    /// EventBridge's wildcard syntax (see [`wildcard_matches`]): the
    /// contract's layout of the files that start the function, so the
    /// stack's rule starts it for no other file.
    NewObject { key: &'static str },
    /// Another function invokes it.
    Invoked,
}

/// One function of the pipeline: the guest it runs, what starts it, and
/// its reach.
#[derive(Debug, PartialEq, Eq)]
pub struct PipelineFunction {
    /// The guest's name (the Python module it replaces).
    pub guest: &'static str,
    /// The function's name without `EMMAA_FUNCTION_PREFIX`.
    pub function: &'static str,
    pub trigger: Trigger,
    /// The prefixes it lists (with delimiter `/`).
    pub lists: &'static [&'static str],
    /// The keys it reads; `*` stands for one path segment.
    pub reads: &'static [&'static str],
    /// The functions it invokes, without the prefix.
    pub invokes: &'static [&'static str],
    /// Whether it submits Batch jobs (to the configured queues and job
    /// definitions only).
    pub submits_jobs: bool,
}

const CONFIG: &str = "models/*/config.json";

const fn batch_handler(guest: &'static str, function: &'static str, trigger: Trigger) -> PipelineFunction {
    PipelineFunction {
        guest,
        function,
        trigger,
        lists: &[],
        reads: &[],
        invokes: &[],
        submits_jobs: true,
    }
}

/// Every handler, in the spec's order.
pub const FUNCTIONS: [PipelineFunction; 11] = [
    PipelineFunction {
        guest: "update_pipeline",
        function: "update-pipeline",
        trigger: Trigger::Daily,
        lists: &["models/"],
        reads: &[CONFIG],
        invokes: &["model-update", "mm-update"],
        submits_jobs: false,
    },
    batch_handler("model_updates", "model-update", Trigger::Invoked),
    batch_handler(
        "model_manager_update",
        "mm-update",
        Trigger::NewObject {
            key: "models/*/model_*.pkl",
        },
    ),
    PipelineFunction {
        guest: "after_update",
        function: "after-update",
        trigger: Trigger::NewObject {
            key: "results/*/model_manager_*.pkl",
        },
        lists: &[],
        reads: &[CONFIG],
        invokes: &["model-stats", "test-pipeline", "queries", "test-update"],
        submits_jobs: false,
    },
    PipelineFunction {
        guest: "test_pipeline",
        function: "test-pipeline",
        trigger: Trigger::Invoked,
        lists: &[],
        reads: &[CONFIG],
        invokes: &["model-test"],
        submits_jobs: false,
    },
    batch_handler("model_tests", "model-test", Trigger::Invoked),
    batch_handler(
        "test_stats",
        "test-stats",
        Trigger::NewObject {
            key: "results/*/results_*.json",
        },
    ),
    batch_handler("model_stats", "model-stats", Trigger::Invoked),
    batch_handler("model_queries", "queries", Trigger::Invoked),
    PipelineFunction {
        guest: "test_update_pipeline",
        function: "test-update-pipeline",
        trigger: Trigger::Daily,
        lists: &["models/"],
        reads: &[CONFIG],
        invokes: &["test-update"],
        submits_jobs: false,
    },
    batch_handler("test_update", "test-update", Trigger::Invoked),
];

/// Where `cargo build` put the guest components (`<guest>.wasm`).
#[cfg(feature = "jit")]
pub const GUEST_DIR: &str = env!("EMMAA_GUEST_DIR");

/// The function of `functions` that `name` names: a guest name
/// (`update_pipeline`) or a function name with the prefix
/// (`emmaa-update-pipeline`).
pub fn find_in(
    functions: &'static [PipelineFunction],
    name: &str,
    function_prefix: &str,
) -> Option<&'static PipelineFunction> {
    functions
        .iter()
        .find(|function| name == function.guest || name == function.name(function_prefix))
}

/// Every name [`PipelineFunction::find`] accepts, for error messages.
pub fn known_names(function_prefix: &str) -> String {
    FUNCTIONS
        .iter()
        .map(|function| format!("{} ({})", function.name(function_prefix), function.guest))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `key` matches `pattern`, where `*` stands for one path segment.
fn matches(pattern: &str, key: &str) -> bool {
    let (mut pattern, mut key) = (pattern.split('/'), key.split('/'));
    loop {
        match (pattern.next(), key.next()) {
            (None, None) => return true,
            (Some("*"), Some(segment)) if !segment.is_empty() => {}
            (Some(expected), Some(segment)) if expected == segment => {}
            _ => return false,
        }
    }
}

/// Whether `key` matches `pattern` as EventBridge matches a `wildcard`
/// filter: `*` stands for any run of characters, `/` included (so
/// `results/*/results_*.json` also matches `results/a/b/results_c.json`,
/// which the guest then refuses by its layout), and every other character
/// for itself.
pub fn wildcard_matches(pattern: &str, key: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = key.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

impl PipelineFunction {
    /// Whether a new object at `key` starts this function.
    pub fn started_by(&self, key: &str) -> bool {
        matches!(self.trigger, Trigger::NewObject { key: pattern } if wildcard_matches(pattern, key))
    }

    /// The pipeline's function that `name` names (see [`find_in`]).
    pub fn find(name: &str, function_prefix: &str) -> Option<&'static PipelineFunction> {
        find_in(&FUNCTIONS, name, function_prefix)
    }

    /// The pipeline's function that runs `guest`.
    pub fn by_guest(guest: &str) -> Option<&'static PipelineFunction> {
        FUNCTIONS.iter().find(|function| function.guest == guest)
    }

    /// The function's name, with the prefix.
    pub fn name(&self, function_prefix: &str) -> String {
        format!("{function_prefix}{}", self.function)
    }

    pub fn allows_list(&self, prefix: &str, delimiter: &str) -> bool {
        delimiter == "/" && self.lists.contains(&prefix)
    }

    pub fn allows_read(&self, key: &str) -> bool {
        self.reads.iter().any(|pattern| matches(pattern, key))
    }

    pub fn allows_invoke(&self, function_name: &str, function_prefix: &str) -> bool {
        function_name
            .strip_prefix(function_prefix)
            .is_some_and(|suffix| self.invokes.contains(&suffix))
    }

    /// What the function may do, in words, for a refusal.
    pub fn describe_reach(&self) -> String {
        let mut reach = Vec::new();
        if !self.lists.is_empty() {
            reach.push(format!("list {}", self.lists.join(", ")));
        }
        if !self.reads.is_empty() {
            reach.push(format!("read {}", self.reads.join(", ")));
        }
        if !self.invokes.is_empty() {
            reach.push(format!("invoke {}", self.invokes.join(", ")));
        }
        if self.submits_jobs {
            reach.push("submit jobs to the configured queues and job definitions".to_owned());
        }
        match reach.is_empty() {
            true => "nothing".to_owned(),
            false => reach.join("; "),
        }
    }
}

/// The IAM table of docs/deploying.md: what each function's role must allow.
pub fn iam_table(function_prefix: &str, ledger_prefix: &str) -> String {
    let mut table = String::from("| function | trigger | needs |\n|---|---|---|\n");
    for function in &FUNCTIONS {
        let name = function.name(function_prefix);
        let trigger = match function.trigger {
            Trigger::Daily => "daily schedule".to_owned(),
            Trigger::NewObject { key } => format!("new object `{key}`"),
            Trigger::Invoked => "invoked".to_owned(),
        };
        let mut needs = Vec::new();
        for prefix in function.lists {
            needs.push(format!("`s3:ListBucket` on the bucket (prefix `{prefix}`)"));
        }
        if !function.reads.is_empty() {
            let keys: Vec<String> = function.reads.iter().map(|key| format!("`{key}`")).collect();
            needs.push(format!("`s3:GetObject` on {}", keys.join(", ")));
        }
        if !function.invokes.is_empty() {
            let invoked: Vec<String> = function
                .invokes
                .iter()
                .map(|suffix| format!("`{function_prefix}{suffix}`"))
                .collect();
            needs.push(format!("`lambda:InvokeFunction` on {}", invoked.join(", ")));
        }
        if function.submits_jobs {
            needs.push(
                "`batch:SubmitJob` on both job queues and both job definitions, `batch:ListJobs`".to_owned(),
            );
        }
        needs.push(format!(
            "`s3:GetObject`, `s3:PutObject`, `s3:DeleteObject` on `{ledger_prefix}{name}/*` (the ledger)"
        ));
        needs.push(format!(
            "`sqs:SendMessage` on `{function_prefix}failed-events` (its failed events, after Lambda's retries)"
        ));
        table.push_str(&format!("| `{name}` | {trigger} | {} |\n", needs.join("; ")));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_handler_by_guest_or_function_name() {
        let by_guest = PipelineFunction::find("model_queries", "emmaa-").unwrap();
        assert_eq!(by_guest.name("emmaa-"), "emmaa-queries");
        assert_eq!(PipelineFunction::find("emmaa-queries", "emmaa-"), Some(by_guest));
        assert_eq!(
            PipelineFunction::find("dev-mm-update", "dev-").unwrap().guest,
            "model_manager_update"
        );
    }

    /// The S3 rules start each function for the contract's layout of its
    /// trigger file only: a model state, a model manager, test results.
    #[test]
    fn a_new_object_starts_only_the_function_whose_layout_it_has() {
        let started = |key: &str| -> Vec<&str> {
            FUNCTIONS
                .iter()
                .filter(|function| function.started_by(key))
                .map(|function| function.guest)
                .collect()
        };
        assert_eq!(
            started("models/aml/model_2020-01-01-00-00-00.pkl"),
            ["model_manager_update"]
        );
        assert_eq!(
            started("results/aml/model_manager_2020-01-01-00-00-00.pkl"),
            ["after_update"]
        );
        assert_eq!(
            started("results/aml/results_simple_tests_2020-01-01.json"),
            ["test_stats"]
        );
        assert_eq!(started("results/aml/results_2020-01-01.json"), ["test_stats"]);
        // Other files under the same prefixes and with the same suffixes
        // start nothing (the old rules, prefix and suffix, started these).
        for key in [
            "results/aml/other.pkl",
            "results/aml/stats_2020.json",
            "models/aml/config.json",
            "models/aml/snapshot.pkl",
            "results/aml/model_manager_2020.pkl.tmp",
            "models/model_x.pkl",
        ] {
            assert_eq!(started(key), Vec::<&str>::new(), "{key}");
        }
    }

    #[test]
    fn a_wildcard_matches_as_eventbridge_does() {
        assert!(wildcard_matches("a*b", "ab"));
        assert!(wildcard_matches("a*b", "a/x/b"));
        assert!(wildcard_matches("a*b*c", "abbc"));
        assert!(!wildcard_matches("a*b*c", "ac"));
        // The star may stand for nothing, but the parts around it may not
        // overlap.
        assert!(wildcard_matches("a*ba", "aba"));
        assert!(!wildcard_matches("ab*ba", "aba"));
        assert!(wildcard_matches("plain", "plain"));
        assert!(!wildcard_matches("plain", "plain2"));
        assert!(wildcard_matches("*", ""));
    }

    #[test]
    fn finds_nothing_for_unknown_names() {
        assert_eq!(PipelineFunction::find("emmaa-nothing", "emmaa-"), None);
        assert_eq!(PipelineFunction::find("emmaa-queries", "dev-"), None);
    }

    #[test]
    fn a_star_stands_for_exactly_one_path_segment() {
        assert!(matches(CONFIG, "models/aml/config.json"));
        assert!(!matches(CONFIG, "models/config.json"));
        assert!(!matches(CONFIG, "models//config.json"));
        assert!(!matches(CONFIG, "models/a/b/config.json"));
        assert!(!matches(CONFIG, "results/aml/config.json"));
        assert!(!matches(CONFIG, "models/aml/config.json.bak"));
    }

    #[test]
    fn the_fan_out_handlers_reach_only_what_the_spec_says() {
        let pipeline = PipelineFunction::by_guest("update_pipeline").unwrap();
        assert!(pipeline.allows_list("models/", "/"));
        assert!(!pipeline.allows_list("results/", "/"));
        assert!(pipeline.allows_invoke("emmaa-mm-update", "emmaa-"));
        assert!(!pipeline.allows_invoke("emmaa-queries", "emmaa-"));
        assert!(!pipeline.submits_jobs);
        let queries = PipelineFunction::by_guest("model_queries").unwrap();
        assert!(!queries.allows_read("models/aml/config.json"));
        assert!(queries.submits_jobs);
    }

    /// docs/deploying.md's IAM table is this table.
    #[test]
    fn the_documented_iam_table_is_made_from_the_reach_table() {
        crate::generated::check_block(
            "docs/deploying.md",
            "iam-table",
            "host/runtime/src/functions.rs",
            &iam_table("emmaa-", "ledger/"),
        );
    }
}
