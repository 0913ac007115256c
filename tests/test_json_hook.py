"""The one JSON hook: the default matches json.loads exactly; a swap reaches every core."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import trackwire
from trackwire._json import stdlib_loads
from trackwire.fleetfreedom import decode
from trackwire.itrack import parse_message

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _outcome(func: Any, text: str) -> object:
    try:
        return ("ok", func(text))
    except ValueError as exc:
        return ("error", type(exc))


@given(json_values.map(json.dumps) | st.text(max_size=30))
def test_default_hook_agrees_with_json_loads(text: str) -> None:
    assert _outcome(stdlib_loads, text) == _outcome(json.loads, text)


@pytest.mark.parametrize("text", ["", " ", "{} x", '{"a":1}\n', " [1]", "[1] ", "{", "nul"])
def test_edges_agree(text: str) -> None:
    assert _outcome(stdlib_loads, text) == _outcome(json.loads, text)


def test_swap_reaches_every_core() -> None:
    seen: list[str] = []

    def counting(text: str) -> Any:
        seen.append(text)
        return json.loads(text)

    trackwire.set_json_loads(counting)
    try:
        assert trackwire.get_json_loads() is counting
        parse_message('{"type":"event","event":"logout","data":"session closed"}')
        decode('noop {"reqId":1}')
    finally:
        trackwire.set_json_loads(None)
    assert seen == ['{"type":"event","event":"logout","data":"session closed"}', '{"reqId":1}']
    assert trackwire.get_json_loads() is stdlib_loads
