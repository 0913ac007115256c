"""A version-aware cache of FleetFreedom objects (spec §5).

Each object keeps the last full copy read (``get``/list responses) with its ``v`` vector,
plus the newest piece received per ``v`` slot.  A piece is applied only when its version is
above what the slot holds, so reordered or replayed messages never roll an object back, and
the visible object (the full copy overlaid by the pieces, in slot order) does not depend on
the order messages arrived in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._events import Deleted, Merged, Response
from ._types import OBJECT_SLOTS, PIECE_SLOTS, key_field

__all__ = ["Change", "ObjectCache"]

_NONE = -1  # a slot with no version yet
_new = object.__new__
_REBUILD: object = object()


@dataclass(slots=True)
class Change:
    """One entry of the change feed: an object of ``object_type`` and ``key`` changed
    (``deleted``: it left the cache) at sequence number ``seq``."""

    seq: int
    object_type: str
    key: object
    deleted: bool


class _Entry:
    __slots__ = ("base", "base_v", "company", "piece_v", "pieces", "seq", "versions", "view")

    def __init__(self) -> None:
        self.base: dict[str, Any] | None = None
        self.base_v: list[int] = []
        self.pieces: dict[int, dict[str, Any]] = {}
        self.piece_v: dict[int, int] = {}
        self.versions: list[int] = []
        """Per slot, the newer of the full copy's and the piece's version (``_NONE``: none)."""
        self.seq = 0
        self.company: object = None
        self.view: dict[str, Any] = {}

    def rebuild(self, slots: int) -> dict[str, Any]:
        view: dict[str, Any] = dict(self.base) if self.base is not None else {}
        for slot in sorted(self.pieces):
            view.update(self.pieces[slot])
        width = max(slots, len(self.base_v), max(self.pieces, default=-1) + 1)
        base_v = self.base_v
        piece_v = self.piece_v
        self.versions = [
            max(base_v[slot] if slot < len(base_v) else _NONE, piece_v.get(slot, _NONE))
            for slot in range(width)
        ]
        view["v"] = [max(version, 0) for version in self.versions]
        self.view = view
        return view


_MERGED_SLOTS: dict[str, tuple[str, int]] = {
    piece + "Merged": slots for piece, slots in PIECE_SLOTS.items()
}
"""``assetAdvancedMerged`` → ``("asset", 1)``: a push's name, read in one lookup."""


def _versions(value: object) -> list[int] | None:
    if isinstance(value, list) and value and all(type(x) is int for x in value):
        return value
    return None


def _hashable_key(value: object) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _company(object_type: str, obj: Mapping[str, Any]) -> object:
    company = obj.get("parent" if object_type == "company" else "company")
    if isinstance(company, dict):
        company = company.get("id")
    return company if _hashable_key(company) else None


def _singular(plural: str) -> str:
    if plural.endswith("ies"):
        return plural[:-3] + "y"
    if plural.endswith("ches"):
        return plural[:-2]
    return plural[:-1] if plural.endswith("s") else plural


