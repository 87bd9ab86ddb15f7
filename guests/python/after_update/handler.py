"""``emmaa-after-update``, triggered by a new ``results/M/model_manager_{date}.pkl``:
invoke ``emmaa-model-stats``, ``emmaa-test-pipeline`` and ``emmaa-queries`` with
``{"model": M}``, then ``emmaa-test-update`` if the model makes tests. The three
invocations go out even when ``config.json`` cannot be read. The Python twin of
``guests/after_update``."""

from typing import Any

from emmaa_guest import Refusal, Report
from emmaa_guest.batch_job import PER_MODEL, check_job_names
from emmaa_guest.fan_out import Call, invoke_all
from emmaa_guest.host import Host
from emmaa_guest.models import read_configs
from emmaa_guest.names import ModelName
from emmaa_guest.s3_event import KeyRefused, model_manager_key, parse_records
from emmaa_guest.work import part_of


def _new_model_manager(key_field: str, key: str) -> ModelName:
    model = model_manager_key(key_field, key)
    try:
        check_job_names(PER_MODEL, model, None)
    except Refusal as refusal:
        raise KeyRefused(refusal.reason) from None
    return model


def handle(event: Any, report: Report, host: Host) -> None:
    settings = host.settings()
    records = report.keep_valid(parse_records(event, settings.bucket, _new_model_manager).noting_ignored(report))
    after_update_calls = [
        Call(model.value, function, {"model": model.value}).claiming(part_of(work, function))
        for model, work in records
        for function in ("model-stats", "test-pipeline", "queries")
    ]
    invoke_all(host, settings, after_update_calls, report)

    test_update_calls = []
    for config, (model, work) in zip(read_configs(host, settings, [model for model, _ in records]), records):
        if isinstance(config, Refusal):
            report.refuse(config)
        elif config.make_tests:
            test_update_calls.append(
                Call(model.value, "test-update", {"model": model.value}).claiming(part_of(work, "test-update"))
            )
    invoke_all(host, settings, test_update_calls, report)
