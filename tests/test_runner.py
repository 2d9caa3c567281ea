"""The benchmark runner on the tiny built-in set, with stand-in retrievers of known behaviour."""

from __future__ import annotations

import json

import pytest
from llm_server import Reply, ScriptedLLMServer, scenes_json, user_text

from bench.cli import main
from bench.engine.search import QueryResult
from bench.errors import BackendError, Unavailable
from bench.eval.results import iter_results
from bench.eval.runner import UNREACHABLE_STOP_AFTER, backend_verdict, mock_run, run, run_one
from bench.retrievers import FAMILIES
from bench.retrievers.base import Retriever, RetrieverConfig
from bench.types import Moment


class Oracle:
    """Returns each query's ground truth (grounding) or its video first (corpus)."""

    truth: dict[str, list[tuple[str, float, float]]] = {}

    def __init__(self, config: RetrieverConfig, device: str) -> None:
        self.name = config.name
        self.device = device
        self.mode = config.params.get("mode", "oracle")
        if self.mode == "unavailable":
            raise Unavailable("weights for test-oracle cannot be had here")
        self.indexed: list[str] = []

    def index(self, videos, store) -> None:
        self.indexed = [v.vid for v in videos]

    def search(self, queries, *, top_k=10, vids=None):
        return [r.moments for r in self.search_results(queries, top_k=top_k, vids=vids)]

    def search_results(self, queries, *, top_k=10, vids=None):
        if self.mode == "crash":
            raise RuntimeError("boom")
        out = []
        for q in queries:
            moments = [Moment(v, s, e, 1.0 - 0.1 * i)
                       for i, (v, s, e) in enumerate(self.truth[str(q.qid)])]
            if vids is not None:
                moments = [m for m in moments if m.vid in vids]
            out.append(QueryResult(moments[:top_k]))
        return out

    def stats(self):
        return {"indexed": len(self.indexed)}

    def reset_stats(self):
        return None

    def index_backend_errors(self):
        return {}

    def provenance(self):
        return {"models": [{"id": "oracle", "random_init": False}]}


if "test-oracle" not in FAMILIES:
    FAMILIES.register("test-oracle", f"{__name__}:Oracle")


def cfg(mode: str = "oracle") -> RetrieverConfig:
    return RetrieverConfig(name=f"oracle-{mode}", family="test-oracle", params={"mode": mode})


@pytest.fixture
def oracle_truth(synthetic_mini):
    Oracle.truth = {str(q.qid): [(q.vid, s, e) for s, e in q.relevant_windows]
                    for q in synthetic_mini.queries}
    return synthetic_mini


def test_protocol_is_runtime_checkable():
    assert isinstance(Oracle(cfg(), "cpu"), Retriever)


