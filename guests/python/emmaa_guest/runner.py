"""One event through a handler: the event parsed (within the host's nesting
limit), the handler's report turned into the answer the host expects."""

import re
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


#: A JSON string, or one bracket: what the nesting check looks at.
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]')


def too_deep(text: str, limit: int = MAX_EVENT_DEPTH) -> "int | None":
    """Where (the byte) `text` first opens its ``limit + 1``-th level of arrays
    and objects, if it does; strings are skipped by the regular expression, so
    the loop sees brackets only."""
    depth = 0
    for found in _STRING_OR_BRACKET.finditer(text.encode()):
        bracket = found.group()
        if bracket in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return found.start()
        elif bracket in (b"]", b"}"):
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
        parsed = quote.loads(event)
    except ValueError as err:
        raise HandlerError(f"the event is not JSON: {err}") from None
    work.begin(parsed, request_id)
    report = Report()
    handler(parsed, report, host)
    for refusal in report.refused[:MAX_LISTED_REFUSALS]:
        host.log("warn", f"refused {quote.quote(refusal.item)}: {refusal.reason}")
    if len(report.refused) > MAX_LISTED_REFUSALS:
        more = len(report.refused) - MAX_LISTED_REFUSALS
        host.log("warn", f"refused {more} more items (not logged one by one)")
    return quote.dumps(report.finish())
