"""Sample frames at a fixed rate with their true timestamps, in bounded batches.

decord is the default decoder; PyAV takes over for files decord cannot open or gets wrong
(rotation, variable-frame-rate timestamps), where decord fails part-way, and for sparse
sampling of H.264, where PyAV decodes only what the sampled frames need and so does less
work. Both pick the same frames by the same rule, and times are seconds on the player's
timeline (from the container's start).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from bench.errors import BadInput
from bench.video import decord_backend, pyav_backend  # looked up per call: tests replace sample_decord
from bench.video.frames import BatchSizes, DecodeError, FrameBatch, FrameSelector, output_size
from bench.video.packets import packets
from bench.video.probe import ProbeInfo, probe

log = logging.getLogger("bench")

Decoder = Literal["auto", "decord", "pyav"]
DECODERS: tuple[str, ...] = ("auto", "decord", "pyav")

SPARSE_RATIO = 2.0
"""``auto`` decodes with PyAV when it samples at most one frame in this many."""

PLANNED_MAX_SHARE = 0.75
"""``auto`` decodes every frame with decord rather than follow PyAV's plan when the stream
has no B-frames and the plan still sends more than this share of the packets to the decoder
(long groups of pictures sampled every second or so): decord then decodes a frame for less
than PyAV. With B-frames the plan drops the unsampled frames nothing refers to without
decoding them and stays cheaper even at a share of 0.95 (docs/scaling.md)."""


def sample_frames(path: Path, fps: float = 1.0, *, short_side: int | None = None,
                  batch_size: int = 32, decoder: str = "auto", threads: int = 0,
                  first_batch: int | None = None, keyframes_only: bool = False) -> Iterator[FrameBatch]:
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
    sampling (at most every second frame) of H.264 it can plan, where the stream has
    B-frames or the plan skips at least a quarter of the packets (:data:`PLANNED_MAX_SHARE`):
    it then decodes only what the sampled frames need, from the key frame before each
    (seeking over long skipped stretches in MP4 and Matroska). Otherwise ``auto`` takes
    decord where :func:`choose_decoder` finds it right for the file, and PyAV goes on from
    the next sampled frame if decord fails part-way.
    ``threads`` is the decoder's thread count (0: FFmpeg's choice, about one per core). One
    thread costs the least CPU time per frame (frame threading has overhead); more finish a
    single video sooner when nothing else wants the cores.

    ``keyframes_only`` decodes key frames alone (PyAV, whatever ``decoder`` says) and takes,
    for each target time, the first key frame at or after it: far less decoding (no frame
    depends on another), at the cost of sampling only where the encoder put key frames (a
    target with none before the next target's is skipped).

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
    if keyframes_only:
        width, height = output_size(info, short_side)
        return pyav_backend.sample_pyav(path, info, fps, width, height, sizes, threads, keyframes_only=True)
    if decoder == "auto":
        # PyAV when sampling is sparse and its plan skips enough: it then does less work than
        # decord, which decodes every frame (scripts/perf/reports/decode_cost.md).
        if fps * SPARSE_RATIO <= info.fps:
            planned = pyav_backend.sampling_plan(path, info, fps)
        if planned is not None and pyav_backend.planned_share(planned[1]) > PLANNED_MAX_SHARE \
                and not pyav_backend.reorders(packets(path)) \
                and decord_backend.choose_decoder(path) == "decord":
            planned = None
        chosen = "pyav" if planned is not None else decord_backend.choose_decoder(path)
    width, height = output_size(info, short_side)
    if chosen == "pyav":
        return pyav_backend.sample_pyav(path, info, fps, width, height, sizes, threads, planned=planned)
    batches = decord_backend.sample_decord(path, info, fps, width, height, sizes, threads)
    if decoder == "auto":
        return _pyav_takes_over(path, batches, info, fps, width, height, sizes, threads)
    return batches


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
    yield from pyav_backend.sample_pyav(path, info, fps, width, height, sizes, threads, skip_first=yielded)
