"""Vector indexes: declarations, the rules pgvector enforces, and builds with progress.

- :mod:`~vecalchemy.indexes.declaration`: :class:`HnswIndex`, :class:`IvfflatIndex` and
  :func:`vector_index_spec` (the spec of any ``Index``, declared or reflected);
- :mod:`~vecalchemy.indexes.rules`: :class:`VectorIndexSpec` and
  :func:`validate_vector_index`;
- :mod:`~vecalchemy.indexes.build`: :func:`build_vector_index`,
  :func:`build_vector_index_async` and :class:`BuildProgress`.

``INDEX_OPTIONS``, :class:`BuildSettings` and :func:`index_build_settings` are facts
(:mod:`vecalchemy.facts`), re-exported here where they have always been importable.
"""

from __future__ import annotations

from ..facts import INDEX_OPTIONS, BuildSettings, index_build_settings
from .build import BuildProgress, build_vector_index, build_vector_index_async
from .declaration import HnswIndex, IvfflatIndex, vector_index_spec
from .rules import VectorIndexSpec, validate_vector_index

__all__ = [
    "HnswIndex",
    "IvfflatIndex",
    "VectorIndexSpec",
    "INDEX_OPTIONS",
    "validate_vector_index",
    "vector_index_spec",
    "BuildProgress",
    "build_vector_index",
    "build_vector_index_async",
    "BuildSettings",
    "index_build_settings",
]
