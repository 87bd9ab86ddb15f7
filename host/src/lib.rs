//! The EMMAA pipeline host: runs a handler guest (a WebAssembly component)
//! on one event and performs, or records, what the guest asks for.
//!
//! - [`engine`]: the wasmtime engine, shared by the runtime and `deploy`'s
//!   precompiler, and the loaded, pre-instantiated guests;
//! - [`effects`]: the S3, Lambda and Batch calls behind one trait, with an
//!   AWS backend and a local one (a directory or memory, fake answers);
//! - [`run`]: one event through one guest, with every action recorded;
//! - [`replay`] and [`lambda`]: the two entry points.

pub mod action;
pub mod effects;
pub mod engine;
pub mod guests;
pub mod lambda;
pub mod manifest;
pub mod replay;
pub mod run;
pub mod settings;

/// The host's side of `wit/emmaa.wit`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "handler",
        imports: { default: async },
        exports: { default: async },
    });
}

pub use action::Action;
pub use effects::Effects;
pub use engine::{GuestRuntime, LoadedGuest};
pub use run::{EventContext, HandlerOutcome};
pub use settings::Settings;
