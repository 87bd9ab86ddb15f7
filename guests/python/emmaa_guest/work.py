"""Units of work: what makes a job or an invocation the same as one an earlier
delivery of the event already did. The host claims each unit in its ledger
before it acts; the guest decides what counts as the same work:

- an S3 record with a ``sequencer``: ``s3:{key}@{sequencer}``;
- anything else: ``request:{request id}:{item}`` (Lambda keeps the request id
  across its own retries of an event);
- an event with ``"rerun": true`` claims nothing.
"""

from typing import Any, Callable, Optional, TypeVar

from .answer import Refusal

#: A unit of work's identity; None: nothing to claim.
Work = Optional[str]

T = TypeVar("T")

_request_id = ""
_rerun = False


def begin(event: Any, request_id: str) -> None:
    """Remembers the event's request id, and whether it asks to re-run."""
    global _request_id, _rerun
    _request_id = request_id
    _rerun = isinstance(event, dict) and event.get("rerun") is True


def in_request(item: str) -> Work:
    """`item`, as work of this request."""
    return None if _rerun else f"request:{_request_id}:{item}"


def of_record(key: str, sequencer: Optional[str]) -> Work:
    """An S3 record's work: its key and sequencer, or the request and the key."""
    if sequencer is None:
        return in_request(key)
    return None if _rerun else f"s3:{key}@{sequencer}"


def part_of(work: Work, part: str) -> Work:
    """The part `part` of `work` (one of several invocations a record leads to)."""
    return None if work is None else f"{work}|{part}"


def in_this_request(parse: Callable[[], T]) -> "tuple[T, Work] | Refusal":
    """The item `parse` makes, with nothing claimed yet (it is claimed as work
    of this request when it is acted on), or the Refusal it raised."""
    try:
        return parse(), None
    except Refusal as refusal:
        return refusal
