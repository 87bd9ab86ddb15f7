//! The local backend: the bucket is a directory (`--bucket-dir`), a map in
//! memory, or empty; invocations and Batch submissions are not performed
//! but answered with deterministic fake results (200 with `{}`; a job id made
//! from the job name). Tests can make chosen calls fail.

use std::collections::BTreeMap;
use std::io::ErrorKind as IoErrorKind;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;

use super::{AwsError, Effects, ErrorKind, Invocation, InvocationOutcome, InvocationType, Job};

/// Where the objects of the local bucket come from.
#[derive(Debug, Clone, Default)]
pub enum LocalBucket {
    /// No objects at all.
    #[default]
    Empty,
    /// Key `models/a/config.json` is the file `DIR/models/a/config.json`.
    Directory(PathBuf),
    /// Key to bytes.
    Memory(BTreeMap<String, Vec<u8>>),
}

#[derive(Debug, Clone, Default)]
pub struct LocalEffects {
    bucket: LocalBucket,
    failing_functions: BTreeMap<String, Failure>,
    failing_queues: BTreeMap<String, AwsError>,
    failing_keys: BTreeMap<String, AwsError>,
}

/// How an invocation of a function fails.
#[derive(Debug, Clone)]
enum Failure {
    Call(AwsError),
    InFunction { kind: String, payload: String },
}

impl LocalEffects {
    pub fn new(bucket: LocalBucket) -> Self {
        LocalEffects {
            bucket,
            ..Self::default()
        }
    }

    /// Makes every invocation of `function` fail with `error`.
    pub fn failing_function(mut self, function: &str, error: AwsError) -> Self {
        self.failing_functions
            .insert(function.to_owned(), Failure::Call(error));
        self
    }

    /// Makes `function` fail inside (Lambda's `FunctionError`).
    pub fn erroring_function(mut self, function: &str, kind: &str, payload: &str) -> Self {
        let failure = Failure::InFunction {
            kind: kind.to_owned(),
            payload: payload.to_owned(),
        };
        self.failing_functions.insert(function.to_owned(), failure);
        self
    }

    /// Makes every submission to `queue` fail with `error`.
    pub fn failing_queue(mut self, queue: &str, error: AwsError) -> Self {
        self.failing_queues.insert(queue.to_owned(), error);
        self
    }

    /// Makes reading `key`, or listing under it as a prefix, fail with `error`.
    pub fn failing_key(mut self, key: &str, error: AwsError) -> Self {
        self.failing_keys.insert(key.to_owned(), error);
        self
    }

    /// The keys under `prefix`, for listing the memory bucket.
    fn memory_prefixes(objects: &BTreeMap<String, Vec<u8>>, prefix: &str, delimiter: &str) -> Vec<String> {
        let mut prefixes: Vec<String> = objects
            .keys()
            .filter_map(|key| {
                let rest = key.strip_prefix(prefix)?;
                let end = rest.find(delimiter)?;
                Some(format!("{prefix}{}{delimiter}", &rest[..end]))
            })
            .collect();
        prefixes.dedup();
        prefixes
    }
}

fn no_such_key(key: &str) -> AwsError {
    AwsError::new(
        ErrorKind::NotFound,
        "NoSuchKey",
        format!("The specified key does not exist: {key}"),
    )
}

/// The file of `key` under `dir`, refusing keys that would leave it.
fn file_of(dir: &Path, key: &str) -> Option<PathBuf> {
    let relative = Path::new(key);
    relative
        .components()
        .all(|part| matches!(part, Component::Normal(_)))
        .then(|| dir.join(relative))
}

#[async_trait]
impl Effects for LocalEffects {
    async fn list_prefixes(
        &self,
        _bucket: &str,
        prefix: &str,
        delimiter: &str,
    ) -> Result<Vec<String>, AwsError> {
        if let Some(error) = self.failing_keys.get(prefix) {
            return Err(error.clone());
        }
        match &self.bucket {
            LocalBucket::Empty => Ok(Vec::new()),
            LocalBucket::Memory(objects) => Ok(Self::memory_prefixes(objects, prefix, delimiter)),
            LocalBucket::Directory(dir) => {
                if delimiter != "/" || !(prefix.is_empty() || prefix.ends_with('/')) {
                    return Err(AwsError::new(
                        ErrorKind::Rejected,
                        "Unsupported",
                        format!(
                            "a directory bucket lists only whole directories, not prefix {prefix:?} with delimiter {delimiter:?}"
                        ),
                    ));
                }
                let Some(listed) = file_of(dir, prefix.trim_end_matches('/')) else {
                    return Ok(Vec::new());
                };
                let entries = match std::fs::read_dir(&listed) {
                    Ok(entries) => entries,
                    Err(err) if err.kind() == IoErrorKind::NotFound => return Ok(Vec::new()),
                    Err(err) => {
                        let message = format!("reading {}: {err}", listed.display());
                        return Err(AwsError::new(ErrorKind::Unavailable, "LocalIo", message));
                    }
                };
                let mut prefixes: Vec<String> = entries
                    .filter_map(Result::ok)
                    .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
                    .filter_map(|entry| entry.file_name().into_string().ok())
                    .map(|name| format!("{prefix}{name}/"))
                    .collect();
                prefixes.sort();
                Ok(prefixes)
            }
        }
    }

