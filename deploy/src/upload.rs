//! Replacing a Lambda function's code with a bundle, the way an operator
//! would by hand: send the zip, check that AWS stored exactly these bytes
//! (`CodeSha256`), wait for the update to finish (and say why when it
//! failed), wait and retry while another update is in progress, and switch
//! a function that still runs the Python original to `provided.al2023` with
//! handler `bootstrap`, which UpdateFunctionCode alone leaves alone.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use thiserror::Error;

use emmaa_offline::progress::Progress;

use crate::aws::{Account, AwsProblem, Call, ProblemKind, explain};
use crate::bundle::Bundle;

pub const RUNTIME: &str = "provided.al2023";
pub const HANDLER: &str = "bootstrap";

/// The first pause while an update is in progress.
const FIRST_POLL: Duration = Duration::from_millis(100);

/// What the upload needs to know about the function.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FunctionState {
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub architectures: Vec<String>,
    pub code_sha256: Option<String>,
    /// `InProgress`, `Successful` or `Failed`.
    pub last_update_status: Option<String>,
    pub last_update_status_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ControlError {
    /// `ResourceConflictException`: another update is still in progress.
    #[error("another update of the function is in progress: {0}")]
    Conflict(String),
    /// Any other failure of a call, as one sentence.
    #[error(transparent)]
    Aws(#[from] AwsProblem),
}

impl ControlError {
    fn other(sentence: impl Into<String>) -> Self {
        ControlError::Aws(AwsProblem::new(ProblemKind::Other, sentence))
    }
}

/// The few Lambda calls an upload makes.
#[async_trait]
pub trait LambdaControl: Send + Sync {
    async fn get_configuration(&self, function: &str) -> Result<FunctionState, ControlError>;
    /// UpdateFunctionCode; answers the `CodeSha256` AWS computed.
    async fn update_code(&self, function: &str, zip: &[u8], arch: &str) -> Result<String, ControlError>;
    async fn update_runtime(&self, function: &str, runtime: &str, handler: &str) -> Result<(), ControlError>;
    /// PublishVersion; answers the version number.
    async fn publish_version(&self, function: &str, code_sha256: &str) -> Result<String, ControlError>;
}

/// How long to wait between polls and retries, and for how long in all.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub poll: Duration,
    pub timeout: Duration,
}

impl Patience {
    /// Gives up, saying `what` did not happen, once `timeout` has passed
    /// since `started`.
    fn check(&self, started: Instant, what: impl FnOnce() -> String) -> Result<(), UploadError> {
        if started.elapsed() >= self.timeout {
            return Err(UploadError::TimedOut {
                seconds: self.timeout.as_secs(),
                what: what(),
            });
        }
        Ok(())
    }
}

impl Default for Patience {
    fn default() -> Self {
        Patience {
            poll: Duration::from_secs(2),
            timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Error)]
pub enum UploadError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(
        "AWS stored code with CodeSha256 {answered}, but the bundle's is {sent}: the upload was corrupted"
    )]
    ShaMismatch { sent: String, answered: String },
    #[error("the update of {function} failed: {reason}")]
    UpdateFailed { function: String, reason: String },
    #[error("gave up after {seconds} s: {what}")]
    TimedOut { seconds: u64, what: String },
}

/// The upload's plan: what it found and what it will change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub before: FunctionState,
    /// Whether the runtime or handler must be switched.
    pub switch_runtime: bool,
}

impl Plan {
    pub fn describe_switch(&self) -> String {
        format!(
            "runtime {} -> {RUNTIME}, handler {} -> {HANDLER}",
            self.before.runtime.as_deref().unwrap_or("(none)"),
            self.before.handler.as_deref().unwrap_or("(none)")
        )
    }
}

/// Reads the function and decides what the upload changes.
pub async fn plan(control: &dyn LambdaControl, function: &str) -> Result<Plan, ControlError> {
    let before = control.get_configuration(function).await?;
    let switch_runtime =
        before.runtime.as_deref() != Some(RUNTIME) || before.handler.as_deref() != Some(HANDLER);
    Ok(Plan {
        before,
        switch_runtime,
    })
}

/// Whether a function is the one the pipeline runs a guest in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestMatch {
    /// It is the guest's function.
    Same,
    /// It is another guest's function.
    Other {
        function: String,
        runs: &'static str,
        guest: String,
    },
    /// It is none of the pipeline's functions (a copy, a test function).
    Unknown { function: String, guest: String },
}

