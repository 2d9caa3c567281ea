"""Sampling with PyAV, and for H.264 the decode plan that lets it decode only what the sampled
frames need, seeking over long stretches it skips (checked against what comes out; the file is
decoded whole where it fails)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from bench.video.frames import TIME_EPS_S, BatchSizes, DecodeError, FrameBatch, FrameSelector, select_indices
from bench.video.orientation import to_rgb
from bench.video.packets import Packets, file_key, frame_times, packets
from bench.video.probe import ProbeInfo, ffmpeg_reason, video_stream

log = logging.getLogger("bench")

_PLANNED_CODECS = frozenset({"h264"})
"""Codecs whose decoder is known to withhold rather than invent frames after skipped
packets; others are decoded whole."""


_PLAN_FAILED: set[tuple[str, int, int]] = set()
_SEEKS = [0]
"""Seeks made by planned decodes in this process (read by tests and benchmarks)."""
"""Files (path, size, mtime) on which a decode plan failed once; they are decoded whole."""


SEEK_MIN_PACKETS = 48
"""A planned decode seeks (in containers with an index) over a skipped stretch of at least
this many packets instead of reading through it; shorter stretches cost less to read than a
seek, which drains the decoder first."""

_SEEKABLE_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})
"""Demuxers that seek by their index to the exact key frame; MPEG-TS seeks by byte estimate."""


def planned_share(plan: np.ndarray) -> float:
    """Share of the stream's packets a plan sends to the decoder (1.0: every one)."""
    return float(np.count_nonzero(plan)) / max(1, len(plan))


def reorders(found: Packets) -> bool:
    """True when frames are shown in another order than decoded (B-frames): some frames are
    then references for none, and a plan drops those it does not sample without decoding."""
    return bool(np.any(np.diff(found.time_s) < 0))


def seek_jumps(plan: np.ndarray, key: np.ndarray, min_packets: int = SEEK_MIN_PACKETS) -> dict[int, int]:
    """{first packet of a skipped stretch: the key packet after it where decoding resumes} for
    every stretch of ``plan == 0`` at least ``min_packets`` long that ends at a key packet
    (packets in decode order; a stretch after the last needed packet is never read)."""
    needed = np.flatnonzero(plan)
    jumps: dict[int, int] = {}
    if needed.size == 0:
        return jumps
    gaps = np.flatnonzero(np.diff(needed) > min_packets)
    for g in gaps.tolist():
        first, resume = int(needed[g]) + 1, int(needed[g + 1])
        if key[resume]:
            jumps[first] = resume
    if needed[0] >= min_packets and key[needed[0]]:
        jumps[0] = int(needed[0])
    return jumps


class _PlanFailed(Exception):
    """The decoder did not give the planned frames (e.g. it withholds frames after a skip
    until a recovery point): decode everything instead."""


def sampling_plan(path: Path, info: ProbeInfo, fps: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(times of the sampled frames, decode plan) for PyAV; None where the codec is not
    planned, a plan failed on this file before, or :func:`decode_plan` refuses."""
    if info.video_codec not in _PLANNED_CODECS or file_key(path) in _PLAN_FAILED:
        return None
    times = frame_times(path)
    selected = times[select_indices(times, fps, info.duration_s)]
    plan = decode_plan(packets(path), selected)
    return None if plan is None else (selected, plan)


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


def sample_pyav(path: Path, info: ProbeInfo, fps: float, width: int, height: int,
                sizes: BatchSizes, threads: int, skip_first: int = 0,
                planned: tuple[np.ndarray, np.ndarray] | None = None,
                keyframes_only: bool = False) -> Iterator[FrameBatch]:
    """PyAV sampling. For H.264 only what the sampled frames need is decoded: the rest of a
    group of pictures after its last sampled frame is skipped, and frames nothing refers to
    are dropped unless sampled. The frames that come out are checked against the plan; if
    the decoder gives anything else, the file is decoded whole instead (same frames). The
    first ``skip_first`` sampled frames are left out. ``planned`` is :func:`sampling_plan`'s
    answer when the caller has it already. ``keyframes_only`` decodes key frames alone (see
    :func:`bench.video.sample_frames`)."""
    if keyframes_only:
        yield from _pyav_batches(path, info, fps, width, height, sizes, threads, None, None, skip_first,
                                 keyframes_only=True)
        return
    key = file_key(path)
    selected, plan = planned or sampling_plan(path, info, fps) or (None, None)
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
                  skip_first: int, keyframes_only: bool = False) -> Iterator[FrameBatch]:
    """Decode with PyAV (every packet, or those ``plan`` asks for) and yield sampled frames,
    leaving out the first ``skip_first`` (already yielded by an earlier attempt). With a
    plan, raises :class:`_PlanFailed` when a sampled frame is not the planned one."""
    import av

    selector = FrameSelector(fps, info.duration_s)
    all_times = frame_times(path) if plan is not None or keyframes_only else None
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
        frames.append(to_rgb(frame, width, height, info))
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
        if keyframes_only:
            ctx.skip_frame = "NONKEY"
        tb = vs.time_base
        cstart = Fraction(container.start_time or 0, 1_000_000)
        step = Fraction(1) / Fraction(info.fps).limit_denominator(1_000_000)
        prev_s: Fraction | None = None
        index = -1

        def decoded() -> Iterator[Any]:
            if plan is None:
                yield from container.decode(vs)
                return
            found = packets(path)
            jumps = seek_jumps(plan, found.key) if container.format.name in _SEEKABLE_FORMATS else {}
            # After a seek a packet's place in decode order is found by its (unique) time.
            place = {x: j for j, x in enumerate(found.time_s.tolist())} if jumps else {}
            i = -1
            skip = "DEFAULT"
            demux: Any = container.demux(vs)
            while (packet := next(demux, None)) is not None:
                if packet.size:
                    if place:
                        at = place.get(float(packet.pts * tb - cstart)) if packet.pts is not None else None
                        if at is None:
                            raise _PlanFailed("a packet after a seek is not in the packet list")
                        i = at
                    else:
                        i += 1
                    if i in jumps:
                        resume = jumps.pop(i)
                        yield from vs.decode(None)  # a seek flushes the decoder: drain it first
                        # Backward to the key frame at or before the resume packet's time
                        # (a tick early lands on the key frame before: read, not decoded).
                        container.seek(round((Fraction(float(found.time_s[resume])) + cstart) / tb),
                                       stream=vs, backward=True)
                        demux.close()
                        demux = container.demux(vs)
                        _SEEKS[0] += 1
                        continue
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
                if keyframes_only and not frame.key_frame:
                    continue  # a decoder may still hand out a non-key frame after a flush
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
