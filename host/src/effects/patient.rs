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
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::{AwsError, Condition, Effects, ErrorKind, Invocation, InvocationOutcome, Job};

/// The longest pause before a throttled call is made again (the SDK's own
/// longest backoff); each pause is a random part of it, at least a tenth.
pub const MAX_PAUSE: Duration = Duration::from_secs(20);

/// An effects backend whose throttled calls are made again until `until`.
pub struct Patient {
    inner: Arc<dyn Effects>,
    until: Instant,
    /// xorshift64's state: the pauses' jitter, seeded by the request id.
    jitter: Mutex<u64>,
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
        }
    }

    /// The next pause, or `None` when it would not leave time for the call.
    fn pause(&self) -> Option<Duration> {
        let fraction = {
            let mut state = self
                .jitter
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            (*state >> 11) as f64 / (1u64 << 53) as f64
        };
        let pause = MAX_PAUSE.mul_f64(0.1 + 0.9 * fraction);
        (Instant::now() + pause < self.until).then_some(pause)
    }

    async fn patiently<R, F>(&self, call: impl Fn() -> F) -> Result<R, AwsError>
    where
        F: Future<Output = Result<R, AwsError>>,
    {
        loop {
            match call().await {
                Err(err) if err.kind == ErrorKind::Throttled => match self.pause() {
                    Some(pause) => tokio::time::sleep(pause).await,
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
