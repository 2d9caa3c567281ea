"""Sampling with decord, and the check of whether decord reads a given file right (frame
count and times, rotation, mirroring); PyAV is used where it does not."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.errors import BadInput
from bench.video.frames import TIME_EPS_S, BatchSizes, DecodeError, FrameBatch, output_size, select_indices
from bench.video.orientation import ROTATION_CHECK_MAX_DIFF, first_frame_pyav
from bench.video.packets import file_key, frame_times
from bench.video.probe import ProbeInfo, ffmpeg_reason, probe, video_stream

if TYPE_CHECKING:
    import av.container

log = logging.getLogger("bench")


def decord_available() -> bool:
    """decord has no wheels for some platforms (e.g. aarch64); PyAV then does all decoding."""
    import importlib.util

    return importlib.util.find_spec("decord") is not None


def _decoder_errors() -> tuple[type[BaseException], ...]:
    import av

    errors: list[type[BaseException]] = [av.error.FFmpegError]
    if decord_available():
        from decord._ffi.base import DECORDError

        errors.append(DECORDError)
    return tuple(errors)


def _open_decord(path: Path, width: int = -1, height: int = -1, threads: int = 0) -> Any:
    try:
        import decord
    except ImportError:
        raise BadInput("decord is not installed (pip install decord, x86_64 only); use decoder='pyav'") \
            from None
    # decord applies the display rotation itself and takes the display size.
    return decord.VideoReader(str(path), ctx=decord.cpu(0), width=width, height=height, num_threads=threads)


def _timeline_offset_s(container: av.container.InputContainer, stream: Any) -> Fraction:
    """Seconds from the container's start to the video stream's start (decord and PyAV
    frame times are shifted by it onto the player's timeline)."""
    cstart = Fraction(container.start_time or 0, 1_000_000)
    if stream.start_time is None:
        return Fraction(0)
    return Fraction(stream.start_time) * stream.time_base - cstart


def _decord_index(vr: Any, times: np.ndarray, path: Path) -> np.ndarray | None:
    """For each true frame time, decord's index of that frame; None when decord's (float32)
    frame times do not contain every true time. decord also lists frames an edit list
    trims, so its count may be larger."""
    import av

    with av.open(str(path), metadata_errors="ignore") as container:
        offset = float(_timeline_offset_s(container, video_stream(container, path)))
    got = _decord_times(vr, offset)
    if len(got) < len(times) or len(times) == 0:
        return None
    where = np.clip(np.searchsorted(got, times - TIME_EPS_S), 0, len(got) - 1)
    if not np.all(np.abs(got[where] - times) <= TIME_EPS_S) or np.any(np.diff(where) <= 0):
        return None
    return where.astype(np.int64)


def _decord_times(vr: Any, offset_s: float) -> np.ndarray:
    n = len(vr)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    return vr.get_frame_timestamp(np.arange(n))[:, 0].astype(np.float64) + offset_s


def choose_decoder(path: Path) -> str:
    """``"decord"`` when decord opens ``path`` and handles it right, else ``"pyav"``.

    "Right" means: decord's frame count and times match the container's packet times (this
    catches variable-frame-rate and broken-index files), and for a rotated video decord's
    first frame matches PyAV's turned one. Memoised per (path, size, mtime). Raises
    BadInput for a file that is not a video.
    """
    return _choose_cached(*file_key(Path(path)))


@lru_cache(maxsize=256)
def _choose_cached(path: str, size: int, mtime_ns: int) -> str:
    return _choose(Path(path))


def _choose(path: Path) -> str:
    info = probe(path)
    if not decord_available():
        return "pyav"
    try:
        vr = _open_decord(path)
    except _decoder_errors() as exc:
        log.info("%s: decord cannot open it (%s); using PyAV", path, ffmpeg_reason(exc))
        return "pyav"
    if len(vr) == 0:
        return "pyav"
    if info.mirrored:
        log.info("%s: decord does not mirror frames as this video's display matrix asks; using PyAV", path)
        return "pyav"
    if info.rotation:
        # Compare at a small size: decord turns frames itself and must agree with PyAV.
        w, h = output_size(info, 32)
        try:
            small = _open_decord(path, w, h)[0].asnumpy()
        except _decoder_errors() as exc:
            log.info("%s: decord fails on the rotated stream (%s); using PyAV", path, ffmpeg_reason(exc))
            return "pyav"
        ref = first_frame_pyav(path, w, h, info)
        if small.shape != ref.shape or float(np.abs(small.astype(np.int16) - ref).mean()) > \
                ROTATION_CHECK_MAX_DIFF:
            log.info("%s: decord turns this %d-degree rotation wrongly; using PyAV", path, info.rotation)
            return "pyav"
    if _decord_index(vr, frame_times(path), path) is None:
        log.info("%s: decord's frame count or times disagree with the container's; using PyAV", path)
        return "pyav"
    return "decord"


def sample_decord(path: Path, info: ProbeInfo, fps: float, width: int, height: int,
                  sizes: BatchSizes, threads: int) -> Iterator[FrameBatch]:
    """decord sampling; raises DecodeError where decord cannot read the file right or fails
    part-way (``auto`` then goes on with PyAV)."""
    if info.mirrored:
        raise DecodeError(f"{path}: decord does not mirror frames as this video's display matrix asks; "
                          "use decoder='pyav' (or 'auto')")
    errors = _decoder_errors()
    # Reported times are the container's exact packet times; decord's own are float32.
    times = frame_times(path)
    try:
        vr = _open_decord(path, width, height, threads)
        to_decord = _decord_index(vr, times, path)
    except errors as exc:
        raise DecodeError(
            f"{path}: decord cannot read it ({ffmpeg_reason(exc)}); try decoder='pyav'"
        ) from None
    if to_decord is None:
        raise DecodeError(f"{path}: decord's frame times disagree with the container's; "
                          "use decoder='pyav' (or 'auto')")
    indices = select_indices(times, fps, info.duration_s)
    start, k = 0, 0
    while start < len(indices):
        chunk = indices[start:start + sizes(k)]
        start, k = start + len(chunk), k + 1
        try:
            frames = vr.get_batch(to_decord[chunk].tolist()).asnumpy()
        except errors as exc:
            raise DecodeError(
                f"{path}: decord failed at frame {int(chunk[0])} ({ffmpeg_reason(exc)}); try decoder='pyav'"
            ) from None
        yield FrameBatch(frames=frames, times_s=times[chunk], indices=chunk.copy(), decoder="decord")
