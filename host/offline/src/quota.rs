//! AWS's limits in virtual time, for `emmaa-host simulate --quotas`: Lambda's
//! account concurrency, Batch `SubmitJob`'s rate, S3's request rates per
//! prefix, a latency on every call, and the answers AWS gives past them
//! (429 `TooManyRequestsException`, 503 `SlowDown`), retried as the
//! production client retries them: the SDK's standard mode with
//! [`MAX_ATTEMPTS`] attempts, full-jitter exponential backoff from 1 s up to
//! 20 s, and a retry quota of 500 tokens per client (one client per Lambda
//! execution environment; a throttling retry costs 5). Lambda's own retries
//! of a failed asynchronous event (about 1 and 2 minutes later, with the
//! same request id) are modelled too.
//!
//! The clock is the runtime's (`emmaa_runtime::clock`): the simulation runs
//! in virtual time, so a day of waiting takes no time here and the host's
//! deadline passes in the simulation's time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use emmaa_runtime::clock;
use emmaa_runtime::effects::MAX_ATTEMPTS;
use emmaa_runtime::effects::patient::next_fraction;
use emmaa_runtime::effects::{AwsError, ErrorKind};

/// The SDK's retry quota per client, and what one throttling retry costs
/// (aws-smithy-runtime's standard retry strategy).
const RETRY_QUOTA: u32 = 500;
const THROTTLING_RETRY_COST: u32 = 5;
/// The SDK's backoff: the first retry waits up to 1 s, each next one up to
/// twice as long, never more than 20 s (times a random factor in [0, 1)).
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// How long Lambda waits before it retries a failed asynchronous event:
/// about a minute, then two.
const ASYNC_RETRY_DELAY: Duration = Duration::from_secs(60);
/// S3 lists at most this many prefixes per page (each page is a request).
const LIST_PAGE: usize = 1_000;

/// A stretch of the day in which Batch throttles every `SubmitJob`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Storm {
    /// Seconds after the day starts.
    pub from_s: u64,
    pub lasts_s: u64,
}

/// AWS's limits, and the client's retries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    /// Lambda's concurrent executions in the account (1,000 by default).
    pub lambda_concurrency: usize,
    /// Each function's reserved concurrency (the template's
    /// `FunctionConcurrency`): at most this many of its executions at once;
    /// `None`, only the account's limit.
    pub function_concurrency: Option<usize>,
    /// Batch `SubmitJob` per second in the account (50; a burst of as many).
    pub submit_per_second: u32,
    /// S3 GET and LIST per second per prefix (5,500).
    pub s3_reads_per_second: u32,
    /// S3 PUT and DELETE per second per prefix (3,500).
    pub s3_writes_per_second: u32,
    /// Every call's round trip, in milliseconds.
    pub latency_ms: u64,
    /// Attempts per call, the first included (the host's SDK setting; 1
    /// turns the SDK's retries off).
    pub max_attempts: u32,
    /// Lambda's retries of a failed asynchronous event (the template's
    /// `AsyncRetries`, 2 by default).
    pub async_retries: u32,
    /// How long a Batch job runs before the files it writes appear.
    pub job_time_s: u64,
    pub storm: Option<Storm>,
    /// The seed of the backoff's jitter.
    pub seed: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            lambda_concurrency: 1_000,
            function_concurrency: None,
            submit_per_second: 50,
            s3_reads_per_second: 5_500,
            s3_writes_per_second: 3_500,
            latency_ms: 20,
            max_attempts: MAX_ATTEMPTS,
            async_retries: 2,
            job_time_s: 0,
            storm: None,
            seed: 1,
        }
    }
}

/// What a call is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// A synchronous Lambda invocation: a place in the account's concurrency.
    Invoke,
    SubmitJob,
    S3Read,
    S3Write,
    /// Only the latency (Batch `ListJobs`, say).
    Latency,
}

/// What the quotas did to the day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counters {
    /// Calls made (each attempt of each).
    pub calls: usize,
    /// Attempts AWS answered with 429 or 503.
    pub throttled: usize,
    /// Attempts the client made again after one was throttled.
    pub retried: usize,
    /// Calls that were still throttled when the client gave up (attempts or
    /// retry quota spent): the guest got the error.
    pub given_up: usize,
    /// Failed asynchronous events Lambda ran again.
    pub lambda_retries: usize,
    /// The most Lambda executions running at once.
    pub peak_concurrency: usize,
    /// Execution environments started (each with its own client).
    pub environments: usize,
    /// Jobs submitted, and when the last was, in seconds after the start.
    pub submitted: usize,
    pub last_submitted_s: f64,
}

