"""Crafted metric cases that pin what the docstrings promise and the official sample cannot show:
the 10-window mAP cut, IoU exactly at a threshold, ground-truth tie order, hull recomputation,
rounding in ``percent()``, saliency matrices and corpus answers. Expectations are worked out by hand."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from bench.errors import BadInput
from bench.eval import metrics as m
from bench.spans import paired_iou, temporal_iou_matrix
from bench.types import Prediction, Query
from tests.test_metrics import p, q

# ---------------------------------------------------------------------------------------------- mAP cut


def test_map_reads_only_the_first_ten_rows_even_when_a_later_row_scores_higher() -> None:
    # Ten misses, then a perfect window with the highest score: row 11 is past the official cut,
    # so mAP is 0 although re-sorting by score would have put it first.
    misses = [[50 + i, 51 + i, 0.5] for i in range(10)]
    preds = {1: p(1, [*misses, [0, 10, 0.9]])}
    out = m.grounding_metrics([q(1, [[0, 10]])], preds)
    assert m.MAX_AP_WINDOWS == 10
    assert out["mAP"] == 0.0
    qvh = m.qvhighlights_metrics([q(1, [[0, 10]])], preds, highlights=False)
    assert qvh["full"]["MR-mAP"]["average"] == 0.0
    # The same hit as row 10 is inside the cut and, re-sorted by its score, ranked first.
    preds = {1: p(1, [*misses[:9], [0, 10, 0.9]])}
    assert m.grounding_metrics([q(1, [[0, 10]])], preds)["mAP"] == 1.0


def test_map_resorts_the_first_ten_rows_by_score() -> None:
    # Rows: miss (0.1), hit (0.9): by score the hit comes first, AP 1; in list order it would be 1/2.
    preds = {1: p(1, [[50, 60, 0.1], [0, 10, 0.9]])}
    out = m.grounding_metrics([q(1, [[0, 10]])], preds)
    assert out["mAP"] == 1.0
    assert out["R1@0.5"] == 0.0  # R1 takes the first row as listed


def test_r5_reads_five_rows_and_corpus_r10_ten() -> None:
    rows = [[50 + i, 51 + i, 0.9 - 0.01 * i] for i in range(5)] + [[0, 10, 0.1]]
    out = m.grounding_metrics([q(1, [[0, 10]])], {1: p(1, rows)})
    assert out["R5@0.7"] == 0.0
    rows = rows[1:]
    assert m.grounding_metrics([q(1, [[0, 10]])], {1: p(1, rows)})["R5@0.7"] == 1.0


# ---------------------------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize(("gt_end", "threshold"), [(3.0, 0.3), (5.0, 0.5), (7.0, 0.7)])
def test_iou_exactly_at_a_threshold_counts(gt_end: float, threshold: float) -> None:
    # Prediction [0, 10] against GT [0, gt_end]: IoU gt_end / 10, exactly the threshold.
    out = m.grounding_metrics([q(1, [[0, gt_end]])], {1: p(1, [[0, 10, 1.0]])})
    assert out[f"R1@{threshold}"] == 1.0
    assert out["mIoU"] == threshold
    above = round(threshold + 0.1, 1)
    if above in m.GROUNDING_IOUS:
        assert out[f"R1@{above}"] == 0.0


def test_ap_counts_iou_exactly_at_a_threshold() -> None:
    # IoU exactly 0.5 hits at 0.5 and at no higher threshold: AP 1 at 0.5, 0 elsewhere.
    ap = m.average_precision(temporal_iou_matrix([[0, 10]], [[0, 5]]), [1.0])
    assert ap.tolist() == [1.0] + [0.0] * 9
    # 0.75 exactly: thresholds 0.5..0.75 hit (6 of 10).
    ap = m.average_precision(temporal_iou_matrix([[0, 4]], [[0, 3]]), [1.0])
    assert ap.tolist() == [1.0] * 6 + [0.0] * 4


def test_qvhighlights_r1_at_exact_threshold() -> None:
    qvh = m.qvhighlights_metrics([q(1, [[0, 5]]), q(2, [[0, 10]])],
                                 {1: p(1, [[0, 10, 1.0]]), 2: p(2, [[20, 30, 1.0]])}, highlights=False)
    r1 = qvh["full"]["MR-R1"]
    assert r1["0.5"] == 50.0 and r1["0.55"] == 0.0
    assert qvh["brief"]["MR-full-R1@0.5"] == 50.0


# ---------------------------------------------------------------------------------------------- ties, hull


def test_ground_truth_ties_try_the_later_window_first() -> None:
    # GT A [0, 10], B [2, 12]. The first prediction [1, 11] has IoU 9/11 with both; it takes B
    # (the later one, as the released reference did), so the second [0, 10] still finds A (IoU 1)
    # and both hit up to 0.8. Taking A first would leave the second only B (IoU 8/12 = 0.667).
    iou = temporal_iou_matrix([[1, 11], [0, 10]], [[0, 10], [2, 12]])
    assert iou[0, 0] == iou[0, 1]
    ap = dict(zip(m.QVH_IOUS, m.average_precision(iou, [0.9, 0.8]), strict=True))
    assert ap[0.7] == 1.0 and ap[0.75] == 1.0 and ap[0.8] == 1.0
    # Above 9/11 the first misses and the second finds A: precision 1/2 at recall 1/2.
    assert ap[0.85] == 0.25


def test_predictions_keep_their_order_on_equal_scores() -> None:
    # Equal scores: the listed order decides. Miss then hit: AP 1/2; hit then miss: AP 1.
    gt = [[0, 10]]
    iou = temporal_iou_matrix([[50, 60], [0, 10]], gt)
    assert m.average_precision(iou, [0.5, 0.5]).tolist() == [0.5] * 10
    assert m.average_precision(iou[::-1], [0.5, 0.5]).tolist() == [1.0] * 10


def test_r1_recomputes_iou_over_the_hull_as_the_official_script() -> None:
    # [0.1, 9.5] vs [1.3, 6.0]: 4.7 / 9.4 over the hull is exactly 0.5; the matrix union
    # (9.4 + 4.7 - 4.7) rounds to just below, so plain IoU would miss R1@0.5.
    pred, gt = np.array([[0.1, 9.5]]), np.array([[1.3, 6.0]])
    assert paired_iou(pred, gt)[0] == 0.5
    assert temporal_iou_matrix(pred, gt)[0, 0] < 0.5
    out = m.grounding_metrics([q(1, gt.tolist())], {1: p(1, [[0.1, 9.5, 1.0]])})
    assert out["R1@0.5"] == 1.0 and out["R5@0.5"] == 1.0
    assert out["mIoU"] == 0.5
    qvh = m.qvhighlights_metrics([q(1, gt.tolist())], {1: p(1, [[0.1, 9.5, 1.0]])}, highlights=False)
    assert qvh["full"]["MR-R1"]["0.5"] == 100.0


def test_r1_picks_the_best_ground_truth_window() -> None:
    # Two GT windows; the prediction overlaps the second better (IoU 1 against 0).
    out = m.grounding_metrics([q(1, [[0, 2], [10, 20]])], {1: p(1, [[10, 20, 1.0]])})
    assert out["mIoU"] == 1.0


# ---------------------------------------------------------------------------------------------- percent


@pytest.mark.parametrize(("fraction", "shown"), [
    (2 / 3, 66.67), (1 / 3, 33.33), (0.5, 50.0), (1.0, 100.0), (0.0, 0.0),
    (0.123456, 12.35), (0.00004, 0.0), (0.00005001, 0.01), (0.99999, 100.0),
])
def test_percent_rounds_to_two_decimals(fraction: float, shown: float) -> None:
    assert m.percent(fraction) == shown
    assert isinstance(m.percent(fraction), float)


def test_grounding_keys_stay_unrounded_fractions() -> None:
    out = m.grounding_metrics([q(1, [[0, 10]]), q(2, [[0, 10]]), q(3, [[0, 10]])],
                              {1: p(1, [[0, 10, 1.0]]), 2: p(2, []), 3: p(3, [])})
    assert out["R1@0.5"] == 1 / 3


# ---------------------------------------------------------------------------------------------- AP internals


def test_ap_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="ious must be"):
        m.average_precision(np.zeros(3), [1.0])
    with pytest.raises(ValueError, match="scores"):
        m.average_precision(np.ones((2, 1)), [1.0])
    # custom thresholds: one number per threshold
    assert m.average_precision(np.array([[0.6]]), [1.0], (0.5, 0.7)).tolist() == [1.0, 0.0]


def test_ap_with_two_ground_truth_windows_and_a_partial_recall() -> None:
    # One hit of two GT windows: precision 1 at recall 1/2, never reaching 1 -> AP 1/2.
    iou = temporal_iou_matrix([[0, 10]], [[0, 10], [20, 30]])
    assert m.average_precision(iou, [1.0]).tolist() == [0.5] * 10
    # A miss, then a hit: precision 1/2 at recall 1/2 -> 1/4.
    iou = temporal_iou_matrix([[40, 50], [0, 10]], [[0, 10], [20, 30]])
    assert m.average_precision(iou, [0.9, 0.8]).tolist() == [0.25] * 10


def test_voc_ap_interpolates_precision_from_the_right() -> None:
    # hit, miss, miss, hit with 2 GT: precision 1, 1/2, 1/3, 1/2 -> 0.5 * 1 + 0.5 * 0.5.
    assert m._voc_ap(np.array([1, 0.5, 1 / 3, 0.5]), np.array([0.5, 0.5, 0.5, 1.0])) == 0.75


# ---------------------------------------------------------------------------------------------- saliency


def test_saliency_matrix_sizes_grow_and_validate() -> None:
    query = q(1, [[0, 2]], duration=7, relevant_clip_ids=[0, 5], saliency_scores=[[1, 2], [3, 4]])
    mat = m._saliency_matrix(query)
    # int(7 / 2) = 3 clips, grown to hold clip id 5: 6 clips, 2 annotators, unlisted clips 0.
    assert mat.shape == (6, 2)
    assert mat.tolist() == [[1, 2], [0, 0], [0, 0], [0, 0], [0, 0], [3, 4]]
    no_duration = q(2, [[0, 2]], relevant_clip_ids=[1], saliency_scores=[[2, 2, 2]])
    assert m._saliency_matrix(no_duration).shape == (2, 3)
    assert m._saliency_matrix(q(3, [[0, 2]], duration=8, relevant_clip_ids=[],
                                saliency_scores=[])).shape == (4, 1)
    with pytest.raises(BadInput, match="different numbers of annotators"):
        m._saliency_matrix(q(4, [[0, 2]], duration=8, relevant_clip_ids=[0, 1],
                             saliency_scores=[[1, 2], [1]]))
    with pytest.raises(BadInput, match=">= 0"):
        m._saliency_matrix(q(5, [[0, 2]], duration=8, relevant_clip_ids=[-1], saliency_scores=[[1]]))


def test_highlight_hit1_counts_a_top_clip_past_the_video_as_a_miss() -> None:
    query = q(1, [[0, 2]], duration=4, relevant_clip_ids=[0, 1], saliency_scores=[[4], [4]])
    # Top score on clip 2 of a 2-clip video: no clip there, Hit1 0; AP still ranks clips 0-1.
    pred = p(1, [[0, 2, 1.0]], pred_saliency_scores=[0.1, 0.2, 0.9])
    hl = m.highlight_metrics([query], {1: pred})
    assert hl["HL-min-VeryGood"] == {"HL-mAP": 100.0, "HL-Hit1": 0.0}
    # No saliency predicted at all: nothing ranked, Hit1 0.
    hl = m.highlight_metrics([query], {1: p(1, [[0, 2, 1.0]])})
    assert hl["HL-min-Fair"]["HL-Hit1"] == 0.0
    with pytest.raises(BadInput, match="required for highlight"):
        m.highlight_metrics([q(2, [[0, 2]])], {})
    with pytest.raises(BadInput, match=r"pred_saliency_scores\[1\]"):
        m.highlight_metrics([query], {1: p(1, [], pred_saliency_scores=[0.1, float("nan")])})


def test_saliency_levels_are_thresholds_per_annotator() -> None:
    # Annotator scores 2 and 3 on the only clip of interest: Fair for both, Good for one, VeryGood none.
    query = q(1, [[0, 2]], duration=4, relevant_clip_ids=[0], saliency_scores=[[2, 3]])
    hl = m.highlight_metrics([query], {1: p(1, [[0, 2, 1.0]], pred_saliency_scores=[0.9, 0.1])})
    assert hl["HL-min-Fair"] == {"HL-mAP": 100.0, "HL-Hit1": 100.0}
    assert hl["HL-min-Good"] == {"HL-mAP": 50.0, "HL-Hit1": 100.0}
    assert hl["HL-min-VeryGood"] == {"HL-mAP": 0.0, "HL-Hit1": 0.0}


def test_saliency_predicted_needs_all_or_none() -> None:
    queries = [q(1, [[0, 2]]), q(2, [[0, 2]])]
    assert m.saliency_predicted(queries, {}) is False
    assert m.saliency_predicted(queries, {1: p(1, [], pred_saliency_scores=[1.0])}) is True
    with pytest.raises(BadInput, match="query 2|qid 2"):
        m.saliency_predicted(queries, {1: p(1, [], pred_saliency_scores=[1.0]), 2: p(2, [])})


# ---------------------------------------------------------------------------------------------- corpus


def test_corpus_answers_group_windows_by_video() -> None:
    query = q(1, [[0, 10]], corpus_windows=[["a", 0, 10], ["b", 5, 6], ["a", 20, 30]])
    answers = m.corpus_answers(query)
    assert answers is not None
    assert sorted(answers) == ["a", "b"]
    assert answers["a"].tolist() == [[0, 10], [20, 30]]
    assert answers["b"].shape == (1, 2)
    assert m.corpus_answers(q(2, [[0, 1]])) is None
    with pytest.raises(BadInput, match=r"corpus_windows\[0\]"):
        m.corpus_answers(q(3, [[0, 1]], corpus_windows=[["a", 0]]))
    with pytest.raises(BadInput, match=r"corpus_windows\[0\]\[2\]"):
        m.corpus_answers(q(4, [[0, 1]], corpus_windows=[["a", 0, "x"]]))


def test_corpus_recall_cuts_at_each_k() -> None:
    # The true video is the 6th distinct video; its moment is the 6th row (IoU 1).
    rows = [[f"x{i}", 0, 10, 1 - 0.1 * i] for i in range(5)] + [["a", 0, 10, 0.1]]
    preds = {1: p(1, [], vid=None, pred_moments=rows)}
    out = m.corpus_metrics([q(1, [[0, 10]], vid=None, truth_vid="a")], preds)
    assert out["video-R@1"] == 0.0 and out["video-R@5"] == 0.0 and out["video-R@10"] == 1.0
    assert out["moment-R@5@0.7"] == 0.0 and out["moment-R@10@0.7"] == 1.0
    # Repeats of one video count once: five rows in x0 then the true video is 2nd distinct.
    rows = [["x0", i, i + 1, 1.0] for i in range(5)] + [["a", 0, 10, 0.1]]
    out = m.corpus_metrics([q(1, [[0, 10]], vid=None, truth_vid="a")],
                           {1: p(1, [], vid=None, pred_moments=rows)})
    assert out["video-R@1"] == 0.0 and out["video-R@5"] == 1.0
    assert out["moment-R@5@0.5"] == 0.0 and out["moment-R@10@0.5"] == 1.0


def test_corpus_answers_limit_moment_recall_to_a_hundred_rows() -> None:
    rows = [["x", 50 + i, 51 + i, 1.0] for i in range(100)] + [["b", 20, 30, 0.1]]
    query = q(1, [[0, 10]], vid="a", corpus_windows=[["a", 0, 10], ["b", 20, 30]])
    out = m.corpus_metrics([query], {1: p(1, [], vid=None, pred_moments=rows)})
    assert out["video-R@5"] == 1.0  # b is the 2nd distinct video
    assert out["moment-R@100@0.5"] == 0.0  # its moment is row 101
    rows = rows[1:]
    out = m.corpus_metrics([query], {1: p(1, [], vid=None, pred_moments=rows)})
    assert out["moment-R@100@0.5"] == 1.0 and out["moment-R@10@0.5"] == 0.0


def test_corpus_answers_without_a_hit_and_a_query_without_windows() -> None:
    query = q(1, [[0, 10]], vid="a", corpus_windows=[["a", 0, 10]])
    absent = q(2, [], vid="a")
    out = m.corpus_metrics([query, absent], {1: p(1, [], vid=None, pred_moments=[["z", 0, 10, 1.0]])})
    assert out["video-R@100"] == 0.0 and out["moment-R@100@0.5"] == 0.0
    assert m.corpus_metrics([absent], {}) == {}
    assert m.grounding_metrics([absent], {}) == {}
    # A corpus query with no GT windows needs no true video.
    assert m.corpus_metrics([q(3, [], vid=None)], {}) == {}


def test_corpus_truth_vid_must_be_a_string() -> None:
    with pytest.raises(BadInput, match="truth_vid"):
        m.corpus_metrics([q(1, [[0, 10]], vid=None, truth_vid=7)], {})


def test_missing_corpus_prediction_is_a_miss_at_every_k() -> None:
    out = m.corpus_metrics([q(1, [[0, 10]], vid="a")], {})
    assert set(out.values()) == {0.0}


# ------------------------------------------------------------------------------------- buckets, breakdowns


def test_length_bucket_edges_and_empty_buckets() -> None:
    # A 10 s window is "short" (closed above), 10.5 s is "middle"; no long window: no "long" key.
    queries = [q(1, [[0, 10]]), q(2, [[0, 10.5]])]
    preds = {1: p(1, [[0, 10, 1.0]]), 2: p(2, [[0, 10.5, 1.0]])}
    qvh = m.qvhighlights_metrics(queries, preds, highlights=False)
    assert "long" not in qvh and "MR-long-mAP" not in qvh["brief"]
    assert qvh["short"]["MR-R1"]["0.95"] == 100.0 and qvh["middle"]["MR-mAP"]["average"] == 100.0
    assert list(qvh["brief"]) == sorted(qvh["brief"])


def test_qvhighlights_without_scorable_queries_has_an_empty_brief() -> None:
    assert m.qvhighlights_metrics([q(1, [])], {}, highlights=False) == {"brief": {}}


def test_breakdown_counts_a_repeated_group_once() -> None:
    queries = [q(1, [[0, 10]], tags=["speech", "speech"]), q(2, [[0, 10]], tags=["visual"])]
    seen: list[list[Any]] = []

    def fn(qs: Any, _preds: Any) -> dict[str, Any]:
        seen.append([x.qid for x in qs])
        return {"n": len(qs)}

    out = m.by_tag(queries, {}, fn)
    assert list(out) == ["speech", "visual"]
    assert out["speech"] == {"n": 1}
    assert m.by_lang([q(1, [[0, 1]], lang="en"), q(2, [[0, 1]])], {}, fn) == {"en": {"n": 1}}


def test_prediction_error_names_qid_field_and_side() -> None:
    err = m.PredictionError(7, "vid", "must be a string", side="ground truth")
    assert (err.qid, err.field_name, err.rule, err.side) == (7, "vid", "must be a string", "ground truth")
    assert str(err) == "ground truth for qid 7: field 'vid': must be a string"
    assert m.PredictionError(1, "x", "r").side == "prediction"


def test_non_finite_or_boolean_numbers_are_rejected() -> None:
    for bad in (float("inf"), True, "3"):
        with pytest.raises(BadInput, match=r"pred_relevant_windows\[0\]\[1\]"):
            m.grounding_metrics([q(1, [[0, 10]])], {1: p(1, [[0, bad, 1.0]])})
    with pytest.raises(BadInput, match=r"must be \[start, end, score\]"):
        m.grounding_metrics([q(1, [[0, 10]])], {1: p(1, [[0, 10]])})
    with pytest.raises(BadInput, match=r"pred_moments\[0\].*end < start"):
        m.corpus_metrics([q(1, [[0, 10]])], {1: p(1, [], pred_moments=[["v", 9, 3, 1.0]])})


# ----------------------------------------------------------------------------------------- found by mutmut


def test_qvhighlights_scores_a_query_without_prediction_as_a_miss() -> None:
    qvh = m.qvhighlights_metrics([q(1, [[0, 10]]), q(2, [[0, 10]])], {1: p(1, [[0, 10, 1.0]])},
                                 highlights=False)
    assert qvh["full"]["MR-R1"]["0.5"] == 50.0
    assert qvh["full"]["MR-mAP"]["average"] == 50.0


def test_highlights_without_a_prediction_row_miss() -> None:
    query = q(1, [[0, 2]], duration=4, relevant_clip_ids=[0], saliency_scores=[[4]])
    hl = m.highlight_metrics([query], {})
    assert hl["HL-min-VeryGood"] == {"HL-mAP": 50.0, "HL-Hit1": 0.0}  # all-zero scores tie: 1/2


def test_saliency_matrix_without_duration_or_clips_is_empty() -> None:
    assert m._saliency_matrix(q(1, [[0, 2]], relevant_clip_ids=[], saliency_scores=[])).shape == (0, 1)


def test_bad_numbers_name_the_qid_and_the_field() -> None:
    with pytest.raises(BadInput, match=r"prediction for qid 1: field 'pred_saliency_scores\[1\]'"):
        m._pred_saliency(q(1, [[0, 2]]), p(1, [], pred_saliency_scores=[0.1, "x"]))
    for row, field in ((["a", "x", 1], r"corpus_windows\[0\]\[1\]"),
                       (["a", 0, "x"], r"corpus_windows\[0\]\[2\]")):
        with pytest.raises(BadInput, match=rf"for qid 4: field '{field}'"):
            m.corpus_answers(q(4, [[0, 1]], corpus_windows=[row]))


def test_corpus_answer_ranked_second_is_not_a_top_one_hit() -> None:
    query = q(1, [[0, 10]], vid="a", corpus_windows=[["a", 0, 10], ["b", 20, 30]])
    rows = [["x", 0, 10, 1.0], ["b", 20, 30, 0.5]]
    out = m.corpus_metrics([query], {1: p(1, [], vid=None, pred_moments=rows)})
    assert out["video-R@1"] == 0.0 and out["video-R@5"] == 1.0


def test_corpus_answer_moments_are_scored_one_row_at_a_time() -> None:
    # Row 1 is in a true video but misses; row 2 hits. R@1 must not borrow row 2's IoU.
    query = q(1, [[0, 10]], vid="a", corpus_windows=[["a", 0, 10]])
    rows = [["a", 50, 60, 1.0], ["a", 0, 10, 0.5]]
    out = m.corpus_metrics([query], {1: p(1, [], vid=None, pred_moments=rows)})
    assert out["moment-R@1@0.5"] == 0.0 and out["moment-R@5@0.5"] == 1.0


def test_corpus_moment_recall_counts_iou_exactly_at_the_threshold() -> None:
    plain = q(1, [[0, 5]], vid="a")
    listed = q(2, [[0, 5]], vid="a", corpus_windows=[["a", 0, 5]])
    preds = {1: p(1, [], vid=None, pred_moments=[["a", 0, 10, 1.0]]),
             2: p(2, [], vid=None, pred_moments=[["a", 0, 10, 1.0]])}
    out = m.corpus_metrics([plain, listed], preds)
    assert out["moment-R@1@0.5"] == 1.0 and out["moment-R@1@0.7"] == 0.0


def test_saliency_ap_flattens_a_row_of_clips() -> None:
    # The same clips as one row of a 2-D table: flattened, the AP is the 1-D case's (ranks 1 and 3
    # relevant: precision 1/1 and 2/3, mean 5/6), not a one-clip video's 1.0 or a shape error.
    flat = m.saliency_average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
    row = m.saliency_average_precision([[1, 0, 1, 0]], [[0.9, 0.8, 0.7, 0.1]])
    assert flat == row == pytest.approx(5 / 6)


def test_tied_ground_truth_windows_try_the_later_one_first_among_many() -> None:
    # The tie of the 2-window case above, with two far-away GT windows added (so the IoU row has
    # more entries than a small sort keeps in order): [1, 11] still takes B, [0, 10] then finds A.
    iou = temporal_iou_matrix([[1, 11], [0, 10]], [[0, 10], [2, 12], [40, 50], [60, 70]])
    assert iou[0, 0] == iou[0, 1]
    # Up to 0.8 two hits of four GT windows, precision 1: AP 1/2. Above 9/11 only the second hits
    # (A, IoU 1): precision 1/2 at recall 1/4, AP 1/8.
    assert m.average_precision(iou, [0.9, 0.8]).tolist() == [0.5] * 7 + [0.125] * 3


def test_a_taken_ground_truth_window_falls_back_to_the_next_best() -> None:
    # GT A [0, 10], B [0, 9]. Both predictions are [0, 10]: the first takes A (IoU 1), the second
    # finds A taken and takes B (IoU 9/10). Both hit up to 0.9; at 0.95 the second misses: AP 1/2.
    iou = temporal_iou_matrix([[0, 10], [0, 10]], [[0, 10], [0, 9]])
    assert m.average_precision(iou, [0.9, 0.8]).tolist() == [1.0] * 9 + [0.5]


def test_equal_scores_keep_the_listed_order_when_map_resorts() -> None:
    # Scores 0.5, 0.5, 0.9, 0.9: by score the two 0.9 rows come first, in the order listed.
    # The hit listed first of them ranks first: AP 1; listed second, after a miss: AP 1/2.
    gt = [q(1, [[0, 10]])]
    rows = [[50, 60, 0.5], [70, 80, 0.5], [0, 10, 0.9], [20, 30, 0.9]]
    assert m.grounding_metrics(gt, {1: p(1, rows)})["mAP"] == 1.0
    rows[2], rows[3] = rows[3], rows[2]
    assert m.grounding_metrics(gt, {1: p(1, rows)})["mAP"] == 0.5


def test_ap_scores_each_threshold_on_its_own_in_any_order() -> None:
    # IoU 0.6: a miss at 0.7 must not stop the 0.5 listed after it from scoring.
    assert m.average_precision(np.array([[0.6]]), [1.0], (0.7, 0.5)).tolist() == [0.0, 1.0]
    assert m.average_precision(np.array([[0.6]]), [1.0], (0.9, 0.7, 0.55)).tolist() == [0.0, 0.0, 1.0]


def test_ap_compares_float32_ious_at_full_precision() -> None:
    # 0.7 stored as float32 is 0.69999998...: below the 0.7 threshold, as the value it holds is.
    iou = np.array([[0.7]], dtype=np.float32)
    assert float(iou[0, 0]) < 0.7
    assert m.average_precision(iou, [1.0], (0.5, 0.7)).tolist() == [1.0, 0.0]


def test_ap_ranks_unsigned_and_row_shaped_scores_by_value() -> None:
    # A miss then a hit; the hit has the higher score, so it ranks first (AP 1) whatever the
    # scores' dtype (unsigned votes: 0 < 3) or shape (one row of scores, flattened).
    iou = np.array([[0.0], [1.0]])
    assert m.average_precision(iou, np.array([0, 3], dtype=np.uint8)).tolist() == [1.0] * 10
    assert m.average_precision(iou, [[0.1, 0.9]]).tolist() == [1.0] * 10


def test_ap_is_exact_for_longer_rankings() -> None:
    # 7 GT windows; hits at ranks 1, 3, 4, 5, 7, 8, 10 of 10 (each its own GT window): precision
    # 1, 2/3, 3/4, 4/5, 5/7, 6/8, 7/10, interpolated from the right 1, .8, .8, .8, .75, .75, .7:
    # sum 5.6 over 7 GT = 0.8, to the last bit when summed as the official script does.
    iou = np.zeros((10, 7))
    iou[[0, 2, 3, 4, 6, 7, 9], range(7)] = 1.0
    scores = [1.0 - 0.05 * i for i in range(10)]
    assert m.average_precision(iou, scores).tolist() == [0.8] * 10
    # 6 GT windows; hits at ranks 1, 4, 5, 8 of 8: precision 1, 1/2, 3/5, 1/2, interpolated
    # 1, 3/5, 3/5, 1/2: 2.7 / 6 = 0.45 (recall stops at 4/6).
    iou = np.zeros((8, 6))
    iou[[0, 3, 4, 7], range(4)] = 1.0
    assert m.average_precision(iou, scores[:8]).tolist() == [0.45] * 10


def test_grounding_map_averages_each_threshold_over_queries_first() -> None:
    # Query 1: one window of IoU 2/3, AP 1 at 0.5-0.65 (4 thresholds). Query 2: two misses, then
    # IoU 10/13, AP 1/3 at 0.5-0.75 (6 thresholds). mAP = (4 * 1 + 6 * 1/3) / 20 = 0.3, the same
    # float as the official mean of per-threshold means (per-query means first give 0.3 + 4e-17).
    queries = [q(1, [[0, 10]]), q(2, [[0, 10]])]
    preds = {1: p(1, [[0, 15, 1.0]]), 2: p(2, [[50, 60, 0.9], [70, 80, 0.8], [0, 13, 0.7]])}
    assert m.grounding_metrics(queries, preds)["mAP"] == 0.3


def test_saliency_ap_sums_from_the_highest_recall_down() -> None:
    # Relevant at ranks 1, 2, 4, 5: precision 1, 1, 3/4, 4/5, interpolated 1, 1, 4/5, 4/5.
    # The reference sums 4/5 + 4/5 + 1 + 1 = 3.6 -> 0.9 exactly (the other way round gives
    # 3.5999999999999996).
    assert m.saliency_average_precision([1, 1, 0, 1, 1], [0.9, 0.8, 0.7, 0.6, 0.5]) == 0.9


def test_grounding_miou_counts_nothing_predicted_as_zero() -> None:
    queries = [q(1, [[0, 10]]), q(2, [[0, 10]]), q(3, [[0, 10]])]
    out = m.grounding_metrics(queries, {1: p(1, [[0, 10, 1.0]]), 2: p(2, [])})
    assert out["mIoU"] == 1 / 3


def test_best_iou_per_rank_is_cut_at_the_limit() -> None:
    # Per rank: IoU with the best GT window (1, 1/2, 1/2), 0 for a window in another video.
    rows = [["v", 0, 10, 0.9], ["v", 0, 20, 0.8], ["w", 0, 10, 0.7], ["v", 5, 10, 0.6]]
    case = m.ranked_case(q(1, [[0, 10]]), p(1, [], pred_moments=rows))
    assert m._best_iou_per_rank(case, 5).tolist() == [1.0, 0.5, 0.0, 0.5]
    assert m._best_iou_per_rank(case, 2).tolist() == [1.0, 0.5]
    assert m._best_iou_per_rank(m.ranked_case(q(1, [[0, 10]]), None), 5).shape == (0,)


def test_ranked_case_ious_reads_every_window_by_default_and_zeroes_other_videos() -> None:
    rows = [["v", 0, 10, 0.9], ["w", 0, 10, 0.8], ["v", 0, 5, 0.7]]
    case = m.ranked_case(q(1, [[0, 10]]), p(1, [], pred_moments=rows))
    assert case.ious().tolist() == [[1.0], [0.0], [0.5]]
    assert case.ious(2).tolist() == [[1.0], [0.0]]


def test_a_window_in_another_video_never_matches_for_map() -> None:
    qvh = m.qvhighlights_metrics([q(1, [[0, 10]])], {1: p(1, [[0, 10, 1.0]], vid="w")}, highlights=False)
    assert qvh["full"]["MR-mAP"]["average"] == 0.0 and qvh["full"]["MR-R1"]["0.5"] == 0.0


def test_a_prediction_without_vid_is_in_the_query_video() -> None:
    out = m.grounding_metrics([q(1, [[0, 10]])], {1: p(1, [[0, 10, 1.0]], vid=None)})
    assert out["R1@0.7"] == 1.0 and out["mAP"] == 1.0


def test_a_zero_length_predicted_window_is_scored_as_a_miss() -> None:
    # Only end < start is an error; [5, 5] overlaps nothing.
    out = m.grounding_metrics([q(1, [[0, 10]])], {1: p(1, [[5, 5, 1.0]])})
    assert out["R1@0.3"] == 0.0 and out["mIoU"] == 0.0
    case = m.ranked_case(q(1, [[0, 10]]), p(1, [], pred_moments=[["v", 5, 5, 1.0]]))
    assert case.windows.tolist() == [[5.0, 5.0]]


def test_highlights_need_both_saliency_fields() -> None:
    only_scores = q(1, [[0, 2]], saliency_scores=[[4]])
    only_clips = q(2, [[0, 2]], relevant_clip_ids=[0])
    for query in (only_scores, only_clips):
        assert m.has_saliency(query) is False
        with pytest.raises(BadInput, match=rf"qid {query.qid}: field 'saliency_scores': is required"):
            m.highlight_metrics([query], {})


def test_truth_vid_of_a_query_without_video_is_none() -> None:
    assert m.truth_vid(q(1, [], vid=None)) is None
    # A windowless corpus query next to a scored one needs no true video.
    out = m.corpus_metrics([q(1, [[0, 10]], vid="a"), q(2, [], vid=None)],
                           {1: p(1, [], vid=None, pred_moments=[["a", 0, 10, 1.0]])})
    assert out["video-R@1"] == 1.0
    # A query built in code (not read from a file) is still checked.
    built = Query(qid=3, query="q", vid=None, duration=None, relevant_windows=[(0.0, 10.0)],
                  extra={"truth_vid": 7})
    with pytest.raises(BadInput, match="ground truth for qid 3: field 'truth_vid'"):
        m.truth_vid(built)


@pytest.mark.parametrize(("moments", "windows", "field"), [
    ([["v", 0, 10]], None, "pred_moments[0]"),
    ([{"vid": "v", "start": 0, "end": 10, "score": 1.0}], None, "pred_moments[0]"),
    ([[7, 0, 10, 1.0]], None, "pred_moments[0]"),
    ([["v", "x", 10, 1.0]], None, "pred_moments[0][1]"),
    ([["v", 0, "x", 1.0]], None, "pred_moments[0][2]"),
    ([["v", 0, 10, "x"]], None, "pred_moments[0][3]"),
    (None, [[0, 10]], "pred_relevant_windows[0]"),
    (None, [(0, 10, 1.0), "abc"], "pred_relevant_windows[1]"),
    (None, [["x", 10, 1.0]], "pred_relevant_windows[0][0]"),
    (None, [[0, float("nan"), 1.0]], "pred_relevant_windows[0][1]"),
    (None, [[0, 10, True]], "pred_relevant_windows[0][2]"),
])
def test_ranked_case_names_the_qid_and_field_of_a_bad_row(moments: Any, windows: Any, field: str) -> None:
    # Built in code, so nothing checked the rows before ranked_case.
    pred = Prediction(qid=1, query="q", vid="v", pred_relevant_windows=windows or [], pred_moments=moments)
    with pytest.raises(BadInput, match=rf"^prediction for qid 1: field '{re.escape(field)}': must be"):
        m.ranked_case(q(1, [[0, 10]]), pred)
