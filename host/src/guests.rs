//! The eleven handlers: each guest's name (the Python module it replaces)
//! and the Lambda function it is deployed as (`EMMAA_FUNCTION_PREFIX` plus
//! a fixed suffix).

/// `(guest, function name without the prefix)`, in the spec's order.
pub const GUESTS: [(&str, &str); 11] = [
    ("update_pipeline", "update-pipeline"),
    ("model_updates", "model-update"),
    ("model_manager_update", "mm-update"),
    ("after_update", "after-update"),
    ("test_pipeline", "test-pipeline"),
    ("model_tests", "model-test"),
    ("test_stats", "test-stats"),
    ("model_stats", "model-stats"),
    ("model_queries", "queries"),
    ("test_update_pipeline", "test-update-pipeline"),
    ("test_update", "test-update"),
];

/// Where `cargo build` put the guest components (`<guest>.wasm`).
#[cfg(feature = "jit")]
pub const GUEST_DIR: &str = env!("EMMAA_GUEST_DIR");

/// A function of the pipeline and the guest it runs, found by either name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineFunction {
    pub guest: &'static str,
    pub function: String,
}

/// Finds the handler for `name`: a guest name (`update_pipeline`) or a
/// function name with the prefix (`emmaa-update-pipeline`).
pub fn find(name: &str, function_prefix: &str) -> Option<PipelineFunction> {
    GUESTS.iter().find_map(|&(guest, suffix)| {
        let function = format!("{function_prefix}{suffix}");
        (name == guest || name == function).then_some(PipelineFunction { guest, function })
    })
}

/// The default function name of a guest (by guest name only).
pub fn default_function(guest: &str, function_prefix: &str) -> Option<String> {
    GUESTS
        .iter()
        .find(|(name, _)| *name == guest)
        .map(|(_, suffix)| format!("{function_prefix}{suffix}"))
}

/// Every name `find` accepts, for error messages.
pub fn known_names(function_prefix: &str) -> String {
    GUESTS
        .iter()
        .map(|(guest, suffix)| format!("{function_prefix}{suffix} ({guest})"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_handler_by_guest_or_function_name() {
        let by_guest = find("model_queries", "emmaa-").unwrap();
        assert_eq!(by_guest.function, "emmaa-queries");
        assert_eq!(find("emmaa-queries", "emmaa-"), Some(by_guest));
        assert_eq!(
            find("dev-mm-update", "dev-").unwrap().guest,
            "model_manager_update"
        );
    }

    #[test]
    fn finds_nothing_for_unknown_names() {
        assert_eq!(find("emmaa-nothing", "emmaa-"), None);
        assert_eq!(find("emmaa-queries", "dev-"), None);
    }
}
