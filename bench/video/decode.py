"""Sample frames at a fixed rate with their true timestamps, in bounded batches.

decord is the default decoder; PyAV takes over for files decord cannot open or gets wrong
(rotation, variable-frame-rate timestamps), where decord fails part-way, and for sparse
sampling of H.264, where PyAV decodes only what the sampled frames need and so does less
work. Both pick the same frames by the same rule, and times are seconds on the player's
timeline (from the container's start).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bench.errors import BadInput
from bench.video.probe import ProbeInfo, ffmpeg_reason, probe, video_stream

if TYPE_CHECKING:
    import av.container

log = logging.getLogger("bench")

Decoder = Literal["auto", "decord", "pyav"]
DECODERS: tuple[str, ...] = ("auto", "decord", "pyav")

TIME_EPS_S = 1e-3
"""A frame within 1 ms before a target time counts as at it: container timestamps are
rounded to their time base and decord reports float32 seconds."""

_ROTATION_CHECK_MAX_DIFF = 24.0
"""Mean absolute pixel difference (0-255) above which decord's first frame is judged to be
turned differently from PyAV's; codec noise between two decoders stays far below it."""


class DecodeError(BadInput):
    """A file that probed fine but failed while decoding; the message names the file."""


@dataclass
class FrameBatch:
    """Consecutive sampled frames of one video."""

    frames: np.ndarray
    """uint8 ``(n, H, W, 3)`` RGB, rotation applied."""
    times_s: np.ndarray
    """float64 ``(n,)`` presentation time of each frame, seconds from the container start."""
    indices: np.ndarray
    """int64 ``(n,)`` index of each frame in the stream, in presentation order."""
    decoder: str = "pyav"
    """The decoder that produced these frames: ``"decord"`` or ``"pyav"``."""

    def __len__(self) -> int:
        return int(self.frames.shape[0])


class FrameSelector:
    """Pick, for each target time ``k / fps`` below ``end_s``, the first frame whose time is
    ``>= target`` (within :data:`TIME_EPS_S`); a frame serves every target it is first for,
    so each frame is emitted at most once. Fed frame times in presentation order."""

    def __init__(self, fps: float, end_s: float) -> None:
        if not math.isfinite(fps) or fps <= 0:
            raise BadInput(f"sampling rate must be a positive number of frames per second, got {fps!r}")
        self.fps = fps
        self.n_targets = max(1, math.ceil(end_s * fps - 1e-9))
        self.next_k = 0

    @property
    def done(self) -> bool:
        return self.next_k >= self.n_targets

    def take(self, time_s: float) -> bool:
        """True when the frame at ``time_s`` is the one for the next pending target(s)."""
        if self.done or time_s < self.next_k / self.fps - TIME_EPS_S:
            return False
        self.next_k = max(self.next_k + 1, math.floor((time_s + TIME_EPS_S) * self.fps) + 1)
        return True


def select_indices(times_s: np.ndarray, fps: float, end_s: float) -> np.ndarray:
    """Indices (int64, ascending) of the frames :class:`FrameSelector` picks from ``times_s``
    (seconds, presentation order). A target past the last frame gets the last frame."""
    selector = FrameSelector(fps, end_s)
    picked = [i for i, t in enumerate(times_s.tolist()) if selector.take(t)]
    n = len(times_s)
    if n and not selector.done and (not picked or picked[-1] != n - 1):
        picked.append(n - 1)  # targets past the last frame: the nearest frame is the last
    return np.asarray(picked, dtype=np.int64)


def output_size(info: ProbeInfo, short_side: int | None) -> tuple[int, int]:
    """Display ``(width, height)`` of sampled frames: the video's own, or scaled so the
    shorter side is ``short_side`` (aspect kept, never upscaled, at least 1 px)."""
    width, height = info.width, info.height
    if short_side is None:
        return width, height
    if short_side <= 0:
        raise BadInput(f"short_side must be a positive number of pixels, got {short_side}")
    short = min(width, height)
    if short_side >= short:
        return width, height
    scale = short_side / short
    if width <= height:
        return short_side, max(1, round(height * scale))
    return max(1, round(width * scale)), short_side


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


