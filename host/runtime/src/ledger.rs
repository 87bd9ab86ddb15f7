//! The ledger of claims: exactly one Batch job (or invocation) per unit of
//! work, however often AWS delivers the event that asks for it.
//!
//! Before it submits a job or makes an invocation that stands for a unit of
//! work (the guest names it), the host writes a claim: a small JSON object
//! at `{prefix}{function}/{sha256 of the work}.json` in the bucket, with a
//! conditional write (`If-None-Match: *`), so of two deliveries only one
//! gets it. A claim is `pending` (held by a request, until a deadline) or
//! `done` (with the job id). What happens when the claim exists:
//!
//! - done: the item is answered as already done, naming the job;
//! - pending, held by the same request id (Lambda retrying an event whose
//!   runtime died) or past its deadline (its holder died): the holder may
//!   have submitted the job before it died, so the host looks for it (Batch
//!   `ListJobs` by name) and records it; if there is none, it takes the
//!   claim over (`If-Match`) and does the work;
//! - pending, held by another live request: answered as in progress there;
//! - superseded: `deploy redrive` starts the work again (its job failed),
//!   so the claim is free: the host takes it over (`If-Match`) and does the
//!   work, without looking for the job (it would find the failed one).
//!
//! A submission refused for sure releases the claim, so a retry can do it;
//! after a timeout or a 5xx the outcome is unknown, so it stays pending and
//! the next delivery looks for the job first.

use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use crate::action::Action;
use crate::digest::sha256_hex;
use crate::effects::{AwsError, Condition, Effects, ErrorKind, Invocation, InvocationOutcome, Job};
use crate::gate::Gate;

/// How long after its holder's Lambda deadline a pending claim is still
/// respected: room for clocks that disagree.
const DEADLINE_GRACE_MS: u64 = 10_000;

/// Where the claims live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    pub bucket: String,
    /// Ends with `/`; never under `models/` or `results/`.
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Pending,
    Done,
    /// Given up by `deploy redrive`, which starts the work again.
    Superseded,
}

/// What a claim stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum Deed {
    Job { job_name: String, job_queue: String },
    Invocation { function_name: String, payload: String },
}

/// The ledger object of one unit of work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claim {
    state: State,
    work: String,
    request_id: String,
    /// Until when (ms since the epoch) a pending claim's holder may still
    /// be working on it.
    deadline_ms: u64,
    #[serde(flatten)]
    deed: Deed,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    job_id: Option<String>,
    /// The redrive that superseded it (the job id is then the failed job's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    superseded_by: Option<String>,
}

/// The body `deploy redrive` writes over a claim (`held`, its bytes) that is
/// done with the job `job_id`, which failed: superseded by `redrive`, the
/// failed job's id kept. `None` when `held` is not that: not a claim, not
/// done (its holder may still be at it), or done with another job.
pub fn superseded(held: &[u8], redrive: &str, job_id: &str) -> Option<Vec<u8>> {
    let mut claim: Claim = serde_json::from_slice(held).ok()?;
    if claim.state != State::Done || claim.job_id.as_deref() != Some(job_id) {
        return None;
    }
    claim.state = State::Superseded;
    claim.superseded_by = Some(redrive.to_owned());
    serde_json::to_vec_pretty(&claim).ok()
}

/// The request claiming: who, until when, for which function.
pub struct Claimant<'a> {
    pub ledger: &'a Ledger,
    pub effects: &'a dyn Effects,
    /// What the calls to Batch and Lambda (not the ledger's) pass through.
    pub gate: &'a Gate,
    pub function: &'a str,
    pub request_id: &'a str,
    /// The request's deadline by the wall clock, ms since the epoch.
    pub deadline_ms: u64,
    /// The wall clock, ms since the epoch.
    pub now_ms: u64,
    /// Raised just before a call goes out with no claim (the role may not
    /// write the ledger), so a deadline that cuts it short knows a retry
    /// could make it twice.
    pub sent_unclaimed: Option<&'a AtomicBool>,
}

