"""Retrieval metrics and the evaluate engine on hand-built cases whose answers are worked out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.errors import BadInput
from bench.eval import metrics as m
from bench.eval.evaluate import evaluate_files, evaluate_predictions, format_table, is_qvhighlights_style
from bench.spans import temporal_iou_matrix
from bench.types import Prediction, Query


def q(qid: int, windows: list[list[float]], vid: str | None = "v", **kw: Any) -> Query:
    row = {"qid": qid, "query": f"query {qid}", "vid": vid, "relevant_windows": windows, **kw}
    return Query.from_row(row)


def p(qid: int, windows: list[list[float]], vid: str | None = "v", **kw: Any) -> Prediction:
    return Prediction.from_row({"qid": qid, "query": f"query {qid}", "vid": vid,
                                "pred_relevant_windows": windows, **kw})


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- AP


def test_average_precision_by_hand() -> None:
    # Ranked: hit GT0, miss, hit GT1 -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    # VOC all-point: 0.5 * 1 + 0.5 * 2/3 = 5/6 at every threshold.
    gt = [[0, 10], [20, 30]]
    pred = np.array([[0, 10], [40, 50], [20, 30]], dtype=float)
    ap = m.average_precision(temporal_iou_matrix(pred, gt), [0.9, 0.8, 0.7])
    assert ap.shape == (10,)
    assert ap == pytest.approx([5 / 6] * 10)


def test_average_precision_sorts_by_score_and_counts_duplicates_as_false() -> None:
    # By score: [0,10] (hit), [0,10] again (the GT is taken: false), [0,12] (IoU 10/12 = 0.833).
    gt = [[0, 10]]
    pred = np.array([[0, 12], [0, 10], [0, 10]], dtype=float)
    ap = m.average_precision(temporal_iou_matrix(pred, gt), [0.1, 0.9, 0.8])
    assert ap == pytest.approx([1.0] * 10)
    # With [0,12] ranked first: a hit up to IoU 0.8 (AP 1); above 0.833 a false positive before
    # the hit, so precision 0 then 1/2 at recall 1 (AP 1/2).
    ap = m.average_precision(temporal_iou_matrix(pred, gt), [0.9, 0.1, 0.2])
    by_threshold = dict(zip(m.QVH_IOUS, ap, strict=True))
    assert by_threshold[0.8] == pytest.approx(1.0)
    assert by_threshold[0.85] == pytest.approx(0.5)


def test_average_precision_edge_cases() -> None:
    assert m.average_precision(np.zeros((0, 1)), []).tolist() == [0.0] * 10
    with pytest.raises(ValueError, match="ground-truth"):
        m.average_precision(np.zeros((2, 0)), [1, 2])


def test_saliency_average_precision_by_hand() -> None:
    # Relevant at ranks 1 and 3: precision 1 and 2/3 -> 5/6.
    assert m.saliency_average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(5 / 6)
    # A tie at the top reaches recall 1/2 with precision 1/2; recall 1 with precision 2/4.
    assert m.saliency_average_precision([1, 0, 0, 1], [0.5, 0.5, 0.1, 0.0]) == pytest.approx(0.5)
    # Short score lists are zero-padded, long ones cut: [0.2] + [0, 0] ranks clip 0 first.
    assert m.saliency_average_precision([1, 0, 0], [0.2]) == pytest.approx(1.0)
    # Interpolated: recall 1/2 is first reached at precision 1/2, but 2/3 is reachable at recall 1.
    assert m.saliency_average_precision([0, 1, 1], [0.9, 0.8, 0.7]) == pytest.approx(2 / 3)
    assert m.saliency_average_precision([0, 0], [1, 2]) == 0.0
    assert m.saliency_average_precision([1, 1], [1, 2]) == 1.0


# ---------------------------------------------------------------------------------------------- grounding


def three_queries() -> tuple[list[Query], list[Prediction]]:
    queries = [q(1, [[0, 10]], tags=["speech"], lang="en"),
               q(2, [[10, 20]], tags=["speech", "visual"], lang="en"),
               q(3, [[0, 4]], tags=["visual"], lang="ja")]
    preds = [p(1, [[0, 10, 0.9], [20, 30, 0.8]]),      # top-1 IoU 1
             p(2, [[15, 25, 0.9], [10, 20, 0.5]]),     # top-1 IoU 1/3, rank 2 exact
             p(3, [[10, 20, 0.9]])]                    # nothing
    return queries, preds


def test_grounding_metrics_on_three_queries() -> None:
    queries, preds = three_queries()
    out = m.grounding_metrics(queries, {x.qid: x for x in preds})
    assert out == pytest.approx({
        "R1@0.3": 2 / 3, "R1@0.5": 1 / 3, "R1@0.7": 1 / 3,
        "R5@0.3": 2 / 3, "R5@0.5": 2 / 3, "R5@0.7": 2 / 3,
        "mIoU": (1 + 1 / 3 + 0) / 3,
        # AP: 1 (hit then miss), 1/2 (miss then hit), 0.
        "mAP": 0.5,
    })


def test_grounding_uses_list_order_and_best_gt_window() -> None:
    # Top-1 is the first row; two GT windows, the second matches.
    queries = [q(1, [[0, 5], [20, 30]])]
    out = m.grounding_metrics(queries, {1: p(1, [[20, 30, 0.1], [0, 5, 0.9]])})
    assert out["R1@0.7"] == 1.0
    assert out["mIoU"] == 1.0


def test_missing_prediction_or_no_windows_scores_a_miss() -> None:
    out = m.grounding_metrics([q(1, [[0, 10]]), q(2, [[0, 10]])], {1: p(1, [[0, 10, 1.0]]), 2: p(2, [])})
    assert out["R1@0.3"] == 0.5
    assert out["mAP"] == 0.5


def test_window_of_another_video_never_matches() -> None:
    out = m.grounding_metrics([q(1, [[0, 10]], vid="a")], {1: p(1, [[0, 10, 1.0]], vid="b")})
    assert out["R5@0.3"] == 0.0


def test_end_before_start_is_an_error_naming_the_window() -> None:
    with pytest.raises(BadInput, match=r"pred_relevant_windows\[1\].*end < start"):
        m.grounding_metrics([q(1, [[0, 10]])], {1: p(1, [[0, 10, 1.0], [9, 3, 0.5]])})


# ---------------------------------------------------------------------------------------------- corpus


def corpus_case() -> tuple[list[Query], dict[Any, Prediction]]:
    queries = [q(1, [[0, 10]], vid=None, truth_vid="a"), q(2, [[0, 10]], vid=None, truth_vid="c")]
    preds = {
        1: p(1, [], vid=None, pred_moments=[["b", 0, 10, 0.9], ["a", 1, 10, 0.8], ["a", 0, 10, 0.7]]),
        2: p(2, [], vid=None, pred_moments=[["c", 5, 15, 0.9]]),
    }
    return queries, preds


def test_corpus_recall_at_k() -> None:
    queries, preds = corpus_case()
    out = m.corpus_metrics(queries, preds)
    # Query 1: true video second among distinct videos; its first moment there has IoU 0.9.
    # Query 2: true video first, IoU 5/15.
    assert out["video-R@1"] == 0.5
    assert out["video-R@5"] == 1.0
    assert out["video-R@100"] == 1.0
    assert out["moment-R@1@0.5"] == 0.0
    assert out["moment-R@5@0.5"] == 0.5
    assert out["moment-R@5@0.7"] == 0.5
    assert out["moment-R@100@0.7"] == 0.5
    assert len(out) == 4 + 4 * 2
    # Grounding keys on the same ranking: query 1's top moment is in the wrong video.
    grounding = m.grounding_metrics(queries, preds)
    assert grounding["R1@0.5"] == 0.0
    assert grounding["R5@0.5"] == 0.5


def test_corpus_on_known_vid_set_uses_vid_as_truth() -> None:
    queries = [q(1, [[0, 10]], vid="a")]
    preds = {1: p(1, [], vid="b", pred_moments=[["b", 0, 10, 0.9], ["a", 0, 10, 0.5]])}
    out = m.corpus_metrics(queries, preds)
    assert out["video-R@1"] == 0.0
    assert out["video-R@5"] == 1.0
    assert out["moment-R@5@0.7"] == 1.0


def test_corpus_query_without_truth_is_an_error() -> None:
    with pytest.raises(BadInput, match="truth_vid"):
        m.corpus_metrics([q(1, [[0, 10]], vid=None)], {})


def test_bad_pred_moment_row_is_an_error() -> None:
    with pytest.raises(BadInput, match=r"pred_moments\[0\]"):
        m.corpus_metrics([q(1, [[0, 10]])], {1: p(1, [], pred_moments=[[0, 10, 0.5]])})


# ---------------------------------------------------------------------------------------------- breakdowns


def test_breakdown_by_tag_and_lang() -> None:
    queries, preds = three_queries()
    result = evaluate_predictions(queries, preds)
    assert set(result["by_tag"]) == {"speech", "visual"}
    assert result["by_tag"]["speech"]["n_queries"] == 2
    assert result["by_tag"]["speech"]["R1@0.5"] == 0.5       # queries 1 and 2
    assert result["by_tag"]["visual"]["R1@0.5"] == 0.0       # queries 2 and 3
    assert result["by_tag"]["visual"]["R5@0.5"] == 0.5
    assert result["by_lang"]["en"]["mIoU"] == pytest.approx((1 + 1 / 3) / 2)
    assert result["by_lang"]["ja"]["n_queries"] == 1
    assert "by_tag" not in result["by_tag"]["speech"]


# ---------------------------------------------------------------------------------------------- QVHighlights


def qvh_pair() -> tuple[list[Query], list[Prediction]]:
    # Video 1: 4 clips; clips 1 and 2 scored by 3 annotators. Video 2: 2 clips, clip 0 scored 3.
    queries = [
        q(1, [[2, 6]], vid="v1", duration=8, relevant_clip_ids=[1, 2],
          saliency_scores=[[4, 2, 1], [2, 3, 1]]),
        q(2, [[0, 2]], vid="v2", duration=4, relevant_clip_ids=[0], saliency_scores=[[3, 3, 3]]),
    ]
    preds = [p(1, [[2, 6, 0.9]], vid="v1", pred_saliency_scores=[0.1, 0.9, 0.5, 0.2]),
             p(2, [[2, 4, 0.9]], vid="v2", pred_saliency_scores=[0.1, 0.9])]
    return queries, preds


def test_highlight_metrics_by_hand() -> None:
    queries, preds = qvh_pair()
    hl = m.highlight_metrics(queries, {x.qid: x for x in preds})
    # Per annotator AP, query 1 / query 2:
    #   Fair (>=2): 1, 1, 0 / .5, .5, .5   Good (>=3): 1, .5, 0 / .5, .5, .5   VeryGood: 1, 0, 0 / 0, 0, 0
    # Hit1: query 1's top clip (1) is relevant for annotator 0 at every level; query 2's (1) never.
    assert hl == {
        "HL-min-Fair": {"HL-mAP": 58.33, "HL-Hit1": 50.0},
        "HL-min-Good": {"HL-mAP": 50.0, "HL-Hit1": 50.0},
        "HL-min-VeryGood": {"HL-mAP": 16.67, "HL-Hit1": 50.0},
    }


def test_qvhighlights_dict_layout_buckets_and_brief() -> None:
    queries, preds = qvh_pair()
    result = evaluate_predictions(queries, preds)
    assert is_qvhighlights_style(queries)
    qvh = result["qvhighlights"]
    # Both GT windows are 2-4 s: only the "short" bucket exists.
    assert list(qvh) == ["brief", "HL-min-Fair", "HL-min-Good", "HL-min-VeryGood", "full", "short"]
    assert list(qvh["full"]["MR-mAP"]) == [*(str(t) for t in m.QVH_IOUS), "average"]
    assert qvh["full"]["MR-R1"]["0.5"] == 50.0
    assert qvh["full"]["MR-mAP"]["average"] == 50.0
    assert "MR-long-mAP" not in qvh["brief"]
    assert qvh["brief"]["MR-short-mAP"] == 50.0
    assert result["MR-full-R1@0.7"] == 50.0
    assert result["HL-min-Fair-mAP"] == 58.33
    assert result["R1@0.7"] == 0.5
    assert result["mAP"] == 0.5


def test_length_buckets_are_open_below_closed_above() -> None:
    # 10 s is short, 30 s middle, 30.5 s long; a query keeps only its windows in the bucket.
    queries = [q(1, [[0, 10], [20, 60]]), q(2, [[0, 30]]), q(3, [[0, 30.5]])]
    preds = {1: p(1, [[20, 60, 1.0]]), 2: p(2, [[0, 30, 1.0]]), 3: p(3, [[0, 10, 1.0]])}
    qvh = m.qvhighlights_metrics(queries, preds, highlights=False)
    assert qvh["short"]["MR-R1"]["0.5"] == 0.0     # query 1 against [0, 10] only
    assert qvh["middle"]["MR-R1"]["0.5"] == 100.0  # query 2
    assert qvh["long"]["MR-R1"]["0.5"] == 50.0     # query 1 against [20, 60], query 3 misses
    assert qvh["full"]["MR-R1"]["0.5"] == pytest.approx(66.67)


def test_highlight_keys_omitted_without_predicted_saliency() -> None:
    queries, preds = qvh_pair()
    for x in preds:
        x.pred_saliency_scores = None
    result = evaluate_predictions(queries, preds)
    assert "MR-full-mAP" in result
    assert not any(k.startswith("HL-") for k in result)
    assert not any(k.startswith("HL-") for k in result["qvhighlights"]["brief"])


def test_mixed_predicted_saliency_is_an_error() -> None:
    queries, preds = qvh_pair()
    preds[1].pred_saliency_scores = None
    with pytest.raises(BadInput, match=r"predictions\[1\].*pred_saliency_scores"):
        evaluate_predictions(queries, preds)


def test_plain_set_has_no_qvhighlights_keys() -> None:
    queries, preds = three_queries()
    result = evaluate_predictions(queries, preds)
    assert "qvhighlights" not in result
    assert "MR-full-mAP" not in result
    assert result["n_queries"] == 3


# ---------------------------------------------------------------------------------------------- files


def test_evaluate_files_unknown_qid_names_file_and_line(tmp_path: Path) -> None:
    gt = write_jsonl(tmp_path / "gt.jsonl", [q(1, [[0, 10]]).to_row()])
    pred = write_jsonl(tmp_path / "pred.jsonl", [p(1, [[0, 10, 1.0]]).to_row(), p(7, []).to_row()])
    with pytest.raises(BadInput, match=r"pred\.jsonl:2: field 'qid': qid 7 is not in"):
        evaluate_files(gt, pred)


def test_evaluate_files_qid_type_mismatch_hint(tmp_path: Path) -> None:
    gt = write_jsonl(tmp_path / "gt.jsonl", [q(1, [[0, 10]]).to_row()])
    row = p(1, [[0, 10, 1.0]]).to_row() | {"qid": "1"}
    pred = write_jsonl(tmp_path / "pred.jsonl", [row])
    with pytest.raises(BadInput, match="string vs integer"):
        evaluate_files(gt, pred)


def test_evaluate_files_missing_predictions(tmp_path: Path) -> None:
    gt = write_jsonl(tmp_path / "gt.jsonl", [q(1, [[0, 10]]).to_row(), q(2, [[0, 10]]).to_row()])
    pred = write_jsonl(tmp_path / "pred.jsonl", [p(1, [[0, 10, 1.0]]).to_row()])
    with pytest.raises(BadInput, match=r"no prediction for 1 of 2 queries .*qid 2"):
        evaluate_files(gt, pred)
    result = evaluate_files(gt, pred, require_all=False)
    assert result["n_queries"] == 1
    assert result["n_unpredicted"] == 1
    assert result["R1@0.7"] == 1.0


def test_evaluate_files_bad_prediction_value_names_line(tmp_path: Path) -> None:
    gt = write_jsonl(tmp_path / "gt.jsonl", [q(1, [[0, 10]]).to_row(), q(2, [[0, 10]]).to_row()])
    rows = [p(1, [[0, 10, 1.0]]).to_row(), p(2, [[8, 2, 1.0]]).to_row()]
    pred = write_jsonl(tmp_path / "pred.jsonl", rows)
    with pytest.raises(BadInput, match=r"pred\.jsonl:2: field 'pred_relevant_windows\[0\]'"):
        evaluate_files(gt, pred)


def test_format_table_shows_sections_and_percent() -> None:
    queries, preds = three_queries()
    text = format_table(evaluate_predictions(queries, preds))
    lines = text.splitlines()
    assert lines[0] == "queries: 3"
    assert "QVHighlights" not in text
    header = next(line for line in lines if line.split()[:1] == ["n"])
    assert header.split() == ["n", "R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7", "mIoU", "mAP"]
    row = next(line for line in lines if line.startswith("all "))
    assert row.split() == ["all", "3", "66.67", "33.33", "33.33", "66.67", "66.67", "66.67", "44.44", "50.00"]
    assert any(line.split()[:3] == ["tag:speech", "2", "100.00"] for line in lines)
    assert any(line.startswith("lang:ja ") for line in lines)


def test_format_table_qvhighlights_and_corpus() -> None:
    queries, preds = qvh_pair()
    text = format_table(evaluate_predictions(queries, preds))
    assert "  HL-min-Fair-mAP        58.33" in text.splitlines()
    cq, cp = corpus_case()
    text = format_table(evaluate_predictions(cq, list(cp.values())))
    assert "Corpus retrieval (percent)" in text
    assert math.isclose(evaluate_predictions(cq, list(cp.values()))["video-R@1"], 0.5)


def test_corpus_windows_count_every_true_answer():
    from bench.eval.metrics import corpus_metrics
    from bench.types import Prediction, Query

    q = Query.from_row({"qid": "c1", "query": "a ginger cat", "vid": "a", "duration": 30,
                        "relevant_windows": [[0, 10]],
                        "corpus_windows": [["a", 0, 10], ["b", 20, 30]]})
    # the top moment is the same photograph in another video: a true answer too
    p = Prediction(qid="c1", query="a ginger cat", vid="b", pred_relevant_windows=[],
                   pred_moments=[["b", 20, 30, 0.9], ["c", 0, 5, 0.5], ["a", 0, 4, 0.4]])
    m = corpus_metrics([q], {"c1": p})
    assert m["video-R@1"] == 1.0
    assert m["moment-R@1@0.7"] == 1.0
    plain = Query.from_row({"qid": "c1", "query": "a ginger cat", "vid": "a", "duration": 30,
                            "relevant_windows": [[0, 10]]})
    m = corpus_metrics([plain], {"c1": p})
    assert m["video-R@1"] == 0.0 and m["video-R@5"] == 1.0
    assert m["moment-R@5@0.5"] == 0.0  # [0, 4] against [0, 10] is IoU 0.4
