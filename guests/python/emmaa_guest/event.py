"""Events sent by another handler: ``{"model": M}`` and ``{"model": M, "tests": T}``."""

from typing import Any

from . import quote
from .answer import Refusal
from .names import ModelName, TestCorpus


def _string_field(event: Any, name: str) -> str:
    if not isinstance(event, dict):
        shown = quote.json(event)
        raise Refusal(shown, f'the event must be a JSON object like {{"{name}": ...}}, got {shown}')
    if name not in event:
        shown = quote.json(event)
        raise Refusal(shown, f'the event has no "{name}" field: {shown}')
    value = event[name]
    if not isinstance(value, str):
        shown = quote.json(value)
        raise Refusal(shown, f"{name} must be a string, got {shown}")
    return value


def model(event: Any) -> ModelName:
    """The model of ``{"model": M}``."""
    return ModelName.parse("model", _string_field(event, "model"))


def tests(event: Any) -> TestCorpus:
    """The corpus of ``{"tests": T}``."""
    return TestCorpus.parse("tests", _string_field(event, "tests"))