class ObjectCache:
    """Objects keyed by type and key (``id``, ``login`` for users), updated only forward.

    Feed it pushes and responses with :meth:`apply` (or the ``apply_*`` methods); read it
    with :meth:`get`, :meth:`company_objects` and :meth:`changes_since`.  Deleted keys are
    remembered (up to ``max_tombstones``) so a late piece cannot bring an object back.
    """

    __slots__ = (
        "_by_company",
        "_changes",
        "_entries",
        "_marks",
        "_max_tombstones",
        "_tombstones",
        "sequence",
    )

    def __init__(self, *, max_changes: int = 10_000, max_tombstones: int = 100_000) -> None:
        self._entries: dict[tuple[str, object], _Entry] = {}
        self._by_company: dict[tuple[str, object], dict[object, None]] = {}
        self._changes: deque[Change] = deque(maxlen=max_changes)
        self._tombstones: dict[tuple[str, object], None] = {}
        self._marks: dict[int, int] = {}
        self._max_tombstones = max_tombstones
        self.sequence = 0
        """Number of changes applied so far; a list requested now is newer than this."""

    # -- queries ---------------------------------------------------------------------

    def get(self, object_type: str, key: object) -> dict[str, Any] | None:
        """The object as known (full copy overlaid by newer pieces), or ``None``."""
        entry = self._entries.get((object_type, key))
        return entry.view if entry is not None else None

    def company_objects(self, object_type: str, company: object) -> list[dict[str, Any]]:
        """Every cached object of a type that belongs to ``company``."""
        keys = self._by_company.get((object_type, company), {})
        return [self._entries[object_type, key].view for key in keys]

    def changes_since(self, seq: int) -> list[Change]:
        """The changes after sequence number ``seq``, oldest first.

        Raises ``LookupError`` when the bounded feed no longer reaches back to ``seq``.
        """
        changes = self._changes
        if changes and seq < changes[0].seq - 1:
            raise LookupError(f"the change feed starts after {seq}; re-read the cache")
        if not changes and seq < self.sequence:
            raise LookupError(f"the change feed starts after {seq}; re-read the cache")
        return [change for change in changes if change.seq > seq]

    def __len__(self) -> int:
        return len(self._entries)

    # -- updates ---------------------------------------------------------------------

    def track(self, req_id: int) -> None:
        """Remember the sequence at which a list command was sent (see :meth:`apply`)."""
        marks = self._marks
        if len(marks) >= 1024:
            del marks[next(iter(marks))]
        marks[req_id] = self.sequence

    def apply(self, event: object) -> bool:
        """Apply a :class:`Merged`, :class:`Deleted`, or successful ``get<Type>`` /
        ``get<Types>List`` :class:`Response`; returns whether the cache changed."""
        if type(event) is Merged or isinstance(event, Merged):
            name = event.name
            found = _MERGED_SLOTS.get(name)  # <piece>Merged, read in one lookup
            if found is None:
                piece = name[:-6]
                found = PIECE_SLOTS.get(piece) or (piece, 0)
            return self._piece(found[0], found[1], event.body)
        if isinstance(event, Deleted):
            return self.apply_deleted(event.object_type, event.key)
        if isinstance(event, Response) and event.ok and event.request is not None:
            name = event.request.name
            body = event.body
            if name.endswith("List") and name.startswith("get"):
                plural = name[3:-4]
                object_type = _singular(plural[:1].lower() + plural[1:])
                items = body.get(plural[:1].lower() + plural[1:])
                company = body.get("company")
                if isinstance(company, dict):
                    company = company.get("id")
                if not isinstance(items, list) or not _hashable_key(company):
                    return False
                mark = self._marks.pop(event.req_id, None) if type(event.req_id) is int else None
                return self.apply_list(object_type, company, items, mark)
            if name.startswith("get"):
                object_type = name[3:4].lower() + name[4:]
                obj = body.get(object_type)
                if isinstance(obj, dict):
                    return self.apply_object(object_type, obj)
        return False

    def apply_piece(self, piece: str, body: Mapping[str, Any]) -> bool:
        """Apply one ``<piece>Merged`` body (its ``v`` has one element: the piece's version)."""
        object_type, slot = PIECE_SLOTS.get(piece) or (piece, 0)
        return self._piece(object_type, slot, body)

    def _piece(self, object_type: str, slot: int, body: Mapping[str, Any]) -> bool:
        key = body.get("login" if object_type == "user" else "id")
        v = body.get("v")
        # Exact types first: what a JSON decoder makes (the helpers accept subclasses too).
        if type(v) is list and len(v) == 1 and type(v[0]) is int:
            version: int = v[0]
        else:
            versions = _versions(v)
            if versions is None:
                return False
            version = versions[0]
        if type(key) is not int and type(key) is not str and not _hashable_key(key):
            return False
        ident = (object_type, key)
        if self._tombstones and ident in self._tombstones:
            return False
        entry = self._entries.get(ident)
        if entry is None:
            entry = self._entries[ident] = _Entry()
        versions_held = entry.versions
        if version <= (versions_held[slot] if slot < len(versions_held) else _NONE):
            return False
        new = dict(body)
        pieces = entry.pieces
        old = pieces.get(slot)
        pieces[slot] = new
        entry.piece_v[slot] = version
        view = entry.view
        if not view or (old is not None and not old.keys() <= new.keys()):
            # No view yet, or a key of the old piece is not in the new one (it must not
            # linger): the view is rebuilt.
            self._changed(object_type, key, entry)
            return True
        # A fresh copy of the view updated by the new piece equals the rebuild when every
        # key of the old piece is in the new one (checked above) and the keys that pieces of
        # higher slots also hold are given back their values.
        made = dict(view)
        made.update(new)
        if len(pieces) > 1:
            for higher in sorted(s for s in pieces if s > slot):
                piece = pieces[higher]
                for field in new.keys() & piece.keys():
                    made[field] = piece[field]
        if slot >= len(versions_held):
            versions_held.extend([_NONE] * (slot + 1 - len(versions_held)))
        versions_held[slot] = version
        shown = list(view["v"])
        if slot >= len(shown):
            shown.extend([0] * (slot + 1 - len(shown)))
        shown[slot] = version  # > the slot's old version >= -1: never negative
        made["v"] = shown
        entry.view = made
        company = entry.company
        if ("parent" if object_type == "company" else "company") in new:
            company = made["parent" if object_type == "company" else "company"]
            if type(company) is not int and type(company) is not str:
                company = _company(object_type, made)
        # What _changed records, inlined for the usual piece.
        if company != entry.company:
            self._index(object_type, key, entry.company, company)
            entry.company = company
        seq = self.sequence = self.sequence + 1
        entry.seq = seq
        change = _new(Change)  # its fields set here: no __init__ call
        change.seq = seq
        change.object_type = object_type
        change.key = key
        change.deleted = False
        self._changes.append(change)
        return True

    def apply_object(self, object_type: str, obj: Mapping[str, Any]) -> bool:
        """Apply a full object (from ``get``/list): kept only if no slot of it is older
        than the copy held and at least one is newer."""
        key = obj.get(key_field(object_type))
        versions = _versions(obj.get("v"))
        if not _hashable_key(key) or versions is None:
            return False
        ident = (object_type, key)
        if ident in self._tombstones:
            return False
        entry = self._entries.get(ident)
        if entry is None:
            entry = self._entries[ident] = _Entry()
        elif entry.base is not None:
            held = entry.base_v
            if len(versions) < len(held) or any(
                n < h for n, h in zip(versions, held, strict=False)
            ):
                return False
            if versions == held:
                return False
        entry.base = dict(obj)
        entry.base_v = list(versions)
        for slot in [s for s, v in entry.piece_v.items() if s < len(versions) and v <= versions[s]]:
            del entry.pieces[slot], entry.piece_v[slot]
        self._changed(object_type, key, entry)
        return True

    def apply_deleted(self, object_type: str, key: object) -> bool:
        """Remove an object for good (a late piece of it is ignored)."""
        if not _hashable_key(key):
            return False
        ident = (object_type, key)
        tombstones = self._tombstones
        if ident not in tombstones:
            if len(tombstones) >= self._max_tombstones:
                del tombstones[next(iter(tombstones))]
            tombstones[ident] = None
        return self._drop(object_type, key)

    def apply_list(
        self,
        object_type: str,
        company: object,
        objects: Iterable[object],
        mark: int | None = None,
    ) -> bool:
        """Apply a full list of one company's objects.

        Objects absent from it are dropped, unless they changed after ``mark`` (the
        :attr:`sequence` when the list was requested): those were pushed while the list was
        loading and survive.  ``mark=None`` means now.
        """
        if mark is None:
            mark = self.sequence
        field = key_field(object_type)
        listed = set()
        changed = False
        for obj in objects:
            if not isinstance(obj, Mapping):
                continue
            key = obj.get(field)
            if _hashable_key(key):
                listed.add(key)
                changed = self.apply_object(object_type, obj) or changed
        keys = self._by_company.get((object_type, company), {})
        for key in [k for k in keys if k not in listed]:
            if self._entries[object_type, key].seq <= mark:
                changed = self._drop(object_type, key) or changed
        return changed

    def _drop(self, object_type: str, key: object) -> bool:
        entry = self._entries.pop((object_type, key), None)
        if entry is None:
            return False
        self._index(object_type, key, entry.company, None)
        self.sequence += 1
        self._changes.append(Change(self.sequence, object_type, key, True))
        return True

    def _changed(
        self, object_type: str, key: object, entry: _Entry, company: object = _REBUILD
    ) -> None:
        """Record a change of ``entry``; its view is rebuilt unless the caller already made
        it and passes the ``company`` it names."""
        if company is _REBUILD:
            view = entry.rebuild(len(OBJECT_SLOTS.get(object_type, ("general",))))
            company = _company(object_type, view)
        if company != entry.company:
            self._index(object_type, key, entry.company, company)
            entry.company = company
        self.sequence += 1
        entry.seq = self.sequence
        self._changes.append(Change(self.sequence, object_type, key, False))

    def _index(self, object_type: str, key: object, old: object, new: object) -> None:
        if old is not None:
            keys = self._by_company.get((object_type, old))
            if keys is not None:
                keys.pop(key, None)
                if not keys:
                    del self._by_company[object_type, old]
        if new is not None:
            self._by_company.setdefault((object_type, new), {})[key] = None
