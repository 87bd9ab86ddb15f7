//! What the eleven EMMAA handler guests share, so each guest reads like its
//! spec: parse the event, decide, ask the host.
//!
//! Untrusted input (events, S3 keys, `config.json`) is turned into typed
//! values here, once: a [`ModelName`] or [`TestCorpus`] can only hold a name
//! that is safe in a Batch job name and a shell command line.

pub mod answer;
pub mod batch_job;
pub mod config;
pub mod event;
pub mod fan_out;
pub mod host;
pub mod models;
pub mod names;
#[cfg(test)]
mod properties;
pub mod quote;
pub mod s3_event;
pub mod time;
pub mod work;

pub use answer::{Refusal, Report};
pub use batch_job::JobRequest;
pub use config::ModelConfig;
pub use fan_out::Call;
pub use names::{ModelName, TestCorpus};
pub use serde_json::{Value, json};

/// The generated WIT bindings (`wit/emmaa.wit`, world `handler`).
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "handler",
        pub_export_macro: true,
        export_macro_name: "export_world",
        default_bindings_module: "emmaa_guest::bindings",
    });
}

/// The signature of a handler: it reads the event, records what went
/// through and what was refused in the report, and fails as a whole only
/// when nothing can go through (an unreadable listing, say).
pub type HandlerFn = fn(&Value, &mut Report) -> Result<(), String>;

/// Runs `handler` on one raw event and turns its report into the answer the
/// host expects: a JSON document, or the reason nothing went through.
pub fn run(event: &str, context: &bindings::Context, handler: HandlerFn) -> Result<String, String> {
    // A guest has no standard error: a panic's message goes to the host's
    // log, which names it when it reports the trap that follows.
    std::panic::set_hook(Box::new(|panic| host::log_error(&format!("panicked: {panic}"))));
    let event: Value = serde_json::from_str(event).map_err(|err| format!("the event is not JSON: {err}"))?;
    work::begin(&event, &context.request_id);
    let mut report = Report::default();
    handler(&event, &mut report)?;
    let refused = report.refused();
    for refusal in refused.iter().take(answer::MAX_LISTED_REFUSALS) {
        host::log_warning(&format!(
            "refused {}: {}",
            quote::quote(&refusal.item),
            refusal.reason
        ));
    }
    if refused.len() > answer::MAX_LISTED_REFUSALS {
        let more = refused.len() - answer::MAX_LISTED_REFUSALS;
        host::log_warning(&format!("refused {more} more items (not logged one by one)"));
    }
    report.finish().map(|answer| answer.to_string())
}

/// Exports `handler` (a [`HandlerFn`]) as this component's `handle` function.
#[macro_export]
macro_rules! export_handler {
    ($handler:path) => {
        struct Component;

        impl $crate::bindings::Guest for Component {
            fn handle(
                event: ::std::string::String,
                context: $crate::bindings::Context,
            ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                $crate::run(&event, &context, $handler)
            }
        }

        $crate::bindings::export_world!(Component);
    };
}
