"""Per-video embedding vectors (frames or clip windows) and the corpus-wide vector index
over them, saved in the feature store when it is worth it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.errors import BadInput
from bench.index.vector import FLAT_MAX, VectorIndex
from bench.timing import stage

if TYPE_CHECKING:
    from bench.store import FeatureStore

log = logging.getLogger("bench")


POOL_ROWS = 256
"""What whole-video scoring (tagging) looks at, at most, per video: a longer video's rows are
averaged in consecutive runs of equal length (a 1-hour video at 1 fps: runs of 14-15 frames)."""


@dataclass(frozen=True)
class PooledVectors:
    """A video's rows summarised once, when it is indexed, so that scoring a whole video against a
    few label vectors costs the same for a 1-minute and a 10-hour video.

    The cosine of a unit vector with a run's *mean* row is the mean of its cosines with the run's
    rows, so ``mean`` scores exactly like the mean over every row, and the best of ``rows`` is the
    best run's mean cosine (the best row itself while the video has at most ``POOL_ROWS`` rows,
    where ``rows`` is the video's own array, not a copy)."""

    first: np.ndarray
    """``(1, d)``: the first row."""
    mean: np.ndarray
    """``(1, d)``: the mean of every row (not renormalized)."""
    rows: np.ndarray
    """``(m, d)``, ``m <= POOL_ROWS``: run means (or the rows themselves)."""
    spans: np.ndarray
    """float64 ``(m, 2)``: each run's first start and last end in seconds."""


def pool_rows(vectors: np.ndarray, starts: np.ndarray, ends: np.ndarray,
              max_rows: int = POOL_ROWS) -> PooledVectors:
    """Summarise ``(n, d)`` rows (``n >= 1``) with their ``(n,)`` start and end times."""
    n = vectors.shape[0]
    if n == 0:
        raise ValueError("pool_rows needs at least one row")
    first = vectors[:1]
    mean = vectors.mean(axis=0, keepdims=True).astype(np.float32)
    if n <= max_rows:
        return PooledVectors(first, mean, vectors, np.stack([starts, ends], axis=1).astype(np.float64))
    # the first r runs one row longer than the rest: two reshapes, no per-run loop
    q, r = divmod(n, max_rows)
    split = r * (q + 1)
    d = vectors.shape[1]
    rows = np.concatenate([vectors[:split].reshape(r, q + 1, d).mean(axis=1),
                           vectors[split:].reshape(max_rows - r, q, d).mean(axis=1)]).astype(np.float32)
    counts = np.array([q + 1] * r + [q] * (max_rows - r), dtype=np.int64)
    ends_at = np.cumsum(counts)
    spans = np.stack([np.asarray(starts, dtype=np.float64)[ends_at - counts],
                      np.asarray(ends, dtype=np.float64)[ends_at - 1]], axis=1)
    return PooledVectors(first, mean, rows, spans)


@dataclass
class VideoVectors:
    """One video's L2-normalized vectors at sample times (frames or clip windows)."""

    vid: str
    video_id: str
    times_s: np.ndarray
    """float64 ``(n,)`` seconds: the frame time, or a clip window's first frame time."""
    vectors: np.ndarray
    """float32 ``(n, d)``, unit rows."""
    duration_s: float

    @cached_property
    def pooled(self) -> PooledVectors | None:
        """The rows summarised for whole-video scoring (None without rows); computed when the
        video enters an :class:`EmbeddingCorpus`, i.e. at indexing, not when it is scored."""
        if self.vectors.ndim != 2 or self.vectors.shape[0] == 0:
            return None
        return pool_rows(self.vectors, self.times_s, self.times_s)


