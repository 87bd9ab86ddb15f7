"""One event through a handler: the event parsed (within the host's nesting
limit), the handler's report turned into the answer the host expects."""

import json
from typing import Any, Callable

from . import quote, work
from .answer import MAX_LISTED_REFUSALS, HandlerError, Report
from .host import Host

#: A handler reads the event, records in the report what went through and
#: what was refused, and raises HandlerError only when nothing can go through.
Handler = Callable[[Any, Report, Host], None]

#: The deepest an event may nest: the host's limit (host/runtime/src/limits.rs),
#: which Python's parser does not have.
MAX_EVENT_DEPTH = 64


def too_deep(text: str, limit: int = MAX_EVENT_DEPTH) -> "int | None":
    """Where `text` first opens its ``limit + 1``-th level of arrays and objects, if it does."""
    depth, in_string, escaped = 0, False, False
    for at, char in enumerate(text.encode()):
        if in_string:
            if escaped:
                escaped = False
            elif char == 0x5C:
                escaped = True
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return at
        elif char in (0x5D, 0x7D):
            depth = max(depth - 1, 0)
    return None


def run(event: str, request_id: str, handler: Handler, host: Host) -> str:
    """The answer to `event` (compact JSON), or HandlerError naming why
    nothing went through."""
    at = too_deep(event)
    if at is not None:
        raise HandlerError(
            f"the event is not JSON: it nests deeper than {MAX_EVENT_DEPTH} arrays and objects (at byte {at})"
        )
    try:
        parsed = json.loads(event)
    except ValueError as err:
        raise HandlerError(f"the event is not JSON: {err}") from None
    work.begin(parsed, request_id)
    report = Report()
    handler(parsed, report, host)
    for refusal in report.refused[:MAX_LISTED_REFUSALS]:
        host.log("warn", f"refused {quote.debug(refusal.item)}: {refusal.reason}")
    if len(report.refused) > MAX_LISTED_REFUSALS:
        more = len(report.refused) - MAX_LISTED_REFUSALS
        host.log("warn", f"refused {more} more items (not logged one by one)")
    return quote.dumps(report.finish())
