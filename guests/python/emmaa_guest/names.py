"""Model and test corpus names: only names safe in a Batch job name and a shell command line."""

from dataclasses import dataclass

from .answer import Refusal
from .quote import quote

NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_-]*$"


def _is_valid_name(value: str) -> bool:
    def ascii_alphanumeric(char: str) -> bool:
        return char.isascii() and char.isalnum()

    return (
        value != ""
        and ascii_alphanumeric(value[0])
        and all(ascii_alphanumeric(c) or c in "_-" for c in value[1:])
    )


def _checked(what: str, field: str, value: str) -> str:
    if _is_valid_name(value):
        return value
    raise Refusal(value, f"{field} {quote(value)} is not a valid {what}: it must match {NAME_PATTERN}")


@dataclass(frozen=True, order=True)
class ModelName:
    """A model's name, checked."""

    value: str

    @classmethod
    def parse(cls, field: str, value: str) -> "ModelName":
        return cls(_checked("model name", field, value))

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, order=True)
class TestCorpus:
    """A test corpus's name, checked."""

    value: str

    DEFAULT = "large_corpus_tests"

    @classmethod
    def parse(cls, field: str, value: str) -> "TestCorpus":
        return cls(_checked("test corpus name", field, value))

    def __str__(self) -> str:
        return self.value