    async fn get_object(&self, _bucket: &str, key: &str) -> Result<Vec<u8>, AwsError> {
        if let Some(error) = self.failing_keys.get(key) {
            return Err(error.clone());
        }
        match &self.bucket {
            LocalBucket::Empty => Err(no_such_key(key)),
            LocalBucket::Memory(objects) => objects.get(key).cloned().ok_or_else(|| no_such_key(key)),
            LocalBucket::Directory(dir) => {
                let path = file_of(dir, key).ok_or_else(|| no_such_key(key))?;
                std::fs::read(&path).map_err(|err| match err.kind() {
                    IoErrorKind::NotFound | IoErrorKind::IsADirectory => no_such_key(key),
                    _ => AwsError::new(
                        ErrorKind::Unavailable,
                        "LocalIo",
                        format!("reading {}: {err}", path.display()),
                    ),
                })
            }
        }
    }

    async fn invoke(&self, invocation: &Invocation) -> Result<InvocationOutcome, AwsError> {
        match self.failing_functions.get(&invocation.function_name) {
            Some(Failure::Call(error)) => Err(error.clone()),
            Some(Failure::InFunction { kind, payload }) => Ok(InvocationOutcome {
                status_code: 200,
                payload: payload.clone(),
                function_error: Some(kind.clone()),
            }),
            None => Ok(match invocation.invocation_type {
                InvocationType::RequestResponse => InvocationOutcome {
                    status_code: 200,
                    payload: "{}".into(),
                    function_error: None,
                },
                InvocationType::Event => InvocationOutcome {
                    status_code: 202,
                    payload: String::new(),
                    function_error: None,
                },
            }),
        }
    }

    async fn submit_job(&self, job: &Job) -> Result<String, AwsError> {
        match self.failing_queues.get(&job.queue) {
            Some(error) => Err(error.clone()),
            None => Ok(format!("local-{}", job.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn a_directory_bucket_maps_keys_to_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("models/aml")).unwrap();
        std::fs::create_dir_all(dir.path().join("models/brca")).unwrap();
        std::fs::write(dir.path().join("models/aml/config.json"), b"{}").unwrap();
        std::fs::write(dir.path().join("models/README"), b"not a model").unwrap();
        let effects = LocalEffects::new(LocalBucket::Directory(dir.path().to_owned()));
        let listed = block_on(effects.list_prefixes("emmaa", "models/", "/")).unwrap();
        assert_eq!(listed, ["models/aml/", "models/brca/"]);
        assert_eq!(
            block_on(effects.get_object("emmaa", "models/aml/config.json")).unwrap(),
            b"{}"
        );
        let missing = block_on(effects.get_object("emmaa", "models/brca/config.json")).unwrap_err();
        assert_eq!(
            (missing.kind, missing.code.as_str()),
            (ErrorKind::NotFound, "NoSuchKey")
        );
    }

    #[test]
    fn a_directory_bucket_refuses_keys_that_leave_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bucket")).unwrap();
        std::fs::write(dir.path().join("secret"), b"x").unwrap();
        let effects = LocalEffects::new(LocalBucket::Directory(dir.path().join("bucket")));
        assert!(block_on(effects.get_object("emmaa", "../secret")).is_err());
        assert!(block_on(effects.get_object("emmaa", "/etc/passwd")).is_err());
    }

    #[test]
    fn a_memory_bucket_lists_common_prefixes_once_each() {
        let objects = BTreeMap::from([
            ("models/aml/config.json".to_owned(), b"{}".to_vec()),
            ("models/aml/model.pkl".to_owned(), b"".to_vec()),
            ("models/brca/config.json".to_owned(), b"{}".to_vec()),
            ("results/aml/x.json".to_owned(), b"".to_vec()),
        ]);
        let effects = LocalEffects::new(LocalBucket::Memory(objects));
        let listed = block_on(effects.list_prefixes("emmaa", "models/", "/")).unwrap();
        assert_eq!(listed, ["models/aml/", "models/brca/"]);
    }
}
