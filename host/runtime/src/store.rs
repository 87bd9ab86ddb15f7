//! The store of one event, built in one place with every limit of
//! [`crate::limits`] set: the guest's fuel and memory ([`Budget`]) and the
//! epoch deadline.

use wasmtime::{Engine, Store};

use crate::clock;

use crate::imports::HostState;
use crate::limits::{Budget, EPOCH_TICK, MemoryLimiter};

/// A store for one event: `budget`'s fuel and memory, and the epoch
/// deadline set. The epoch deadline is counted in [`EPOCH_TICK`]s from now.
pub fn new_store(
    engine: &Engine,
    mut state: HostState,
    budget: Budget,
) -> wasmtime::Result<Store<HostState>> {
    let ticks = state
        .interrupt_at
        .saturating_duration_since(clock::now())
        .as_millis()
        .div_ceil(EPOCH_TICK.as_millis())
        .max(1);
    state.limiter = MemoryLimiter::within(budget.memory);
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store.set_fuel(budget.fuel)?;
    store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
    store.epoch_deadline_trap();
    Ok(store)
}
