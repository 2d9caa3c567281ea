"""Data model validation: every bad row names its file, line, field and rule."""

from __future__ import annotations

import pytest

from bench.errors import BadInput
from bench.types import Moment, Prediction, Query, QuerySet, Video


def row(**kw):
    base = {"qid": 1, "query": "a cat", "vid": "v1", "duration": 30.0,
            "relevant_windows": [[2.0, 5.0]]}
    base.update(kw)
    return base


def test_query_round_trip_keeps_extra_fields():
    r = row(lang="en", tags=["visual"], relevant_clip_ids=[1, 2], saliency_scores=[[1, 2, 3], [4, 4, 4]],
            custom="x")
    q = Query.from_row(r, "q.jsonl", 3)
    assert q.relevant_windows == [(2.0, 5.0)]
    assert q.extra == {"custom": "x"}
    assert Query.from_row(q.to_row()).to_row() == q.to_row()


def test_window_is_clipped_to_duration_and_start_to_zero():
    q = Query.from_row(row(relevant_windows=[[-1.0, 40.0]]))
    assert q.relevant_windows == [(0.0, 30.0)]


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"relevant_windows": [[5.0, 5.0]]}, "q.jsonl:7: field 'relevant_windows[0]': end <= start"),
        ({"relevant_windows": [[31.0, 40.0]]}, "past the duration 30s"),
        ({"query": ""}, "field 'query': must not be empty"),
        ({"qid": True}, "field 'qid'"),
        ({"duration": -3}, "field 'duration': must be > 0"),
        ({"relevant_windows": [[1, "x"]]}, "field 'relevant_windows[0][1]': must be a number"),
        ({"tags": "speech"}, "field 'tags'"),
        ({"relevant_clip_ids": [1], "saliency_scores": [[1], [2]]}, "has 2 rows but relevant_clip_ids has 1"),
    ],
)
def test_bad_rows_name_file_line_field(bad, expected):
    with pytest.raises(BadInput) as err:
        Query.from_row(row(**bad), "q.jsonl", 7)
    assert expected in str(err.value)
    assert "q.jsonl:7" in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_required_field():
    with pytest.raises(BadInput, match="field 'query': is required"):
        Query.from_row({"qid": 1}, "q.jsonl", 1)


def test_query_set_rejects_duplicate_qid_and_unknown_vid():
    videos = {"v1": Video("v1", "a.mp4", 30.0)}
    qs = QuerySet("s", videos, [Query.from_row(row()), Query.from_row(row())])
    with pytest.raises(BadInput, match="duplicate qid 1 \\(first on line 1\\)"):
        qs.validate("queries.jsonl")
    qs = QuerySet("s", videos, [Query.from_row(row(vid="v9"))])
    with pytest.raises(BadInput, match="unknown vid 'v9'"):
        qs.validate("queries.jsonl")


def test_video_duration_bounds_windows_of_queries_without_duration():
    videos = {"v1": Video("v1", "a.mp4", 10.0)}
    q = Query.from_row({"qid": "a", "query": "x", "vid": "v1", "relevant_windows": [[12, 14]]})
    with pytest.raises(BadInput, match="past the duration 10s"):
        QuerySet("s", videos, [q]).validate("queries.jsonl")


def test_prediction_from_moments_grounding_and_corpus():
    q = Query.from_row(row())
    moments = [Moment("v1", 1, 2, 0.2), Moment("v2", 3, 4, 0.9), Moment("v1", 5, 6, 0.5)]
    p = Prediction.from_moments(q, moments)
    assert p.pred_relevant_windows == [[5, 6, 0.5], [1, 2, 0.2]]
    corpus = Query.from_row(row(vid=None, truth_vid="v2"))
    p = Prediction.from_moments(corpus, moments)
    assert p.vid == "v2"
    assert p.pred_moments == [["v2", 3, 4, 0.9], ["v1", 5, 6, 0.5], ["v1", 1, 2, 0.2]]


def test_prediction_row_validation():
    with pytest.raises(BadInput, match="p.jsonl:2: field 'pred_relevant_windows\\[0\\]'"):
        Prediction.from_row({"qid": 1, "pred_relevant_windows": [[1, 2]]}, "p.jsonl", 2)


def test_window_entirely_before_zero_is_a_row_error():
    with pytest.raises(BadInput, match=r"q.jsonl:4: field 'relevant_windows\[1\]': ends at -1s"):
        Query.from_row(row(relevant_windows=[[2.0, 5.0], [-5, -1]]), "q.jsonl", 4)
    with pytest.raises(BadInput, match=r"relevant_windows\[0\]': ends at 0s"):
        Query.from_row(row(relevant_windows=[[-3, 0]]), "q.jsonl", 1)
    # a window that only starts before 0 is clipped, as before
    assert Query.from_row(row(relevant_windows=[[-2, 3]])).relevant_windows == [(0.0, 3.0)]


def test_corpus_query_needs_truth_vid_at_load():
    with pytest.raises(BadInput, match=r"queries.jsonl:7: field 'truth_vid': is required for a corpus query"):
        Query.from_row(row(vid=None), "queries.jsonl", 7)
    with pytest.raises(BadInput, match=r"queries.jsonl:7: field 'truth_vid': must be a string"):
        Query.from_row(row(vid=None, truth_vid=3), "queries.jsonl", 7)
    q = Query.from_row(row(vid=None, truth_vid="v1"))
    assert q.is_corpus and q.extra["truth_vid"] == "v1"
    # an absent corpus query has no windows, so no true video
    assert Query.from_row(row(vid=None, relevant_windows=[], tags=["absent"])).is_corpus


def test_truth_vid_must_be_a_known_video_and_bounds_the_windows():
    videos = {"v1": Video("v1", "a.mp4", 10.0)}
    q = Query.from_row({"qid": "a", "query": "x", "truth_vid": "v9", "relevant_windows": [[1, 2]]})
    with pytest.raises(BadInput, match="queries.jsonl:1: field 'truth_vid': unknown vid 'v9'"):
        QuerySet("s", videos, [q]).validate("queries.jsonl")
    q = Query.from_row({"qid": "a", "query": "x", "truth_vid": "v1", "relevant_windows": [[12, 14]]})
    with pytest.raises(BadInput, match="past the duration 10s"):
        QuerySet("s", videos, [q]).validate("queries.jsonl")
