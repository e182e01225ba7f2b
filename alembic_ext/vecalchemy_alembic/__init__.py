"""vecalchemy's Alembic plugin: vector-aware operations and autogenerate."""

from __future__ import annotations

__all__: list[str] = []
