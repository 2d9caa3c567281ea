"""What a family sends to the Ray engine's workers: a recipe that builds its per-video encoder
inside the worker (the model loads there once), never the loaded model itself."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.retrievers.base import RetrieverConfig
from bench.video.probe import ProbeInfo

VideoEncoder = Callable[[Path, ProbeInfo], tuple[dict[str, Any], dict[str, Any]]]


def _build_encoder(config: RetrieverConfig, device: str) -> VideoEncoder:
    from bench.retrievers import build_retriever

    encode: VideoEncoder = build_retriever(config, device).encode_video  # type: ignore[attr-defined]
    return encode


def encoder_recipe(config: RetrieverConfig, device: str) -> Callable[[], VideoEncoder]:
    """A picklable ``() -> encode_video`` that builds ``config``'s retriever on ``device`` in
    the process that calls it."""
    return functools.partial(_build_encoder, config, device)
