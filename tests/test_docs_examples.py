"""Every code block of README.md, docs/ and the docstrings the API reference shows runs, or
says why it does not.

The Python blocks run one by one, each in a fresh interpreter, against both reference servers
(started once, on free loopback ports, by ``tests/_docs_servers.py``).  A block is written for
the real platforms, so the test substitutes the URLs and demo values of :data:`SUBSTITUTIONS`
before it runs; each block must exit 0 and print something.

Other fenced blocks are classified by their language (:data:`NOT_RUN` says why each kind is
not run), JSON blocks must parse, and a Python block that cannot run is marked with an HTML
comment ``<!-- not-run: REASON -->`` on the line before it (in a docstring: a comment
``.. not-run: REASON`` before its ``::``).  A block in any other language,
or a marker without a reason, fails the test.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INCLUDE = re.compile(r"^```\{include\}\s+(?P<path>\S+)", re.MULTILINE)


def _sources() -> list[Path]:
    pages = sorted(path for path in (ROOT / "docs").rglob("*.md") if "_build" not in path.parts)
    included = [
        (page.parent / match["path"]).resolve()
        for page in pages
        for match in INCLUDE.finditer(page.read_text(encoding="utf-8"))
    ]
    return [ROOT / "README.md", *pages, *sorted(set(included))]


SOURCES = _sources()
"""The Markdown the documentation is made of: the README, docs/ and the files docs/ pages
include (the benchmark and reliability READMEs, the changelog)."""

NOT_RUN = {
    "sh": "shell commands: they create virtualenvs, install packages or start servers that "
    "run until interrupted; .ci/run runs the install and test commands itself and "
    "tests/test_cli.py runs the command line",
    "text": "not code: command usage, program output or wire frames",
}
"""Languages whose blocks are not run, and why."""

SUBSTITUTIONS = (
    ("https://api.itrack.live/v2/", "{itrack}"),
    ("http://127.0.0.1:8080/v2/", "{itrack}"),
    ("wss://socket.trakit.ca/", "{fleetfreedom}"),
    ("ws://127.0.0.1:8081/", "{fleetfreedom}"),
    ('"me@example.com", "secret"', '"demo@example.com", "demo"'),
    ('"me", "secret"', '"demo", "demo"'),
    ("Command.subscribe(42,", "Command.subscribe(1,"),
    ("[1701976, 1701975]", "[1001, 1002]"),
)
"""The platforms' URLs and made-up accounts → the reference servers and their demo accounts
(company 1, trackers 1001 and 1002 belong to the ``demo`` tenant)."""

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>[^\n`]*)$")
MARKER = re.compile(r"<!--\s*not-run:(?P<reason>.*?)-->")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    language: str
    code: str
    not_run: str | None
    """The reason of a ``not-run`` marker on the line before, if any."""

    @property
    def id(self) -> str:
        if not self.path.is_absolute():  # a docstring, named by its object
            return f"{self.path}:{self.line}"
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _blocks(path: Path) -> Iterator[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        body = "\n".join(line[indent:] for line in lines[index + 1 : end])
        language = match["info"].strip().split(" ")[0]
        before = lines[index - 1] if index else ""
        marker = MARKER.search(before)
        if not language.startswith("{"):  # MyST directives (toctree, include) are not code
            yield Block(
                path,
                index + 1,
                language,
                textwrap.dedent(body) + "\n",
                marker["reason"].strip() if marker else None,
            )
        index = end + 1


def _api_modules() -> tuple[str, ...]:
    """``API_MODULES`` of docs/conf.py: the modules whose docstrings the API reference shows."""
    tree = ast.parse((ROOT / "docs" / "conf.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "API_MODULES":
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("docs/conf.py has no API_MODULES")


def _docstrings() -> Iterator[tuple[str, str]]:
    """(where, docstring) of each public module, class, function and method, once each."""
    seen: set[int] = set()
    for name in _api_modules():
        module = importlib.import_module(name)
        yield name, inspect.cleandoc(module.__doc__ or "")
        for public in module.__all__:
            obj = getattr(module, public)
            if not (inspect.isclass(obj) or inspect.isroutine(obj)) or id(obj) in seen:
                continue
            seen.add(id(obj))
            yield f"{name}.{public}", inspect.getdoc(obj) or ""
            for attr, member in vars(obj).items() if inspect.isclass(obj) else ():
                function = getattr(member, "__func__", member)
                doc = (function if not isinstance(member, property) else member).__doc__
                if not attr.startswith("_") and doc:
                    yield f"{name}.{public}.{attr}", inspect.cleandoc(doc)


def _literal_blocks(where: str, doc: str) -> Iterator[Block]:
    """The ``::`` blocks of a reStructuredText docstring; a ``.. not-run: REASON`` comment
    between the previous block and this one marks it."""
    lines = doc.splitlines()
    previous = 0
    for index, line in enumerate(lines):
        if not line.rstrip().endswith("::") or line.lstrip().startswith(".."):
            continue
        indent = len(line) - len(line.lstrip())
        end = index + 1
        while end < len(lines) and (
            not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
        ):
            end += 1
        code = textwrap.dedent("\n".join(lines[index + 1 : end])).strip("\n") + "\n"
        marker = re.search(
            r"^\s*\.\. not-run:(?P<reason>.*)$", "\n".join(lines[previous:index]), re.M
        )
        previous = end
        yield Block(
            Path(where), index + 1, "python", code, marker["reason"].strip() if marker else None
        )


BLOCKS = [block for path in SOURCES for block in _blocks(path)] + [
    block for where, doc in _docstrings() for block in _literal_blocks(where, doc)
]
PYTHON = [block for block in BLOCKS if block.language == "python" and block.not_run is None]


def test_the_documentation_has_runnable_examples() -> None:
    assert len(PYTHON) >= 8
    docstring_examples = {str(block.path) for block in PYTHON if not block.path.is_absolute()}
    assert "trackwire.drivers.trio" in docstring_examples
    assert {block.path.name for block in PYTHON} >= {"README.md"}
    assert ROOT / "benchmarks" / "README.md" in SOURCES  # included by docs/benchmarks.md


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.id)
def test_every_block_is_run_or_says_why(block: Block) -> None:
    if block.language == "python":
        assert block.not_run is None or block.not_run, (
            f"{block.id}: a not-run marker needs a reason"
        )
    elif block.language == "json":
        json.loads(block.code)
    else:
        assert block.language in NOT_RUN, (
            f"{block.id}: a ```{block.language} block; use python (it runs), json (it is "
            f"parsed) or one of {sorted(NOT_RUN)}"
        )


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "_docs_servers.py"), "600"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ports = json.loads(child.stdout.readline())
        yield {
            "itrack": f"http://127.0.0.1:{ports['itrack']}/v2/",
            "fleetfreedom": f"ws://127.0.0.1:{ports['fleetfreedom']}/",
        }
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def substitute(code: str, urls: dict[str, str]) -> str:
    for old, new in SUBSTITUTIONS:
        code = code.replace(old, new.format(**urls))
    return code


def test_substitution_reaches_the_reference_servers() -> None:
    urls = {"itrack": "http://127.0.0.1:1/v2/", "fleetfreedom": "ws://127.0.0.1:2/"}
    code = 'itrack_login("https://api.itrack.live/v2/", "me", "secret")'
    assert substitute(code, urls) == 'itrack_login("http://127.0.0.1:1/v2/", "demo", "demo")'


@pytest.mark.parametrize("block", PYTHON, ids=lambda block: block.id)
def test_python_block_runs(block: Block, servers: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(substitute(block.code, servers), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"{block.id} failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip(), f"{block.id} printed nothing"


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run runs the README's test command word for word, in a fresh clone."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = re.search(r'^README_TEST_COMMAND="(?P<command>.*)"$', ci, re.MULTILINE)
    assert command is not None
    readme = [block.code.strip() for block in _blocks(ROOT / "README.md") if block.language == "sh"]
    assert command["command"] in readme
    assert "git clone" in ci
