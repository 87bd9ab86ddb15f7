//! Throttling waited out. Past a quota AWS answers 429 or 503 `SlowDown`;
//! the SDK retries up to `MAX_ATTEMPTS` times (about 15 seconds at most),
//! but a day's fan-out can meet a quota for much longer than that: Batch
//! takes 50 `SubmitJob` a second for the whole account. [`Patient`] calls
//! again after a pause while the event has time left, so throttling delays
//! work instead of losing it; the deadline still bounds the wait, and a
//! call still throttled then is answered as not attempted (it surely did
//! not happen), so the host fails the event for Lambda to retry when
//! everything else that went through is claimed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::{AwsError, Condition, Effects, ErrorKind, Invocation, InvocationOutcome, Job};
use crate::clock;

/// The longest pause before a throttled call is made again (the SDK's own
/// longest backoff); each pause is a random part of it, at least a tenth.
pub const MAX_PAUSE: Duration = Duration::from_secs(20);

/// An effects backend whose throttled calls are made again until `until`.
pub struct Patient {
    inner: Arc<dyn Effects>,
    until: Instant,
    /// [`next_fraction`]'s state: the pauses' jitter, seeded by the request id.
    jitter: Mutex<u64>,
    /// How many pauses it made.
    waits: std::sync::atomic::AtomicU32,
}

