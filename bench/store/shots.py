"""Shot boundaries as a shared artefact of the feature store: detected once per video and
configuration, at index time, and read by any family that wants them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.store.catalog import Extractor, FeatureStore
from bench.store.indexing import index_videos_json
from bench.types import Video
from bench.video.probe import ProbeInfo
from bench.video.shots import SHOTS_VERSION, ShotConfig, Shots, detect_shots

log = logging.getLogger("bench")


def shots_extractor(config: ShotConfig) -> Extractor:
    """The store key of shots found with ``config`` (the detector's version is part of it)."""
    import scenedetect

    params = {**config.model_dump(mode="json"), "scenedetect": scenedetect.__version__}
    return Extractor("shots", params, SHOTS_VERSION)


def index_shots(store: FeatureStore, videos: Sequence[Video],
                config: ShotConfig | None = None) -> dict[str, Shots]:
    """Shots of every video that can be read (computed now where not stored yet); videos whose
    file is missing or cannot be decoded are left out (the caller notes that)."""
    cfg = config or ShotConfig()
    ex = shots_extractor(cfg)

    def compute(path: Path, info: ProbeInfo) -> tuple[Any, dict[str, Any]]:
        shots = detect_shots(path, cfg, info)
        return shots.to_json(), {"n_frames": shots.frames}

    done = index_videos_json(store, videos, ex, compute, desc="shots")
    out: dict[str, Shots] = {}
    for vid, video_id in done.items():
        row = store.load_json(video_id, ex)
        if isinstance(row, dict):
            out[vid] = Shots.from_json(row)
    return out
