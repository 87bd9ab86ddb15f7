//! The AWS backend: S3, Lambda and Batch through the AWS SDK, configured by
//! the standard chain (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL[_S3|_LAMBDA|_BATCH]`)
//! or, on the command line, by the AWS CLI's flags ([`AwsTarget`]).
//! Throttling and transient failures are retried with exponential backoff by
//! the SDK's standard retry mode, up to [`MAX_ATTEMPTS`]; every call has a
//! timeout; what still fails reaches the guest as a typed [`AwsError`] it
//! can report per model.

use std::error::Error as StdError;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_sdk_batch::types::{ContainerOverrides, JobDependency};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use emmaa_runtime::effects::{
    AwsError, Condition, Effects, ErrorKind, Invocation, InvocationOutcome, InvocationType, Job,
};

pub use emmaa_runtime::effects::MAX_ATTEMPTS;

/// How long a connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one attempt of an S3 or Batch call may take: far more than
/// either takes, little enough that a silent endpoint is retried in time.
pub const CALL_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one attempt of a Lambda invocation may take. A synchronous
/// invocation waits for the invoked function, which may run up to Lambda's
/// 15-minute limit: giving up sooner would retry, and so repeat, a call that
/// is still running. (The caller's own deadline still cuts it short.)
pub const INVOKE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15 * 60 + 10);

pub use emmaa_runtime::effects::AwsTarget;

/// The SDK's configuration loader for `target`'s account. A profile named
/// on the command line gives the credentials, as for the AWS CLI (the SDK's
/// own chain would take keys exported in the environment first).
pub fn config_loader(target: &AwsTarget) -> ConfigLoader {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = &target.profile {
        loader = loader.profile_name(profile).credentials_provider(
            aws_config::profile::ProfileFileCredentialsProvider::builder()
                .profile_name(profile)
                .build(),
        );
    }
    if let Some(region) = &target.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &target.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader
}

pub struct AwsEffects {
    s3: aws_sdk_s3::Client,
    lambda: aws_sdk_lambda::Client,
    batch: aws_sdk_batch::Client,
}

impl AwsEffects {
    /// Clients configured from the environment, as on Lambda.
    pub async fn from_env() -> Self {
        Self::from_loader(aws_config::defaults(BehaviorVersion::latest())).await
    }

    /// Clients for `target`'s account, with the production retries and timeouts.
    pub async fn for_target(target: &AwsTarget) -> Self {
        Self::from_loader(config_loader(target)).await
    }

    /// Clients configured by `loader` (the environment, or a test's
    /// endpoint and credentials) with the production retries and timeouts.
    pub async fn from_loader(loader: ConfigLoader) -> Self {
        let config = loader
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(timeouts(CALL_ATTEMPT_TIMEOUT))
            .load()
            .await;
        Self::new(&config)
    }

    /// Clients for `config` as it is; `from_loader` adds production's
    /// retries and timeouts.
    pub fn new(config: &SdkConfig) -> Self {
        // A custom S3 endpoint (moto, MinIO) serves buckets by path, not by
        // host name; AWS itself gets its default addressing.
        let custom_s3_endpoint = config.endpoint_url().is_some()
            || ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
                .iter()
                .any(|variable| std::env::var_os(variable).is_some_and(|value| !value.is_empty()));
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(custom_s3_endpoint)
            .build();
        AwsEffects {
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            lambda: aws_sdk_lambda::Client::from_conf(
                aws_sdk_lambda::config::Builder::from(config)
                    .timeout_config(timeouts(INVOKE_ATTEMPT_TIMEOUT))
                    .build(),
            ),
            batch: aws_sdk_batch::Client::new(config),
        }
    }
}

/// The bytes of an object's body.
async fn read_body(body: ByteStream, bucket: &str, key: &str) -> Result<Vec<u8>, AwsError> {
    let body = body.collect().await.map_err(|err| {
        AwsError::new(
            ErrorKind::Unavailable,
            "ReadBody",
            format!("reading s3://{bucket}/{key}: {err}"),
        )
    })?;
    Ok(body.into_bytes().to_vec())
}

