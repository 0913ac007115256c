"""The ``trackwire`` command line: watch a live fleet, serve a reference server, or judge a
peer's conformance.

One module per job: :mod:`.args` (the parser and every value check), :mod:`.view` (the live
table, plain lines and JSON), :mod:`.records` (events as records, rows and status lines),
:mod:`.servers` (the reference servers), :mod:`.watch` (the watch loops) and :mod:`.main`
(the entry point: exit codes, signals, the missing ``cli`` extra).  Only :mod:`.main` is
imported here, and it needs nothing beyond the standard library until it runs.
"""

from .main import main

__all__ = ["main"]
