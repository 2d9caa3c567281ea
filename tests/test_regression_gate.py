"""CI regression gate: the offline configurations on synthetic-v1 must not drop below baseline.

BM25, dense and fusion run on real Whisper transcripts and real OCR of the set; the tiny
random-init visual models are held only to catch code changes. After an intended change
of quality, refresh the baseline with ``python scripts/update_baseline.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bench.eval.regression import compare
from bench.eval.runner import run

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("update_baseline", ROOT / "scripts" / "update_baseline.py")
assert spec is not None and spec.loader is not None
update_baseline = importlib.util.module_from_spec(spec)
spec.loader.exec_module(update_baseline)


def test_offline_configurations_hold_their_baseline(synthetic_v1, tmp_path):
    results = run(["synthetic-v1"], list(update_baseline.GATE), out=tmp_path, device="cpu",
                  progress=False)
    assert {(r.retriever, r.mode) for r in results} == {
        (name, mode) for name in update_baseline.GATE for mode in ("grounding", "corpus")}
    not_ok = [(r.retriever, r.mode, r.reason) for r in results if r.status != "ok"]
    assert not not_ok
    outcome = compare(tmp_path, update_baseline.BASELINE)
    assert outcome.ok, "\n" + outcome.table()
    # the real text retrievers must keep finding speech and on-screen text moments
    by_name = {(r.retriever, r.mode): r for r in results}
    bm25 = by_name[("bm25-text", "grounding")]
    assert bm25.metrics_by_tag["onscreen-text"]["R1@0.5"] > 0.3
    assert bm25.metrics_by_tag["speech"]["R1@0.5"] > 0.3
    tiny = by_name[("clip-frames-tiny", "grounding")]
    assert tiny.random_init and not bm25.random_init
