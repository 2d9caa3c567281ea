"""Low-fps decoding: decoding only what the sampled frames need (seeking over the rest) against
decoding every frame, at 720p and 1080p, 0.5/1/2 fps, 1 s and 10 s groups of pictures, and
on a 2-hour 720p video at 1 fps.

Test videos are testsrc2 at 30 fps, H.264 x264 ``veryfast`` (CABAC, 3 B-frames, b-pyramid),
with a fixed group of pictures (``-g``, no scene-cut key frames); the 2-hour video is one encoded
minute (x264's default 250-frame groups) joined 120 times with the concat demuxer. Nothing is
kept: the videos live in ``--workdir`` and are deleted at the end unless ``--keep``.

Per (video, fps): CPU seconds (every thread) and wall seconds of ``sample_frames`` at a 224 px
short side with one decoder thread, for decord and PyAV decoding every frame, PyAV's plan
(decoding from the key frame before each sampled frame, seeking over long skipped stretches),
and ``auto`` (what indexing uses: the cost model picks between the two), with the share of
packets the plan decodes and the seeks it made.

    nice -n 10 python scripts/perf/decode_seek.py --workdir /tmp/dseek
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def make_clip(dst: Path, size: str, seconds: float, gop_frames: int | None,
              bframes: int | None = None) -> Path:
    if dst.exists():
        return dst
    gop = ["-g", str(gop_frames), "-keyint_min", str(gop_frames), "-sc_threshold", "0"] if gop_frames else []
    gop += [] if bframes is None else ["-bf", str(bframes)]
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}", "-c:v", "libx264",
           "-preset", "veryfast", *gop, "-pix_fmt", "yuv420p", "-threads", "2", str(dst))
    return dst


def make_long(work: Path, minutes: int, gop_frames: int | None = None) -> Path:
    tag = "" if gop_frames is None else f"-gop{gop_frames}"
    dst = work / f"long-{minutes}min-720p{tag}.mp4"
    if dst.exists():
        return dst
    minute = make_clip(work / f"minute-720p{tag}.mp4", "1280x720", 60.0, gop_frames)
    listing = work / "concat.txt"
    listing.write_text("".join(f"file '{minute}'\n" for _ in range(minutes)), encoding="utf-8")
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(dst))
    return dst


def measure(path: Path, fps: float, variant: str, until_s: float | None = None) -> dict[str, Any]:
    """Decode ``path`` at ``fps`` with ``variant``; ``until_s`` stops after that video time."""
    import bench.video.pyav_backend as pyav_backend
    from bench.video import sample_frames

    decoder = {"decord-all": "decord", "pyav-all": "pyav", "pyav-plan": "pyav", "auto": "auto"}[variant]
    real_plan = pyav_backend.decode_plan
    if variant == "pyav-all":
        pyav_backend.decode_plan = lambda *a: None  # type: ignore[assignment]
    seeks0 = pyav_backend._SEEKS[0]
    used: set[str] = set()
    frames = 0
    t0, c0 = time.perf_counter(), cpu_s()
    try:
        for batch in sample_frames(path, fps, short_side=224, decoder=decoder, threads=1, batch_size=32):
            used.add(batch.decoder)
            frames += len(batch)
            if until_s is not None and batch.times_s[-1] >= until_s:
                break
    finally:
        pyav_backend.decode_plan = real_plan
    return {"variant": variant, "fps": fps, "frames": frames, "cpu_s": cpu_s() - c0,
            "wall_s": time.perf_counter() - t0, "seeks": pyav_backend._SEEKS[0] - seeks0,
            "decoder": "+".join(sorted(used))}


def fixed_costs(path: Path, fps: float) -> dict[str, float]:
    """CPU seconds of the per-file work that does not shrink with the sampling: probing, the
    packet list (read without decoding), the plan, and decord opening the file and matching
    its frame index to the packet times."""
    import bench.video.decord_backend as decord_backend
    import bench.video.pyav_backend as pyav_backend
    from bench.video import frame_times, probe

    out: dict[str, float] = {}
    c0 = cpu_s()
    info = probe(path)
    out["probe_cpu_s"] = cpu_s() - c0
    c0 = cpu_s()
    times = frame_times(path)
    out["packet_list_cpu_s"] = cpu_s() - c0
    c0 = cpu_s()
    pyav_backend.sampling_plan(path, info, fps)
    out["plan_cpu_s"] = cpu_s() - c0
    c0 = cpu_s()
    vr = decord_backend._open_decord(path, 224, 224, 1)
    decord_backend._decord_index(vr, times, path)
    out["decord_open_and_index_cpu_s"] = cpu_s() - c0
    return out


def plan_share(path: Path, fps: float) -> float | None:
    import bench.video.pyav_backend as pyav_backend
    from bench.video import probe

    planned = pyav_backend.sampling_plan(path, probe(path), fps)
    return None if planned is None else pyav_backend.planned_share(planned[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/dseek"))
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the matrix videos")
    ap.add_argument("--long-minutes", type=int, default=120)
    ap.add_argument("--long-gop", type=int, default=None,
                    help="frames per group of pictures of the long video (default: x264's, 250)")
    ap.add_argument("--long-all-s", type=float, default=1200.0,
                    help="decode-every-frame baselines on the long video stop after this video time")
    ap.add_argument("--variants", nargs="+", default=["decord-all", "pyav-all", "pyav-plan", "auto"])
    ap.add_argument("--long-variants", nargs="*", default=["pyav-plan", "auto"],
                    help="run over the whole long video; the decode-every-frame baselines and the plan "
                         "also run over its first --long-all-s seconds")
    ap.add_argument("--bframes", type=int, default=None, help="x264 B-frames of the matrix videos")
    ap.add_argument("--sizes", nargs="+", default=["720p", "1080p"])
    ap.add_argument("--long-fixed", action="store_true",
                    help="first measure the per-file work (probe, packet list, plan, decord's index)")
    ap.add_argument("--skip-matrix", action="store_true")
    ap.add_argument("--skip-long", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", type=Path, default=REPO / "scripts/perf/reports/decode_seek.json")
    args = ap.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    if not args.skip_matrix:
        bf = "" if args.bframes is None else f", {args.bframes} B-frames"
        for label, size in (("720p", "1280x720"), ("1080p", "1920x1080")):
            if label not in args.sizes:
                continue
            for gop_s in (1, 10):
                clip = make_clip(work / f"{label}-gop{gop_s}-bf{args.bframes}.mp4", size, args.seconds,
                                 30 * gop_s, args.bframes)
                for fps in (0.5, 1.0, 2.0):
                    share = plan_share(clip, fps)
                    for variant in args.variants:
                        row = {"video": f"{label}, {gop_s} s GOP{bf}, {args.seconds:.0f} s",
                               "plan_share": share, **measure(clip, fps, variant)}
                        rows.append(row)
                        print(json.dumps(row), file=sys.stderr, flush=True)
                        write(args.json, rows, load_before)
    if not args.skip_long:
        long = make_long(work, args.long_minutes, args.long_gop)
        gop = "x264 default GOP (250)" if args.long_gop is None else f"GOP {args.long_gop}"
        label = f"720p, {gop}, {args.long_minutes} min"
        if args.long_fixed:
            row = {"video": label, "fixed": fixed_costs(long, 1.0)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            write(args.json, rows, load_before)
        share = plan_share(long, 1.0)
        # The first --long-all-s seconds first (plan and baselines side by side), then the
        # whole video: a run stopped part-way still has the comparison.
        baselines = [x for x in args.variants if x.endswith("-all")]
        runs: list[tuple[str, float | None]] = [(v, args.long_all_s) for v in ("pyav-plan", *baselines)]
        runs += [(v, None) for v in args.long_variants]
        for variant, until in runs:
            row = {"video": label, "plan_share": share, "until_s": until,
                   **measure(long, 1.0, variant, until)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            write(args.json, rows, load_before)
    write(args.json, rows, load_before)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def write(path: Path, rows: list[dict[str, Any]], load_before: str) -> None:
    result = {"command": "nice -n 10 python " + shlex.join(["scripts/perf/decode_seek.py", *sys.argv[1:]]),
              "load_before": load_before, "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()),
              "rows": rows}
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
