//! The EMMAA pipeline host: runs a handler guest (a WebAssembly component)
//! on one event and performs, or records, what the guest asks for.
//!
//! - [`engine`]: the wasmtime engine, shared by the runtime and `deploy`'s
//!   precompiler, and the loaded, pre-instantiated guests;
//! - [`store`]: every limit a guest runs under (fuel, memory, deadline);
//! - [`effects`]: the S3, Lambda and Batch calls behind one trait, with an
//!   AWS backend and a local one (a directory or memory, fake answers);
//! - [`imports`]: the guest's requests, recorded, bounded and performed;
//! - [`ledger`]: claims that make each unit of work happen once;
//! - [`run`]: one event through one guest; [`outcome`]: how it ended;
//! - [`replay`] and [`lambda`]: the two entry points; [`cascade`]: runs
//!   that follow invocations from function to function; [`simulate`]: a
//!   whole day of them, with [`quota`]'s model of AWS's limits;
//! - [`trace`]: the flight recorder, and replays from what it recorded.

pub mod action;
pub mod cascade;
pub mod effects;
pub mod engine;
pub mod guests;
pub mod imports;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod ledger;
pub mod manifest;
pub mod outcome;
pub mod quota;
pub mod replay;
pub mod run;
pub mod settings;
pub mod simulate;
pub mod store;
pub mod trace;

/// The host's side of `wit/emmaa.wit`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
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
pub use run::{EventContext, HandlerOutcome};
pub use settings::Settings;
