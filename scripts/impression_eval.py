"""Impression estimates against the intended moods of a set built for them (e.g.
synthetic-mood-v1): per scene, the mean estimated valence and arousal beside the intended
ones, and their Spearman rank correlations. Writes a JSON report and prints a table.

    python scripts/impression_eval.py --dataset DIR [--retriever impression-prior] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, help="a built set with scenes.jsonl carrying mood")
    ap.add_argument("--retriever", default="impression-prior")
    ap.add_argument("--out", type=Path, help="write the per-scene rows and correlations as JSON")
    ap.add_argument("--features", action="store_true", help="also print the raw features per scene")
    args = ap.parse_args(argv)

    from scipy.stats import spearmanr

    from bench.datasets import resolve_dataset
    from bench.errors import BenchError
    from bench.eval.runner import local_videos
    from bench.workspace import Workspace

    try:
        qs = resolve_dataset(args.dataset)
        root = qs.root or Path(args.dataset)
        lines = (root / "scenes.jsonl").read_text(encoding="utf-8").splitlines()
        scenes = [json.loads(line) for line in lines]
        ws = Workspace(device="cpu")
        r = ws.index(args.retriever, local_videos(qs))
    except (BenchError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    axes = r.axes  # type: ignore[attr-defined]
    iv, ia = axes.index("valence"), axes.index("arousal")
    rows = []
    for s in scenes:
        if not s.get("mood"):
            continue
        centres, est, basis = r.timeline(s["vid"])  # type: ignore[attr-defined]
        inside = (centres >= s["start"]) & (centres < s["end"])
        mean = est[inside].mean(axis=0)
        row = {"vid": s["vid"], "scene": s["scene"], "label": s["mood"].get("label", ""),
               "intended_valence": s["mood"]["valence"], "intended_arousal": s["mood"]["arousal"],
               "valence": round(float(mean[iv]), 3), "arousal": round(float(mean[ia]), 3), "basis": basis}
        if args.features:
            f = r.videos[s["vid"]].features  # type: ignore[attr-defined]
            sel = inside[: len(f.picture)]
            row["picture"] = np.round(f.picture[sel].mean(axis=0), 3).tolist()
            if f.audio is not None:
                row["audio"] = np.round(f.audio[sel].mean(axis=0), 3).tolist()
        rows.append(row)
    out = {"dataset": qs.name, "retriever": args.retriever, "scenes": len(rows)}
    for part, keep in (("all", lambda x: True), ("music+picture", lambda x: x["basis"] == "music+picture")):
        sel = [x for x in rows if keep(x)]
        if len(sel) > 2:
            out[part] = {ax: float(spearmanr([x[f"intended_{ax}"] for x in sel], [x[ax] for x in sel])[0])
                         for ax in ("valence", "arousal")} | {"n": len(sel)}
    print("| vid | scene | mood | valence (intended) | arousal (intended) | basis |")
    print("|---|---:|---|---:|---:|---|")
    for x in rows:
        print(f"| {x['vid']} | {x['scene']} | {x['label']} "
              f"| {x['valence']:+.2f} ({x['intended_valence']:+g}) "
              f"| {x['arousal']:+.2f} ({x['intended_arousal']:+g}) | {x['basis']} |"
              + (f" {x.get('audio')} {x.get('picture')}" if args.features else ""))
    print(json.dumps({k: v for k, v in out.items()}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out | {"rows": rows}, ensure_ascii=False, indent=1) + "\n",
                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
