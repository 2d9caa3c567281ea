"""Grounding metrics of each family under each extent strategy (how hits snap to shots, scenes
and speech turns), on one or more query sets; indexes once, then searches per strategy.

    python scripts/extent_report.py --dataset DIR [--dataset DIR2] [--retriever R]... [--json OUT]

Strategies: ``curve`` (each hit keeps its own extent, the behaviour before snapping), ``turn``,
``shot``, ``scene`` (that granularity, else the hit's own extent) and ``default`` (the
configuration's ``extent`` block). ``--stretch`` adds the default order at other
``max_stretch`` values (how the default was chosen on synthetic-v1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METRICS = ("R1@0.5", "R1@0.7", "mIoU", "mAP")
STRATEGIES: dict[str, dict[str, Any]] = {
    "curve": {"use": ["curve"]},
    "turn": {"use": ["turn", "curve"]},
    "shot": {"use": ["shot", "curve"]},
    "scene": {"use": ["scene", "curve"]},
    "default": {},
}


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", required=True)
    parser.add_argument("--retriever", action="append", default=None)
    parser.add_argument("--stretch", type=float, action="append", default=[])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    from bench.datasets import resolve_dataset
    from bench.engine.extent import ExtentConfig, VideoExtents, corpus_segments
    from bench.eval.metrics import by_tag, grounding_metrics
    from bench.eval.runner import local_videos
    from bench.types import Prediction, QueryInput
    from bench.workspace import Workspace

    names = args.retriever or ["bm25-text", "dense-text-minilm", "fusion-text"]
    strategies = dict(STRATEGIES)
    for s in args.stretch:
        strategies[f"default, max_stretch {s:g}"] = {"max_stretch": s}
    ws = Workspace(device="cpu")
    rows: list[dict[str, Any]] = []
    for spec in args.dataset:
        qs = resolve_dataset(spec)
        videos = local_videos(qs)
        queries = [q for q in qs.queries if q.vid is not None and q.relevant_windows]
        for name in names:
            ws.index(name, videos)
        # Leaf families own their extents; a fusion's members are among them.
        leaves = {n: ws.retriever(n) for n in ws.loaded() if getattr(ws.retriever(n), "extents", None)}
        base = {n: r.extents for n, r in leaves.items()}  # type: ignore[attr-defined]
        for label, change in strategies.items():
            for n, r in leaves.items():
                cfg = base[n].config.model_copy(update=change) if change else base[n].config
                cfg = ExtentConfig.model_validate(cfg.model_dump())
                corpus = getattr(r, "corpus", None)
                segs = corpus_segments(corpus.windows) if hasattr(corpus, "windows") else None
                r.extents = VideoExtents.build(cfg, videos, ws.store, segs)  # type: ignore[attr-defined]
            for name in names:
                preds = {}
                by_vid: dict[str, list[Any]] = {}
                for q in queries:
                    by_vid.setdefault(str(q.vid), []).append(q)
                for vid, group in by_vid.items():
                    got, _ = ws.search(name, videos, [QueryInput.from_query(q, qs.root) for q in group],
                                       top_k=10, vids=[vid])
                    for q, res in zip(group, got, strict=True):
                        preds[q.qid] = Prediction.from_moments(q, res.moments)
                overall = grounding_metrics(queries, preds)
                tags = by_tag(queries, preds, grounding_metrics)
                row = {"dataset": qs.name, "retriever": name, "strategy": label,
                       **{k: overall[k] for k in METRICS},
                       "by_tag": {t: {k: m[k] for k in METRICS} for t, m in tags.items()}}
                rows.append(row)
                print(f"{qs.name:24s} {name:20s} {label:26s} "
                      + " ".join(f"{k} {row[k]:.3f}" for k in METRICS)
                      + "  | " + " ".join(f"{t} {m['R1@0.5']:.3f}" for t, m in row["by_tag"].items()),
                      flush=True)
        for n, r in leaves.items():
            r.extents = base[n]  # type: ignore[attr-defined]
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    if args.markdown is not None:
        args.markdown.write_text(markdown(rows), encoding="utf-8")
    return 0


def markdown(rows: list[dict[str, Any]]) -> str:
    """One table per set: every family and strategy, with R1@0.5 per tag."""
    out: list[str] = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        part = [r for r in rows if r["dataset"] == name]
        tags = sorted({t for r in part for t in r["by_tag"]})
        out += [f"### {name}", "", "| retriever | strategy | " + " | ".join(METRICS) + " | "
                + " | ".join(f"{t} R1@0.5" for t in tags) + " |",
                "|---|---|" + "---:|" * (len(METRICS) + len(tags))]
        for r in part:
            cells = [f"{r[k]:.3f}" for k in METRICS]
            cells += [f"{r['by_tag'][t]['R1@0.5']:.3f}" if t in r["by_tag"] else "–" for t in tags]
            out.append(f"| {r['retriever']} | {r['strategy']} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
