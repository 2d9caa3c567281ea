"""Score curve -> windows: hand-made curves with known answers and NMS."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from bench.engine.proposals import ProposalConfig, nms, propose, window_score
from bench.errors import BadInput
from bench.spans import Window, temporal_iou

STRATEGIES = ("peak", "sliding")


def brief_vs_long_curve() -> tuple[np.ndarray, np.ndarray]:
    """120 s at 1 fps: a 2 s strong match at 20-22 s and a 40 s lukewarm stretch at 60-100 s."""
    t = np.arange(120, dtype=np.float64)
    s = np.full(120, 0.18)
    s[20:22] = 0.32
    s[60:100] = 0.27
    return t, s


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_brief_strong_match_outranks_long_lukewarm(strategy: str) -> None:
    t, s = brief_vs_long_curve()
    windows = propose(t, s, duration_s=120.0, config=ProposalConfig(strategy=strategy))
    best = windows[0]
    assert best.start >= 16.0 and best.end <= 26.0, best
    assert temporal_iou(best, (20.0, 22.0)) > 0.3
    long_hits = [w for w in windows if temporal_iou(w, (60.0, 100.0)) > 0.3]
    assert long_hits, windows
    assert best.score > long_hits[0].score


def test_plain_mean_scoring_would_prefer_the_long_window() -> None:
    # The mean over the grown windows is what the default avoids: show the scores it gives.
    t, s = brief_vs_long_curve()
    brief = window_score(s[18:24], 6.0, ProposalConfig(top_fraction=1.0))
    long = window_score(s[58:102], 44.0, ProposalConfig(top_fraction=1.0))
    assert long > brief  # a sloppy brief window loses under the plain mean ...
    brief_top = window_score(s[18:24], 6.0, ProposalConfig())
    long_top = window_score(s[58:102], 44.0, ProposalConfig())
    assert brief_top > long_top  # ... and wins under the top-fraction mean


def test_length_prior_at_its_cap_does_not_flip_the_ranking() -> None:
    t, s = brief_vs_long_curve()
    windows = propose(t, s, duration_s=120.0, config=ProposalConfig(length_prior=0.01))
    assert windows[0].start >= 16.0 and windows[0].end <= 26.0
    with pytest.raises(ValidationError):
        ProposalConfig(length_prior=0.5)


def test_peak_growth_exact_window_and_frame_coverage() -> None:
    t = np.arange(10, dtype=np.float64)
    s = np.array([0, 0, 0.4, 0.9, 1.0, 0.8, 0.2, 0, 0, 0], dtype=np.float64)
    (w, *_rest) = propose(t, s, duration_s=10.0, config=ProposalConfig(rel_threshold=0.5))
    # Samples 3..5 are >= 0 + 0.5 * 1.0; sample 5 covers [5, 6].
    assert (w.start, w.end) == (3.0, 6.0)
    assert w.score == pytest.approx(np.mean([1.0, 0.9]))  # top half of 3 samples = 2 samples


def test_absolute_delta_is_the_stricter_threshold() -> None:
    t = np.arange(10, dtype=np.float64)
    s = np.array([0, 0, 0.4, 0.9, 1.0, 0.8, 0.2, 0, 0, 0], dtype=np.float64)
    w = propose(t, s, duration_s=10.0, config=ProposalConfig(rel_threshold=0.1, delta=0.15))[0]
    assert (w.start, w.end) == (3.0, 5.0)  # 0.9 >= 1.0 - 0.15 but 0.8 is not


def test_max_len_caps_growth_toward_the_stronger_side() -> None:
    t = np.arange(10, dtype=np.float64)
    s = np.array([0, 0.6, 0.7, 0.9, 1.0, 0.8, 0.6, 0, 0, 0], dtype=np.float64)
    w = propose(t, s, duration_s=10.0, config=ProposalConfig(rel_threshold=0.5, max_len_s=3.0))[0]
    assert (w.start, w.end) == (3.0, 6.0)  # 1.0 -> 0.9 (left) -> 0.8 (right), then capped


def test_windows_clip_to_duration_and_respect_fps() -> None:
    t = np.arange(0, 5, 0.5)  # 2 fps, last sample 4.5 s covers [4.5, 5.0]
    s = np.zeros_like(t)
    s[-2:] = 1.0
    w = propose(t, s, duration_s=4.8, config=ProposalConfig())[0]
    assert w.start == pytest.approx(4.0)
    assert w.end == pytest.approx(4.8)  # t + 1/fps = 5.0, clipped to the duration
    w2 = propose(t, s, config=ProposalConfig())[0]
    assert w2.end == pytest.approx(5.0)


def test_min_len_widens_inside_the_video() -> None:
    t = np.arange(10, dtype=np.float64)
    s = np.zeros(10)
    s[0] = 1.0
    w = propose(t, s, duration_s=10.0, config=ProposalConfig(min_len_s=4.0))[0]
    assert (w.start, w.end) == (0.0, 4.0)


def test_two_peaks_give_two_windows_ranked_by_peak() -> None:
    t = np.arange(30, dtype=np.float64)
    s = np.zeros(30)
    s[5:8] = 0.5
    s[20:22] = 0.9
    windows = propose(t, s, duration_s=30.0, config=ProposalConfig(max_windows=5))
    assert [(w.start, w.end) for w in windows[:2]] == [(20.0, 22.0), (5.0, 8.0)]
    assert windows[0].score > windows[1].score


def test_sliding_windows_nms_and_scales() -> None:
    t = np.arange(40, dtype=np.float64)
    s = np.zeros(40)
    s[10:14] = 1.0
    cfg = ProposalConfig(strategy="sliding", window_s=[4.0, 8.0], stride_frac=0.25, max_windows=3)
    windows = propose(t, s, duration_s=40.0, config=cfg)
    assert len(windows) == 3
    assert (windows[0].start, windows[0].end) == (10.0, 14.0)
    for i, a in enumerate(windows):
        for b in windows[i + 1:]:
            assert temporal_iou(a, b) <= 0.5
    assert all(0.0 <= w.start < w.end <= 40.0 for w in windows)


def test_smoothing_removes_a_one_sample_spike() -> None:
    t = np.arange(20, dtype=np.float64)
    s = np.zeros(20)
    s[3] = 1.0
    s[10:16] = 0.6
    raw = propose(t, s, duration_s=20.0, config=ProposalConfig())[0]
    smooth = propose(t, s, duration_s=20.0, config=ProposalConfig(smooth_s=5.0))[0]
    assert (raw.start, raw.end) == (3.0, 4.0)
    assert smooth.start >= 9.0 and smooth.end <= 17.0


def test_a_plateau_below_the_median_is_one_window() -> None:
    t = np.arange(12, dtype=np.float64)
    s = np.array([0.1, 0.1, 0.1, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    windows = propose(t, s, duration_s=12.0, config=ProposalConfig(max_windows=5))
    assert [(w.start, w.end) for w in windows] == [(4.0, 12.0), (0.0, 4.0)]


def test_constant_and_single_sample_curves() -> None:
    t = np.arange(5, dtype=np.float64)
    w = propose(t, np.full(5, 0.3), duration_s=5.0)
    assert w == [Window(0.0, 5.0, pytest.approx(0.3))]
    one = propose([2.0], [0.7], duration_s=10.0)
    assert one == [Window(2.0, 3.0, pytest.approx(0.7))]
    assert propose([], [], duration_s=3.0) == []


def test_bad_curves_fail_loudly() -> None:
    with pytest.raises(BadInput, match="equal length"):
        propose([0.0, 1.0], [0.1])
    with pytest.raises(BadInput, match="finite"):
        propose([0.0, 1.0], [0.1, float("nan")])
    with pytest.raises(BadInput, match="non-decreasing"):
        propose([1.0, 0.0], [0.1, 0.2])
    with pytest.raises(BadInput, match="fps"):
        propose([0.0], [0.1], fps=0.0)
    with pytest.raises(ValidationError):
        ProposalConfig(strategy="mean")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ProposalConfig(unknown=1)  # type: ignore[call-arg]


def test_nms_keeps_best_and_drops_overlaps() -> None:
    windows = [(0.0, 10.0, 0.5), (1.0, 11.0, 0.9), (20.0, 25.0, 0.4), (2.0, 4.0, 0.3)]
    kept = nms(windows, iou_threshold=0.5)
    assert kept == [Window(1.0, 11.0, 0.9), Window(20.0, 25.0, 0.4), Window(2.0, 4.0, 0.3)]
    assert nms(windows, iou_threshold=0.5, max_windows=1) == [Window(1.0, 11.0, 0.9)]



# -- the minimum length: widened on both sides, inside the video ----------------------------


@pytest.mark.parametrize(("peak_s", "window"), [
    (5, (3.5, 7.5)),   # [5, 6] grows by 1.5 s on each side
    (0, (0.0, 4.0)),   # against the start: all the growth goes right
    (9, (6.0, 10.0)),  # against the end: all the growth goes left
    (8, (6.0, 10.0)),  # [8, 9] would reach 10.5: shifted left to end at the duration
    (1, (0.0, 4.0)),   # [1, 2] would start at -0.5: shifted right to start at 0
])
def test_min_len_widens_both_sides_within_the_video(peak_s: int, window: tuple[float, float]) -> None:
    t = np.arange(10, dtype=np.float64)
    s = np.zeros(10)
    s[peak_s] = 1.0
    w = propose(t, s, duration_s=10.0, config=ProposalConfig(min_len_s=4.0))[0]
    assert (w.start, w.end) == window
    assert w.score == 1.0  # the widening adds no samples to the score


def test_min_len_longer_than_the_video_gives_the_whole_video() -> None:
    t = np.arange(3, dtype=np.float64)
    s = np.array([0.0, 1.0, 0.0])
    w = propose(t, s, duration_s=3.0, config=ProposalConfig(min_len_s=10.0))[0]
    assert (w.start, w.end) == (0.0, 3.0)


def test_a_window_already_at_the_minimum_is_not_moved() -> None:
    t = np.arange(10, dtype=np.float64)
    s = np.zeros(10)
    s[4:8] = 1.0
    w = propose(t, s, duration_s=10.0, config=ProposalConfig(min_len_s=4.0))[0]
    assert (w.start, w.end) == (4.0, 8.0)
