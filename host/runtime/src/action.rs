//! The actions a guest asked for, as `emmaa-host replay` prints them: one per S3
//! read or listing, ledger claim, Lambda invocation and Batch submission, in
//! the order the guest asked for them (also when the host performed a batch
//! concurrently).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::effects::{Invocation, Job, invocation_type_name};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op")]
pub enum Action {
    #[serde(rename = "s3.list")]
    S3List {
        bucket: String,
        prefix: String,
        delimiter: String,
    },
    #[serde(rename = "s3.get")]
    S3Get { bucket: String, key: String },
    #[serde(rename = "lambda.invoke")]
    LambdaInvoke {
        function_name: String,
        invocation_type: String,
        /// The payload as JSON, or as a string when the guest sent something
        /// that is not JSON.
        payload: Value,
    },
    #[serde(rename = "batch.submit")]
    BatchSubmit {
        job_name: String,
        job_queue: String,
        job_definition: String,
        command: Vec<String>,
        depends_on: Vec<String>,
    },
    /// A claim on a unit of work in the ledger, before the submission or
    /// invocation it stands for (which follows only if the work is ours).
    #[serde(rename = "ledger.claim")]
    LedgerClaim { key: String, work: String },
}

impl Action {
    pub fn submit(job: &Job) -> Self {
        Action::BatchSubmit {
            job_name: job.name.clone(),
            job_queue: job.queue.clone(),
            job_definition: job.definition.clone(),
            command: job.command.clone(),
            depends_on: job.depends_on.clone(),
        }
    }

    pub fn invoke(invocation: &Invocation) -> Self {
        Action::LambdaInvoke {
            function_name: invocation.function_name.clone(),
            invocation_type: invocation_type_name(invocation.invocation_type).to_owned(),
            payload: serde_json::from_str(&invocation.payload)
                .unwrap_or_else(|_| Value::String(invocation.payload.clone())),
        }
    }
}