/// How a claim turned out, for the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled<T> {
    /// Done now, under this request's claim.
    Now(T),
    /// Done now without a claim: the role may not write the ledger (a retry
    /// would do it again).
    Unclaimed(T),
    /// Done before, for an earlier delivery: the job id, if it was a job.
    Already(Option<String>),
    /// Another request is doing it: that request's id.
    InProgress(String),
}

/// What the claim step found.
enum Found {
    /// The claim is ours: its ETag.
    Ours(String),
    /// The ledger refused the write (`AccessDenied`): an installation whose
    /// roles predate the ledger. The work is done unclaimed, not lost.
    Unclaimable(AwsError),
    Done(Option<String>),
    Live(String),
    /// A pending claim whose holder died: its ETag and what it held.
    Stale(String, Claim),
    /// A claim a redrive gave up: its ETag.
    Superseded(String),
}

fn is_precondition(err: &AwsError) -> bool {
    matches!(
        err.code.as_str(),
        "PreconditionFailed" | "ConditionalRequestConflict"
    )
}

/// Where the claim of `work` done by `function` lives under `prefix`.
pub fn claim_key(prefix: &str, function: &str, work: &str) -> String {
    // The first 128 bits of the hash: plenty to tell units of work apart.
    let hex = &sha256_hex(work.as_bytes())[..32];
    format!("{prefix}{function}/{hex}.json")
}

