"""Cost of zero-shot tagging from stored features, per video and per embedding family (target:
at most 1 ms, no decoding), written to ``scripts/perf/reports/tagging.md``.

Two measures:

1. the real path (``bench.tagging.zeroshot.tag_videos``) on a tagging set indexed beforehand by
   each configuration (features from the store; the set's videos are 8 s, so few windows each);
   label encoding, once per taxonomy, is reported apart;
2. the per-video step alone (``tag_pooled``: the video's summary, stored at indexing, against
   the labels, the aggregation and the evidence) on arrays of real sizes: 512-d (CLIP ViT-B/32,
   USE) and 768-d (ViT-L/14) vectors, 60 / 600 / 3,600 / 36,000 windows (a 1-minute, 10-minute,
   1-hour and 10-hour video at 1 per second), 40 labels; the summary's one-off cost beside it.

    python scripts/perf/tagging.py --dataset DIR [--rounds 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.datasets import resolve_tagging  # noqa: E402
from bench.eval.tagging import tagging_videos  # noqa: E402
from bench.index.corpus import POOL_ROWS, pool_rows  # noqa: E402
from bench.tagging.zeroshot import AGGREGATIONS, score_windows, tag_pooled, tag_videos  # noqa: E402
from bench.workspace import Workspace  # noqa: E402

CONFIGS = ("dense-text-use-multilingual", "clip-frames-tiny", "xclip-clips-tiny")
REPORT = Path(__file__).resolve().parent / "reports" / "tagging.md"


def real_path(dataset: str, rounds: int) -> list[str]:
    ts = resolve_tagging(dataset)
    videos = tagging_videos(ts)
    ws = Workspace(device="cpu")
    rows = ["| configuration | family | videos | rows scored per video (mean) | label encoding, ms (once) "
            "| tagging, ms per video (median of rounds) | random-init |",
            "|---|---|---:|---:|---:|---:|---|"]
    for name in CONFIGS:
        r = ws.index(name, videos)
        vids = [v.vid for v in videos]
        per_video, encode = [], []
        for _ in range(rounds):
            tagged = tag_videos(r, vids, ts.taxonomy)
            per_video.append(1000.0 * tagged.score_s / len(vids))
            encode.append(1000.0 * tagged.label_encode_s)
        windows = _windows(r, vids)
        random_init = bool(r.provenance().get("random_init")) or "tiny" in name
        rows.append(f"| {name} | {tagged.family} | {len(vids)} | {windows:.1f} | "
                    f"{statistics.median(encode):.1f} | {statistics.median(per_video):.3f} | "
                    f"{'yes' if random_init else 'no'} |")
    return rows


def _windows(r: object, vids: list[str]) -> float:
    from bench.tagging.zeroshot import _window_source, family_of

    source = _window_source(r, family_of(r))  # type: ignore[arg-type]
    counts = [len(got.rows) for v in vids if not isinstance(got := source.pooled(v), str)]
    return float(np.mean(counts)) if counts else 0.0


def array_sizes(rounds: int) -> list[str]:
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    ids = [f"label{j}" for j in range(40)]
    rows = ["| dim | windows | labels | summary at indexing, ms (once) | "
            + " | ".join(f"{a}, ms" for a in AGGREGATIONS) + " | every window (max), ms |",
            "|---:|---:|---:|---:|" + "---:|" * len(AGGREGATIONS) + "---:|"]
    for dim in (512, 768):
        labels = rng.normal(size=(40, dim)).astype(np.float32)
        labels /= np.linalg.norm(labels, axis=1, keepdims=True)
        for n in (60, 600, 3600, 36000):
            vecs = rng.normal(size=(n, dim)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            times_s = np.arange(n, dtype=np.float64)
            # One BLAS thread: a per-video product this small gains nothing from more, and on
            # a loaded shared machine extra threads wait for cores (tens of ms per call).
            few, many = max(rounds // 4, 5), max(rounds, 50)
            with threadpool_limits(1):
                pool_ms = _median_ms(partial(pool_rows, vecs, times_s, times_s), few)
                pooled = pool_rows(vecs, times_s, times_s)
                cells = [_median_ms(partial(tag_pooled, "v", pooled, labels, how, "frame", ids), many)
                         for how in AGGREGATIONS]
                every = _median_ms(partial(score_windows, vecs, labels, "max"), few)
            cols = " | ".join(f"{c:.3f}" for c in cells)
            rows.append(f"| {dim} | {n} | 40 | {pool_ms:.2f} | {cols} | {every:.2f} |")
    return rows


def _median_ms(fn: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(1000.0 * (time.perf_counter() - t0))
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    load = os.getloadavg()
    real = real_path(args.dataset, args.rounds)
    sizes = array_sizes(args.rounds)
    text = "\n".join([
        "# Tagging from stored features: cost per video",
        "",
        f"Command: `python scripts/perf/tagging.py --dataset {args.dataset} --rounds {args.rounds}`",
        "",
        "Machine: 2-core AMD EPYC VM, 24 GiB, no GPU "
        f"({platform.machine()}; load average at start {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}); "
        f"numpy {np.__version__}.",
        "",
        "## The real path on the embedded tagging set",
        "",
        "`tag_videos` over every video of the set, features already in the store (nothing is "
        "decoded); the default aggregation of each family (max for text, top-3 windows for visual). "
        "Random-init models have the architecture of tiny test models, so their windows are few and "
        "small: the second table gives real sizes.",
        "",
        *real,
        "",
        "## The per-video step at real sizes",
        "",
        "Per video, tagging scores the summary stored when the video was indexed "
        f"(`pool_rows`: the first row, the mean row, and at most {POOL_ROWS} run means; a longer "
        "video's windows are averaged in consecutive runs of equal length) against 40 unit label "
        "vectors, then aggregates and writes one line of evidence per label (`tag_pooled`). "
        "`first` and `mean` are exact at any length; `max` and `topk` take the best runs once a "
        f"video has more than {POOL_ROWS} windows. Beside it: the summary's cost, paid once at "
        "indexing, and scoring every window as tagging did before the summary (`score_windows`, max). "
        "Windows: 1 minute, 10 minutes, 1 hour and 10 hours at 1 per second. Medians of repeated "
        "calls, numpy's BLAS limited to one thread (threadpoolctl).",
        "",
        *sizes,
        "",
    ])
    REPORT.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
