"""The version-aware object cache (spec §5)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trackwire.fleetfreedom import (
    Change,
    Command,
    Deleted,
    ErrorCode,
    Merged,
    ObjectCache,
    Response,
)

PIECES = ("assetGeneral", "assetAdvanced", "assetDispatch")
FIELDS = ("name", "odometer", "dispatch")


def history(steps: list[tuple[int, int, bool]]) -> tuple[list[tuple[str, dict[str, Any]]], dict]:
    """Play a timeline of (asset, slot, snapshot?) steps: the messages it sends, in order,
    and each asset's final state."""
    state: dict[int, dict[str, Any]] = {}
    messages: list[tuple[str, dict[str, Any]]] = []
    for asset, slot, snapshot in steps:
        obj = state.setdefault(asset, {"id": asset, "company": asset % 2, "v": [0, 0, 0]})
        obj["v"][slot] += 1
        version = obj["v"][slot]
        obj[FIELDS[slot]] = f"{FIELDS[slot]}-{version}"
        piece = {"id": asset, "company": obj["company"], FIELDS[slot]: obj[FIELDS[slot]]}
        piece["v"] = [version]
        messages.append((PIECES[slot], piece))
        if snapshot:
            messages.append(("asset", {**obj, "v": list(obj["v"])}))
    return messages, state


def apply(cache: ObjectCache, message: tuple[str, dict[str, Any]]) -> None:
    kind, body = message
    if kind == "asset":
        cache.apply_object("asset", body)
    else:
        cache.apply_piece(kind, body)


steps = st.lists(
    st.tuples(st.integers(1, 3), st.integers(0, 2), st.booleans()), min_size=1, max_size=25
)


@settings(max_examples=200)
@given(steps, st.data())
def test_any_order_and_any_duplication_ends_in_the_same_state(
    timeline: list[tuple[int, int, bool]], data: st.DataObject
) -> None:
    messages, _ = history(timeline)
    in_order = ObjectCache()
    for message in messages:
        apply(in_order, message)
    shuffled = data.draw(st.permutations(messages))
    replayed = data.draw(st.lists(st.sampled_from(messages), max_size=10))
    mixed = ObjectCache()
    for message in shuffled + replayed:
        apply(mixed, message)
    for asset in {a for a, _, _ in timeline}:
        assert mixed.get("asset", asset) == in_order.get("asset", asset)
    for company in (0, 1):
        got = sorted(o["id"] for o in mixed.company_objects("asset", company))
        assert got == sorted(o["id"] for o in in_order.company_objects("asset", company))


@settings(max_examples=100)
@given(steps)
def test_in_order_application_gives_the_final_state(timeline: list[tuple[int, int, bool]]) -> None:
    messages, state = history(timeline)
    cache = ObjectCache()
    for message in messages:
        apply(cache, message)
    for asset, obj in state.items():
        assert cache.get("asset", asset) == obj


overlapping_piece = st.tuples(
    st.integers(0, 2),  # slot
    st.integers(0, 6),  # version
    st.dictionaries(st.sampled_from(["name", "odometer", "note", "company"]), st.integers(0, 3)),
)


@settings(max_examples=300)
@given(st.lists(st.one_of(overlapping_piece, st.lists(st.integers(0, 6), max_size=4)), max_size=30))
def test_views_made_piece_by_piece_equal_a_rebuild(steps: list[Any]) -> None:
    # Pieces whose fields overlap (across slots, and between versions of one slot), mixed
    # with full copies: the view updated in place of a rebuild must be the rebuild's.
    cache = ObjectCache()
    for step in steps:
        if isinstance(step, tuple):
            slot, version, fields = step
            cache.apply_piece(PIECES[slot], {"id": 1, **fields, "v": [version]})
        else:
            cache.apply_object("asset", {"id": 1, "company": 0, "name": -1, "v": step})
        entry = cache._entries.get(("asset", 1))
        if entry is None:
            continue
        made = entry.view
        assert entry.rebuild(3) == made
        company = made.get("company")
        indexed = [o["id"] for o in cache.company_objects("asset", company)]
        assert indexed == ([] if company is None else [1])


