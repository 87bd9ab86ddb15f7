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
