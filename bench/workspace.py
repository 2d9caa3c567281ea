"""One per process: the feature store and the retrievers built from configurations, each once,
shared by every caller (the Space's sessions, fusion members) behind a lock per retriever.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import BadInput, Unavailable
from bench.types import QueryInput, Video

if TYPE_CHECKING:
    from bench.engine.search import QueryResult
    from bench.retrievers.base import Retriever, RetrieverConfig
    from bench.store import FeatureStore
    from bench.store.engines import EngineConfig

Build = Callable[["RetrieverConfig", str, "Workspace"], "Retriever"]
IndexKey = frozenset[tuple[str, str | None]]


def unique_vid(stem: str, taken: Collection[str]) -> str:
    """The vid of a video file named ``stem``: the stem itself, or ``stem-2``, ``stem-3``...
    while that is taken (two files with one name in a search, an upload named like a video
    of the embedded set)."""
    vid, n = stem, 2
    while vid in taken:
        vid, n = f"{stem}-{n}", n + 1
    return vid


def videos_from_files(paths: Sequence[Path], taken: Collection[str] = ()) -> list[Video]:
    """Local video files as :class:`Video` rows (probed for their duration), vids by
    :func:`unique_vid`. BadInput for a missing or unreadable file."""
    from bench.video import probe

    used = set(taken)
    videos = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise BadInput(f"{path}: video file not found")
        info = probe(path)
        vid = unique_vid(path.stem, used)
        used.add(vid)
        videos.append(Video(vid=vid, path=str(path.resolve()), duration=info.duration_s))
    return videos


def _build(config: RetrieverConfig, device: str, workspace: Workspace) -> Retriever:
    from bench.retrievers import build_retriever

    return build_retriever(config, device, workspace=workspace)


class Workspace:
    """One per process: the feature store and the retrievers built from configurations, each once.

    The indexing engine (``engine``: this process, or a Ray cluster) is the workspace's
    choice and reaches every family through its feature store.

    A retriever searches what its last ``index`` call gave it, and it is shared, so
    index-then-search runs under that retriever's lock; features come from the feature
    store, so indexing a set seen before costs a cache lookup, not a model pass. A
    configuration that cannot be built is remembered as unavailable with its reason.

    Retrievers are known by configuration name. The locks are per name and re-entrant,
    and no lock is held across all names while a retriever is built: building a fusion
    asks the workspace for its members while the fusion's own lock is held.
    """

    def __init__(self, *, device: str = "auto", store: FeatureStore | None = None,
                 build: Build | None = None, engine: EngineConfig | None = None) -> None:
        self.device = device
        self.engine = engine
        """How missing features are computed (None: the store's own, local by default)."""
        if store is not None and engine is not None:
            store.engine = engine
        self.builds: collections.Counter[str] = collections.Counter()
        """Configuration name -> times it was built (a build that failed counts too)."""
        self._store = store
        self._build: Build = build or _build
        self._lock = threading.Lock()  # guards the dictionaries below, never held for long
        self._locks: dict[str, threading.RLock] = {}
        self._retrievers: dict[str, Retriever] = {}
        self._unavailable: dict[str, str] = {}
        self._indexed: dict[str, IndexKey] = {}

    @property
    def store(self) -> FeatureStore:
        """The feature store, opened on first use."""
        with self._lock:
            if self._store is None:
                from bench.store import FeatureStore

                self._store = FeatureStore()
                if self.engine is not None:
                    self._store.engine = self.engine
            return self._store

    def loaded(self) -> list[str]:
        """Names of the retrievers built so far."""
        with self._lock:
            return sorted(self._retrievers)

    def _config(self, spec: str | RetrieverConfig) -> tuple[str, RetrieverConfig | None]:
        """(name, configuration); the configuration is None when ``name`` is known already,
        so a name asked for again costs no YAML reading."""
        if not isinstance(spec, str):
            return spec.name, spec
        with self._lock:
            if spec in self._retrievers or spec in self._unavailable:
                return spec, None
        from bench.retrievers import get_config

        config = get_config(spec)
        return config.name, config

    def _lock_for(self, name: str) -> threading.RLock:
        with self._lock:
            lock = self._locks.get(name)
            if lock is None:
                lock = self._locks[name] = threading.RLock()
            return lock

    def _get_locked(self, name: str, config: RetrieverConfig | None) -> Retriever:
        """The caller holds ``name``'s lock."""
        with self._lock:
            if name in self._unavailable:
                raise Unavailable(self._unavailable[name])
            r = self._retrievers.get(name)
        if r is not None:
            return r
        if config is None:  # known by name only; resolve it now
            from bench.retrievers import get_config

            config = get_config(name)
        with self._lock:
            self.builds[name] += 1
        try:
            r = self._build(config, self.device, self)
        except Unavailable as exc:
            with self._lock:
                self._unavailable[name] = str(exc)
            raise
        with self._lock:
            self._retrievers[name] = r
        return r

    @contextmanager
    def holding(self, spec: str | RetrieverConfig) -> Iterator[Retriever]:
        """The retriever, built if needed, with its lock held until the block ends. The lock
        is re-entrant, so :meth:`index` and :meth:`search` may be called inside."""
        name, config = self._config(spec)
        with self._lock_for(name):
            yield self._get_locked(name, config)

    def retriever(self, spec: str | RetrieverConfig) -> Retriever:
        """The retriever of configuration ``spec`` (a name in ``models/``, a YAML path or a
        configuration), built on first use. Unavailable when it cannot be, then and on
        every later call, with the same reason."""
        with self.holding(spec) as r:
            return r

    def _index_locked(self, name: str, r: Retriever, videos: Sequence[Video]) -> None:
        key = frozenset((v.vid, v.path) for v in videos)
        with self._lock:
            if self._indexed.get(name) == key:
                return
            self._indexed.pop(name, None)  # a failed index call leaves the index unknown
        r.index(list(videos), self.store)
        with self._lock:
            self._indexed[name] = key

    def index(self, spec: str | RetrieverConfig, videos: Sequence[Video]) -> Retriever:
        """Build ``spec`` if needed and index ``videos`` with it, unless its last successful
        index call had exactly these videos (by vid and path); returns the retriever."""
        name, config = self._config(spec)
        with self._lock_for(name):
            r = self._get_locked(name, config)
            self._index_locked(name, r, videos)
            return r

    def search(self, spec: str | RetrieverConfig, videos: Sequence[Video],
               queries: Sequence[QueryInput], *, top_k: int, vids: Sequence[str] | None,
               ) -> tuple[list[QueryResult], float]:
        """Index ``videos`` if needed, then search ``vids`` (None: all of ``videos``), all
        under the retriever's lock: the one search path of the CLI, the runner and the Space.
        Returns (per query its moments and reason, search seconds): indexing is not counted."""
        name, config = self._config(spec)
        with self._lock_for(name):
            r = self._get_locked(name, config)
            self._index_locked(name, r, videos)
            t0 = time.perf_counter()
            results = r.search_results(list(queries), top_k=top_k,
                                       vids=list(vids) if vids is not None else None)
            return results, time.perf_counter() - t0
