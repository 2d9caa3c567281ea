"""Time spans: temporal IoU of one pair and of arrays of spans, and merging overlapping windows."""

from __future__ import annotations

import numpy as np
import pytest

from bench.errors import BadInput
from bench.spans import Window, merge_overlapping, paired_iou, temporal_iou, temporal_iou_matrix


def test_temporal_iou_values() -> None:
    assert temporal_iou((0, 10), (5, 15)) == pytest.approx(5 / 15)
    assert temporal_iou((0, 1), (2, 3)) == 0.0
    assert temporal_iou((0, 1), (1, 3)) == 0.0  # touching is not overlapping
    assert temporal_iou((0, 4), (1, 3)) == pytest.approx(0.5)
    assert temporal_iou(Window(0.0, 10.0, 0.9), (5.0, 15.0, 0.1)) == pytest.approx(5 / 15)


def test_iou_identical_disjoint_nested_touching() -> None:
    iou = temporal_iou_matrix([[0, 10], [20, 30], [2, 4], [10, 12]], [[0, 10]])
    assert iou[:, 0].tolist() == [1.0, 0.0, pytest.approx(0.2), 0.0]


def test_iou_partial_overlap_and_degenerate_window() -> None:
    iou = temporal_iou_matrix([[5, 15], [3, 3], [8, 2]], [[0, 10], [10, 20]])
    assert iou[0].tolist() == pytest.approx([5 / 15, 5 / 15])
    assert iou[1:].tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert temporal_iou_matrix(np.zeros((0, 2)), [[0, 1]]).shape == (0, 1)


def test_scalar_matrix_and_paired_iou_agree() -> None:
    rng = np.random.default_rng(7)
    a = np.sort(rng.uniform(0, 60, (40, 2)), axis=1)
    b = np.sort(rng.uniform(0, 60, (40, 2)), axis=1)
    scalar = [temporal_iou(x, y) for x, y in zip(a.tolist(), b.tolist(), strict=True)]
    assert any(s > 0 for s in scalar) and any(s == 0 for s in scalar)
    # Same union (the hull) in the same float operations: equal to the last bit.
    assert paired_iou(a, b).tolist() == scalar
    assert np.diag(temporal_iou_matrix(a, b)) == pytest.approx(scalar, abs=1e-12)
    assert temporal_iou_matrix(a, b).shape == (40, 40)


def test_merge_overlapping_max_and_sum() -> None:
    windows = [(0.0, 5.0, 0.2), (4.0, 8.0, 0.6), (9.0, 10.0, 0.1), (20.0, 21.0, 0.3)]
    merged = merge_overlapping(windows)
    assert merged == [Window(0.0, 8.0, 0.6), Window(20.0, 21.0, 0.3), Window(9.0, 10.0, 0.1)]
    merged_gap = merge_overlapping(windows, gap_s=1.0, score="sum")
    assert merged_gap[0][:2] == (0.0, 10.0) and merged_gap[0].score == pytest.approx(0.9)
    with pytest.raises(BadInput):
        merge_overlapping(windows, gap_s=-1.0)
