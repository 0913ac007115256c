"""Shared test settings."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

import trackwire

# Shared machines are noisy: no per-example deadline.  CI runs derandomized so that a red run
# can be reproduced; locally the examples vary and the database remembers failures.
settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# The suite runs on the default decoder unless TRACKWIRE_DECODER says otherwise (some tests
# compare exact event classes; the fast decoder's events are subclasses of them).
# tests/test_fast_decoder.py selects each decoder itself and compares the two.
if "TRACKWIRE_DECODER" not in os.environ:
    trackwire.set_decoder("default")


@pytest.fixture(autouse=True)
def _decoder_and_hook_restored() -> Iterator[None]:
    """Whatever decoder or JSON hook a test selects, the next test runs on the suite's own
    (each xdist worker runs a different sequence of files: nothing may leak between tests)."""
    decoder = trackwire.get_decoder()
    hook = trackwire.get_json_loads()
    yield
    if trackwire.get_json_loads() is not hook:
        trackwire.set_json_loads(hook)
    if trackwire.get_decoder() != decoder:
        trackwire.set_decoder(decoder)