impl GuestMatch {
    pub fn describe(&self) -> String {
        match self {
            GuestMatch::Same => "the guest's own function".into(),
            GuestMatch::Other {
                function,
                runs,
                guest,
            } => {
                format!("{function} is {runs}'s function: uploading {guest} to it would replace its handler")
            }
            GuestMatch::Unknown { function, guest } => {
                format!("{function} is none of the pipeline's functions; uploading {guest} to it anyway")
            }
        }
    }
}

/// Whether `function` runs `guest`: a pipeline function's name with
/// `function_prefix`, or with another installation's prefix (`emmaa-next-`:
/// the longest function name it ends with, after a `-`).
pub fn match_guest(guest: &str, function: &str, function_prefix: &str) -> GuestMatch {
    use emmaa_runtime::functions::FUNCTIONS;
    let ends_with = |pipeline: &&emmaa_runtime::functions::PipelineFunction| {
        function
            .strip_suffix(pipeline.function)
            .is_some_and(|prefix| prefix.is_empty() || prefix.ends_with('-'))
    };
    let runs = FUNCTIONS
        .iter()
        .find(|pipeline| pipeline.name(function_prefix) == function)
        .or_else(|| {
            FUNCTIONS
                .iter()
                .filter(ends_with)
                .max_by_key(|pipeline| pipeline.function.len())
        });
    match runs {
        Some(pipeline) if pipeline.guest == guest => GuestMatch::Same,
        Some(pipeline) => GuestMatch::Other {
            function: function.to_owned(),
            runs: pipeline.guest,
            guest: guest.to_owned(),
        },
        None => GuestMatch::Unknown {
            function: function.to_owned(),
            guest: guest.to_owned(),
        },
    }
}

/// Uploads `bundle` to `function` (one it serves). `say` gets one line
/// per step.
pub async fn upload(
    control: &dyn LambdaControl,
    bundle: &Bundle,
    function: &str,
    plan: &Plan,
    publish: bool,
    patience: Patience,
    say: &mut dyn FnMut(String),
) -> Result<(), UploadError> {
    let sent = bundle.code_sha256();
    say(format!(
        "sending {} to {function}: {} bytes, sha256 {} (CodeSha256 {sent}), architecture {}",
        bundle.path.display(),
        bundle.zip.len(),
        bundle.sha256_hex(),
        bundle.arch.lambda_name()
    ));
    let sending = Progress::start(format!("sending {} MB to {function}", bundle.zip.len() >> 20));
    let answered = retry_conflicts(patience, say, || {
        control.update_code(function, &bundle.zip, bundle.arch.lambda_name())
    })
    .await?;
    drop(sending);
    if answered != sent {
        return Err(UploadError::ShaMismatch { sent, answered });
    }
    say(format!(
        "AWS answered: CodeSha256 {answered} (matches the bundle)"
    ));
    let state = wait_for_update(control, function, patience, say).await?;

    if plan.switch_runtime {
        // From here until the switch is done the function serves the new
        // zip under the old runtime, which finds no handler in it: ask for
        // the switch at once and poll its end closely.
        let landed = Instant::now();
        say(format!("switching {function}: {}", plan.describe_switch()));
        retry_conflicts(patience, say, || {
            control.update_runtime(function, RUNTIME, HANDLER)
        })
        .await?;
        let state = wait_for_update(control, function, patience, say).await?;
        say(format!(
            "AWS answered: runtime {}, handler {}",
            state.runtime.as_deref().unwrap_or("(none)"),
            state.handler.as_deref().unwrap_or("(none)")
        ));
        say(format!(
            "the switch ended {} ms after the new code was seen in place: in between, a call found \
             the new code under the old runtime and failed (Runtime.ImportModuleError; Lambda \
             retries an asynchronous event)",
            landed.elapsed().as_millis()
        ));
    } else {
        say(format!(
            "runtime already {RUNTIME} with handler {HANDLER}; architectures {:?}",
            state.architectures
        ));
    }

    if publish {
        let version = retry_conflicts(patience, say, || control.publish_version(function, &answered)).await?;
        say(format!("published {function} version {version}"));
    }
    Ok(())
}

