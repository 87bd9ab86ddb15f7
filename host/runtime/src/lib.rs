//! Runs one EMMAA handler guest (a WebAssembly component) on one event and
//! performs, or records, what the guest asks for. No AWS SDK and no command
//! line: the AWS backend (`emmaa-aws`), the Lambda loop (`emmaa-lambda`) and
//! the offline tools (`emmaa-offline`) are built over it.
//!
//! From the bottom up:
//! - [`bindings`]: the host's side of `wit/emmaa.wit`;
//! - [`guests`]: the pipeline's functions, the guests they run and what
//!   each may reach; [`manifest`]: which component serves which function
//!   in a bundle;
//! - [`effects`]: the S3, Lambda and Batch calls behind one trait, with a
//!   local backend (a directory or memory, fake answers) and the layer
//!   that waits out throttling;
//! - [`action`]: what a guest asked for, as a replay prints it;
//! - [`limits`]: every limit a guest runs under; [`gate`]: the bound on
//!   the calls in flight and the time they need;
//! - [`ledger`]: claims that make each unit of work happen once;
//! - [`settings`]: the `EMMAA_*` variables;
//! - [`difference`]: where two runs differ; [`outcome`]: how an event
//!   ended; [`trace`]: the flight recorder's format, and the player that
//!   answers a guest from a trace;
//! - [`store`]: one event's store, with its limits set; [`engine`]: the
//!   wasmtime engine and the loaded guests; [`imports`]: the guest's
//!   requests, bounded and performed; [`run`]: one event through one guest.

pub mod action;
pub mod difference;
pub mod effects;
pub mod engine;
pub mod gate;
pub mod guests;
pub mod imports;
pub mod ledger;
pub mod limits;
pub mod manifest;
pub mod outcome;
pub mod run;
pub mod settings;
pub mod store;
pub mod trace;

/// The host's side of `wit/emmaa.wit`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "handler",
        // Trappable: a replay from a trace stops the guest at the first
        // call that differs from the recorded one.
        imports: { default: async | trappable },
        exports: { default: async },
        // Serde: the flight recorder keeps calls and answers in its traces.
        additional_derives: [PartialEq, Eq, serde::Serialize, serde::Deserialize],
    });
}

pub use action::Action;
pub use effects::Effects;
pub use engine::{GuestRuntime, LoadedGuest};
pub use outcome::{Answer, Failure};
pub use run::HandlerOutcome;
pub use settings::Settings;
pub use store::EventContext;
