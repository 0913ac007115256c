"""Shared test settings."""

from __future__ import annotations

import os

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
