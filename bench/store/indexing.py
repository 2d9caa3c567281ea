"""The shared "index many videos, resumable, with a progress bar" loop of every retriever.

Each video is hashed, probed and computed once per extractor; finished videos are skipped
on a re-run, a video that cannot be read is recorded as failed and the loop goes on.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bench.errors import BadInput
from bench.store.catalog import Extractor, FeatureStore
from bench.types import Video
from bench.video.probe import ProbeInfo, probe

log = logging.getLogger("bench")

Kind = Literal["arrays", "json"]
ArraysCompute = Callable[[Path, ProbeInfo], tuple[Mapping[str, np.ndarray], Mapping[str, Any]]]
JsonCompute = Callable[[Path, ProbeInfo], tuple[Any, Mapping[str, Any]]]


def decoder_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "this file cannot be decoded": BadInput (which includes
    bench.video.DecodeError) plus PyAV's and decord's own, when those are loaded."""
    errors: list[type[BaseException]] = [BadInput]
    av = sys.modules.get("av")
    if av is not None:
        errors.append(av.error.FFmpegError)
    base = sys.modules.get("decord._ffi.base")
    if base is not None:
        errors.append(base.DECORDError)
    return tuple(errors)


def _probe_for(store: FeatureStore, video_id: str, path: Path) -> ProbeInfo:
    cached = store.get_probe(video_id)
    if cached is not None:
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


def index_videos(store: FeatureStore, videos: Sequence[Video], ex: Extractor,
                 compute: ArraysCompute | JsonCompute, *, desc: str,
                 kind: Kind = "arrays") -> dict[str, str]:
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

    A tqdm bar on stderr counts videos, with frames/s and video-seconds per wall-second.
    """
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    if kind not in ("arrays", "json"):
        raise BadInput(f"kind must be 'arrays' or 'json', got {kind!r}")
    done: dict[str, str] = {}
    frames = 0
    video_s = 0.0
    busy_s = 0.0
    errors = decoder_errors()
    with logging_redirect_tqdm(), tqdm(total=len(videos), desc=desc, unit="video", file=sys.stderr,
                                       dynamic_ncols=True) as bar:
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
            errors = decoder_errors()  # compute may have imported av/decord by now
            t0 = time.perf_counter()
            try:
                info = _probe_for(store, video_id, path)
                out, meta = compute(path, info)
                meta = dict(meta or {})
                if kind == "arrays":
                    store.save(video_id, ex, out, meta)
                else:
                    store.save_json(video_id, ex, out, meta)
            except errors as exc:
                reason = " ".join(str(exc).split()) or type(exc).__name__
                store.mark_failed(video_id, ex, reason)
                log.warning("%s: %s failed: %s", desc, video.vid, reason)
                bar.update(1)
                continue
            busy_s += time.perf_counter() - t0
            frames += _frames_in(meta, out, kind)
            video_s += info.duration_s
            done[video.vid] = video_id
            if busy_s > 0:
                postfix = {"x_realtime": f"{video_s / busy_s:.1f}"}
                if frames:
                    postfix["frames/s"] = f"{frames / busy_s:.1f}"
                bar.set_postfix(postfix, refresh=False)
            bar.update(1)
    return done


def index_videos_json(store: FeatureStore, videos: Sequence[Video], ex: Extractor,
                      compute: JsonCompute, *, desc: str) -> dict[str, str]:
    """:func:`index_videos` with ``kind="json"``: ``compute`` returns ``(obj, meta)``."""
    return index_videos(store, videos, ex, compute, desc=desc, kind="json")
