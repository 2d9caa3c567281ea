"""The video stream's packets and frame times, read from the container without decoding and
memoised per file (path, size, mtime)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from bench.errors import BadInput
from bench.video.frames import DecodeError
from bench.video.probe import ffmpeg_reason, video_stream


def file_key(path: Path) -> tuple[str, int, int]:
    """(resolved path, size, mtime in ns): what per-file memos are keyed by, so a file
    rewritten in place is read again. BadInput when the file does not exist."""
    try:
        st = path.stat()
    except OSError:
        raise BadInput(f"{path}: file not found") from None
    return str(path.resolve()), st.st_size, st.st_mtime_ns


@dataclass(frozen=True)
class Packets:
    """The video stream's packets in decode order, read without decoding."""

    time_s: np.ndarray
    """float64 presentation time, seconds from the container start; NaN for a packet without
    a timestamp."""
    key: np.ndarray
    """bool: the packet starts a group of pictures (decoding may begin there)."""
    shown: np.ndarray
    """bool: the packet's frame is one players show (timestamped, not trimmed by an edit list)."""

    def __len__(self) -> int:
        return int(self.time_s.shape[0])


def packets(path: Path) -> Packets:
    """The packets of ``path``'s video stream (about a second for two hours of video).
    Memoised per (path, size, mtime); do not modify the arrays."""
    return _packets_cached(*file_key(Path(path)))


def frame_times(path: Path) -> np.ndarray:
    """float64 ``(n_frames,)`` presentation times of every video frame, seconds from the
    container start, ascending; read from packet timestamps without decoding. Memoised per
    (path, size, mtime); do not modify."""
    return _frame_times_cached(*file_key(Path(path)))


@lru_cache(maxsize=4)
def _packets_cached(path_text: str, size: int, mtime_ns: int) -> Packets:
    found = _read_packets(Path(path_text))
    for array in (found.time_s, found.key, found.shown):
        array.setflags(write=False)  # shared between callers through the cache
    return found


@lru_cache(maxsize=4)
def _frame_times_cached(path_text: str, size: int, mtime_ns: int) -> np.ndarray:
    found = _packets_cached(path_text, size, mtime_ns)
    times = np.sort(found.time_s[found.shown])
    times.setflags(write=False)
    return times


def _read_packets(path: Path) -> Packets:
    import av

    times: list[float] = []
    keys: list[bool] = []
    shown: list[bool] = []
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            vs = video_stream(container, path)
            cstart = Fraction(container.start_time or 0, 1_000_000)
            tb = vs.time_base
            for packet in container.demux(vs):
                if not packet.size:  # the demuxer's final empty packet
                    continue
                has_time = packet.pts is not None and tb is not None
                times.append(float(packet.pts * tb - cstart) if has_time else math.nan)
                keys.append(bool(packet.is_keyframe))
                # Packets flagged discard (trimmed by an edit list) are never shown by players.
                shown.append(has_time and not packet.is_discard)
    except av.error.FFmpegError as exc:
        raise DecodeError(f"{path}: cannot read packet timestamps ({ffmpeg_reason(exc)})") from None
    return Packets(time_s=np.asarray(times, dtype=np.float64), key=np.asarray(keys, dtype=bool),
                   shown=np.asarray(shown, dtype=bool))
