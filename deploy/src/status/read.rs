//! The day read from AWS for [`super::compare`]: the settings (the stack's
//! parameters, else the `EMMAA_*` environment), the configs and the day's
//! files from S3, the day's jobs from Batch, and, when something stalled,
//! the day's claims and traces.
//!
//! What it costs, for N models and J jobs a day: one `DescribeStacks`;
//! `ListObjectsV2` pages over `models/` (N/1,000) and `GetObject` for each
//! config (N); one `ListObjectsV2` per model and kind of file for the day
//! (the date is in the key, so each answers that day's few keys: about
//! 3N); `ListJobs` pages over each queue's jobs since midnight (J/1,000)
//! and one `DescribeJobs` per 100 failed jobs. Only with a stalled stage:
//! `ListObjectsV2` over each function's claims, which grows with the
//! ledger's whole history (claims are kept: about 8N a day), and a
//! `GetObject` per claim written that day; and the same for the day's
//! traces when they are recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_batch::types::{JobStatus, KeyValuesPair};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use emmaa_offline::simulate::{SimulateRequest, SimulatedBucket, Simulation, simulate};
use emmaa_runtime::engine::Components;
use emmaa_runtime::functions::FUNCTIONS;
use emmaa_runtime::settings::Settings;
use futures::StreamExt;
use thiserror::Error;
use time::{Date, Month, OffsetDateTime};

use super::{ClaimSeen, DayStatus, JobSeen, ObservedDay, Refusal, compare, refused_items};
use crate::aws::{Account, AwsProblem, Call, explain};
use crate::stack::{AwsStack, StackControl};
use crate::template::{parameter_of, template};

/// Calls to S3 in flight at once.
const IN_FLIGHT: usize = 16;

/// What `deploy status` is asked.
#[derive(Debug, Clone)]
pub struct StatusRequest {
    /// The stack whose parameters say where the pipeline is; without one,
    /// the `EMMAA_*` environment does.
    pub stack_name: String,
    /// `YYYY-MM-DD` (UTC); today when None.
    pub date: Option<String>,
    /// Only these models (all when empty).
    pub models: Vec<String>,
    /// Read the day's claims even when nothing stalled (a redrive needs
    /// the failed jobs' claims).
    pub claims: bool,
}

/// The day's status, and the expected day it was matched against.
pub struct DayRead {
    pub status: DayStatus,
    pub expected: Simulation,
    pub observed: ObservedDay,
    /// Where the pipeline is, as the status found it.
    pub settings: Settings,
    /// When a redrive may start the day's work (seconds since the epoch):
    /// half an hour after its last schedule fired ([`REDRIVE_GRACE_S`]).
    pub redrivable_from: i64,
}

/// How long after a day's last schedule a redrive waits: until then its
/// own runs may still be on their way (a fan-out over many models).
pub const REDRIVE_GRACE_S: i64 = 1800;

