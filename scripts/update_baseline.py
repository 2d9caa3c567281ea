"""Re-measure the CI regression baseline on synthetic-v1 and write tests/baseline/synthetic-v1.json.

Run after an intended change of retrieval quality, review the diff, and commit it:

    python scripts/update_baseline.py            # runs the gate configurations offline

The gate holds the configurations that run without a model hub: BM25, dense and their
fusion over real transcripts and OCR, and the random-init visual models, whose numbers
are held only to catch code changes (the baseline labels them so).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GATE = ("bm25-text", "dense-text-minilm", "fusion-text", "clip-frames-tiny", "xclip-clips-tiny")
METRICS = ["R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "mIoU", "mAP",
           "video-R@1", "video-R@10", "moment-R@1@0.5", "moment-R@10@0.5"]
BASELINE = ROOT / "tests" / "baseline" / "synthetic-v1.json"


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BASELINE)
    parser.add_argument("--dataset", default="synthetic-v1",
                        help="the set's name, or a folder holding a build of it (default: synthetic-v1)")
    args = parser.parse_args()
    from bench.eval.regression import make_baseline
    from bench.eval.runner import run

    with tempfile.TemporaryDirectory() as tmp:
        results = run([args.dataset], list(GATE), out=Path(tmp), device="cpu", progress=True)
        bad = [r for r in results if r.status != "ok"]
        if bad:
            for r in bad:
                print(f"{r.retriever} [{r.mode}]: {r.status}: {r.reason}", file=sys.stderr)
            return 1
        make_baseline(Path(tmp), args.out, metrics=METRICS)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
