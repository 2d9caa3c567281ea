"""The shared "index many videos, resumable, with a progress bar" loop of every retriever.

Each video is hashed, probed and computed once per extractor; finished videos are skipped
on a re-run, a video that cannot be read is recorded as failed and the loop goes on.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bench.errors import BadInput
from bench.store.artefacts import Written
from bench.store.catalog import Extractor, FeatureStore
from bench.types import Video
from bench.video.probe import ProbeInfo, probe
from bench.video.stream import decoder_errors

log = logging.getLogger("bench")

Kind = Literal["arrays", "json"]
ArraysCompute = Callable[[Path, ProbeInfo], tuple[Mapping[str, np.ndarray], Mapping[str, Any]]]
JsonCompute = Callable[[Path, ProbeInfo], tuple[Any, Mapping[str, Any]]]
Outcome = tuple[Any, Mapping[str, Any]] | BaseException
"""What computing one video gave: ``(arrays or obj, meta)``, or the decoder error it raised."""
StreamCompute = Callable[[Sequence[tuple[Path, ProbeInfo]]], Iterator[tuple[int, Outcome]]]
WorkerCompute = Callable[[], ArraysCompute | JsonCompute]
"""Builds the per-video compute inside a worker process (the Ray engine): a picklable
recipe, e.g. a ``functools.partial`` that loads the model there, instead of the model itself."""


def _probe_for(store: FeatureStore, video_id: str, path: Path) -> ProbeInfo:
    cached = store.get_probe(video_id)
    if cached is not None and "mirrored" in cached:  # older probes did not read mirroring: probe again
        info = ProbeInfo.from_dict(cached)
        if info.path == str(path):
            return info
        return ProbeInfo.from_dict({**cached, "path": str(path)})
    info = probe(path)
    store.record_probe(video_id, info)
    return info


def _frames_in(meta: Mapping[str, Any], out: Any, kind: Kind) -> int:
    """Frames a compute call processed: ``meta["n_frames"]``, else the first array's rows."""
    n = meta.get("n_frames")
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    if kind == "arrays" and isinstance(out, Mapping) and out:
        first = next(iter(out.values()))
        shape = np.shape(first)
        return int(shape[0]) if shape else 0
    return 0


STREAM_CHUNK_S = 600.0
"""Video-seconds handed to a streaming compute at once (:func:`index_videos` ``stream``):
long enough that its start-up and final partial batch are a small share, short enough that
a library starts encoding after a few probes."""
STREAM_CHUNK_VIDEOS = 64


