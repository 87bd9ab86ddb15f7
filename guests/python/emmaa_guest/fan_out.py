"""Invoking other pipeline functions, each invocation its own unit of work."""

from dataclasses import dataclass, field
from typing import Any

from . import work as units
from .answer import Refusal, Report
from .host import AlreadyInvoked, AwsError, Host, InProgress, Invocation, InvokedNow, Settings
from .quote import dumps


@dataclass
class Call:
    """One invocation a handler wants: of ``{function_prefix}{function}`` with
    `payload`, for `item` (a model), claimed as `work` (by default the
    function and the item, in this request)."""

    item: str
    function: str
    payload: Any
    work: units.Work = field(default=None)

    def __post_init__(self) -> None:
        if self.work is None:
            self.work = units.in_request(f"{self.function}/{self.item}")

    def claiming(self, claimed: units.Work) -> "Call":
        """The call, claimed as `claimed` instead."""
        self.work = claimed
        return self


def invoke_all(host: Host, settings: Settings, calls: list[Call], report: Report) -> None:
    """Invokes every call in one batch, and records in `report` each that went
    through, was made before (``already_invoked``), is being made by another
    request (``in_progress_elsewhere``), or failed."""
    if not calls:
        return
    invocations = [
        Invocation(f"{settings.function_prefix}{call.function}", settings.invocation_type, dumps(call.payload), call.work)
        for call in calls
    ]
    def failed(call: Call, invocation: Invocation, why: str) -> Refusal:
        return Refusal(call.item, f"invoking {invocation.function_name} with {invocation.payload} {why}")

    for call, invocation, outcome in zip(calls, invocations, host.invoke(invocations)):
        if isinstance(outcome, InvokedNow):
            if outcome.function_error is None:
                report.went_through()
            else:
                why = f"failed in the function ({outcome.function_error}): {outcome.payload}"
                report.refuse(failed(call, invocation, why))
        elif isinstance(outcome, AlreadyInvoked):
            report.went_through()
            report.append("already_invoked", {"function_name": invocation.function_name, "item": call.item})
        elif isinstance(outcome, InProgress):
            report.went_through()
            invoking = {"function_name": invocation.function_name, "item": call.item, "request_id": outcome.request_id}
            report.append("in_progress_elsewhere", invoking)
        else:
            assert isinstance(outcome, AwsError)
            report.refuse(failed(call, invocation, f"failed: {outcome.describe()}"))
