"""The ``name {JSON}`` codec, the JSON hook, the tables of error codes and subscription types."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trackwire._json import stdlib_loads
from trackwire.fleetfreedom import (
    OBJECT_SLOTS,
    ErrorCode,
    FleetFreedomClient,
    MessageError,
    SubscriptionType,
    decode,
    encode,
    error_code,
    get_json_loads,
    key_field,
    line_too_long,
    list_command,
    piece_of,
    set_json_loads,
)

names = st.from_regex(r"[a-z][A-Za-z0-9]{0,30}", fullmatch=True)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
bodies = st.dictionaries(st.text(), json_values, max_size=6)


def test_split_at_first_space() -> None:
    assert decode('getCompany {"a":"x y","b":1}') == ("getCompany", {"a": "x y", "b": 1})


def test_frame_without_space_is_a_name_with_empty_body() -> None:
    assert decode("noop") == ("noop", {})


def test_encode_is_compact_and_keeps_unicode() -> None:
    assert encode("getCompany", {"reqId": 1, "company": {"id": 42}, "n": "Zoë ✓"}) == (
        'getCompany {"reqId":1,"company":{"id":42},"n":"Zoë ✓"}'
    )


@pytest.mark.parametrize(
    ("frame", "reason", "name"),
    [
        ("Bad {}", "invalid message name", ""),
        ("get-company {}", "invalid message name", ""),
        ("1abc {}", "invalid message name", ""),
        ("naïve {}", "invalid message name", ""),
        ("", "invalid message name", ""),
        (" {}", "invalid message name", ""),
        ("getCompany {", "invalid JSON", "getCompany"),
        ("getCompany ", "invalid JSON", "getCompany"),
        ("getCompany [1]", "body is not a JSON object", "getCompany"),
        ("getCompany 3", "body is not a JSON object", "getCompany"),
    ],
)
def test_bad_messages_raise_message_error(frame: str, reason: str, name: str) -> None:
    with pytest.raises(MessageError) as info:
        decode(frame)
    assert info.value.reason == reason
    assert info.value.name == name
    assert info.value.frame == frame


def test_encode_refuses_bad_names_and_nan() -> None:
    with pytest.raises(ValueError, match="lowerCamelCase"):
        encode("Get", {})
    with pytest.raises(ValueError, match="Out of range"):
        encode("get", {"x": float("nan")})


@settings(max_examples=200)
@given(names, bodies)
def test_encode_decode_round_trip(name: str, body: dict[str, Any]) -> None:
    assert decode(encode(name, body)) == (name, body)


def test_line_limit_counts_utf8_bytes() -> None:
    assert not line_too_long("a" * 8, 8)
    assert line_too_long("a" * 9, 8)
    assert not line_too_long("é" * 4, 8)  # 8 bytes
    assert line_too_long("é" * 5, 8)  # 10 bytes, 5 characters
    assert line_too_long("😀" * 3, 8)  # 12 bytes, 3 characters


def test_json_hook_is_replaceable_and_used_by_the_cores() -> None:
    calls: list[str] = []

    def counting(text: str) -> Any:
        calls.append(text)
        return json.loads(text)

    set_json_loads(counting)
    try:
        assert get_json_loads() is counting
        assert decode('a {"x":1}') == ("a", {"x": 1})
        client = FleetFreedomClient()
        client.connection_made(0.0)
        client.receive('connectionResponse {"errorCode":8}', 0.0)
        assert calls == ['{"x":1}', '{"errorCode":8}']
    finally:
        set_json_loads(None)
    assert get_json_loads() is stdlib_loads


def test_error_codes_are_complete_and_unknown_ones_carried() -> None:
    assert [int(code) for code in ErrorCode] == list(range(143))
    assert ErrorCode(61).wire_name == "unknownCommand"
    assert ErrorCode.HOSTING_DISCOUNT_NOT_FOUND == 115
    assert error_code(6) is ErrorCode.WRONG_VERSION_KEY
    assert error_code(999) == 999
    assert type(error_code(999)) is int
    assert error_code("6") is None
    assert error_code(True) is None
    assert error_code(None) is None


def test_subscription_types_compare_to_wire_names() -> None:
    assert SubscriptionType.ASSET_ADVANCED == "assetAdvanced"
    assert len(SubscriptionType) == 48
    assert "userAuthentication" in {t.value for t in SubscriptionType}


def test_slot_tables_and_command_names() -> None:
    assert piece_of("assetAdvanced") == ("asset", 1)
    assert piece_of("assetDispatch") == ("asset", 2)
    assert piece_of("companyLabels") == ("company", 3)
    assert piece_of("companyPolicies") == ("company", 4)
    assert piece_of("placeGeneral") == ("place", 0)
    assert piece_of("contact") == ("contact", 0)
    assert len(OBJECT_SLOTS["company"]) == 6
    assert key_field("user") == "login"
    assert key_field("asset") == "id"
    assert list_command("asset") == "getAssetsList"
    assert list_command("company") == "getCompaniesList"
    assert list_command("dispatchBatch") == "getDispatchBatchesList"