def index_videos(store: FeatureStore, videos: Sequence[Video], ex: Extractor,
                 compute: ArraysCompute | JsonCompute, *, desc: str,
                 kind: Kind = "arrays", stream: StreamCompute | None = None,
                 worker: WorkerCompute | None = None) -> dict[str, str]:
    """Compute ``ex`` for every video not already done; return ``{vid: video_id}`` of the
    videos that are done now.

    ``compute(path, info)`` returns ``(arrays, meta)`` (``kind="arrays"``, saved with
    :meth:`FeatureStore.save`) or ``(obj, meta)`` (``kind="json"``, saved with
    :meth:`FeatureStore.save_json`); ``meta`` may carry ``n_frames`` for the progress bar.
    ``Video.path`` must be a local file. A video whose file is missing or unreadable is
    logged and left out. A probe or decode failure (BadInput, DecodeError, PyAV or decord errors) marks the
    row failed with the reason, logs one line, and the loop goes on; failed rows are retried
    on the next call (the cause may have been fixed). Any other exception stops the loop:
    it is a bug or an environment problem, and everything finished so far is kept.

    With ``stream``, pending videos go to it in runs of about :data:`STREAM_CHUNK_S`
    video-seconds instead of one ``compute`` call each: ``stream([(path, info), ...])`` yields
    ``(position, outcome)`` per video in any order, the outcome being what ``compute`` returns
    or the decoder error that video raised. A stream can keep its decoder and encoder busy
    across video boundaries (short clips then cost no start-up each). Each video is saved as
    soon as its outcome arrives, so a run killed part-way keeps every finished video.

    With ``store.engine.kind == "ray"`` the driver still hashes and probes each video and
    alone writes the catalog, but every pending video goes to a Ray Data actor pool
    (:func:`bench.store.ray_engine.run_on_ray`) whose workers compute it (with
    ``worker()``'s compute if given, else ``compute`` itself, pickled) and write its file into
    the store directory, which the workers must share. Any error a worker meets on one video is
    recorded as that video's failure, and the run goes on. A compute that cannot be pickled
    and comes without ``worker`` is run in this process, with one warning.

    A tqdm bar on stderr counts videos, with frames/s and video-seconds per wall-second.
    """
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    if kind not in ("arrays", "json"):
        raise BadInput(f"kind must be 'arrays' or 'json', got {kind!r}")
    on_ray = store.engine.kind == "ray" and _shippable(worker or compute, desc)
    done: dict[str, str] = {}
    totals = {"frames": 0, "video_s": 0.0, "busy_s": 0.0}
    pending: list[_Pending] = []

    with logging_redirect_tqdm(), tqdm(total=len(videos), desc=desc, unit="video", file=sys.stderr,
                                       dynamic_ncols=True) as bar:

        def fail(vids: list[str], video_id: str, exc: BaseException) -> None:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            store.mark_failed(video_id, ex, reason)
            log.warning("%s: %s failed: %s", desc, vids[0], reason)
            bar.update(len(vids))

        def finish(job: _Pending, outcome: Any, busy_s: float) -> None:
            if isinstance(outcome, BaseException):
                fail(job.vids, job.video_id, outcome)
                return
            if isinstance(outcome, Written):
                store.register(job.video_id, ex, outcome)
                out, meta = None, json.loads(outcome.meta_json)
            else:
                out, meta = outcome
                meta = dict(meta or {})
                if kind == "arrays":
                    store.save(job.video_id, ex, out, meta)
                else:
                    store.save_json(job.video_id, ex, out, meta)
            totals["busy_s"] += busy_s
            totals["frames"] += _frames_in(meta, out, kind)
            totals["video_s"] += job.info.duration_s
            for vid in job.vids:
                done[vid] = job.video_id
            if totals["busy_s"] > 0:
                postfix = {"x_realtime": f"{totals['video_s'] / totals['busy_s']:.1f}"}
                if totals["frames"]:
                    postfix["frames/s"] = f"{totals['frames'] / totals['busy_s']:.1f}"
                bar.set_postfix(postfix, refresh=False)
            bar.update(len(job.vids))

        def flush() -> None:
            if not pending or (stream is None and not on_ray):
                return
            jobs = list(pending)
            pending.clear()
            left = set(range(len(jobs)))
            errors = decoder_errors()
            t0 = time.perf_counter()
            if on_ray:
                from bench.store.ray_engine import run_on_ray

                outcomes = run_on_ray(store.engine, store.location, ex.key,
                                      "npz" if kind == "arrays" else "json",
                                      [(job.video_id, job.path, job.info) for job in jobs], compute, worker)
            else:
                assert stream is not None
                outcomes = stream([(job.path, job.info) for job in jobs])
            for position, outcome in outcomes:
                if position not in left:
                    raise RuntimeError(f"{desc}: the stream gave video {position} twice or out of range")
                left.discard(position)
                if isinstance(outcome, BaseException) and not isinstance(outcome, errors):
                    raise outcome
                now = time.perf_counter()
                finish(jobs[position], outcome, now - t0)
                t0 = now
            if left:
                raise RuntimeError(f"{desc}: the stream gave no outcome for {len(left)} video(s)")

        for video in videos:
            path = video.resolve(None)
            if path is None or not path.is_file():
                log.error("%s: %s: video file not found (%s); skipped", desc, video.vid, video.path)
                bar.update(1)
                continue
            try:
                video_id = store.video_id(path)
            except (BadInput, OSError) as exc:  # e.g. no read permission: nothing to record
                log.error("%s: %s: cannot read the file (%s); skipped", desc, video.vid, exc)
                bar.update(1)
                continue
            if store.status(video_id, ex) == "done":
                done[video.vid] = video_id
                bar.update(1)
                continue
            twin = next((job for job in pending if job.video_id == video_id), None)
            if twin is not None:  # the same bytes listed twice: computed once
                twin.vids.append(video.vid)
                continue
            errors = decoder_errors()  # compute may have imported av/decord by now
            t0 = time.perf_counter()
            try:
                info = _probe_for(store, video_id, path)
            except errors as exc:
                fail([video.vid], video_id, exc)
                continue
            job = _Pending([video.vid], video_id, path, info)
            if on_ray:  # one Ray run for all: its actor pool starts once
                pending.append(job)
                continue
            if stream is not None:
                pending.append(job)
                if sum(j.info.duration_s for j in pending) >= STREAM_CHUNK_S or \
                        len(pending) >= STREAM_CHUNK_VIDEOS:
                    flush()
                continue
            try:
                outcome: Any = compute(path, info)
            except errors as exc:
                outcome = exc
            finish(job, outcome, time.perf_counter() - t0)
        flush()
    return done


def _shippable(fn: Callable[..., Any], desc: str) -> bool:
    """Whether ``fn`` can be sent to Ray workers; when not (it holds locks or threads), one
    warning says so and the features are computed in this process, as with the local engine."""
    import cloudpickle

    try:
        cloudpickle.dumps(fn)
    except Exception as exc:
        log.warning("%s: cannot be sent to Ray workers (%s); computing in this process", desc, exc)
        return False
    return True


@dataclass
class _Pending:
    """A video waiting for its features: every ``vid`` listing these bytes, and its probe."""

    vids: list[str]
    video_id: str
    path: Path
    info: ProbeInfo


def index_videos_json(store: FeatureStore, videos: Sequence[Video], ex: Extractor,
                      compute: JsonCompute, *, desc: str, worker: WorkerCompute | None = None,
                      ) -> dict[str, str]:
    """:func:`index_videos` with ``kind="json"``: ``compute`` returns ``(obj, meta)``."""
    return index_videos(store, videos, ex, compute, desc=desc, kind="json", worker=worker)
