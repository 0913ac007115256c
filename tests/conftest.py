"""Shared test settings."""

from __future__ import annotations

import os

from hypothesis import settings

# Shared machines are noisy: no per-example deadline.  CI runs derandomized so that a red run
# can be reproduced; locally the examples vary and the database remembers failures.
settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