def test_older_or_equal_versions_never_roll_back() -> None:
    cache = ObjectCache()
    assert cache.apply_piece("assetAdvanced", {"id": 1, "company": 4, "v": [5], "odometer": 5})
    assert not cache.apply_piece("assetAdvanced", {"id": 1, "company": 4, "v": [3], "odometer": 3})
    assert not cache.apply_piece("assetAdvanced", {"id": 1, "company": 4, "v": [5], "odometer": 5})
    # A full copy adds what it knows newer (slot 0) but the newer piece stays on top.
    assert cache.apply_object("asset", {"id": 1, "company": 4, "v": [1, 4], "odometer": 4})
    assert cache.get("asset", 1) == {"id": 1, "company": 4, "v": [1, 5, 0], "odometer": 5}
    assert not cache.apply_object("asset", {"id": 1, "company": 4, "v": [1, 4], "odometer": 4})
    # A full copy newer in every slot replaces the pieces it covers.
    assert cache.apply_object("asset", {"id": 1, "company": 4, "v": [2, 6, 1], "odometer": 6})
    assert cache.get("asset", 1) == {"id": 1, "company": 4, "v": [2, 6, 1], "odometer": 6}
    # One older in some slot is refused whole.
    assert not cache.apply_object("asset", {"id": 1, "company": 4, "v": [9, 5, 1]})


def test_company_pieces_use_their_slots() -> None:
    cache = ObjectCache()
    cache.apply_piece("companyLabels", {"id": 9, "parent": 1, "labels": ["a"], "v": [4]})
    cache.apply_piece("companyPolicies", {"id": 9, "parent": 1, "sessionPolicy": {}, "v": [2]})
    assert cache.get("company", 9)["v"] == [0, 0, 0, 4, 2, 0]  # type: ignore[index]
    assert cache.company_objects("company", 1) == [cache.get("company", 9)]
    cache.apply_piece("userGeneral", {"login": "u@x", "company": 1, "v": [1]})
    cache.apply_piece("contact", {"id": 3, "company": 1, "v": [7]})
    assert cache.get("user", "u@x") == {"login": "u@x", "company": 1, "v": [1, 0]}
    assert cache.get("contact", 3) == {"id": 3, "company": 1, "v": [7]}


def test_malformed_pieces_are_ignored() -> None:
    cache = ObjectCache()
    assert not cache.apply_piece("assetGeneral", {"id": 1})
    assert not cache.apply_piece("assetGeneral", {"id": [1], "v": [1]})
    assert not cache.apply_piece("assetGeneral", {"id": 1, "v": ["1"]})
    assert not cache.apply_object("asset", {"id": 1, "v": []})
    assert not cache.apply_deleted("asset", None)
    assert len(cache) == 0
    cache.apply_piece("assetGeneral", {"id": 1, "company": {"id": 4}, "v": [1]})
    assert cache.company_objects("asset", 4) == [cache.get("asset", 1)]


def test_deleted_removes_for_good() -> None:
    cache = ObjectCache()
    cache.apply_piece("assetGeneral", {"id": 1, "company": 4, "v": [1]})
    assert cache.apply_deleted("asset", 1)
    assert cache.get("asset", 1) is None
    assert cache.company_objects("asset", 4) == []
    assert not cache.apply_piece("assetAdvanced", {"id": 1, "company": 4, "v": [9]})
    assert not cache.apply_object("asset", {"id": 1, "company": 4, "v": [9, 9]})
    assert not cache.apply_deleted("asset", 1)
    bounded = ObjectCache(max_tombstones=1)
    bounded.apply_deleted("asset", 1)
    bounded.apply_deleted("asset", 2)
    assert bounded.apply_piece("assetGeneral", {"id": 1, "company": 4, "v": [1]})


