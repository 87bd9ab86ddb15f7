"""The library inside a component: the host through the contract's imports
(``wit_world``, which componentize-py makes from ``wit/emmaa.wit`` when it
builds the component), and the ``WitWorld`` class it exports. Imported only
by a guest's ``app.py``: everything else runs without WebAssembly."""

import traceback

import wit_world
from componentize_py_types import Err
from wit_world.imports import batch, environment, errors, functions, storage

from .answer import HandlerError
from .host import (
    AlreadyInvoked,
    AlreadySubmitted,
    AwsError,
    InProgress,
    Invocation,
    InvocationType,
    Invoked,
    InvokedNow,
    Job,
    Settings,
    Submission,
    Submitted,
)
from .runner import Handler, run


class ComponentHost:
    """The host, through the contract's imports."""

    def settings(self) -> Settings:
        got = environment.get_settings()
        event = got.invocation_type == functions.InvocationType.EVENT
        return Settings(
            bucket=got.bucket,
            project=got.project,
            branch=got.branch,
            job_queue=got.job_queue,
            job_definition=got.job_definition,
            large_models=list(got.large_models),
            large_job_queue=got.large_job_queue,
            large_job_definition=got.large_job_definition,
            function_prefix=got.function_prefix,
            invocation_type=InvocationType.EVENT if event else InvocationType.REQUEST_RESPONSE,
        )

    def now(self) -> int:
        return environment.now()

    def log(self, level: str, message: str) -> None:
        levels = {
            "debug": environment.Level.DEBUG,
            "info": environment.Level.INFO,
            "warn": environment.Level.WARN,
        }
        environment.log(levels.get(level, environment.Level.ERROR), message)

    def get_objects(self, bucket: str, keys: list[str], max_size: int) -> "list[bytes | AwsError]":
        return [
            _aws_error(result.value) if isinstance(result, Err) else bytes(result.value)
            for result in storage.get_objects(bucket, keys, max_size)
        ]

    def invoke(self, invocations: list[Invocation]) -> list[Invoked]:
        kinds = {
            InvocationType.EVENT: functions.InvocationType.EVENT,
            InvocationType.REQUEST_RESPONSE: functions.InvocationType.REQUEST_RESPONSE,
        }
        wit_invocations = [
            functions.Invocation(i.function_name, kinds[i.invocation_type], i.payload, i.work) for i in invocations
        ]
        answers: list[Invoked] = []
        for result in functions.invoke(wit_invocations):
            if isinstance(result, Err):
                answers.append(_aws_error(result.value))
            elif isinstance(result.value, functions.Invoked_Now):
                outcome = result.value.value
                answers.append(InvokedNow(outcome.status_code, outcome.payload, outcome.function_error))
            elif isinstance(result.value, functions.Invoked_Already):
                answers.append(AlreadyInvoked())
            else:
                answers.append(InProgress(result.value.value))
        return answers

    def submit(self, jobs: list[Job]) -> list[Submission]:
        wit_jobs = [batch.Job(j.name, j.queue, j.definition, j.command, j.depends_on, j.work) for j in jobs]
        answers: list[Submission] = []
        for result in batch.submit(wit_jobs):
            if isinstance(result, Err):
                answers.append(_aws_error(result.value))
            elif isinstance(result.value, batch.Submission_Submitted):
                answers.append(Submitted(result.value.value))
            elif isinstance(result.value, batch.Submission_AlreadySubmitted):
                answers.append(AlreadySubmitted(result.value.value))
            else:
                answers.append(InProgress(result.value.value))
        return answers


def _aws_error(error: errors.AwsError) -> AwsError:
    return AwsError(error.kind.name.lower().replace("_", "-"), error.code, error.message)


def export(handler: Handler) -> type:
    """The ``WitWorld`` class that exports `handler` as the component's
    ``handle``: ``WitWorld = export(handle)`` in ``app.py``."""

    class Exported(wit_world.WitWorld):
        def handle(self, event: str, context: wit_world.Context) -> str:
            host = ComponentHost()
            try:
                return run(event, context.request_id, handler, host)
            except HandlerError as failed:
                raise Err(str(failed)) from None
            except Exception as raised:
                # The host names what the guest logged last when it reports
                # the trap that follows, as it does a Rust guest's panic.
                host.log("error", "raised " + "".join(traceback.format_exception_only(raised)).strip())
                raise

    return Exported