#[derive(Debug, Error)]
pub enum StatusError {
    #[error("--date {0:?}: give a day as YYYY-MM-DD")]
    Date(String),
    #[error(transparent)]
    Aws(#[from] AwsProblem),
    #[error("{0}")]
    Settings(String),
    #[error("computing the expected day: {0}")]
    Expected(String),
}

/// Reads the day `request` names from `account` and matches it against
/// the expected day.
pub async fn read_day(account: &Account, request: &StatusRequest) -> Result<DayRead, StatusError> {
    let reader = Reader::new(account);
    let day = match &request.date {
        Some(date) => parse_date(date)?,
        None => OffsetDateTime::now_utc().date(),
    };
    let date = day.to_string();
    let (settings, schedules, from) = reader.settings(&request.stack_name).await?;
    let bucket = settings.pipeline.bucket.clone();
    let configs = reader.configs(&bucket, &request.models).await?;
    let midnight = day.midnight().assume_utc().unix_timestamp();
    let (hour, minute) = schedules.update;
    let starts_at = midnight + i64::from(hour) * 3600 + i64::from(minute) * 60;
    let mut notes = vec![format!("settings from {from}")];
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if now < midnight + i64::from(schedules.earliest().0) * 3600 + i64::from(schedules.earliest().1) * 60 {
        notes.push(format!(
            "the day's schedules have not fired yet (the first at {:02}:{:02} UTC)",
            schedules.earliest().0,
            schedules.earliest().1
        ));
    }
    let model_names: Vec<String> = configs
        .keys()
        .filter_map(|key| key.split('/').nth(1).map(str::to_owned))
        .collect();
    let expected = simulate(
        &SimulateRequest {
            bucket: SimulatedBucket::Memory(configs),
            now: u64::try_from(starts_at).unwrap_or_default(),
            components: Components::BuiltIn,
            deadline: Duration::from_secs(900),
            redeliver: false,
            quotas: None,
        },
        settings.clone(),
    )
    .await
    .map_err(|err| StatusError::Expected(err.to_string()))?;
    let mut observed = ObservedDay {
        jobs: reader.jobs(&settings, day, midnight).await?,
        files: reader.files(&bucket, &model_names, &expected, &date).await?,
        ..ObservedDay::default()
    };
    let mut status = compare(&expected, &observed, &date, &request.models);
    if request.claims || status.summary.get(&super::State::Stalled).copied().unwrap_or(0) > 0 {
        let day_ms = (midnight * 1000, (midnight + 86_400) * 1000);
        let prefix = settings.pipeline.function_prefix.clone();
        match &settings.ledger_prefix {
            Some(ledger) => observed.claims = reader.claims(&bucket, ledger, &prefix, day_ms).await?,
            None => notes.push("the ledger is off: no claims to read".to_owned()),
        }
        if let Some(traces) = &settings.trace_prefix {
            observed.refusals = reader.refusals(&bucket, traces, &prefix, &date).await?;
        }
        status = compare(&expected, &observed, &date, &request.models);
    }
    status.calls = reader.calls.into_inner().unwrap_or_default();
    status.notes = notes;
    let last = schedules.update.max(schedules.test_update);
    let redrivable_from = midnight + i64::from(last.0) * 3600 + i64::from(last.1) * 60 + REDRIVE_GRACE_S;
    Ok(DayRead {
        status,
        expected,
        observed,
        settings,
        redrivable_from,
    })
}

/// `YYYY-MM-DD`.
fn parse_date(text: &str) -> Result<Date, StatusError> {
    let bad = || StatusError::Date(text.to_owned());
    let mut parts = text.splitn(3, '-');
    let mut number = || {
        parts
            .next()
            .and_then(|part| part.parse::<u32>().ok())
            .ok_or_else(bad)
    };
    let (year, month, day) = (number()?, number()?, number()?);
    let month = u8::try_from(month)
        .ok()
        .and_then(|month| Month::try_from(month).ok())
        .ok_or_else(bad)?;
    Date::from_calendar_date(
        i32::try_from(year).map_err(|_| bad())?,
        month,
        u8::try_from(day).map_err(|_| bad())?,
    )
    .map_err(|_| bad())
}

/// The times (UTC hour and minute) the two daily rules fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedules {
    pub update: (u8, u8),
    pub test_update: (u8, u8),
}

impl Schedules {
    fn earliest(self) -> (u8, u8) {
        self.update.min(self.test_update)
    }
}

/// `cron(M H * * ? *)`: the hour and minute of a daily schedule.
pub fn daily_time(expression: &str) -> Option<(u8, u8)> {
    let fields: Vec<&str> = expression
        .strip_prefix("cron(")?
        .strip_suffix(')')?
        .split_whitespace()
        .collect();
    match fields.as_slice() {
        [minute, hour, ..] => Some((hour.parse().ok()?, minute.parse().ok()?)),
        _ => None,
    }
}

/// An S3 client for `account`: a custom endpoint (moto, MinIO) serves
/// buckets by path.
pub fn s3_client(account: &Account) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&account.config)
            .force_path_style(account.endpoint.is_some())
            .build(),
    )
}

struct Reader {
    account: Account,
    s3: aws_sdk_s3::Client,
    batch: aws_sdk_batch::Client,
    stack: AwsStack,
    calls: Mutex<BTreeMap<String, usize>>,
}

impl Reader {
    fn new(account: &Account) -> Self {
        Reader {
            account: account.clone(),
            s3: s3_client(account),
            batch: aws_sdk_batch::Client::new(&account.config),
            stack: AwsStack::new(account),
            calls: Mutex::default(),
        }
    }

