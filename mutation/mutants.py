"""Mutants of a core, made by mutmut's own operators (mutmut 2: ``pip install -e
'.[mutation]'``), identified by their index in mutmut's order and by the line they change."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from cores import Core
from mutmut import Context, RelativeMutationID, list_mutations, mutate


@dataclass(frozen=True)
class Mutant:
    index: int
    line_number: int
    """1-based, in the file as it is today."""
    before: str
    after: str

    @property
    def key(self) -> str:
        """Stable across edits elsewhere in the file: the line's text and the mutation."""
        return f"{self.before.strip()} => {self.after.strip()}"


def _ids(core: Core) -> tuple[str, list[RelativeMutationID]]:
    source = core.file.read_text(encoding="utf-8")
    return source, list_mutations(Context(source=source, filename=core.path))


def mutated_source(core: Core, index: int) -> str:
    source, ids = _ids(core)
    text, _count = mutate(Context(source=source, mutation_id=ids[index], filename=core.path))
    return text


def mutants(core: Core) -> list[Mutant]:
    source, ids = _ids(core)
    lines = source.splitlines()
    found = []
    for index, mid in enumerate(ids):
        text, _count = mutate(Context(source=source, mutation_id=mid, filename=core.path))
        changed = text.splitlines()
        before, after = _changed_lines(lines, changed, mid.line_number)
        found.append(Mutant(index, mid.line_number + 1, before, after))
    return found


def _changed_lines(old: list[str], new: list[str], line: int) -> tuple[str, str]:
    """The lines the mutant changes (usually one; joined when it spans several)."""
    removed, added = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag != "equal":
            removed.extend(old[i1:i2])
            added.extend(new[j1:j2])
    if not removed and not added:
        return old[line], old[line]
    return " / ".join(s.strip() for s in removed), " / ".join(s.strip() for s in added)
