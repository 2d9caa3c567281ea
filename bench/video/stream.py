"""Decode -> preprocess -> encode as one stream over many videos: a bounded prefetch thread,
batches that run across video boundaries, and encoder calls in worker threads.

The frame preprocessing is a parameter (any :class:`FrameTransform`); torch loads on first use.
"""

from __future__ import annotations

import contextvars
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from bench import timing
from bench.errors import BadInput
from bench.video.frames import BatchSizes

if TYPE_CHECKING:
    import torch

T = TypeVar("T")
R = TypeVar("R")


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


class FrameTransform(Protocol):
    """Preprocessing of decoded frames for an encoder, e.g.
    :class:`bench.vision.transforms.ImageTransform`."""

    @property
    def decode_short_side(self) -> int:
        """Short side, in pixels, to ask the decoder for."""
        ...

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 ``(n, H, W, 3)`` RGB -> float32 ``(n, 3, h, w)`` on the CPU."""
        ...


# -- overlap decoding with encoding ----------------------------------------------------------

_DONE = object()


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead.

    Decoding and preprocessing release the GIL (ffmpeg, torch), so they overlap with the
    encoder running in the caller's thread. An exception in the producer is raised here;
    stopping early (break, error) stops the producer at its next item.
    """
    if depth < 1:
        raise BadInput(f"prefetch depth must be >= 1, got {depth}")
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failure(exc))

    thread = threading.Thread(target=run, name="bench-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=5.0)


@dataclass
class _Failure:
    exc: BaseException


# -- decoded, preprocessed frame batches -----------------------------------------------------


@dataclass
class StreamBatch:
    """Frames of one or more consecutive videos of a :func:`preprocessed_stream`: preprocessed
    (``pixels``), or decoded and left for the encoder's device to preprocess (``frames``)."""

    pixels: torch.Tensor | None
    """float32 ``(n, 3, H, W)``; None in a stream of raw frames."""
    times_s: np.ndarray
    """float64 ``(n,)``: each frame's time in its own video, seconds."""
    owner: np.ndarray
    """int64 ``(n,)``: each frame's video, as its position in ``paths``."""
    frames: tuple[torch.Tensor, ...] = ()
    """In a stream of raw frames: uint8 ``(k, H, W, 3)`` chunks, ``n`` frames in all, in
    order; frames of one size share a chunk (videos may differ in size)."""


@dataclass
class VideoEnd:
    """The decoder is done with video ``position``: ``n_frames`` of its frames are in the
    batches yielded before this mark or right after it (its last frames may share a batch
    with the next video's first ones). With ``error`` it failed part-way, and its frames
    already yielded are void."""

    position: int
    n_frames: int
    decoders: set[str]
    error: BaseException | None = None


@dataclass
class _Tally:
    """Seconds and items summed over the calls of one stage."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    items: int = 0

    def add_since(self, t0: float, c0: float, items: int) -> None:
        """Add the wall and thread CPU time since ``t0`` / ``c0``, and ``items``."""
        self.wall_s += time.perf_counter() - t0
        self.cpu_s += time.thread_time() - c0
        self.items += items


class _Batcher:
    """Preprocessed frames not yet in a batch, cut into the batches of a
    :func:`preprocessed_stream` (sizes and shrinking as described there)."""

    def __init__(self, sizes: BatchSizes, *, expected: int, workers: int, pin_memory: bool,
                 raw: bool = False) -> None:
        self.sizes = sizes
        self.raw = raw  # uint8 frames, cut into chunks, not preprocessed pixels
        self.expected = expected  # sampled frames in all videos; 0: unknown, no shrinking
        self.workers = workers
        self.pin_memory = pin_memory
        self.held: list[tuple[torch.Tensor, np.ndarray, int]] = []  # (pixels, times_s, position)
        self.emitted = 0  # batches cut so far
        self.sent = 0  # frames in them

    def add(self, pixels: torch.Tensor, times_s: np.ndarray, position: int) -> None:
        self.held.append((pixels, times_s, position))

    def drop(self, position: int) -> None:
        """Forget the frames held of the video at ``position`` (it failed)."""
        self.held[:] = [h for h in self.held if h[2] != position]

    def held_frames(self) -> int:
        return sum(len(t) for _, t, _ in self.held)

    def next_size(self) -> int:
        size = self.sizes(self.emitted)
        if self.expected:
            size = min(size, max(self.sizes.first, -(-(self.expected - self.sent) // self.workers)))
        return size

    def full_batches(self) -> Iterator[StreamBatch]:
        """Every batch of the next size that the held frames fill."""
        while self.held_frames() >= self.next_size():
            yield self.cut(self.next_size())

    def cut(self, n: int) -> StreamBatch:
        """The first ``n`` held frames as one batch."""
        import torch

        pixels: list[torch.Tensor] = []
        times: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        while n > 0:
            x, t, position = self.held[0]
            take = min(n, len(t))
            pixels.append(x[:take])
            times.append(t[:take])
            owners.append(np.full(take, position, dtype=np.int64))
            if take == len(t):
                self.held.pop(0)
            else:
                self.held[0] = (x[take:], t[take:], position)
            n -= take
        self.emitted += 1
        self.sent += sum(len(t) for t in times)
        if self.raw:
            chunks = [c.pin_memory() if self.pin_memory else c for c in _same_size_runs(pixels)]
            return StreamBatch(None, np.concatenate(times), np.concatenate(owners), tuple(chunks))
        batch = pixels[0] if len(pixels) == 1 else torch.cat(pixels)
        if self.pin_memory:
            batch = batch.pin_memory()
        return StreamBatch(batch, np.concatenate(times), np.concatenate(owners))


def _same_size_runs(parts: list[torch.Tensor]) -> list[torch.Tensor]:
    """``parts`` with each run of same-shaped neighbours joined into one tensor."""
    import torch

    runs: list[list[torch.Tensor]] = []
    for part in parts:
        if runs and runs[-1][0].shape[1:] == part.shape[1:]:
            runs[-1].append(part)
        else:
            runs.append([part])
    return [run[0] if len(run) == 1 else torch.cat(run) for run in runs]


def preprocessed_stream(paths: Sequence[Path], *, fps: float, transform: FrameTransform, batch_size: int,
                        decoder: str = "auto", depth: int = 2, threads: int = 0, video_s: float = 0.0,
                        pin_memory: bool = False, workers: int = 1, raw: bool = False,
                        decode_processes: int = 0, keyframes_only: bool = False,
                        ) -> Generator[StreamBatch | VideoEnd, None, None]:
    """Frames of every video in ``paths``, in order, sampled at ``fps``, decoded (``threads``
    decoder threads, 0: FFmpeg's choice) and preprocessed in a background thread up to
    ``depth`` items ahead (``depth=0``: in the caller's thread, nothing overlapped).

    ``raw`` leaves preprocessing to the encoder (on its device): batches then carry the
    decoded uint8 frames (``StreamBatch.frames``, pinned with ``pin_memory``: a quarter of the
    bytes of float pixels to copy, and the resize runs where the encoder is).
    ``decode_processes`` > 0 decodes that many videos at once in worker processes, one FFmpeg
    thread each (:func:`bench.video.parallel.decoded_videos`); frames, batches and their order
    are the same as with one decoder. ``keyframes_only`` samples key frames alone (see
    :func:`bench.video.sample_frames`).

    Batches run on across video boundaries, so a library of short clips keeps the encoder's
    batches full and the decoder busy while the encoder finishes a video. With a prefetch
    thread the first batch is an eighth of ``batch_size`` and later ones double up to it, so
    the encoder starts after a few frames instead of a whole batch (on a 2-core CPU that
    start-up was 5-12% of a 3-minute video's indexing time). For ``workers`` encoder calls at
    a time (:func:`encoded_stream`), batches shrink toward the end, each at most the frames
    left (estimated from ``video_s``) divided by ``workers``, down to the first batch's size:
    the workers then finish together, where a last full batch would run alone while the
    other workers idle (on a 2-core CPU, about 6% of a 3-minute video's indexing time).

    A :class:`VideoEnd` follows each video's last decoded frame; a video that cannot be
    decoded (a BadInput or decoder error) gets one with its error and the others go on. Any
    other error is raised here.

    Decode and preprocess times are recorded as stages ``decode`` and ``preprocess`` (with a
    prefetch thread, its wall time, which overlaps ``encode``; ``video_s`` is the videos'
    total duration; with decoder processes, ``decode`` is the time spent waiting for their
    frames); with a prefetch thread, the time the caller waited for the first
    batch is stage ``decode_start`` (start-up, nothing to overlap with) and for later ones
    ``decode_wait`` (large when decoding is the bottleneck)."""
    from bench.video.parallel import DecodeJob, VideoDone, decoded_videos

    rec = timing.current()
    decoding, preprocessing = _Tally(), _Tally()
    batcher = _Batcher(BatchSizes(batch_size, max(1, batch_size // 8) if depth else batch_size),
                       expected=round(video_s * fps) if workers > 1 else 0, workers=workers,
                       pin_memory=pin_memory, raw=raw)
    job = DecodeJob(fps=fps, short_side=transform.decode_short_side, batch_size=batch_size, decoder=decoder,
                    threads=1 if decode_processes else threads, first_batch=batcher.sizes.first,
                    keyframes_only=keyframes_only)

    def produce() -> Iterator[StreamBatch | VideoEnd]:
        counts: dict[int, int] = {}
        events = iter(decoded_videos(paths, job, processes=decode_processes, depth=max(2, depth)))
        while True:
            t0, c0 = time.perf_counter(), time.thread_time()
            event = next(events, None)
            n = len(event[1]) if isinstance(event, tuple) else 0
            decoding.add_since(t0, c0, n)
            if event is None:
                break
            if isinstance(event, VideoDone):
                if event.error is not None:
                    batcher.drop(event.position)
                    yield VideoEnd(event.position, 0, event.decoders, event.error)
                else:
                    yield VideoEnd(event.position, counts.get(event.position, 0), event.decoders)
                continue
            position, batch = event
            t0, c0 = time.perf_counter(), time.thread_time()
            if raw:
                import torch

                frames = batch.frames if batch.frames.flags.writeable else batch.frames.copy()
                batcher.add(torch.from_numpy(frames), batch.times_s, position)
            else:
                batcher.add(transform(batch.frames), batch.times_s, position)
            preprocessing.add_since(t0, c0, len(batch))
            counts[position] = counts.get(position, 0) + len(batch)
            yield from batcher.full_batches()
        if batcher.held:
            yield batcher.cut(batcher.held_frames())

    startup = _Tally()  # waiting for the first frames: nothing to overlap with yet
    waited = _Tally()
    try:
        if depth == 0:
            yield from produce()
            return
        items = prefetch(produce(), depth)
        while True:
            t0 = time.perf_counter()
            item = next(items, None)
            wait_s = time.perf_counter() - t0
            n = len(item.times_s) if isinstance(item, StreamBatch) else 0
            tally = waited if startup.items else startup
            tally.wall_s += wait_s
            tally.items += n
            if item is None:
                return
            yield item
    finally:
        if rec is not None:
            # Recorded from here, not with stage() in the thread: stage() synchronizes CUDA,
            # which would make the decoder wait for the encoder and undo the overlap.
            rec.add("decode", decoding.wall_s, decoding.cpu_s, decoding.items, video_s)
            rec.add("preprocess", preprocessing.wall_s, preprocessing.cpu_s, preprocessing.items, 0.0)
            if depth and (startup.wall_s or startup.items):
                rec.add("decode_start", startup.wall_s, 0.0, startup.items, 0.0)
                rec.add("decode_wait", waited.wall_s, 0.0, waited.items, 0.0)


def preprocessed_batches(path: Path, *, fps: float, transform: FrameTransform, batch_size: int,
                         decoder: str = "auto", depth: int = 2, threads: int = 0, video_s: float = 0.0,
                         pin_memory: bool = False, decoders: set[str] | None = None,
                         ) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """:func:`preprocessed_stream` of one video: yields (float32 ``(n, 3, H, W)`` CPU
    tensor, float64 ``(n,)`` times in seconds) and raises the video's decoding error. The
    decoders that produced frames are added to ``decoders``."""
    for item in preprocessed_stream([path], fps=fps, transform=transform, batch_size=batch_size,
                                    decoder=decoder, depth=depth, threads=threads, video_s=video_s,
                                    pin_memory=pin_memory):
        if isinstance(item, StreamBatch):
            assert item.pixels is not None  # not a raw stream
            yield item.pixels, item.times_s
            continue
        if decoders is not None:
            decoders.update(item.decoders)
        if item.error is not None:
            raise item.error


class EncoderWorkers:
    """Encoder calls run ``workers`` at a time, in threads (a context manager).

    While open, torch's intra-op threads are shared out among the workers
    (``get_num_threads() // workers`` each); threads started meanwhile (a prefetch thread's
    preprocessing) take that share too. On the CPU, calls on separate batches need no
    synchronization with each other, where the threads of one call meet at every operator:
    a decoder thread taking a core then delays one call instead of every core's work. With
    one worker, :meth:`submit` runs the call at once in the caller's thread."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise BadInput(f"encoder_workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._threads_before = 0

    def __enter__(self) -> EncoderWorkers:
        if self.workers > 1:
            import torch

            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(max(1, self._threads_before // self.workers))
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="bench-encode")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            import torch

            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            torch.set_num_threads(self._threads_before)

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        """``fn(*args)`` in a worker; timing stages inside it are recorded as the caller's."""
        if self._pool is None:
            done: Future[R] = Future()
            try:
                done.set_result(fn(*args))
            except Exception as exc:
                done.set_exception(exc)
            return done
        # A copied context per call: one context cannot be entered by two threads at once.
        return self._pool.submit(contextvars.copy_context().run, fn, *args)


def encoded_stream(items: Iterable[StreamBatch | VideoEnd], encode: Callable[[StreamBatch], R],
                   workers: int = 1) -> Iterator[tuple[StreamBatch | VideoEnd, R | None]]:
    """``items`` in their order, each :class:`StreamBatch` with ``encode(batch)`` (``None``
    beside a :class:`VideoEnd`), with ``workers`` calls running at once
    (:class:`EncoderWorkers`). A worker that finishes takes the next batch at once, even while
    an older call still runs (up to ``2 * workers`` calls started and not yet returned): a
    call slowed down by other work on its core then holds up no other worker. An error in
    ``encode`` is raised here once the calls in flight end, and stopping early closes
    ``items``."""
    if workers <= 1:
        for item in items:
            yield item, (encode(item) if isinstance(item, StreamBatch) else None)
        return
    source = iter(items)
    pending: deque[tuple[StreamBatch | VideoEnd, Future[R] | None]] = deque()
    running: set[Future[R]] = set()
    calls = 0  # calls in ``pending``, running or finished
    exhausted = False
    try:
        with EncoderWorkers(workers) as pool:

            def fill() -> None:
                nonlocal calls, exhausted
                running.difference_update([f for f in running if f.done()])
                while len(running) < workers and calls < 2 * workers and not exhausted:
                    item = next(source, None)
                    if item is None:
                        exhausted = True
                    elif isinstance(item, StreamBatch):
                        future = pool.submit(encode, item)
                        pending.append((item, future))
                        running.add(future)
                        calls += 1
                    else:
                        pending.append((item, None))

            fill()
            while pending:
                head, future = pending[0]
                if future is not None and not future.done():
                    wait(running, return_when=FIRST_COMPLETED)
                    fill()
                    continue
                pending.popleft()
                result = None
                if future is not None:
                    calls -= 1
                    result = future.result()
                    fill()
                yield head, result
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


def only_outcome(outcomes: Iterable[tuple[int, Any]],
                 path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The outcome of a retriever's ``encode_videos`` on the one video ``path``: its arrays and
    meta; raises its decoding error."""
    for _, outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        arrays, meta = outcome
        return dict(arrays), dict(meta)
    raise BadInput(f"{path}: no frames could be sampled")


def count_decoder(counts: dict[str, int], meta: dict[str, Any]) -> None:
    """Add one video's decoder (``meta["decoder"]`` as stored with its features) to ``counts``;
    features stored before decoders were recorded count as ``"unrecorded"``."""
    name = str(meta.get("decoder") or "unrecorded")
    counts[name] = counts.get(name, 0) + 1

