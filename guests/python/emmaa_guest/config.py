"""A model's ``config.json``: only the fields the handlers read, with the spec's
rules (only JSON ``true`` is true; a missing corpus list means
``large_corpus_tests``). Every other field is ignored and dropped once read."""

from dataclasses import dataclass
from typing import Any

from . import quote as quoting
from .answer import Refusal
from .names import ModelName, TestCorpus
from .runner import too_deep

#: The largest ``config.json`` a handler reads; a larger one is refused for its model alone.
MAX_CONFIG_BYTES = 1 << 20

#: The deepest serde_json reads (its recursion limit of 128 refuses a 128th level),
#: which the Rust library's parser of configurations has.
MAX_CONFIG_DEPTH = 127

_ABSENT = object()


def config_key(model: ModelName) -> str:
    """Where a model's configuration lives in the bucket."""
    return f"models/{model}/config.json"


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


@dataclass
class ModelConfig:
    model: ModelName
    #: ``run_daily_update``, or its older spelling ``run_model_update``.
    run_daily_update: bool
    run_daily_tests: bool
    make_tests: bool
    #: ``test.test_corpus`` as the file has it (_ABSENT when it has none), or
    #: why ``test`` has the wrong shape.
    test_corpus: Any

    @classmethod
    def parse(cls, model: ModelName, data: bytes) -> "ModelConfig":
        """Reads the configuration of `model` from the bytes of its ``config.json``."""

        def refuse(why: str) -> Refusal:
            return Refusal(model.value, f"{config_key(model)} {why}")

        try:
            text = data.decode()
            if too_deep(text, MAX_CONFIG_DEPTH) is not None:
                raise ValueError(f"it nests deeper than {MAX_CONFIG_DEPTH} arrays and objects")
            fields = quoting.loads(text)
        except ValueError as err:
            raise refuse(f"is not JSON: {err}") from None
        if not isinstance(fields, dict):
            raise refuse(f"is not a JSON object: {_kind_of(fields)}")

        def is_true(name: str) -> bool:
            return fields.get(name) is True

        test = fields.get("test")
        if test is None:
            corpus: Any = _ABSENT
        elif isinstance(test, dict):
            corpus = test.get("test_corpus", _ABSENT)
        else:
            corpus = refuse(f"test must be an object, got {quoting.json(test)}")
        return cls(
            model,
            is_true("run_daily_update") or is_true("run_model_update"),
            is_true("run_daily_tests"),
            is_true("make_tests"),
            corpus,
        )

    def test_corpora(self) -> "list[TestCorpus | Refusal]":
        """The test corpora of ``test.test_corpus``: each valid one, or why it is
        refused. Raises a Refusal when the field has the wrong shape."""
        corpus = self.test_corpus
        if isinstance(corpus, Refusal):
            raise corpus

        def at(name: str) -> str:
            return f"{config_key(self.model)} {name}"

        def parsed(name: str, value: str) -> "TestCorpus | Refusal":
            try:
                return TestCorpus.parse(name, value)
            except Refusal as refusal:
                return refusal

        if corpus is _ABSENT or corpus is None:
            return [TestCorpus(TestCorpus.DEFAULT)]
        if isinstance(corpus, str):
            return [parsed(at("test.test_corpus"), corpus)]
        if isinstance(corpus, list):
            found: "list[TestCorpus | Refusal]" = []
            for index, name in enumerate(corpus):
                field = at(f"test.test_corpus[{index}]")
                if isinstance(name, str):
                    found.append(parsed(field, name))
                else:
                    shown = quoting.json(name)
                    found.append(Refusal(shown, f"{field} must be a string, got {shown}"))
            return found
        raise Refusal(
            self.model.value,
            f"{at('test.test_corpus')} must be a string or a list of strings, got {quoting.json(corpus)}",
        )
