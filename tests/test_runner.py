"""The benchmark runner on the tiny built-in set, with stand-in retrievers of known behaviour."""

from __future__ import annotations

import json

import pytest

from bench.cli import main
from bench.engine.search import QueryResult
from bench.errors import Unavailable
from bench.eval.results import iter_results
from bench.eval.runner import mock_run, run, run_one
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
