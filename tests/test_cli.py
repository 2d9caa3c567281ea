"""Every CLI verb through ``python -m bench`` as a user runs it: exit codes, ``--json`` stdout is
exactly one JSON document (logs and progress bars go to stderr), plain output is text.

Fast on purpose: synthetic-mini (2 videos of 12 s) and the random-init ``clip-frames-tiny``
configuration, indexed once per test session in the shared test cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = "clip-frames-tiny"
pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def bench(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "bench", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def one_json(done: subprocess.CompletedProcess[str]) -> Any:
    """The single JSON document of stdout; fails on anything else there (a log line, a bar,
    a second document)."""
    out = done.stdout
    doc, end = json.JSONDecoder().raw_decode(out)
    assert out[end:].strip() == "", f"more than one JSON document on stdout: {out[end:][:200]!r}"
    assert out.endswith("\n")
    return doc


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, synthetic_mini: Any) -> dict[str, Any]:
    """``run --json`` of the tiny configuration on synthetic-mini, both modes."""
    out = tmp_path_factory.mktemp("cli") / "results"
    done = bench("run", "--dataset", "synthetic-mini", "--retriever", TINY, "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    return {"out": out, "doc": one_json(done), "stderr": done.stderr}


def test_version_and_missing_verb() -> None:
    done = bench("--version")
    assert done.returncode == 0 and done.stdout.startswith("scenebench ")
    done = bench()
    assert done.returncode == 2 and done.stdout == "" and "VERB" in done.stderr
    done = bench("nonsense")
    assert done.returncode == 2 and "invalid choice" in done.stderr


@pytest.mark.parametrize("what", ["retrievers", "datasets"])
def test_list(what: str) -> None:
    doc = one_json(done := bench("list", what, "--json"))
    assert done.returncode == 0
    rows = doc[what]
    assert isinstance(rows, list) and rows
    names = [r["name"] for r in rows]
    assert ("bm25-text" if what == "retrievers" else "synthetic-mini") in names
    plain = bench("list", what)
    assert plain.returncode == 0 and "bm25-text" in plain.stdout if what == "retrievers" else True
    assert not plain.stdout.lstrip().startswith("{")


def test_build_writes_a_query_set(tmp_path: Path, synthetic_mini: Any) -> None:
    out = tmp_path / "mini"
    done = bench("build", "synthetic-mini", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    doc = one_json(done)
    assert doc == {"dataset": "synthetic-mini", "out": str(out), "videos": 2, "queries": doc["queries"]}
    assert doc["queries"] > 0
    assert (out / "queries.jsonl").is_file() and (out / "videos.jsonl").is_file()
    assert len((out / "queries.jsonl").read_text(encoding="utf-8").splitlines()) == doc["queries"]
    bad = bench("build", "no-such-set", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1


def test_index_json_with_verbose_logging(synthetic_mini: Any) -> None:
    # -v turns logging up; stdout must still be the one document, the progress bar on stderr.
    done = bench("-v", "index", "--dataset", "synthetic-mini", "--retriever", TINY, "--device", "cpu",
                 "--json")
    assert done.returncode == 0, done.stderr
    doc = one_json(done)
    assert doc["retriever"] == TINY and doc["videos"] == 2 and doc["wall_s"] >= 0
    assert f"index {TINY}" in done.stderr


def test_search_json_and_bad_input(synthetic_mini: Any) -> None:
    video = str(synthetic_mini.videos["mini01-mission"].resolve(synthetic_mini.root))
    done = bench("search", "--video", video, "--retriever", TINY, "--query", "a red door",
                 "--top-k", "3", "--json")
    assert done.returncode == 0, done.stderr
    doc = one_json(done)
    assert doc["query"] == "a red door" and doc["retriever"] == TINY
    assert 1 <= len(doc["moments"]) <= 3
    assert all(m["vid"] == "mini01-mission" and 0 <= m["start"] < m["end"] for m in doc["moments"])
    scores = [m["score"] for m in doc["moments"]]
    assert scores == sorted(scores, reverse=True)
    empty = bench("search", "--video", video, "--retriever", TINY, "--query", "  ", "--json")
    assert empty.returncode == 2 and empty.stdout == ""
    assert empty.stderr.strip().splitlines()[-1] == "error: give a --query text or an --image to search for"


def test_run_json_is_one_document_with_every_row(ran: dict[str, Any]) -> None:
    rows = ran["doc"]["results"]
    assert {(r["retriever"], r["mode"]) for r in rows} == {(TINY, "grounding"), (TINY, "corpus")}
    for r in rows:
        assert r["status"] == "ok" and r["random_init"] is True
        assert all(0.0 <= v <= 1.0 for v in r["metrics"].values())
        assert {"R1@0.5", "mIoU", "mAP"} <= set(r["metrics"])
        assert Path(r["results_path"]).is_file()
    assert "results written to" not in ran["stderr"]


def test_run_with_an_unknown_dataset_is_bad_input(tmp_path: Path) -> None:
    done = bench("run", "--dataset", str(tmp_path / "nope"), "--retriever", TINY, "--out",
                 str(tmp_path / "r"), "--json")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")


def test_evaluate_the_run_predictions(ran: dict[str, Any], synthetic_mini: Any) -> None:
    grounding = next(r for r in ran["doc"]["results"] if r["mode"] == "grounding")
    preds = Path(grounding["results_path"]).with_name(
        Path(grounding["results_path"]).stem + ".predictions.jsonl")
    if not preds.is_file():
        preds = next(Path(grounding["results_path"]).parent.glob("*predictions*.jsonl"))
    gt = Path(synthetic_mini.root) / "queries.jsonl"
    done = bench("evaluate", "--gt", str(gt), "--pred", str(preds), "--json", "--allow-missing")
    assert done.returncode == 0, done.stderr
    doc = one_json(done)
    assert doc["R1@0.5"] == pytest.approx(grounding["metrics"]["R1@0.5"])
    plain = bench("evaluate", "--gt", str(gt), "--pred", str(preds), "--allow-missing")
    assert plain.returncode == 0 and plain.stdout.startswith("queries: ")


def test_report_writes_files(ran: dict[str, Any], tmp_path: Path) -> None:
    done = bench("report", "--results", str(ran["out"]), "--out", str(tmp_path / "reports"), "--json")
    assert done.returncode == 0, done.stderr
    files = [Path(f) for f in one_json(done)["files"]]
    assert files and all(f.is_file() for f in files)
    assert any(f.suffix == ".md" for f in files)
    plain = bench("report", "--results", str(ran["out"]), "--out", str(tmp_path / "again"))
    assert plain.returncode == 0 and plain.stdout.splitlines() == [str(f).replace("reports", "again")
                                                                   for f in files]


def test_compare_passes_on_itself_and_fails_on_a_better_baseline(ran: dict[str, Any],
                                                                 tmp_path: Path) -> None:
    same = bench("compare", "--results", str(ran["out"]), "--baseline", str(ran["out"]), "--json")
    assert same.returncode == 0, same.stderr
    assert isinstance(one_json(same), dict)
    better = tmp_path / "baseline"
    shutil.copytree(ran["out"], better)
    for path in better.rglob("*.json"):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and isinstance(doc.get("metrics"), dict) and "mIoU" in doc["metrics"]:
            doc["metrics"]["mIoU"] = min(1.0, doc["metrics"]["mIoU"] + 0.5)
            path.write_text(json.dumps(doc), encoding="utf-8")
    worse = bench("compare", "--results", str(ran["out"]), "--baseline", str(better), "--json")
    assert worse.returncode == 1, worse.stderr
    assert isinstance(one_json(worse), dict)
    plain = bench("compare", "--results", str(ran["out"]), "--baseline", str(better))
    assert plain.returncode == 1 and plain.stdout.strip()
    missing = bench("compare", "--results", str(ran["out"]), "--baseline", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "baseline not found" in missing.stderr


def test_mock_run_json_and_unknown_configuration() -> None:
    done = bench("mock-run", "--retriever", TINY, "--json")
    assert done.returncode == 0, done.stderr
    doc = one_json(done)
    assert doc["retriever"] == TINY and doc["status"] == "ok" and doc["random_init"] is True
    unknown = bench("mock-run", "--retriever", "no-such-config", "--json")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.strip().splitlines()[-1].startswith("error: ")
