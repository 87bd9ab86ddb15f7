//! The gate of the calls a guest's work makes to AWS: a bound on how many
//! are in flight, and none started without the time it needs.

use std::time::Instant;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::clock;
use crate::effects::{AwsError, ErrorKind};
use crate::limits::CALL_RESERVE;

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
        if clock::now() + CALL_RESERVE > self.interrupt_at {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A call starts with exactly [`CALL_RESERVE`] left before the
    /// interrupt point, and not with a millisecond less (on the virtual
    /// clock, which moves only when every run waits).
    #[test]
    fn a_call_starts_only_with_its_reserve_left() {
        clock::run_virtual(async {
            let exactly = Gate::new(1, clock::now() + CALL_RESERVE);
            assert!(exactly.enter().await.is_ok());
            let short = Gate::new(1, clock::now() + CALL_RESERVE - Duration::from_millis(1));
            let err = short.enter().await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::NotAttempted);
        });
    }

    /// At most `max_in_flight` calls are through at once: the next waits
    /// for a place, and goes through when one is freed.
    #[test]
    fn a_call_waits_for_a_place_when_the_gate_is_full() {
        clock::run_virtual(async {
            let gate = Gate::new(1, clock::now() + Duration::from_secs(60));
            let held = gate.enter().await.unwrap();
            let mut second = std::pin::pin!(gate.enter());
            assert!(
                futures::poll!(second.as_mut()).is_pending(),
                "the one place is taken"
            );
            drop(held);
            assert!(second.await.is_ok(), "freed, it is given to the waiting call");
        });
    }
}
