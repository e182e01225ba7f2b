"""Type checkers see the distance methods: ``mypy --strict`` over ``tests/typing/``.

``usage.py`` (and ``usage_sqlmodel.py`` with SQLModel >= 0.0.43) must check clean,
every ``assert_type`` holding; ``reveal.py`` lists the revealed types. The same files
run, so the typed spelling behaves at run time as the untyped one.
"""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, select
from sqlalchemy.orm import Mapped, aliased, mapped_column

import vecalchemy
from vecalchemy import Vector
from vecalchemy.types import VectorComparator
from vecalchemy.typing import DistanceOperators, VectorMapped, vector_column, vector_ops

TYPING = Path(__file__).parent / "typing"


#: (SQLModel >= 0.0.43, as the test extra requires, types ``Field(sa_type=)`` as a type or
#: an instance such as ``Vector(3)``)
FILES = ["usage.py", "reveal.py", "usage_sqlmodel.py"]


def _mypy_path() -> str:
    """Where mypy finds vecalchemy: an editable install's source folder (mypy cannot
    follow setuptools' import hook), nothing for a regular install."""
    root = Path(vecalchemy.__file__).resolve().parents[1]
    site = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    return "" if root in site else str(root)


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    api = pytest.importorskip("mypy.api", reason="mypy is not installed")
    tmp = tmp_path_factory.mktemp("mypy")
    config = tmp / "mypy.ini"
    config.write_text(
        "[mypy]\nstrict = True\n"
        # errors in imported modules (vecalchemy's untyped optional drivers) are not ours
        "follow_imports = silent\n"
        f"mypy_path = {_mypy_path()}\n"
    )
    stdout, stderr, status = api.run(
        ["--config-file", str(config), "--cache-dir", str(tmp / "cache"), "--no-color-output"]
        + [str(TYPING / f) for f in FILES]
    )
    assert status == 0 and not stderr, stdout + stderr
    return str(stdout)


def test_usage_checks_clean_under_mypy_strict(mypy_output: str) -> None:
    assert ": error:" not in mypy_output
    assert mypy_output.rstrip().splitlines()[-1].startswith("Success: no issues found")


def _short(type_text: str) -> str:
    # "sqlalchemy.sql.elements.ColumnElement[builtins.float]" -> "ColumnElement[float]"
    return re.sub(r"\b(?:[a-z_]\w*\.)+(?=[A-Za-z_])", "", type_text)


def test_revealed_types_are_the_expected_ones(mypy_output: str) -> None:
    lines = (TYPING / "reveal.py").read_text().splitlines()
    expected = {
        n: line.rsplit("# ", 1)[1]
        for n, line in enumerate(lines, 1)
        if line.startswith("reveal_type(")
    }
    revealed = {
        int(m[1]): _short(m[2])
        for m in re.finditer(r"reveal\.py:(\d+): note: Revealed type is \"(.*)\"", mypy_output)
    }
    assert revealed == expected
    assert sum(t == "ColumnElement[float]" for t in revealed.values()) >= 7


def test_usage_runs() -> None:
    runpy.run_path(str(TYPING / "usage.py"))


def test_sqlmodel_usage_checks_clean_under_mypy_strict(mypy_output: str) -> None:
    assert "usage_sqlmodel.py" not in mypy_output
    assert "no issues found in 3 source files" in mypy_output


def test_sqlmodel_usage_runs() -> None:
    runpy.run_path(str(TYPING / "usage_sqlmodel.py"))


def test_usage_checks_clean_under_pyright() -> None:
    files = [str(TYPING / f) for f in FILES if f != "reveal.py"]
    run = subprocess.run(
        [sys.executable, "-m", "pyright", "--pythonpath", sys.executable, *files],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=TYPING.parents[1],
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 errors" in run.stdout


# --- nothing changes at run time ----------------------------------------------------------


def test_typed_names_are_sqlalchemys_at_run_time() -> None:
    names: list[object] = [VectorMapped, vector_column]
    assert names == [Mapped, mapped_column]


def test_vector_ops_returns_its_argument() -> None:
    items = Table("items", MetaData(), Column("id", Integer), Column("embedding", Vector(3)))
    sub = select(items).subquery()
    columns: list[Any] = [items.c.embedding, sub.c.embedding]
    assert all(vector_ops(c) is c for c in columns)
    expr = vector_ops(items.c.embedding).l2_distance([1, 2, 3])
    assert str(expr) == "items.embedding <-> :embedding_1"


def test_vector_ops_takes_orm_attributes_and_aliases() -> None:
    Doc = runpy.run_path(str(TYPING / "usage.py"))["Doc"]
    alias = aliased(Doc)
    assert vector_ops(Doc.embedding) is Doc.embedding
    assert vector_ops(alias.embedding) is alias.embedding
    assert str(vector_ops(alias.embedding).cosine_distance([1, 2, 3])).startswith(
        "doc_1.embedding <=> "
    )


def test_vector_ops_refuses_an_expression_of_another_type() -> None:
    items = Table("items", MetaData(), Column("id", Integer))
    with pytest.raises(TypeError, match=r"vector_ops\(\) takes an expression of Vector.*Integer"):
        vector_ops(items.c.id)
    with pytest.raises(TypeError, match="vector_ops"):
        vector_ops([1.0, 2.0, 3.0])


def test_the_protocol_declares_every_distance_method_of_the_comparator() -> None:
    declared = {n for n in vars(DistanceOperators) if not n.startswith("_")}
    comparator = {
        n
        for klass in VectorComparator.__mro__
        if klass.__module__ == "vecalchemy.types"
        for n in vars(klass)
        if not n.startswith("_")
    }
    assert declared == comparator
