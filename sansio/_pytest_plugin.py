"""The ``pytest11`` entry point of trackwire (see :mod:`trackwire.conformance._pytest_plugin`).

The plugin itself lives in the conformance kit, which needs trio; where only the core is
installed, this module registers nothing, so installing trackwire never breaks pytest.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("trio") is not None:
    from trackwire.conformance._pytest_plugin import (
        pytest_addoption,
        pytest_collection_modifyitems,
        pytest_configure,
        trackwire_fleetfreedom_server,
        trackwire_itrack_server,
        trackwire_reference_server,
    )

    __all__ = [
        "pytest_addoption",
        "pytest_collection_modifyitems",
        "pytest_configure",
        "trackwire_fleetfreedom_server",
        "trackwire_itrack_server",
        "trackwire_reference_server",
    ]
