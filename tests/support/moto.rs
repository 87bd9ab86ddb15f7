#![allow(dead_code, reason = "each test binary uses part of the shared helpers")]

//! A moto server on a free loopback port, started for one test and stopped
//! when dropped. moto is installed into `target/moto-venv` when the machine
//! has no `moto_server`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde_json::Value;

use super::{http, workspace};

const MOTO_PACKAGES: &[&str] = &[
    "moto[s3,awslambda,batch,cloudformation,events,logs,sqs,iam]==5.2.1",
    "flask",
    "flask-cors",
];

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// `moto_server`: the machine's, or one installed into the project's venv.
fn moto_server() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        on_path("moto_server").unwrap_or_else(|| venv_tool("moto-venv", "moto_server", MOTO_PACKAGES))
    })
}

/// `program`, installed with `packages` into `target/<venv>` unless it is there.
pub fn venv_tool(venv: &str, program: &str, packages: &[&str]) -> PathBuf {
    let venv = workspace().join("target").join(venv);
    let installed = venv.join("bin").join(program);
    if !installed.is_file() {
        let python = on_path("python3").expect("python3 is needed to install the tests' tools");
        let status = Command::new(&python)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap();
        assert!(status.success(), "creating {} failed", venv.display());
        // No bytecode compiled at install (checkov's tree alone takes 7 s
        // of it here): Python compiles what it imports when it imports it.
        let status = Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--no-compile"])
            .args(packages)
            .status()
            .unwrap();
        assert!(status.success(), "pip install {packages:?} failed");
    }
    installed
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Moto {
    child: Child,
    pub address: String,
    recording: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// A server ready for Lambda and Batch without Docker.
    pub fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// As [`Moto::start`], with Batch failing every job it is sent (moto's
    /// simple Batch reads `MOTO_SIMPLE_BATCH_FAIL_AFTER` from its server's
    /// environment).
    pub fn start_failing_every_job() -> Moto {
        Moto::start_with(&[("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")])
    }

    fn start_with(env: &[(&str, &str)]) -> Moto {
        let moto = Moto::start_unconfigured_with(env);
        let config = br#"{"lambda": {"use_docker": false}, "batch": {"use_docker": false}}"#;
        let answer = http::request(&moto.address, "POST", "/moto-api/config", &[], config);
        assert!(
            (200..300).contains(&http::status(&answer)),
            "{}",
            answer.body_text()
        );
        moto
    }

    /// A server as moto starts: with `use_docker: false`, moto keeps the
    /// functions CloudFormation makes out of the Lambda API.
    pub fn start_unconfigured() -> Moto {
        Moto::start_unconfigured_with(&[])
    }

    fn start_unconfigured_with(env: &[(&str, &str)]) -> Moto {
        let dir = tempfile::tempdir().unwrap();
        let recording = dir.path().join("recording.jsonl");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_RECORDER_FILEPATH", &recording)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("moto_server starts");
        let moto = Moto {
            child,
            address: format!("127.0.0.1:{port}"),
            recording,
            _dir: dir,
        };
        // Ready once it answers a request: a busy machine can accept
        // connections some time before moto serves them.
        let started = Instant::now();
        while let Err(err) = http::try_request(&moto.address, "GET", "/moto-api/config", &[], b"") {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto did not answer within a minute: {err}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The SDK configuration for this server, with dummy credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "moto",
            ))
            .load()
            .await
    }

    /// What a child process needs to talk to this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint().as_str()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
    }

    pub fn start_recording(&self) {
        let answer = http::request(
            &self.address,
            "POST",
            "/moto-api/recorder/start-recording",
            &[],
            b"",
        );
        assert_eq!(http::status(&answer), 200);
    }

    /// Every request moto recorded since `start_recording`.
    pub fn recording(&self) -> Vec<Value> {
        let answer = http::request(
            &self.address,
            "GET",
            "/moto-api/recorder/download-recording",
            &[],
            b"",
        );
        let text = if answer.body.is_empty() {
            std::fs::read_to_string(&self.recording).unwrap_or_default()
        } else {
            answer.body_text()
        };
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn authorization(service: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=test/20200101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
        )
    }

    /// A call to a JSON-protocol service (Events, Logs, SQS): its answer.
    pub fn json_call(&self, service: &str, target: &str, body: Value) -> Value {
        let content_type = match service {
            "sqs" => "application/x-amz-json-1.0",
            _ => "application/x-amz-json-1.1",
        };
        let answer = http::request(
            &self.address,
            "POST",
            "/",
            &[
                ("Content-Type", content_type),
                ("X-Amz-Target", target),
                ("Authorization", &Moto::authorization(service)),
            ],
            body.to_string().as_bytes(),
        );
        assert_eq!(http::status(&answer), 200, "{target}: {}", answer.body_text());
        serde_json::from_slice(&answer.body).unwrap()
    }

    /// A call to a query-protocol service (IAM): its XML answer.
    pub fn query_call(&self, service: &str, query: &str) -> String {
        let authorization = Moto::authorization(service);
        let answer = http::request(
            &self.address,
            "POST",
            "/",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Authorization", &authorization),
            ],
            query.as_bytes(),
        );
        assert_eq!(http::status(&answer), 200, "{query}: {}", answer.body_text());
        answer.body_text()
    }

    /// Creates an IAM role (Lambda and Batch need one) and answers its ARN.
    pub fn create_role(&self, name: &str) -> String {
        let body =
            format!("Action=CreateRole&Version=2010-05-08&RoleName={name}&AssumeRolePolicyDocument=%7B%7D");
        let authorization = "AWS4-HMAC-SHA256 Credential=test/20200101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0";
        let answer = http::request(
            &self.address,
            "POST",
            "/",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Authorization", authorization),
            ],
            body.as_bytes(),
        );
        assert_eq!(http::status(&answer), 200, "{}", answer.body_text());
        format!("arn:aws:iam::123456789012:role/{name}")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of a recorded request, decoded.
pub fn recorded_body(request: &Value) -> String {
    let body = request["body"].as_str().unwrap_or_default();
    if request["body_encoded"].as_bool() == Some(true) {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        body.to_owned()
    }
}
