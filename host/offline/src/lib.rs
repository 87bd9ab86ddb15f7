//! The EMMAA host's offline tools, over the runtime: nothing here runs on
//! Lambda.
//!
//! - [`events`]: the events AWS sends each function (`generate-event`);
//! - [`report`]: what one function did with one event (the replay
//!   contract's document);
//! - [`progress`]: a line that shows long work on a terminal;
//! - [`quota`]: AWS's limits, in virtual time;
//! - [`cascade`]: runs that follow invocations from function to function;
//! - [`replay`]: one event on this machine, and recorded traces replayed
//!   and checked;
//! - [`simulate`]: a whole day of cascades, from the schedules and the
//!   files Batch jobs would write;
//! - [`picture`]: the day drawn at a page's width, a row per model;
//! - [`python`]: guests written in Python, built by componentize-py.

pub mod cascade;
pub mod events;
pub mod picture;
pub mod progress;
pub mod python;
pub mod quota;
pub mod replay;
pub mod report;
pub mod simulate;
