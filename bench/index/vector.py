"""Top-k inner-product search over L2-normalized vectors: faiss (CPU or GPU), torch on CUDA, numpy.

Small collections are searched exactly. Large ones use an approximate index whose search
knob (IVF ``nprobe``, HNSW ``efSearch``, PQ re-rank depth) is calibrated at build time
against exact search so recall@10 reaches ``target_recall``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bench.devices import faiss_gpu_problem
from bench.errors import BadInput
from bench.fsio import directory_swap

log = logging.getLogger("bench")

Kind = Literal["auto", "flat", "ivf", "hnsw", "pq", "ivfpq"]
Backend = Literal["auto", "faiss", "numpy", "torch"]
KINDS: tuple[str, ...] = ("auto", "flat", "ivf", "hnsw", "pq", "ivfpq")
BACKENDS: tuple[str, ...] = ("auto", "faiss", "numpy", "torch")
FORMAT_VERSION = 1

FLAT_MAX = 65_536
"""``kind="auto"`` searches exactly up to this many vectors (a 512-d flat scan of 64 Ki
vectors is ~128 MiB, a few tens of ms on two cores); above it, it builds ``pq``."""

PQ_MAX = 524_288
"""``kind="auto"`` on the CPU scans every PQ code (``pq``) up to this many vectors; above it,
it builds ``ivfpq``, which scans only the codes of the lists nearest the query. The full
scan's time grows linearly with the corpus (scripts/perf/reports/vector_search.md measured
it at 360k) and ``pq`` keeps float32 vectors for its re-rank (2 GiB per million); ``ivfpq``
keeps float16 (1 GiB per million). docs/scaling.md."""

IVFPQ_RERANK = 16
"""``ivfpq`` re-ranks ``k x`` this many PQ candidates exactly (on float16 vectors); its
``nprobe`` is calibrated. At 1M video-like vectors, 16 gave recall@10 0.997 on held-out
queries, 8 gave 0.988 (scripts/perf/reports/vector_scale-1000000.json, docs/scaling.md)."""

GPU_FLAT_MAX = 4_194_304
"""``kind="auto"`` on a GPU (faiss-gpu) searches exactly up to this many vectors: a flat scan
is what GPUs do best (4 Mi 512-d vectors are 8 GiB of float32), and faiss's PQ fast-scan,
the CPU's choice above :data:`FLAT_MAX`, has no GPU version; above it, IVF on the GPU."""
GPU_MAX_NPROBE = 2048
"""faiss-gpu's IVF search refuses ``nprobe`` above this (its k-selection limit)."""

_CALIBRATION_QUERIES = 128
_NUMPY_CHUNK = 65_536
_SINGLE_THREAD_MAX = 65_536
"""faiss work over at most this many vectors runs on one OpenMP thread: splitting it costs
more than it saves, and on a busy machine OpenMP barriers waiting for descheduled threads
made small builds 20x slower (measured: 3,000 x 32 PQ build 10 s on 2 threads, 0.5 s on 1)."""


@contextlib.contextmanager
def _faiss_threads(n_vectors: int) -> Iterator[None]:
    faiss = _faiss()
    if n_vectors > _SINGLE_THREAD_MAX:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _faiss() -> Any:
    """The faiss module, typed loosely (its SWIG stubs do not know the keyword parameters)."""
    import importlib

    return importlib.import_module("faiss")


def _have_faiss() -> bool:
    try:
        _faiss()
    except ImportError:
        return False
    return True


def faiss_gpu_available() -> bool:
    """True when the installed faiss was built with GPU support and sees a GPU."""
    return faiss_gpu_problem() is None


_GPU_RESOURCES: list[Any] = []


def gpu_resources() -> Any:
    """The process's one ``faiss.StandardGpuResources``: each holds its own scratch memory
    (about 18% of the GPU by default) and streams, so one per index would waste both."""
    if not _GPU_RESOURCES:
        _GPU_RESOURCES.append(_faiss().StandardGpuResources())
    return _GPU_RESOURCES[0]


TRAINED_KINDS = ("ivf", "pq", "ivfpq")
MIN_TRAIN = 39 * 16
"""Fewer vectors than this are searched exactly, whatever kind was asked for: faiss cannot train
16 IVF lists or 4-bit PQ codebooks on fewer than 16 vectors (a small corpus with ``index_kind:
ivf`` failed at its first search) and asks for 39 a list; an exact scan of so few is instant."""


