//! What the flight recorder (EMMAA_TRACE_PREFIX) costs one event, on real
//! guests with the local backend: the event handled without recording,
//! then recorded and made into the trace's JSON (what the Lambda host
//! writes, in one S3 PutObject, before it answers), and the trace's size.
//!
//! Run with `cargo bench -p emmaa-runtime --features jit --bench recording`; results go in
//! `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use emmaa_runtime::effects::local::{LocalBucket, LocalEffects};
use emmaa_runtime::functions::{GUEST_DIR, PipelineFunction};
use emmaa_runtime::trace::{Header, Recording, Tape, Trace};
use emmaa_runtime::{EventContext, GuestRuntime, LoadedGuest, Settings};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = GuestRuntime::new().unwrap();
    let settings =
        Arc::new(Settings::from_lookup(|name| (name == "EMMAA_LEDGER").then(|| "off".into())).unwrap());
    let context = EventContext {
        function_name: "bench".into(),
        request_id: "bench".into(),
        deadline_ms: 0,
        time_left: Duration::from_secs(60),
        now: 1_580_817_600,
    };
    let load = |guest: &str| -> LoadedGuest {
        engine
            .load(&Path::new(GUEST_DIR).join(format!("{guest}.wasm")))
            .unwrap()
            .serving(PipelineFunction::by_guest(guest).unwrap())
    };
    // One event handled `runs` times each way: the medians, and the trace.
    let measure = |what: &str,
                   guest: &LoadedGuest,
                   name: &str,
                   event: &str,
                   effects: Arc<LocalEffects>,
                   runs: usize| {
        let plain = || {
            let outcome = runtime.block_on(guest.handle(event, &context, effects.clone(), settings.clone()));
            assert_eq!(outcome.status_code(), Some(200), "{:?}", outcome.error_message());
        };
        let recorded = || {
            let tape = Tape::Recording(Recording::default());
            let (outcome, tape) = runtime.block_on(guest.handle_taped(
                event,
                &context,
                effects.clone(),
                settings.clone(),
                tape,
            ));
            let Tape::Recording(recording) = tape else {
                unreachable!()
            };
            let header = Header {
                function: "bench",
                guest: name,
                component: guest.component.as_deref(),
                budget: guest.budget,
                request_id: "bench",
                deadline_ms: 0,
                time_left_ms: 60_000,
                now: context.now,
                settings: &settings,
                event,
            };
            Trace::new(header, recording, &outcome.answer, outcome.fuel_used).to_json()
        };
        plain();
        let bytes = recorded().len();
        let mut without = Vec::new();
        let mut with = Vec::new();
        // Interleaved, so that both see the same machine.
        for _ in 0..runs {
            let started = Instant::now();
            plain();
            without.push(started.elapsed());
            let started = Instant::now();
            std::hint::black_box(recorded());
            with.push(started.elapsed());
        }
        let (without, with) = (median(without), median(with));
        println!(
            "{what:<44} without {without:>9.1?}   recording {with:>9.1?}   (+{:>8.1?})   trace {bytes:>9} bytes   ({runs} runs)",
            with.saturating_sub(without)
        );
    };

    let empty = Arc::new(LocalEffects::new(LocalBucket::Empty));
    measure(
        "model_updates: one job",
        &load("model_updates"),
        "model_updates",
        r#"{"model": "aml"}"#,
        empty,
        2_000,
    );
    for distinct in [false, true] {
        let objects: BTreeMap<String, Vec<u8>> = (0..1_000)
            .map(|n| {
                let config = if distinct {
                    format!(r#"{{"run_daily_update": true, "name": "model{n:04}", "description": "model {n} of the day"}}"#)
                } else {
                    r#"{"run_daily_update": true}"#.to_owned()
                };
                (format!("models/model{n:04}/config.json"), config.into_bytes())
            })
            .collect();
        let bucket = Arc::new(LocalEffects::new(LocalBucket::Memory(objects)));
        let what = if distinct {
            "update_pipeline: 1,000 models, configs distinct"
        } else {
            "update_pipeline: 1,000 models, configs alike"
        };
        measure(
            what,
            &load("update_pipeline"),
            "update_pipeline",
            "{}",
            bucket,
            30,
        );
    }
}
