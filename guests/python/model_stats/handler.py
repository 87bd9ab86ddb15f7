"""``emmaa-model-stats``, invoked with ``{"model": M}``: submit the Batch job
that computes the model's statistics (``M_model_stats_NOW``). The Python twin
of ``guests/model_stats``."""

from typing import Any

from emmaa_guest import Report
from emmaa_guest.batch_job import JobKind, JobRequest, submit_each
from emmaa_guest.event import model
from emmaa_guest.host import Host
from emmaa_guest.names import ModelName
from emmaa_guest.work import in_this_request


def handle(event: Any, report: Report, host: Host) -> None:
    submit_each([in_this_request(lambda: model(event))], report, host, model_stats_job)


def model_stats_job(name: ModelName) -> JobRequest:
    script = f"python scripts/run_model_stats_from_s3.py --model {name} --stats_mode model"
    return JobRequest(JobKind.MODEL_STATS, name, script)

