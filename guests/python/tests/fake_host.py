"""A host for unit tests: settings, a fixed clock, a log, and Batch answers."""

from dataclasses import dataclass, field
from typing import Callable

from emmaa_guest.host import Job, Settings, Submission, Submitted

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

    def settings(self) -> Settings:
        return self.settings_

    def now(self) -> int:
        return self.now_

    def log(self, level: str, message: str) -> None:
        self.logged.append((level, message))

    def submit(self, jobs: list[Job]) -> list[Submission]:
        self.submitted.extend(jobs)
        return [self.answer(job) for job in jobs]
