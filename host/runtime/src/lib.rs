//! Runs one EMMAA handler guest (a WebAssembly component) on one event and
//! performs, or records, what the guest asks for. No AWS SDK and no command
//! line: the AWS backend (`emmaa-aws`), the Lambda loop (`emmaa-lambda`) and
//! the offline tools (`emmaa-offline`) are built over it.
//!
//! From the bottom up:
//! - [`bindings`]: the host's side of `wit/emmaa.wit`; [`digest`]: content
//!   hashes;
//! - [`functions`]: the pipeline's functions, the guests they run and what
//!   each may reach; [`manifest`]: which component serves which function
//!   in a bundle; [`mark`]: the guest a component says it is;
//!   [`context`]: what Lambda tells a handler about an event;
//! - [`effects`]: the S3, Lambda and Batch calls behind one trait, with a
//!   local backend (a directory or memory, fake answers) and the layer
//!   that waits out throttling;
//! - [`action`]: what a guest asked for, as a replay prints it;
//! - [`clock`]: the time, real or a virtual day's;
//! - [`limits`]: every limit a guest runs under; [`gate`]: the bound on
//!   the calls in flight and the time they need;
//! - [`ledger`]: claims that make each unit of work happen once;
//! - [`settings`]: the `EMMAA_*` variables;
//! - [`difference`]: where two runs differ; [`answer`]: how an event
//!   ended; [`trace`]: the flight recorder's format, and the player that
//!   answers a guest from a trace;
//! - [`wasi`]: the host's answers to the WASI calls a language's runtime
//!   makes on its own;
//! - [`imports`]: the state of one event and the guest's requests, bounded
//!   and performed; [`store`]: the event's store, its limits set;
//! - [`guest`]: a loaded guest and one event through it; [`engine`]: the
//!   wasmtime engine, which loads guests.

pub mod action;
pub mod answer;
pub mod clock;
pub mod context;
pub mod difference;
pub mod digest;
pub mod effects;
pub mod engine;
pub mod functions;
pub mod gate;
#[cfg(test)]
mod generated;
pub mod guest;
pub mod imports;
pub mod ledger;
pub mod limits;
pub mod manifest;
pub mod mark;
pub mod settings;
pub mod store;
pub mod trace;
pub mod wasi;

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
pub use answer::{Answer, Failure};
pub use context::EventContext;
pub use effects::Effects;
pub use engine::GuestRuntime;
pub use guest::{GuestRun, LoadedGuest};
pub use settings::Settings;
