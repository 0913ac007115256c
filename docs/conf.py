"""Sphinx configuration of the trackwire documentation.

Build: ``pip install -e '.[docs]' && sphinx-build -W -n --keep-going docs docs/_build/html``.
The API reference pages (``docs/api/*.rst``) are generated here at every build from the
``__all__`` of each public module, so a new public name can never be left out.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer

import trackwire

project = "trackwire"
author = "trackwire developers"
copyright = "2026, trackwire developers"
release = trackwire.__version__
version = ".".join(release.split(".")[:2])

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.viewcode"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
html_theme = "furo"
html_title = f"trackwire {release}"

autodoc_member_order = "groupwise"
autodoc_default_options = {"undoc-members": True, "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

# No intersphinx: the documentation builds offline (CI reaches package registries only), so
# references to other projects' and the standard library's objects stay plain text.
_EXTERNAL = (
    r"(wsproto|h11|trio|hypothesis|ssl|socket|asyncio|selectors|collections|typing|"
    r"typing_extensions|enum|datetime|json|types|argparse|pathlib|os|contextlib|random|"
    r"concurrent|fnmatch|io|re|dataclasses|abc|_io|_ssl|_socket|_thread|builtins|functools|"
    r"urllib|http|xml|sys|array|decimal|fractions|numbers|ipaddress|uuid)(\..*)?"
)
nitpick_ignore_regex = [
    (r"py:.*", _EXTERNAL),
    # Type variables and aliases written in signatures.
    (r"py:.*", r"(trackwire\..*\.)?[A-Z][A-Za-z]*T(_co|_contra)?"),
    # Generic aliases that autodoc splits at their commas, e.g. ``dict[str, Any]``.
    (r"py:class", r"(dict|list|tuple|set|frozenset|type)\[.*"),
    # Private helpers (a ``_name`` part) that no public module exports: plain text.
    (r"py:.*", r"trackwire(\.\w+)*\._\w+(\.\w+)*"),
]
# The trio and asyncio server drivers each export an ``EventHandler`` alias of the same
# shape; a signature naming it is resolved to one of them (either is right), so the
# "more than one target" notice says nothing worth failing the build for.
suppress_warnings = ["ref.python"]

# -- the API reference, generated ----------------------------------------------------------

API_MODULES = (
    "trackwire",
    "trackwire.atmosphere",
    "trackwire.itrack",
    "trackwire.fleetfreedom",
    "trackwire.ws",
    "trackwire.drivers.trio",
    "trackwire.drivers.asyncio",
    "trackwire.drivers.blocking",
    "trackwire.drivers.asgi",
    "trackwire.conformance",
    "trackwire.conformance.asgi",
    "trackwire.conformance.strategies",
)
"""Every public module; each gets a page documenting each name of its ``__all__``."""


_NOT_INHERITED = (
    "object, BaseException, Exception, int, str, tuple, dict, list, "
    "Enum, IntEnum, Protocol, Generic"
)
"""Bases whose members are not repeated on every subclass."""


def _home(obj: Any, exporters: list[str]) -> str:
    """The one module that documents ``obj``: the public module its code lives under (the
    longest matching prefix), else the first module exporting it."""
    where = getattr(obj, "__module__", None) or ""
    best = ""
    for name in exporters:
        if (where == name or where.startswith(name + ".")) and len(name) > len(best):
            best = name
    return best or exporters[0]


def _shared(obj: Any) -> bool:
    """trackwire's classes and functions: documented once, with their signature.  Anything
    else (values, and callables of other libraries such as a bound ``JSONEncoder.encode``)
    is data, documented under each name with the comment its assignment carries."""
    ours = (getattr(obj, "__module__", None) or "").startswith("trackwire")
    return (inspect.isclass(obj) or inspect.isroutine(obj)) and ours


def _data_doc(module_name: str, name: str) -> list[str]:
    """The ``#:`` comment or string under ``name``'s assignment, in ``module_name`` or the
    private modules of its package (where re-exported constants are defined)."""
    module = importlib.import_module(module_name)
    names = [module_name]
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        names.append(f"{module_name}.{info.name}")
    for candidate in names:
        try:
            docs = ModuleAnalyzer.for_module(candidate).find_attr_docs()
        except Exception:  # a module without source: no comment to read
            continue
        if ("", name) in docs:
            return [line for line in docs[("", name)] if line is not None]
    return []


def _data_entry(module_name: str, name: str, value: Any) -> list[str]:
    lines = [f".. py:data:: {module_name}.{name}"]
    shown = repr(value)
    if len(shown) <= 80 and "\n" not in shown:
        lines.append(f"   :value: {shown}")
    lines.append("")
    lines += [f"   {line}" if line else "" for line in _data_doc(module_name, name)]
    lines.append("")
    return lines


def _directive(obj: Any) -> str:
    if inspect.isclass(obj):
        return "autoexception" if issubclass(obj, BaseException) else "autoclass"
    if inspect.isroutine(obj):
        return "autofunction"
    return "autodata"


def _write_api_pages(folder: Path) -> None:
    modules = {name: importlib.import_module(name) for name in API_MODULES}
    exporters: dict[int, list[str]] = {}
    for name, module in modules.items():
        for public in module.__all__:
            obj = getattr(module, public)
            if _shared(obj):
                exporters.setdefault(id(obj), []).append(name)
    folder.mkdir(exist_ok=True)
    for name, module in modules.items():
        title = f"``{name}``"
        lines = [title, "=" * len(title), "", f".. automodule:: {name}", "   :no-members:", ""]
        elsewhere: list[str] = []
        for public in sorted(module.__all__, key=lambda n: (n.startswith("_"), n.lower())):
            obj = getattr(module, public)
            if _shared(obj):
                home = _home(obj, exporters[id(obj)])
                if home != name:
                    elsewhere.append(f":py:obj:`{public} <{home}.{obj.__name__}>`")
                    continue
            if not _shared(obj):
                lines += _data_entry(name, public, obj)
                continue
            lines.append(f".. {_directive(obj)}:: {name}.{public}")
            if inspect.isclass(obj):
                lines += ["   :members:", f"   :inherited-members: {_NOT_INHERITED}"]
            lines.append("")
        if elsewhere:
            lines += [
                "Also importable from here (documented where they are defined): "
                + ", ".join(elsewhere)
                + ".",
                "",
            ]
        (folder / f"{name}.rst").write_text("\n".join(lines), encoding="utf-8")


_write_api_pages(Path(__file__).parent / "api")


# -- short references in docstrings ----------------------------------------------------------

_PRIVATE = re.compile(r"\._[A-Za-z]\w*")


def _resolve_short(
    app: Sphinx, env: Any, node: Any, contnode: nodes.TextElement
) -> nodes.Element | None:
    """Resolve a docstring's short reference (``:class:`GaveUp```, ``:meth:`send```) or one
    through a private module (``trackwire.x._y.Name``) to the one public object it names.

    Candidates are documented objects whose dotted name ends with the target (private parts
    dropped); several are narrowed to the current module and class, then the shortest wins.
    """
    if node.get("refdomain") != "py":
        return None
    target = _PRIVATE.sub("", node["reftarget"]).lstrip(".~")
    if not target or target.startswith(("dict[", "list[", "tuple[")):
        return None
    domain = env.get_domain("py")
    suffix = (
        "." + target.split("trackwire.", 1)[-1]
        if target.startswith("trackwire.")
        else ("." + target)
    )
    found = [name for name in domain.objects if name.endswith(suffix) or name == target]
    if not found:
        return None
    context = node.get("py:class") or ""
    module = node.get("py:module") or ""
    for prefix in (f"{module}.{context}.", f"{module}."):
        narrowed = [name for name in found if name.startswith(prefix)]
        if narrowed:
            found = narrowed
            break
    best = min(found, key=lambda name: (name.count("."), len(name), name))
    return domain.resolve_xref(env, node["refdoc"], app.builder, "obj", best, node, contnode)


def setup(app: Sphinx) -> None:
    app.connect("missing-reference", _resolve_short)
