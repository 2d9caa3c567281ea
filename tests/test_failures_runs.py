"""Failures users meet in runs, searches, the gate and labels, through the CLI: each case
asserts the exit code, one ``error:`` line saying what happened, and no traceback.

Cases are rows of one table (setup, argv, exit code, expected ``error:`` text) so they can join
the other failure tables. Placeholders in argv and in the expected text (``{cfg}``,
``{port}``, ...) come from the row's setup.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from llm_server import Reply, ScriptedLLMServer

from bench.cli import main
from bench.eval.results import ResultFile, iter_results, save_result

Setup = Callable[["Ctx"], dict[str, str]]


@dataclass
class Ctx:
    tmp: Path
    stack: ExitStack
    mini: Any
    """The synthetic-mini query set (two short videos)."""


@dataclass(frozen=True)
class Case:
    name: str
    setup: Setup
    argv: tuple[str, ...]
    exit_code: int
    error: str
    """Expected in the one ``error:`` line on stderr (after filling the placeholders)."""


def _free_port() -> int:
    with socket.socket() as s:  # nothing listens on it once closed
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _llm_config(ctx: Ctx, base_url: str) -> Path:
    path = ctx.tmp / "llm-probe.yaml"
    path.write_text(
        "name: llm-probe\nfamily: llm-metadata\nparams:\n  backend: openai\n  cache: false\n"
        f"  endpoint: {{base_url: '{base_url}', model: m, max_retries: 0, backoff_s: 0.0}}\n"
        "  metadata: {summary_llm: true, sources: {use: [subtitle]}}\n", encoding="utf-8")
    return path


def dead_endpoint(ctx: Ctx) -> dict[str, str]:
    port = _free_port()
    cfg = _llm_config(ctx, f"http://127.0.0.1:{port}/v1")
    return {"cfg": str(cfg), "port": str(port), "video": str(ctx.mini.root / "videos" / "mini01-mission.mp4")}


def endpoint_500(ctx: Ctx) -> dict[str, str]:
    srv = ctx.stack.enter_context(ScriptedLLMServer([Reply(status=500)]))
    cfg = _llm_config(ctx, srv.base_url)
    return {"cfg": str(cfg), "port": str(srv.port),
            "video": str(ctx.mini.root / "videos" / "mini01-mission.mp4")}


def _result(name: str) -> ResultFile:
    return ResultFile(retriever=name, family="bm25-text", config_revision="1", dataset="synthetic-v1",
                      split="test", status="ok", n_queries=4, metrics={"R1@0.5": 0.5})


def _results(ctx: Ctx) -> Path:
    root = ctx.tmp / "results"
    save_result(root, _result("bm25-text"))
    return root


def empty_baseline_dir(ctx: Ctx) -> dict[str, str]:
    (ctx.tmp / "baseline").mkdir()
    return {"results": str(_results(ctx)), "baseline": str(ctx.tmp / "baseline")}


def unreadable_baseline_dir(ctx: Ctx) -> dict[str, str]:
    base = ctx.tmp / "baseline" / "bm25-text" / "1" / "synthetic-v1"
    base.mkdir(parents=True)
    (base / "test.json").write_text('{"schema_version": 2, "retriever"', encoding="utf-8")
    (ctx.tmp / "baseline" / "other.json").write_bytes(b"\x00\xff")
    return {"results": str(_results(ctx)), "baseline": str(ctx.tmp / "baseline")}


def baseline_comparing_nothing(ctx: Ctx) -> dict[str, str]:
    path = ctx.tmp / "baseline.json"
    path.write_text(json.dumps({"schema_version": 1, "entries": [
        {"retriever": "bm25-text", "dataset": "synthetic-v1", "split": "test", "metrics": {}}]}),
        encoding="utf-8")
    return {"results": str(_results(ctx)), "baseline": str(path)}


def _query_set(ctx: Ctx, rows: list[dict[str, Any]]) -> dict[str, str]:
    d = ctx.tmp / "labels"
    d.mkdir()
    (d / "videos.jsonl").write_text(json.dumps({"vid": "v1", "duration": 30.0}) + "\n", encoding="utf-8")
    (d / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return {"set": str(d), "queries": str(d / "queries.jsonl")}


GOOD = {"qid": "q1", "query": "a cat", "vid": "v1", "relevant_windows": [[1.0, 2.0]]}


def window_before_zero(ctx: Ctx) -> dict[str, str]:
    return _query_set(ctx, [GOOD, {**GOOD, "qid": "q2", "relevant_windows": [[-5, -1]]}])


def corpus_query_without_truth_vid(ctx: Ctx) -> dict[str, str]:
    corpus = {k: v for k, v in GOOD.items() if k != "vid"}
    return _query_set(ctx, [GOOD, {**corpus, "qid": "q2"}])


CASES = [
    Case("search-dead-endpoint", dead_endpoint,
         ("search", "--video", "{video}", "--query", "a rocket", "--retriever", "{cfg}"), 3,
         "{cfg}: http://127.0.0.1:{port}/v1/chat/completions (model m): cannot connect"),
    Case("search-endpoint-http-500", endpoint_500,
         ("search", "--video", "{video}", "--query", "a rocket", "--retriever", "{cfg}", "--json"), 3,
         "{cfg}: http://127.0.0.1:{port}/v1/chat/completions (model m): HTTP 500"),
    Case("compare-empty-baseline-dir", empty_baseline_dir,
         ("compare", "--results", "{results}", "--baseline", "{baseline}"), 2,
         "{baseline}: nothing to compare against: it holds no result files"),
    Case("compare-unreadable-baseline-dir", unreadable_baseline_dir,
         ("compare", "--results", "{results}", "--baseline", "{baseline}", "--json"), 2,
         "none of its 2 .json file(s) is a readable result file"),
    Case("compare-nothing-compared", baseline_comparing_nothing,
         ("compare", "--results", "{results}", "--baseline", "{baseline}"), 1,
         "nothing compared: none of the 1 baseline entries has a metric to check"),
    Case("run-window-before-zero", window_before_zero,
         ("run", "--dataset", "{set}", "--retriever", "bm25-text", "--out", "{set}/out"), 2,
         "{queries}:2: field 'relevant_windows[0]': ends at -1s"),
    Case("evaluate-window-before-zero", window_before_zero,
         ("evaluate", "--gt", "{queries}", "--pred", "{queries}"), 2,
         "{queries}:2: field 'relevant_windows[0]': ends at -1s"),
    Case("run-corpus-query-without-truth-vid", corpus_query_without_truth_vid,
         ("run", "--dataset", "{set}", "--retriever", "bm25-text", "--out", "{set}/out"), 2,
         "{queries}:2: field 'truth_vid': is required for a corpus query"),
]


@pytest.fixture
def ctx(tmp_path: Path, synthetic_mini: Any, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SCENEBENCH_CACHE", str(tmp_path / "cache"))
    with ExitStack() as stack:
        yield Ctx(tmp_path, stack, synthetic_mini)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_failure_cases(case: Case, ctx: Ctx, capsys: pytest.CaptureFixture[str]) -> None:
    values = case.setup(ctx)
    argv = [a.format(**values) for a in case.argv]
    code = main(argv)
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == case.exit_code, err
    assert len(errors) == 1, err
    assert case.error.format(**values) in errors[0]
    assert "Traceback" not in err
    if "--json" in argv and case.exit_code != 1:
        assert out == ""  # no half document on stdout when the command failed


def test_run_with_a_dead_endpoint_is_recorded_and_never_ranked(ctx: Ctx, capsys: pytest.CaptureFixture[str]):
    """``run`` goes on (exit 0) but records the configuration as not scored, with the reason;
    ``report`` then never ranks it above a real result."""
    values = dead_endpoint(ctx)
    out_dir = ctx.tmp / "results"
    save_result(out_dir, _result("bm25-text").model_copy(update={"dataset": ctx.mini.name}))
    code = main(["run", "--dataset", str(ctx.mini.root), "--retriever", values["cfg"], "--mode", "grounding",
                 "--out", str(out_dir), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    (row,) = doc["results"]
    n = len(ctx.mini.queries)
    assert row["status"] == "unavailable" and row["metrics"] == {}
    assert row["reason"].startswith(f"{n} of {n} queries failed on the backend")
    assert f"127.0.0.1:{values['port']}" in row["reason"]
    stored = [r for _, r in iter_results(out_dir) if r.retriever == "llm-probe"]
    assert stored[0].backend_failures == n
    assert main(["report", "--results", str(out_dir), "--out", str(ctx.tmp / "reports")]) == 0
    board = json.loads((ctx.tmp / "reports" / "leaderboard.json").read_text(encoding="utf-8"))
    rows = board[f"{ctx.mini.name}/{ctx.mini.split}"]
    assert [(r["retriever"], r["rank"]) for r in rows] == [("bm25-text", 1), ("llm-probe", None)]
    assert rows[1]["note"].startswith("unavailable: ")