    fn count(&self, api: &str) {
        *self
            .calls
            .lock()
            .unwrap_or_else(|err| err.into_inner())
            .entry(api.to_owned())
            .or_default() += 1;
    }

    fn problem<E>(
        &self,
        action: &str,
        resource: &str,
        err: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> AwsProblem
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        explain(err, Call { action, resource }, &self.account)
    }

    /// The settings the stack's parameters give (its template's defaults
    /// for what it leaves out), else the environment's; and where from.
    async fn settings(&self, stack: &str) -> Result<(Settings, Schedules, String), StatusError> {
        self.count("cloudformation:DescribeStacks");
        let parameters = self
            .stack
            .describe_stack(stack)
            .await
            .map_err(|err| err.0)?
            .map(|state| state.parameters);
        let defaults = template_defaults();
        let parameter = |name: &str| {
            parameters
                .as_ref()
                .and_then(|parameters| parameters.get(name))
                .or_else(|| defaults.get(name))
                .cloned()
        };
        let schedule = |name: &str| parameter(name).as_deref().and_then(daily_time).unwrap_or((0, 0));
        let schedules = Schedules {
            update: schedule("UpdateSchedule"),
            test_update: schedule("TestUpdateSchedule"),
        };
        let settings = match &parameters {
            Some(_) => Settings::from_lookup(|variable| parameter(&parameter_of(variable))),
            None => Settings::from_env(),
        }
        .map_err(|err| StatusError::Settings(err.to_string()))?;
        let from = match parameters {
            Some(_) => format!("stack {stack}"),
            None => format!("the EMMAA_* environment (no stack {stack})"),
        };
        Ok((settings, schedules, from))
    }

