"""How well a configuration's confidence threshold holds on queries it was not chosen on: the
threshold is chosen on each of many seeded calibration splits, and measured on the other side.

    python scripts/calibration_splits.py --dataset DIR [--retriever NAME]... [--seeds 200]
        [--setting MAX_FALSE_ALARM:BANDWIDTH]... [--scores]

Each configuration searches every query of the set once (grounding in its video, as
``bench run`` does); then for every setting (the calibration split's false-alarm target and
the kernel bandwidth, 0 = counted values) and every seed 0 .. N-1, ``calibrate`` chooses the
threshold on that seed's calibration half and ``false_alarm`` and ``confident_hit@0.5`` are
measured on its held-out half. Prints one Markdown table (seed 0 is what ``bench run`` reports);
``--scores`` adds, per configuration, the top moments' values of seed 0's absent queries by
language and side.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_FALSE_ALARM = 0.2
DEFAULT_SETTINGS = ("0.1:0", "0.1:1", "0.05:0", "0.05:1")


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="a set with absent queries (name or directory)")
    parser.add_argument("--retriever", action="append",
                        help="configurations (default: fusion-text-multilingual, fusion-text)")
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--scores", action="store_true",
                        help="also list seed 0's absent top values by language and side")
    parser.add_argument("--setting", action="append",
                        help=f"MAX_FALSE_ALARM:BANDWIDTH (default: {' '.join(DEFAULT_SETTINGS)})")
    args = parser.parse_args()

    from bench import timing
    from bench.datasets import resolve_dataset
    from bench.eval.calibration import calibrate, confidence_metrics, signals, split, top_hit
    from bench.eval.runner import local_videos, search_queries
    from bench.retrievers import get_config
    from bench.types import QID, Moment
    from bench.workspace import Workspace

    qs = resolve_dataset(args.dataset)
    queries = [q for q in qs.queries if q.vid is not None]
    videos = local_videos(qs)
    workspace = Workspace(device="cpu")
    settings = [tuple(float(x) for x in s.split(":")) for s in args.setting or DEFAULT_SETTINGS]
    print(f"{qs.name}: {len(queries)} queries, {sum(q.is_absent for q in queries)} absent; "
          f"{args.seeds} seeded splits (seeds 0 .. {args.seeds - 1}); held-out false_alarm "
          f"target {TARGET_FALSE_ALARM}\n")
    print("| configuration | R1@0.5 | max_false_alarm | bandwidth | false_alarm mean | p90 "
          f"| splits over {TARGET_FALSE_ALARM} | confident_hit@0.5 mean | min | seed 0 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    notes: list[str] = []
    for name in args.retriever or ["fusion-text-multilingual", "fusion-text"]:
        cfg = get_config(name)
        tops: dict[QID, Moment | None] = {}
        preds = search_queries(workspace, cfg, videos, qs, queries, "grounding", 10,
                               timing.TimingRecorder(), {}, False, None, tops)
        by_qid = {p.qid: p for p in preds}
        if args.scores:
            calibration_side = {q.qid for q in split(queries)[0]}
            notes.append(f"\n`{name}`, seed 0: absent queries' top values per signal "
                         "(calibration side | held-out side)\n")
            for lang in sorted({q.lang or "-" for q in queries if q.is_absent}):
                values: dict[str, tuple[list[float], list[float]]] = {}
                for q in queries:
                    top = tops.get(q.qid)
                    if not q.is_absent or (q.lang or "-") != lang or top is None:
                        continue
                    for sig, v in signals(top).items():
                        values.setdefault(sig, ([], []))[q.qid not in calibration_side].append(v)
                for sig, (cal_v, held_v) in sorted(values.items()):
                    notes.append(f"- {lang} {sig}: "
                                 f"{' '.join(f'{v:.2f}' for v in sorted(cal_v))} | "
                                 f"{' '.join(f'{v:.2f}' for v in sorted(held_v))}")
        present = [q for q in queries if not q.is_absent and q.relevant_windows]
        r1 = float(np.mean([top_hit(q, by_qid.get(q.qid)) for q in present]))
        for max_false_alarm, bandwidth in settings:
            fa, ch = [], []
            for seed in range(args.seeds):
                cal, held_out = calibrate(queries, by_qid, tops, seed=seed,
                                          max_false_alarm=max_false_alarm, bandwidth=bandwidth)
                got = confidence_metrics(held_out, by_qid, tops, cal)
                fa.append(got.get("false_alarm", float("nan")))
                ch.append(got.get("confident_hit@0.5", float("nan")))
            fa_a, ch_a = np.asarray(fa), np.asarray(ch)
            print(f"| `{name}` | {r1:.3f} | {max_false_alarm:g} | {bandwidth:g} "
                  f"| {np.nanmean(fa_a):.3f} | {np.nanpercentile(fa_a, 90):.3f} "
                  f"| {np.mean(fa_a > TARGET_FALSE_ALARM + 1e-9):.1%} | {np.nanmean(ch_a):.3f} "
                  f"| {np.nanmin(ch_a):.3f} | {fa[0]:.3f}, {ch[0]:.3f} |", flush=True)
    print("\n".join(notes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
