//! A guest, linked and pre-instantiated ([`LoadedGuest`]), and one event
//! through it: the event checked at the edge (size, JSON), a fresh store
//! with every limit set, the guest's requests performed through an
//! [`Effects`] backend and recorded in the order it made them, and its
//! answer, or a typed failure, salvaged into a partial answer when some of
//! its calls had already gone through.

use std::sync::Arc;

use serde_json::Value;
use wasmtime::Store;

use crate::action::Action;
use crate::answer::{Answer, Failure, MAX_EVENT_BYTES, conclude};
use crate::bindings::{Context, HandlerPre};
use crate::context::EventContext;
use crate::effects::Effects;
use crate::functions::PipelineFunction;
use crate::imports::HostState;
use crate::limits::{Budget, DEADLINE_MARGIN, MAX_EVENT_DEPTH};
use crate::settings::Settings;
use crate::store::new_store;
use crate::trace::Tape;

/// What the guest answered, and what it asked the host to do.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestRun {
    pub answer: Answer,
    pub actions: Vec<Action>,
    /// The places in `actions` of calls the host did not make: too little
    /// time was left before the deadline (`not-attempted`).
    pub not_attempted: Vec<usize>,
    /// The fuel the guest burned (about one unit per wasm instruction).
    pub fuel_used: u64,
    /// The most linear memory the guest had at once, in bytes (0 when it
    /// never started).
    pub memory_peak: usize,
    /// How many times a throttled call was waited out and made again.
    pub throttle_waits: u32,
}

impl GuestRun {
    /// The answer's `statusCode` (200, 207), when there is an answer.
    pub fn status_code(&self) -> Option<u64> {
        self.answer.status_code()
    }

    /// The answer Lambda returns, when there is one.
    pub fn response(&self) -> Option<&Value> {
        self.answer.response()
    }

    /// What went wrong, in words, when something did.
    pub fn error_message(&self) -> Option<String> {
        self.answer.failure().map(ToString::to_string)
    }

    fn refused_by_host(failure: Failure) -> Self {
        GuestRun {
            answer: Answer::Failed(failure),
            actions: Vec::new(),
            not_attempted: Vec::new(),
            fuel_used: 0,
            memory_peak: 0,
            throttle_waits: 0,
        }
    }
}

/// Refuses an event over Lambda's payload limit, before reading it, or one
/// that is not JSON, or nests deeper than [`MAX_EVENT_DEPTH`].
pub fn check_event(event: &str) -> Result<(), Failure> {
    if event.len() > MAX_EVENT_BYTES {
        return Err(Failure::EventTooLarge { size: event.len() });
    }
    if let Some(at) = too_deep(event.as_bytes()) {
        return Err(Failure::EventNotJson(format!(
            "it nests deeper than {MAX_EVENT_DEPTH} arrays and objects (at byte {at})"
        )));
    }
    // Parsed whole, as a guest parses it: a number out of range or a lone
    // surrogate escape is refused here, not by one guest and not another.
    serde_json::from_str::<Value>(event).map_err(|err| Failure::EventNotJson(err.to_string()))?;
    Ok(())
}

/// Where `json` first opens its `MAX_EVENT_DEPTH + 1`-th level, if it does:
/// brackets counted outside strings.
fn too_deep(json: &[u8]) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (at, byte) in json.iter().enumerate() {
        match (in_string, escaped, byte) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'[' | b'{') => {
                depth += 1;
                if depth > MAX_EVENT_DEPTH {
                    return Some(at);
                }
            }
            (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
            (false, _, _) => {}
        }
    }
    None
}

/// A guest, linked and pre-instantiated; cheap to run once per event.
#[derive(Clone)]
pub struct LoadedGuest {
    pre: HandlerPre<HostState>,
    /// The function it serves, whose reach bounds its calls; with none,
    /// every call is refused.
    function: Option<&'static PipelineFunction>,
    /// `sha256:<hex>` of the component's `.wasm`, when known: what a trace
    /// records, and a replay of it compares.
    pub component: Option<String>,
    /// The fuel and memory each event may use.
    pub budget: Budget,
}

impl LoadedGuest {
    /// A linked guest, serving no function yet.
    pub(crate) fn new(pre: HandlerPre<HostState>) -> Self {
        LoadedGuest {
            pre,
            function: None,
            component: None,
            budget: Budget::RUST,
        }
    }

    /// The guest, serving `function` and allowed its reach.
    pub fn serving(mut self, function: &'static PipelineFunction) -> Self {
        self.function = Some(function);
        self
    }

