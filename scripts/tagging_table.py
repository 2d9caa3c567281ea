"""Zero-shot tagging per configuration and window aggregation on a tagging set, with linear probes
beside them: the table of docs/tagging.md.

Runs each configuration once per aggregation through the harness (``run_tagging``; features come
from the store, so only the first run of a configuration indexes) and prints Markdown: top-1,
top-5 and macro-F1 over all videos, top-1 on the videos whose speech, on-screen text or either
reveals the category, and on those only the picture reveals; then the trained probes (k-fold
mean ± 95% interval). Random-init configurations are run (their code path is checked) but their
figures are never printed.

    python scripts/tagging_table.py --dataset DIR [--retriever NAME ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.datasets import resolve_tagging  # noqa: E402
from bench.eval.tagging import run_tagging  # noqa: E402
from bench.retrievers import get_config  # noqa: E402
from bench.tagging.zeroshot import AGGREGATIONS  # noqa: E402
from bench.workspace import Workspace  # noqa: E402

DEFAULT = ["dense-text-use-multilingual", "bm25-text-whisper-base", "fusion-text-multilingual",
           "clip-frames-tiny", "xclip-clips-tiny"]


def top1_of(result: Any, tags: tuple[str, ...]) -> tuple[float, int]:
    """Top-1 over the videos of any of ``tags`` (their groups are disjoint in the embedded set)."""
    hits = n = 0.0
    for t in tags:
        g = result.metrics_by_tag.get(t)
        if g:
            hits += g["top1"] * g["n"]
            n += g["n"]
    return (hits / n if n else float("nan")), int(n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, help="tagging-set directory or synthetic-tags-v1")
    ap.add_argument("--retriever", nargs="*", default=DEFAULT)
    ap.add_argument("--out", type=Path, default=None, help="write result files here too")
    args = ap.parse_args()
    ts = resolve_tagging(args.dataset)
    ws = Workspace(device="cpu")
    print(f"{ts.name}: {len(ts.videos)} videos, {len(ts.taxonomy.labels)} labels\n")
    print("| configuration | aggregation | top-1 | top-5 | macro-F1 | top-1 speech | top-1 on-screen text "
          "| top-1 speech or text | top-1 picture only |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    probes = []
    for name in args.retriever:
        cfg = get_config(name)
        aggs: tuple[Any, ...] = (None,) if cfg.family in {"fusion", "llm-metadata"} else AGGREGATIONS
        for agg in aggs:
            r = run_tagging(cfg, ts, workspace=ws, out=args.out, aggregation=agg, probe=agg is None
                            or agg == AGGREGATIONS[-1])
            how = r.provenance.get("aggregation", agg or "-")
            if r.probe is not None and "mean" in r.probe and agg in (None, AGGREGATIONS[-1]):
                probes.append((name, r))
            if r.status != "ok":
                print(f"| {name} | {how} | {r.status}: {r.reason} |||||||")
                continue
            if r.random_init:
                print(f"| {name} | {how} | random-init weights: ran, not a result |||||||")
                continue
            m = r.metrics
            cells = [top1_of(r, t) for t in (("speech",), ("onscreen-text",), ("speech", "onscreen-text"),
                                              ("visual",))]
            print(f"| {name} | {how} | {m['top1']:.3f} | {m['top5']:.3f} | {m['macro_f1']:.3f} | "
                  + " | ".join(f"{v:.3f} ({n})" for v, n in cells) + " |")
    print("\nTrained linear probes (logistic regression on each video's mean window embedding, seeded "
          "stratified k-fold; mean ± 95% t-interval over folds):\n")
    print("| configuration | videos | folds | top-1 | top-5 | macro-F1 |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in probes:
        p = r.probe
        if r.random_init:
            print(f"| {name} | {p['n_videos']} | {p['folds']} | random-init weights: not a result |||")
            continue
        cell = " | ".join(f"{p['mean'][k]:.3f} ± {p['ci95'][k]:.3f}" for k in ("top1", "top5", "macro_f1"))
        print(f"| {name} | {p['n_videos']} | {p['folds']} | {cell} |")


if __name__ == "__main__":
    main()
