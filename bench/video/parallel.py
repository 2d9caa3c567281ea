"""Decoding several videos at once, in worker processes with one FFmpeg thread each, handing
uint8 frames back in the videos' order (or, with no workers, decoding in the caller's thread).

A GPU encoder outruns one decoder by one to two orders of magnitude; FFmpeg's own threads
scale poorly on the sparse samplings used here, while separate processes decoding separate
videos scale with the cores. Worker ``w`` of ``W`` decodes videos ``w, w + W, ...`` in order
into its own bounded queue, and the caller reads the queues round-robin, so frames come back
in the same order as from one decoder and at most ``depth`` batches per worker are held.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BadInput
from bench.video.frames import FrameBatch

_POLL_S = 1.0
"""How often a reader waiting on a worker checks that the worker is still alive."""


@dataclass(frozen=True)
class DecodeJob:
    """What every video of one stream is sampled with (see :func:`bench.video.sample_frames`)."""

    fps: float
    short_side: int | None
    batch_size: int
    decoder: str = "auto"
    threads: int = 0
    first_batch: int | None = None
    keyframes_only: bool = False


@dataclass
class VideoDone:
    """The end of video ``position``'s frames; ``error`` when it failed part-way (a decoding
    error of that file: the stream goes on with the next video)."""

    position: int
    error: BaseException | None = None
    decoders: set[str] = field(default_factory=set)


def decoded_videos(paths: Sequence[Path], job: DecodeJob, *, processes: int = 0,
                   depth: int = 2) -> Iterator[tuple[int, FrameBatch] | VideoDone]:
    """``(position, batch)`` for every sampled batch of every video, in order, then a
    :class:`VideoDone` per video. ``processes`` > 0 decodes that many videos at once in worker
    processes (at most one per video); 0 decodes here. A file that cannot be decoded gets a
    ``VideoDone`` with its error; any other error is raised."""
    if processes < 0:
        raise BadInput(f"decode processes must be >= 0, got {processes}")
    workers = min(processes, len(paths))
    if workers == 0:
        yield from _decode_here(paths, job)
        return
    yield from _decode_in_processes(paths, job, workers, max(1, depth))


def _decode_here(paths: Sequence[Path], job: DecodeJob) -> Iterator[tuple[int, FrameBatch] | VideoDone]:
    from bench.video.stream import decoder_errors

    for position, path in enumerate(paths):
        used: set[str] = set()
        try:
            for batch in _sample(path, job):
                used.add(batch.decoder)
                yield position, batch
        except Exception as exc:
            if not isinstance(exc, decoder_errors()):
                raise
            yield VideoDone(position, exc, used)
            continue
        yield VideoDone(position, None, used)


def _sample(path: Path, job: DecodeJob) -> Iterator[FrameBatch]:
    from bench import video  # looked up per call: tests replace sample_frames

    extra = {"keyframes_only": True} if job.keyframes_only else {}
    return iter(video.sample_frames(path, job.fps, short_side=job.short_side, batch_size=job.batch_size,
                                    decoder=job.decoder, threads=job.threads, first_batch=job.first_batch,
                                    **extra))


def _worker(assigned: list[tuple[int, str]], job: DecodeJob, out: Any) -> None:
    """A worker process: decode ``assigned`` (position, path) in order into ``out``."""
    from bench.video.stream import decoder_errors

    for position, path in assigned:
        used: set[str] = set()
        try:
            for batch in _sample(Path(path), job):
                used.add(batch.decoder)
                out.put(("frames", position, batch.frames, batch.times_s, batch.indices, batch.decoder))
        except Exception as exc:
            # Exceptions of the decoders' own types may not survive pickling: send a message.
            kind = "decode" if isinstance(exc, decoder_errors()) else "crash"
            out.put(("end", position, kind, f"{type(exc).__name__}: {exc}", sorted(used)))
            continue
        out.put(("end", position, None, None, sorted(used)))


def _decode_in_processes(paths: Sequence[Path], job: DecodeJob, workers: int,
                         depth: int) -> Iterator[tuple[int, FrameBatch] | VideoDone]:
    from bench.video.frames import DecodeError

    # spawn, not fork: the parent runs torch, CUDA and threads, none of which survive a fork.
    ctx = mp.get_context("spawn")
    queues = [ctx.Queue(maxsize=depth) for _ in range(workers)]
    procs = []
    for w in range(workers):
        assigned = [(i, str(p)) for i, p in enumerate(paths) if i % workers == w]
        proc = ctx.Process(target=_worker, args=(assigned, job, queues[w]), name=f"bench-decode-{w}",
                           daemon=True)
        proc.start()
        procs.append(proc)
    try:
        for position in range(len(paths)):
            w = position % workers
            while True:
                msg = _get(queues[w], procs[w], paths[position])
                if msg[0] == "frames":
                    _, _, frames, times_s, indices, decoder = msg
                    yield position, FrameBatch(np.asarray(frames), np.asarray(times_s),
                                               np.asarray(indices), decoder)
                    continue
                _, _, kind, message, used = msg
                if kind == "crash":
                    raise RuntimeError(f"{paths[position]}: decoder process failed: {message}")
                error = DecodeError(f"{paths[position]}: {message}") if kind == "decode" else None
                yield VideoDone(position, error, set(used))
                break
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=5.0)
        for q in queues:
            q.close()
            q.cancel_join_thread()


def _get(q: Any, proc: Any, path: Path) -> tuple[Any, ...]:
    while True:
        try:
            return q.get(timeout=_POLL_S)  # type: ignore[no-any-return]
        except queue.Empty:
            if not proc.is_alive():
                raise RuntimeError(f"{path}: decoder process exited with code {proc.exitcode}") from None
