"""Values echoed in refusals, quoted as the Rust guests quote them, byte for byte.

Cut to 200 characters (the rest counted), control and bidirectional characters
written as escapes (``\\u{202e}``), so an echoed value cannot forge a line of a log
or turn the text around it. JSON is written as serde_json writes it, numbers
included.
"""

import json as _json
import math
import unicodedata
from typing import Any

MAX_QUOTED_CHARS = 200

_BIDI_CONTROLS = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}

_LITERAL_ESCAPES = {"\t": "\\t", "\r": "\\r", "\n": "\\n", "\\": "\\\\", '"': '\\"', "\0": "\\0"}


def _split(value: str) -> tuple[str, str]:
    if len(value) > MAX_QUOTED_CHARS:
        return value[:MAX_QUOTED_CHARS], f"... ({len(value) - MAX_QUOTED_CHARS} more characters)"
    return value, ""


def _is_escaped(char: str) -> bool:
    """A control character (a fixed set, whatever the Unicode version) or a bidirectional one."""
    return unicodedata.category(char) == "Cc" or ord(char) in _BIDI_CONTROLS


def _unicode_escape(char: str) -> str:
    return "\\u{%x}" % ord(char)


def cut(value: str) -> str:
    """`value` as it is, cut and escaped."""
    head, more = _split(value)
    return "".join(_unicode_escape(c) if _is_escaped(c) else c for c in head) + more


def quote(value: str) -> str:
    """`value` in double quotes, cut: quote, backslash, tab, CR, LF and NUL as in
    a string literal, every other control or bidirectional character as ``\\u{...}``."""
    head, more = _split(value)
    body = "".join(
        _LITERAL_ESCAPES.get(c) or (_unicode_escape(c) if _is_escaped(c) else c) for c in head
    )
    return f'"{body}"{more}'


def _number(value: float) -> str:
    """A float as serde_json writes it: the shortest digits that read back the same,
    an exponent from 1e16 up and below 1e-5."""
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a JSON number")
    mantissa, _, exponent = repr(value).partition("e")
    if not exponent:
        return mantissa
    power = int(exponent)
    if power == -5:
        sign = "-" if value < 0 else ""
        return f"{sign}0.0000{mantissa.lstrip('-').replace('.', '')}"
    return f"{mantissa}e{power:+d}"


def dumps(value: Any) -> str:
    """Compact JSON, as serde_json writes it (non-ASCII as it is, numbers as it writes them)."""
    if isinstance(value, bool) or value is None:
        return _json.dumps(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, (int, str)):
        return _json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ",".join(f"{dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(item) for item in value) + "]"
    raise TypeError(f"{type(value).__name__} is not JSON")


def _integer(text: str) -> "int | float":
    """An integer as serde_json reads it: within 64 bits, else a float (``-0`` is ``-0.0``)."""
    if text == "-0":
        return -0.0
    number = int(text)
    if -(1 << 63) <= number < (1 << 64):
        return number
    return _real(text)


def _real(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("number out of range")
    return number


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def loads(text: str) -> Any:
    """JSON read as serde_json reads it: numbers out of a double's range, NaN and
    Infinity, and escapes of lone surrogates are errors (ValueError)."""
    value = _json.loads(text, parse_int=_integer, parse_float=_real, parse_constant=_constant)
    try:
        dumps(value).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("lone surrogate in hex escape") from None
    return value


def json(value: Any) -> str:
    """A JSON value as compact JSON, cut and escaped."""
    return cut(dumps(value))
