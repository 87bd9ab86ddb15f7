//! The local backend: the bucket is a directory (`--bucket-dir`), a map in
//! memory, or empty; invocations and Batch submissions are not performed
//! but answered with deterministic fake results (200 with `{}`; a job id made
//! from the job name); the ledger's claims are kept in memory or in a
//! directory of their own (`--ledger-dir`). Tests can make chosen calls fail.
//!
//! The directory stands in for S3, so it behaves like it: a key is a regular
//! file inside the directory, nothing else. A key that leaves the directory
//! (`..`, an absolute path, a symlink pointing out) or names a special file
//! (a FIFO, a device) is refused by name, never followed or read; a listing
//! lists every subdirectory, so what it cannot serve is refused when read,
//! by name, not dropped.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::digest::sha256_hex;

use super::{AwsError, Condition, Effects, ErrorKind, Invocation, InvocationOutcome, InvocationType, Job};

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
    /// Another bucket, with objects written over it in memory
    /// (`simulate`): they are read and listed first; the bucket under them
    /// is never changed.
    Overlay {
        base: Box<LocalBucket>,
        written: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    },
}

impl LocalBucket {
    fn prefixes(&self, prefix: &str, delimiter: &str) -> Result<Vec<String>, AwsError> {
        match self {
            LocalBucket::Empty => Ok(Vec::new()),
            LocalBucket::Memory(objects) => Ok(LocalEffects::memory_prefixes(objects, prefix, delimiter)),
            LocalBucket::Directory(dir) => directory_prefixes(dir, prefix, delimiter),
            LocalBucket::Overlay { base, written } => {
                let mut prefixes = base.prefixes(prefix, delimiter)?;
                let written = written.lock().map_err(|_| poisoned())?;
                prefixes.extend(LocalEffects::memory_prefixes(&written, prefix, delimiter));
                prefixes.sort();
                prefixes.dedup();
                Ok(prefixes)
            }
        }
    }

    fn object(&self, bucket: &str, key: &str, max_size: u64) -> Result<Vec<u8>, AwsError> {
        match self {
            LocalBucket::Empty => Err(no_such_key(key)),
            LocalBucket::Memory(objects) => {
                memory_object(objects, bucket, key, max_size).unwrap_or_else(|| Err(no_such_key(key)))
            }
            LocalBucket::Directory(dir) => directory_object(dir, bucket, key, max_size),
            LocalBucket::Overlay { base, written } => {
                let written = written.lock().map_err(|_| poisoned())?;
                let found = memory_object(&written, bucket, key, max_size);
                found.unwrap_or_else(|| base.object(bucket, key, max_size))
            }
        }
    }
}

/// Where the claims of the ledger are kept: never in the bucket directory,
/// which replay only reads.
#[derive(Debug, Clone)]
pub enum LocalLedger {
    /// In memory, for one run: replaying an event twice prints the same.
    Memory(Arc<Mutex<BTreeMap<String, Vec<u8>>>>),
    /// Files under a directory (`replay --ledger-dir`), kept between runs
    /// to try redelivery; conditional writes are atomic across processes.
    Directory(PathBuf),
}

impl Default for LocalLedger {
    fn default() -> Self {
        LocalLedger::Memory(Arc::default())
    }
}

#[derive(Debug, Clone, Default)]
pub struct LocalEffects {
    bucket: LocalBucket,
    ledger: LocalLedger,
    failing_functions: BTreeMap<String, Failure>,
    failing_queues: BTreeMap<String, AwsError>,
    failing_keys: BTreeMap<String, AwsError>,
    /// The (queue, job name) pairs asked of `find_jobs`, shared by clones.
    looked_up: Arc<Mutex<Vec<(String, String)>>>,
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

