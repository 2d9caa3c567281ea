"""Leaderboard reports and the regression gate, on hand-made result files."""

from __future__ import annotations

import csv
import json

import pytest

from bench.cli import main
from bench.errors import BadInput
from bench.eval.regression import compare, load_baseline, make_baseline
from bench.eval.report import best_configuration, markdown, write_report
from bench.eval.results import ResultFile, save_result


def result(name, r05, *, status="ok", random_init=False, mode="grounding", reason=None, p50=0.01):
    return ResultFile(
        retriever=name, family="bm25-text", config_revision="1", dataset="synthetic-v1",
        split="test", mode=mode, status=status, reason=reason, n_queries=10,
        metrics={"R1@0.3": r05 + 0.1, "R1@0.5": r05, "R1@0.7": r05 / 2, "R5@0.5": r05 + 0.2,
                 "mIoU": r05 * 0.8, "mAP": r05 * 0.7} if status == "ok" else {},
        metrics_by_tag={"speech": {"R1@0.5": r05}} if status == "ok" else {},
        metrics_by_lang={"en": {"R1@0.5": r05}, "ja": {"R1@0.5": r05 / 3}} if status == "ok" else {},
        timing={"queries": {"p50_s": p50}, "video_s_per_wall_s": 12.0},
        provenance={"retriever": {"models": [{"id": "m", "random_init": random_init}]}},
    )


@pytest.fixture
def results_dir(tmp_path):
    root = tmp_path / "results"
    for r in (result("bm25", 0.5), result("dense", 0.6, p50=0.02),
              result("clip-tiny", 0.9, random_init=True),
              result("llm", 0.0, status="unavailable", reason="set SCENEBENCH_LLM_BASE_URL")):
        save_result(root, r)
    return root


def test_markdown_ranks_real_rows_only(results_dir):
    from bench.eval.report import load_all

    md = markdown(load_all(results_dir))
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert lines[0].startswith("| # | retriever | family | R1@0.5 |")
    body = lines[1:]
    assert body[0].startswith("| 1 | `dense` |")
    assert body[1].startswith("| 2 | `bm25` |")
    # the random-init row scores highest but is never ranked
    assert body[2].startswith("| – | `clip-tiny` |") and "random-init" in body[2]
    assert body[3].startswith("| – | `llm` |") and "unavailable: set SCENEBENCH_LLM_BASE_URL" in body[3]


def test_write_report_files(results_dir, tmp_path):
    paths = write_report(results_dir, tmp_path / "reports")
    names = sorted(p.name for p in paths)
    assert names == ["index.html", "leaderboard.csv", "leaderboard.json", "leaderboard.md"]
    page = (tmp_path / "reports" / "index.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") >= 4  # latency, index, recall, tag, lang plots
    rows = list(csv.DictReader((tmp_path / "reports" / "leaderboard.csv").open(encoding="utf-8")))
    assert [r["retriever"] for r in rows] == ["dense", "bm25", "clip-tiny", "llm"]
    assert rows[0]["rank"] == "1" and rows[2]["rank"] == ""
    assert best_configuration(results_dir) == "dense"


def test_compare_passes_within_tolerance_and_fails_on_drop(results_dir, tmp_path):
    base = make_baseline(results_dir, tmp_path / "baseline.json", metrics=["R1@0.5", "mIoU"])
    doc = json.loads(base.read_text())
    assert {e["retriever"] for e in doc["entries"]} == {"bm25", "dense", "clip-tiny"}
    tiny = next(e for e in doc["entries"] if e["retriever"] == "clip-tiny")
    assert "random-init" in tiny["label"]
    assert compare(results_dir, base).ok
    # a drop of 0.1 on bm25 R1@0.5 is a regression; a small one is not
    save_result(results_dir, result("bm25", 0.4))
    outcome = compare(results_dir, base)
    assert not outcome.ok
    bad = [r for r in outcome.rows if r.status == "regressed"]
    assert {(r.key[0], r.metric) for r in bad} == {("bm25", "R1@0.5"), ("bm25", "mIoU")}
    assert "FAIL: 2 regression(s)" in outcome.table()
    save_result(results_dir, result("bm25", 0.49))
    assert compare(results_dir, base).ok


