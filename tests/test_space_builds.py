"""The Space builds each configuration once per process, fusion members included: a Search
and then a Compare of every configuration in models/ on synthetic-mini, with the real
retrievers (those that cannot be built offline are unavailable, and asked for once)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import bench.retrievers
from bench.retrievers import load_configs
from bench.serving.leaderboard import query_label
from bench.serving.search import search
from bench.serving.sessions import Session, check_query
from bench.types import QuerySet
from demo import handlers


def test_search_then_compare_builds_every_configuration_once(
        synthetic_mini: QuerySet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Count real constructions too, not only the workspace's own bookkeeping: a fusion
    # that built its members by itself would not show in workspace.builds.
    constructed: Counter[str] = Counter()
    real_build = bench.retrievers.build_retriever

    def counting_build(config: Any, device: str = "auto", **kwargs: Any) -> Any:
        constructed[config if isinstance(config, str) else config.name] += 1
        return real_build(config, device, **kwargs)

    monkeypatch.setattr(bench.retrievers, "build_retriever", counting_build)
    app = handlers.App(tmp_path / "results", "synthetic-mini", "cpu",
                       sessions=tmp_path / "sessions", sheets=tmp_path / "sheets")
    names = sorted(load_configs())
    assert app.configurations() == names
    q = next(q for q in synthetic_mini.queries if q.vid is not None and q.relevant_windows)
    label = query_label(q)

    sess = Session.open(app.sessions, "builds")
    # What the Search tab runs (its handler then renders cards and evidence lines).
    videos = handlers.all_videos(app, sess)
    found = search(app.workspace, "fusion-text", [videos[q.vid]], check_query(q.query),
                   corpus=list(app.embedded().values()))
    assert found.error is None and found.moments
    _, table, status = handlers.on_compare(app, sess, label, q.query, q.vid)

    rows = {r[0]: r for r in table["data"]}
    assert list(rows) == names
    offline = {"bm25-text", "dense-text-minilm", "fusion-text", "fusion-text-weighted",
               "clip-frames-tiny", "xclip-clips-tiny", "fusion-all-tiny", "llm-tiny"}
    assert {n for n in offline if rows[n][5].startswith(("unavailable", "failed"))} == set()
    assert rows["fusion-all"][5].startswith("unavailable: ")  # no CLIP ViT-B/32 offline
    assert app.workspace.builds == Counter(dict.fromkeys(names, 1))
    assert constructed == Counter(dict.fromkeys(names, 1))
