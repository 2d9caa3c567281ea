"""Shot boundaries of a video: PySceneDetect's content or adaptive detector fed from this
package's own decoder (small frames, true timestamps, every frame)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bench.errors import Unavailable
from bench.video.decode import sample_frames
from bench.video.probe import ProbeInfo, probe

Detector = Literal["content", "adaptive"]
SHOTS_VERSION = "1"
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


def detect_shots(path: Path, config: ShotConfig | None = None, info: ProbeInfo | None = None) -> Shots:
    """The shot boundaries of the video at ``path``.

    Every frame (up to ``config.max_fps`` per second) is decoded at ``config.short_side``
    pixels and handed to the detector; a cut's time is the true presentation time of the
    first frame of the new shot. A video of one frame, or with no cut, has no cuts. Memory
    stays flat with length: frames come in bounded batches and only the detector's few
    frames of state are kept.
    """
    cfg = config or ShotConfig()
    info = info or probe(Path(path))
    from scenedetect import FrameTimecode

    fps = cfg.max_fps if info.vfr or not info.fps > 0 else min(info.fps, cfg.max_fps)
    # min_shot_s counts frames: at the rate frames actually come (the average, for VFR).
    detector = _make_detector(cfg, min(info.fps, fps) if info.fps > 0 else fps)
    times: list[float] = []
    found: list[int] = []
    n = 0
    for batch in sample_frames(Path(path), fps=fps, short_side=cfg.short_side, batch_size=64):
        for frame, t in zip(batch.frames, batch.times_s.tolist(), strict=True):
            # The detectors expect BGR (OpenCV); hue and saturation deltas need the right order.
            cuts = detector.process_frame(FrameTimecode(n, fps=fps), np.ascontiguousarray(frame[:, :, ::-1]))
            found += [c.frame_num for c in cuts]
            times.append(t)
            n += 1
    if n and hasattr(detector, "post_process"):
        found += [c.frame_num for c in detector.post_process(FrameTimecode(n - 1, fps=fps))]
    cuts_s = sorted({round(times[i], 6) for i in found if 0 < i < len(times)})
    return Shots(duration_s=info.duration_s, cuts_s=cuts_s, frames=n)


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

