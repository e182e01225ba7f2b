"""Drop-in modules for code written against other pgvector libraries.

:mod:`vecalchemy.compat.pgvector` has the names and value semantics of
``pgvector.sqlalchemy`` 0.5, on vecalchemy's types.
"""

from __future__ import annotations

__all__: list[str] = []