def auto_kind(n_vectors: int, backend: str, on_gpu: bool, flat_max: int = FLAT_MAX,
              pq_max: int = PQ_MAX) -> str:
    """What ``kind="auto"`` builds for ``n_vectors``: exact search up to ``flat_max`` (on the
    CPU) or :data:`GPU_FLAT_MAX` (faiss on a GPU); above it, on the CPU, ``pq`` up to
    ``pq_max`` and ``ivfpq`` beyond, and ``ivf`` on the GPU, which has no PQ fast-scan. The
    numpy and torch backends are always exact."""
    if backend != "faiss":
        return "flat"
    if on_gpu:
        return "flat" if n_vectors <= max(flat_max, GPU_FLAT_MAX) else "ivf"
    if n_vectors <= flat_max:
        return "flat"
    return "pq" if n_vectors <= max(flat_max, pq_max) else "ivfpq"


def ivf_lists(n_vectors: int) -> int:
    """Inverted lists of ``ivfpq``: the power of two nearest ``sqrt(n)`` (1,024 at 1M, 4,096
    at 10M), at least 16, and at most ``n / 39`` (faiss's k-means wants 39 points a list)."""
    nlist = 2 ** round(math.log2(max(1.0, math.sqrt(n_vectors))))
    return int(max(1, min(max(16, nlist), n_vectors // 39)))


def nprobe_steps(nlist: int, on_gpu: bool) -> list[int]:
    """The ``nprobe`` values IVF calibration tries, smallest first: powers of two below
    ``nlist``, then ``nlist`` (every list: exact); on a GPU none above :data:`GPU_MAX_NPROBE`."""
    top = min(nlist, GPU_MAX_NPROBE) if on_gpu else nlist
    steps = [p for p in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096) if p < top]
    return steps + [top]


def _torch_cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalization of float ``(n, d)`` (zero rows stay zero); float32 out."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


def exact_topk(database: np.ndarray, queries: np.ndarray, k: int,
               chunk: int = _NUMPY_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k with numpy, scanning ``database`` in row chunks.

    ``database`` float32 ``(n, d)``, ``queries`` float32 ``(q, d)``. Returns scores float32
    ``(q, k)`` and row positions int64 ``(q, k)`` sorted by descending score; ``-inf`` / ``-1``
    pad when ``k > n``.
    """
    nq = queries.shape[0]
    best_s = np.full((nq, k), -np.inf, dtype=np.float32)
    best_i = np.full((nq, k), -1, dtype=np.int64)
    for start in range(0, database.shape[0], chunk):
        block = queries @ database[start:start + chunk].T  # (q, c): memory bounded by chunk
        kk = min(k, block.shape[1])
        part = np.argpartition(-block, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(block, part, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, part.astype(np.int64) + start], axis=1)
        order = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s = np.take_along_axis(cand_s, order, axis=1)
        best_i = np.take_along_axis(cand_i, order, axis=1)
    best_i[~np.isfinite(best_s)] = -1
    return best_s, best_i


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of |found ∩ truth| / |truth| (ids, ``-1`` ignored), both ``(q, k)``."""
    hits, total = 0, 0
    for f, t in zip(found, truth, strict=True):
        tset = {int(i) for i in t if i >= 0}
        hits += len(tset & {int(i) for i in f if i >= 0})
        total += len(tset)
    return hits / total if total else 1.0


class VectorIndex:
    """Inner-product top-k over L2-normalized float32 vectors with int64 ids.

    ``kind``: ``flat`` (exact), ``ivf`` (IVF-Flat, calibrated ``nprobe``), ``hnsw``
    (calibrated ``efSearch``), ``pq`` (exhaustive 4-bit PQ fast-scan over 2-dimension
    sub-vectors, then exact re-rank of a calibrated number of candidates), ``ivfpq`` (the
    same codes in inverted lists, calibrated ``nprobe``, then an exact re-rank of ``k x``
    :data:`IVFPQ_RERANK` candidates on float16 vectors), or ``auto`` (flat up to
    :data:`FLAT_MAX` vectors, ``pq`` up to :data:`PQ_MAX`: partition-based indexes lose recall
    on unclustered vectors, see scripts/perf/README.md; ``ivfpq`` above, where a full scan is
    too slow and frame vectors cluster by shot and video, docs/scaling.md). ``backend``: ``faiss``, ``numpy``
    (exact only), ``torch`` (exact, on CUDA) or ``auto`` (faiss-GPU, else torch, on
    ``device="cuda"``; faiss, else numpy, on CPU). The index is built on the first search
    (or :meth:`build`); vectors added afterwards go into the built index.
    """

    def __init__(self, dim: int, kind: Kind = "auto", backend: Backend = "auto",
                 device: str = "cpu", *, target_recall: float = 0.99, flat_max: int = FLAT_MAX,
                 pq_max: int = PQ_MAX, nlist: int | None = None, hnsw_m: int = 32,
                 seed: int = 0) -> None:
        if dim < 1:
            raise BadInput(f"vector dimension must be >= 1, got {dim}")
        if kind not in KINDS:
            raise BadInput(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")
        if backend not in BACKENDS:
            raise BadInput(f"unknown index backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if device not in ("cpu", "cuda"):
            raise BadInput(f"index device must be 'cpu' or 'cuda', got {device!r}")
        if not 0.0 < target_recall <= 1.0:
            raise BadInput(f"target_recall must be in (0, 1], got {target_recall}")
        self.dim = dim
        self.kind: str = kind
        self.device = device
        self.target_recall = target_recall
        self.flat_max = flat_max
        self.pq_max = pq_max
        self.nlist = nlist
        self.hnsw_m = hnsw_m
        self.seed = seed
        self.backend: str = self._pick_backend(backend)
        self.search_param: int | None = None
        """The calibrated knob: nprobe (ivf, ivfpq), efSearch (hnsw), re-rank factor (pq)."""
        self.calibrated_recall: float | None = None
        self._pending: list[np.ndarray] = []
        self._ids = np.zeros(0, dtype=np.int64)
        self._vectors: np.ndarray | None = None  # numpy/torch backends keep the matrix here
        self._index: Any = None  # faiss index or torch tensor once built
        self._built_kind: str | None = None

    # -- construction --------------------------------------------------------------------

    def _pick_backend(self, backend: str) -> str:
        if backend == "numpy":
            if self.kind not in ("auto", "flat"):
                raise BadInput(f"index kind {self.kind!r} needs faiss; the numpy backend is exact "
                               "(kind='flat' or 'auto')")
            return "numpy"
        if backend == "torch":
            if not _torch_cuda_available() and self.device == "cuda":
                raise BadInput("index backend 'torch' on device 'cuda': torch sees no GPU")
            return "torch"
        if backend == "faiss":
            if not _have_faiss():
                raise BadInput("index backend 'faiss' is not installed; pip install faiss-cpu "
                               "(or use backend='numpy')")
            return "faiss"
        if self.device == "cuda":
            problem = faiss_gpu_problem()
            if problem is None:
                return "faiss"
            if _torch_cuda_available() and self.kind in ("auto", "flat"):
                log.info("vector index: %s; exact search with torch on the GPU", problem)
                return "torch"
            log.info("vector index: %s; searching on the CPU", problem)
        if _have_faiss():
            return "faiss"
        if self.kind not in ("auto", "flat"):
            raise BadInput(f"index kind {self.kind!r} needs faiss (pip install faiss-cpu); "
                           "use kind='flat' or 'auto' for exact numpy search")
        return "numpy"

    def _faiss_on_gpu(self) -> bool:
        """Whether this index's faiss structures go to the GPU."""
        return self.backend == "faiss" and self.device == "cuda" and faiss_gpu_available()

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    @property
    def built(self) -> bool:
        return self._index is not None or (self._vectors is not None and not self._pending)

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add float32 ``(n, d)`` vectors (normalized by the caller) with int64 ``(n,)`` ids."""
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        i = np.asarray(ids, dtype=np.int64).reshape(-1)
        if v.ndim != 2 or v.shape[1] != self.dim:
            raise BadInput(f"vectors must have shape (n, {self.dim}), got {v.shape}")
        if v.shape[0] != i.shape[0]:
            raise BadInput(f"{v.shape[0]} vectors but {i.shape[0]} ids")
        if not np.isfinite(v).all():
            raise BadInput("vectors contain NaN or inf")
        if v.shape[0] == 0:
            return
        self._ids = np.concatenate([self._ids, i])
        if self._index is not None and self.backend == "faiss":
            self._index.add(v)
        elif self._index is not None and self.backend == "torch":
            import torch

            self._index = torch.cat([self._index, torch.from_numpy(v).to(self._index)])
        elif self._vectors is not None and not self._pending and self.backend == "numpy":
            self._vectors = np.concatenate([self._vectors, v])
        else:
            self._pending.append(v)

    def build(self, calibration_queries: np.ndarray | None = None) -> None:
        """Build the index from the added vectors (done by the first search otherwise).

        ``calibration_queries`` float32 ``(m, d)`` tune the approximate kinds; by default a
        sample of the stored vectors is used, each query's own row left out of its truth.
        """
        if self.built and not self._pending:
            return
        data = np.concatenate(self._pending) if self._pending else np.zeros((0, self.dim), np.float32)
        if self._vectors is not None and self.backend == "numpy":
            data = np.concatenate([self._vectors, data])
        self._pending = []
        n = data.shape[0]
        kind = self.kind
        if kind == "auto":
            kind = auto_kind(n, self.backend, self._faiss_on_gpu(), self.flat_max, self.pq_max)
        if kind in TRAINED_KINDS and n < MIN_TRAIN:
            log.info("%d vectors are too few to train a %s index; searching them exactly", n, kind)
            kind = "flat"
        if self.backend == "numpy":
            self._vectors, self._built_kind = data, "flat"
            return
        if self.backend == "torch":
            import torch

            # float32 on the GPU too: float16 scores rank near-ties differently from the CPU.
            self._index = torch.from_numpy(data).to(self.device, torch.float32)
            self._built_kind = "flat"
            return
        with _faiss_threads(n):
            self._index = self._build_faiss(kind, data, calibration_queries)
        self._built_kind = kind

    def _build_faiss(self, kind: str, data: np.ndarray, calibration: np.ndarray | None) -> Any:
        faiss = _faiss()

        n, d = data.shape
        if kind == "flat" or n == 0:
            index = faiss.IndexFlatIP(d)
            index.add(data)
            if self._faiss_on_gpu():
                index = faiss.index_cpu_to_gpu(gpu_resources(), 0, index)
            return index
        if kind == "ivf":
            nlist = self.nlist or int(min(max(16, 4 * math.sqrt(n)), max(16, n // 39)))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.spherical = True  # centroids on the sphere, like the data
            index.cp.seed = self.seed
            index.train(self._sample(data, 64 * nlist))
            index.add(data)
            on_gpu = self._faiss_on_gpu()
            if on_gpu:
                index = faiss.index_cpu_to_gpu(gpu_resources(), 0, index)
            self._calibrate(index, data, calibration, nprobe_steps(nlist, on_gpu), "nprobe")
            return index
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.add(data)
            self._calibrate(index, data, calibration, [16, 32, 64, 128, 256, 512, 1024, 2048], "efSearch")
            return index
        if kind == "pq":
            m = _pq_subquantizers(d)
            index = faiss.index_factory(d, f"PQ{m}x4fs,RFlat", faiss.METRIC_INNER_PRODUCT)
            index.train(self._sample(data, 32_768))
            index.add(data)
            self._calibrate(index, data, calibration, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048],
                            "k_factor")
            return index
        if kind == "ivfpq":
            nlist = self.nlist or ivf_lists(n)
            m = _pq_subquantizers(d)
            index = faiss.index_factory(d, f"IVF{nlist},PQ{m}x4fs,Refine(SQfp16)", faiss.METRIC_INNER_PRODUCT)
            ivf = faiss.extract_index_ivf(index)
            ivf.cp.spherical = True
            ivf.cp.seed = self.seed
            index.train(self._sample(data, 40 * nlist))
            index.add(data)
            self._calibrate(index, data, calibration, nprobe_steps(nlist, False), "ivfpq_nprobe")
            return index
        raise BadInput(f"unknown index kind {kind!r}")

    def _sample(self, data: np.ndarray, size: int) -> np.ndarray:
        if data.shape[0] <= size:
            return data
        rng = np.random.default_rng(self.seed)
        return data[np.sort(rng.choice(data.shape[0], size, replace=False))]

    def _calibrate(self, index: Any, data: np.ndarray, calibration: np.ndarray | None,
                   steps: list[int], knob: str, k: int = 10) -> None:
        """Pick the smallest knob value whose recall@k vs exact search reaches the target."""
        rng = np.random.default_rng(self.seed + 1)
        if calibration is None:
            rows = rng.choice(data.shape[0], min(_CALIBRATION_QUERIES, data.shape[0]), replace=False)
            queries, self_rows = data[rows], rows
        else:
            queries = np.ascontiguousarray(calibration, dtype=np.float32)
            self_rows = None
        kk = min(k + 1, data.shape[0])
        _, truth = exact_topk(data, queries, kk)
        truth = _drop_self(truth, self_rows, k)
        chosen, got = steps[-1], 0.0
        for value in steps:
            found = _drop_self(self._faiss_search(index, queries, kk, knob, value)[1], self_rows, k)
            got = recall_at_k(found, truth)
            if got >= self.target_recall:
                chosen = value
                break
        else:
            log.warning("vector index: %s=%d reaches recall@%d %.3f < target %.3f", knob, chosen, k, got,
                        self.target_recall)
        self.search_param, self.calibrated_recall = chosen, got

    @staticmethod
    def _faiss_search(index: Any, queries: np.ndarray, k: int, knob: str | None,
                      value: int | None) -> tuple[np.ndarray, np.ndarray]:
        faiss = _faiss()

        params: Any = None
        if knob == "nprobe" and value is not None:
            params = faiss.SearchParametersIVF(nprobe=value)
        elif knob == "efSearch" and value is not None:
            params = faiss.SearchParametersHNSW(efSearch=value)
        elif knob == "k_factor" and value is not None:
            params = faiss.IndexRefineSearchParameters(k_factor=float(value))
        elif knob == "ivfpq_nprobe" and value is not None:
            base = faiss.SearchParametersIVF(nprobe=value)  # referenced by params: kept alive here
            params = faiss.IndexRefineSearchParameters(k_factor=float(IVFPQ_RERANK), base_index_params=base)
        if params is None:
            scores, rows = index.search(queries, k)
        else:
            try:
                scores, rows = index.search(queries, k, params=params)
            except (RuntimeError, TypeError):
                if knob != "nprobe":
                    raise
                index.nprobe = value  # GPU IVF takes nprobe as an attribute, not a parameter
                scores, rows = index.search(queries, k)
        return scores, rows

    # -- search --------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by inner product for float32 ``(q, d)`` queries (one 1-D query is fine).

        Returns scores float32 ``(q, k)`` (descending) and ids int64 ``(q, k)``; rows are
        padded with ``-inf`` / ``-1`` when fewer than ``k`` vectors are stored.
        """
        if k < 1:
            raise BadInput(f"k must be >= 1, got {k}")
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise BadInput(f"queries must have shape (q, {self.dim}), got {q.shape}")
        if not np.isfinite(q).all():
            raise BadInput("queries contain NaN or inf")
        self.build()
        if len(self) == 0 or q.shape[0] == 0:
            return (np.full((q.shape[0], k), -np.inf, dtype=np.float32),
                    np.full((q.shape[0], k), -1, dtype=np.int64))
        kk = min(k, len(self))
        if self.backend == "numpy":
            assert self._vectors is not None
            scores, rows = exact_topk(self._vectors, q, kk)
        elif self.backend == "torch":
            scores, rows = self._torch_search(q, kk)
        else:
            knob = {"ivf": "nprobe", "hnsw": "efSearch", "pq": "k_factor",
                    "ivfpq": "ivfpq_nprobe"}.get(self._built_kind or "")
            with _faiss_threads(len(self)):
                scores, rows = self._faiss_search(self._index, q, kk, knob, self.search_param)
            scores = scores.astype(np.float32, copy=False)
        rows = rows.astype(np.int64, copy=False)
        valid = rows >= 0
        ids = np.where(valid, self._ids[np.where(valid, rows, 0)], -1)
        scores = np.where(valid, scores, -np.inf).astype(np.float32)
        if kk < k:
            pad = k - kk
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        return scores, ids.astype(np.int64)

    def _torch_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        mat = self._index
        with torch.inference_mode():
            sims = torch.from_numpy(q).to(mat.device, mat.dtype) @ mat.T
            top = torch.topk(sims.float(), k, dim=1)
        return top.values.cpu().numpy(), top.indices.cpu().numpy()

    # -- persistence ---------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What was built: backend, kind, size, the calibrated knob and its recall."""
        return {"backend": self.backend, "kind": self._built_kind or self.kind, "n": len(self),
                "dim": self.dim, "device": self.device, "search_param": self.search_param,
                "calibrated_recall": self.calibrated_recall}

    def save(self, path: Path | str) -> None:
        """Write the index to directory ``path`` (replaced atomically): ``meta.json``,
        ``ids.npy`` and ``index.faiss`` or ``vectors.npy``."""
        self.build()
        with directory_swap(Path(path)) as tmp:
            self._write_files(tmp)

    def _write_files(self, tmp: Path) -> None:
        """The files of :meth:`save` into the empty directory ``tmp``."""
        np.save(tmp / "ids.npy", self._ids)
        if self.backend == "faiss":
            faiss = _faiss()

            index = self._index
            if faiss_gpu_available() and self.device == "cuda":
                # HNSW and PQ indexes stay on the CPU; converting them raises, harmlessly.
                with contextlib.suppress(RuntimeError):
                    index = faiss.index_gpu_to_cpu(index)
            faiss.write_index(index, str(tmp / "index.faiss"))
        else:
            vectors = self._vectors if self.backend == "numpy" else self._index.float().cpu().numpy()
            np.save(tmp / "vectors.npy", np.asarray(vectors))
        meta = {"format_version": FORMAT_VERSION, **self.stats(), "built_kind": self._built_kind,
                "requested_kind": self.kind, "target_recall": self.target_recall}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: Path | str, device: str = "cpu") -> VectorIndex:
        """Read an index written by :meth:`save`; ``device`` may differ from the saving one."""
        src = Path(path)
        meta_path = src / "meta.json"
        if not meta_path.is_file():
            raise BadInput(f"{src}: not a saved vector index (no meta.json)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            raise BadInput(f"{src}: vector index format {meta.get('format_version')} is not "
                           f"{FORMAT_VERSION}; rebuild it")
        saved_backend = meta["backend"]
        backend: Backend = "faiss" if saved_backend == "faiss" else "auto"
        idx = cls(int(meta["dim"]), kind=meta["requested_kind"], backend=backend, device=device,
                  target_recall=float(meta["target_recall"]))
        idx._ids = np.load(src / "ids.npy")
        idx.search_param = meta.get("search_param")
        idx.calibrated_recall = meta.get("calibrated_recall")
        if saved_backend == "faiss":
            faiss = _faiss()

            index = faiss.read_index(str(src / "index.faiss"))
            if idx._faiss_on_gpu() and meta["built_kind"] in ("flat", "ivf"):
                index = faiss.index_cpu_to_gpu(gpu_resources(), 0, index)
                if meta["built_kind"] == "ivf" and idx.search_param is not None:
                    idx.search_param = min(int(idx.search_param), GPU_MAX_NPROBE)
            idx._index, idx._built_kind = index, meta["built_kind"]
        else:
            idx._pending = [np.load(src / "vectors.npy")]
            idx.build()
        return idx


def _drop_self(rows: np.ndarray, self_rows: np.ndarray | None, k: int) -> np.ndarray:
    """First ``k`` ids of each row, leaving out the query's own row (leave-one-out truth)."""
    if self_rows is None:
        return rows[:, :k]
    out = np.full((rows.shape[0], k), -1, dtype=np.int64)
    for i, (row, own) in enumerate(zip(rows, self_rows, strict=True)):
        kept = row[row != own][:k]
        out[i, :kept.size] = kept
    return out


def _pq_subquantizers(dim: int) -> int:
    """Sub-quantizers for 4-bit PQ fast-scan: about 2 dimensions each (a divisor of ``dim``).

    Measured on 360k random 512-d vectors: 4 dims each needs ~10k candidates re-ranked for
    recall@10 0.99, 2 dims each ~2k; the re-rank's random reads cost more than the twice
    larger (still 16x smaller than float32) sequential code scan."""
    for m in range(max(1, dim // 2), 0, -1):
        if dim % m == 0:
            return m
    return 1
