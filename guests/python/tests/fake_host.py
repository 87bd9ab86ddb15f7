"""A host for unit tests: settings, a fixed clock, a log, and Batch answers."""

from dataclasses import dataclass, field
from typing import Callable

from emmaa_guest.host import AwsError, Invocation, Invoked, InvokedNow, Job, Settings, Submission, Submitted

#: 2020-02-04T12:00:00Z, the time the Rust tests run at too.
NOW = 1_580_817_600


@dataclass
class FakeHost:
    settings_: Settings = field(default_factory=Settings)
    now_: int = NOW
    logged: list[tuple[str, str]] = field(default_factory=list)
    submitted: list[Job] = field(default_factory=list)
    #: The answer to each job; by default it is submitted as ``local-{name}``.
    answer: Callable[[Job], Submission] = lambda job: Submitted(f"local-{job.name}")
    #: The bucket's objects, by key.
    objects: dict[str, bytes] = field(default_factory=dict)
    invoked: list[Invocation] = field(default_factory=list)
    #: The answer to each invocation; by default a 200 with ``{}``.
    invocation_answer: Callable[[Invocation], Invoked] = lambda invocation: InvokedNow(200, "{}", None)

    def settings(self) -> Settings:
        return self.settings_

    def now(self) -> int:
        return self.now_

    def log(self, level: str, message: str) -> None:
        self.logged.append((level, message))

    def submit(self, jobs: list[Job]) -> list[Submission]:
        self.submitted.extend(jobs)
        return [self.answer(job) for job in jobs]

    def invoke(self, invocations: list[Invocation]) -> list[Invoked]:
        self.invoked.extend(invocations)
        return [self.invocation_answer(invocation) for invocation in invocations]

    def get_objects(self, bucket: str, keys: list[str], max_size: int) -> "list[bytes | AwsError]":
        missing = AwsError("not-found", "NoSuchKey", "The specified key does not exist.")
        return [self.objects.get(key, missing) for key in keys]
