//! The per-event store: what the host functions need for one event (its
//! context, settings, backend and gate) and what they did, with every
//! limit of [`crate::limits`] set in one place, [`new_store`].

use std::sync::Arc;
use std::time::Duration;

// tokio's clock: the real one on Lambda, a virtual one in `host simulate
// --quotas`, where the deadline must pass in the simulation's time.
use tokio::time::Instant;
use wasmtime::{Engine, Store};

use crate::action::Action;
use crate::effects::Effects;
use crate::effects::patient::Patient;
use crate::gate::Gate;
use crate::guests::Guest;
use crate::limits::{CALL_RESERVE, DEADLINE_MARGIN, EPOCH_TICK, FUEL_PER_EVENT, MemoryLimiter};
use crate::outcome::Effect;
use crate::settings::Settings;
use crate::trace::Tape;

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

/// The store's data: what the host functions need for one event, and what
/// they did.
pub struct HostState {
    pub(crate) effects: Arc<dyn Effects>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) context: EventContext,
    /// When the guest is interrupted.
    pub(crate) interrupt_at: Instant,
    /// The calls to AWS services, bounded and timed.
    pub(crate) gate: Gate,
    pub(crate) actions: Vec<Action>,
    /// Every invocation and submission, as it turned out.
    pub(crate) done: Vec<Effect>,
    pub(crate) limiter: MemoryLimiter,
    /// The last error the guest logged (a panic's message, say).
    pub(crate) last_guest_error: Option<String>,
    /// What the function may reach; `None`: nothing.
    pub(crate) reach: Option<&'static Guest>,
    /// Whether the calls are recorded, or answered from a trace.
    pub(crate) tape: Tape,
}

impl HostState {
    pub fn new(
        effects: Arc<dyn Effects>,
        settings: Arc<Settings>,
        context: EventContext,
        reach: Option<&'static Guest>,
    ) -> Self {
        let interrupt_at = interrupt_point(Instant::now(), context.time_left);
        let gate = Gate::new(settings.max_in_flight, interrupt_at);
        let effects = Arc::new(Patient::new(
            effects,
            interrupt_at.checked_sub(CALL_RESERVE).unwrap_or(interrupt_at),
            &context.request_id,
        ));
        HostState {
            gate,
            effects,
            settings,
            context,
            interrupt_at,
            actions: Vec::new(),
            done: Vec::new(),
            limiter: MemoryLimiter::default(),
            last_guest_error: None,
            reach,
            tape: Tape::Off,
        }
    }
}

/// When a guest that started at `start` with `time_left` is interrupted.
fn interrupt_point(start: Instant, time_left: Duration) -> Instant {
    start + time_left.saturating_sub(DEADLINE_MARGIN)
}

/// A store for one event: fuel, the memory limiter and the epoch deadline
/// set. The epoch deadline is counted in [`EPOCH_TICK`]s from now.
pub fn new_store(engine: &Engine, state: HostState) -> wasmtime::Result<Store<HostState>> {
    let ticks = state
        .interrupt_at
        .saturating_duration_since(Instant::now())
        .as_millis()
        .div_ceil(EPOCH_TICK.as_millis())
        .max(1);
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store.set_fuel(FUEL_PER_EVENT)?;
    store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
    store.epoch_deadline_trap();
    Ok(store)
}
