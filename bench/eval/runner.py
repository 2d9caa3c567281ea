"""The benchmark runner: datasets x retriever configurations, with timing and versioned results.

Indexing goes through the feature store (cached, resumable) so an interrupted run is cheap
to rerun. A configuration that cannot load its weights or backend is recorded as
``unavailable`` with the reason; one that crashes, or whose backend failed for most
queries, is ``failed``; the run goes on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import platform
import subprocess
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from bench import subproc, timing
from bench.errors import BackendError, BadInput, BenchError, Unavailable
from bench.eval.calibration import Calibration, calibrate, confidence_metrics
from bench.eval.results import ResultFile, Status, find_random_init, save_result
from bench.paths import repo_root
from bench.retrievers import TINY_TAG, get_config, load_configs
from bench.retrievers.base import Retriever, RetrieverConfig
from bench.store.engines import EngineConfig
from bench.types import QID, Moment, Prediction, Query, QueryInput, QuerySet, Video
from bench.workspace import Workspace

log = logging.getLogger("bench")

Mode = Literal["grounding", "corpus"]
MAX_BACKEND_FAILED_SHARE = 0.5
"""A mode in which more than this share of the queries failed on the backend is recorded as
``failed`` (``unavailable`` when nothing ever answered at that address): its scores would
measure the outage, not the method. Below it the result stays ``ok`` and carries the count."""
UNREACHABLE_STOP_AFTER = 3
"""When this many queries in a row, from the first, found the backend unreachable (nothing
ever connected), the rest of the mode is not asked: each would wait out the same retries."""
PACKAGES = ("numpy", "torch", "transformers", "sentence-transformers", "faiss-cpu", "bm25s",
            "faster-whisper", "rapidocr-onnxruntime", "decord", "av", "httpx")


def local_videos(qs: QuerySet) -> list[Video]:
    """The set's videos with absolute local paths (videos without a local file are skipped)."""
    out = []
    for video in qs.videos.values():
        path = video.resolve(qs.root)
        if path is None:
            log.warning("%s: video %s has no local file; skipped", qs.name, video.vid)
            continue
        if not path.is_file():
            raise BadInput(f"{qs.name}: video file not found for vid {video.vid!r}: {path}")
        out.append(dataclasses.replace(video, path=str(path.resolve())))
    return out


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment() -> dict[str, Any]:
    """Machine and library versions for provenance (no paths, no user names). ``gpu``: the
    GPU model, driver, CUDA and cuDNN versions (:class:`bench.devices.GpuInfo`), every field
    None when CUDA is not in use; taken once models are built, since it needs torch loaded."""
    from importlib import metadata

    from bench.devices import gpu_info

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    cpu = cpu_name()
    import os

    return {"python": platform.python_version(), "platform": platform.platform(terse=True),
            "cpu": cpu, "cpu_count": os.cpu_count(), "packages": versions, "git_sha": git_sha(),
            "gpu": gpu_info().as_dict()}


def git_sha() -> str | None:
    try:
        out = subproc.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def percentiles(values: Sequence[float]) -> dict[str, float]:
    import numpy as np

    if not values:
        return {}
    arr = np.asarray(values, dtype=np.float64)
    return {"p50_s": float(np.percentile(arr, 50)), "p95_s": float(np.percentile(arr, 95)),
            "p99_s": float(np.percentile(arr, 99)), "mean_s": float(arr.mean()), "n": float(len(arr))}


