"""A corpus nobody here wrote: the docstrings of the Python standard library.

:func:`stdlib_passages` imports the public standard-library modules available on this
machine (``sys.stdlib_module_names`` and their public submodules), reads the docstrings
of the modules, their classes, functions and methods with :func:`inspect.getdoc`, and
splits them into passages of a few paragraphs. The order is deterministic (modules and
members sorted by name), so two runs on the same Python give the same corpus.

Modules that open windows, print, start things or are test suites are never imported;
a module whose import fails or warns is skipped.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import pkgutil
import re
import sys
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["Doc", "Passage", "stdlib_docs", "stdlib_passages", "split_passages"]

#: Never imported: side effects on import (a browser, a poem, a GUI, a REPL hook),
#: test suites, or tools that are not a library's API.
SKIP = frozenset(
    {
        "antigravity",
        "this",
        "idlelib",
        "tkinter",
        "turtle",
        "turtledemo",
        "test",
        "lib2to3",
        "ensurepip",
        "venv",
        "pydoc_data",
        "readline",
        "rlcompleter",
        "sitecustomize",
        "usercustomize",
        "site",
        "__main__",
        "xxlimited",
        "xxlimited_35",
        "xxsubtype",
    }
)

#: Submodule names never imported (``test`` packages inside stdlib packages, demos).
SKIP_PARTS = frozenset({"test", "tests", "idle_test", "demo", "__main__"})


#: Public modules that implement another one's API (``os.listdir`` is ``posix.listdir``).
IMPLEMENTATIONS = frozenset({"posix", "nt"})


@dataclass(frozen=True)
class Doc:
    """One documented object: its qualified name, kind and cleaned docstring."""

    qualname: str  # e.g. "datetime.datetime.strptime"
    kind: str  # "module", "class", "function", "method" or "property"
    doc: str


@dataclass(frozen=True)
class Passage:
    """A piece of a docstring small enough to embed as one text."""

    qualname: str
    kind: str
    text: str


def _import_quietly(name: str) -> ModuleType | None:
    """Import ``name`` with stdout/stderr captured and warnings silenced; None on failure."""
    sink = io.StringIO()
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except BaseException:  # noqa: BLE001 - a module may raise anything, even SystemExit
        return None


def _public(name: str) -> bool:
    return not name.startswith("_")


def module_names(only: Iterable[str] | None = None) -> list[str]:
    """Sorted public standard-library module names, with public submodules of packages.

    ``only``: restrict to these top-level modules (and their submodules).
    """
    tops = sorted(sys.stdlib_module_names) if only is None else sorted(set(only))
    names: list[str] = []
    for top in tops:
        if not _public(top) or top in SKIP:
            continue
        module = _import_quietly(top)
        if module is None:
            continue
        names.append(top)
        path = getattr(module, "__path__", None)
        if path is None:
            continue
        for info in pkgutil.walk_packages(path, prefix=top + ".", onerror=lambda _name: None):
            parts = info.name.split(".")
            if all(_public(p) and p not in SKIP_PARTS for p in parts):
                names.append(info.name)
    return sorted(set(names))


def _own_doc(obj: Any) -> str | None:
    """The object's own docstring (not one inherited from a base class), cleaned."""
    raw = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    if not isinstance(raw, str) or not raw.strip():
        return None
    return inspect.cleandoc(raw)


def _kind(obj: Any) -> str | None:
    if isinstance(obj, type):
        return "class"
    if inspect.isroutine(obj):
        return "function"
    return None


def _private(modname: str) -> bool:
    return any(part.startswith("_") for part in modname.split("."))


