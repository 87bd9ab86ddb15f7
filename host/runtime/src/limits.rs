//! Every limit a guest runs under: fuel, linear memory, instances in the
//! pool, and time (the guest is interrupted, through wasmtime's epochs, a
//! margin before Lambda's deadline). The engine sizes its pool from here;
//! the store module's `new_store` sets the rest on each event's store.

use std::time::Duration;

use wasmtime::{Engine, PoolingAllocationConfig, ResourceLimiter};

/// The most fuel (about one unit per wasm instruction) one event may burn.
/// Measured: `update_pipeline` burns about 21,000 per model (100,000 models:
/// 2.1 billion), `model_manager_update` about 33,000 per record (60,000
/// records: 2 billion; the most records a 6 MB event can hold, about
/// 140,000, would burn 4.6 billion). Ten billion covers every event Lambda
/// can deliver twice over, and a guest that loops burns it in about a
/// second: a bound on work, where the deadline bounds time.
pub const FUEL_PER_EVENT: u64 = 10_000_000_000;

/// The deepest an event's JSON may nest (arrays and objects). The host
/// refuses a deeper event as not JSON before the guest sees it, so every
/// event a guest is given parses there too (`serde_json` stops at 128, and
/// a guest's stack is smaller than the host's): one limit, one error kind.
/// No AWS event nests past 10.
pub const MAX_EVENT_DEPTH: usize = 64;

/// The most linear memory one guest instance may grow to.
pub const MAX_GUEST_MEMORY: usize = 256 << 20;

/// Guest instances alive at once in one host (one per event being handled).
pub const POOLED_INSTANCES: u32 = 32;

/// Core (module) instances the pool allows each guest instance: a Rust
/// guest instantiates 3 core modules, a Python one (componentize-py's
/// CPython, its libraries and adapters) 14, so that 32 Python events fit
/// at once. Core instances are only counted: their memories and tables,
/// which the pool reserves, are one memory and two tables either way.
pub const CORE_INSTANCES_PER_GUEST: u32 = 16;

/// Linear memories the pool allows each guest instance (every guest so
/// far has one).
pub const MEMORIES_PER_GUEST: u32 = 2;

/// Tables the pool allows each guest instance (Rust and Python guests have
/// two).
pub const TABLES_PER_GUEST: u32 = 8;

/// How often the engine's epoch advances: the granularity of the deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How long before Lambda's deadline the guest is interrupted: time for the
/// host to build the answer from what went through and for the runtime to
/// send it.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(1_000);

/// The least time an AWS call must have before the interrupt point for the
/// host to start it; a call it does not start is answered `not-attempted`.
pub const CALL_RESERVE: Duration = Duration::from_millis(500);

/// How many more calls than `EMMAA_MAX_IN_FLIGHT` a batch keeps going when
/// the ledger's claims are among them: claims do not count against the
/// bound (see [`Gate`]), so they overlap the work they guard.
pub const LEDGER_OVERLAP: usize = 4;

/// The pooling allocator's size, shared by every guest of a host.
pub fn pooling_config() -> PoolingAllocationConfig {
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_component_instances(POOLED_INSTANCES)
        .total_core_instances(POOLED_INSTANCES * CORE_INSTANCES_PER_GUEST)
        .total_memories(POOLED_INSTANCES * MEMORIES_PER_GUEST)
        .total_tables(POOLED_INSTANCES * TABLES_PER_GUEST)
        // Each guest within its share, checked when it is loaded: a larger
        // component is refused then, instead of taking other events' room.
        .max_core_instances_per_component(CORE_INSTANCES_PER_GUEST)
        .max_memories_per_component(MEMORIES_PER_GUEST)
        .max_tables_per_component(TABLES_PER_GUEST)
        // One async stack per instance (the default, 1,000, costs the cold
        // start a guard-page `mprotect` each).
        .total_stacks(POOLED_INSTANCES)
        .max_memory_size(MAX_GUEST_MEMORY);
    pooling
}

/// Starts the thread that advances `engine`'s epoch every [`EPOCH_TICK`];
/// it ends when the engine is dropped.
pub fn start_epoch_ticker(engine: &Engine) {
    let engine = engine.weak();
    std::thread::spawn(move || {
        while let Some(engine) = engine.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(EPOCH_TICK);
        }
    });
}

/// Refuses memory growth past [`MAX_GUEST_MEMORY`] (the guest's
/// `memory.grow` fails, as WebAssembly has it) and remembers that it did,
/// so the trap that usually follows is reported as what it is.
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    /// The size the guest asked for when it was refused.
    pub refused: Option<usize>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_GUEST_MEMORY {
            self.refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}