def search_queries(workspace: Workspace, cfg: RetrieverConfig, videos: Sequence[Video], qs: QuerySet,
                   queries: Sequence[Query], mode: Mode, top_k: int, recorder: timing.TimingRecorder,
                   errors: dict[str, str], progress: bool = True,
                   backend_failed: dict[str, BackendError] | None = None,
                   tops: dict[QID, Moment | None] | None = None) -> list[Prediction]:
    """One search call per query (so latency is per query), in grounding or corpus mode,
    through the workspace; a query's reason (or its BadInput) goes to ``errors``, the
    first backend error of each query that failed on the backend to ``backend_failed``, and
    its top moment (with its evidence, which calibration reads) to ``tops``."""
    failed_on_backend = backend_failed if backend_failed is not None else {}
    preds = []
    for i, q in enumerate(tqdm(queries, desc=f"search {cfg.name} [{mode}]", unit="q", leave=False,
                               disable=not progress)):
        if i >= UNREACHABLE_STOP_AFTER and _never_connected(failed_on_backend, i):
            first = next(iter(failed_on_backend.values()))
            errors[str(q.qid)] = (f"not asked: the backend could not be reached for the first "
                                  f"{UNREACHABLE_STOP_AFTER} queries ({first})")
            failed_on_backend[str(q.qid)] = first
            preds.append(to_prediction(q, [], mode))
            continue
        qin = QueryInput.from_query(q, qs.root)
        vids = [q.vid] if mode == "grounding" and q.vid is not None else None
        t0 = time.perf_counter()
        try:
            with timing.stage("query_total"):
                (result,), _ = workspace.search(cfg, videos, [qin], top_k=top_k, vids=vids)
            moments = result.moments
            if result.reason:
                errors[str(q.qid)] = result.reason
            if result.backend_failed and result.backend_errors:
                failed_on_backend[str(q.qid)] = result.backend_errors[0]
        except Unavailable:
            raise
        except BenchError as exc:
            errors[str(q.qid)] = str(exc)
            if isinstance(exc, BackendError):
                failed_on_backend[str(q.qid)] = exc
            moments = []
        recorder.query_latencies_s.append(time.perf_counter() - t0)
        preds.append(to_prediction(q, moments, mode))
        if tops is not None:
            tops[q.qid] = top_moment(q, moments, mode)
    return preds


def _never_connected(failed: dict[str, BackendError], asked: int) -> bool:
    """Every one of the ``asked`` queries so far failed on a backend it could not reach."""
    return len(failed) >= asked and all(e.unreachable for e in failed.values())


def backend_verdict(n_queries: int, failed: dict[str, BackendError],
                    max_share: float = MAX_BACKEND_FAILED_SHARE) -> tuple[Status, str] | None:
    """``(status, reason)`` when more than ``max_share`` of ``n_queries`` failed on the backend
    (``failed``; ``unavailable`` when all did and no attempt ever connected), else None."""
    if not failed or len(failed) <= max_share * n_queries:
        return None
    first = next(iter(failed.values()))
    every = len(failed) >= n_queries
    status: Status = "unavailable" if every and all(e.unreachable for e in failed.values()) else "failed"
    return status, (f"{len(failed)} of {n_queries} queries failed on the backend "
                    f"(first: {first})")


def index_backend_note(retriever: Retriever, videos: Sequence[Video]) -> tuple[str, str] | None:
    """When the backend failed while indexing every video (e.g. each video's metadata LLM
    call, so the index fell back to what needs no backend): the line for the result's reason,
    and its first error."""
    vids = {v.vid for v in videos}
    failed = {vid: e for vid, e in retriever.index_backend_errors().items() if vid in vids}
    if not vids or len(failed) < len(vids):
        return None
    return (f"the backend failed while indexing every video ({len(failed)} of {len(vids)})",
            str(failed[min(failed)]))


def top_moment(q: Query, moments: Sequence[Moment], mode: Mode) -> Moment | None:
    """The moment a prediction ranks first (highest score; in grounding, in the query's video)."""
    pool = [m for m in moments if mode == "corpus" or q.vid is None or m.vid == q.vid]
    return max(pool, key=lambda m: m.score) if pool else None


def to_prediction(q: Query, moments: Sequence[Moment], mode: Mode) -> Prediction:
    if mode == "corpus":
        return Prediction.from_moments(dataclasses.replace(q, vid=None), moments)
    return Prediction.from_moments(q, moments)


def _metrics(qs: QuerySet, queries: Sequence[Query], preds: Sequence[Prediction]) -> dict[str, Any]:
    from bench.eval.evaluate import evaluate_predictions

    return evaluate_predictions(list(queries), list(preds))