    /// Every key (with its last change, in milliseconds) under `prefix`.
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, i64)>, StatusError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            self.count("s3:ListObjectsV2");
            let page = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|err| self.problem("s3:ListObjectsV2", &format!("s3://{bucket}/{prefix}"), &err))?;
            keys.extend(page.contents().iter().filter_map(|object| {
                let modified = object.last_modified().map_or(0, |at| at.to_millis().unwrap_or(0));
                Some((object.key()?.to_owned(), modified))
            }));
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok(keys);
            }
        }
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StatusError> {
        self.count("s3:GetObject");
        match self.s3.get_object().bucket(bucket).key(key).send().await {
            Ok(object) => {
                let bytes = object.body.collect().await.map_err(|err| {
                    AwsProblem::new(
                        crate::aws::ProblemKind::Other,
                        format!("reading s3://{bucket}/{key}: {err}"),
                    )
                })?;
                Ok(Some(bytes.to_vec()))
            }
            Err(err) if err.as_service_error().is_some_and(|err| err.is_no_such_key()) => Ok(None),
            Err(err) => Err(self
                .problem("s3:GetObject", &format!("s3://{bucket}/{key}"), &err)
                .into()),
        }
    }

    /// The configs (`models/M/config.json`) of `models`, or of every model.
    async fn configs(
        &self,
        bucket: &str,
        models: &[String],
    ) -> Result<BTreeMap<String, Vec<u8>>, StatusError> {
        let names: Vec<String> = match models {
            [] => {
                let mut names = Vec::new();
                let mut token = None;
                loop {
                    self.count("s3:ListObjectsV2");
                    let page = self
                        .s3
                        .list_objects_v2()
                        .bucket(bucket)
                        .prefix("models/")
                        .delimiter("/")
                        .set_continuation_token(token)
                        .send()
                        .await
                        .map_err(|err| {
                            self.problem("s3:ListObjectsV2", &format!("s3://{bucket}/models/"), &err)
                        })?;
                    names.extend(page.common_prefixes().iter().filter_map(|prefix| {
                        let model = prefix.prefix()?.strip_prefix("models/")?.strip_suffix('/')?;
                        Some(model.to_owned())
                    }));
                    token = page.next_continuation_token().map(str::to_owned);
                    if token.is_none() {
                        break names;
                    }
                }
            }
            models => models.to_vec(),
        };
        type Read = Result<Option<(String, Vec<u8>)>, StatusError>;
        let read: Vec<Read> = futures::stream::iter(names)
            .map(|model| async move {
                let key = format!("models/{model}/config.json");
                Ok(self.get(bucket, &key).await?.map(|bytes| (key, bytes)))
            })
            .buffered(IN_FLIGHT)
            .collect()
            .await;
        read.into_iter().filter_map(Result::transpose).collect()
    }

    /// The day's files: of each model, its model states, its model
    /// manager and each kind of result the expected day writes.
    async fn files(
        &self,
        bucket: &str,
        models: &[String],
        expected: &Simulation,
        date: &str,
    ) -> Result<BTreeSet<String>, StatusError> {
        let mut prefixes: BTreeSet<String> = models
            .iter()
            .flat_map(|model| {
                [
                    format!("models/{model}/model_{date}"),
                    format!("results/{model}/model_manager_{date}"),
                ]
            })
            .collect();
        prefixes.extend(
            expected
                .jobs
                .iter()
                .flat_map(|job| &job.writes)
                .filter_map(|key| super::key_shape(key))
                .map(|(before, _)| format!("{before}{date}")),
        );
        let listed: Vec<Result<Vec<(String, i64)>, StatusError>> = futures::stream::iter(prefixes)
            .map(|prefix| async move { self.list(bucket, &prefix).await })
            .buffered(IN_FLIGHT)
            .collect()
            .await;
        let mut files = BTreeSet::new();
        for keys in listed {
            files.extend(keys?.into_iter().map(|(key, _)| key));
        }
        Ok(files)
    }

    /// The jobs of the day in each of the pipeline's queues: created since
    /// midnight and named for the day; the failed ones described for
    /// their log stream.
    async fn jobs(&self, settings: &Settings, day: Date, midnight: i64) -> Result<Vec<JobSeen>, StatusError> {
        let stamp = format!("{:04}{:02}{:02}", day.year(), u8::from(day.month()), day.day());
        // The large models' queue only when there are large models: an
        // installation without them need not have it.
        let mut queues = BTreeSet::from([settings.pipeline.job_queue.as_str()]);
        if !settings.pipeline.large_models.is_empty() {
            queues.insert(settings.pipeline.large_job_queue.as_str());
        }
        let mut jobs = Vec::new();
        for queue in queues {
            let mut token = None;
            loop {
                self.count("batch:ListJobs");
                let since = KeyValuesPair::builder()
                    .name("AFTER_CREATED_AT")
                    .values((midnight * 1000).to_string())
                    .build();
                let page = self
                    .batch
                    .list_jobs()
                    .job_queue(queue)
                    .filters(since)
                    .max_results(1000)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|err| self.problem("batch:ListJobs", &format!("job queue {queue}"), &err))?;
                for summary in page.job_summary_list() {
                    let (Some(name), Some(id)) = (summary.job_name(), summary.job_id()) else {
                        continue;
                    };
                    if name.rsplit('_').nth(1) != Some(stamp.as_str()) {
                        continue;
                    }
                    jobs.push(JobSeen {
                        name: name.to_owned(),
                        id: id.to_owned(),
                        queue: queue.to_owned(),
                        status: summary
                            .status()
                            .map(|status| status.as_str().to_owned())
                            .unwrap_or_default(),
                        reason: summary.status_reason().map(str::to_owned),
                        exit_code: summary.container().and_then(|container| container.exit_code()),
                        log_stream: None,
                        created_ms: summary.created_at().unwrap_or_default(),
                    });
                }
                token = page.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
        }
        let failed: Vec<String> = jobs
            .iter()
            .filter(|job| job.status == JobStatus::Failed.as_str())
            .map(|job| job.id.clone())
            .collect();
        for ids in failed.chunks(100) {
            self.count("batch:DescribeJobs");
            let described = self
                .batch
                .describe_jobs()
                .set_jobs(Some(ids.to_vec()))
                .send()
                .await
                .map_err(|err| self.problem("batch:DescribeJobs", "the day's failed jobs", &err))?;
            for detail in described.jobs() {
                let Some(job) = jobs
                    .iter_mut()
                    .find(|job| Some(job.id.as_str()) == detail.job_id())
                else {
                    continue;
                };
                let container = detail.container();
                job.log_stream = container.and_then(|c| c.log_stream_name()).map(str::to_owned);
                job.exit_code = job.exit_code.or(container.and_then(|c| c.exit_code()));
                job.reason = job.reason.clone().or(detail.status_reason().map(str::to_owned));
            }
        }
        Ok(jobs)
    }

    /// The claims written during the day (`day_ms`: its bounds), read
    /// from each function's part of the ledger.
    async fn claims(
        &self,
        bucket: &str,
        ledger: &str,
        function_prefix: &str,
        day_ms: (i64, i64),
    ) -> Result<Vec<ClaimSeen>, StatusError> {
        let mut keys = Vec::new();
        for function in FUNCTIONS {
            let prefix = format!("{ledger}{}/", function.name(function_prefix));
            keys.extend(
                self.list(bucket, &prefix)
                    .await?
                    .into_iter()
                    .filter(|(_, modified)| *modified >= day_ms.0 && *modified < day_ms.1)
                    .map(|(key, _)| key),
            );
        }
        let read: Vec<Result<Option<ClaimSeen>, StatusError>> = futures::stream::iter(keys)
            .map(|key| async move {
                let Some(bytes) = self.get(bucket, &key).await? else {
                    return Ok(None);
                };
                let Ok(body) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                    return Ok(None);
                };
                let text = |field: &str| body[field].as_str().map(str::to_owned);
                Ok(Some(ClaimSeen {
                    state: text("state").unwrap_or_default(),
                    work: text("work").unwrap_or_default(),
                    request_id: text("request_id").unwrap_or_default(),
                    job_name: text("job_name"),
                    job_id: text("job_id"),
                    key,
                }))
            })
            .buffered(IN_FLIGHT)
            .collect()
            .await;
        read.into_iter().filter_map(Result::transpose).collect()
    }

    /// The items the day's recorded events refused.
    async fn refusals(
        &self,
        bucket: &str,
        traces: &str,
        function_prefix: &str,
        date: &str,
    ) -> Result<Vec<Refusal>, StatusError> {
        let mut keys = Vec::new();
        for function in FUNCTIONS {
            let prefix = format!("{traces}{}/{date}/", function.name(function_prefix));
            keys.extend(self.list(bucket, &prefix).await?.into_iter().map(|(key, _)| key));
        }
        let read: Vec<Result<Vec<Refusal>, StatusError>> = futures::stream::iter(keys)
            .map(|key| async move {
                let Some(bytes) = self.get(bucket, &key).await? else {
                    return Ok(Vec::new());
                };
                let Ok(trace) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                    return Ok(Vec::new());
                };
                let function = trace["function"].as_str().unwrap_or_default();
                Ok(refused_items(function, trace["answer"].get("response"), ""))
            })
            .buffered(IN_FLIGHT)
            .collect()
            .await;
        let mut refusals = Vec::new();
        for found in read {
            refusals.extend(found?);
        }
        Ok(refusals)
    }
}

