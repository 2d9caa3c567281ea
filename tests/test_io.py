"""Query-set directories: strict reads, atomic writes, friendly errors."""

from __future__ import annotations

import json

import pytest

from bench.datasets.io import load_predictions, load_query_set, read_jsonl, save_query_set
from bench.errors import BadInput
from bench.types import Query, QuerySet, Video


def make_set(tmp_path):
    videos = {"v1": Video("v1", "videos/v1.mp4", 20.0, lang="en")}
    queries = [Query.from_row({"qid": "q1", "query": "猫", "vid": "v1", "duration": 20.0,
                               "relevant_windows": [[1.0, 3.5]], "lang": "ja", "tags": ["visual"]})]
    return QuerySet("demo", videos, queries, root=tmp_path)


def test_save_and_load_round_trip(tmp_path):
    qs = make_set(tmp_path)
    out = save_query_set(qs, tmp_path / "set")
    loaded = load_query_set(out)
    assert loaded.name == "set"
    assert [q.to_row() for q in loaded.queries] == [q.to_row() for q in qs.queries]
    assert loaded.videos["v1"].duration == 20.0
    # UTF-8 is written unescaped, one row per line
    assert "猫" in (out / "queries.jsonl").read_text(encoding="utf-8")


def test_save_replaces_atomically_and_leaves_no_temp_dirs(tmp_path):
    qs = make_set(tmp_path)
    save_query_set(qs, tmp_path / "set")
    save_query_set(qs, tmp_path / "set")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_failed_save_keeps_the_old_set(tmp_path):
    qs = make_set(tmp_path)
    save_query_set(qs, tmp_path / "set")
    before = (tmp_path / "set" / "queries.jsonl").read_bytes()
    bad = make_set(tmp_path)
    bad.queries.append(bad.queries[0])  # duplicate qid
    with pytest.raises(BadInput, match="duplicate qid"):
        save_query_set(bad, tmp_path / "set")
    assert (tmp_path / "set" / "queries.jsonl").read_bytes() == before


def test_non_utf8_and_bad_json_name_the_line(tmp_path):
    p = tmp_path / "q.jsonl"
    p.write_bytes(b'{"qid": 1}\n{"qid": "\xff"}\n')
    with pytest.raises(BadInput, match=r"q.jsonl:2: not valid UTF-8"):
        list(read_jsonl(p))
    p.write_text('{"qid": 1}\n\n{"qid": \n', encoding="utf-8")
    with pytest.raises(BadInput, match=r"q.jsonl:3: invalid JSON"):
        list(read_jsonl(p))


def test_missing_file_and_missing_video(tmp_path):
    with pytest.raises(BadInput, match="not a query-set directory"):
        load_query_set(tmp_path / "nope")
    out = save_query_set(make_set(tmp_path), tmp_path / "set")
    with pytest.raises(BadInput, match="field 'path': video file not found"):
        load_query_set(out, check_files=True)


def test_duplicate_prediction_qid(tmp_path):
    p = tmp_path / "p.jsonl"
    rows = [{"qid": 1, "pred_relevant_windows": [[0, 1, 0.5]]}] * 2
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(BadInput, match="p.jsonl:2: field 'qid': duplicate qid 1"):
        load_predictions(p)


def test_written_sets_are_readable_by_others(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        out = save_query_set(make_set(tmp_path), tmp_path / "set")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "queries.jsonl").stat().st_mode) == 0o644


def test_corpus_query_without_truth_vid_names_the_line_at_load(tmp_path):
    d = tmp_path / "set"
    d.mkdir()
    (d / "videos.jsonl").write_text(json.dumps({"vid": "v1", "path": "v1.mp4", "duration": 30.0}) + "\n",
                                    encoding="utf-8")
    rows = [{"qid": "q1", "query": "a cat", "vid": "v1", "relevant_windows": [[1, 2]]},
            {"qid": "q2", "query": "a dog", "relevant_windows": [[3, 4]]}]
    (d / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(BadInput, match=r"queries.jsonl:2: field 'truth_vid': is required"):
        load_query_set(d)