/// The timeouts of every call: a connection, and one attempt.
fn timeouts(attempt: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(attempt)
        .build()
}

/// The kind of a service error, from its code and HTTP status.
fn kind_of(code: &str, status: u16) -> ErrorKind {
    match code {
        "NoSuchKey" | "NoSuchBucket" | "NotFound" | "ResourceNotFoundException" => ErrorKind::NotFound,
        "AccessDenied"
        | "AccessDeniedException"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId" => ErrorKind::Denied,
        "SlowDown"
        | "Throttling"
        | "ThrottlingException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded" => ErrorKind::Throttled,
        _ if status == 404 => ErrorKind::NotFound,
        _ if status == 401 || status == 403 => ErrorKind::Denied,
        _ if status == 429 => ErrorKind::Throttled,
        _ if status >= 500 => ErrorKind::Unavailable,
        _ => ErrorKind::Rejected,
    }
}

/// An SDK error as the guests see it.
fn aws_error<E>(err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let message = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or("Unknown").to_owned();
            let message = service.err().message().map(str::to_owned).unwrap_or(message);
            AwsError::new(kind_of(&code, status), code, message)
        }
        _ if message.contains("credentials") => AwsError::new(
            ErrorKind::Denied,
            "NoCredentials",
            format!(
                "no usable AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile or role): {message}"
            ),
        ),
        SdkError::TimeoutError(_) => AwsError::new(ErrorKind::Unavailable, "Timeout", message),
        _ => AwsError::new(ErrorKind::Unavailable, "DispatchFailure", message),
    }
}

impl AwsEffects {
    /// Every key under `prefix`, all pages, in S3's order (`emmaa-host check`'s
    /// traces).
    pub async fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, AwsError> {
        self.list_all(bucket, prefix, None).await
    }

    /// Every key under `prefix`, or with `delimiter` every common prefix,
    /// following every continuation token, in S3's order.
    async fn list_all(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<Vec<String>, AwsError> {
        let mut found = Vec::new();
        let mut continuation = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_delimiter(delimiter.map(str::to_owned))
                .set_continuation_token(continuation.take())
                .send()
                .await
                .map_err(aws_error)?;
            match delimiter {
                Some(_) => found.extend(
                    page.common_prefixes()
                        .iter()
                        .filter_map(|common| common.prefix().map(str::to_owned)),
                ),
                None => found.extend(
                    page.contents()
                        .iter()
                        .filter_map(|object| object.key().map(str::to_owned)),
                ),
            }
            match page.next_continuation_token() {
                Some(token) if page.is_truncated() == Some(true) => continuation = Some(token.to_owned()),
                _ => return Ok(found),
            }
        }
    }
}

#[async_trait]
impl Effects for AwsEffects {
    async fn list_prefixes(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: &str,
    ) -> Result<Vec<String>, AwsError> {
        self.list_all(bucket, prefix, Some(delimiter)).await
    }

    async fn get_object(&self, bucket: &str, key: &str, max_size: u64) -> Result<Vec<u8>, AwsError> {
        let object = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(aws_error)?;
        let size = object.content_length().and_then(|size| u64::try_from(size).ok());
        if let Some(size) = size.filter(|&size| size > max_size) {
            return Err(AwsError::too_large(bucket, key, size, max_size));
        }
        let bytes = read_body(object.body, bucket, key).await?;
        match u64::try_from(bytes.len()) {
            Ok(size) if size > max_size => Err(AwsError::too_large(bucket, key, size, max_size)),
            _ => Ok(bytes),
        }
    }

    async fn invoke(&self, invocation: &Invocation) -> Result<InvocationOutcome, AwsError> {
        let invocation_type = match invocation.invocation_type {
            InvocationType::RequestResponse => aws_sdk_lambda::types::InvocationType::RequestResponse,
            InvocationType::Event => aws_sdk_lambda::types::InvocationType::Event,
        };
        let output = self
            .lambda
            .invoke()
            .function_name(&invocation.function_name)
            .invocation_type(invocation_type)
            .payload(Blob::new(invocation.payload.as_bytes()))
            .send()
            .await
            .map_err(aws_error)?;
        Ok(InvocationOutcome {
            status_code: u16::try_from(output.status_code()).unwrap_or(0),
            payload: output
                .payload()
                .map(|payload| String::from_utf8_lossy(payload.as_ref()).into_owned())
                .unwrap_or_default(),
            function_error: output.function_error().map(str::to_owned),
        })
    }

