//! What the ledger's claims cost the daily fan-out: `update_pipeline` over
//! 1,000 daily models with every AWS call (listing, config read, claim,
//! invocation, done) answered after 20 ms, as AWS answers, with the ledger
//! off and on, at the default `EMMAA_MAX_IN_FLIGHT`. Beside it, what the
//! original (one call at a time) would take at the same latency.
//!
//! Run with `cargo bench -p emmaa-runtime --features jit --bench fan_out`; results go in
//! `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use emmaa_runtime::effects::local::{LocalBucket, LocalEffects};
use emmaa_runtime::effects::{AwsError, Condition, Invocation, InvocationOutcome, Job};
use emmaa_runtime::functions::{FUNCTIONS, GUEST_DIR};
use emmaa_runtime::{Effects, EventContext, GuestRuntime, Settings};

const MODELS: usize = 1_000;
const LATENCY: Duration = Duration::from_millis(20);

/// The local backend, with every call answered after [`LATENCY`].
struct Latent {
    inner: LocalEffects,
    calls: AtomicUsize,
}

impl Latent {
    async fn wait(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(LATENCY).await;
    }
}

#[async_trait]
impl Effects for Latent {
    async fn list_prefixes(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: &str,
    ) -> Result<Vec<String>, AwsError> {
        self.wait().await;
        self.inner.list_prefixes(bucket, prefix, delimiter).await
    }

    async fn get_object(&self, bucket: &str, key: &str, max_size: u64) -> Result<Vec<u8>, AwsError> {
        self.wait().await;
        self.inner.get_object(bucket, key, max_size).await
    }

    async fn invoke(&self, invocation: &Invocation) -> Result<InvocationOutcome, AwsError> {
        self.wait().await;
        self.inner.invoke(invocation).await
    }

    async fn submit_job(&self, job: &Job) -> Result<String, AwsError> {
        self.wait().await;
        self.inner.submit_job(job).await
    }

    async fn get_object_tagged(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, String)>, AwsError> {
        self.wait().await;
        self.inner.get_object_tagged(bucket, key).await
    }

    async fn put_object_if(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        condition: Condition,
    ) -> Result<String, AwsError> {
        self.wait().await;
        self.inner.put_object_if(bucket, key, body, condition).await
    }

    async fn delete_object_if(&self, bucket: &str, key: &str, etag: &str) -> Result<(), AwsError> {
        self.wait().await;
        self.inner.delete_object_if(bucket, key, etag).await
    }

    async fn find_jobs(&self, queue: &str, job_name: &str) -> Result<Vec<String>, AwsError> {
        self.wait().await;
        self.inner.find_jobs(queue, job_name).await
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let guest = GuestRuntime::new()
        .unwrap()
        .load(&Path::new(GUEST_DIR).join("update_pipeline.wasm"))
        .unwrap()
        .serving(&FUNCTIONS[0]);
    let objects: BTreeMap<String, Vec<u8>> = (0..MODELS)
        .map(|n| {
            let key = format!("models/model{n:04}/config.json");
            (key, br#"{"run_daily_update": true}"#.to_vec())
        })
        .collect();
    let original = (1 + 2 * MODELS) as u32 * LATENCY;
    println!(
        "update_pipeline over {MODELS} daily models, every call answered after {LATENCY:?}; \
         the original, one call at a time: {:.1?} ({} calls)",
        original,
        1 + 2 * MODELS
    );
    for ledger in ["off", "on"] {
        let mut samples = Vec::new();
        let mut calls = 0;
        for run in 0..3 {
            let settings =
                Settings::from_lookup(|name| (name == "EMMAA_LEDGER").then(|| ledger.to_owned())).unwrap();
            let effects = Arc::new(Latent {
                inner: LocalEffects::new(LocalBucket::Memory(objects.clone())),
                calls: AtomicUsize::new(0),
            });
            let context = EventContext {
                function_name: "emmaa-update-pipeline".into(),
                request_id: format!("bench-{run}"),
                deadline_ms: 0,
                time_left: Duration::from_secs(900),
                now: 1_580_817_600,
            };
            let started = Instant::now();
            let outcome = runtime.block_on(guest.handle("{}", &context, effects.clone(), Arc::new(settings)));
            samples.push(started.elapsed());
            assert_eq!(outcome.status_code(), Some(200), "{:?}", outcome.error_message());
            calls = effects.calls.load(Ordering::Relaxed);
        }
        samples.sort();
        let median = samples[1];
        println!(
            "ledger {ledger:<3}: median {median:>8.2?} (runs {:.2?} .. {:.2?}), {calls} calls, {:.1}x the original",
            samples[0],
            samples[2],
            original.as_secs_f64() / median.as_secs_f64()
        );
    }
}
