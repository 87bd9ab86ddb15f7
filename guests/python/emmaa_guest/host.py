"""What a handler asks of the host, in the library's own types: the settings,
the clock, the log, S3 reads, Lambda invocations and Batch submissions. In a component the calls go
through the contract's imports (``component.ComponentHost``); a unit test
gives a ``Host`` of its own, and never needs ``wit_world``."""

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional, Protocol, Union


class InvocationType(Enum):
    REQUEST_RESPONSE = 0
    EVENT = 1


@dataclass
class Settings:
    """The function's settings, as the host read and checked them."""

    bucket: str = "emmaa"
    project: str = "aske"
    branch: str = "origin/master"
    job_queue: str = "emmaa-models-update-test"
    job_definition: str = "emmaa_jobdef"
    large_models: list[str] = field(default_factory=list)
    large_job_queue: str = "emmaa-after-update"
    large_job_definition: str = "emmaa_testing_jobs_def"
    function_prefix: str = "emmaa-"
    invocation_type: InvocationType = InvocationType.REQUEST_RESPONSE


@dataclass
class Job:
    """One Batch job, as the host submits it."""

    name: str
    queue: str
    definition: str
    command: list[str]
    depends_on: list[str]
    work: Optional[str]


@dataclass
class AwsError:
    """What an AWS call failed with, once the host retried what was worth it."""

    kind: str
    code: str
    message: str

    def describe(self) -> str:
        """``code: message``, as an operator reads an AWS error."""
        return f"{self.code}: {self.message}"


@dataclass
class Submitted:
    job_id: str


@dataclass
class AlreadySubmitted:
    job_id: str


@dataclass
class InProgress:
    request_id: str


Submission = Union[Submitted, AlreadySubmitted, InProgress, AwsError]


@dataclass
class Invocation:
    """One Lambda invocation, as the host makes it."""

    function_name: str
    invocation_type: InvocationType
    #: A JSON document.
    payload: str
    work: Optional[str]


@dataclass
class InvokedNow:
    """Invoked now: Lambda's status, the function's answer, and its error kind if it failed."""

    status_code: int
    payload: str
    function_error: Optional[str]


@dataclass
class AlreadyInvoked:
    """Invoked before, for an earlier delivery of the same work."""


Invoked = Union[InvokedNow, AlreadyInvoked, InProgress, AwsError]


class Host(Protocol):
    def settings(self) -> Settings: ...

    def now(self) -> int: ...

    def log(self, level: str, message: str) -> None: ...

    def submit(self, jobs: list[Job]) -> list[Submission]: ...

    def invoke(self, invocations: list[Invocation]) -> list[Invoked]: ...

    def get_objects(self, bucket: str, keys: list[str], max_size: int) -> "list[bytes | AwsError]": ...