    async fn submit_job(&self, job: &Job) -> Result<String, AwsError> {
        let overrides = ContainerOverrides::builder()
            .set_command(Some(job.command.clone()))
            .build();
        let depends_on: Vec<JobDependency> = job
            .depends_on
            .iter()
            .map(|id| JobDependency::builder().job_id(id).build())
            .collect();
        let output = self
            .batch
            .submit_job()
            .job_name(&job.name)
            .job_queue(&job.queue)
            .job_definition(&job.definition)
            .container_overrides(overrides)
            .set_depends_on((!depends_on.is_empty()).then_some(depends_on))
            .send()
            .await
            .map_err(aws_error)?;
        output.job_id().map(str::to_owned).ok_or_else(|| {
            AwsError::new(
                ErrorKind::Unavailable,
                "NoJobId",
                format!("AWS Batch accepted job {:?} but answered no job id", job.name),
            )
        })
    }

    async fn get_object_tagged(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, String)>, AwsError> {
        let object = match self.s3.get_object().bucket(bucket).key(key).send().await {
            Ok(object) => object,
            Err(err) => {
                let err = aws_error(err);
                return if err.kind == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                };
            }
        };
        let etag = object.e_tag().unwrap_or_default().to_owned();
        Ok(Some((read_body(object.body, bucket, key).await?, etag)))
    }

    async fn put_object_if(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        condition: Condition,
    ) -> Result<String, AwsError> {
        let put = self.s3.put_object().bucket(bucket).key(key).body(body.into());
        let put = match condition {
            Condition::Absent => put.if_none_match("*"),
            Condition::Matches(etag) => put.if_match(etag),
        };
        let output = put.send().await.map_err(aws_error)?;
        Ok(output.e_tag().unwrap_or_default().to_owned())
    }

    async fn delete_object_if(&self, bucket: &str, key: &str, etag: &str) -> Result<(), AwsError> {
        self.s3
            .delete_object()
            .bucket(bucket)
            .key(key)
            .if_match(etag)
            .send()
            .await
            .map_err(aws_error)?;
        Ok(())
    }

    async fn find_jobs(&self, queue: &str, job_name: &str) -> Result<Vec<String>, AwsError> {
        let filter = aws_sdk_batch::types::KeyValuesPair::builder()
            .name("JOB_NAME")
            .values(job_name)
            .build();
        let mut ids = Vec::new();
        let mut next = None;
        loop {
            let page = self
                .batch
                .list_jobs()
                .job_queue(queue)
                .filters(filter.clone())
                .set_next_token(next.take())
                .send()
                .await
                .map_err(aws_error)?;
            ids.extend(
                page.job_summary_list()
                    .iter()
                    .filter(|job| job.job_name() == Some(job_name))
                    .filter_map(|job| job.job_id().map(str::to_owned)),
            );
            match page.next_token() {
                Some(token) => next = Some(token.to_owned()),
                None => return Ok(ids),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_service_errors_by_code_then_status() {
        assert_eq!(kind_of("NoSuchKey", 404), ErrorKind::NotFound);
        assert_eq!(kind_of("ClientException", 400), ErrorKind::Rejected);
        assert_eq!(kind_of("TooManyRequestsException", 429), ErrorKind::Throttled);
        assert_eq!(kind_of("SlowDown", 503), ErrorKind::Throttled);
        assert_eq!(kind_of("Unknown", 404), ErrorKind::NotFound);
        assert_eq!(kind_of("InternalError", 500), ErrorKind::Unavailable);
        assert_eq!(kind_of("AccessDenied", 403), ErrorKind::Denied);
    }
}
