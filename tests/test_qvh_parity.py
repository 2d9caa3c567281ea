"""QVHighlights parity: our evaluation of the official sample predictions equals the official metrics file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.datasets.io import load_predictions, load_queries
from bench.eval.evaluate import QVH_BRIEF_ORDER, evaluate_files, evaluate_predictions

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "qvhighlights"
GT = DATA / "highlight_val_release.jsonl"
PRED = DATA / "sample_val_preds.jsonl"
OFFICIAL = DATA / "sample_val_preds_metrics_official.json"


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    if not (GT.is_file() and PRED.is_file() and OFFICIAL.is_file()):
        pytest.skip(f"QVHighlights sample files not found under {DATA}")
    return evaluate_files(GT, PRED)


def test_every_official_number_matches(result: dict[str, Any]) -> None:
    official = json.loads(OFFICIAL.read_text(encoding="utf-8"))
    assert result["qvhighlights"] == official
    assert list(result["qvhighlights"]) == list(official)
    assert list(result["qvhighlights"]["brief"]) == list(official["brief"])


def test_brief_keys_at_top_level(result: dict[str, Any]) -> None:
    official = json.loads(OFFICIAL.read_text(encoding="utf-8"))
    assert [k for k in result if k in QVH_BRIEF_ORDER] == list(QVH_BRIEF_ORDER)
    assert {k: result[k] for k in QVH_BRIEF_ORDER} == official["brief"]
    assert result["n_queries"] == 1550


def test_fraction_keys_agree_with_official_percent(result: dict[str, Any]) -> None:
    # The same R1 and mAP, unrounded fractions against the official rounded percent.
    assert round(100 * result["R1@0.5"], 2) == result["MR-full-R1@0.5"]
    assert round(100 * result["R1@0.7"], 2) == result["MR-full-R1@0.7"]
    assert round(100 * result["mAP"], 2) == result["MR-full-mAP"]
    assert 0.0 <= result["mIoU"] <= 1.0


def test_subset_predictions_match_evaluating_the_subset(result: dict[str, Any]) -> None:
    # require_all=False scores only predicted queries, as the official match_number=False does.
    queries = load_queries(GT)[:200]
    predictions = load_predictions(PRED)[:100]
    partial = evaluate_predictions(queries, predictions, require_all=False)
    subset = evaluate_predictions(queries[:100], predictions)
    assert partial["n_unpredicted"] == 100
    partial.pop("n_unpredicted")
    assert partial == subset
