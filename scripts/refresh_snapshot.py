"""Refresh the committed results snapshot (snapshot/): the leaderboard a fresh Space shows and
the baseline the regression gate holds.

Run after merging a change of retrieval quality, review the diff, and commit it:

    python scripts/refresh_snapshot.py

It runs every real configuration of models/ that loads offline on the snapshot's sets
(chance floors included; configurations whose weights or backend are missing are reported
and left out), plus the random-init gate configurations on the gate's sets, on the CPU, and
replaces their result files in snapshot/ (predictions are not kept: the snapshot stays small).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATASETS = ("synthetic-v1", "synthetic-v2", "synthetic-mood-v1", "synthetic-tags-v1")


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "snapshot")
    parser.add_argument("--dataset", action="append",
                        help=f"a set to run (name or built directory; default: {', '.join(DATASETS)})")
    parser.add_argument("--retriever", action="append",
                        help="only these configurations (default: every real one, plus the gate's)")
    args = parser.parse_args()
    from bench.eval.runner import default_configs, run
    from bench.eval.snapshot import load_policy, refresh

    policy = load_policy(args.out)
    gate = list(policy.configurations) if policy is not None else []
    datasets = args.dataset or list(DATASETS)
    with tempfile.TemporaryDirectory() as tmp:
        if args.retriever:
            results = run(datasets, args.retriever, out=Path(tmp), device="cpu", progress=True)
        else:
            real = [c.name for c in default_configs()]
            # no names: a plain run, which leaves a configuration out of sets it is not made for
            results = run(datasets, [], out=Path(tmp), device="cpu", progress=True)
            tiny = [n for n in gate if n not in real]
            gate_sets = [d for d in datasets if policy is None or Path(d).name in policy.datasets]
            if tiny and gate_sets:
                results += run(gate_sets, tiny, out=Path(tmp), device="cpu", progress=True)
        for r in results:
            if r.status != "ok":
                print(f"left out {r.retriever} on {r.dataset} [{r.mode}]: {r.status}: {r.reason}",
                      file=sys.stderr)
        # only where the gate holds them: a floor has no tagger, so it is unavailable on a tagging set
        held = set(policy.datasets) if policy is not None else set()
        failed_gate = [r for r in results if r.retriever in gate and r.dataset in held and r.status != "ok"]
        if failed_gate:
            print("a gate configuration did not run: the snapshot is left as it was", file=sys.stderr)
            return 1
        ok = {r.retriever for r in results if r.status == "ok"}
        written = refresh(Path(tmp), args.out, keep=sorted(ok), only_ok=True)
    print(f"wrote {len(written)} result files under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
