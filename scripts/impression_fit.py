"""Learn impressions from your ratings: per axis, the combined (``both``) impression regressed
on the music-only and picture-only ones, and, with ``--dataset``, on the features of the rated
videos or windows; 5-fold cross-validation (share within 0.5, RMSE, Pearson) per axis.

The CSV has a header ``item,axis,rating,condition`` (more columns are ignored): ``item`` is
a video id or a window ``vid@start-end`` (seconds), ``axis`` one of C1..C6, valence,
arousal, ``rating`` on -2..+2, ``condition`` music-only, picture-only or both.

    python scripts/impression_fit.py --ratings ratings.csv [--dataset DIR --save model.json] [--json]

``--save`` writes the direct model, for ``params.estimator`` of an ``impression`` configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _design(args: argparse.Namespace, items: set[str]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Mean cues per rated item (a whole video, or the windows inside ``vid@start-end``)."""
    from bench.datasets import resolve_dataset
    from bench.eval.runner import local_videos
    from bench.impression.features import cuts_per_minute
    from bench.impression.prior import cue_matrix
    from bench.workspace import Workspace

    qs = resolve_dataset(args.dataset)
    r = Workspace(device="cpu").index(args.retriever, local_videos(qs))
    names: list[str] = []
    design: dict[str, np.ndarray] = {}
    for item in sorted(items):
        vid, _, span = item.partition("@")
        got = r.videos.get(vid)  # type: ignore[attr-defined]
        if got is None:
            continue
        f = got.features
        bounds = r.extents.get(vid) if r.extents is not None else None  # type: ignore[attr-defined]
        cuts = cuts_per_minute(bounds.units.get("shot") if bounds else None, f.starts_s,
                               r.params.features.window_s)  # type: ignore[attr-defined]
        names, x = cue_matrix(f.audio, f.picture, cuts)
        keep = np.ones(len(x), dtype=bool)
        if span:
            start_s, _, end_s = span.partition("-")
            keep = (f.starts_s >= float(start_s) - 1e-9) & (f.starts_s < float(end_s))
        if keep.any():
            design[item] = x[keep].mean(axis=0)
    return names, design


def _table(title: str, reports: list) -> list[str]:  # type: ignore[type-arg]
    lines = [f"## {title}", "", "| axis | n | coefficients (95 % CI) | within 0.5 | RMSE | Pearson |",
             "|---|---:|---|---:|---:|---:|"]
    for r in reports:
        if r.fit is None or r.cv is None:
            lines.append(f"| {r.axis} | – | {r.reason} | | | |")
            continue
        coef = "; ".join(f"{n} {c:+.2f} [{lo:+.2f}, {hi:+.2f}]"
                         for n, c, lo, hi in zip(r.fit.names, r.fit.coef, r.fit.ci_low, r.fit.ci_high,
                                                 strict=True))
        lines.append(f"| {r.axis} | {r.fit.n} | {coef} | {r.cv.within:.2f} | {r.cv.rmse:.2f} | "
                     f"{r.cv.pearson:.2f} |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratings", type=Path, required=True)
    ap.add_argument("--dataset", help="the rated videos (a set directory or name), for the direct model")
    ap.add_argument("--retriever", default="impression-prior", help="whose features the direct model uses")
    ap.add_argument("--save", type=Path, help="write the direct model here (needs --dataset)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    args = ap.parse_args(argv)

    from bench.errors import BenchError
    from bench.impression.axes import load_axes
    from bench.impression.ratings import DirectModel, fit_conditions, fit_direct, load_ratings

    axes = load_axes()
    try:
        ratings = load_ratings(args.ratings, axes)
        study = fit_conditions(ratings, axes, args.folds)
        direct = None
        if args.dataset:
            names, design = _design(args, {item for item, _, _ in ratings.means})
            direct = fit_direct(ratings, axes, design, names, args.folds)
            if args.save:
                DirectModel.from_reports(direct, names).save(args.save)
        elif args.save:
            print("error: --save needs --dataset (the direct model is fitted on features)", file=sys.stderr)
            return 2
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        doc = {"ratings": str(args.ratings), "conditions": [r.to_dict() for r in study],
               "direct": None if direct is None else [r.to_dict() for r in direct]}
        print(json.dumps(doc, ensure_ascii=False))
        return 0
    lines = _table("both ~ music-only + picture-only", study)
    if direct is not None:
        lines += _table("both ~ features (direct)", direct)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