/// Runs `call`, waiting and retrying while AWS answers that another update
/// is in progress.
async fn retry_conflicts<T, F, Fut>(
    patience: Patience,
    say: &mut dyn FnMut(String),
    mut call: F,
) -> Result<T, UploadError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ControlError>>,
{
    let started = Instant::now();
    loop {
        match call().await {
            Err(ControlError::Conflict(message)) => {
                patience.check(started, || {
                    format!("another update stayed in progress: {message}")
                })?;
                say(format!(
                    "another update is in progress; retrying in {:?}",
                    patience.poll
                ));
                tokio::time::sleep(patience.poll).await;
            }
            other => return Ok(other?),
        }
    }
}

/// Polls the function until its last update is no longer in progress.
pub async fn wait_for_update(
    control: &dyn LambdaControl,
    function: &str,
    patience: Patience,
    say: &mut dyn FnMut(String),
) -> Result<FunctionState, UploadError> {
    let started = Instant::now();
    let progress = Progress::start(format!("waiting for the update of {function}"));
    // Close polls first (most updates end within a second or two), then
    // `patience.poll` apart.
    let mut pause = patience.poll.min(FIRST_POLL);
    loop {
        progress.tick();
        let state = control.get_configuration(function).await?;
        match state.last_update_status.as_deref() {
            Some("InProgress") => {
                patience.check(started, || format!("the update of {function} stayed InProgress"))?;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(patience.poll);
            }
            Some("Failed") => {
                return Err(UploadError::UpdateFailed {
                    function: function.to_owned(),
                    reason: state
                        .last_update_status_reason
                        .unwrap_or_else(|| "AWS gave no reason".into()),
                });
            }
            status => {
                say(format!(
                    "LastUpdateStatus {}",
                    status.unwrap_or("(none: Successful)")
                ));
                return Ok(state);
            }
        }
    }
}

/// The Lambda API through the AWS SDK.
pub struct AwsLambda {
    client: aws_sdk_lambda::Client,
    account: Account,
}

impl AwsLambda {
    pub fn new(account: &Account) -> Self {
        AwsLambda {
            client: aws_sdk_lambda::Client::new(&account.config),
            account: account.clone(),
        }
    }

    /// `err`, a failure of `action` on `function`, as one sentence.
    fn error<E>(
        &self,
        action: &str,
        function: &str,
        err: aws_sdk_lambda::error::SdkError<E, HttpResponse>,
    ) -> ControlError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if err.code() == Some("ResourceConflictException") {
            return ControlError::Conflict(err.message().unwrap_or("ResourceConflictException").to_owned());
        }
        let resource = format!("function {function}");
        ControlError::Aws(explain(
            &err,
            Call {
                action,
                resource: &resource,
            },
            &self.account,
        ))
    }
}

#[async_trait]
impl LambdaControl for AwsLambda {
    async fn get_configuration(&self, function: &str) -> Result<FunctionState, ControlError> {
        let config = self
            .client
            .get_function_configuration()
            .function_name(function)
            .send()
            .await
            .map_err(|err| self.error("lambda:GetFunctionConfiguration", function, err))?;
        Ok(FunctionState {
            runtime: config.runtime().map(|runtime| runtime.as_str().to_owned()),
            handler: config.handler().map(str::to_owned),
            architectures: config
                .architectures()
                .iter()
                .map(|arch| arch.as_str().to_owned())
                .collect(),
            code_sha256: config.code_sha256().map(str::to_owned),
            last_update_status: config
                .last_update_status()
                .map(|status| status.as_str().to_owned()),
            last_update_status_reason: config.last_update_status_reason().map(str::to_owned),
        })
    }

    async fn update_code(&self, function: &str, zip: &[u8], arch: &str) -> Result<String, ControlError> {
        let output = self
            .client
            .update_function_code()
            .function_name(function)
            .zip_file(aws_sdk_lambda::primitives::Blob::new(zip))
            .architectures(aws_sdk_lambda::types::Architecture::from(arch))
            .send()
            .await
            .map_err(|err| self.error("lambda:UpdateFunctionCode", function, err))?;
        output
            .code_sha256()
            .map(str::to_owned)
            .ok_or_else(|| ControlError::other("UpdateFunctionCode answered no CodeSha256"))
    }

    async fn update_runtime(&self, function: &str, runtime: &str, handler: &str) -> Result<(), ControlError> {
        self.client
            .update_function_configuration()
            .function_name(function)
            .runtime(aws_sdk_lambda::types::Runtime::from(runtime))
            .handler(handler)
            .send()
            .await
            .map_err(|err| self.error("lambda:UpdateFunctionConfiguration", function, err))?;
        Ok(())
    }