def decode_plan(found: Packets, selected_s: np.ndarray) -> np.ndarray | None:
    """What the decoder must see for the frames at ``selected_s`` (times from
    :func:`frame_times`) to come out right: per packet in decode order, 0 = not needed (a
    stretch no selected frame depends on: the rest of a group of pictures after its last
    selected frame, closed groups only), 1 = needed only as a reference (a frame no other
    frame refers to may be dropped), 2 = a selected frame. None when the stream allows no safe plan: packets
    without timestamps, repeated timestamps, or no group-of-pictures starts."""
    t = found.time_s
    n = len(t)
    if n == 0 or np.isnan(t).any() or not found.key.any() or np.unique(t).shape[0] != n:
        return None
    at = {float(x): i for i, x in enumerate(t.tolist())}
    keys = np.flatnonzero(found.key)
    gop = np.searchsorted(keys, np.arange(n), side="right") - 1  # index into keys; -1 before the first
    plan = np.zeros(n, dtype=np.int8)
    first = t[keys]
    group_first = np.where(gop >= 0, first[np.maximum(gop, 0)], -np.inf)
    open_gops = bool(np.any(t < group_first))
    for time_s in np.asarray(selected_s, dtype=np.float64).tolist():
        j = at.get(time_s)
        if j is None:
            return None
        g = int(gop[j])
        start = 0 if g < 0 else int(keys[g])
        if g > 0 and t[j] < t[start]:
            # A frame shown before its group's first picture (open GOP) may refer to the
            # previous group: decode that one whole.
            start = int(keys[g - 1])
        plan[start:j + 1] = np.maximum(plan[start:j + 1], 1)
        plan[j] = 2
    if open_gops:
        # Frames shown before their group's first picture refer to the group before; a
        # decoder that meets such a group after a skip withholds frames until it recovers,
        # so nothing before the last selected frame is skipped (unreferenced frames still are).
        end = int(np.flatnonzero(plan)[-1]) + 1
        plan[:end] = np.maximum(plan[:end], 1)
    return plan


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


def _first_frame_pyav(path: Path, width: int, height: int, info: ProbeInfo) -> np.ndarray:
    import av

    with av.open(str(path), metadata_errors="ignore") as container:
        frame = next(container.decode(video_stream(container, path)))
        return _to_rgb(frame, width, height, info)


