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


def index_once(r: Any, clips: list[Path], engine: Any) -> dict[str, float]:
    """Indexing ``clips`` into a fresh store with ``engine``: wall s, frames, and the time
    each video's artefact was registered (so start-up and steady rate can be told apart)."""
    from bench.retrievers.workers import encoder_recipe
    from bench.store import FeatureStore, index_videos
    from bench.types import Video

    videos = [Video(vid=p.stem, path=str(p)) for p in clips]
    with tempfile.TemporaryDirectory() as root:
        store = FeatureStore(Path(root))
        store.engine = engine
        arrivals: list[tuple[float, str]] = []
        real = store.register  # every artefact goes through it (local saves call it too)

        def timed(video_id: str, *a: Any, **k: Any) -> Any:
            out = real(video_id, *a, **k)
            arrivals.append((time.perf_counter(), video_id))
            return out

        store.register = timed  # type: ignore[method-assign]
        t0 = time.perf_counter()
        done = index_videos(store, videos, r.extractor, r.encode_video, desc="library",
                            worker=encoder_recipe(r.config, r.device))
        wall = time.perf_counter() - t0
        if len(done) != len(videos):
            raise SystemExit(f"only {len(done)} of {len(videos)} videos were indexed")
        n = {v: int((store.load_meta(v, r.extractor) or {})["n_frames"]) for v in done.values()}
    first_s = arrivals[0][0] - t0
    steady_s = arrivals[-1][0] - arrivals[0][0]
    steady_frames = sum(n[v] for _, v in arrivals[1:])
    return {"wall_s": wall, "frames": sum(n.values()), "first_s": first_s,
            "steady": steady_frames / steady_s if steady_s > 0 else float("nan")}


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
    runs: dict[str, list[dict[str, float]]] = {"local": [], "ray": []}
    for i in range(args.rounds):
        order = ("local", "ray") if i % 2 == 0 else ("ray", "local")
        for name in order:
            engine = ray_engine if name == "ray" else EngineConfig()
            runs[name].append(index_once(r, clips, engine))
            got = runs[name][-1]
            print(f"round {i + 1} {name}: {got}", file=sys.stderr)
    ray.shutdown()
    load_after = load_average()

    rate = {k: median([x["frames"] / x["wall_s"] for x in v]) for k, v in runs.items()}
    steady = {k: median([x["steady"] for x in v]) for k, v in runs.items()}
    first = {k: median([x["first_s"] for x in v]) for k, v in runs.items()}
    info = machine()
    cmd = "python scripts/perf/ray_engine.py " + shlex.join(sys.argv[1:])
    frames = int(runs["local"][0]["frames"])
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
        "- end to end: all frames / wall time of the run;",
        "- first video: seconds until the first video's features were in the store (Ray: the "
        "actor pool start and model load are in it);",
        "- steady: frames of the other videos / time from the first video's features to the "
        "last's (the rate once everything is running).",
        "",
        "| engine | end to end, frames/s | vs local | first video, s | steady, frames/s | vs local |",
        "|---|---:|---:|---:|---:|---:|",
        f"| local | {rate['local']:.2f} | 100% | {first['local']:.1f} | {steady['local']:.2f} | 100% |",
        f"| ray | {rate['ray']:.2f} | {rate['ray'] / rate['local']:.0%} | {first['ray']:.1f} | "
        f"{steady['ray']:.2f} | {steady['ray'] / steady['local']:.0%} |",
        "",
        "Per run:",
        "",
        "| round | engine | wall s | first video s | steady frames/s |",
        "|---:|---|---:|---:|---:|",
    ]
    for i in range(args.rounds):
        for name in ("local", "ray"):
            x = runs[name][i]
            lines.append(f"| {i + 1} | {name} | {x['wall_s']:.1f} | {x['first_s']:.1f} | {x['steady']:.2f} |")
    write_report(args.out, lines)


if __name__ == "__main__":
    main()