/// The template's parameter defaults: what a stack that leaves one out has.
fn template_defaults() -> BTreeMap<String, String> {
    let template = template();
    template["Parameters"]
        .as_object()
        .map(|parameters| {
            parameters
                .iter()
                .filter_map(|(name, parameter)| {
                    let default = parameter["Default"].as_str()?;
                    Some((name.clone(), default.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daily_schedule_gives_its_hour_and_minute() {
        assert_eq!(daily_time("cron(0 5 * * ? *)"), Some((5, 0)));
        assert_eq!(daily_time("cron(30 4 * * ? *)"), Some((4, 30)));
        assert_eq!(daily_time("rate(1 day)"), None);
    }

    #[test]
    fn a_date_is_a_day_of_the_calendar() {
        assert_eq!(parse_date("2026-12-05").unwrap().to_string(), "2026-12-05");
        for bad in ["2026-13-01", "2026-02-30", "yesterday", "2026-12"] {
            assert!(
                matches!(parse_date(bad), Err(StatusError::Date(text)) if text == bad),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_template_gives_the_schedules_defaults() {
        let defaults = template_defaults();
        assert_eq!(defaults["UpdateSchedule"], "cron(0 5 * * ? *)");
        assert_eq!(defaults["TestUpdateSchedule"], "cron(0 4 * * ? *)");
    }
}
