//! Bounded concurrency: a batch of calls goes through at most `EMMAA_MAX_IN_FLIGHT` at a time, and none starts without time left.

use super::*;

/// Effects whose invocations and submissions take `delay_of(item)` each,
/// counting how many overlap; invocations of `failing` models fail, and
/// with `ledger_denied` every ledger write is refused (a role that
/// predates the ledger), with `ledger_unavailable` every one fails as S3
/// does when it keeps answering 500 past the SDK's retries, and with
/// `take_over_error` every conditional write over an existing claim
/// (`If-Match`: a take-over) fails with it; with `claim_delay` each new
/// claim (`If-None-Match: *`) takes that long, counting how many overlap.
pub(crate) struct Slow {
    inner: emmaa_runtime::effects::local::LocalEffects,
    delay_of: fn(&str) -> Duration,
    failing: &'static [&'static str],
    pub(crate) ledger_denied: bool,
    pub(crate) ledger_unavailable: bool,
    pub(crate) take_over_error: Option<AwsError>,
    pub(crate) claim_delay: Option<Duration>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    claims_in_flight: AtomicUsize,
    most_claims_in_flight: AtomicUsize,
}

impl Slow {
    pub(crate) fn new(
        inner: emmaa_runtime::effects::local::LocalEffects,
        delay_of: fn(&str) -> Duration,
    ) -> Self {
        Slow {
            inner,
            delay_of,
            failing: &[],
            ledger_denied: false,
            ledger_unavailable: false,
            take_over_error: None,
            claim_delay: None,
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            claims_in_flight: AtomicUsize::new(0),
            most_claims_in_flight: AtomicUsize::new(0),
        }
    }

    /// The most calls that were in flight at once.
    pub(crate) fn most_in_flight(&self) -> usize {
        self.most_in_flight.load(Ordering::SeqCst)
    }

