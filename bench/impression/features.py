"""Music and picture features of every window of a video, as feature-store artefacts (keyed
by content and parameters, computed once), and the cut rate from stored shots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bench.impression.audio import (
    AUDIO_FEATURES,
    SAMPLE_RATE,
    SILENT_DB,
    WindowGrid,
    audio_features,
    librosa_version,
)
from bench.impression.picture import PICTURE_FEATURES, PictureAccumulator
from bench.store.catalog import Extractor, FeatureStore
from bench.store.indexing import index_videos
from bench.types import Video
from bench.video.probe import ProbeInfo

FEATURES_VERSION = "2"
NO_AUDIO = "no audio track: picture-only estimate"
SILENT = "no music heard (silent throughout): picture-only estimate"


class FeatureParams(BaseModel):
    """How windows are laid and frames sampled (part of the artefacts' cache keys)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_s: float = Field(default=3.0, gt=0)
    """Length of each window; music cues need a few beats, so not much shorter."""
    hop_s: float = Field(default=1.0, gt=0)
    """Step between window starts (the score curve's sample spacing)."""
    frame_fps: float = Field(default=2.0, gt=0)
    """Frames sampled per second for the picture features."""
    short_side: int = Field(default=64, ge=16)
    """Frames are scaled to this shorter side: colour and motion need no detail."""

    @property
    def grid(self) -> WindowGrid:
        return WindowGrid(self.window_s, self.hop_s)


def audio_extractor(p: FeatureParams) -> Extractor:
    return Extractor("impression-audio", {"window_s": p.window_s, "hop_s": p.hop_s,
                                          "sample_rate": SAMPLE_RATE, "librosa": librosa_version(),
                                          "features": list(AUDIO_FEATURES)}, FEATURES_VERSION)


def picture_extractor(p: FeatureParams) -> Extractor:
    return Extractor("impression-picture", {"window_s": p.window_s, "hop_s": p.hop_s,
                                            "frame_fps": p.frame_fps, "short_side": p.short_side,
                                            "features": list(PICTURE_FEATURES)}, FEATURES_VERSION)


@dataclass(frozen=True)
class VideoFeatures:
    """One video's windows: starts, music features (None without an audio track), picture
    features, and why the music is missing when it is."""

    starts_s: np.ndarray
    duration_s: float
    audio: np.ndarray | None
    picture: np.ndarray
    audio_note: str | None = None


Computed = tuple[dict[str, np.ndarray], dict[str, Any]]


def compute_audio(path: Path, info: ProbeInfo, p: FeatureParams) -> Computed:
    """The music features of ``path`` (all silent, with ``meta["audio"] = "none"``, when it
    has no audio track)."""
    from bench.video.audio import extract_audio, has_audio_stream

    if not has_audio_stream(path):
        silent = audio_features(np.zeros(0, np.float32), p.grid, info.duration_s)
        return {"features": silent}, {"audio": "none"}
    samples = extract_audio(path, SAMPLE_RATE)
    return {"features": audio_features(samples, p.grid, info.duration_s)}, {"audio": "track"}


def compute_picture(path: Path, info: ProbeInfo, p: FeatureParams) -> Computed:
    from bench.video.decode import sample_frames

    acc = PictureAccumulator()
    frames = 0
    for batch in sample_frames(path, fps=p.frame_fps, short_side=p.short_side, threads=1):
        acc.add(batch.frames, batch.times_s)
        frames += len(batch)
    return {"features": acc.windows(p.grid, info.duration_s)}, {"n_frames": frames}


def index_features(store: FeatureStore, videos: Sequence[Video],
                   p: FeatureParams) -> dict[str, VideoFeatures]:
    """Features of every readable video (computed where not stored yet); a video that cannot
    be read is left out, as the store's indexing loop logs."""
    a_ex, p_ex = audio_extractor(p), picture_extractor(p)
    audio_ids = index_videos(store, videos, a_ex, lambda path, info: compute_audio(path, info, p),
                             desc="impression audio")
    picture_ids = index_videos(store, videos, p_ex, lambda path, info: compute_picture(path, info, p),
                               desc="impression picture")
    out: dict[str, VideoFeatures] = {}
    for v in videos:
        if v.vid not in audio_ids or v.vid not in picture_ids:
            continue
        a = store.load(audio_ids[v.vid], a_ex)
        pic = store.load(picture_ids[v.vid], p_ex)
        meta = store.load_meta(audio_ids[v.vid], a_ex) or {}
        if a is None or pic is None:
            continue
        audio = a["features"]
        picture = pic["features"]
        n = min(len(audio), len(picture))
        note = None
        if meta.get("audio") == "none":
            note = NO_AUDIO
        elif not np.any(audio[:n, AUDIO_FEATURES.index("loudness_db")] >= SILENT_DB):
            note = SILENT
        starts = p.grid.starts(float(v.duration or n * p.hop_s))[:n]
        out[v.vid] = VideoFeatures(starts, float(v.duration or n * p.hop_s),
                                   None if note == NO_AUDIO else audio[:n], picture[:n], note)
    return out


def cuts_per_minute(shots: Sequence[tuple[float, float]] | None, starts_s: np.ndarray,
                    window_s: float, span_s: float = 10.0) -> np.ndarray:
    """Cuts per minute around each window (counted over ``span_s`` centred on it), from shot
    spans; zeros when there are none (a video without stored shots reads as uncut)."""
    out = np.zeros(len(starts_s), dtype=np.float64)
    if not shots or len(shots) < 2:
        return out
    cuts = np.array([s for s, _ in shots[1:]], dtype=np.float64)
    centres = starts_s + window_s / 2
    for i, c in enumerate(centres):
        out[i] = np.count_nonzero(np.abs(cuts - c) <= span_s / 2) * 60.0 / span_s
    return out