def _calibrated(queries: Sequence[Query], preds: Sequence[Prediction],
                tops: dict[QID, Moment | None]) -> tuple[Calibration, dict[str, float]]:
    """The configuration's threshold on the calibration split, and the confidence metrics on
    the held-out queries (none when uncalibrated)."""
    by_qid = {p.qid: p for p in preds}
    calibration, held_out = calibrate(queries, by_qid, tops)
    return calibration, confidence_metrics(held_out, by_qid, tops, calibration)


def _split_metrics(result: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
    from bench.eval.evaluate import QVH_BRIEF_ORDER

    # Fractions only: the QVHighlights brief keys are percent (as the official script prints).
    flat = {k: float(v) for k, v in result.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
            and k not in QVH_BRIEF_ORDER and not k.startswith("n_")}
    by_tag = {t: {k: float(v) for k, v in m.items() if isinstance(v, int | float)}
              for t, m in (result.get("by_tag") or {}).items()}
    by_lang = {t: {k: float(v) for k, v in m.items() if isinstance(v, int | float)}
               for t, m in (result.get("by_lang") or {}).items()}
    return flat, by_tag, by_lang


def run_one(cfg: RetrieverConfig, qs: QuerySet, modes: Sequence[Mode], *, device: str = "auto",
            top_k: int = 10, out: Path | None = None, store: Any = None,
            progress: bool = True, workspace: Workspace | None = None,
            max_backend_failed_share: float = MAX_BACKEND_FAILED_SHARE) -> list[ResultFile]:
    """Run one configuration on one query set in each mode; write results when ``out`` is set.

    The retriever comes from ``workspace`` (a new one on ``device`` and ``store`` if not
    given), so a run over several sets builds each model once. A mode in which more than
    ``max_backend_failed_share`` of the queries failed on the backend is not scored (see
    :data:`MAX_BACKEND_FAILED_SHARE`)."""
    workspace = workspace or Workspace(device=device, store=store)
    base: dict[str, Any] = dict(retriever=cfg.name, family=cfg.family, config_revision=cfg.revision,
                dataset=qs.name, split=qs.split)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    results: list[ResultFile] = []
    recorder = timing.TimingRecorder()
    try:
        with timing.recording(recorder):
            retriever = workspace.retriever(cfg)
            videos = local_videos(qs)
            video_s = sum(v.duration or 0.0 for v in videos)
            t0 = time.perf_counter()
            with timing.stage("index_total", items=len(videos), video_s=video_s):
                workspace.index(cfg, videos)
            index_wall = time.perf_counter() - t0
    except Unavailable as exc:
        log.warning("%s unavailable: %s", cfg.name, exc)
        return [_write(out, ResultFile(**base, mode=m, status="unavailable", reason=str(exc),
                                       provenance={"environment": environment()}, created_at=now), None)
                for m in modes]
    except Exception as exc:  # a crashing retriever must not stop the run; record why
        log.error("%s failed while indexing %s: %s", cfg.name, qs.name, exc)
        log.debug("%s", traceback.format_exc())
        return [_write(out, ResultFile(**base, mode=m, status="failed",
                                       reason=f"index: {type(exc).__name__}: {exc}",
                                       provenance={"environment": environment()}, created_at=now), None)
                for m in modes]
    env = environment()
    index_timing = recorder.as_dict()
    prov: dict[str, Any] = {"environment": env, "device": retriever.device,
            "retriever": retriever.provenance(), "config": cfg.model_dump()}
    prov["random_init"] = find_random_init(prov["retriever"])
    index_timing["backend"] = retriever.stats()
    index_failed = index_backend_note(retriever, videos)
    index_note = f"{index_failed[0]}; first: {index_failed[1]}" if index_failed else None
    if index_note:
        log.warning("%s on %s: %s", cfg.name, qs.name, index_note)
    for mode in modes:
        queries = [q for q in qs.queries if mode == "corpus" or q.vid is not None]
        if not queries:
            continue
        retriever.reset_stats()  # per-mode LLM token/latency/cache counts
        rec = timing.TimingRecorder()
        errors: dict[str, str] = {}
        backend_failed: dict[str, BackendError] = {}
        tops: dict[QID, Moment | None] = {}
        try:
            with timing.recording(rec):
                preds = search_queries(workspace, cfg, videos, qs, queries, mode, top_k, rec, errors,
                                       progress, backend_failed, tops)
            verdict = backend_verdict(len(queries), backend_failed, max_backend_failed_share)
            scored = _metrics(qs, queries, preds) if verdict is None else {}
            calibration, confident = (_calibrated(queries, preds, tops) if verdict is None
                                      else (None, {}))
        except Unavailable as exc:
            results.append(_write(out, ResultFile(**base, mode=mode, status="unavailable",
                                                  reason=str(exc), provenance=prov,
                                                  created_at=now), None))
            continue
        except Exception as exc:  # recorded, run goes on
            log.error("%s failed on %s [%s]: %s", cfg.name, qs.name, mode, exc)
            log.debug("%s", traceback.format_exc())
            results.append(_write(out, ResultFile(**base, mode=mode, status="failed",
                                                  reason=f"search: {type(exc).__name__}: {exc}",
                                                  provenance=prov, created_at=now), None))
            continue
        timing_doc = {"index": index_timing, "index_wall_s": index_wall,
                      "video_s": video_s, "search": rec.as_dict(),
                      "queries": percentiles(rec.query_latencies_s),
                      "peak_rss_bytes": timing.peak_rss_bytes()}
        if video_s and index_wall > 0:
            timing_doc["video_s_per_wall_s"] = video_s / index_wall
        timing_doc["backend"] = retriever.stats()
        if verdict is not None:
            # Not scored: zeros from a dead backend must never look like a method's result.
            status, why = verdict
            log.error("%s on %s [%s] %s: %s", cfg.name, qs.name, mode, status, why)
            # The index line's own error is said once unless it differs from the queries'.
            reason = why
            if index_failed:
                same = index_failed[1] == str(next(iter(backend_failed.values())))
                reason += f"; {index_failed[0] if same else index_note}"
            results.append(_write(out, ResultFile(
                **base, mode=mode, status=status, reason=reason, n_queries=len(queries),
                timing=timing_doc, provenance=prov, query_errors=errors,
                backend_failures=len(backend_failed), created_at=now), None))
            continue
        if backend_failed:
            log.warning("%s on %s [%s]: %d of %d queries failed on the backend", cfg.name, qs.name,
                        mode, len(backend_failed), len(queries))
        flat, by_tag, by_lang = _split_metrics(scored)
        result = ResultFile(**base, mode=mode, status="ok", reason=index_note, n_queries=len(queries),
                            metrics={**flat, **confident}, calibration=calibration,
                            metrics_by_tag=by_tag, metrics_by_lang=by_lang,
                            timing=timing_doc, provenance=prov, query_errors=errors,
                            backend_failures=len(backend_failed), created_at=now)
        results.append(_write(out, result, [p.to_row() for p in preds]))
    return results


def _write(out: Path | None, result: ResultFile, preds: list[dict[str, Any]] | None) -> ResultFile:
    if out is not None:
        save_result(out, result, preds)
    return result


def run(datasets: Sequence[str], retrievers: Sequence[str], *, out: Path | None,
        modes: Sequence[Mode] = ("grounding", "corpus"), device: str = "auto", top_k: int = 10,
        limit: int | None = None, progress: bool = True,
        max_backend_failed_share: float = MAX_BACKEND_FAILED_SHARE,
        include_tiny: bool = False, engine: EngineConfig | None = None) -> list[ResultFile]:
    """Every dataset x every configuration, features computed by ``engine`` (local by
    default). With no ``retrievers``, that is every real configuration of ``models/``:
    random-init test configurations (tagged ``tiny``) only exercise the code, so they run
    when named or with ``include_tiny``."""
    from bench.datasets import is_tagging, resolve_dataset, resolve_tagging

    configs = ([get_config(r) for r in retrievers] if retrievers
               else default_configs(include_tiny=include_tiny))
    workspace = Workspace(device=device, engine=engine)
    results = []
    for spec in datasets or ["synthetic-v2"]:
        if is_tagging(spec):  # a tagging set: the second task, one result per configuration
            from bench.eval.tagging import run_tagging

            ts = resolve_tagging(spec)
            if limit is not None:
                ts = dataclasses.replace(ts, videos=dict(list(ts.videos.items())[:limit]))
            for cfg in configs:
                log.info("tagging %s with %s", ts.name, cfg.name)
                results.append(run_tagging(cfg, ts, workspace=workspace, out=out))
            continue
        qs = resolve_dataset(spec)
        if limit is not None:
            qs = dataclasses.replace(qs, queries=qs.queries[:limit])
        asked = {t for q in qs.queries for t in q.tags}
        for cfg in configs:
            if not retrievers and cfg.answers and not asked & set(cfg.answers):
                log.info("%s left out of %s: made for %s queries, the set has none", cfg.name, qs.name,
                         "/".join(cfg.answers))
                continue
            log.info("running %s on %s", cfg.name, qs.name)
            results.extend(run_one(cfg, qs, modes, device=device, top_k=top_k, out=out,
                                   progress=progress, workspace=workspace,
                                   max_backend_failed_share=max_backend_failed_share))
    return results


def default_configs(*, include_tiny: bool = False) -> list[RetrieverConfig]:
    """What ``run`` runs when no configuration is named: ``models/`` less the ``tiny`` ones."""
    return [c for c in load_configs().values() if include_tiny or TINY_TAG not in c.tags]


def index_dataset(dataset: str, retriever: str, *, device: str = "auto",
                  engine: EngineConfig | None = None) -> dict[str, Any]:
    """``python -m bench index``: index every video of a set into the feature store, computed
    by ``engine`` (local by default)."""
    from bench.datasets import resolve_dataset

    qs = resolve_dataset(dataset)
    cfg = get_config(retriever)
    workspace = Workspace(device=device, engine=engine)
    rec = timing.TimingRecorder()
    with timing.recording(rec):
        workspace.retriever(cfg)
        videos = local_videos(qs)
        t0 = time.perf_counter()
        workspace.index(cfg, videos)
        wall = time.perf_counter() - t0
    return {"dataset": qs.name, "retriever": cfg.name, "videos": len(videos), "wall_s": wall,
            "timing": rec.as_dict()}


def mock_run(retriever: str, *, device: str = "cpu") -> dict[str, Any]:
    """Sanity-check a configuration on the tiny built-in set in seconds.

    Checks the protocol, not accuracy: one result list per query, at most ``top_k``
    moments, windows inside the video, scores sorted descending, videos known.
    """
    from bench.datasets import resolve_dataset

    qs = resolve_dataset("synthetic-mini")
    cfg = get_config(retriever)
    problems: list[str] = []
    workspace = Workspace(device=device)
    results = run_one(cfg, qs, ("grounding",), device=device, top_k=5, out=None, progress=False,
                      workspace=workspace)
    res = results[0] if results else None
    if res is None or res.status != "ok":
        return {"retriever": cfg.name, "status": res.status if res else "failed",
                "reason": res.reason if res else "no result", "checks": []}
    videos = local_videos(qs)  # indexed by the run above: the workspace does not index again
    durations = {v.vid: v.duration for v in qs.videos.values()}
    for q in qs.queries:
        if q.vid is None:
            continue
        got, _ = workspace.search(cfg, videos, [QueryInput.from_query(q, qs.root)], top_k=5,
                                  vids=[q.vid])
        if len(got) != 1:
            problems.append(f"{q.qid}: {len(got)} result lists for 1 query")
            continue
        moments = got[0].moments
        if len(moments) > 5:
            problems.append(f"{q.qid}: {len(moments)} moments > top_k=5")
        scores = [m.score for m in moments]
        if scores != sorted(scores, reverse=True):
            problems.append(f"{q.qid}: moments not sorted by descending score")
        for m in moments:
            dur = durations.get(m.vid)
            if m.vid != q.vid:
                problems.append(f"{q.qid}: moment in {m.vid}, outside the requested video")
            if not (0 <= m.start < m.end) or (dur is not None and m.end > dur + 1e-6):
                problems.append(f"{q.qid}: window [{m.start}, {m.end}] outside [0, {dur}]")
    return {"retriever": cfg.name, "status": "ok" if not problems else "failed",
            "reason": "; ".join(problems[:5]) or None, "metrics": res.metrics,
            "random_init": res.random_init or find_random_init(res.provenance),
            "checks": problems}
