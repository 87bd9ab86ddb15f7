"""The three kinds of answer a handler gives: everything went through (200), some
items were refused (207, a normal answer so that Lambda does not retry the good
ones), or nothing could go through (a handler error)."""

from dataclasses import dataclass, field
from typing import Any, Iterable, TypeVar

from .quote import cut

#: The most refusals an answer lists; the rest are counted (``refused_not_listed``).
MAX_LISTED_REFUSALS = 200

#: The most characters of a refusal's reason.
MAX_REASON_CHARS = 1_000

T = TypeVar("T")


class Refusal(Exception):
    """An item (a record, a model, a job) that was refused or failed, with a
    reason naming the field and the value. Raised where it is found; kept in
    the report."""

    def __init__(self, item: str, reason: str) -> None:
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[:MAX_REASON_CHARS] + "..."
        super().__init__(reason)
        self.item = cut(item)
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Refusal) and (self.item, self.reason) == (other.item, other.reason)

    def __repr__(self) -> str:
        return f"Refusal({self.item!r}, {self.reason!r})"


class HandlerError(Exception):
    """Nothing could go through: the event fails with this message."""


@dataclass
class Report:
    """What a handler did with one event, collected as it goes."""

    went_through_count: int = 0
    refused: list[Refusal] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    #: Lists of the answer: name -> (first items, how many there were).
    lists: dict[str, tuple[list[Any], int]] = field(default_factory=dict)

    def went_through(self) -> None:
        """One action (an invocation, a submission, a decision that nothing is needed) went through."""
        self.went_through_count += 1

    def refuse(self, refusal: Refusal) -> None:
        self.refused.append(refusal)

    def keep_valid(self, items: Iterable["T | Refusal"]) -> list[T]:
        """The good items of `items`; the refusals among them are refused."""
        valid = []
        for item in items:
            if isinstance(item, Refusal):
                self.refuse(item)
            else:
                valid.append(item)
        return valid

    def ignore(self, item: str, reason: str) -> None:
        """An item the event held that is not work for this handler: listed under
        ``ignored``, never refused."""
        cut_down = Refusal(item, reason)
        self.append("ignored", {"item": cut_down.item, "reason": cut_down.reason})

    def set(self, name: str, value: Any) -> None:
        """Adds a field to the answer (``job_id``, ``job_ids``)."""
        self.fields[name] = value

    def append(self, name: str, item: Any) -> None:
        """Adds `item` to the list `name` of the answer; past MAX_LISTED_REFUSALS
        items a list is counted, not listed."""
        items, count = self.lists.get(name, ([], 0))
        if len(items) < MAX_LISTED_REFUSALS:
            items.append(item)
        self.lists[name] = (items, count + 1)

    def finish(self) -> dict[str, Any]:
        """The answer, or HandlerError naming the reasons when nothing went through."""
        listed = self.refused[:MAX_LISTED_REFUSALS]
        not_listed = len(self.refused) - len(listed)
        answer: dict[str, Any] = {}
        if not self.refused:
            answer["statusCode"] = 200
            answer["result"] = "SUCCESS"
        elif self.went_through_count > 0:
            answer["statusCode"] = 207
            answer["result"] = "PARTIAL"
            answer["refused"] = [{"item": r.item, "reason": r.reason} for r in listed]
            if not_listed > 0:
                answer["refused_not_listed"] = not_listed
        else:
            reasons = [r.reason for r in listed]
            if not_listed > 0:
                reasons.append(f"and {not_listed} more refusals")
            raise HandlerError("; ".join(reasons))
        answer.update(self.fields)
        for name, (items, count) in self.lists.items():
            if count > len(items):
                answer[f"{name}_not_listed"] = count - len(items)
            answer[name] = items
        return answer
