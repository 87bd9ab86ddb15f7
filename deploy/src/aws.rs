//! The AWS account `deploy` talks to, named as the AWS tools name it
//! (`--profile`, `--region`, `--endpoint-url`, over `AWS_PROFILE`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL` and the files `aws configure` writes),
//! and AWS's failures as one sentence that says what to set or do. The
//! SDK's own account of a failure is kept for `-v`.

use std::error::Error as StdError;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use thiserror::Error;

/// How long finding the credentials may take (the chain ends at EC2's
/// instance metadata, which does not answer off EC2).
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(15);

pub use emmaa_runtime::effects::AwsTarget;

/// An account ready for calls: its configuration, and what the sentences
/// name.
#[derive(Debug, Clone)]
pub struct Account {
    pub config: SdkConfig,
    pub region: String,
    /// The custom endpoint (moto, LocalStack), if one is set.
    pub endpoint: Option<String>,
    pub profile: Option<String>,
}

impl Account {
    /// Where the calls go, for a sentence: "AWS (eu-west-1)" or the URL.
    pub fn place(&self) -> String {
        match &self.endpoint {
            Some(url) => format!("{url} ({})", self.region),
            None => format!("AWS ({})", self.region),
        }
    }
}

/// Loads the configuration `target` names and finds its credentials: an
/// account missing either is an error here, before any work is done.
pub async fn connect(target: &AwsTarget) -> Result<Account, AwsProblem> {
    let profile = target
        .profile
        .clone()
        .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|name| !name.is_empty()));
    // A profile named with --profile gives the credentials; one named by
    // AWS_PROFILE comes after keys exported in the environment (as for the
    // AWS CLI).
    let from_environment =
        target.profile.is_none() && std::env::var_os("AWS_ACCESS_KEY_ID").is_some_and(|key| !key.is_empty());
    if let Some(name) = &profile
        && !from_environment
        && !profile_defined(name)
    {
        return Err(AwsProblem::new(
            ProblemKind::NoCredentials,
            format!(
                "profile {name} is in neither {} nor {}: run `aws configure --profile {name}`, or name \
                 another with --profile",
                config_file("AWS_CONFIG_FILE", "config").display(),
                config_file("AWS_SHARED_CREDENTIALS_FILE", "credentials").display()
            ),
        ));
    }
    let config = emmaa_aws::config_loader(target).load().await;
    let in_profile = profile
        .as_ref()
        .map(|name| format!(" (profile {name})"))
        .unwrap_or_default();
    let Some(region) = config.region().map(|region| region.to_string()) else {
        return Err(AwsProblem::new(
            ProblemKind::NoRegion,
            format!(
                "no AWS region{in_profile}: pass --region (e.g. --region us-east-1), set AWS_REGION, \
                 or set one with `aws configure{}`",
                profile
                    .as_ref()
                    .map(|name| format!(" --profile {name}"))
                    .unwrap_or_default()
            ),
        ));
    };
    let endpoint = target
        .endpoint_url
        .clone()
        .or_else(|| config.endpoint_url().map(str::to_owned))
        .or_else(|| {
            std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|url| !url.is_empty())
        });
    let no_credentials = |details: Option<String>| {
        AwsProblem::new(
            ProblemKind::NoCredentials,
            format!(
                "no AWS credentials found{in_profile}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                 run `aws configure` (or `aws sso login`), or pass --profile"
            ),
        )
        .with_details(details)
    };
    let provider = config
        .credentials_provider()
        .ok_or_else(|| no_credentials(None))?;
    match tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials()).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => return Err(no_credentials(Some(DisplayErrorContext(&err).to_string()))),
        Err(_) => {
            return Err(no_credentials(Some(format!(
                "the credential chain gave no answer in {} s",
                CREDENTIALS_TIMEOUT.as_secs()
            ))));
        }
    }
    Ok(Account {
        config,
        region,
        endpoint,
        profile,
    })
}

/// An AWS config file: the variable's path (a leading `~` is the home
/// directory, as the SDK reads it), else `~/.aws/<name>`.
fn config_file(variable: &str, name: &str) -> std::path::PathBuf {
    let home = || {
        std::env::var_os("HOME")
            .or_else(|| std::env::var_os("USERPROFILE"))
            .map(std::path::PathBuf::from)
            .unwrap_or_default()
    };
    match std::env::var(variable).ok().filter(|path| !path.is_empty()) {
        Some(path) => match path.strip_prefix("~/") {
            Some(rest) => home().join(rest),
            None => path.into(),
        },
        None => home().join(".aws").join(name),
    }
}

