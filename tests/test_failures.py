"""Hostile but fair input through the CLI, table-driven: each case must end with its exit
code, at most one ``error:`` line (exactly one when it fails) saying what happened, and no
traceback.

Rows of :data:`CASES` (the feature store, query sets, configurations, videos, queries) run
``python -m bench`` as a subprocess and also check that the store still opens and serves what
it held; rows of :data:`RUN_CASES` (dead LLM endpoints, the regression gate, labels) run
``bench.cli.main`` in process. To add a case, write a setup function that makes the input
under ``tmp`` and append a row.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from llm_server import Reply, ScriptedLLMServer

from bench.cli import main
from bench.eval.results import ResultFile, iter_results, save_result
from bench.store import Extractor, FeatureStore

REPO = Path(__file__).resolve().parents[1]

# The one indexed video and query the store cases share (the query has a speech match).
INDEXED_QUERY = "coffee"

# A read-only mount is read-only even for root, who writes through file modes; the store asks
# ``os.access``, so the runs below see the marked directory as a read-only mount would show it.
SITECUSTOMIZE = '''
import os
_ro = os.environ.get("SCENEBENCH_TEST_READ_ONLY")
_access = os.access
def _read_only_access(path, mode, *args, **kwargs):
    if _ro and mode & os.W_OK and not isinstance(path, int):
        p = os.path.abspath(os.fsdecode(path))
        if p == _ro or p.startswith(_ro + os.sep):
            return False
    return _access(path, mode, *args, **kwargs)
if _ro:
    os.access = _read_only_access
'''


@dataclass(frozen=True)
class Inputs:
    """What the setup functions build on: the shared indexed cache and two videos."""

    indexed_cache: Path
    """A cache where ``video`` is indexed for bm25-text (copy it; never change it)."""
    video: Path
    other_video: Path
    """A video that is not in ``indexed_cache``."""
    query_set: Path
    moments: list[dict[str, object]]
    """What searching ``video`` for :data:`INDEXED_QUERY` found when it was indexed."""


Setup = Callable[[Path, Inputs], None]


@dataclass(frozen=True)
class Case:
    """One hostile input. ``argv`` may hold ``{tmp}``, ``{video}`` and ``{other_video}``; the
    cache is ``{tmp}/cache``."""

    name: str
    setup: Setup
    argv: list[str]
    exit_code: int
    error: str | None
    """A substring of the single ``error:`` line; None when the command must succeed."""
    read_only: str | None = None
    """A path under ``tmp`` that must look read-only to the command."""
    warning: str | None = None
    """A substring a log line must hold (e.g. a warning that accompanies success)."""
    store_kept: bool = False
    """After the run, the store under ``{tmp}/cache/store`` opens and serves every artefact
    it held before."""
    untouched: list[str] = field(default_factory=list)
    """Files under ``tmp`` that must keep their bytes (a damaged catalog left for the user)."""


# -- setups -------------------------------------------------------------------------------


def nothing(tmp: Path, inputs: Inputs) -> None:
    pass


def indexed_cache(tmp: Path, inputs: Inputs) -> None:
    shutil.copytree(inputs.indexed_cache, tmp / "cache")


def empty_cache(tmp: Path, inputs: Inputs) -> None:
    (tmp / "cache").mkdir()


def catalog_not_a_database(tmp: Path, inputs: Inputs) -> None:
    store = tmp / "cache" / "store"
    store.mkdir(parents=True)
    (store / "catalog.sqlite").write_bytes(b"not a database\n" + bytes(range(256)) * 16)


def query_set_with(name: str, text: str) -> Setup:
    def setup(tmp: Path, inputs: Inputs) -> None:
        shutil.copytree(inputs.query_set, tmp / "set", ignore=shutil.ignore_patterns("videos"))
        (tmp / "set" / name).write_text(text, encoding="utf-8")
    return setup


def file_with(name: str, text: str) -> Setup:
    def setup(tmp: Path, inputs: Inputs) -> None:
        (tmp / name).write_text(text, encoding="utf-8")
    return setup


def truncated_video(tmp: Path, inputs: Inputs) -> None:
    whole = tmp / "whole.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=160x120:rate=25:duration=7", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=7", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-movflags", "+faststart", str(whole)], check=True)
    data = whole.read_bytes()
    (tmp / "truncated.mp4").write_bytes(data[: len(data) // 4])


def gt_and_pred(gt: str, pred: str) -> Setup:
    def setup(tmp: Path, inputs: Inputs) -> None:
        (tmp / "gt.jsonl").write_text(gt, encoding="utf-8")
        (tmp / "pred.jsonl").write_text(pred, encoding="utf-8")
    return setup


GT_ROW = '{"qid": 1, "query": "a", "vid": "v", "duration": 10, "relevant_windows": [[1, 2]]}\n'
PRED_ROW = '{"qid": 1, "query": "a", "vid": "v", "pred_relevant_windows": [[1, 2, 0.5]]}\n'
SEARCH = ["search", "--retriever", "bm25-text", "--json", "--query"]

CASES: list[Case] = [
    # -- the feature store --------------------------------------------------------------
    Case("read-only cache serves what is indexed", indexed_cache,
         [*SEARCH, INDEXED_QUERY, "--video", "{video}"], 0, None,
         read_only="cache", store_kept=True),
    Case("read-only cache cannot index a new video", indexed_cache,
         [*SEARCH, INDEXED_QUERY, "--video", "{other_video}"], 2,
         "is read-only and this needs to add to it; point SCENEBENCH_CACHE at a writable directory",
         read_only="cache", store_kept=True),
    Case("read-only empty cache", empty_cache,
         [*SEARCH, INDEXED_QUERY, "--video", "{video}"], 2,
         "/cache/store is read-only", read_only="cache"),
    Case("catalog that is not a database", catalog_not_a_database,
         [*SEARCH, INDEXED_QUERY, "--video", "{video}"], 2,
         "catalog.sqlite is damaged or not a SQLite database (file is not a database); move it aside",
         untouched=["cache/store/catalog.sqlite"]),
    # -- query sets, configurations, videos, arguments ----------------------------------
    Case("corrupt meta.json", query_set_with("meta.json", '{"split": "te'),
         ["index", "--dataset", "{tmp}/set", "--retriever", "bm25-text"], 2,
         "set/meta.json:1: invalid JSON"),
    Case("meta.json that is not an object", query_set_with("meta.json", "[1]\n"),
         ["index", "--dataset", "{tmp}/set", "--retriever", "bm25-text"], 2,
         "set/meta.json: expected a JSON object"),
    Case("YAML syntax error in a configuration",
         file_with("bad.yaml", "name: bad\nfamily: bm25-text\n  params: [1, 2\n"),
         [*SEARCH, "x", "--video", "{video}", "--retriever", "{tmp}/bad.yaml"], 2,
         "bad.yaml:3:9: invalid YAML in retriever configuration (mapping values are not allowed here)"),
    Case("truncated video is indexed for what it holds", truncated_video,
         [*SEARCH, "x", "--video", "{tmp}/truncated.mp4"], 0, None,
         warning="truncated.mp4: the header says 7.0 s but the file holds only 1."),
    Case("query that is not UTF-8", nothing,
         [*SEARCH, "caf\udcff\udcfe", "--video", "{video}"], 2,
         "--query is not valid UTF-8 (byte 0xff at character 4)"),
    # -- clean before; kept clean --------------------------------------------------------
    Case("missing file", gt_and_pred(GT_ROW, PRED_ROW),
         ["evaluate", "--gt", "{tmp}/nope.jsonl", "--pred", "{tmp}/pred.jsonl"], 2,
         "nope.jsonl: file not found"),
    Case("empty file", gt_and_pred("", PRED_ROW),
         ["evaluate", "--gt", "{tmp}/gt.jsonl", "--pred", "{tmp}/pred.jsonl", "--json"], 2,
         "gt.jsonl: no queries to evaluate"),
    Case("bad JSON line", gt_and_pred(GT_ROW + '{"qid": 2, "query"\n', PRED_ROW),
         ["evaluate", "--gt", "{tmp}/gt.jsonl", "--pred", "{tmp}/pred.jsonl"], 2,
         "gt.jsonl:2: invalid JSON"),
    Case("duplicate qid", gt_and_pred(GT_ROW, PRED_ROW * 2),
         ["evaluate", "--gt", "{tmp}/gt.jsonl", "--pred", "{tmp}/pred.jsonl"], 2,
         "pred.jsonl:2: field 'qid': duplicate qid 1"),
    Case("missing video", nothing,
         [*SEARCH, "x", "--video", "{tmp}/nope.mp4"], 2, "nope.mp4: video file not found"),
]


# -- running ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, synthetic_mini: object) -> Inputs:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    qs = synthetic_mini
    root: Path = qs.root  # type: ignore[attr-defined]
    video = qs.videos["mini01-mission"].resolve(root)  # type: ignore[attr-defined]
    other = qs.videos["mini02-garden"].resolve(root)  # type: ignore[attr-defined]
    cache = tmp_path_factory.mktemp("indexed") / "cache"
    done = run_bench([*SEARCH, INDEXED_QUERY, "--video", str(video)], cache, None)
    assert done.returncode == 0, done.stderr
    moments = json.loads(done.stdout)["moments"]
    assert moments, "the indexed query should find its moment"
    return Inputs(indexed_cache=cache, video=video, other_video=other, query_set=root,
                  moments=moments)


def run_bench(argv: list[str], cache: Path, read_only: Path | None,
              site: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "SCENEBENCH_CACHE": str(cache)}
    env.pop("SCENEBENCH_TEST_READ_ONLY", None)
    if read_only is not None and site is not None:
        env["SCENEBENCH_TEST_READ_ONLY"] = str(read_only)
        env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    return subprocess.run([sys.executable, "-m", "bench", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, errors="surrogateescape", timeout=600)


@contextlib.contextmanager
def looks_read_only(path: Path, tmp: Path) -> Iterator[Path]:
    """A directory holding the ``sitecustomize`` that makes ``path`` look read-only; without
    root, ``path`` is also made read-only for real for the duration."""
    site = tmp / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    modes: dict[Path, int] = {}
    if os.geteuid() != 0 and path.exists():
        for p in [path, *path.rglob("*")]:
            modes[p] = p.stat().st_mode
        for p in modes:
            p.chmod(modes[p] & ~0o222)
    try:
        yield site
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


LOG_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
PROGRESS = re.compile(r"\d+%\||\|\s*\d+/\d+ \[")


def message_lines(stderr: str) -> list[str]:
    """Lines of stderr that are neither log records nor progress bars."""
    return [line for line in stderr.splitlines()
            if line.strip() and not LOG_LINE.match(line) and not PROGRESS.search(line)]


def artefacts(store_root: Path) -> list[tuple[str, Extractor, str]]:
    """(video id, extractor, kind) of every done artefact in the catalog."""
    with contextlib.closing(sqlite3.connect(
            f"{(store_root / 'catalog.sqlite').as_uri()}?mode=ro", uri=True)) as db:
        extractors = {key: Extractor(name, json.loads(params), version)
                      for key, name, version, params in db.execute("SELECT * FROM extractors")}
        rows = db.execute("SELECT video_id, extractor, kind FROM artefacts WHERE status='done' "
                          "ORDER BY 1, 2").fetchall()
    return [(vid, extractors[key], kind) for vid, key, kind in rows]


def assert_store_serves(store_root: Path, expected: list[tuple[str, Extractor, str]]) -> None:
    assert artefacts(store_root) == expected
    with FeatureStore(store_root) as store:
        for video_id, ex, kind in expected:
            loaded = store.load(video_id, ex) if kind == "npz" else store.load_json(video_id, ex)
            assert loaded is not None, f"{ex.key} for {video_id} no longer loads"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_failure_is_one_line(case: Case, inputs: Inputs, tmp_path: Path) -> None:
    case.setup(tmp_path, inputs)
    names = {"tmp": str(tmp_path), "video": str(inputs.video), "other_video": str(inputs.other_video)}
    argv = [a.format(**names) for a in case.argv]
    store_root = tmp_path / "cache" / "store"
    before = artefacts(store_root) if case.store_kept else []
    if case.store_kept:
        assert before, "a store case needs something in the store to keep"
    kept = {name: (tmp_path / name).read_bytes() for name in case.untouched}

    read_only = tmp_path / case.read_only if case.read_only else None
    with contextlib.ExitStack() as stack:
        site = stack.enter_context(looks_read_only(read_only, tmp_path)) if read_only else None
        done = run_bench(argv, tmp_path / "cache", read_only, site)

    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == case.exit_code, done.stderr
    lines = message_lines(done.stderr)
    errors = [line for line in lines if line.startswith("error: ")]
    if case.error is None:
        assert errors == [], done.stderr
    else:
        assert lines == errors and len(errors) == 1, done.stderr
        assert case.error in errors[0], errors[0]
    if "--json" in argv and done.returncode == 0:
        json.loads(done.stdout)  # one JSON document and nothing else
    elif done.returncode != 0:
        assert done.stdout == ""
    if case.warning is not None:
        logged = [line for line in done.stderr.splitlines() if LOG_LINE.match(line)]
        assert sum(case.warning in line for line in logged) == 1, done.stderr
    if case.store_kept:
        assert_store_serves(store_root, before)
    for name, data in kept.items():
        assert (tmp_path / name).read_bytes() == data, f"{name} was changed"


def test_a_read_only_cache_finds_what_the_writable_one_found(inputs: Inputs, tmp_path: Path) -> None:
    indexed_cache(tmp_path, inputs)
    with looks_read_only(tmp_path / "cache", tmp_path) as site:
        done = run_bench([*SEARCH, INDEXED_QUERY, "--video", str(inputs.video)], tmp_path / "cache",
                         tmp_path / "cache", site)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["moments"] == inputs.moments


# -- runs, searches, the gate and labels, in process ------------------------------------------
# Rows of :data:`RUN_CASES` go through ``bench.cli.main`` (a dead or failing LLM endpoint, the
# regression gate, label errors); placeholders in argv and in the expected ``error:`` text
# (``{cfg}``, ``{port}``, ...) come from the row's setup.

RunSetup = Callable[["Ctx"], dict[str, str]]


@dataclass
class Ctx:
    tmp: Path
    stack: ExitStack
    mini: Any
    """The synthetic-mini query set (two short videos)."""


@dataclass(frozen=True)
class RunCase:
    name: str
    setup: RunSetup
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


RUN_CASES = [
    RunCase("search-dead-endpoint", dead_endpoint,
         ("search", "--video", "{video}", "--query", "a rocket", "--retriever", "{cfg}"), 3,
         "{cfg}: http://127.0.0.1:{port}/v1/chat/completions (model m): cannot connect"),
    RunCase("search-endpoint-http-500", endpoint_500,
         ("search", "--video", "{video}", "--query", "a rocket", "--retriever", "{cfg}", "--json"), 3,
         "{cfg}: http://127.0.0.1:{port}/v1/chat/completions (model m): HTTP 500"),
    RunCase("compare-empty-baseline-dir", empty_baseline_dir,
         ("compare", "--results", "{results}", "--baseline", "{baseline}"), 2,
         "{baseline}: nothing to compare against: it holds no result files"),
    RunCase("compare-unreadable-baseline-dir", unreadable_baseline_dir,
         ("compare", "--results", "{results}", "--baseline", "{baseline}", "--json"), 2,
         "none of its 2 .json file(s) is a readable result file"),
    RunCase("compare-nothing-compared", baseline_comparing_nothing,
         ("compare", "--results", "{results}", "--baseline", "{baseline}"), 1,
         "nothing compared: none of the 1 baseline entries has a metric to check"),
    RunCase("run-window-before-zero", window_before_zero,
         ("run", "--dataset", "{set}", "--retriever", "bm25-text", "--out", "{set}/out"), 2,
         "{queries}:2: field 'relevant_windows[0]': ends at -1s"),
    RunCase("evaluate-window-before-zero", window_before_zero,
         ("evaluate", "--gt", "{queries}", "--pred", "{queries}"), 2,
         "{queries}:2: field 'relevant_windows[0]': ends at -1s"),
    RunCase("run-corpus-query-without-truth-vid", corpus_query_without_truth_vid,
         ("run", "--dataset", "{set}", "--retriever", "bm25-text", "--out", "{set}/out"), 2,
         "{queries}:2: field 'truth_vid': is required for a corpus query"),
]


@pytest.fixture
def ctx(tmp_path: Path, synthetic_mini: Any, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SCENEBENCH_CACHE", str(tmp_path / "cache"))
    with ExitStack() as stack:
        yield Ctx(tmp_path, stack, synthetic_mini)


@pytest.mark.parametrize("case", RUN_CASES, ids=[c.name for c in RUN_CASES])
def test_run_failure_is_one_line(case: RunCase, ctx: Ctx, capsys: pytest.CaptureFixture[str]) -> None:
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
