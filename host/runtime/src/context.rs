//! What Lambda tells a handler about the event it is given.

use std::time::Duration;

/// What Lambda tells a handler about the event.
#[derive(Debug, Clone)]
pub struct EventContext {
    pub function_name: String,
    pub request_id: String,
    /// When Lambda stops the function, in milliseconds since the Unix
    /// epoch, as the guest is told it.
    pub deadline_ms: u64,
    /// How long the host has for the event from now: the guest is
    /// interrupted a margin before it runs out.
    pub time_left: Duration,
    /// The invocation's time, in seconds since the Unix epoch.
    pub now: u64,
}