/// Whether profile `name` has a section in the config file (`[profile
/// name]`, or `[default]`) or the credentials file (`[name]`).
fn profile_defined(name: &str) -> bool {
    let sections = |variable, file, headers: &[String]| {
        std::fs::read_to_string(config_file(variable, file)).is_ok_and(|text| {
            text.lines().any(|line| {
                // `[profile name]`, maybe with a comment after it.
                line.trim()
                    .strip_prefix('[')
                    .and_then(|line| line.split_once(']'))
                    .is_some_and(|(header, _)| {
                        headers
                            .iter()
                            .any(|wanted| header.split_whitespace().eq(wanted.split_whitespace()))
                    })
            })
        })
    };
    let mut config_headers = vec![format!("profile {name}")];
    if name == "default" {
        config_headers.push(name.to_owned());
    }
    sections("AWS_CONFIG_FILE", "config", &config_headers)
        || sections("AWS_SHARED_CREDENTIALS_FILE", "credentials", &[name.to_owned()])
}

/// What went wrong, as one sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    NoRegion,
    NoCredentials,
    /// The credentials were refused (unknown, expired, a wrong secret).
    BadCredentials,
    Unreachable,
    Denied,
    Throttled,
    /// The function, stack or bucket does not exist.
    Missing,
    Other,
}

/// An AWS failure: one sentence, and the SDK's details for `-v`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{sentence}")]
pub struct AwsProblem {
    pub kind: ProblemKind,
    pub sentence: String,
    pub details: Option<String>,
}

impl AwsProblem {
    pub fn new(kind: ProblemKind, sentence: impl Into<String>) -> Self {
        AwsProblem {
            kind,
            sentence: sentence.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Option<String>) -> Self {
        self.details = details;
        self
    }
}

/// One call, for the sentence about its failure: the IAM action
/// (`lambda:UpdateFunctionCode`) and the resource (`function emmaa-x`).
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub action: &'a str,
    pub resource: &'a str,
}

/// The sentence for `err`, a failure of `call` in `account`.
pub fn explain<E>(err: &SdkError<E, HttpResponse>, call: Call<'_>, account: &Account) -> AwsProblem
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let details = Some(DisplayErrorContext(err).to_string());
    let Call { action, resource } = call;
    let place = account.place();
    let problem = |kind, sentence: String| AwsProblem::new(kind, sentence).with_details(details.clone());
    let unreachable = |why: &str| {
        problem(
            ProblemKind::Unreachable,
            format!(
                "cannot reach {place} for {action} ({why}): check --endpoint-url (or AWS_ENDPOINT_URL), \
                 --region and the network"
            ),
        )
    };
    match err {
        SdkError::TimeoutError(_) => return unreachable("no answer in time"),
        SdkError::DispatchFailure(failure) => {
            let text = details.as_deref().unwrap_or_default();
            if failure.is_other() && text.contains("credentials") {
                return problem(
                    ProblemKind::NoCredentials,
                    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, run \
                     `aws configure` (or `aws sso login`), or pass --profile"
                        .into(),
                );
            }
            let why = if failure.is_timeout() {
                "the connection timed out"
            } else if failure.is_io() {
                "the connection failed"
            } else {
                "the request was not sent"
            };
            return unreachable(why);
        }
        SdkError::ConstructionFailure(_) => {
            return problem(
                ProblemKind::Other,
                format!("{action} on {resource} could not be sent (run with -v for why)"),
            );
        }
        SdkError::ResponseError(_) => {
            return problem(
                ProblemKind::Other,
                format!("{place} answered {action} on {resource} with something unreadable (run with -v)"),
            );
        }
        _ => {}
    }
    let code = err.code().unwrap_or("");
    let message = err.message().unwrap_or("").trim();
    let status = err.raw_response().map(|raw| raw.status().as_u16());
    let said = if message.is_empty() {
        code.to_owned()
    } else {
        format!("{code}: {}", first_sentence(message))
    };
    match code {
        "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "InvalidSignatureException" => problem(
            ProblemKind::BadCredentials,
            format!(
                "AWS refused the credentials{} ({code}): refresh them (`aws sso login`, `aws configure`) \
                 or pass another --profile",
                account
                    .profile
                    .as_ref()
                    .map(|name| format!(" of profile {name}"))
                    .unwrap_or_default()
            ),
        ),
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "AuthorizationError"
        | "Forbidden" => problem(
            ProblemKind::Denied,
            format!(
                "access denied: {action} on {resource} ({said}): allow it in the IAM policy of the \
                 identity you deploy as"
            ),
        ),
        "Throttling"
        | "ThrottlingException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "SlowDown" => problem(
            ProblemKind::Throttled,
            format!(
                "AWS throttled {action} on {resource} ({code}) through every retry: wait a minute \
                 and run it again"
            ),
        ),
        "ResourceNotFoundException" | "NoSuchBucket" | "NotFound" => {
            problem(ProblemKind::Missing, missing(resource, &place))
        }
        "ValidationError" if message.contains("Stack with id") && message.contains("does not exist") => {
            problem(ProblemKind::Missing, missing(resource, &place))
        }
        "RequestTimeTooSkewed" | "SignatureExpired" => problem(
            ProblemKind::BadCredentials,
            format!(
                "AWS refused {action}: this machine's clock is off ({code}); set it right (AWS takes \
                 requests signed within 15 minutes of its time)"
            ),
        ),
        "PermanentRedirect" | "AuthorizationHeaderMalformed" => problem(
            ProblemKind::Other,
            format!(
                "{resource} is in another region than {}: pass its --region",
                account.region
            ),
        ),
        _ if status == Some(403) => problem(
            ProblemKind::Denied,
            format!(
                "access denied: {action} on {resource} ({said}): allow it in the IAM policy of the \
                 identity you deploy as"
            ),
        ),
        _ if status == Some(429) => problem(
            ProblemKind::Throttled,
            format!(
                "AWS throttled {action} on {resource} through every retry: wait a minute and run it again"
            ),
        ),
        _ => problem(
            ProblemKind::Other,
            format!(
                "{action} on {resource} failed: {}",
                if said.is_empty() {
                    match status {
                        Some(200) => "its answer could not be read (HTTP 200; -v shows why)".into(),
                        Some(status) => format!("AWS gave no reason (HTTP {status})"),
                        None => "AWS gave no reason".into(),
                    }
                } else {
                    said
                }
            ),
        ),
    }
}

