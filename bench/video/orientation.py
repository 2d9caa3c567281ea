"""Frames in display orientation: PyAV frames turned and mirrored as the display matrix asks,
and the reference frame that decord's own turning is checked against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.video.probe import ProbeInfo, video_stream

ROTATION_CHECK_MAX_DIFF = 24.0
"""Mean absolute pixel difference (0-255) above which decord's first frame is judged to be
turned differently from PyAV's; codec noise between two decoders stays far below it."""


def to_rgb(frame: Any, width: int, height: int, info: ProbeInfo) -> np.ndarray:
    """Convert (and scale inside swscale) a PyAV frame to display-oriented RGB uint8: turned
    by ``info.rotation``, then mirrored where ``info.mirrored``."""
    rotation = info.rotation
    coded_w, coded_h = (height, width) if rotation in (90, 270) else (width, height)
    rgb = frame.reformat(width=coded_w, height=coded_h, format="rgb24",
                         interpolation="BICUBIC").to_ndarray()
    if rotation:
        rgb = np.rot90(rgb, k=-rotation // 90)  # negative k: clockwise
    if info.mirrored:
        rgb = rgb[:, ::-1]
    return np.ascontiguousarray(rgb) if rotation or info.mirrored else rgb


def first_frame_pyav(path: Path, width: int, height: int, info: ProbeInfo) -> np.ndarray:
    """The first frame of ``path`` as PyAV decodes and turns it, at ``width`` x ``height``."""
    import av

    with av.open(str(path), metadata_errors="ignore") as container:
        frame = next(container.decode(video_stream(container, path)))
        return to_rgb(frame, width, height, info)
