//! Going back to the code a function ran before. `deploy upload
//! --artifact-bucket B` keeps each bundle in B under a key that holds its
//! sha256 (`artifacts/pipeline-<sha256>.zip`, as `deploy stack` keeps
//! them) and tags the function with the bundle it now runs
//! (`emmaa:code`) and the one it ran before (`emmaa:previous-code`);
//! `deploy rollback F` points F's code back at the previous bundle
//! (UpdateFunctionCode from S3), checks that AWS holds exactly those bytes
//! and swaps the two tags, so a second rollback goes forward again.

use std::collections::HashMap;

use aws_sdk_lambda::error::ProvideErrorMetadata;
use base64::Engine as _;

use crate::aws::{Account, AwsProblem, Call, ProblemKind, explain};

/// The tag naming the bundle a function runs, and the one it ran before.
pub const CODE_TAG: &str = "emmaa:code";
pub const PREVIOUS_TAG: &str = "emmaa:previous-code";

/// A bundle kept in an artifact bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub bucket: String,
    pub key: String,
}

impl Kept {
    /// `s3://bucket/key`, as the tags hold it.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    pub fn parse(url: &str) -> Option<Kept> {
        let (bucket, key) = url.strip_prefix("s3://")?.split_once('/')?;
        (!bucket.is_empty() && !key.is_empty()).then(|| Kept {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    /// The bundle's `CodeSha256` (base64), from the sha256 its key holds.
    pub fn code_sha256(&self) -> Option<String> {
        let hex = self.key.rsplit('-').next()?.strip_suffix(".zip")?;
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|at| {
                hex.get(at..at + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            })
            .collect();
        let bytes = bytes.filter(|bytes| bytes.len() == 32)?;
        Some(base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

/// The key a bundle of `sha256_hex` is kept under.
pub fn bundle_key(sha256_hex: &str) -> String {
    format!("artifacts/pipeline-{sha256_hex}.zip")
}

/// The tags after `now` was uploaded to a function tagged `tags`: `now` is
/// the code, and what was the code (if other) the previous code.
pub fn tags_after_upload(tags: &HashMap<String, String>, now: &Kept) -> HashMap<String, String> {
    let mut after = HashMap::from([(CODE_TAG.to_owned(), now.url())]);
    match tags.get(CODE_TAG) {
        Some(before) if *before != now.url() => {
            after.insert(PREVIOUS_TAG.to_owned(), before.clone());
        }
        _ => {
            if let Some(previous) = tags.get(PREVIOUS_TAG) {
                after.insert(PREVIOUS_TAG.to_owned(), previous.clone());
            }
        }
    }
    after
}

/// Lambda and S3 for keeping bundles and going back to one.
pub struct Keeper {
    lambda: aws_sdk_lambda::Client,
    s3: aws_sdk_s3::Client,
    account: Account,
}

impl Keeper {
    pub fn new(account: &Account) -> Self {
        Keeper {
            lambda: aws_sdk_lambda::Client::new(&account.config),
            s3: aws_sdk_s3::Client::new(&account.config),
            account: account.clone(),
        }
    }

    fn lambda_error<E>(
        &self,
        action: &str,
        function: &str,
        err: aws_sdk_lambda::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> AwsProblem
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let resource = format!("function {function}");
        explain(
            &err,
            Call {
                action,
                resource: &resource,
            },
            &self.account,
        )
    }

    /// Puts `zip` at `kept` unless it is there already; answers whether it put it.
    pub async fn keep(&self, kept: &Kept, zip: &[u8]) -> Result<bool, AwsProblem> {
        let answer = self
            .s3
            .put_object()
            .bucket(&kept.bucket)
            .key(&kept.key)
            .if_none_match("*")
            .body(zip.to_vec().into())
            .send()
            .await;
        match answer {
            Ok(_) => Ok(true),
            Err(err) if err.raw_response().map(|raw| raw.status().as_u16()) == Some(412) => Ok(false),
            Err(err) => {
                let resource = kept.url();
                Err(explain(
                    &err,
                    Call {
                        action: "s3:PutObject",
                        resource: &resource,
                    },
                    &self.account,
                ))
            }
        }
    }

    /// The function's ARN and tags.
    pub async fn tags(&self, function: &str) -> Result<(String, HashMap<String, String>), AwsProblem> {
        let configuration = self
            .lambda
            .get_function_configuration()
            .function_name(function)
            .send()
            .await
            .map_err(|err| self.lambda_error("lambda:GetFunctionConfiguration", function, err))?;
        let arn = configuration.function_arn().unwrap_or(function).to_owned();
        let tags = self
            .lambda
            .list_tags()
            .resource(&arn)
            .send()
            .await
            .map_err(|err| self.lambda_error("lambda:ListTags", function, err))?;
        Ok((arn, tags.tags().cloned().unwrap_or_default()))
    }

    pub async fn set_tags(
        &self,
        function: &str,
        arn: &str,
        tags: HashMap<String, String>,
    ) -> Result<(), AwsProblem> {
        self.lambda
            .tag_resource()
            .resource(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|err| self.lambda_error("lambda:TagResource", function, err))?;
        Ok(())
    }

    /// Points `function`'s code at `kept`; answers the `CodeSha256` AWS computed.
    pub async fn update_code_from(&self, function: &str, kept: &Kept) -> Result<String, AwsProblem> {
        let output = self
            .lambda
            .update_function_code()
            .function_name(function)
            .s3_bucket(&kept.bucket)
            .s3_key(&kept.key)
            .send()
            .await
            .map_err(|err| self.lambda_error("lambda:UpdateFunctionCode", function, err))?;
        output
            .code_sha256()
            .map(str::to_owned)
            .ok_or_else(|| AwsProblem::new(ProblemKind::Other, "UpdateFunctionCode answered no CodeSha256"))
    }
}

/// What a rollback would do, or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    pub from: Option<Kept>,
    pub to: Kept,
}

/// Why a function cannot go back.
pub fn nothing_to_go_back_to(function: &str) -> AwsProblem {
    AwsProblem::new(
        ProblemKind::Missing,
        format!(
            "{function} has no earlier bundle to go back to: its tag {PREVIOUS_TAG} is missing (`deploy \
             upload --artifact-bucket B` keeps each bundle and tags the function with it)"
        ),
    )
}

/// Rolls `function` back to the bundle its `emmaa:previous-code` tag
/// names (with `plan`, only says so).
pub async fn roll_back(
    keeper: &Keeper,
    function: &str,
    plan: bool,
    say: &mut dyn FnMut(String),
) -> Result<Rollback, AwsProblem> {
    let (arn, tags) = keeper.tags(function).await?;
    let to = tags
        .get(PREVIOUS_TAG)
        .and_then(|url| Kept::parse(url))
        .ok_or_else(|| nothing_to_go_back_to(function))?;
    let from = tags.get(CODE_TAG).and_then(|url| Kept::parse(url));
    let rollback = Rollback {
        from: from.clone(),
        to: to.clone(),
    };
    let from_text = from
        .as_ref()
        .map_or_else(|| "(untagged code)".to_owned(), Kept::url);
    if plan {
        say(format!(
            "plan: would roll {function} back from {from_text} to {}",
            to.url()
        ));
        return Ok(rollback);
    }
    say(format!(
        "rolling {function} back from {from_text} to {}",
        to.url()
    ));
    let answered = keeper.update_code_from(function, &to).await?;
    if let Some(expected) = to.code_sha256()
        && expected != answered
    {
        return Err(AwsProblem::new(
            ProblemKind::Other,
            format!(
                "AWS holds CodeSha256 {answered} for {function}, but {} is {expected}: the kept bundle \
                 is not the one its key names",
                to.url()
            ),
        ));
    }
    say(format!(
        "AWS answered: CodeSha256 {answered} (matches {})",
        to.url()
    ));
    let mut swapped = HashMap::from([(CODE_TAG.to_owned(), to.url())]);
    if let Some(from) = &from {
        swapped.insert(PREVIOUS_TAG.to_owned(), from.url());
    }
    keeper.set_tags(function, &arn, swapped).await?;
    Ok(rollback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_bundles_key_names_its_code_sha256() {
        let sha = emmaa_runtime::digest::sha256_hex(b"zip");
        let kept = Kept {
            bucket: "b".into(),
            key: bundle_key(&sha),
        };
        use sha2::Digest as _;
        let expected = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b"zip"));
        assert_eq!(kept.code_sha256(), Some(expected));
        assert_eq!(Kept::parse(&kept.url()), Some(kept));
        assert_eq!(Kept::parse("s3://bucket-only"), None);
    }

    #[test]
    fn an_upload_moves_the_code_tag_to_the_previous_one() {
        let first = Kept::parse("s3://b/artifacts/pipeline-1.zip").unwrap();
        let second = Kept::parse("s3://b/artifacts/pipeline-2.zip").unwrap();
        let tagged = tags_after_upload(&HashMap::new(), &first);
        assert_eq!(tagged.get(PREVIOUS_TAG), None);
        let tagged = tags_after_upload(&tagged, &second);
        assert_eq!(tagged[CODE_TAG], second.url());
        assert_eq!(tagged[PREVIOUS_TAG], first.url());
        // The same bundle again keeps what came before it.
        let again = tags_after_upload(&tagged, &second);
        assert_eq!(again[PREVIOUS_TAG], first.url());
    }
}