impl Claimant<'_> {
    /// Notes a call about to go out with no claim.
    fn note_unclaimed(&self, unclaimed: bool) {
        if let Some(flag) = self.sent_unclaimed.filter(|_| unclaimed) {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn key(&self, work: &str) -> String {
        claim_key(&self.ledger.prefix, self.function, work)
    }

    fn claim(&self, work: &str, state: State, deed: Deed, job_id: Option<String>) -> Vec<u8> {
        let claim = Claim {
            state,
            work: work.to_owned(),
            request_id: self.request_id.to_owned(),
            deadline_ms: self.deadline_ms.saturating_add(DEADLINE_GRACE_MS),
            deed,
            job_id,
            superseded_by: None,
        };
        serde_json::to_vec_pretty(&claim).unwrap_or_default()
    }

    async fn put(&self, key: &str, body: Vec<u8>, condition: Condition) -> Result<String, AwsError> {
        self.effects
            .put_object_if(&self.ledger.bucket, key, body, condition)
            .await
    }

    /// Writes a pending claim for `work`, or finds whose it is.
    async fn find(&self, key: &str, work: &str, deed: &Deed) -> Result<Found, AwsError> {
        // A claim deleted between the write and the read is tried again.
        for _ in 0..3 {
            let pending = self.claim(work, State::Pending, deed.clone(), None);
            match self.put(key, pending, Condition::Absent).await {
                Ok(etag) => return Ok(Found::Ours(etag)),
                Err(err) if is_precondition(&err) => {}
                Err(err) if err.kind == ErrorKind::Denied => return Ok(Found::Unclaimable(err)),
                Err(err) => return Err(claim_failed(key, &err)),
            }
            let Some((bytes, etag)) = self
                .effects
                .get_object_tagged(&self.ledger.bucket, key)
                .await
                .map_err(|err| claim_failed(key, &err))?
            else {
                continue;
            };
            let Ok(held) = serde_json::from_slice::<Claim>(&bytes) else {
                // Not a claim this host wrote: nobody holds it.
                let dead = Claim {
                    state: State::Pending,
                    work: work.to_owned(),
                    request_id: String::new(),
                    deadline_ms: 0,
                    deed: deed.clone(),
                    job_id: None,
                    superseded_by: None,
                };
                return Ok(Found::Stale(etag, dead));
            };
            return Ok(match held.state {
                State::Done => Found::Done(held.job_id),
                State::Pending if held.request_id != self.request_id && held.deadline_ms > self.now_ms => {
                    Found::Live(held.request_id)
                }
                State::Pending => Found::Stale(etag, held),
                State::Superseded => Found::Superseded(etag),
            });
        }
        Err(AwsError::new(
            ErrorKind::Unavailable,
            "ClaimContended",
            format!("the claim {key} kept changing while it was read; the work was not done"),
        ))
    }

    /// Takes over a stale claim; `None` when another request took it first.
    async fn take_over(
        &self,
        key: &str,
        etag: &str,
        work: &str,
        deed: &Deed,
    ) -> Result<Option<String>, AwsError> {
        let pending = self.claim(work, State::Pending, deed.clone(), None);
        match self.put(key, pending, Condition::Matches(etag.to_owned())).await {
            Ok(etag) => Ok(Some(etag)),
            Err(err) if is_precondition(&err) => Ok(None),
            Err(err) => Err(claim_failed(key, &err)),
        }
    }

    /// Marks the claim done; a failure is logged, not returned: the work
    /// went through, and a later delivery looks for the job first.
    async fn mark_done(&self, key: &str, etag: &str, work: &str, deed: Deed, job_id: Option<String>) {
        let done = self.claim(work, State::Done, deed, job_id);
        if let Err(err) = self.put(key, done, Condition::Matches(etag.to_owned())).await {
            tracing::warn!(
                key,
                code = err.code,
                message = err.message,
                "could not mark the claim done"
            );
        }
    }

    /// Releases a claim whose work surely did not happen, so a retry can do it.
    async fn release(&self, key: &str, etag: &str) {
        if let Err(err) = self
            .effects
            .delete_object_if(&self.ledger.bucket, key, etag)
            .await
        {
            tracing::warn!(
                key,
                code = err.code,
                message = err.message,
                "could not release the claim"
            );
        }
    }

    /// Submits `job` under the claim of `work`, and the actions it took.
    pub async fn submit(&self, job: &Job, work: &str) -> (Result<Handled<String>, AwsError>, Vec<Action>) {
        let key = self.key(work);
        let deed = Deed::Job {
            job_name: job.name.clone(),
            job_queue: job.queue.clone(),
        };
        let mut actions = vec![claim_action(&key, work)];
        let etag = match self.find(&key, work, &deed).await {
            Err(err) => return (Err(err), actions),
            Ok(Found::Ours(etag)) => Some(etag),
            Ok(Found::Unclaimable(err)) => unclaimable(&key, &err),
            Ok(Found::Done(job_id)) => return (Ok(Handled::Already(job_id)), actions),
            Ok(Found::Live(request_id)) => return (Ok(Handled::InProgress(request_id)), actions),
            Ok(Found::Stale(etag, held)) => {
                // Its holder may have submitted before it died: look first.
                if let Deed::Job { job_name, job_queue } = &held.deed {
                    let found = self
                        .gate
                        .through(self.effects.find_jobs(job_queue, job_name))
                        .await;
                    match found {
                        Ok(ids) if !ids.is_empty() => {
                            let found = ids.into_iter().next();
                            let deed = held.deed.clone();
                            self.mark_done(&key, &etag, work, deed, found.clone()).await;
                            return (Ok(Handled::Already(found)), actions);
                        }
                        Ok(_) => {}
                        Err(err) => return (Err(err), actions),
                    }
                }
                match self.take_over(&key, &etag, work, &deed).await {
                    Ok(Some(etag)) => Some(etag),
                    Ok(None) => return (Ok(Handled::InProgress("another request".into())), actions),
                    Err(err) => return (Err(err), actions),
                }
            }
            // Its job failed and a redrive starts it again: no look-up,
            // which would find the failed job.
            Ok(Found::Superseded(etag)) => match self.take_over(&key, &etag, work, &deed).await {
                Ok(Some(etag)) => Some(etag),
                Ok(None) => return (Ok(Handled::InProgress("another request".into())), actions),
                Err(err) => return (Err(err), actions),
            },
        };
        actions.push(Action::submit(job));
        self.note_unclaimed(etag.is_none());
        let submitted = self.gate.through(self.effects.submit_job(job)).await;
        match (submitted, etag) {
            (Ok(job_id), Some(etag)) => {
                self.mark_done(&key, &etag, work, deed, Some(job_id.clone()))
                    .await;
                (Ok(Handled::Now(job_id)), actions)
            }
            (Ok(job_id), None) => (Ok(Handled::Unclaimed(job_id)), actions),
            (Err(err), etag) => {
                if let Some(etag) = etag.filter(|_| refused_for_sure(&err)) {
                    self.release(&key, &etag).await;
                }
                (Err(err), actions)
            }
        }
    }

    /// Makes `invocation` under the claim of `work`, and the actions it took.
    pub async fn invoke(
        &self,
        invocation: &Invocation,
        work: &str,
    ) -> (Result<Handled<InvocationOutcome>, AwsError>, Vec<Action>) {
        let key = self.key(work);
        let deed = Deed::Invocation {
            function_name: invocation.function_name.clone(),
            payload: invocation.payload.clone(),
        };
        let mut actions = vec![claim_action(&key, work)];
        let etag = match self.find(&key, work, &deed).await {
            Err(err) => return (Err(err), actions),
            Ok(Found::Ours(etag)) => Some(etag),
            Ok(Found::Unclaimable(err)) => unclaimable(&key, &err),
            Ok(Found::Done(_)) => return (Ok(Handled::Already(None)), actions),
            Ok(Found::Live(request_id)) => return (Ok(Handled::InProgress(request_id)), actions),
            // An invocation leaves nothing to look for: do it again.
            Ok(Found::Stale(etag, _) | Found::Superseded(etag)) => {
                match self.take_over(&key, &etag, work, &deed).await {
                    Ok(Some(etag)) => Some(etag),
                    Ok(None) => return (Ok(Handled::InProgress("another request".into())), actions),
                    Err(err) => return (Err(err), actions),
                }
            }
        };
        actions.push(Action::invoke(invocation));
        self.note_unclaimed(etag.is_none());
        let invoked = self.gate.through(self.effects.invoke(invocation)).await;
        let Some(etag) = etag else {
            return (invoked.map(Handled::Unclaimed), actions);
        };
        match invoked {
            Ok(outcome) if outcome.function_error.is_none() => {
                self.mark_done(&key, &etag, work, deed, None).await;
                (Ok(Handled::Now(outcome)), actions)
            }
            // The function ran and failed: it did what it did; a retry
            // of this event may invoke it again.
            Ok(outcome) => {
                self.release(&key, &etag).await;
                (Ok(Handled::Now(outcome)), actions)
            }
            Err(err) => {
                if refused_for_sure(&err) {
                    self.release(&key, &etag).await;
                }
                (Err(err), actions)
            }
        }
    }
}

/// Says why work goes ahead without a claim; answers no ETag.
fn unclaimable(key: &str, err: &AwsError) -> Option<String> {
    tracing::warn!(
        key,
        code = err.code,
        message = err.message,
        "the ledger may not be written: acting without a claim (a redelivery would act again); \
         allow the role s3:GetObject, s3:PutObject and s3:DeleteObject on the ledger prefix, or set EMMAA_LEDGER=off"
    );
    None
}

/// Whether a failed call surely did nothing (so its claim can go): AWS
/// refused it, or the host never made it. After a timeout or a 5xx the
/// outcome is unknown.
fn refused_for_sure(err: &AwsError) -> bool {
    matches!(
        err.kind,
        ErrorKind::Rejected
            | ErrorKind::NotFound
            | ErrorKind::Denied
            | ErrorKind::NotAttempted
            | ErrorKind::Throttled
    )
}

fn claim_failed(key: &str, err: &AwsError) -> AwsError {
    AwsError::new(
        err.kind,
        err.code.clone(),
        format!(
            "{} (while claiming the work at {key}, so it was not done)",
            err.message
        ),
    )
}

fn claim_action(key: &str, work: &str) -> Action {
    Action::LedgerClaim {
        key: key.to_owned(),
        work: work.to_owned(),
    }
}
