"""Values echoed in refusals, quoted as the Rust guests quote them, byte for byte.

Cut to 200 characters (the rest counted), control and bidirectional characters
written as escapes (``\\u{202e}``), so an echoed value cannot forge a line of a log
or turn the text around it.
"""

import json as _json
import unicodedata
from typing import Any

MAX_QUOTED_CHARS = 200

_BIDI_CONTROLS = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def _split(value: str) -> tuple[str, str]:
    if len(value) > MAX_QUOTED_CHARS:
        return value[:MAX_QUOTED_CHARS], f"... ({len(value) - MAX_QUOTED_CHARS} more characters)"
    return value, ""


def _unicode_escape(char: str) -> str:
    return "\\u{%x}" % ord(char)


def _escaped(text: str) -> str:
    return "".join(
        _unicode_escape(c) if unicodedata.category(c) == "Cc" or ord(c) in _BIDI_CONTROLS else c
        for c in text
    )


_DEBUG_ESCAPES = {"\t": "\\t", "\r": "\\r", "\n": "\\n", "\\": "\\\\", '"': '\\"', "\0": "\\0"}


def debug(text: str) -> str:
    """Rust's ``{:?}`` of a string: in double quotes, with its escapes."""
    out = ['"']
    for at, char in enumerate(text):
        if char in _DEBUG_ESCAPES:
            out.append(_DEBUG_ESCAPES[char])
        elif char != " " and not char.isprintable():
            out.append(_unicode_escape(char))
        elif at == 0 and unicodedata.category(char) in ("Mn", "Me"):
            out.append(_unicode_escape(char))
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def cut(value: str) -> str:
    """`value` as it is, cut and escaped."""
    head, more = _split(value)
    return f"{_escaped(head)}{more}"


def quote(value: str) -> str:
    """`value` in double quotes, cut and escaped."""
    head, more = _split(value)
    return f"{_escaped(debug(head))}{more}"


def dumps(value: Any) -> str:
    """Compact JSON, as serde_json writes it (non-ASCII as it is)."""
    return _json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json(value: Any) -> str:
    """A JSON value as compact JSON, cut and escaped."""
    return cut(dumps(value))
