//! The S3 reads, Lambda invocations and Batch submissions a guest asks for,
//! behind one trait. The AWS backend (the `emmaa-aws` crate) performs them;
//! [`local::LocalEffects`] reads a directory (or memory) as the bucket and
//! answers the rest with deterministic fake results. [`patient::Patient`]
//! waits out throttling in front of either.

pub mod local;
pub mod patient;

use async_trait::async_trait;

pub use crate::bindings::emmaa::pipeline::batch::Job;
pub use crate::bindings::emmaa::pipeline::errors::{AwsError, ErrorKind};
pub use crate::bindings::emmaa::pipeline::functions::{Invocation, InvocationOutcome, InvocationType};

/// Attempts per AWS call, the first one included: more than the SDK's
/// default of 3, since a daily fan-out meets S3 `SlowDown` and Batch's
/// `SubmitJob` rate limit, and a call given up is a model not updated.
/// (The AWS backend's setting, and `simulate --quotas`' model of it.)
pub const MAX_ATTEMPTS: u32 = 5;

/// The name Lambda and the AWS APIs use for an invocation type.
pub fn invocation_type_name(invocation_type: InvocationType) -> &'static str {
    match invocation_type {
        InvocationType::RequestResponse => "RequestResponse",
        InvocationType::Event => "Event",
    }
}

/// Which AWS account and where, as the AWS CLI's `--profile`, `--region`
/// and `--endpoint-url` name them; what is not given comes from the
/// environment and the files `aws configure` writes (`emmaa-aws` loads it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsTarget {
    pub profile: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// The condition of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Only if there is no object (`If-None-Match: *`).
    Absent,
    /// Only if the object has this ETag (`If-Match`).
    Matches(String),
}

/// One call each; the host batches and bounds them.
#[async_trait]
pub trait Effects: Send + Sync {
    /// Every common prefix under `prefix`, all pages, in S3's order.
    async fn list_prefixes(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: &str,
    ) -> Result<Vec<String>, AwsError>;

    /// The object's bytes; one larger than `max_size` is not read (`too-large`).
    async fn get_object(&self, bucket: &str, key: &str, max_size: u64) -> Result<Vec<u8>, AwsError>;

    async fn invoke(&self, invocation: &Invocation) -> Result<InvocationOutcome, AwsError>;

    /// Submits the job and answers its id.
    async fn submit_job(&self, job: &Job) -> Result<String, AwsError>;

    /// The object and its ETag; `None` when there is none. (The ledger's
    /// read: a claim is small.)
    async fn get_object_tagged(&self, bucket: &str, key: &str)
    -> Result<Option<(Vec<u8>, String)>, AwsError>;

    /// Writes `body` at `key` if `condition` holds, and answers the new
    /// ETag; a condition that does not hold is an error with code
    /// `PreconditionFailed`.
    async fn put_object_if(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        condition: Condition,
    ) -> Result<String, AwsError>;

    /// Deletes the object at `key` if it still has `etag`.
    async fn delete_object_if(&self, bucket: &str, key: &str, etag: &str) -> Result<(), AwsError>;

    /// The ids of the jobs named `job_name` in `queue`.
    async fn find_jobs(&self, queue: &str, job_name: &str) -> Result<Vec<String>, AwsError>;
}

impl AwsError {
    pub fn new(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        AwsError {
            kind,
            code: code.into(),
            message: message.into(),
        }
    }

    /// A conditional write whose condition did not hold.
    pub fn precondition_failed(key: &str) -> Self {
        AwsError::new(
            ErrorKind::Rejected,
            "PreconditionFailed",
            format!("the object at {key} is not in the state the write expected"),
        )
    }

    /// An object of `size` bytes that is not read, being over `max_size`.
    pub fn too_large(bucket: &str, key: &str, size: u64, max_size: u64) -> Self {
        AwsError::new(
            ErrorKind::TooLarge,
            "TooLarge",
            format!(
                "s3://{bucket}/{key} is {size} bytes, more than the {max_size} the handler reads; it was not read"
            ),
        )
    }
}