/// Tokens that refill at a rate, up to a burst of one second's worth.
struct TokenBucket {
    per_second: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    fn new(per_second: u32, now: Instant) -> Self {
        TokenBucket {
            per_second: f64::from(per_second),
            tokens: f64::from(per_second),
            refilled_at: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One Lambda execution environment: its SDK client's retry quota.
#[derive(Debug, Clone)]
pub struct Environment {
    function: String,
    retry_tokens: Arc<Mutex<u32>>,
}

impl Environment {
    fn take(&self, cost: u32) -> bool {
        let mut tokens = self
            .retry_tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *tokens >= cost {
            *tokens -= cost;
            true
        } else {
            false
        }
    }

    fn give(&self, tokens: u32) {
        let mut held = self
            .retry_tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *held = (*held + tokens).min(RETRY_QUOTA);
    }
}

struct State {
    buckets: HashMap<(Limit, String), TokenBucket>,
    /// xorshift64*'s state: the jitter, the same for the same seed.
    rng: u64,
    /// Idle environments per function.
    idle: HashMap<String, Vec<Environment>>,
    /// Each function's reserved concurrency, once it runs.
    reserved: HashMap<String, Arc<Semaphore>>,
    counters: Counters,
}

/// The AWS account the simulated day runs in.
pub struct Account {
    pub limits: Limits,
    start: Instant,
    concurrency: Arc<Semaphore>,
    state: Mutex<State>,
}

impl Account {
    /// An account whose day starts now.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Account {
            concurrency: Arc::new(Semaphore::new(limits.lambda_concurrency)),
            state: Mutex::new(State {
                buckets: HashMap::new(),
                rng: limits.seed.max(1),
                idle: HashMap::new(),
                reserved: HashMap::new(),
                counters: Counters::default(),
            }),
            start: clock::now(),
            limits,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Time since the day started.
    pub fn elapsed(&self) -> Duration {
        clock::now().saturating_duration_since(self.start)
    }

    /// The clock of a day that started at `day_start` (seconds since the
    /// epoch), now.
    pub fn clock(&self, day_start: u64) -> u64 {
        day_start + self.elapsed().as_secs()
    }

    pub fn counters(&self) -> Counters {
        self.state().counters.clone()
    }

    /// An idle environment of `function`, or a new one.
    pub fn environment(&self, function: &str) -> Environment {
        let mut state = self.state();
        if let Some(environment) = state.idle.get_mut(function).and_then(Vec::pop) {
            return environment;
        }
        state.counters.environments += 1;
        Environment {
            function: function.to_owned(),
            retry_tokens: Arc::new(Mutex::new(RETRY_QUOTA)),
        }
    }

    /// `environment` is idle again, for the function's next event.
    pub fn release(&self, environment: Environment) {
        let mut state = self.state();
        state
            .idle
            .entry(environment.function.clone())
            .or_default()
            .push(environment);
    }

    /// `function`'s reserved concurrency, when it has one.
    fn reserved(&self, function: &str) -> Option<Arc<Semaphore>> {
        let places = self.limits.function_concurrency?;
        let mut state = self.state();
        Some(
            state
                .reserved
                .entry(function.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(places)))
                .clone(),
        )
    }

    /// A place for an asynchronous event of `function` (a schedule's, an S3
    /// notification, an `Event` invocation): Lambda keeps the event until
    /// the function and the account have one free.
    pub async fn queue_for_concurrency(&self, function: &str) -> Place {
        let closed = |_| unreachable!("the concurrency semaphores are never closed");
        let reserved = match self.reserved(function) {
            Some(places) => Some(places.acquire_owned().await.unwrap_or_else(closed)),
            None => None,
        };
        let account = self
            .concurrency
            .clone()
            .acquire_owned()
            .await
            .unwrap_or_else(closed);
        self.note_concurrency();
        Place {
            account: Some(account),
            _reserved: reserved,
        }
    }

    fn note_concurrency(&self) {
        let running = self.limits.lambda_concurrency - self.concurrency.available_permits();
        let mut state = self.state();
        state.counters.peak_concurrency = state.counters.peak_concurrency.max(running);
    }

    /// Waits `delay` and counts a retry of a failed asynchronous event
    /// (`retry` is 0 for the first).
    pub async fn before_async_retry(&self, retry: u32) {
        self.state().counters.lambda_retries += 1;
        clock::sleep(ASYNC_RETRY_DELAY * (retry + 1)).await;
    }

    /// Whether Lambda retries a failed asynchronous event a `tries`-th time.
    pub fn retries_async(&self, tries: u32) -> bool {
        tries <= self.limits.async_retries
    }

    /// The number of S3 requests a listing of `prefixes` takes.
    pub fn list_pages(prefixes: usize) -> usize {
        prefixes.div_ceil(LIST_PAGE).max(1)
    }

    /// One call counted against `limit` (for S3, the prefix of `key`; for a
    /// synchronous invocation, the function), retried as the SDK retries
    /// it; a synchronous invocation answers its place in the concurrency,
    /// to hold while the function runs.
    pub async fn call(&self, environment: &Environment, limit: Limit, key: &str) -> Result<Place, AwsError> {
        let mut attempts = 0;
        let mut holds_retry_tokens = false;
        loop {
            attempts += 1;
            clock::sleep(Duration::from_millis(self.limits.latency_ms)).await;
            match self.attempt(limit, key) {
                Ok(place) => {
                    if holds_retry_tokens {
                        environment.give(THROTTLING_RETRY_COST);
                    } else {
                        environment.give(1);
                    }
                    if limit == Limit::SubmitJob {
                        let at = self.elapsed().as_secs_f64();
                        let mut state = self.state();
                        state.counters.submitted += 1;
                        state.counters.last_submitted_s = state.counters.last_submitted_s.max(at);
                    }
                    if place.account.is_some() {
                        self.note_concurrency();
                    }
                    return Ok(place);
                }
                Err(throttled) => {
                    let retry =
                        attempts < self.limits.max_attempts && environment.take(THROTTLING_RETRY_COST);
                    let backoff = {
                        let mut state = self.state();
                        if !retry {
                            state.counters.given_up += 1;
                            return Err(throttled);
                        }
                        state.counters.retried += 1;
                        let ceiling = INITIAL_BACKOFF
                            .saturating_mul(1 << (attempts - 1).min(16))
                            .min(MAX_BACKOFF);
                        ceiling.mul_f64(next_fraction(&mut state.rng))
                    };
                    holds_retry_tokens = true;
                    clock::sleep(backoff).await;
                }
            }
        }
    }

    /// One attempt: admitted, or AWS's throttling answer.
    fn attempt(&self, limit: Limit, key: &str) -> Result<Place, AwsError> {
        let now = clock::now();
        let in_storm = self.limits.storm.is_some_and(|storm| {
            let elapsed = self.elapsed().as_secs();
            (storm.from_s..storm.from_s + storm.lasts_s).contains(&elapsed)
        });
        let mut state = self.state();
        state.counters.calls += 1;
        let admitted = match limit {
            Limit::Latency => true,
            Limit::Invoke => {
                drop(state);
                let reserved = match self.reserved(key) {
                    Some(places) => places.try_acquire_owned().map(Some),
                    None => Ok(None),
                };
                return match (reserved, self.concurrency.clone().try_acquire_owned()) {
                    (Ok(reserved), Ok(account)) => Ok(Place {
                        account: Some(account),
                        _reserved: reserved,
                    }),
                    _ => {
                        self.state().counters.throttled += 1;
                        Err(throttled(limit))
                    }
                };
            }
            Limit::SubmitJob if in_storm => false,
            Limit::SubmitJob => {
                let per_second = self.limits.submit_per_second;
                state
                    .buckets
                    .entry((limit, String::new()))
                    .or_insert_with(|| TokenBucket::new(per_second, now))
                    .take(now)
            }
            Limit::S3Read | Limit::S3Write => {
                let per_second = if limit == Limit::S3Read {
                    self.limits.s3_reads_per_second
                } else {
                    self.limits.s3_writes_per_second
                };
                let prefix = key.split_inclusive('/').next().unwrap_or("").to_owned();
                state
                    .buckets
                    .entry((limit, prefix))
                    .or_insert_with(|| TokenBucket::new(per_second, now))
                    .take(now)
            }
        };
        if admitted {
            Ok(Place::default())
        } else {
            state.counters.throttled += 1;
            Err(throttled(limit))
        }
    }
}

/// A function's place in Lambda's concurrency, held while it runs (empty
/// for calls that hold none).
#[derive(Debug, Default)]
pub struct Place {
    account: Option<OwnedSemaphorePermit>,
    _reserved: Option<OwnedSemaphorePermit>,
}

/// AWS's answer past a limit, as the host's AWS backend reports it.
fn throttled(limit: Limit) -> AwsError {
    match limit {
        Limit::Invoke => AwsError::new(
            ErrorKind::Throttled,
            "TooManyRequestsException",
            "Rate Exceeded. (ConcurrentInvocationLimitExceeded)",
        ),
        Limit::S3Read | Limit::S3Write => AwsError::new(
            ErrorKind::Throttled,
            "SlowDown",
            "Please reduce your request rate.",
        ),
        Limit::SubmitJob | Limit::Latency => AwsError::new(
            ErrorKind::Throttled,
            "TooManyRequestsException",
            "Too Many Requests",
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn submit_job_admits_fifty_a_second_after_a_burst_of_fifty() {
        clock::run_virtual(async {
            let account = Account::new(Limits::default());
            let now = clock::now();
            let mut bucket = TokenBucket::new(account.limits.submit_per_second, now);
            assert_eq!((0..60).filter(|_| bucket.take(now)).count(), 50);
            let later = now + Duration::from_millis(100);
            assert_eq!((0..60).filter(|_| bucket.take(later)).count(), 5);
        });
    }

    #[test]
    fn a_throttled_call_is_retried_with_backoff_until_its_attempts_run_out() {
        clock::run_virtual(async {
            let limits = Limits {
                storm: Some(Storm {
                    from_s: 0,
                    lasts_s: 3_600,
                }),
                ..Limits::default()
            };
            let account = Account::new(limits);
            let environment = account.environment("f");
            let started = clock::now();
            let answer = account.call(&environment, Limit::SubmitJob, "").await;
            assert_eq!(
                answer.err().map(|err| err.code),
                Some("TooManyRequestsException".into())
            );
            let counters = account.counters();
            assert_eq!(
                (counters.throttled, counters.retried, counters.given_up),
                (5, 4, 1)
            );
            // Four backoffs of at most 1, 2, 4 and 8 s, and five latencies.
            let waited = clock::now() - started;
            assert!(waited >= Duration::from_millis(100) && waited < Duration::from_millis(15_100));
            // The retries' tokens are spent: 500 - 4 * 5 + (none given back).
            assert_eq!(*environment.retry_tokens.lock().unwrap(), 480);
        });
    }

    #[test]
    fn with_retries_off_the_first_throttle_is_the_answer() {
        clock::run_virtual(async {
            let limits = Limits {
                max_attempts: 1,
                storm: Some(Storm {
                    from_s: 0,
                    lasts_s: 60,
                }),
                ..Limits::default()
            };
            let account = Account::new(limits);
            let environment = account.environment("f");
            assert!(account.call(&environment, Limit::SubmitJob, "").await.is_err());
            assert_eq!(account.counters().retried, 0);
            assert_eq!(account.counters().given_up, 1);
        });
    }

    #[test]
    fn a_synchronous_invocation_past_the_concurrency_is_throttled() {
        clock::run_virtual(async {
            let account = Account::new(Limits {
                lambda_concurrency: 1,
                max_attempts: 2,
                ..Limits::default()
            });
            let environment = account.environment("f");
            let held = account.call(&environment, Limit::Invoke, "g").await.unwrap();
            assert!(held.account.is_some());
            let second = account.call(&environment, Limit::Invoke, "g").await;
            assert_eq!(second.err().map(|err| err.kind), Some(ErrorKind::Throttled));
            assert_eq!(account.counters().peak_concurrency, 1);
            drop(held);
            assert!(account.call(&environment, Limit::Invoke, "g").await.is_ok());
        });
    }

    #[test]
    fn a_function_runs_no_more_than_its_reserved_concurrency() {
        clock::run_virtual(async {
            let account = Account::new(Limits {
                function_concurrency: Some(2),
                max_attempts: 1,
                ..Limits::default()
            });
            let environment = account.environment("caller");
            let first = account.queue_for_concurrency("f").await;
            let second = account.call(&environment, Limit::Invoke, "f").await.unwrap();
            assert!(account.call(&environment, Limit::Invoke, "f").await.is_err());
            assert!(
                account.call(&environment, Limit::Invoke, "g").await.is_ok(),
                "another function's own"
            );
            drop(first);
            // Lambda's queue hands the freed place to the waiting event.
            let third = account.queue_for_concurrency("f").await;
            drop((second, third));
        });
    }

    #[test]
    fn the_jitter_is_the_same_for_the_same_seed() {
        let (mut one, mut two) = (7, 7);
        let first: Vec<f64> = (0..5).map(|_| next_fraction(&mut one)).collect();
        let second: Vec<f64> = (0..5).map(|_| next_fraction(&mut two)).collect();
        assert_eq!(first, second);
        assert!(first.iter().all(|fraction| (0.0..1.0).contains(fraction)));
    }
}
