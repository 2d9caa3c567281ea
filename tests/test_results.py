"""Result files: round trip, migrations of old schema versions, refusal of newer ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.errors import BadInput
from bench.eval.results import (
    RESULT_SCHEMA_VERSION,
    ResultFile,
    iter_results,
    load_result,
    parse_result,
    result_path,
    save_result,
)

OLD = Path(__file__).parent / "data" / "results_v1"


def test_v1_file_kept_in_tests_still_loads():
    r = load_result(OLD / "bm25-text" / "1" / "synthetic-v1" / "test.json")
    assert r.schema_version == RESULT_SCHEMA_VERSION
    assert r.mode == "grounding"
    assert r.metrics["R1@0.5"] == pytest.approx(2 / 3)
    assert r.metrics_by_tag == {"speech": {"R1@0.5": 1.0}}
    assert r.metrics_by_lang == {"en": {"R1@0.5": 0.5}}
    assert r.random_init is False


def test_round_trip_and_layout(tmp_path):
    r = ResultFile(retriever="clip-frames-tiny", family="clip-frames", config_revision="2",
                   dataset="synthetic-v1", split="test", mode="corpus", status="ok",
                   metrics={"video-R@1": 0.25},
                   provenance={"retriever": {"models": [{"id": "tiny:clip", "random_init": True}]}})
    path = save_result(tmp_path, r, [{"qid": 1, "pred_relevant_windows": []}])
    assert path == result_path(tmp_path, r)
    assert path.relative_to(tmp_path).as_posix() == "clip-frames-tiny/2/synthetic-v1/test-corpus.json"
    assert (path.parent / "test-corpus.predictions.jsonl").is_file()
    back = load_result(path)
    assert back == r
    assert back.random_init is True


def test_newer_schema_is_refused_not_misread(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"schema_version": RESULT_SCHEMA_VERSION + 1, "retriever": "x"}))
    with pytest.raises(BadInput, match="newer than this SceneBench"):
        load_result(p)


def test_corrupt_and_foreign_files_are_reported_and_skipped(tmp_path, caplog):
    good = ResultFile(retriever="a", family="bm25-text", config_revision="1", dataset="d",
                      split="test", status="ok")
    save_result(tmp_path, good)
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "foreign.json").write_text(json.dumps({"hello": 1}))
    found = [r for _, r in iter_results(tmp_path)]
    assert found == [good]
    text = caplog.text
    assert "broken.json: unreadable result file" in text
    assert "foreign.json: not a SceneBench result file" in text


def test_v2_document_migrates_with_no_backend_failures_counted():
    doc = {"schema_version": 2, "retriever": "bm25-text", "family": "bm25-text", "config_revision": "1",
           "dataset": "synthetic-v1", "split": "test", "mode": "grounding", "status": "ok",
           "metrics": {"R1@0.5": 0.5}, "query_errors": {"q1": "x"}}
    r = parse_result(doc)
    assert r.schema_version == RESULT_SCHEMA_VERSION == 5
    assert r.backend_failures == 0 and r.query_errors == {"q1": "x"}
    assert r.calibration is None  # v2 and v3 runs chose no confidence threshold
