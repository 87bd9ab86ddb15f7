//! The actions a guest asked for, as `host replay` prints them: one per S3
//! read or listing, Lambda invocation and Batch submission, in the order the
//! guest asked for them (also when the host performed a batch concurrently).

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize)]
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
}
