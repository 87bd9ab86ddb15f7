//! `deploy invoke` and `deploy logs` against moto: its Invoke runs no code
//! (it echoes the payload, or answers from a queue the test fills), and
//! sends no log tail, so the log lines come from CloudWatch Logs, written
//! by the test as a function's request would write them.

use std::io::{BufRead, BufReader};

use super::*;

fn millis_now() -> i64 {
    emmaa_deploy::remote::now_ms()
}

/// Writes `lines` into `function`'s log, one stream.
async fn write_log(moto: &Moto, function: &str, stream: &str, lines: &[String]) {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&moto.sdk_config().await);
    let group = format!("/aws/lambda/{function}");
    // The group may be there already (a second stream).
    let _ = logs.create_log_group().log_group_name(&group).send().await;
    logs.create_log_stream()
        .log_group_name(&group)
        .log_stream_name(stream)
        .send()
        .await
        .unwrap();
    let now = millis_now();
    let events = lines.iter().enumerate().map(|(at, message)| {
        aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
            .timestamp(now + at as i64)
            .message(message)
            .build()
            .unwrap()
    });
    logs.put_log_events()
        .log_group_name(&group)
        .log_stream_name(stream)
        .set_log_events(Some(events.collect()))
        .send()
        .await
        .unwrap();
}

/// A function moto knows (its code is never run).
async fn create_function(moto: &Moto, name: &str) {
    let config = moto.sdk_config().await;
    let role = moto.create_role("emmaa-lambda");
    aws_sdk_lambda::Client::new(&config)
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(upload::python_zip().into())
                .build(),
        )
        .send()
        .await
        .unwrap();
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn invoke_prints_the_answer_and_a_failed_function_is_one_line() {
    let moto = Moto::start();
    create_function(&moto, "emmaa-model-update").await;
    let queued = r#"{"statusCode": 200, "refused": []}"#;
    support::http::request(
        &moto.address,
        "POST",
        "/moto-api/static/lambda-simple/response",
        &[("Content-Type", "application/json")],
        json!({"results": [queued], "region": "us-east-1"})
            .to_string()
            .as_bytes(),
    );
    let answered = deploy(
        &[
            "invoke",
            "emmaa-model-update",
            "--data",
            r#"{"model": "aml"}"#,
            "--logs-wait",
            "0",
        ],
        &moto,
    );
    assert!(answered.status.success(), "{}", text(&answered.stderr));
    assert_eq!(text(&answered.stdout).trim(), queued);
    assert!(
        text(&answered.stderr).starts_with("emmaa-model-update: request "),
        "{}",
        text(&answered.stderr)
    );
    // With nothing queued moto echoes the event: it was sent as given.
    let echoed = deploy(
        &[
            "invoke",
            "emmaa-model-update",
            "--data",
            r#"{"model": "brca"}"#,
            "--logs-wait",
            "0",
        ],
        &moto,
    );
    assert_eq!(text(&echoed.stdout).trim(), r#"{"model": "brca"}"#);

    // A function error, as Lambda answers one, through the fault proxy.
    let proxy = FaultProxy::start(&moto.address);
    proxy.fail(
        "/invocations",
        vec![Fault::Answer {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("X-Amz-Function-Error".into(), "Unhandled".into()),
                ("x-amzn-RequestId".into(), "failed-request".into()),
            ],
            body: r#"{"errorType": "GuestTrapped", "errorMessage": "the guest trapped"}"#.into(),
        }],
    );
    let endpoint = format!("http://{}", proxy.address);
    let failed = deploy(
        &[
            "invoke",
            "emmaa-model-update",
            "--logs-wait",
            "0",
            "--endpoint-url",
            &endpoint,
        ],
        &moto,
    );
    assert_eq!(failed.status.code(), Some(1));
    let stderr = text(&failed.stderr);
    assert!(
        stderr.ends_with("deploy: emmaa-model-update failed: Unhandled: GuestTrapped: the guest trapped\n"),
        "{stderr}"
    );
    assert!(text(&failed.stdout).contains("GuestTrapped"));
    // A bad event is refused before any call.
    let bad = deploy(&["invoke", "emmaa-model-update", "--data", "{nope"], &moto);
    assert!(
        text(&bad.stderr).starts_with("deploy: the event is not JSON"),
        "{}",
        text(&bad.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invoke_prints_the_log_lines_of_its_own_request_only() {
    let moto = Moto::start();
    create_function(&moto, "emmaa-queries").await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_deploy"))
        .args([
            "invoke",
            "emmaa-queries",
            "--data",
            r#"{"model": "aml"}"#,
            "--logs-wait",
            "60",
        ])
        .envs(moto.env())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    let request_id = first
        .strip_prefix("emmaa-queries: request ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    // The request's lines reach the log after the answer, with another
    // request's between them.
    let lines = vec![
        format!("START RequestId: {request_id} Version: $LATEST"),
        format!(r#"{{"level":"INFO","fields":{{"message":"handled","request_id":"{request_id}"}}}}"#),
        r#"{"level":"INFO","fields":{"message":"handled","request_id":"someone-else"}}"#.to_owned(),
        format!("END RequestId: {request_id}"),
        format!("REPORT RequestId: {request_id}\tDuration: 12.00 ms"),
    ];
    write_log(&moto, "emmaa-queries", "2026/12/05/[$LATEST]abc", &lines).await;
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "{first}{rest}");
    for (index, line) in lines.iter().enumerate() {
        assert_eq!(rest.contains(line.as_str()), index != 2, "{line}: {rest}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_filter_by_request_and_level_and_tail_prints_new_lines_once() {
    let moto = Moto::start();
    let lines: Vec<String> = [
        r#"{"level":"INFO","fields":{"message":"handled","request_id":"r1"}}"#,
        r#"{"level":"WARN","fields":{"message":"answered 207","request_id":"r1"}}"#,
        r#"{"level":"ERROR","fields":{"message":"bad setting","request_id":"r2"}}"#,
        "REPORT RequestId: r2\tDuration: 3.00 ms",
    ]
    .map(String::from)
    .into();
    write_log(&moto, "emmaa-model-stats", "s1", &lines).await;
    let logs = |more: &[&str]| {
        let output = deploy(
            &[&["logs", "emmaa-model-stats", "--since", "1h"][..], more].concat(),
            &moto,
        );
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout)
    };
    assert_eq!(logs(&[]), lines.join("\n") + "\n");
    assert_eq!(
        logs(&["--level", "warn"]),
        format!("{}\n{}\n", lines[1], lines[2])
    );
    assert_eq!(
        logs(&["--request-id", "r2"]),
        format!("{}\n{}\n", lines[2], lines[3])
    );

    // --tail keeps polling: a line written later is printed, each once.
    let child = Command::new(env!("CARGO_BIN_EXE_deploy"))
        .args([
            "logs",
            "emmaa-model-stats",
            "--since",
            "1h",
            "--tail",
            "--for",
            "4",
            "--poll",
            "0.2",
        ])
        .envs(moto.env())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let later = r#"{"level":"INFO","fields":{"message":"later"}}"#.to_owned();
    write_log(&moto, "emmaa-model-stats", "s2", std::slice::from_ref(&later)).await;
    let output = child.wait_with_output().unwrap();
    let printed = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(printed, lines.join("\n") + "\n" + &later + "\n");

    let missing = deploy(&["logs", "emmaa-nope"], &moto);
    assert!(
        text(&missing.stderr).starts_with("deploy: log group /aws/lambda/emmaa-nope does not exist in "),
        "{}",
        text(&missing.stderr)
    );
}
