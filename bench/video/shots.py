"""Shot boundaries of a video: PySceneDetect's content or adaptive detector fed from this
package's own decoder (small frames, true timestamps, every frame), plus a test for gradual
transitions (dissolves, fades) that spread their change over many frames."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bench.errors import Unavailable
from bench.video.decode import sample_frames
from bench.video.probe import ProbeInfo, probe

Detector = Literal["content", "adaptive"]
SHOTS_VERSION = "2"
"""Bumped when detection changes what a configuration finds (invalidates stored shots)."""


class ShotConfig(BaseModel):
    """How shot boundaries are found (stored per video under these parameters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detector: Detector = "content"
    """``content``: a cut where the HSV difference of consecutive frames passes
    ``threshold``; ``adaptive``: where it stands out from its neighbours (rolling average)."""
    threshold: float | None = Field(default=None, gt=0)
    """``content``: its threshold (PySceneDetect's default 27); ``adaptive``: the ratio to
    the rolling average (default 3). ``None`` takes the detector's default."""
    min_shot_s: float = Field(default=1.0, ge=0)
    """No shot is shorter than this: a flash (one bright frame) does not make two cuts."""
    short_side: int = Field(default=72, ge=16)
    """Frames are decoded this small (shorter side, pixels): cuts survive, decoding is cheap."""
    max_fps: float = Field(default=30.0, gt=0)
    """Frames are read at the video's rate up to this many per second (a variable-frame-rate
    video at this rate: its average rate would skip the frames that come closer together)."""
    edges_weight: float = Field(default=1.0, ge=0)
    """Weight of the edge difference next to hue, saturation and luma (weight 1 each): edges
    tell apart cuts between grey pictures, which differ in neither hue nor saturation."""
    gradual: bool = True
    """Also look for gradual transitions (see :class:`GradualTest`): a dissolve spreads its
    change over 10-20 frames, none of which passes the content detector's threshold."""
    gradual_max_s: float = Field(default=2.0, gt=0)
    """Longest dissolve or fade looked for (seconds, the whole transition)."""
    gradual_min_change: float = Field(default=30.0, gt=0)
    """The frames either side of a gradual transition differ by at least this mean absolute
    pixel value (0-255): slow pans and zooms within a shot stay near 20 over two seconds."""
    gradual_max_residual: float = Field(default=0.2, gt=0, le=0.5)
    """The frame in the middle may differ from the mean of the frames either side by at most
    this share of their difference. A linear blend (dissolve) leaves about 0.05, a pan or
    zoom 0.28 or more, a picture or telop that appears at once 0.5."""


@dataclass
class Shots:
    """Where a video's shots begin: ``cuts_s`` (seconds, ascending, inside the video)."""

    duration_s: float
    cuts_s: list[float] = field(default_factory=list)
    frames: int = 0
    """Frames the detector looked at."""

    def spans(self) -> list[tuple[float, float]]:
        """The shots as ``(start_s, end_s)``, covering ``[0, duration_s]``."""
        edges = [0.0, *[c for c in self.cuts_s if 0.0 < c < self.duration_s], self.duration_s]
        return [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b > a]

    def to_json(self) -> dict[str, Any]:
        return {"duration_s": self.duration_s, "cuts_s": self.cuts_s, "frames": self.frames}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Shots:
        return cls(float(row["duration_s"]), [float(c) for c in row["cuts_s"]], int(row.get("frames", 0)))


def _make_detector(config: ShotConfig, fps: float) -> Any:
    try:
        from scenedetect import AdaptiveDetector, ContentDetector
    except ImportError as exc:
        raise Unavailable("shot detection needs PySceneDetect: pip install 'scenedetect>=0.7'") from exc
    min_len = max(1, round(config.min_shot_s * fps))
    weights = ContentDetector.Components(delta_hue=1.0, delta_sat=1.0, delta_lum=1.0,
                                         delta_edges=config.edges_weight)
    if config.detector == "adaptive":
        kw = {} if config.threshold is None else {"adaptive_threshold": config.threshold}
        return AdaptiveDetector(min_scene_len=min_len, weights=weights, **kw)
    kw = {} if config.threshold is None else {"threshold": config.threshold}
    return ContentDetector(min_scene_len=min_len, weights=weights, **kw)


class GradualTest:
    """Gradual transitions on a stream of frames: frame ``c`` is the middle of one when the
    frames ``h`` before and after it differ much (``min_change``) and frame ``c`` is close to
    their mean (``max_residual``), for some half-width ``h`` up to half of ``max_s``. Keeps
    only the last ``2 h + 1`` frames, so memory stays flat with length."""

    def __init__(self, config: ShotConfig, fps: float) -> None:
        self.config = config
        longest = max(1, round(config.gradual_max_s * fps / 2))
        step = max(1, round(0.2 * fps))
        self.halves = list(range(min(longest, max(2, round(0.4 * fps))), longest + 1, step))
        self.frames: deque[np.ndarray] = deque(maxlen=2 * longest + 1)
        self.found: list[tuple[int, float, float]] = []
        """(frame number of the middle, residual share, change) of every frame that passed."""
        self.n = 0

    def push(self, frame: np.ndarray) -> None:
        self.frames.append(frame.astype(np.float32))
        last = len(self.frames) - 1
        for h in self.halves:
            if last < 2 * h:
                break
            before, middle, after = self.frames[last - 2 * h], self.frames[last - h], self.frames[last]
            change = float(np.abs(after - before).mean())
            if change < self.config.gradual_min_change:
                continue
            share = float(np.abs(middle - (before + after) / 2).mean()) / change
            if share <= self.config.gradual_max_residual:
                self.found.append((self.n - h, share, change))
        self.n += 1

    def cuts(self, gap_frames: int) -> list[int]:
        """One frame per transition (passing frames closer than ``gap_frames`` to each other):
        among those whose flanks span (nearly) the whole change, the one nearest the mean of
        its flanks. Flanks inside the transition are a perfect blend anywhere along it; only
        flanks outside it place the middle."""
        groups: list[list[tuple[int, float, float]]] = []
        for row in sorted(self.found):
            if groups and row[0] - groups[-1][-1][0] <= gap_frames:
                groups[-1].append(row)
            else:
                groups.append([row])
        out = []
        for g in groups:
            widest = max(r[2] for r in g)
            out.append(min((r for r in g if r[2] >= 0.9 * widest), key=lambda r: (r[1], r[0]))[0])
        return out


def detect_shots(path: Path, config: ShotConfig | None = None, info: ProbeInfo | None = None) -> Shots:
    """The shot boundaries of the video at ``path``.

    Every frame (up to ``config.max_fps`` per second) is decoded at ``config.short_side``
    pixels and handed to the detector; a cut's time is the true presentation time of the
    first frame of the new shot, or of the middle of a gradual transition (with
    ``config.gradual``). A video of one frame, or with no cut, has no cuts. Memory
    stays flat with length: frames come in bounded batches and only the detector's few
    frames of state are kept.
    """
    cfg = config or ShotConfig()
    info = info or probe(Path(path))
    from scenedetect import FrameTimecode

    fps = cfg.max_fps if info.vfr or not info.fps > 0 else min(info.fps, cfg.max_fps)
    # min_shot_s counts frames: at the rate frames actually come (the average, for VFR).
    detector = _make_detector(cfg, min(info.fps, fps) if info.fps > 0 else fps)
    gradual = GradualTest(cfg, fps) if cfg.gradual else None
    times: list[float] = []
    found: list[int] = []
    n = 0
    for batch in sample_frames(Path(path), fps=fps, short_side=cfg.short_side, batch_size=64):
        for frame, t in zip(batch.frames, batch.times_s.tolist(), strict=True):
            # The detectors expect BGR (OpenCV); hue and saturation deltas need the right order.
            cuts = detector.process_frame(FrameTimecode(n, fps=fps), np.ascontiguousarray(frame[:, :, ::-1]))
            found += [c.frame_num for c in cuts]
            if gradual is not None:
                gradual.push(frame)
            times.append(t)
            n += 1
    if n and hasattr(detector, "post_process"):
        found += [c.frame_num for c in detector.post_process(FrameTimecode(n - 1, fps=fps))]
    if gradual is not None:
        found += _apart(gradual.cuts(round(cfg.gradual_max_s * fps)), found, round(cfg.min_shot_s * fps))
    cuts_s = sorted({round(times[i], 6) for i in found if 0 < i < len(times)})
    return Shots(duration_s=info.duration_s, cuts_s=cuts_s, frames=n)


def _apart(candidates: list[int], cuts: list[int], min_frames: int) -> list[int]:
    """Candidates at least ``min_frames`` from every cut and from each other kept candidate
    (a fade the content detector already cut at is not cut twice)."""
    kept: list[int] = []
    for c in candidates:
        if all(abs(c - other) >= max(1, min_frames) for other in [*cuts, *kept]):
            kept.append(c)
    return kept


def boundary_f1(found_s: list[float], truth: list[tuple[float, float]],
                tolerance_s: float) -> dict[str, float]:
    """Precision, recall and F1 of detected cuts against true transitions.

    ``truth``: one ``(start_s, end_s)`` per transition (equal for a hard cut). A detected cut
    matches an unmatched transition when it lies within ``tolerance_s`` of its span; each
    transition matches at most one cut."""
    used = [False] * len(truth)
    hits = 0
    for c in sorted(found_s):
        for i, (a, b) in enumerate(truth):
            if not used[i] and a - tolerance_s <= c <= b + tolerance_s:
                used[i] = True
                hits += 1
                break
    p = hits / len(found_s) if found_s else (1.0 if not truth else 0.0)
    r = hits / len(truth) if truth else 1.0
    f1 = 0.0 if p + r == 0 else 2 * p * r / (p + r)
    return {"precision": p, "recall": r, "f1": f1, "found": float(len(found_s)), "truth": float(len(truth))}