impl Patient {
    /// Waits out throttling of `inner`'s calls while a pause and a call fit
    /// before `until`.
    pub fn new(inner: Arc<dyn Effects>, until: Instant, request_id: &str) -> Self {
        let digest = Sha256::digest(request_id.as_bytes());
        let seed = u64::from_le_bytes(digest[..8].try_into().unwrap_or([1; 8])).max(1);
        Patient {
            inner,
            until,
            jitter: Mutex::new(seed),
            waits: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// How many times a throttled call was waited out and made again.
    pub fn waits(&self) -> u32 {
        self.waits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The next pause, or `None` when it would not leave time for the call.
    fn pause(&self) -> Option<Duration> {
        let fraction = next_fraction(
            &mut self
                .jitter
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        let pause = MAX_PAUSE.mul_f64(0.1 + 0.9 * fraction);
        (clock::now() + pause < self.until).then_some(pause)
    }

    async fn patiently<R, F>(&self, call: impl Fn() -> F) -> Result<R, AwsError>
    where
        F: Future<Output = Result<R, AwsError>>,
    {
        loop {
            match call().await {
                Err(err) if err.kind == ErrorKind::Throttled => match self.pause() {
                    Some(pause) => {
                        self.waits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        clock::sleep(pause).await;
                    }
                    None => {
                        return Err(AwsError::new(
                            ErrorKind::NotAttempted,
                            "ThrottledUntilDeadline",
                            format!(
                                "not done: still throttled ({}: {}) when too little time was left before the function's deadline",
                                err.code, err.message
                            ),
                        ));
                    }
                },
                answer => return answer,
            }
        }
    }
}

/// A fraction in [0, 1) from xorshift64*: jitter that is the same for the
/// same seed.
pub fn next_fraction(state: &mut u64) -> f64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    let value = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
    (value >> 11) as f64 / (1u64 << 53) as f64
}

// Every call a throttle refused was not made, so making it again is safe
// (the writes are conditional besides).
#[async_trait]
impl Effects for Patient {
    async fn list_prefixes(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: &str,
    ) -> Result<Vec<String>, AwsError> {
        self.patiently(|| self.inner.list_prefixes(bucket, prefix, delimiter))
            .await
    }

    async fn get_object(&self, bucket: &str, key: &str, max_size: u64) -> Result<Vec<u8>, AwsError> {
        self.patiently(|| self.inner.get_object(bucket, key, max_size))
            .await
    }

    async fn invoke(&self, invocation: &Invocation) -> Result<InvocationOutcome, AwsError> {
        self.patiently(|| self.inner.invoke(invocation)).await
    }

    async fn submit_job(&self, job: &Job) -> Result<String, AwsError> {
        self.patiently(|| self.inner.submit_job(job)).await
    }

    async fn get_object_tagged(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, String)>, AwsError> {
        self.patiently(|| self.inner.get_object_tagged(bucket, key)).await
    }

    async fn put_object_if(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        condition: Condition,
    ) -> Result<String, AwsError> {
        self.patiently(|| {
            self.inner
                .put_object_if(bucket, key, body.clone(), condition.clone())
        })
        .await
    }

    async fn delete_object_if(&self, bucket: &str, key: &str, etag: &str) -> Result<(), AwsError> {
        self.patiently(|| self.inner.delete_object_if(bucket, key, etag))
            .await
    }

    async fn find_jobs(&self, queue: &str, job_name: &str) -> Result<Vec<String>, AwsError> {
        self.patiently(|| self.inner.find_jobs(queue, job_name)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A backend that fails the first `failures` calls with an error of `kind`.
    struct Throttling {
        failures: usize,
        kind: ErrorKind,
        calls: AtomicUsize,
    }

    impl Throttling {
        fn answer<R: Default>(&self) -> Result<R, AwsError> {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
                Err(AwsError::new(
                    self.kind,
                    "TooManyRequestsException",
                    "Too Many Requests",
                ))
            } else {
                Ok(R::default())
            }
        }
    }

    #[async_trait]
    impl Effects for Throttling {
        async fn list_prefixes(&self, _: &str, _: &str, _: &str) -> Result<Vec<String>, AwsError> {
            self.answer()
        }
        async fn get_object(&self, _: &str, _: &str, _: u64) -> Result<Vec<u8>, AwsError> {
            self.answer()
        }
        async fn invoke(&self, _: &Invocation) -> Result<InvocationOutcome, AwsError> {
            self.answer::<()>().map(|()| InvocationOutcome {
                status_code: 202,
                payload: String::new(),
                function_error: None,
            })
        }
        async fn submit_job(&self, _: &Job) -> Result<String, AwsError> {
            self.answer()
        }
        async fn get_object_tagged(&self, _: &str, _: &str) -> Result<Option<(Vec<u8>, String)>, AwsError> {
            self.answer()
        }
        async fn put_object_if(
            &self,
            _: &str,
            _: &str,
            _: Vec<u8>,
            _: Condition,
        ) -> Result<String, AwsError> {
            self.answer()
        }
        async fn delete_object_if(&self, _: &str, _: &str, _: &str) -> Result<(), AwsError> {
            self.answer()
        }
        async fn find_jobs(&self, _: &str, _: &str) -> Result<Vec<String>, AwsError> {
            self.answer()
        }
    }

    fn throttling(failures: usize) -> Arc<Throttling> {
        Arc::new(Throttling {
            failures,
            kind: ErrorKind::Throttled,
            calls: AtomicUsize::new(0),
        })
    }

    #[test]
    fn a_throttled_call_is_made_again_after_a_pause_until_it_goes_through() {
        clock::run_virtual(async {
            let inner = throttling(3);
            let patient = Patient::new(inner.clone(), clock::now() + Duration::from_secs(300), "r");
            let started = clock::now();
            assert!(patient.get_object("b", "k", 1).await.is_ok());
            assert_eq!(inner.calls.load(Ordering::SeqCst), 4);
            assert_eq!(patient.waits(), 3, "a pause before each call made again");
            let waited = clock::now() - started;
            assert!(
                waited >= MAX_PAUSE.mul_f64(0.3) && waited <= MAX_PAUSE * 3,
                "{waited:?}"
            );
        });
    }

    #[test]
    fn a_call_still_throttled_at_the_deadline_is_answered_as_not_done() {
        clock::run_virtual(async {
            let inner = throttling(usize::MAX);
            let patient = Patient::new(inner.clone(), clock::now() + Duration::from_secs(60), "r");
            let err = patient.submit_job(&job()).await.unwrap_err();
            assert_eq!(
                (err.kind, err.code.as_str()),
                (ErrorKind::NotAttempted, "ThrottledUntilDeadline")
            );
            assert!(
                err.message.contains("TooManyRequestsException"),
                "{}",
                err.message
            );
            assert!(clock::now() <= patient.until);
            assert!(inner.calls.load(Ordering::SeqCst) >= 3);
        });
    }

    /// A pause is taken only when it ends before the deadline: one that
    /// would end at the very instant is not (the request id seeds the
    /// pauses, so the first one is known).
    #[test]
    fn a_pause_that_would_end_at_the_deadline_is_not_taken() {
        clock::run_virtual(async {
            let first = Patient::new(throttling(0), clock::now() + MAX_PAUSE * 2, "r")
                .pause()
                .unwrap();
            let patient = Patient::new(throttling(1), clock::now() + first, "r");
            let err = patient.get_object("b", "k", 1).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::NotAttempted);
            assert_eq!(patient.waits(), 0);
            let later = Patient::new(throttling(1), clock::now() + first + Duration::from_nanos(1), "r");
            assert!(later.get_object("b", "k", 1).await.is_ok());
            assert_eq!(later.waits(), 1);
        });
    }

    /// The jitter is xorshift64* (Vigna, "An experimental exploration of
    /// Marsaglia's xorshift generators, scrambled", 2016): its first
    /// outputs for two seeds, as the 53-bit integers the fractions are
    /// made of, computed with an independent implementation of the
    /// published algorithm (in Python). The same request id gives the same
    /// pauses, in a replay and in `simulate` alike.
    #[test]
    fn the_jitter_is_xorshift64_star() {
        let vectors = [
            (
                1_u64,
                [
                    2_529_537_253_518_747_u64,
                    6_045_066_965_290_796,
                    6_537_840_858_852_963,
                    2_733_948_884_444_000,
                ],
            ),
            (
                0x0123_4567_89AB_CDEF,
                [
                    4_383_273_046_611_662,
                    7_509_710_896_358_373,
                    4_810_242_163_784_704,
                    3_320_187_174_393_881,
                ],
            ),
        ];
        for (seed, expected) in vectors {
            let mut state = seed;
            let drawn = [(); 4].map(|()| (next_fraction(&mut state) * (1_u64 << 53) as f64) as u64);
            assert_eq!(drawn, expected, "seed {seed:#x}");
        }
    }

    /// Pauses spread over their whole range: 10,000 fractions from one
    /// request's seed fall in each tenth of [0, 1) about as often.
    #[test]
    fn the_jitter_spreads_pauses_over_their_range() {
        let mut state = 1;
        let mut tenths = [0_u32; 10];
        for _ in 0..10_000 {
            let fraction = next_fraction(&mut state);
            assert!((0.0..1.0).contains(&fraction), "{fraction}");
            tenths[(fraction * 10.0) as usize] += 1;
        }
        assert!(tenths.iter().all(|&n| (850..=1150).contains(&n)), "{tenths:?}");
    }

    #[test]
    fn other_errors_are_answered_at_once() {
        clock::run_virtual(async {
            let inner = Arc::new(Throttling {
                failures: 1,
                kind: ErrorKind::Denied,
                calls: AtomicUsize::new(0),
            });
            let patient = Patient::new(inner.clone(), clock::now() + Duration::from_secs(300), "r");
            let started = clock::now();
            let err = patient.find_jobs("q", "j").await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Denied);
            assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
            assert_eq!(clock::now() - started, Duration::ZERO);
            assert_eq!(patient.waits(), 0);
        });
    }

    fn job() -> Job {
        Job {
            name: "m_update_20200204_120000".into(),
            queue: "q".into(),
            definition: "d".into(),
            command: Vec::new(),
            depends_on: Vec::new(),
            work: None,
        }
    }
}