/// The sentence for a `resource` ("function F", "stack S", "bucket B",
/// "log group G") that does not exist, with what creates it.
fn missing(resource: &str, place: &str) -> String {
    let what_to_do = match resource.split(' ').next().unwrap_or("") {
        "function" => "check the name and --region (`deploy stack` creates the pipeline's functions)",
        "stack" => "check the name and --region, or create it with `deploy stack`",
        "log" => "check the name and --region (Lambda makes a function's log group when it first runs)",
        _ => "check the name (--artifact-bucket, --parameter Bucket) and --region",
    };
    format!("{resource} does not exist in {place}: {what_to_do}")
}

/// The first sentence of AWS's message (some run to several lines).
fn first_sentence(message: &str) -> &str {
    let line = message.lines().next().unwrap_or("");
    match line.find(". ") {
        Some(end) => &line[..=end],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    fn account(endpoint: Option<&str>) -> Account {
        Account {
            config: SdkConfig::builder().build(),
            region: "eu-west-1".into(),
            endpoint: endpoint.map(str::to_owned),
            profile: Some("ops".into()),
        }
    }

    /// AWS's answer `status` with error `code` and `message`, explained as
    /// a failure of DescribeStacks on stack emmaa-pipeline.
    fn answered(status: u16, code: &str, message: &str) -> AwsProblem {
        let error =
            DescribeStacksError::generic(ErrorMetadata::builder().code(code).message(message).build());
        let response = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        explain(
            &SdkError::service_error(error, response),
            Call {
                action: "cloudformation:DescribeStacks",
                resource: "stack emmaa-pipeline",
            },
            &account(None),
        )
    }

    #[test]
    fn each_kind_of_failure_is_one_sentence_with_what_to_do() {
        let missing = answered(
            400,
            "ValidationError",
            "Stack with id emmaa-pipeline does not exist",
        );
        assert_eq!(missing.kind, ProblemKind::Missing);
        assert_eq!(
            missing.sentence,
            "stack emmaa-pipeline does not exist in AWS (eu-west-1): check the name and --region, or create \
             it with `deploy stack`"
        );
        let denied = answered(403, "AccessDenied", "User x is not authorized. More text.");
        assert_eq!(
            denied.sentence,
            "access denied: cloudformation:DescribeStacks on stack emmaa-pipeline (AccessDenied: User x is \
             not authorized.): allow it in the IAM policy of the identity you deploy as"
        );
        assert_eq!(
            answered(400, "Throttling", "Rate exceeded").kind,
            ProblemKind::Throttled
        );
        let expired = answered(
            403,
            "ExpiredToken",
            "The security token included in the request is expired",
        );
        assert_eq!(
            expired.sentence,
            "AWS refused the credentials of profile ops (ExpiredToken): refresh them (`aws sso login`, \
             `aws configure`) or pass another --profile"
        );
        let other = answered(400, "ValidationError", "Template format error");
        assert_eq!(other.kind, ProblemKind::Other);
        assert_eq!(
            other.sentence,
            "cloudformation:DescribeStacks on stack emmaa-pipeline failed: ValidationError: Template format error"
        );
        for problem in [missing, denied, expired, other] {
            assert!(!problem.sentence.contains('\n'), "{}", problem.sentence);
            assert!(problem.details.is_some(), "the SDK's account is kept for -v");
        }
    }

    #[test]
    fn the_first_sentence_of_a_long_message() {
        assert_eq!(
            first_sentence("User: x is not authorized. Because no policy allows it.\nmore"),
            "User: x is not authorized."
        );
        assert_eq!(first_sentence("Rate exceeded"), "Rate exceeded");
    }
}