def _members(module: ModuleType) -> list[tuple[str, Any]]:
    """Public classes and functions that ``module`` defines or publicly re-exports.

    Besides its own objects, a module documents what it exports (``__all__``, or every
    public name when there is none) from a private or implementation module
    (``_sqlite3.connect`` is ``sqlite3.connect``) and, for a package, from its own
    submodules (``json.encoder.JSONEncoder`` is ``json.JSONEncoder``).
    """
    modname = module.__name__
    exported = getattr(module, "__all__", None)
    out = []
    for name, obj in sorted(vars(module).items()):
        if not _public(name) or _kind(obj) is None:
            continue
        home = getattr(obj, "__module__", None) or ""
        if home == modname:
            out.append((name, obj))
            continue
        listed = exported is None or name in exported
        implementation = _private(home) or home in IMPLEMENTATIONS
        submodule = home.startswith(modname + ".") and exported is not None and name in exported
        if (implementation and listed) or submodule:
            out.append((name, obj))
    return out


def _class_members(cls: type) -> list[tuple[str, str, Any]]:
    """Public methods and properties written in ``cls`` itself.

    An attribute that merely refers to a function defined elsewhere
    (``logging.Formatter.converter = time.localtime``) is not the class's own.
    """
    out = []
    member: Any
    code: Any
    for name, attr in sorted(vars(cls).items()):
        if not _public(name):
            continue
        if isinstance(attr, property):
            kind, member, code = "property", attr, attr.fget
        elif isinstance(attr, (staticmethod, classmethod)):
            kind, member, code = "method", attr.__func__, attr.__func__
        elif inspect.isroutine(attr):
            kind, member, code = "method", attr, attr
        else:
            continue
        if getattr(code, "__qualname__", "").startswith(cls.__qualname__ + "."):
            out.append((name, kind, member))
    return out


def stdlib_docs(only: Iterable[str] | None = None) -> Iterator[Doc]:
    """Every documented public module, class, function, method and property, in order.

    Each object is yielded once, under the first qualified name met (modules in sorted
    order); objects without a docstring of their own are skipped.
    """
    seen: dict[int, Any] = {}  # id -> object, kept alive so no id is reused
    for modname in module_names(only):
        module = _import_quietly(modname)
        if module is None:
            continue
        doc = _own_doc(module)
        if doc:
            yield Doc(modname, "module", doc)
        for name, obj in _members(module):
            if id(obj) in seen:
                continue
            seen[id(obj)] = obj
            kind = _kind(obj)
            qualname = f"{modname}.{name}"
            doc = _own_doc(obj)
            if doc and kind:
                yield Doc(qualname, kind, doc)
            if isinstance(obj, type):
                for mname, mkind, member in _class_members(obj):
                    if id(member) in seen:
                        continue
                    seen[id(member)] = member
                    mdoc = _own_doc(member)
                    if mdoc:
                        yield Doc(f"{qualname}.{mname}", mkind, mdoc)


_PARAGRAPH = re.compile(r"\n\s*\n")


def split_passages(doc: Doc, max_words: int = 120) -> list[Passage]:
    """Split a docstring on blank lines and regroup paragraphs up to ``max_words`` words.

    A paragraph longer than ``max_words`` is cut at word boundaries, so every passage
    stays short (and far below the 1 000 non-zeros a sparsevec HNSW index accepts).
    """
    chunks: list[list[str]] = []
    for para in _PARAGRAPH.split(doc.doc):
        words = para.split()
        for start in range(0, len(words), max_words):
            piece = words[start : start + max_words]
            if chunks and len(chunks[-1]) + len(piece) <= max_words:
                chunks[-1].extend(piece)
            else:
                chunks.append(list(piece))
    return [Passage(doc.qualname, doc.kind, " ".join(c)) for c in chunks if c]


def stdlib_passages(
    only: Iterable[str] | None = None, *, limit: int | None = None, max_words: int = 120
) -> list[Passage]:
    """The passages of :func:`stdlib_docs`, at most ``limit`` of them (the first ones)."""
    out: list[Passage] = []
    for doc in stdlib_docs(only):
        for passage in split_passages(doc, max_words):
            out.append(passage)
            if limit is not None and len(out) >= limit:
                return out
    return out