def test_oracle_scores_perfectly_and_results_are_written(oracle_truth, tmp_path):
    qs = oracle_truth
    results = run_one(cfg(), qs, ("grounding", "corpus"), device="cpu", out=tmp_path, progress=False)
    assert [r.status for r in results] == ["ok", "ok"]
    grounding, corpus = results
    assert grounding.metrics["R1@0.5"] == 1.0
    assert grounding.metrics["mIoU"] == pytest.approx(1.0)
    assert corpus.metrics["video-R@1"] == 1.0
    assert grounding.n_queries == len([q for q in qs.queries if q.vid])
    assert grounding.timing["queries"]["n"] == grounding.n_queries
    assert set(grounding.metrics_by_lang) == {q.lang for q in qs.queries if q.lang}
    stored = {r.split_key: r for _, r in iter_results(tmp_path)}
    assert set(stored) == {qs.split, f"{qs.split}-corpus"}
    preds = (tmp_path / "oracle-oracle" / "1" / qs.name / f"{qs.split}.predictions.jsonl")
    rows = [json.loads(x) for x in preds.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == grounding.n_queries
    assert all(r["pred_relevant_windows"] for r in rows)


def test_unavailable_and_failed_are_recorded_and_the_run_goes_on(oracle_truth, tmp_path):
    qs = oracle_truth
    unavailable = run_one(cfg("unavailable"), qs, ("grounding",), out=tmp_path, progress=False)
    assert unavailable[0].status == "unavailable"
    assert "cannot be had" in (unavailable[0].reason or "")
    crashed = run_one(cfg("crash"), qs, ("grounding",), out=tmp_path, progress=False)
    assert crashed[0].status == "failed"
    assert "RuntimeError: boom" in (crashed[0].reason or "")
    fine = run_one(cfg(), qs, ("grounding",), out=tmp_path, progress=False)
    assert fine[0].status == "ok"


def test_mock_run_indexes_once_and_a_run_builds_each_model_once(oracle_truth, tmp_path, monkeypatch):
    path = tmp_path / "oracle.yaml"
    path.write_text("name: oracle-mock\nfamily: test-oracle\n", encoding="utf-8")
    calls = {"built": 0, "indexed": 0}
    init, index = Oracle.__init__, Oracle.index

    def counted_init(self, config, device):
        calls["built"] += 1
        init(self, config, device)

    def counted_index(self, videos, store):
        calls["indexed"] += 1
        index(self, videos, store)

    monkeypatch.setattr(Oracle, "__init__", counted_init)
    monkeypatch.setattr(Oracle, "index", counted_index)
    doc = mock_run(str(path), device="cpu")
    assert doc["status"] == "ok" and doc["checks"] == [] and doc["metrics"]["R1@0.5"] == 1.0
    assert calls == {"built": 1, "indexed": 1}
    # two sets over the same videos: one build, one index
    results = run(["synthetic-mini", str(oracle_truth.root)], [str(path)], out=None, device="cpu",
                  modes=("grounding",), progress=False)
    assert [r.status for r in results] == ["ok", "ok"]
    assert calls == {"built": 2, "indexed": 2}


def test_cli_list_and_bad_input_exit_codes(capsys, tmp_path):
    assert main(["list", "datasets", "--json"]) == 0
    names = {d["name"] for d in json.loads(capsys.readouterr().out)["datasets"]}
    assert {"synthetic-v1", "qvhighlights", "charades-sta", "subtitles", "tvr"} <= names
    assert main(["evaluate", "--gt", str(tmp_path / "missing.jsonl"), "--pred", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "missing.jsonl: file not found" in err
    assert "\n" not in err
    assert main(["run", "--dataset", "no-such-set"]) == 2
    assert "no-such-set" in capsys.readouterr().err


# -- backend failures: a dead endpoint is never scored as a real zero ------------------------

def llm_cfg(base_url: str, *, summary: bool = False) -> RetrieverConfig:
    return RetrieverConfig(name="llm-probe", family="llm-metadata", params={
        "backend": "openai", "cache": False,
        "endpoint": {"base_url": base_url, "model": "scripted", "max_retries": 0, "backoff_s": 0.0},
        "metadata": {"summary_llm": summary, "sources": {"use": ["subtitle"]}}})


def dead_url() -> str:
    import socket

    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_backend_verdict_counts_and_names_the_first_error():
    dead = BackendError("http://x/v1 (model m): cannot connect", unreachable=True)
    down = BackendError("http://x/v1 (model m): HTTP 500")
    assert backend_verdict(8, {}) is None
    assert backend_verdict(8, {str(i): down for i in range(4)}) is None  # half: still ok
    assert backend_verdict(8, {str(i): down for i in range(5)}) == (
        "failed", "5 of 8 queries failed on the backend (first: http://x/v1 (model m): HTTP 500)")
    assert backend_verdict(2, {"a": dead, "b": dead})[0] == "unavailable"  # nothing ever connected
    assert backend_verdict(2, {"a": dead, "b": down})[0] == "failed"
    assert backend_verdict(3, {"a": dead, "b": dead})[0] == "failed"  # one query was answered
    assert backend_verdict(10, {"a": down}, max_share=0.0)[0] == "failed"


def test_dead_endpoint_is_unavailable_with_the_reason_and_no_scores(synthetic_mini, tmp_path):
    results = run_one(llm_cfg(dead_url(), summary=True), synthetic_mini, ("grounding", "corpus"),
                      device="cpu", out=tmp_path, progress=False)
    n = len(synthetic_mini.queries)
    assert [r.status for r in results] == ["unavailable", "unavailable"]
    for r in results:
        assert r.metrics == {} and r.backend_failures == n == r.n_queries
        assert r.reason.startswith(f"{n} of {n} queries failed on the backend (first: http://127.0.0.1:")
        assert "cannot connect" in r.reason
        # every video's metadata summary call failed too; its error is the same, said once
        assert r.reason.endswith("; the backend failed while indexing every video (2 of 2)")
        # after 3 queries that could not connect, the rest are not asked (each would wait out
        # the same retries)
        skipped = [e for e in r.query_errors.values() if e.startswith("not asked: ")]
        assert len(skipped) == n - UNREACHABLE_STOP_AFTER and len(r.query_errors) == n
    stored = {r.split_key: r for _, r in iter_results(tmp_path)}
    assert stored[synthetic_mini.split].status == "unavailable"
    assert not list(tmp_path.rglob("*.predictions.jsonl"))


def test_http_500_fails_the_run(synthetic_mini):
    with ScriptedLLMServer([Reply(status=500)]) as srv:
        (r,) = run_one(llm_cfg(srv.base_url), synthetic_mini, ("grounding",), device="cpu",
                       progress=False)
    assert r.status == "failed" and r.metrics == {}
    assert "queries failed on the backend" in r.reason and "HTTP 500" in r.reason
    assert r.backend_failures == r.n_queries


def test_a_few_backend_failures_keep_the_run_ok_with_the_count(synthetic_mini):
    unlucky = synthetic_mini.queries[0].query

    def answer(body):
        if unlucky in user_text(body):
            return Reply(status=500)
        return Reply(scenes_json(("00:01-00:03", "something")))

    with ScriptedLLMServer(answer) as srv:
        (r,) = run_one(llm_cfg(srv.base_url), synthetic_mini, ("grounding",), device="cpu",
                       progress=False)
    assert r.status == "ok" and r.backend_failures == 1 and r.reason is None
    assert "R1@0.5" in r.metrics
    assert "HTTP 500" in r.query_errors[str(synthetic_mini.queries[0].qid)]


def test_a_query_the_method_cannot_answer_is_no_backend_failure(synthetic_mini):
    """An answer with no valid scene (here: always ``[]`` in grounding) is the method's miss."""
    with ScriptedLLMServer([Reply("[]")]) as srv:
        (r,) = run_one(llm_cfg(srv.base_url), synthetic_mini, ("grounding",), device="cpu",
                       progress=False)
    assert r.status == "ok" and r.backend_failures == 0
    assert r.metrics["R1@0.5"] == 0.0 and len(r.query_errors) == r.n_queries


def test_a_plain_run_leaves_out_random_init_configurations(monkeypatch):
    from bench.eval import runner
    from bench.retrievers import TINY_TAG, load_configs

    configs = load_configs()
    tiny = {n for n, c in configs.items() if TINY_TAG in c.tags}
    assert {"clip-frames-tiny", "xclip-clips-tiny", "llm-tiny", "fusion-all-tiny"} <= tiny
    plain = [c.name for c in runner.default_configs()]
    assert plain == [n for n in configs if n not in tiny]
    assert {"bm25-text", "dense-text-minilm", "fusion-text", "clip-frames-vit-b32"} <= set(plain)
    assert [c.name for c in runner.default_configs(include_tiny=True)] == list(configs)

    asked: dict[str, object] = {}

    def fake_run(datasets, retrievers, **kwargs):
        asked.update(retrievers=list(retrievers), include_tiny=kwargs["include_tiny"])
        return []

    monkeypatch.setattr(runner, "run", fake_run)
    assert main(["run", "--json"]) == 0
    assert asked == {"retrievers": [], "include_tiny": False}
    assert main(["run", "--json", "--include-tiny"]) == 0
    assert asked == {"retrievers": [], "include_tiny": True}


def test_a_plain_run_leaves_a_configuration_out_of_sets_without_the_queries_it_answers(
        synthetic_mini, monkeypatch):
    """``answers: [mood]`` keeps impression search off sets with no mood query unless named."""
    from bench.eval import runner
    from bench.retrievers import get_config

    assert get_config("impression-prior").answers == ["mood"]
    ran: list[str] = []
    monkeypatch.setattr(runner, "default_configs",
                        lambda **_: [get_config("impression-prior"), get_config("bm25-text")])
    monkeypatch.setattr(runner, "run_one", lambda cfg, *a, **k: ran.append(cfg.name) or [])
    import bench.datasets as datasets

    monkeypatch.setattr(datasets, "resolve_dataset", lambda spec: synthetic_mini)
    assert not any("mood" in q.tags for q in synthetic_mini.queries)
    runner.run(["mini"], [], out=None, progress=False)
    assert ran == ["bm25-text"]
    ran.clear()
    runner.run(["mini"], ["impression-prior"], out=None, progress=False)  # named: it runs
    assert ran == ["impression-prior"]
