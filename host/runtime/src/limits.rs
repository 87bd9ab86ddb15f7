//! Every limit a guest runs under: fuel, linear memory, instances in the
//! pool, and time (the guest is interrupted, through wasmtime's epochs, a
//! margin before Lambda's deadline). The engine sizes its pool from here;
//! the store module's `new_store` sets the rest on each event's store.

use std::time::Duration;

use wasmtime::{Engine, PoolingAllocationConfig, ResourceLimiter};

use crate::mark::Language;

/// The most fuel (about one unit per wasm instruction) one event of a Rust
/// guest may burn. Measured: `update_pipeline` burns about 21,000 per model
/// (100,000 models: 2.1 billion), `model_manager_update` about 33,000 per
/// record (60,000 records: 2 billion), `after_update` about 97,000 per
/// record: the largest event Lambda can deliver to it (6 MB, 77,500
/// records) burns 7.5 billion, the most of any guest. A guest that loops
/// burns ten billion in a few seconds: a bound on work, where the deadline
/// bounds time.
pub const FUEL_PER_EVENT: u64 = 10_000_000_000;

/// The deepest an event's JSON may nest (arrays and objects). The host
/// refuses a deeper event as not JSON before the guest sees it, so every
/// event a guest is given parses there too (`serde_json` stops at 128, and
/// a guest's stack is smaller than the host's): one limit, one error kind.
/// No AWS event nests past 10.
pub const MAX_EVENT_DEPTH: usize = 64;

/// The most linear memory one instance of a Rust guest may grow to. The
/// largest `after_update` event (77,500 records) peaks at 273 MiB; 100,000
/// models in `update_pipeline` need far less.
pub const MAX_GUEST_MEMORY: usize = 384 << 20;

/// The most fuel one event of a Python guest may burn. CPython interprets
/// the handler, so each of its steps is many wasm instructions: `after_update`
/// burns about 1.8 million a record (19 times the Rust build), and the
/// largest event Lambda can deliver to it 140 billion; this is that twice
/// over. A Python loop burns it within about a minute (a spinning probe
/// burns a billion units in well under a second); the deadline bounds time.
pub const PYTHON_FUEL_PER_EVENT: u64 = 300_000_000_000;

/// The most linear memory one instance of a Python guest may grow to:
/// CPython's heap starts at 12.4 MiB, and the largest `after_update` event
/// peaks at 294 MiB.
pub const PYTHON_GUEST_MEMORY: usize = 512 << 20;

/// What a Lambda function's memory keeps for the host beside the guest
/// and its component file: the bootstrap peaks at about 21 MB resident
/// (docs/benchmarks.md), the rest is room for the AWS clients' buffers.
pub const HOST_MEMORY_RESERVE: usize = 64 << 20;

/// The fuel and memory one event of a guest may use: set per guest, from
/// the language its component is marked with (`crate::mark`), since what
/// a handler costs depends on the runtime that interprets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Budget {
    /// Fuel: about one unit per wasm instruction.
    pub fuel: u64,
    /// Linear memory, in bytes.
    pub memory: usize,
}

impl Budget {
    /// A Rust guest's.
    pub const RUST: Budget = Budget {
        fuel: FUEL_PER_EVENT,
        memory: MAX_GUEST_MEMORY,
    };

    /// A Python guest's.
    pub const PYTHON: Budget = Budget {
        fuel: PYTHON_FUEL_PER_EVENT,
        memory: PYTHON_GUEST_MEMORY,
    };

    /// The budget of a guest written in `language`.
    pub fn of(language: Language) -> Budget {
        match language {
            Language::Rust => Budget::RUST,
            Language::Python => Budget::PYTHON,
        }
    }

    /// This budget within a Lambda function of `function_bytes` of memory
    /// (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`) whose component file is
    /// `component_bytes`: the guest's memory at most what the function has
    /// less [`HOST_MEMORY_RESERVE`] and the component, so that a guest
    /// growing past it is answered `out-of-memory` instead of Lambda
    /// killing the process for the whole function's memory.
    pub fn within_function(self, function_bytes: usize, component_bytes: usize) -> Budget {
        let room = function_bytes
            .saturating_sub(HOST_MEMORY_RESERVE)
            .saturating_sub(component_bytes);
        Budget {
            memory: self.memory.min(room),
            ..self
        }
    }