    /// The function it serves, if it was given one.
    pub fn function(&self) -> Option<&'static PipelineFunction> {
        self.function
    }

    /// The guest, known to be the component whose `.wasm` has `hash`.
    pub fn with_component_hash(mut self, hash: Option<String>) -> Self {
        self.component = hash;
        self
    }

    /// The guest, given `budget` for each event.
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// Runs the guest on `event` (a JSON document).
    pub async fn handle(
        &self,
        event: &str,
        context: &EventContext,
        effects: Arc<dyn Effects>,
        settings: Arc<Settings>,
    ) -> GuestRun {
        self.handle_taped(event, context, effects, settings, Tape::Off)
            .await
            .0
    }

    /// As [`LoadedGuest::handle`], with the calls recorded
    /// ([`Tape::Recording`]) or answered from a trace ([`Tape::Playing`]);
    /// answers the tape as the run left it.
    pub async fn handle_taped(
        &self,
        event: &str,
        context: &EventContext,
        effects: Arc<dyn Effects>,
        settings: Arc<Settings>,
        tape: Tape,
    ) -> (GuestRun, Tape) {
        if let Err(failure) = check_event(event) {
            return (GuestRun::refused_by_host(failure), tape);
        }
        let mut state = HostState::new(effects, settings, context.clone(), self.function);
        if let Tape::Playing(player) = &tape {
            let budget = player.recorded_time_left().saturating_sub(DEADLINE_MARGIN);
            state.wasi.set_budget(budget);
        }
        state.tape = tape;
        let mut store = match new_store(self.pre.engine(), state, self.budget) {
            Ok(store) => store,
            Err(err) => {
                let failure = Failure::NotInstantiated(format!("{err:#}"));
                return (GuestRun::refused_by_host(failure), Tape::Off);
            }
        };
        let mut answer = self.call(&mut store, event, context).await;
        store.data_mut().wasi.finish();
        let fuel_used = self
            .budget
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or_default());
        let state = store.into_data();
        if let Tape::Playing(player) = &state.tape {
            // The recorded guest was stopped by its deadline after its last
            // call; this one, answered at once, would have run on.
            if player.stopped() && player.all_made() && answer.is_ok() {
                answer = Err(Failure::Deadline);
            }
        }
        let outcome = GuestRun {
            answer: conclude(answer, &state.done),
            actions: state.actions,
            not_attempted: state.not_attempted,
            fuel_used,
            memory_peak: state.limiter.peak,
            throttle_waits: state.patience.waits(),
        };
        (outcome, state.tape)
    }

    async fn call(
        &self,
        store: &mut Store<HostState>,
        event: &str,
        context: &EventContext,
    ) -> Result<Value, Failure> {
        let handler = self.pre.instantiate_async(&mut *store).await.map_err(|err| {
            match err.downcast_ref::<wasmtime::Trap>() {
                // The deadline (or the fuel) can run out while the guest's
                // start-up code runs: that is the deadline, not a broken
                // component.
                Some(wasmtime::Trap::Interrupt | wasmtime::Trap::OutOfFuel) => {
                    Failure::from_trap(&err, self.budget, None, None)
                }
                // Its initial memory is more than its budget allows (a
                // function with too little memory for its guest).
                _ if store.data().limiter.refused.is_some() => {
                    Failure::from_trap(&err, self.budget, store.data().limiter.refused, None)
                }
                _ => Failure::NotInstantiated(err.root_cause().to_string()),
            }
        })?;
        let guest_context = Context {
            function_name: context.function_name.clone(),
            request_id: context.request_id.clone(),
            deadline_ms: context.deadline_ms,
        };
        let answer = match handler.call_handle(&mut *store, event, &guest_context).await {
            Ok(answer) => answer.map_err(Failure::Refused)?,
            Err(err) => {
                let state = store.data_mut();
                state.wasi.finish();
                let last_error = state
                    .last_guest_error
                    .take()
                    .or_else(|| state.wasi.last_error_line().map(str::to_owned));
                let memory_refused = state.limiter.refused;
                return Err(Failure::from_trap(&err, self.budget, memory_refused, last_error));
            }
        };
        serde_json::from_str(&answer).map_err(|err| Failure::BadAnswer {
            error: err.to_string(),
            answer: answer.chars().take(200).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json refuses as a guest parses the event, the host refuses
    /// first: every guest, in any language, gets only events it can read
    /// alike.
    #[test]
    fn an_event_a_guest_could_not_read_as_json_is_refused_before_it() {
        for event in [
            r#"{"model": "aml", "x": 1e400}"#,
            r#"{"model": "aml", "x": "\ud800"}"#,
            r#"{"model": "\udc00"}"#,
            &format!("{{\"model\": {}}}", "9".repeat(400)),
        ] {
            assert!(
                matches!(check_event(event), Err(Failure::EventNotJson(_))),
                "{event}"
            );
        }
        assert_eq!(check_event(r#"{"model": "aml", "x": 1e300, "y": -0}"#), Ok(()));
    }
}