def test_list_reconciliation_keeps_objects_pushed_while_loading() -> None:
    cache = ObjectCache()
    for asset in (1, 2, 3):
        cache.apply_piece("assetGeneral", {"id": asset, "company": 4, "v": [1]})
    cache.apply_piece("assetGeneral", {"id": 9, "company": 5, "v": [1]})
    mark = cache.sequence  # the list is requested now
    cache.apply_piece("assetGeneral", {"id": 3, "company": 4, "v": [2]})  # pushed meanwhile
    cache.apply_piece("assetGeneral", {"id": 4, "company": 4, "v": [1]})  # created meanwhile
    listed = [{"id": 1, "company": 4, "v": [1, 1]}]
    assert cache.apply_list("asset", 4, listed, mark)
    assert sorted(o["id"] for o in cache.company_objects("asset", 4)) == [1, 3, 4]
    assert cache.get("asset", 9) is not None  # another company is untouched
    assert cache.apply_list("asset", 4, [{"id": 1, "company": 4, "v": [1, 1]}, "junk"])
    assert [o["id"] for o in cache.company_objects("asset", 4)] == [1]


def test_change_feed() -> None:
    cache = ObjectCache(max_changes=3)
    start = cache.sequence
    cache.apply_piece("assetGeneral", {"id": 1, "company": 4, "v": [1]})
    cache.apply_piece("assetGeneral", {"id": 1, "company": 4, "v": [1]})  # no change
    cache.apply_deleted("asset", 1)
    assert cache.changes_since(start) == [
        Change(1, "asset", 1, False),
        Change(2, "asset", 1, True),
    ]
    assert cache.changes_since(1) == [Change(2, "asset", 1, True)]
    for v in range(1, 4):
        cache.apply_piece("placeGeneral", {"id": 7, "company": 4, "v": [v]})
    assert [c.seq for c in cache.changes_since(2)] == [3, 4, 5]
    with pytest.raises(LookupError):
        cache.changes_since(1)
    assert cache.changes_since(cache.sequence) == []
    empty = ObjectCache(max_changes=0)
    empty.apply_piece("placeGeneral", {"id": 7, "company": 4, "v": [1]})
    with pytest.raises(LookupError):
        empty.changes_since(0)


def test_apply_client_events() -> None:
    cache = ObjectCache()
    get = Command.get("asset", 1)
    listing = Command.get_list("company", 4)
    for req_id in range(2000):  # marks are bounded
        cache.track(req_id)
    cache.track(8)
    events = [
        Response("getAssetResponse", {"asset": {"id": 1, "company": 4, "v": [1, 1]}}, 7, 0, get),
        Merged("assetAdvancedMerged", {"id": 1, "company": 4, "v": [2], "odometer": 2}),
        Response(
            "getCompaniesListResponse",
            {"company": {"id": 4}, "companies": [{"id": 5, "parent": 4, "v": [1] * 6}]},
            8,
            ErrorCode.SUCCESS,
            listing,
        ),
    ]
    assert [cache.apply(e) for e in events] == [True, True, True]
    assert cache.get("asset", 1)["odometer"] == 2  # type: ignore[index]
    assert cache.get("company", 5) is not None
    assert cache.apply(Deleted("companyDeleted", {"id": 5, "parent": 4}))
    assert cache.get("company", 5) is None
    failed = Response("getAssetResponse", {"asset": {"id": 2, "v": [1]}}, 9, 20, get)
    unmatched = Response("getAssetResponse", {"asset": {"id": 2, "v": [1]}}, 9, 0, None)
    bad_list = Response("getAssetsListResponse", {"assets": 3}, 10, 0, Command.get_list("asset", 4))
    batches = Command.get_list("dispatchBatch", 4)
    batch_list = {"company": {"id": 4}, "dispatchBatches": [{"id": 1, "company": 4, "v": [1]}]}
    assert cache.apply(Response("x", batch_list, 11, 0, batches))
    assert cache.get("dispatchBatch", 1) is not None
    assert not any(cache.apply(e) for e in (failed, unmatched, bad_list, "other"))
