//! Every limit a guest runs under, and the per-event store that applies
//! them: fuel, linear memory, instances in the pool, and time (the guest is
//! interrupted, through wasmtime's epochs, a margin before Lambda's
//! deadline). The engine sizes its pool from here; [`new_store`] sets the
//! rest, in one place.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
// tokio's clock: the real one on Lambda, a virtual one in `host simulate
// --quotas`, where the deadline must pass in the simulation's time.
use tokio::time::Instant;
use wasmtime::{Engine, PoolingAllocationConfig, ResourceLimiter, Store};

use crate::action::Action;
use crate::effects::patient::Patient;
use crate::effects::{AwsError, Effects, ErrorKind};
use crate::guests::Guest;
use crate::settings::Settings;
use crate::trace::Tape;

/// The most fuel (about one unit per wasm instruction) one event may burn.
/// Measured: `update_pipeline` burns about 21,000 per model (100,000 models:
/// 2.1 billion), `model_manager_update` about 33,000 per record (60,000
/// records: 2 billion; the most records a 6 MB event can hold, about
/// 140,000, would burn 4.6 billion). Ten billion covers every event Lambda
/// can deliver twice over, and a guest that loops burns it in about a
/// second: a bound on work, where the deadline bounds time.
pub const FUEL_PER_EVENT: u64 = 10_000_000_000;

/// The most linear memory one guest instance may grow to.
pub const MAX_GUEST_MEMORY: usize = 256 << 20;

/// Guest instances alive at once in one host (one per event being handled).
const POOLED_INSTANCES: u32 = 32;

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

/// The gate of the calls a guest's work makes to the services it uses
/// (S3 reads, Lambda, Batch): at most `EMMAA_MAX_IN_FLIGHT` through at once,
/// and none started with less than [`CALL_RESERVE`] left before the
/// interrupt point. The ledger's own reads and writes do not pass it: S3
/// takes thousands a second per prefix, and leaving them out lets a claim
/// and its done mark overlap other items' work instead of holding a place.
pub struct Gate {
    permits: Semaphore,
    interrupt_at: Instant,
}

impl Gate {
    pub fn new(max_in_flight: usize, interrupt_at: Instant) -> Self {
        Gate {
            permits: Semaphore::new(max_in_flight),
            interrupt_at,
        }
    }

    /// A place for one call, or `not-attempted` when the time left before
    /// the interrupt point cannot cover it.
    pub async fn enter(&self) -> Result<SemaphorePermit<'_>, AwsError> {
        let permit = self.permits.acquire().await.map_err(|_| not_attempted())?;
        if Instant::now() + CALL_RESERVE > self.interrupt_at {
            return Err(not_attempted());
        }
        Ok(permit)
    }

    /// Makes `call` once the gate lets it through.
    pub async fn through<R>(&self, call: impl Future<Output = Result<R, AwsError>>) -> Result<R, AwsError> {
        let _place = self.enter().await?;
        call.await
    }
}

/// The answer to a call the host did not start.
pub fn not_attempted() -> AwsError {
    AwsError::new(
        ErrorKind::NotAttempted,
        "NotAttempted",
        "not attempted: too little time was left before the function's deadline",
    )
}

/// The pooling allocator's size, shared by every guest of a host.
pub fn pooling_config() -> PoolingAllocationConfig {
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_component_instances(POOLED_INSTANCES)
        .total_core_instances(POOLED_INSTANCES * 8)
        .total_memories(POOLED_INSTANCES * 2)
        .total_tables(POOLED_INSTANCES * 8)
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

/// What became of one invocation or submission the host made.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// `claimed`: under a claim in the ledger, so a retry does not repeat it.
    Invoked {
        function_name: String,
        payload: String,
        claimed: bool,
    },
    Submitted {
        job_name: String,
        job_id: String,
        claimed: bool,
    },
    /// The invoked function ran and failed; its claim was released, so a
    /// retry of the event invokes it again.
    InvokedFailed { function_name: String, payload: String },
    /// `what` names the call (the job, or the function and payload).
    Failed { what: String, error: AwsError },
}

impl Effect {
    /// Whether it went through without a claim: a retry would repeat it.
    pub fn unclaimed(&self) -> bool {
        matches!(
            self,
            Effect::Invoked { claimed: false, .. } | Effect::Submitted { claimed: false, .. }
        )
    }

    /// Whether the deadline kept it from being made, or from being answered.
    pub fn cut_short(&self) -> bool {
        matches!(self, Effect::Failed { error, .. }
            if error.kind == ErrorKind::NotAttempted || error.code == "DeadlineReached")
    }
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
