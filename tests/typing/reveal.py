"""The types mypy reveals for vecalchemy's expressions; each line's comment is the
expected type (``tests/test_typing.py`` compares them). Checked, never run."""

from __future__ import annotations

from typing_extensions import reveal_type
from usage import Doc, items, q

from vecalchemy import vector_norm
from vecalchemy.typing import vector_ops

reveal_type(Doc.embedding.cosine_distance(q))  # ColumnElement[float]
reveal_type(Doc.embedding.l2_distance(q))  # ColumnElement[float]
reveal_type(Doc.embedding.max_inner_product(q))  # ColumnElement[float]
reveal_type(Doc.embedding.l1_distance(q))  # ColumnElement[float]
reveal_type(Doc.embedding.distance(q))  # ColumnElement[float]
reveal_type(Doc.code.hamming_distance("1010"))  # ColumnElement[float]
reveal_type(Doc.code.jaccard_distance("1010"))  # ColumnElement[float]
reveal_type(vector_ops(items.c.embedding))  # VectorColumnElement[Any]
reveal_type(vector_ops(items.c.embedding).cosine_distance(q))  # ColumnElement[float]
reveal_type(vector_norm(Doc.embedding))  # ColumnElement[float]
reveal_type(Doc.plain.cosine_distance(q))  # Any