class EmbeddingCorpus:
    """Vectors of every indexed video, with a lazily built :class:`~bench.index.VectorIndex`
    over all of them for corpus search (rows map back to (vid, row)).

    With :meth:`persist_in`, an index over more than ``persist_min`` vectors (an approximate
    one, whose build and calibration take a while) is saved in the feature store and loaded
    on the next run over the same videos."""

    def __init__(self, dim: int, *, index_kind: str = "auto", device: str = "cpu",
                 persist_min: int | None = None) -> None:
        self.dim = dim
        self.index_kind = index_kind
        self.device = device
        self.persist_min = FLAT_MAX if persist_min is None else persist_min
        self.videos: dict[str, VideoVectors] = {}
        self._index: VectorIndex | None = None
        self._owners: list[str] = []
        self._starts = np.zeros(0, dtype=np.int64)
        self._cache: tuple[FeatureStore, str] | None = None
        self.index_from_cache = False

    def persist_in(self, store: FeatureStore, name: str) -> None:
        """Save/load large corpus indexes under ``store.artifact_dir(name/...)``."""
        self._cache = (store, name)

    def _artifact(self, owners: list[str], sizes: np.ndarray) -> Path | None:
        if self._cache is None or int(sizes.sum()) <= self.persist_min:
            return None
        store, name = self._cache
        spec = json.dumps([self.index_kind, [[v, self.videos[v].video_id, int(n)]
                                             for v, n in zip(owners, sizes.tolist(), strict=True)]])
        digest = hashlib.sha256(spec.encode("utf-8")).hexdigest()[:16]
        return store.artifact_dir(f"{name}/{digest}") / "index"

    def add(self, item: VideoVectors) -> None:
        if item.vectors.ndim != 2 or item.vectors.shape[1] != self.dim:
            raise BadInput(f"{item.vid}: vectors of shape {item.vectors.shape}, expected (n, {self.dim})")
        self.videos[item.vid] = item
        _ = item.pooled  # summarised now, while indexing, so tagging never pays for it
        self._index = None  # rebuilt on the next corpus search

    def get(self, vid: str) -> VideoVectors:
        if vid not in self.videos:
            known = ", ".join(sorted(self.videos)[:10]) or "none"
            raise BadInput(f"video {vid!r} is not indexed (indexed: {known}); index it first")
        return self.videos[vid]

    def __len__(self) -> int:
        return sum(v.vectors.shape[0] for v in self.videos.values())

    def vector_index(self) -> VectorIndex:
        """The corpus index (built on first use, timed as stage ``index_build``)."""
        if self._index is not None:
            return self._index
        owners = [v for v in self.videos if self.videos[v].vectors.shape[0]]
        sizes = np.array([self.videos[v].vectors.shape[0] for v in owners], dtype=np.int64)
        saved = self._artifact(owners, sizes)
        index: VectorIndex | None = None
        self.index_from_cache = False
        if saved is not None and (saved / "meta.json").is_file():
            try:
                index = VectorIndex.load(saved, device=self.device)
            except (BadInput, OSError, RuntimeError, ValueError) as exc:  # damaged: rebuild it
                log.warning("corpus vector index at %s cannot be loaded (%s); rebuilding", saved, exc)
            if index is not None and len(index) != int(sizes.sum()):
                index = None
            self.index_from_cache = index is not None
        if index is None:
            with stage("index_build", items=int(sizes.sum())):
                index = VectorIndex(self.dim, kind=self.index_kind, device=self.device)  # type: ignore[arg-type]
                start = 0
                for vid, n in zip(owners, sizes.tolist(), strict=True):
                    index.add(self.videos[vid].vectors, np.arange(start, start + n, dtype=np.int64))
                    start += n
                index.build()
            writable = self._cache is not None and not self._cache[0].read_only
            if saved is not None and writable:  # a read-only cache keeps it in memory only
                index.save(saved)
        self._index, self._owners = index, owners
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        return index

    def top_videos(self, query: np.ndarray, rows: int, max_videos: int) -> list[str]:
        """Videos holding the ``rows`` best-matching vectors for one unit ``(d,)`` query,
        ordered by their best match; at most ``max_videos``."""
        index = self.vector_index()
        if len(index) == 0:
            return []
        _, ids = index.search(query[None, :].astype(np.float32), min(rows, len(index)))
        found = ids[0][ids[0] >= 0]
        owner = np.searchsorted(self._starts, found, side="right") - 1
        order: list[str] = []
        for o in owner.tolist():
            vid = self._owners[o]
            if vid not in order:
                order.append(vid)
                if len(order) >= max_videos:
                    break
        return order