    async fn publish_version(&self, function: &str, code_sha256: &str) -> Result<String, ControlError> {
        let output = self
            .client
            .publish_version()
            .function_name(function)
            .code_sha256(code_sha256)
            .send()
            .await
            .map_err(|err| self.error("lambda:PublishVersion", function, err))?;
        output
            .version()
            .map(str::to_owned)
            .ok_or_else(|| ControlError::other("PublishVersion answered no version"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, VecDeque};
    use std::sync::Mutex;

    use super::*;
    use crate::arch::Arch;

    #[test]
    fn a_guest_matches_its_own_function_only() {
        assert_eq!(
            match_guest("model_updates", "emmaa-model-update", "emmaa-"),
            GuestMatch::Same
        );
        let other = match_guest("model_updates", "emmaa-update-pipeline", "emmaa-");
        assert_eq!(
            other.describe(),
            "emmaa-update-pipeline is update_pipeline's function: uploading model_updates to it would replace its handler"
        );
        assert_eq!(
            match_guest("update_pipeline", "emmaa-test-update-pipeline", "emmaa-"),
            GuestMatch::Other {
                function: "emmaa-test-update-pipeline".into(),
                runs: "test_update_pipeline",
                guest: "update_pipeline".into()
            }
        );
        // Another installation's functions, by their names' ends.
        assert_eq!(
            match_guest("model_updates", "emmaa-next-model-update", "emmaa-"),
            GuestMatch::Same
        );
        assert!(matches!(
            match_guest("model_updates", "emmaa-next-update-pipeline", "emmaa-"),
            GuestMatch::Other {
                runs: "update_pipeline",
                ..
            }
        ));
        assert!(matches!(
            match_guest("model_updates", "emmaa-model-update-copy", "emmaa-"),
            GuestMatch::Unknown { .. }
        ));
        assert_eq!(
            match_guest("model_updates", "emmaa-next-model-update", "emmaa-next-"),
            GuestMatch::Same
        );
    }

    /// A Lambda that answers from a script and records the calls it got.
    struct ScriptedLambda {
        states: Mutex<VecDeque<FunctionState>>,
        code_answers: Mutex<VecDeque<Result<String, ControlError>>>,
        calls: Mutex<Vec<String>>,
    }

    impl ScriptedLambda {
        /// A Lambda whose configuration reads answer `states` one after the
        /// other (the last one for ever), and whose code updates answer
        /// `code_answers`.
        fn new(states: Vec<FunctionState>, code_answers: Vec<Result<String, ControlError>>) -> Self {
            ScriptedLambda {
                states: Mutex::new(states.into()),
                code_answers: Mutex::new(code_answers.into()),
                calls: Mutex::default(),
            }
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl LambdaControl for ScriptedLambda {
        async fn get_configuration(&self, _function: &str) -> Result<FunctionState, ControlError> {
            self.calls.lock().unwrap().push("get".into());
            let mut states = self.states.lock().unwrap();
            let state = if states.len() > 1 {
                states.pop_front()
            } else {
                states.front().cloned()
            };
            state.ok_or_else(|| ControlError::other("no state scripted"))
        }

        async fn update_code(&self, _function: &str, zip: &[u8], arch: &str) -> Result<String, ControlError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("update_code {} bytes {arch}", zip.len()));
            self.code_answers
                .lock()
                .unwrap()
                .pop_front()
                .expect("a scripted answer")
        }

        async fn update_runtime(
            &self,
            _function: &str,
            runtime: &str,
            handler: &str,
        ) -> Result<(), ControlError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("update_runtime {runtime} {handler}"));
            Ok(())
        }

        async fn publish_version(&self, _function: &str, code_sha256: &str) -> Result<String, ControlError> {
            self.calls.lock().unwrap().push(format!("publish {code_sha256}"));
            Ok("7".into())
        }
    }

    fn bundle() -> Bundle {
        Bundle {
            path: "b.zip".into(),
            functions: BTreeMap::from([("emmaa-model-update".into(), "model_updates".into())]),
            arch: Arch::X86_64,
            zip: b"zip bytes".to_vec(),
        }
    }

    fn state(runtime: &str, handler: &str, status: &str) -> FunctionState {
        FunctionState {
            runtime: Some(runtime.into()),
            handler: Some(handler.into()),
            architectures: vec!["x86_64".into()],
            code_sha256: None,
            last_update_status: Some(status.into()),
            last_update_status_reason: None,
        }
    }

    /// A function already on the bundle's runtime, its last update done.
    fn ready() -> FunctionState {
        state(RUNTIME, HANDLER, "Successful")
    }