def test_compare_cli_exit_codes(results_dir, tmp_path, capsys):
    base = make_baseline(results_dir, tmp_path / "b.json")
    assert main(["compare", "--results", str(results_dir), "--baseline", str(base)]) == 0
    assert "PASS: no regression" in capsys.readouterr().out
    save_result(results_dir, result("dense", 0.6, status="failed", reason="boom"))
    assert main(["compare", "--results", str(results_dir), "--baseline", str(base), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False
    assert any(r["status"] == "not-ok" and r["retriever"] == "dense" for r in out["rows"])


def test_missing_result_is_a_regression(results_dir, tmp_path):
    base = make_baseline(results_dir, tmp_path / "b.json")
    (results_dir / "bm25" / "1" / "synthetic-v1" / "test.json").unlink()
    outcome = compare(results_dir, base)
    assert [r.status for r in outcome.rows if r.key[0] == "bm25"] == ["missing"]


def test_newer_baseline_schema_is_refused(tmp_path):
    p = tmp_path / "b.json"
    p.write_text(json.dumps({"schema_version": 99, "entries": []}))
    with pytest.raises(BadInput, match="newer than this SceneBench"):
        load_baseline(p)


def test_only_the_newest_result_of_a_configuration_is_shown(tmp_path):
    from bench.eval.report import group

    old = result("bm25", 0.2).model_copy(update={"config_revision": "1", "created_at": "2026-01-01T00:00:00"})
    new = result("bm25", 0.5).model_copy(update={"config_revision": "2", "created_at": "2026-02-01T00:00:00"})
    rows = group([old, new])[("synthetic-v1", "test")]
    assert [(r.retriever, r.config_revision) for r in rows] == [("bm25", "2")]


def test_gate_refuses_an_empty_or_unreadable_baseline_directory(results_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInput, match="nothing to compare against: it holds no result files"):
        compare(results_dir, empty)
    junk = tmp_path / "junk"
    (junk / "a").mkdir(parents=True)
    (junk / "a" / "test.json").write_text("{not json", encoding="utf-8")
    (junk / "b.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(BadInput, match=r"none of its 2 \.json file\(s\) is a readable result file"):
        compare(results_dir, junk)


def test_gate_refuses_a_baseline_file_without_entries(results_dir, tmp_path):
    p = tmp_path / "b.json"
    p.write_text(json.dumps({"schema_version": 1, "entries": []}))
    with pytest.raises(BadInput, match="the baseline has no entries"):
        compare(results_dir, p)
    p.write_text(json.dumps({"schema_version": 1, "entries": {"x": 1}}))
    with pytest.raises(BadInput, match="'entries' must be a list"):
        compare(results_dir, p)


def test_gate_fails_when_no_metric_was_compared(results_dir, tmp_path):
    p = tmp_path / "b.json"
    entries = [{"retriever": "bm25", "dataset": "synthetic-v1", "split": "test", "status": "ok",
                "metrics": {}}]
    p.write_text(json.dumps({"schema_version": 1, "entries": entries}))
    outcome = compare(results_dir, p)
    assert not outcome.ok and outcome.rows == []
    assert outcome.as_dict() == {"ok": False, "reason": outcome.problem, "rows": []}
    assert "nothing compared" in (outcome.problem or "")
    assert outcome.table().endswith(f"FAIL: {outcome.problem}")


def test_backend_failed_rows_are_never_ranked(results_dir):
    """A row whose backend failed (no metrics, the reason says why) sorts after the ranked ones,
    in the report and in the Space's leaderboard; the best configuration is a real one."""
    from bench.eval.report import group, leaderboard_rows, load_all
    from bench.serving.leaderboard import leaderboard_table

    dead = result("llm-endpoint", 0.0, status="failed",
                  reason="8 of 8 queries failed on the backend (first: http://127.0.0.1:9/v1 ...)")
    dead.backend_failures = 8
    save_result(results_dir, dead)
    rows = group(load_all(results_dir))[("synthetic-v1", "test")]
    flat = {r["retriever"]: r for r in leaderboard_rows(rows)}
    assert flat["llm-endpoint"]["rank"] is None and flat["llm-endpoint"]["main"] is None
    assert flat["llm-endpoint"]["note"].startswith("failed: 8 of 8 queries failed on the backend")
    assert [r["retriever"] for r in leaderboard_rows(rows) if r["rank"]] == ["dense", "bm25"]
    md = markdown(load_all(results_dir))
    assert "| – | `llm-endpoint` |" in md
    _, table = leaderboard_table(rows)
    dead_row = next(r for r in table if r[1] == "llm-endpoint")
    assert dead_row[0] == "–" and dead_row[3] == "–" and "failed on the backend" in dead_row[-1]
    assert best_configuration(results_dir) == "dense"
