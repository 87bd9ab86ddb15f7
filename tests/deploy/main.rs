//! End to end against a real AWS API, one module per capability: the moto
//! server on loopback, started and stopped by each test. The AWS backend
//! lists, reads, invokes and submits through the SDK; the real `bootstrap`
//! executable answers events through Lambda's Runtime API; `deploy upload`
//! replaces a function's code; `deploy stack` stands the pipeline up.

#[path = "../support/mod.rs"]
mod support;

mod aws_backend;
mod bootstrap_on_lambda;
mod command_line;
mod day;
mod documented_commands;
mod faults;
mod lambda_handler;
mod ledger;
mod recorder;
mod remote;
mod stack;
mod throttling;
mod upload;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_batch::types::{
    CeType, ComputeEnvironmentOrder, ContainerProperties, JobDefinitionType, JqState, ResourceRequirement,
    ResourceType,
};
use emmaa_aws::AwsEffects;
use emmaa_deploy::arch::Arch;
use emmaa_deploy::bundle::{Bundle, BundleRequest, Serves, build_bootstrap, bundle};
use emmaa_runtime::Effects;
use emmaa_runtime::effects::{ErrorKind, Invocation, InvocationType};
use emmaa_runtime::{EventContext, GuestRun, Settings};
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use support::bundle::unzip;
use support::fault_proxy::{Fault, FaultProxy};
use support::guests::{NOW, STAMP, bucket, guest, settings};
use support::http::{Reply, serve};
use support::moto::{Moto, recorded_body};
use support::runtime_api::RuntimeApi;
use support::workspace;

use bootstrap_on_lambda::{PATIENCE, answer_one_event, bootstrap, start_bootstrap, unpacked_bundle};
use faults::{assert_each_invoked_once, daily_models_behind_a_proxy, update_payload};
use ledger::{env_through, model_states_event};
use recorder::host_cli;
use throttling::effects_for;
use upload::deploy;

const QUEUE: &str = "emmaa-models-update-test";
const DEFINITION: &str = "emmaa_jobdef";

/// Creates the default queue and job definition (Batch needs a role and a
/// compute environment under them).
async fn create_batch_queue(moto: &Moto, config: &SdkConfig) {
    let role = moto.create_role("emmaa-batch");
    let batch = aws_sdk_batch::Client::new(config);
    let environment = batch
        .create_compute_environment()
        .compute_environment_name("emmaa-unmanaged")
        .r#type(CeType::Unmanaged)
        .service_role(role)
        .send()
        .await
        .unwrap();
    let order = ComputeEnvironmentOrder::builder()
        .order(1)
        .compute_environment(environment.compute_environment_arn().unwrap())
        .build();
    batch
        .create_job_queue()
        .job_queue_name(QUEUE)
        .state(JqState::Enabled)
        .priority(1)
        .compute_environment_order(order)
        .send()
        .await
        .unwrap();
    let requirement = |kind, value: &str| ResourceRequirement::builder().r#type(kind).value(value).build();
    let container = ContainerProperties::builder()
        .image("emmaa")
        .resource_requirements(requirement(ResourceType::Vcpu, "1"))
        .resource_requirements(requirement(ResourceType::Memory, "512"))
        .build();
    batch
        .register_job_definition()
        .job_definition_name(DEFINITION)
        .r#type(JobDefinitionType::Container)
        .container_properties(container)
        .send()
        .await
        .unwrap();
}

/// Creates `bucket` holding `objects`, a few uploads at a time.
async fn create_bucket(config: &SdkConfig, bucket: &str, objects: Vec<(String, Vec<u8>)>) {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    futures::stream::iter(objects)
        .map(|(key, body)| {
            let s3 = s3.clone();
            async move {
                s3.put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(body.into())
                    .send()
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
}

/// The example bucket's files as (key, contents).
fn example_objects() -> Vec<(String, Vec<u8>)> {
    let root = workspace().join("examples/bucket");
    let mut objects = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let key = path.strip_prefix(&root).unwrap().to_str().unwrap().to_owned();
                objects.push((key, std::fs::read(&path).unwrap()));
            }
        }
    }
    objects
}

/// Runs `guest_name` on `event` with the production AWS clients (retries,
/// timeouts) pointed at `address`: moto, or a fault proxy in front of it.
async fn run_on_aws(guest_name: &str, event: Value, address: &str, settings: Settings) -> GuestRun {
    run_build_on_aws(&guest(guest_name), guest_name, event, address, settings).await
}

/// As [`run_on_aws`], with the loaded `build` of `guest_name` (its Rust or
/// its Python build).
async fn run_build_on_aws(
    build: &emmaa_runtime::LoadedGuest,
    guest_name: &str,
    event: Value,
    address: &str,
    settings: Settings,
) -> GuestRun {
    let context = EventContext {
        function_name: guest_name.into(),
        request_id: "e2e".into(),
        deadline_ms: NOW * 1000 + 900_000,
        time_left: std::time::Duration::from_secs(900),
        now: NOW,
    };
    build
        .handle(
            &event.to_string(),
            &context,
            Arc::new(effects_for(address).await),
            Arc::new(settings),
        )
        .await
}
