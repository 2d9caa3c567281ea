"""The Ray indexing engine against the local engine on the same work, on this machine.

A library of distinct 480p clips is indexed with clip-frames (a random-init model of the
openai/clip-vit-base-patch32 architecture: throughput equals the real weights', the vectors
are noise) into a fresh feature store per run, through ``bench.store.index_videos``:

- ``local``: this process, one ``encode_video`` call per video (what ``index`` does);
- ``ray``: a local Ray cluster of all cores, an actor pool of ``--workers`` actors of
  ``cores / workers`` CPUs each, each building the encoder once (``encoder_recipe``).

The Ray cluster is started once before the runs (its start-up is reported on its own); each
Ray run's wall time includes its actor pool start (model load per actor), so the overhead is
in the figures, not hidden. Runs alternate local / ray for ``--rounds`` rounds; medians.

    python scripts/perf/ray_engine.py            # -> reports/ray_engine-cpu.md
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from visual_index import (  # noqa: E402  (also sets HF_HUB_OFFLINE and TQDM_DISABLE)
    REPO,
    build_model,
    library_clips,
    load_average,
    machine,
    median,
    retriever,
    write_report,
)


def index_once(r: Any, clips: list[Path], engine: Any) -> tuple[float, int]:
    """(wall s, frames) of indexing ``clips`` into a fresh store with ``engine``."""
    from bench.retrievers.workers import encoder_recipe
    from bench.store import FeatureStore, index_videos
    from bench.types import Video

    videos = [Video(vid=p.stem, path=str(p)) for p in clips]
    with tempfile.TemporaryDirectory() as root:
        store = FeatureStore(Path(root))
        store.engine = engine
        t0 = time.perf_counter()
        done = index_videos(store, videos, r.extractor, r.encode_video, desc="library",
                            worker=encoder_recipe(r.config, r.device))
        wall = time.perf_counter() - t0
        if len(done) != len(videos):
            raise SystemExit(f"only {len(done)} of {len(videos)} videos were indexed")
        frames = sum(int((store.load_meta(v, r.extractor) or {})["n_frames"]) for v in done.values())
    return wall, frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "scenebench-ray")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2, help="Ray actors (each cores/workers CPUs)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", type=Path, default=REPO / "scripts" / "perf" / "reports" / "ray_engine-cpu.md")
    args = ap.parse_args()

    import ray

    from bench.store.engines import EngineConfig
    from bench.store.ray_engine import connect

    args.workdir.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    clips = library_clips(args.workdir, args.clips, args.seconds)
    r = retriever(build_model(args.workdir / "clip-b32"), "cpu", args.batch_size)
    cores = os.cpu_count() or 1
    ray_engine = EngineConfig(kind="ray", workers=args.workers, cpus_per_worker=cores / args.workers)
    t0 = time.perf_counter()
    connect(ray_engine)
    start_s = time.perf_counter() - t0
    runs: dict[str, list[tuple[float, int]]] = {"local": [], "ray": []}
    for i in range(args.rounds):
        order = ("local", "ray") if i % 2 == 0 else ("ray", "local")
        for name in order:
            engine = ray_engine if name == "ray" else EngineConfig()
            runs[name].append(index_once(r, clips, engine))
            wall, frames = runs[name][-1]
            print(f"round {i + 1} {name}: {frames} frames in {wall:.1f} s = {frames / wall:.2f} frames/s",
                  file=sys.stderr)
    ray.shutdown()
    load_after = load_average()

    rate = {k: median([f / w for w, f in v]) for k, v in runs.items()}
    info = machine()
    cmd = "python scripts/perf/ray_engine.py " + shlex.join(sys.argv[1:])
    frames = runs["local"][0][1]
    lines = [
        "# Ray indexing engine vs the local engine, on the CPU",
        "",
        f"Command: `{cmd.strip()}`",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores visible, no GPU, shared with other jobs; "
        f"torch {info['torch']} ({info['torch_threads']} intra-op threads in the driver), "
        f"transformers {info['transformers']}, Ray {ray.__version__}, Python {info['python']}.",
        f"Load average (1/5/15 min) before: {load_before}; after: {load_after}.",
        "",
        "Model: random-init `CLIPConfig` of openai/clip-vit-base-patch32, float32; throughput "
        "equals the real weights', the vectors are noise.",
        "",
        f"Work: {args.clips} distinct 480p clips of {args.seconds} s ({frames} frames at 1 fps), "
        f"batch {args.batch_size}, indexed into a fresh feature store per run (hashing, probing, "
        f"decoding, encoding, store writes). Ray: {args.workers} actor(s) of "
        f"{cores / args.workers:g} CPU(s), each run's wall time includes its actor pool start "
        f"(each actor loads the model); the cluster itself started once in {start_s:.1f} s, not "
        f"counted below. Medians over {args.rounds} round(s), order alternating:",
        "",
        "| engine | frames/s | vs local |",
        "|---|---:|---:|",
        f"| local | {rate['local']:.2f} | 100% |",
        f"| ray | {rate['ray']:.2f} | {rate['ray'] / rate['local']:.0%} |",
        "",
        "Per run (wall s):",
        "",
        "| round | local | ray |",
        "|---:|---:|---:|",
    ]
    for i in range(args.rounds):
        lines.append(f"| {i + 1} | {runs['local'][i][0]:.1f} | {runs['ray'][i][0]:.1f} |")
    write_report(args.out, lines)


if __name__ == "__main__":
    main()
