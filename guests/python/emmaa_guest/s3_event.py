"""S3 events: a notification's records (``{"Records": [{"s3": {"object": ...}}]}``),
or EventBridge's "Object Created" event (``{"detail-type": "Object Created",
"source": "aws.s3", "detail": {"object": ...}}``). Each object is parsed on its
own and needs only its ``key``; keys are URL-decoded before anything else looks
at them; an object's ``sequencer`` makes it a unit of work of its own. Anything
but a new object (a deletion, a restore, S3's test event) is ignored, with why."""

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Optional, TypeVar

from . import quote as quoting
from . import work
from .answer import Refusal, Report
from .names import ModelName, TestCorpus
from .quote import quote

T = TypeVar("T")

#: Parses a decoded key (given its field's name), or raises KeyRefused naming why.
KeyParser = Callable[[str, str], T]


class KeyRefused(Exception):
    """Why a key is not one a handler takes (the reason, naming the field)."""


@dataclass
class Ignored:
    """Something an S3 event holds that is not a new object: nothing to do, nothing wrong."""

    item: str
    reason: str


@dataclass
class Records(Generic[T]):
    """An S3 event's new objects (each parsed, or refused), and what it holds besides, ignored."""

    objects: list["tuple[T, work.Work] | Refusal"] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)

    def noting_ignored(self, report: Report) -> list["tuple[T, work.Work] | Refusal"]:
        """The objects, with the ignored items written into `report`'s answer."""
        for ignored in self.ignored:
            report.ignore(ignored.item, ignored.reason)
        return self.objects


#: What `_field` answers for a field that is not there (JSON's null is None).
_MISSING: Any = object()


def _field(value: Any, *path: str) -> Any:
    """``value["a"]["b"]``, or `_MISSING` when a step is not an object holding it."""
    for step in path:
        if not isinstance(value, dict) or step not in value:
            return _MISSING
        value = value[step]
    return value


def parse_records(event: Any, bucket: str, parse_key: KeyParser[T]) -> Records[T]:
    """Applies `parse_key` to the decoded key of every new object of `event`, and
    gives each its unit of work; refuses an object in another bucket than
    `bucket`, or whose key is missing, badly encoded or refused; ignores records
    of anything but a new object, each with why."""
    def refused(refusal: Refusal) -> Records[T]:
        return Records(objects=[refusal])

    eventbridge = _field(event, "source") == "aws.s3" and _field(event, "detail-type") is not _MISSING
    if eventbridge and _field(event, "Records") is not _MISSING:
        return refused(
            Refusal(
                "Records",
                'the event is both an EventBridge event ("source": "aws.s3") and an S3 notification '
                '("Records"): which one it is cannot be told',
            )
        )
    if eventbridge:
        obj = _field(event, "detail", "object")
        kind = event["detail-type"]
        if kind != "Object Created":
            return Records(ignored=[Ignored(_item_name(obj), f"detail-type {quoting.json(kind)} is not a new object")])
        in_bucket = _field(event, "detail", "bucket", "name")
        return Records(objects=[_checked_object("detail.bucket.name", in_bucket, bucket, obj, "detail.object.key", parse_key)])
    if isinstance(event, dict) and event.get("Event") == "s3:TestEvent" and "Records" not in event:
        reason = f"Event {quoting.json(event['Event'])} is S3's test of a new notification configuration"
        return Records(ignored=[Ignored("s3:TestEvent", reason)])
    records = _field(event, "Records")
    if not isinstance(records, list):
        return refused(
            Refusal(
                "Records",
                'the event has no "Records" list (an S3 event looks like '
                '{"Records": [{"s3": {"object": {"key": ...}}}]}), got ' + quoting.json(event),
            )
        )
    if not records:
        return refused(Refusal("Records", 'the event\'s "Records" list is empty'))
    parsed: Records[T] = Records()
    for index, record in enumerate(records):
        obj = _field(record, "s3", "object")
        name = _field(record, "eventName")
        if name is not _MISSING:
            if not (isinstance(name, str) and name.startswith("ObjectCreated:")):
                reason = f"Records[{index}].eventName {quoting.json(name)} is not a new object"
                parsed.ignored.append(Ignored(_item_name(obj), reason))
                continue
        in_bucket = _field(record, "s3", "bucket", "name")
        parsed.objects.append(
            _checked_object(
                f"Records[{index}].s3.bucket.name", in_bucket, bucket, obj, f"Records[{index}].s3.object.key", parse_key
            )
        )
    return parsed


def _checked_object(
    bucket_field: str,
    named: Any,
    bucket: str,
    obj: Any,
    key_field: str,
    parse_key: KeyParser[T],
) -> "tuple[T, work.Work] | Refusal":
    if named is not _MISSING and named != bucket:
        return Refusal(
            _item_name(obj),
            f"{bucket_field} {quoting.json(named)} is not the pipeline's bucket {quote(bucket)} (EMMAA_BUCKET)",
        )
    try:
        return _parse_object(key_field, obj, parse_key)
    except Refusal as refusal:
        return refusal


def _item_name(obj: Any) -> str:
    """How an object is named in an answer: its key, decoded when it can be."""
    raw = _field(obj, "key")
    if raw is _MISSING:
        return "(no key)"
    if not isinstance(raw, str):
        return quoting.json(raw)
    try:
        return decode_key(raw)
    except KeyRefused:
        return raw


