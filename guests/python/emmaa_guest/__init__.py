"""What the EMMAA handler guests written in Python share, so each guest reads
like its spec: parse the event, decide, ask the host. The Python twin of
``guests/emmaa_guest`` (Rust): the same units of work, job names, refusal
messages and answers, byte for byte.

A guest's ``app.py``::

    from emmaa_guest.component import export

    def handle(event, report, host): ...

    WitWorld = export(handle)

Everything but ``component`` runs without WebAssembly, so the library's tests
(``python -m unittest discover -s guests/python``) need only Python.
"""

from .answer import HandlerError, Refusal, Report
from .runner import Handler, run

__all__ = ["Handler", "HandlerError", "Refusal", "Report", "run"]
