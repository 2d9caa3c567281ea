"""Score curve -> windows: cases that no other test pins (found by mutation testing), each
worked out by hand at 1 sample per second (sample i covers [i, i + 1))."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.engine.proposals import ProposalConfig, infer_fps, nms, propose, smooth, window_score
from bench.errors import BadInput
from bench.spans import Window


def spans(*args: object, **kwargs: object) -> list[tuple[float, float, float]]:
    return [(w.start, w.end, round(w.score, 6)) for w in propose(*args, **kwargs)]  # type: ignore[arg-type]


def test_repeated_sample_times_are_allowed_and_ignored_by_the_rate() -> None:
    # Non-decreasing, not increasing: two samples at 1 s. Median 0.25, threshold 0.625: the
    # peak stands alone.
    assert spans([0, 1, 1, 2], [0, 1, 0.5, 0], fps=1.0) == [(1.0, 2.0, 1.0)]
    # Zero gaps say nothing about the rate: the median of the positive gaps (1 s) is.
    assert infer_fps(np.array([0.0, 0.0, 0.0, 1.0, 2.0])) == 1.0


def test_a_plateau_after_a_higher_sample_is_a_peak_too() -> None:
    # The first sample (2) stands alone above its threshold 1.5; the two 1s are a plateau that
    # grows into the second window [1, 3).
    assert spans([0, 1, 2, 3], [2, 1, 1, 0], fps=1.0) == [(0.0, 1.0, 2.0), (1.0, 3.0, 1.0)]


def test_a_capped_window_grows_toward_its_stronger_neighbour() -> None:
    # Threshold = median 0.7 (rel_threshold 0): both neighbours of the peak at 2 s qualify; 0.9
    # on the right beats 0.7 on the left, and the 2 s cap stops growth after one step.
    cfg = ProposalConfig(rel_threshold=0.0, max_len_s=2.0)
    assert spans([0, 1, 2, 3, 4], [0.1, 0.7, 1.0, 0.9, 0.1], fps=1.0, config=cfg) == [(2.0, 4.0, 1.0)]


def test_a_capped_plateau_continues_right_after_the_first_window() -> None:
    # Capped at 2 s, the first peak takes [0, 2); the next free sample starts [2, 4).
    cfg = ProposalConfig(max_len_s=2.0)
    assert spans([0, 1, 2, 3], [1, 1, 1, 1], fps=1.0, config=cfg) == [(0.0, 2.0, 1.0), (2.0, 4.0, 1.0)]


def test_sliding_windows_cover_the_tail() -> None:
    # 3 s windows every 1.5 s start at 0..6 and end by 9 s; one more starts at 7 s so the last
    # sample (the match) is in a window: samples 7-9 = 0, 0, 1, mean of the top 2 = 0.5.
    s = np.zeros(10)
    s[9] = 1.0
    cfg = ProposalConfig(strategy="sliding", window_s=[3.0], stride_frac=0.5, max_windows=1)
    assert spans(np.arange(10.0), s, fps=1.0, config=cfg) == [(7.0, 10.0, 0.5)]


def test_two_seconds_of_smoothing_is_a_three_sample_average() -> None:
    # Averaged over 3 samples, the lone 1 at 2 s (0.33) is weaker than the 0.6 plateau centre
    # (0.6), so the plateau's centre is grown first and the spike joins sample 1 in [1, 3);
    # windows are scored on the raw samples (top half: [0, 1] -> 1; [0.6, 0, 0, 0] -> 0.3).
    s = [0, 0, 1, 0, 0.6, 0.6, 0.6, 0, 0, 0]
    cfg = ProposalConfig(smooth_s=2.0)
    assert spans(np.arange(10.0), s, fps=1.0, config=cfg) == [
        (1.0, 3.0, 1.0), (5.0, 6.0, 0.6), (6.0, 10.0, 0.3), (3.0, 4.0, 0.0)]
    # Unsmoothed, the spike is its own window.
    assert spans(np.arange(10.0), s, fps=1.0)[0] == (2.0, 3.0, 1.0)


def test_a_sample_at_the_duration_gets_the_last_span_inside_the_video() -> None:
    assert spans([0, 1, 2, 3], [0, 0, 0, 1], duration_s=3.0, fps=1.0) == [
        (2.0, 3.0, 1.0), (0.0, 3.0, 0.0)]


# -- peak growth ------------------------------------------------------------------------------


def test_a_peak_grows_into_the_first_sample() -> None:
    # Median 0, threshold 0.5: the peak at 1 s takes the 0.9 before it, down to sample 0; the
    # zeros after it are the second window (a peak at the median spans its plateau).
    assert spans([0, 1, 2, 3, 4], [0.9, 1.0, 0, 0, 0], fps=1.0) == [(0.0, 2.0, 1.0), (2.0, 5.0, 0.0)]


def test_a_tie_between_neighbours_grows_toward_the_earlier_one() -> None:
    # Threshold = median 0.8 (rel_threshold 0): both neighbours of the peak qualify and are equal;
    # the 2 s cap allows one step, taken to the left.
    cfg = ProposalConfig(rel_threshold=0.0, max_len_s=2.0)
    assert spans(np.arange(5.0), [0, 0.8, 1.0, 0.8, 0], fps=1.0, config=cfg) == [(1.0, 3.0, 1.0)]


def test_equal_peaks_are_grown_in_time_order() -> None:
    # Threshold = median 0 (rel_threshold 0), cap 2 s. The peak at 3 s goes first and takes the 0.5
    # between the two equal peaks; the one at 5 s then grows right. Equal scores (1.0, top half):
    # the higher mean (0.75 against 0.5) first. The zeros at 0-1 s make the last window.
    cfg = ProposalConfig(rel_threshold=0.0, max_len_s=2.0)
    assert spans(np.arange(7.0), [0, 0, 0, 1, 0.5, 1, 0], fps=1.0, config=cfg) == [
        (3.0, 5.0, 1.0), (5.0, 7.0, 1.0), (0.0, 2.0, 0.0)]


def test_only_four_times_max_windows_peaks_are_grown() -> None:
    # Four 1.0 spikes, then a weaker 3 s plateau (0.999) whose length bonus (0.01 * ln 3) would
    # put it first. With max_windows=1 only the 4 strongest peaks are grown: the plateau is not.
    s = [1, 0, 1, 0, 1, 0, 1, 0, 0.999, 0.999, 0.999, 0, 0, 0, 0]
    t = np.arange(15.0)
    one = ProposalConfig(length_prior=0.01, max_windows=1)
    assert spans(t, s, fps=1.0, config=one) == [(0.0, 1.0, 1.0)]
    two = ProposalConfig(length_prior=0.01, max_windows=2)  # 8 peaks: the plateau is grown
    assert spans(t, s, fps=1.0, config=two) == [(8.0, 11.0, round(0.999 + 0.01 * math.log(3), 6)),
                                                (0.0, 1.0, 1.0)]


# -- the length cap: 1e-9 s of tolerance, and sliding scales over it ---------------------------


def test_a_window_a_nanosecond_over_the_cap_still_fits() -> None:
    # A 2 s window against a cap of 2 s - 1e-9: within the tolerance, with either strategy.
    cap = 2.0 - 1e-9
    s = [0, 1, 1, 0]
    assert spans(np.arange(4.0), s, fps=1.0, config=ProposalConfig(max_len_s=cap)) == [(1.0, 3.0, 1.0)]
    cfg = ProposalConfig(strategy="sliding", window_s=[2.0], stride_frac=0.5, max_len_s=cap, max_windows=1)
    assert spans(np.arange(4.0), s, fps=1.0, config=cfg) == [(1.0, 3.0, 1.0)]


@pytest.mark.parametrize(("max_len_s", "longest"), [(3.0, 2.0), (4.0, 4.0)])
def test_sliding_scales_longer_than_the_cap_are_skipped(max_len_s: float, longest: float) -> None:
    # On a constant curve the length prior ranks the longest window first; a scale equal to the
    # cap is kept.
    cfg = ProposalConfig(strategy="sliding", window_s=[2.0, 4.0], max_len_s=max_len_s,
                         length_prior=0.01, max_windows=1)
    assert spans(np.arange(8.0), np.ones(8), fps=1.0, config=cfg) == [
        (0.0, longest, round(1.0 + 0.01 * math.log(longest), 6))]


# -- sliding windows --------------------------------------------------------------------------


def test_sliding_windows_on_a_single_sample() -> None:
    # Every scale is longer than the curve: one window, on the one sample.
    one = propose([2.0], [0.7], duration_s=10.0, config=ProposalConfig(strategy="sliding"))
    assert one == [Window(2.0, 3.0, 0.7)]


def test_sliding_stride_is_a_fraction_of_the_scale() -> None:
    # 4 s windows every 2 s over 6 s: starts 0 and 2 only (nms_iou 1 keeps every window). Scores,
    # the mean of the top 2 of 4: [2, 6) holds 0.2-0.5 -> 0.45; [0, 4) holds 0-0.3 -> 0.25.
    cfg = ProposalConfig(strategy="sliding", window_s=[4.0], stride_frac=0.5, nms_iou=1.0)
    assert spans(np.arange(6.0), np.arange(6) / 10, fps=1.0, config=cfg) == [
        (2.0, 6.0, 0.45), (0.0, 4.0, 0.25)]


# -- the minimum length -----------------------------------------------------------------------


def test_min_len_half_a_second_over_the_window_still_widens() -> None:
    s = np.zeros(10)
    s[5] = 1.0
    w = spans(np.arange(10.0), s, duration_s=10.0, config=ProposalConfig(min_len_s=1.5))[0]
    assert w == (4.75, 6.25, 1.0)  # [5, 6] grows by 0.25 s on each side


def test_a_window_exactly_at_the_minimum_keeps_its_bounds_at_10_fps() -> None:
    # Samples 0.1-0.4 s cover [0.1, 0.5): already 0.4 s long. Re-deriving the start as
    # 0.5 - 0.4 would give 0.09999999999999998, not the first sample's time.
    s = np.zeros(10)
    s[1:5] = 1.0
    w = spans(np.arange(10) / 10, s, fps=10.0, config=ProposalConfig(min_len_s=0.4))[0]
    assert w == (0.1, 0.5, 1.0)


# -- rate, duration and dtype -----------------------------------------------------------------


def test_the_rate_of_two_samples_and_of_no_positive_gap() -> None:
    assert infer_fps(np.array([0.0, 0.5])) == 2.0
    assert infer_fps(np.array([3.0])) == 1.0
    assert infer_fps(np.array([3.0, 3.0])) == 1.0  # all at one time: no gap to measure


def test_a_half_second_clip_is_fine_and_a_zero_duration_is_not() -> None:
    # 4 fps (inferred), median 0.5: the 0.8 sample alone is the window; it ends at 0.5 s.
    assert propose([0.0, 0.25], [0.2, 0.8]) == [Window(0.25, 0.5, 0.8)]
    with pytest.raises(BadInput, match="duration_s"):
        propose([0.0], [0.5], duration_s=0.0)


def test_a_sample_at_a_one_second_duration_gets_the_first_second() -> None:
    assert spans([0, 1], [0, 1], duration_s=1.0, fps=1.0) == [(0.0, 1.0, 1.0)]


def test_float32_curves_give_the_float64_windows() -> None:
    # CLIP similarities are float32: the curve is read as float64, so the last window's end
    # (0.4 + 0.1) and the mean of 0.2 and 0.3 are not rounded to float32.
    t = np.arange(5, dtype=np.float32) / np.float32(10)
    s = np.array([0, 0, 0.2, 0.3, 0.9], dtype=np.float32)
    assert propose(t, s, fps=10.0) == propose(t.astype(np.float64), s.astype(np.float64), fps=10.0)


# -- scoring ----------------------------------------------------------------------------------


def test_the_length_prior_adds_length_prior_times_ln_seconds() -> None:
    s = np.zeros(10)
    s[5:8] = 1.0
    cfg = ProposalConfig(length_prior=0.01)
    assert spans(np.arange(10.0), s, fps=1.0, config=cfg)[0] == (5.0, 8.0, round(1.0 + 0.01 * math.log(3), 6))
    # Under a second the logarithm is negative: a penalty.
    assert window_score(np.array([1.0]), 0.5, cfg) == pytest.approx(1.0 + 0.01 * math.log(0.5))


def test_top_fraction_one_is_the_plain_mean() -> None:
    # Summed in the samples' order, bit for bit.
    assert window_score(np.array([0.45, 0.13, 0.4]), 3.0, ProposalConfig(top_fraction=1.0)) == (
        (0.45 + 0.13 + 0.4) / 3)


# -- smoothing --------------------------------------------------------------------------------


def test_smoothing_averages_what_is_there_at_the_edges() -> None:
    # Width 3: the edges average 2 samples, the inside 3.
    assert smooth(np.array([0.0, 3.0, 0.0, 0.0]), 3).tolist() == [1.5, 1.0, 1.0, 0.0]
    assert smooth(np.array([0.7]), 3).tolist() == [0.7]


def test_an_even_width_averages_each_sample_with_one_neighbour() -> None:
    # An even width cannot be centred; whichever neighbour it takes, a spike is halved and spread
    # over two samples, on a two-sample curve too.
    assert sorted(smooth(np.array([0.0, 1.0, 0.0]), 2).tolist()) == [0.0, 0.5, 0.5]
    assert smooth(np.array([0.0, 1.0]), 2).tolist() in ([0.0, 0.5], [0.5, 1.0])


def test_one_second_of_smoothing_at_2_fps_is_a_three_sample_average() -> None:
    # As at 1 fps with 2 s: the spike at 1 s averages to 1/3, below the 0.6 plateau centre.
    t = np.arange(10) / 2
    s = [0, 0, 1, 0, 0, 0.6, 0.6, 0.6, 0, 0]
    assert spans(t, s, fps=2.0, config=ProposalConfig(smooth_s=1.0))[0] == (3.0, 3.5, 0.6)
    assert spans(t, s, fps=2.0)[0] == (1.0, 1.5, 1.0)


# -- NMS --------------------------------------------------------------------------------------


def test_nms_drops_overlaps_above_half_by_default() -> None:
    # IoU 0.9 with the best: dropped; IoU exactly 0.5: kept.
    assert nms([(0, 10, 0.9), (1, 10, 0.5), (0, 5, 0.4)]) == [Window(0.0, 10.0, 0.9), Window(0.0, 5.0, 0.4)]


def test_smoothing_wider_than_the_curve_keeps_its_length() -> None:
    # every sample then averages all that is there; a short curve still gets its windows
    assert smooth(np.array([0.0, 1.0]), 3).tolist() == [0.5, 0.5]
    assert smooth(np.array([0.0, 3.0, 0.0]), 9).tolist() == [1.0, 1.0, 1.0]
    assert smooth(np.array([0.0, 0.0, 3.0]), 4).tolist() == [0.0, 1.0, 1.0]  # 2 before, 1 after
    windows = propose([0.0, 1.0], [0.0, 1.0], config=ProposalConfig(smooth_s=2.0))
    assert windows and all(0.0 <= w.start < w.end <= 2.0 for w in windows)


def test_a_width_of_zero_or_one_sample_leaves_the_curve_as_it_is() -> None:
    x = np.array([0.0, 3.0, 1.0])
    assert smooth(x, 0).tolist() == [0.0, 3.0, 1.0] and smooth(x, 1).tolist() == [0.0, 3.0, 1.0]
    assert smooth(np.array([2.0]), 5).tolist() == [2.0]