    /// The jobs looked for by queue and name (Batch's ListJobs), in order.
    pub fn jobs_looked_up(&self) -> Vec<(String, String)> {
        self.looked_up
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Keeps the ledger's claims in `ledger` instead of memory.
    pub fn with_ledger(mut self, ledger: LocalLedger) -> Self {
        self.ledger = ledger;
        self
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

fn local_io(path: &Path, err: &std::io::Error) -> AwsError {
    AwsError::new(
        ErrorKind::Unavailable,
        "LocalIo",
        format!("reading {}: {err}", path.display()),
    )
}

fn refused(code: &str, message: String) -> AwsError {
    AwsError::new(ErrorKind::Rejected, code, message)
}

/// Where `key` is inside the bucket directory `dir`, symlinks resolved:
/// `Ok(None)` when nothing is there, an error when the key leaves `dir`.
fn resolve(dir: &Path, key: &str) -> Result<Option<PathBuf>, AwsError> {
    let relative = Path::new(key);
    if !relative
        .components()
        .all(|part| matches!(part, Component::Normal(_)))
    {
        return Err(refused(
            "KeyOutsideBucket",
            format!("key {key:?} leaves the bucket directory (only plain relative paths are keys)"),
        ));
    }
    let root = dir.canonicalize().map_err(|err| local_io(dir, &err))?;
    let path = match root.join(relative).canonicalize() {
        Ok(path) => path,
        Err(err) if matches!(err.kind(), IoErrorKind::NotFound | IoErrorKind::NotADirectory) => {
            return Ok(None);
        }
        Err(err) => return Err(local_io(&root.join(relative), &err)),
    };
    if !path.starts_with(&root) {
        return Err(refused(
            "KeyOutsideBucket",
            format!(
                "key {key:?} is a symlink to {}, outside the bucket directory {}; it is not followed",
                path.display(),
                root.display()
            ),
        ));
    }
    Ok(Some(path))
}

/// The bytes of the regular file at `path` (key `key`), at most `max_size`.
fn read_file(bucket: &str, key: &str, path: &Path, max_size: u64) -> Result<Vec<u8>, AwsError> {
    let metadata = std::fs::metadata(path).map_err(|err| local_io(path, &err))?;
    if metadata.is_dir() {
        return Err(no_such_key(key));
    }
    if !metadata.is_file() {
        return Err(refused(
            "NotARegularFile",
            format!(
                "key {key:?} ({}) is not a regular file but a FIFO, device or socket; it is not read",
                path.display()
            ),
        ));
    }
    if metadata.len() > max_size {
        return Err(AwsError::too_large(bucket, key, metadata.len(), max_size));
    }
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|file| file.take(max_size.saturating_add(1)).read_to_end(&mut bytes))
        .map_err(|err| local_io(path, &err))?;
    match u64::try_from(bytes.len()) {
        Ok(size) if size <= max_size => Ok(bytes),
        _ => Err(AwsError::too_large(
            bucket,
            key,
            metadata.len().max(max_size + 1),
            max_size,
        )),
    }
}

/// The ETag of a local object: the SHA-256 of its bytes.
fn etag_of(bytes: &[u8]) -> String {
    sha256_hex(bytes)
}

fn ledger_io(path: &Path, err: &std::io::Error) -> AwsError {
    AwsError::new(
        ErrorKind::Unavailable,
        "LocalLedgerIo",
        format!("the ledger at {}: {err}", path.display()),
    )
}

impl LocalLedger {
    fn path(dir: &Path, key: &str) -> Result<PathBuf, AwsError> {
        let relative = Path::new(key);
        if relative
            .components()
            .all(|part| matches!(part, Component::Normal(_)))
        {
            Ok(dir.join(relative))
        } else {
            Err(refused(
                "KeyOutsideBucket",
                format!("ledger key {key:?} leaves the ledger directory"),
            ))
        }
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, AwsError> {
        match self {
            LocalLedger::Memory(claims) => Ok(claims.lock().map_err(|_| poisoned())?.get(key).cloned()),
            LocalLedger::Directory(dir) => {
                let path = Self::path(dir, key)?;
                match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(err) if err.kind() == IoErrorKind::NotFound => Ok(None),
                    Err(err) => Err(ledger_io(&path, &err)),
                }
            }
        }
    }

    /// Writes `body` if `condition` holds; `None` to delete instead.
    fn put(&self, key: &str, body: Option<Vec<u8>>, condition: &Condition) -> Result<String, AwsError> {
        let holds = |current: Option<&Vec<u8>>| match (condition, current) {
            (Condition::Absent, None) => true,
            (Condition::Matches(etag), Some(bytes)) => etag_of(bytes) == *etag,
            _ => false,
        };
        let etag = body.as_deref().map(etag_of).unwrap_or_default();
        match self {
            LocalLedger::Memory(claims) => {
                let mut claims = claims.lock().map_err(|_| poisoned())?;
                if !holds(claims.get(key)) {
                    return Err(AwsError::precondition_failed(key));
                }
                match body {
                    Some(body) => claims.insert(key.to_owned(), body),
                    None => claims.remove(key),
                };
                Ok(etag)
            }
            LocalLedger::Directory(dir) => {
                let path = Self::path(dir, key)?;
                let parent = path.parent().unwrap_or(dir);
                std::fs::create_dir_all(parent).map_err(|err| ledger_io(parent, &err))?;
                // One writer at a time per claim, across processes.
                let lock_path = path.with_extension("lock");
                let lock = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .map_err(|err| ledger_io(&lock_path, &err))?;
                lock.lock().map_err(|err| ledger_io(&lock_path, &err))?;
                let current = self.get(key)?;
                if !holds(current.as_ref()) {
                    return Err(AwsError::precondition_failed(key));
                }
                match body {
                    // Written aside, then renamed: a reader sees the old
                    // claim or the new one, never half of one.
                    Some(body) => {
                        let aside = path.with_extension(format!("{}.tmp", std::process::id()));
                        File::create(&aside)
                            .and_then(|mut file| file.write_all(&body))
                            .and_then(|()| std::fs::rename(&aside, &path))
                            .map_err(|err| ledger_io(&path, &err))?;
                    }
                    None => std::fs::remove_file(&path).map_err(|err| ledger_io(&path, &err))?,
                }
                Ok(etag)
            }
        }
    }
}

/// The common prefixes of a directory bucket: its subdirectories.
fn directory_prefixes(dir: &Path, prefix: &str, delimiter: &str) -> Result<Vec<String>, AwsError> {
    if delimiter != "/" || !(prefix.is_empty() || prefix.ends_with('/')) {
        return Err(AwsError::new(
            ErrorKind::Rejected,
            "Unsupported",
            format!(
                "a directory bucket lists only whole directories, not prefix {prefix:?} with delimiter {delimiter:?}"
            ),
        ));
    }
    let Some(listed) = resolve(dir, prefix.trim_end_matches('/'))? else {
        return Ok(Vec::new());
    };
    let entries = match std::fs::read_dir(&listed) {
        Ok(entries) => entries,
        Err(err) if err.kind() == IoErrorKind::NotADirectory => return Ok(Vec::new()),
        Err(err) => return Err(local_io(&listed, &err)),
    };
    let mut prefixes = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| local_io(&listed, &err))?;
        // A regular file is an object, not a prefix. Anything else is
        // listed, so whatever cannot be served is refused by name when a
        // handler reads under it.
        let is_object = entry.file_type().is_ok_and(|kind| kind.is_file());
        if !is_object {
            let name = entry.file_name().to_string_lossy().into_owned();
            prefixes.push(format!("{prefix}{name}/"));
        }
    }
    prefixes.sort();
    Ok(prefixes)
}

