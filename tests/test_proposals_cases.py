"""Score curve -> windows: cases that no other test pins (found by mutation testing), each
worked out by hand at 1 sample per second (sample i covers [i, i + 1))."""

from __future__ import annotations

import numpy as np

from bench.engine.proposals import ProposalConfig, infer_fps, propose


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
