"""CPU cost of sampling frames: decord vs PyAV, decoder threads, and decoding only what the
sampled frames need.

For each source video (the H.264 sources of ``visual_index.py``) and sampling rate, the CPU
seconds (every thread of the process) per sampled frame of ``sample_frames`` at 224 px short
side with: decord (FFmpeg's threads, one thread), PyAV decoding every packet (one thread),
and PyAV with its decode plan (skips the rest of a group of pictures after its last sampled
frame and frames nothing refers to; FFmpeg's threads, one thread). Frames are the same in
every PyAV row (``tests/test_video.py`` checks it); decord scales with its own filter.

    python scripts/perf/decode_cost.py            # -> reports/decode_cost.md
"""

from __future__ import annotations

import argparse
import resource
import shlex
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cost(path: Path, fps: float, decoder: str, threads: int, plan: bool,
         repeats: int) -> tuple[float, float, int]:
    """(CPU ms per sampled frame, wall ms per sampled frame, frames): the best of ``repeats``."""
    import bench.video.pyav_backend as pyav_backend
    from bench.video import sample_frames

    real = pyav_backend.decode_plan
    best: tuple[float, float, int] | None = None
    for _ in range(repeats):
        if not plan:
            pyav_backend.decode_plan = lambda *a: None  # type: ignore[assignment]
        try:
            c0, t0 = cpu_s(), time.perf_counter()
            batches = sample_frames(path, fps, short_side=224, decoder=decoder, threads=threads)
            n = sum(len(b) for b in batches)
            cpu, wall = cpu_s() - c0, time.perf_counter() - t0
        finally:
            pyav_backend.decode_plan = real
        row = (1000 * cpu / n, 1000 * wall / n, n)
        best = row if best is None or row[0] < best[0] else best
    assert best is not None
    return best


def main() -> None:
    import visual_index

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--fps", type=float, nargs="+", default=[1.0, 0.2])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/scenebench-perf"))
    ap.add_argument("--out", type=Path, default=REPO / "scripts" / "perf" / "reports" / "decode_cost.md")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    variants: list[tuple[str, str, int, bool]] = [
        ("decord, FFmpeg threads", "decord", 0, True), ("decord, 1 thread", "decord", 1, True),
        ("PyAV whole, 1 thread", "pyav", 1, False),
        ("PyAV planned, FFmpeg threads", "pyav", 0, True), ("PyAV planned, 1 thread", "pyav", 1, True)]
    rows: list[dict[str, Any]] = []
    for name in visual_index.SOURCES:
        video = visual_index.source_video(args.workdir, name, args.seconds)
        for fps in args.fps:
            for label, decoder, threads, plan in variants:
                cpu, wall, n = cost(video, fps, decoder, threads, plan, args.repeats)
                rows.append({"source": name, "fps": fps, "variant": label, "cpu": cpu, "wall": wall, "n": n})
                print(f"{name} {fps} fps {label}: {cpu:.1f} CPU ms, {wall:.1f} wall ms per frame",
                      file=sys.stderr)
    m = visual_index.machine()
    command = "python " + " ".join(shlex.quote(a) for a in ["scripts/perf/decode_cost.py", *sys.argv[1:]])
    lines = ["# Decoding cost per sampled frame", "", f"Command: `{command}`", "",
             f"Machine: {m['cpu']}, {m['cores']} cores visible, Python {m['python']}. Load average before "
             f"the report was written: {visual_index.load_average()}.", "",
             f"Videos: {args.seconds} s of testsrc2 at 30 fps, H.264 (" + "; ".join(
                 f"{k}: {w}x{h}, x264 {preset}, GOP {gop}" for k, (w, h, preset, gop) in
                 visual_index.SOURCES.items()) + "); frames scaled to 224 px short side. Best of "
             f"{args.repeats} runs; CPU counts every thread.", "",
             "| source | fps | variant | CPU ms / frame | wall ms / frame | frames |",
             "|---|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['source']} | {r['fps']:g} | {r['variant']} | {r['cpu']:.1f} | {r['wall']:.1f} | "
                     f"{r['n']} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
