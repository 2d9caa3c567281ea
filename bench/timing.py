"""Per-stage timing: wall and CPU seconds, items and video seconds, peak memory.

Retrievers wrap their work in ``with stage("encode", items=n):``; the benchmark runner
opens a :class:`TimingRecorder` around a run and collects the totals. With no recorder
active, ``stage`` costs two clock reads.
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGES = ("decode", "preprocess", "decode_start", "decode_wait", "encode", "asr", "ocr", "caption",
          "metadata", "index_build", "query_encode", "search", "llm")


@dataclass
class StageTotals:
    wall_s: float = 0.0
    cpu_s: float = 0.0
    calls: int = 0
    items: int = 0
    video_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        out = {"wall_s": self.wall_s, "cpu_s": self.cpu_s, "calls": float(self.calls),
               "items": float(self.items), "video_s": self.video_s}
        if self.items and self.wall_s > 0:
            out["items_per_s"] = self.items / self.wall_s
        if self.video_s and self.wall_s > 0:
            out["video_s_per_wall_s"] = self.video_s / self.wall_s
        return out


@dataclass
class TimingRecorder:
    """Accumulates stage totals and per-query latencies for one run."""

    stages: dict[str, StageTotals] = field(default_factory=dict)
    query_latencies_s: list[float] = field(default_factory=list)
    peak_cuda_bytes: int | None = None
    """The most bytes torch held on the GPU during the run (``torch.cuda.max_memory_allocated``
    since :func:`recording` began); None when CUDA was not used."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, wall_s: float, cpu_s: float, items: int, video_s: float) -> None:
        with self._lock:  # stages may be timed in several threads at once (encoder workers)
            tot = self.stages.setdefault(name, StageTotals())
            tot.wall_s += wall_s
            tot.cpu_s += cpu_s
            tot.calls += 1
            tot.items += items
            tot.video_s += video_s

    def as_dict(self) -> dict[str, Any]:
        return {"stages": {k: v.as_dict() for k, v in sorted(self.stages.items())},
                "peak_cuda_bytes": self.peak_cuda_bytes}


_current: contextvars.ContextVar[TimingRecorder | None] = contextvars.ContextVar(
    "bench_timing", default=None)


@contextmanager
def recording(recorder: TimingRecorder) -> Iterator[TimingRecorder]:
    """Make ``recorder`` the target of every ``stage`` inside the block."""
    from bench.devices import peak_cuda_bytes, reset_peak_cuda_bytes

    reset_peak_cuda_bytes()
    token = _current.set(recorder)
    try:
        yield recorder
    finally:
        _current.reset(token)
        _cuda_sync()
        peak = peak_cuda_bytes()
        if peak is not None:
            recorder.peak_cuda_bytes = max(recorder.peak_cuda_bytes or 0, peak)


def current() -> TimingRecorder | None:
    return _current.get()


def _cuda_sync() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


@contextmanager
def stage(name: str, *, items: int = 0, video_s: float = 0.0) -> Iterator[None]:
    """Time a block as stage ``name``; CUDA work is synchronized at both ends, so a stage's
    wall time includes the GPU work it queued (kernels run asynchronously to the host)."""
    rec = _current.get()
    if rec is None:
        yield
        return
    _cuda_sync()
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        _cuda_sync()
        rec.add(name, time.perf_counter() - t0, time.process_time() - c0, items, video_s)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far.

    On Linux this is ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` would also count the
    parent's memory when this process was started by a large one (the high-water mark of
    the address space replaced at exec is carried over). Elsewhere ``ru_maxrss`` (KiB on
    Linux, bytes on macOS)."""
    import resource

    try:
        with Path("/proc/self/status").open(encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if os.uname().sysname == "Darwin" else 1024)