def _parse_object(key_field: str, obj: Any, parse_key: KeyParser[T]) -> "tuple[T, work.Work]":
    raw = _field(obj, "key")
    if raw is _MISSING:
        raise Refusal(key_field, f"{key_field} is missing")
    if not isinstance(raw, str):
        shown = quoting.json(raw)
        raise Refusal(shown, f"{key_field} must be a string, got {shown}")
    try:
        key = decode_key(raw)
    except KeyRefused as why:
        raise Refusal(raw, f"{key_field} {quote(raw)} {why}") from None
    try:
        parsed = parse_key(key_field, key)
    except KeyRefused as why:
        raise Refusal(key, str(why)) from None
    sequencer = obj.get("sequencer")
    return parsed, work.of_record(key, sequencer if isinstance(sequencer, str) else None)


def decode_key(raw: str) -> str:
    """Decodes an S3 event key: ``+`` is a space and ``%XX`` (exactly ``%`` and two hex digits) a byte."""
    data = raw.encode()
    decoded = bytearray()
    at = 0
    while at < len(data):
        byte = data[at]
        if byte == ord("+"):
            decoded.append(ord(" "))
        elif byte == ord("%"):
            digits = data[at + 1 : at + 3]
            if len(digits) != 2 or not all(chr(d) in "0123456789abcdefABCDEF" for d in digits):
                raise KeyRefused(f"has a bad escape at byte {at}: % must be followed by two hex digits")
            decoded.append(int(digits, 16))
            at += 2
        else:
            decoded.append(byte)
        at += 1
    try:
        return decoded.decode()
    except UnicodeDecodeError:
        raise KeyRefused("does not decode to UTF-8") from None


def _not_layout(key_field: str, key: str, layout: str) -> KeyRefused:
    return KeyRefused(f"{key_field} {quote(key)} does not have the layout {layout}")


def _segments(key_field: str, key: str, layout: str) -> list[str]:
    parts = key.split("/")
    if len(parts) != 3:
        raise _not_layout(key_field, key, layout)
    return parts


def _model_in_key(key_field: str, key: str, model: str) -> ModelName:
    try:
        return ModelName.parse(f"the model in {key_field} {quote(key)}", model)
    except Refusal as refusal:
        raise KeyRefused(refusal.reason) from None


_DATE_LEN = 19


def _is_date(text: str) -> bool:
    """Whether `text` is a ``YYYY-MM-DD-HH-MM-SS`` date."""
    data = text.encode()
    return len(data) == _DATE_LEN and all(
        byte == ord("-") if at in (4, 7, 10, 13, 16) else chr(byte) in "0123456789" for at, byte in enumerate(data)
    )


def model_state_key(key_field: str, key: str) -> ModelName:
    """``models/{model}/{file}.pkl``: a new model state (model_manager_update)."""
    layout = "models/{model}/{file}.pkl"
    top, model, file = _segments(key_field, key, layout)
    stem = file[: -len(".pkl")] if file.endswith(".pkl") else ""
    if top != "models" or not stem:
        raise _not_layout(key_field, key, layout)
    return _model_in_key(key_field, key, model)


def model_manager_key(key_field: str, key: str) -> ModelName:
    """``results/{model}/model_manager_{date}.pkl``: a new model manager (after_update)."""
    layout = "results/{model}/model_manager_{date}.pkl"
    top, model, file = _segments(key_field, key, layout)
    date: Optional[str] = None
    if file.startswith("model_manager_") and file.endswith(".pkl"):
        date = file[len("model_manager_") : -len(".pkl")] if len(file) >= len("model_manager_.pkl") else None
    if top != "results" or date is None or not _is_date(date):
        raise _not_layout(key_field, key, layout)
    return _model_in_key(key_field, key, model)


def results_key(key_field: str, key: str) -> "tuple[ModelName, TestCorpus]":
    """``results/{model}/results_[{corpus}_]{date}.json``: new test results (test_stats)."""
    layout = "results/{model}/results_[{corpus}_]{date}.json"
    top, model, file = _segments(key_field, key, layout)
    if not (file.startswith("results_") and file.endswith(".json") and len(file) >= len("results_.json")):
        raise _not_layout(key_field, key, layout)
    middle = file[len("results_") : -len(".json")]
    corpus: Optional[str] = None
    if not _is_date(middle):
        corpus = _corpus_before_date(middle)
        if corpus is None:
            raise _not_layout(key_field, key, layout)
    if top != "results":
        raise _not_layout(key_field, key, layout)
    model_name = _model_in_key(key_field, key, model)
    if corpus is None:
        return model_name, TestCorpus(TestCorpus.DEFAULT)
    try:
        return model_name, TestCorpus.parse(f"the test corpus in {key_field} {quote(key)}", corpus)
    except Refusal as refusal:
        raise KeyRefused(refusal.reason) from None


def _corpus_before_date(text: str) -> Optional[str]:
    """The ``{corpus}`` of ``{corpus}_{date}``."""
    data = text.encode()
    at = len(data) - (_DATE_LEN + 1)
    if at < 0:
        return None
    tail = data[at:]
    if tail[:1] != b"_" or not _is_date(tail[1:].decode("ascii", "replace")):
        return None
    return data[:at].decode()
