"""Not a handler: the twin of guests/sandbox_probe, in Python.

Sent {"reach": WHAT}, it tries to reach WHAT on its own, with plain Python,
and answers {"statusCode": 200, "reached": ...} with what it got, in the
words the Rust probe uses. The host answers the WASI calls CPython makes
(host/runtime/src/wasi.rs): each attempt either gets the host's answer (no
environment, no files, the event's clock, waits that never sleep, seeded
randomness) or stops the guest (`outside-contract`). `spin` and `memory`
run past the fuel and memory limits, `panic` raises, `bad-answer` answers
what is not JSON, `beyond-reach` asks the host for what no function may
reach, and `submit` submits one job (to hold an instance while it waits).
"""

import json
import os
import random
import socket
import sys
import time

import wit_world
from componentize_py_types import Err
from wit_world.imports import batch, environment, functions, storage


def _files() -> str:
    try:
        with open("/etc/passwd", "rb") as opened:
            return f"read {len(opened.read())} bytes"
    except OSError:
        return "refused"


def _listing() -> str:
    try:
        return f"listed {len(os.listdir('/'))}"
    except OSError:
        return "refused"


def _sleep() -> str:
    wall, started = int(time.time()), time.monotonic()
    time.sleep(5)
    return f"slept {time.monotonic() - started:.1f} s; the wall clock moved {int(time.time()) - wall} s"


def _network() -> str:
    # By address: a name would need the idna codec, which is not built in.
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(("127.0.0.1", 9))
        return "connected"
    except OSError:
        return "refused"


def _name_lookup() -> str:
    try:
        return f"found {len(socket.getaddrinfo(b'example.org', 443))}"
    except OSError:
        return "refused"


def _stdout() -> str:
    print("escaped")
    print("to standard error", file=sys.stderr)
    return "printed"


def _spin() -> str:
    while True:
        pass


def _memory() -> str:
    return str(len(bytearray(512 << 20)))


def _raise() -> str:
    raise ValueError("deliberately, before anything went through")


def _exit() -> str:
    os._exit(3)


def _beyond_reach() -> str:
    """The error code of each request outside the reach, `granted` if one got through."""
    def code(result: object) -> str:
        return result.value.code if isinstance(result, Err) else "granted"

    read = storage.get_objects("emmaa", ["secrets/key"], 100)[0]
    try:
        storage.list_prefixes("another-bucket", "models/", "/")
        listed = "granted"
    except Err as refused:
        listed = refused.value.code
    invocation = functions.Invocation(
        "emmaa-delete-everything", functions.InvocationType.EVENT, "{}", None
    )
    invoked = functions.invoke([invocation])[0]
    job = batch.Job("probe_elsewhere", "another-queue", "emmaa_jobdef", ["true"], [], None)
    submitted = batch.submit([job])[0]
    return ",".join([code(read), listed, code(invoked), code(submitted)])


def _submit() -> str:
    settings = environment.get_settings()
    job = batch.Job("probe_held", settings.job_queue, settings.job_definition, ["true"], [], None)
    got = batch.submit([job])[0]
    return "submitted" if not isinstance(got, Err) else got.value.code


REACHES = {
    "files": _files,
    "listing": _listing,
    "environment": lambda: f"{len(os.environ)} variables",
    "arguments": lambda: f"{len(sys.argv)} arguments",
    "clock": lambda: str(int(time.time())),
    "monotonic-clock": lambda: str(time.monotonic_ns()),
    "sleep": _sleep,
    "sleep-past-deadline": lambda: str(time.sleep(24 * 3600)),
    "random": lambda: os.urandom(8).hex(),
    "insecure-random": lambda: str(random.random()),
    "hash-seed": lambda: str(hash("emmaa")),
    "network": _network,
    "name-lookup": _name_lookup,
    "stdin": lambda: f"{len(sys.stdin.read())} bytes",
    "stdout": _stdout,
    "spin": _spin,
    "memory": _memory,
    "panic": _raise,
    "exit": _exit,
    "beyond-reach": _beyond_reach,
    "submit": _submit,
}


class WitWorld(wit_world.WitWorld):
    def handle(self, event: str, context: wit_world.Context) -> str:
        what = json.loads(event).get("reach")
        if what == "bad-answer":
            return '{"statusCode": 200,'
        reach = REACHES.get(what)
        if reach is None:
            raise Err(f"reach {what!r}: unknown target")
        return json.dumps({"statusCode": 200, "reached": reach()})
