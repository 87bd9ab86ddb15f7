//! Helpers shared by the end-to-end tests.

pub mod bundle;
pub mod fault_proxy;
pub mod guests;
pub mod http;
pub mod moto;
pub mod runtime_api;
pub mod workspace;

pub use workspace::workspace;