    /// The largest memory of any guest's: what the pool reserves for each
    /// instance's linear memory (address space; pages are touched only as
    /// a guest grows into them).
    pub const fn largest_memory() -> usize {
        if Budget::PYTHON.memory > Budget::RUST.memory {
            Budget::PYTHON.memory
        } else {
            Budget::RUST.memory
        }
    }
}

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
        .max_memory_size(Budget::largest_memory());
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

/// Refuses memory growth past the guest's budget, its memories counted
/// together (the guest's `memory.grow` fails, as WebAssembly has it), and
/// remembers that it did, so the trap that usually follows is reported as
/// what it is; keeps the most memory the guest had.
#[derive(Debug)]
pub struct MemoryLimiter {
    /// The most linear memory the guest may have, in bytes.
    pub limit: usize,
    /// The size the guest asked for when it was refused: every memory's,
    /// the growth included.
    pub refused: Option<usize>,
    /// The linear memory the guest has, in bytes, every memory's.
    pub total: usize,
    /// The most linear memory the guest had at once, in bytes.
    pub peak: usize,
    /// The last growth allowed, and the peak before it, until it is
    /// given.
    growing: usize,
    peak_before: usize,
}

impl MemoryLimiter {
    /// A limiter allowing `limit` bytes of linear memory.
    pub fn within(limit: usize) -> Self {
        MemoryLimiter {
            limit,
            refused: None,
            total: 0,
            peak: 0,
            growing: 0,
            peak_before: 0,
        }
    }
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        MemoryLimiter::within(Budget::RUST.memory)
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let asked = self.total.saturating_add(desired.saturating_sub(current));
        if asked > self.limit {
            self.refused = Some(asked);
            return Ok(false);
        }
        self.growing = asked - self.total;
        self.peak_before = self.peak;
        self.total = asked;
        self.peak = self.peak.max(asked);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // Allowed here but not given (the pool's own bound, or the
        // memory's declared maximum): the growth is not the guest's memory.
        self.total -= std::mem::take(&mut self.growing);
        self.peak = self.peak_before;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_gets_no_more_memory_than_its_function_has_beside_the_host() {
        let mib = |n: usize| n << 20;
        // The template's default, 256 MB: a Rust guest gets what is left.
        assert_eq!(Budget::RUST.within_function(mib(256), mib(1)).memory, mib(191));
        // A Python guest, its 37 MB (35.3 MiB) component counted.
        assert_eq!(
            Budget::PYTHON.within_function(mib(256), 37_009_120).memory >> 20,
            156
        );
        // A large function: the language's own limit.
        assert_eq!(
            Budget::PYTHON.within_function(mib(2048), 37_009_120),
            Budget::PYTHON
        );
        assert_eq!(Budget::RUST.within_function(mib(10), mib(1)).memory, 0);
        assert_eq!(Budget::RUST.within_function(mib(128), 0).fuel, Budget::RUST.fuel);
    }

    #[test]
    fn a_guests_memories_are_counted_together_against_its_limit() {
        let mut limiter = MemoryLimiter::within(100);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(
            limiter.memory_growing(0, 30, None).unwrap(),
            "a second memory: 90 in all"
        );
        assert!(!limiter.memory_growing(30, 50, None).unwrap(), "110 in all");
        assert_eq!(limiter.refused, Some(110));
        assert!(limiter.memory_growing(60, 70, None).unwrap(), "100 in all");
        assert_eq!((limiter.total, limiter.peak), (100, 100));
    }

    #[test]
    fn a_growth_allowed_but_not_given_is_not_counted() {
        let mut limiter = MemoryLimiter::within(100);
        assert!(limiter.memory_growing(0, 40, None).unwrap());
        assert!(limiter.memory_growing(40, 90, None).unwrap());
        limiter
            .memory_grow_failed(wasmtime::Error::msg("the pool's slot is full"))
            .unwrap();
        assert_eq!((limiter.total, limiter.peak), (40, 40));
        assert!(
            limiter.memory_growing(40, 100, None).unwrap(),
            "the room is still there"
        );
    }
}