    async fn take_time(&self, item: &str) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep((self.delay_of)(item)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl emmaa_runtime::Effects for Slow {
    async fn list_prefixes(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: &str,
    ) -> Result<Vec<String>, AwsError> {
        self.inner.list_prefixes(bucket, prefix, delimiter).await
    }

    async fn get_object(&self, bucket: &str, key: &str, max_size: u64) -> Result<Vec<u8>, AwsError> {
        self.inner.get_object(bucket, key, max_size).await
    }

    async fn invoke(&self, invocation: &Invocation) -> Result<InvocationOutcome, AwsError> {
        self.take_time(&invocation.payload).await;
        if self
            .failing
            .iter()
            .any(|model| invocation.payload.contains(model))
        {
            return Err(AwsError::new(
                ErrorKind::Rejected,
                "Refused",
                "refused by the test",
            ));
        }
        self.inner.invoke(invocation).await
    }

    async fn submit_job(&self, job: &Job) -> Result<String, AwsError> {
        self.take_time(&job.name).await;
        self.inner.submit_job(job).await
    }

    async fn get_object_tagged(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, String)>, AwsError> {
        self.inner.get_object_tagged(bucket, key).await
    }

    async fn put_object_if(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        condition: emmaa_runtime::effects::Condition,
    ) -> Result<String, AwsError> {
        if self.ledger_denied {
            return Err(AwsError::new(ErrorKind::Denied, "AccessDenied", "Access Denied"));
        }
        if let (Some(error), Condition::Matches(_)) = (&self.take_over_error, &condition) {
            return Err(error.clone());
        }
        if self.ledger_unavailable {
            return Err(AwsError::new(
                ErrorKind::Unavailable,
                "InternalError",
                "We encountered an internal error. Please try again.",
            ));
        }
        if let (Some(delay), Condition::Absent) = (self.claim_delay, &condition) {
            let now = self.claims_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_claims_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            self.claims_in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        self.inner.put_object_if(bucket, key, body, condition).await
    }

    async fn delete_object_if(&self, bucket: &str, key: &str, etag: &str) -> Result<(), AwsError> {
        self.inner.delete_object_if(bucket, key, etag).await
    }

    async fn find_jobs(&self, queue: &str, job_name: &str) -> Result<Vec<String>, AwsError> {
        self.inner.find_jobs(queue, job_name).await
    }
}

fn forty_daily_models() -> emmaa_runtime::effects::local::LocalEffects {
    let configs: Vec<(String, &str)> = (0..40)
        .map(|n| (format!("models/m{n:02}/config.json"), DAILY))
        .collect();
    let configs: Vec<(&str, &str)> = configs
        .iter()
        .map(|(key, config)| (key.as_str(), *config))
        .collect();
    bucket(&configs)
}

/// Later models answer sooner: m00 takes 40 ms, m39 takes 1 ms.
fn later_is_sooner(payload: &str) -> Duration {
    let n: u64 = payload
        .split(|c: char| !c.is_ascii_digit())
        .find(|digits| !digits.is_empty())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0);
    Duration::from_millis(40 - n.min(39))
}

/// `update_pipeline` over `effects` with the settings `variables`: the effects, for what
/// they saw, and the run.
async fn update_forty_models(
    effects: Slow,
    variables: &[(&str, &str)],
) -> (Arc<Slow>, emmaa_runtime::GuestRun) {
    let effects = Arc::new(effects);
    let outcome = run_in_time(
        "update_pipeline",
        "{}",
        effects.clone(),
        settings(variables),
        Duration::from_secs(60),
    )
    .await;
    (effects, outcome)
}

#[tokio::test]
async fn the_host_keeps_at_most_max_in_flight_calls_going_and_the_order_of_the_batch() {
    let (effects, outcome) = update_forty_models(
        Slow::new(forty_daily_models(), later_is_sooner),
        &[("EMMAA_MAX_IN_FLIGHT", "4")],
    )
    .await;
    assert_eq!(effects.most_in_flight(), 4);
    let invoked: Vec<Value> = actions(&outcome).as_array().unwrap()[41..].to_vec();
    let expected: Vec<Value> = (0..40)
        .map(|n| invoke("emmaa-model-update", json!({"model": format!("m{n:02}")})))
        .collect();
    assert_eq!(invoked, expected);
    let (effects, _) = update_forty_models(
        Slow::new(forty_daily_models(), later_is_sooner),
        &[("EMMAA_MAX_IN_FLIGHT", "1")],
    )
    .await;
    assert_eq!(effects.most_in_flight(), 1);
}

#[tokio::test]
async fn each_answer_of_a_concurrent_batch_goes_back_to_the_call_that_got_it() {
    // Calls finish in the reverse of their order: an answer matched to the
    // wrong call would blame the wrong models.
    let mut effects = Slow::new(forty_daily_models(), later_is_sooner);
    effects.failing = &["m03", "m37"];
    let (_, outcome) = update_forty_models(effects, &[("EMMAA_MAX_IN_FLIGHT", "16")]).await;
    assert_eq!(
        refused(&outcome)
            .into_iter()
            .map(|(item, _)| item)
            .collect::<Vec<_>>(),
        ["m03", "m37"]
    );
}

/// The ledger's claims take no place at the gate: while
/// `EMMAA_MAX_IN_FLIGHT` calls go out, `LEDGER_OVERLAP` times as many
/// items of the batch are under way, so that their claims overlap the
/// calls instead of waiting behind them.
#[tokio::test]
async fn claims_overlap_the_calls_up_to_the_ledger_overlap() {
    let mut slow = Slow::new(forty_daily_models(), |_| Duration::from_millis(1));
    slow.claim_delay = Some(Duration::from_millis(30));
    let (effects, outcome) =
        update_forty_models(slow, &[("EMMAA_MAX_IN_FLIGHT", "2"), ("EMMAA_LEDGER", "on")]).await;
    assert_eq!(
        outcome.response(),
        Some(&success()),
        "{:?}",
        outcome.error_message()
    );
    assert_eq!(effects.most_in_flight(), 2);
    assert_eq!(
        effects.most_claims_in_flight.load(Ordering::SeqCst),
        2 * emmaa_runtime::limits::LEDGER_OVERLAP
    );
}