fn directory_object(dir: &Path, bucket: &str, key: &str, max_size: u64) -> Result<Vec<u8>, AwsError> {
    match resolve(dir, key)? {
        Some(path) => read_file(bucket, key, &path, max_size),
        None => Err(no_such_key(key)),
    }
}

/// The object at `key` in memory, if there is one.
fn memory_object(
    objects: &BTreeMap<String, Vec<u8>>,
    bucket: &str,
    key: &str,
    max_size: u64,
) -> Option<Result<Vec<u8>, AwsError>> {
    let object = objects.get(key)?;
    let size = object.len() as u64;
    Some(if size > max_size {
        Err(AwsError::too_large(bucket, key, size, max_size))
    } else {
        Ok(object.clone())
    })
}

fn poisoned() -> AwsError {
    AwsError::new(
        ErrorKind::Unavailable,
        "LocalLedgerPoisoned",
        "the in-memory ledger is unusable",
    )
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
        self.bucket.prefixes(prefix, delimiter)
    }

    async fn get_object(&self, bucket: &str, key: &str, max_size: u64) -> Result<Vec<u8>, AwsError> {
        if let Some(error) = self.failing_keys.get(key) {
            return Err(error.clone());
        }
        self.bucket.object(bucket, key, max_size)
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

    async fn get_object_tagged(
        &self,
        _bucket: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, String)>, AwsError> {
        Ok(self.ledger.get(key)?.map(|bytes| {
            let etag = etag_of(&bytes);
            (bytes, etag)
        }))
    }

    async fn put_object_if(
        &self,
        _bucket: &str,
        key: &str,
        body: Vec<u8>,
        condition: Condition,
    ) -> Result<String, AwsError> {
        self.ledger.put(key, Some(body), &condition)
    }

    async fn delete_object_if(&self, _bucket: &str, key: &str, etag: &str) -> Result<(), AwsError> {
        self.ledger
            .put(key, None, &Condition::Matches(etag.to_owned()))
            .map(drop)
    }

    /// Local jobs are not kept anywhere: there is none to find (the
    /// question is noted: [`LocalEffects::jobs_looked_up`]).
    async fn find_jobs(&self, queue: &str, job_name: &str) -> Result<Vec<String>, AwsError> {
        self.looked_up
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((queue.to_owned(), job_name.to_owned()));
        Ok(Vec::new())
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
            block_on(effects.get_object("emmaa", "models/aml/config.json", 100)).unwrap(),
            b"{}"
        );
        let missing = block_on(effects.get_object("emmaa", "models/brca/config.json", 100)).unwrap_err();
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
        for key in ["../secret", "/etc/passwd", "models/../../secret"] {
            let err = block_on(effects.get_object("emmaa", key, 100)).unwrap_err();
            assert_eq!(err.code, "KeyOutsideBucket", "{key}");
        }
    }

    #[test]
    fn a_directory_bucket_does_not_follow_a_symlink_out_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = dir.path().join("bucket");
        std::fs::create_dir_all(bucket.join("models/aml")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/config.json"), b"{}").unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("outside/config.json"),
            bucket.join("models/aml/config.json"),
        )
        .unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), bucket.join("models/evil")).unwrap();
        let effects = LocalEffects::new(LocalBucket::Directory(bucket));
        let err = block_on(effects.get_object("emmaa", "models/aml/config.json", 100)).unwrap_err();
        assert_eq!(
            (err.kind, err.code.as_str()),
            (ErrorKind::Rejected, "KeyOutsideBucket")
        );
        assert!(
            err.message.contains("outside the bucket directory"),
            "{}",
            err.message
        );
        // The symlinked directory is listed, so reading under it is refused by name.
        let listed = block_on(effects.list_prefixes("emmaa", "models/", "/")).unwrap();
        assert_eq!(listed, ["models/aml/", "models/evil/"]);
        let err = block_on(effects.get_object("emmaa", "models/evil/config.json", 100)).unwrap_err();
        assert_eq!(err.code, "KeyOutsideBucket");
    }

    #[test]
    fn a_directory_bucket_follows_a_symlink_that_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("models/aml")).unwrap();
        std::fs::write(dir.path().join("models/aml/real.json"), b"{}").unwrap();
        std::os::unix::fs::symlink("real.json", dir.path().join("models/aml/config.json")).unwrap();
        let effects = LocalEffects::new(LocalBucket::Directory(dir.path().to_owned()));
        assert_eq!(
            block_on(effects.get_object("emmaa", "models/aml/config.json", 100)).unwrap(),
            b"{}"
        );
    }

    #[test]
    fn a_directory_bucket_refuses_a_fifo_without_opening_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("models/aml")).unwrap();
        let fifo = dir.path().join("models/aml/config.json");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let effects = LocalEffects::new(LocalBucket::Directory(dir.path().to_owned()));
        let err = block_on(effects.get_object("emmaa", "models/aml/config.json", 100)).unwrap_err();
        assert_eq!(
            (err.kind, err.code.as_str()),
            (ErrorKind::Rejected, "NotARegularFile")
        );
    }

    #[test]
    fn an_object_over_the_size_limit_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("models/aml")).unwrap();
        std::fs::write(dir.path().join("models/aml/config.json"), vec![b' '; 101]).unwrap();
        let effects = LocalEffects::new(LocalBucket::Directory(dir.path().to_owned()));
        let err = block_on(effects.get_object("emmaa", "models/aml/config.json", 100)).unwrap_err();
        assert_eq!((err.kind, err.code.as_str()), (ErrorKind::TooLarge, "TooLarge"));
        assert!(
            err.message.contains("is 101 bytes, more than the 100"),
            "{}",
            err.message
        );
        assert_eq!(
            block_on(effects.get_object("emmaa", "models/aml/config.json", 101))
                .unwrap()
                .len(),
            101
        );
    }

    #[test]
    fn a_listing_names_entries_it_cannot_decode_instead_of_dropping_them() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let name = std::ffi::OsStr::from_bytes(b"bad\xffname");
        std::fs::create_dir_all(dir.path().join("models").join(name)).unwrap();
        let effects = LocalEffects::new(LocalBucket::Directory(dir.path().to_owned()));
        let listed = block_on(effects.list_prefixes("emmaa", "models/", "/")).unwrap();
        assert_eq!(listed, ["models/bad\u{fffd}name/"]);
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