def _to_rgb(frame: Any, width: int, height: int, info: ProbeInfo) -> np.ndarray:
    """Convert (and scale inside swscale) a PyAV frame to display-oriented RGB uint8: turned
    by ``info.rotation``, then mirrored where ``info.mirrored``."""
    rotation = info.rotation
    coded_w, coded_h = (height, width) if rotation in (90, 270) else (width, height)
    rgb = frame.reformat(width=coded_w, height=coded_h, format="rgb24",
                         interpolation="BICUBIC").to_ndarray()
    if rotation:
        rgb = np.rot90(rgb, k=-rotation // 90)  # negative k: clockwise
    if info.mirrored:
        rgb = rgb[:, ::-1]
    return np.ascontiguousarray(rgb) if rotation or info.mirrored else rgb


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
        ref = _first_frame_pyav(path, w, h, info)
        if small.shape != ref.shape or float(np.abs(small.astype(np.int16) - ref).mean()) > \
                _ROTATION_CHECK_MAX_DIFF:
            log.info("%s: decord turns this %d-degree rotation wrongly; using PyAV", path, info.rotation)
            return "pyav"
    if _decord_index(vr, frame_times(path), path) is None:
        log.info("%s: decord's frame count or times disagree with the container's; using PyAV", path)
        return "pyav"
    return "decord"


def choose_decoder(path: Path) -> str:
    """``"decord"`` when decord opens ``path`` and handles it right, else ``"pyav"``.

    "Right" means: decord's frame count and times match the container's packet times (this
    catches variable-frame-rate and broken-index files), and for a rotated video decord's
    first frame matches PyAV's turned one. Memoised per (path, size, mtime). Raises
    BadInput for a file that is not a video.
    """
    return _choose_cached(*file_key(Path(path)))


def sample_frames(path: Path, fps: float = 1.0, *, short_side: int | None = None,
                  batch_size: int = 32, decoder: str = "auto", threads: int = 0,
                  first_batch: int | None = None) -> Iterator[FrameBatch]:
    """Yield frames of ``path`` sampled at about ``fps`` frames per second, in batches.

    For each target time ``k / fps`` (k = 0, 1, ... below the duration) the first frame whose
    presentation time is ``>= target`` is taken (the last frame for targets past it); a frame
    is yielded once even if it is first for several targets (gaps in variable-frame-rate
    video). ``times_s`` are the frames' true presentation times, seconds from the container
    start. At most ``batch_size`` frames are held at a time; with ``first_batch``, the first
    batch holds that many and each later one twice the one before, up to ``batch_size`` (a
    consumer overlapping its work with decoding starts sooner). ``short_side`` scales inside
    the decoder so the shorter display side is that many pixels (aspect kept, no upscaling).
    ``decoder`` is ``"auto"``, ``"decord"`` or ``"pyav"``. ``auto`` takes PyAV for sparse
    sampling (at most every second frame) of H.264 it can plan: it then decodes only what the
    sampled frames need. Otherwise ``auto`` takes decord where :func:`choose_decoder` finds it
    right for the file, and PyAV goes on from the next sampled frame if decord fails part-way.
    ``threads`` is the decoder's thread count (0: FFmpeg's choice, about one per core). One
    thread costs the least CPU time per frame (frame threading has overhead); more finish a
    single video sooner when nothing else wants the cores.

    Raises BadInput for a file that is not a readable video, DecodeError (a BadInput) when
    decoding fails part-way.
    """
    path = Path(path)
    if decoder not in DECODERS:
        raise BadInput(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
    if batch_size < 1:
        raise BadInput(f"batch_size must be >= 1, got {batch_size}")
    if first_batch is not None and first_batch < 1:
        raise BadInput(f"first_batch must be >= 1, got {first_batch}")
    sizes = BatchSizes(batch_size, min(batch_size, first_batch or batch_size))
    if threads < 0:
        raise BadInput(f"threads must be >= 0 (0: the decoder's choice), got {threads}")
    info = probe(path)
    FrameSelector(fps, info.duration_s)  # validates fps before any decoding
    chosen, planned = decoder, None
    if decoder == "auto":
        # PyAV when sampling is sparse and it can plan: it then does less work than decord,
        # which decodes every frame (scripts/perf/reports/decode_cost.md).
        if fps * SPARSE_RATIO <= info.fps:
            planned = _planned(path, info, fps)
        chosen = "pyav" if planned is not None else choose_decoder(path)
    width, height = output_size(info, short_side)
    if chosen == "pyav":
        return _sample_pyav(path, info, fps, width, height, sizes, threads, planned=planned)
    batches = _sample_decord(path, info, fps, width, height, sizes, threads)
    if decoder == "auto":
        return _pyav_takes_over(path, batches, info, fps, width, height, sizes, threads)
    return batches


@dataclass(frozen=True)
class BatchSizes:
    """Frames per batch: ``first`` for batch 0, doubling per batch up to ``full``."""

    full: int
    first: int

    def __call__(self, k: int) -> int:
        return min(self.full, self.first << min(k, 31))


SPARSE_RATIO = 2.0
"""``auto`` decodes with PyAV when it samples at most one frame in this many."""


def _planned(path: Path, info: ProbeInfo, fps: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(times of the sampled frames, decode plan) for PyAV; None where the codec is not
    planned, a plan failed on this file before, or :func:`decode_plan` refuses."""
    if info.video_codec not in _PLANNED_CODECS or file_key(path) in _PLAN_FAILED:
        return None
    times = frame_times(path)
    selected = times[select_indices(times, fps, info.duration_s)]
    plan = decode_plan(packets(path), selected)
    return None if plan is None else (selected, plan)


def _pyav_takes_over(path: Path, batches: Iterator[FrameBatch], info: ProbeInfo, fps: float, width: int,
                     height: int, sizes: BatchSizes, threads: int) -> Iterator[FrameBatch]:
    """``batches`` from decord; if decord fails part-way (or at a size it cannot scale to),
    PyAV goes on from the next sampled frame (both pick frames by the same rule)."""
    yielded = 0
    try:
        for batch in batches:
            yielded += len(batch)
            yield batch
        return
    except DecodeError as exc:
        log.info("%s; PyAV goes on from sampled frame %d", exc, yielded)
    yield from _sample_pyav(path, info, fps, width, height, sizes, threads, skip_first=yielded)


def _sample_decord(path: Path, info: ProbeInfo, fps: float, width: int, height: int,
                   sizes: BatchSizes, threads: int) -> Iterator[FrameBatch]:
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


class _PlanFailed(Exception):
    """The decoder did not give the planned frames (e.g. it withholds frames after a skip
    until a recovery point): decode everything instead."""


_PLAN_FAILED: set[tuple[str, int, int]] = set()
"""Files (path, size, mtime) on which a decode plan failed once; they are decoded whole."""

_PLANNED_CODECS = frozenset({"h264"})
"""Codecs whose decoder is known to withhold rather than invent frames after skipped
packets; others are decoded whole."""


def _sample_pyav(path: Path, info: ProbeInfo, fps: float, width: int, height: int,
                 sizes: BatchSizes, threads: int, skip_first: int = 0,
                 planned: tuple[np.ndarray, np.ndarray] | None = None) -> Iterator[FrameBatch]:
    """PyAV sampling. For H.264 only what the sampled frames need is decoded: the rest of a
    group of pictures after its last sampled frame is skipped, and frames nothing refers to
    are dropped unless sampled. The frames that come out are checked against the plan; if
    the decoder gives anything else, the file is decoded whole instead (same frames). The
    first ``skip_first`` sampled frames are left out. ``planned`` is :func:`_planned`'s
    answer when the caller has it already."""
    key = file_key(path)
    selected, plan = planned or _planned(path, info, fps) or (None, None)
    yielded = skip_first
    if plan is not None and selected is not None:
        try:
            for batch in _pyav_batches(path, info, fps, width, height, sizes, threads,
                                       plan, selected, skip_first):
                yielded += len(batch)
                yield batch
            return
        except _PlanFailed as exc:
            log.debug("%s: decode plan failed (%s); decoding every frame", path, exc)
            _PLAN_FAILED.add(key)
    yield from _pyav_batches(path, info, fps, width, height, sizes, threads, None, None, yielded)


def _pyav_batches(path: Path, info: ProbeInfo, fps: float, width: int, height: int, sizes: BatchSizes,
                  threads: int, plan: np.ndarray | None, selected: np.ndarray | None,
                  skip_first: int) -> Iterator[FrameBatch]:
    """Decode with PyAV (every packet, or those ``plan`` asks for) and yield sampled frames,
    leaving out the first ``skip_first`` (already yielded by an earlier attempt). With a
    plan, raises :class:`_PlanFailed` when a sampled frame is not the planned one."""
    import av

    selector = FrameSelector(fps, info.duration_s)
    all_times = frame_times(path) if plan is not None else None
    frames: list[np.ndarray] = []
    times: list[float] = []
    indices: list[int] = []
    taken = 0
    batches = 0
    last: tuple[Any, float, int] | None = None
    emitted_last = False

    def take(frame: Any, time_s: float, index: int) -> FrameBatch | None:
        nonlocal frames, times, indices, taken, batches
        if selected is not None and (taken >= len(selected) or
                                     abs(float(selected[taken]) - time_s) > TIME_EPS_S):
            raise _PlanFailed(f"sampled frame {taken} came out at {time_s:.3f} s")
        taken += 1
        if taken <= skip_first:
            return None
        frames.append(_to_rgb(frame, width, height, info))
        times.append(time_s)
        indices.append(index)
        if len(frames) < sizes(batches):
            return None
        batch = _batch(frames, times, indices)
        frames, times, indices = [], [], []
        batches += 1
        return batch

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise DecodeError(f"{path}: PyAV cannot open it ({ffmpeg_reason(exc)})") from None
    with container:
        vs = video_stream(container, path)
        if threads > 0:
            vs.codec_context.thread_count = threads
        if threads != 1:
            vs.thread_type = "AUTO"
        ctx = vs.codec_context
        tb = vs.time_base
        cstart = Fraction(container.start_time or 0, 1_000_000)
        step = Fraction(1) / Fraction(info.fps).limit_denominator(1_000_000)
        prev_s: Fraction | None = None
        index = -1

        def decoded() -> Iterator[Any]:
            if plan is None:
                yield from container.decode(vs)
                return
            i = -1
            skip = "DEFAULT"
            for packet in container.demux(vs):
                if packet.size:
                    i += 1
                    if i >= len(plan) or plan[i] == 0:
                        continue
                    want = "DEFAULT" if plan[i] == 2 else "NONREF"
                    if want != skip:
                        ctx.skip_frame = skip = want
                yield from vs.decode(packet)

        try:
            for frame in decoded():
                if frame.pts is not None:
                    t = Fraction(frame.pts) * tb - cstart
                else:  # raw streams without timestamps: one average frame after the last
                    t = Fraction(0) if prev_s is None else prev_s + step
                prev_s = t
                time_s = float(t)
                if all_times is None:
                    index += 1
                else:  # frames were skipped: a frame's place among all frames is by its time
                    index = int(np.searchsorted(all_times, time_s - TIME_EPS_S))
                if selector.take(time_s):
                    emitted_last = True
                    if (batch := take(frame, time_s, index)) is not None:
                        yield batch
                else:
                    emitted_last = False
                    last = (frame, time_s, index)
                if selector.done:
                    break
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{path}: PyAV failed after frame {index} ({ffmpeg_reason(exc)})") from None
        if index < 0:
            raise DecodeError(f"{path}: no decodable video frame")
        # Targets past the last frame get the last frame.
        if not selector.done and not emitted_last and last is not None and \
                (batch := take(*last)) is not None:
            yield batch
        if selected is not None and taken != len(selected):
            raise _PlanFailed(f"{taken} of {len(selected)} sampled frames came out")
    if frames:
        yield _batch(frames, times, indices)


def _batch(frames: list[np.ndarray], times: list[float], indices: list[int]) -> FrameBatch:
    return FrameBatch(frames=np.stack(frames), times_s=np.asarray(times, dtype=np.float64),
                      indices=np.asarray(indices, dtype=np.int64))