    const QUICK: Patience = Patience {
        poll: Duration::from_millis(1),
        timeout: Duration::from_secs(5),
    };

    async fn run_upload(lambda: &ScriptedLambda, publish: bool) -> (Result<(), UploadError>, Vec<String>) {
        let plan = plan(lambda, "emmaa-model-update").await.unwrap();
        let mut said = Vec::new();
        let result = upload(
            lambda,
            &bundle(),
            "emmaa-model-update",
            &plan,
            publish,
            QUICK,
            &mut |line| said.push(line),
        )
        .await;
        (result, said)
    }

    #[tokio::test]
    async fn switches_a_python_function_to_provided_al2023_after_the_code() {
        let python = |status| state("python3.12", "model_updates.lambda_handler", status);
        let lambda = ScriptedLambda::new(
            vec![
                python("Successful"),
                python("InProgress"),
                python("Successful"),
                ready(),
            ],
            vec![Ok(bundle().code_sha256())],
        );
        let (result, said) = run_upload(&lambda, true).await;
        result.unwrap();
        assert_eq!(
            lambda.calls(),
            [
                "get",
                "update_code 9 bytes x86_64",
                "get",
                "get",
                "update_runtime provided.al2023 bootstrap",
                "get",
                &format!("publish {}", bundle().code_sha256()),
            ]
        );
        assert!(said.iter().any(|line| line.contains("(matches the bundle)")));
        assert!(said.iter().any(|line| line
            == "switching emmaa-model-update: runtime python3.12 -> provided.al2023, handler model_updates.lambda_handler -> bootstrap"));
        assert_eq!(said.last().unwrap(), "published emmaa-model-update version 7");
    }

    #[tokio::test]
    async fn leaves_the_runtime_alone_when_it_is_already_provided_al2023() {
        let lambda = ScriptedLambda::new(vec![ready()], vec![Ok(bundle().code_sha256())]);
        let (result, _) = run_upload(&lambda, false).await;
        result.unwrap();
        assert_eq!(lambda.calls(), ["get", "update_code 9 bytes x86_64", "get"]);
    }

    #[tokio::test]
    async fn waits_and_retries_while_another_update_is_in_progress() {
        let conflict = || {
            Err(ControlError::Conflict(
                "ResourceConflictException: update in progress".into(),
            ))
        };
        let lambda = ScriptedLambda::new(
            vec![ready()],
            vec![conflict(), conflict(), Ok(bundle().code_sha256())],
        );
        let (result, said) = run_upload(&lambda, false).await;
        result.unwrap();
        assert_eq!(
            lambda
                .calls()
                .iter()
                .filter(|call| call.starts_with("update_code"))
                .count(),
            3
        );
        assert_eq!(
            said.iter()
                .filter(|line| line.starts_with("another update is in progress"))
                .count(),
            2
        );
    }

    #[tokio::test]
    async fn gives_up_on_a_conflict_that_outlasts_its_patience() {
        let conflict = Err(ControlError::Conflict("still busy".into()));
        let lambda = ScriptedLambda::new(vec![ready()], vec![conflict; 10_000]);
        let plan = plan(&lambda, "f").await.unwrap();
        let patience = Patience {
            poll: Duration::from_millis(1),
            timeout: Duration::from_millis(20),
        };
        let err = upload(
            &lambda,
            &bundle(),
            "emmaa-model-update",
            &plan,
            false,
            patience,
            &mut |_| (),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("another update stayed in progress: still busy"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn says_why_when_the_update_failed() {
        let mut failed = state(RUNTIME, HANDLER, "Failed");
        failed.last_update_status_reason = Some("Lambda was unable to configure your environment".into());
        let lambda = ScriptedLambda::new(vec![ready(), failed], vec![Ok(bundle().code_sha256())]);
        let (result, _) = run_upload(&lambda, false).await;
        assert_eq!(
            result.unwrap_err().to_string(),
            "the update of emmaa-model-update failed: Lambda was unable to configure your environment"
        );
    }

    #[tokio::test]
    async fn refuses_code_whose_hash_does_not_match_the_bundle() {
        let lambda = ScriptedLambda::new(vec![ready()], vec![Ok("c29tZXRoaW5nIGVsc2U=".into())]);
        let (result, _) = run_upload(&lambda, true).await;
        assert!(matches!(result, Err(UploadError::ShaMismatch { .. })));
        assert!(!lambda.calls().iter().any(|call| call.starts_with("publish")));
    }
}
