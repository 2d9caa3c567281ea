"""On-screen text (telops, signs, slides) as timestamped segments, read with RapidOCR (PP-OCR).

Frames are sampled at a fixed rate; one line of text that stays in the same screen region
over consecutive samples becomes one segment spanning the time it is on screen.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bench.errors import Unavailable
from bench.text.segments import Segment
from bench.timing import stage

OCR_MODEL_ID = "package:rapidocr_onnxruntime/models"
"""PP-OCRv4 detection + recognition (ONNX) as shipped inside the ``rapidocr-onnxruntime`` wheel."""


class OcrConfig(BaseModel):
    """How frames are sampled and read, and how readings are merged into segments."""

    model_config = ConfigDict(extra="forbid")

    fps: float = Field(default=1.0, gt=0)
    """Frames read per second. Telops and captions stay up for seconds, so 1 fps finds them
    with a time error under one second at a fifth of the cost of 5 fps."""
    short_side: int | None = Field(default=480, ge=32)
    """Frames are decoded with this short side (pixels; ``None`` keeps the source size). 480
    keeps telop strokes several pixels wide while detection runs on ~4x fewer pixels than 1080p."""
    det_limit_side_len: int = Field(default=960, ge=64)
    """The detector never upsamples, and downsamples frames whose long side exceeds this."""
    use_cls: bool = False
    """PP-OCR's 180-degree text-direction classifier; burned-in text is upright, so it is off."""
    min_confidence: float = Field(default=0.6, ge=0.0, le=1.0)
    """Recognition score below which a line is discarded."""
    min_chars: int = Field(default=1, ge=1)
    """Lines with fewer non-space characters (after normalisation) are discarded."""
    match_ratio: float = Field(default=0.8, ge=0.0, le=1.0)
    """Readings in the same region whose normalised texts have a ``difflib`` ratio at least
    this are the same text (OCR misreads a letter or two from frame to frame)."""
    max_gap_s: float | None = Field(default=None, ge=0)
    """Longest time (seconds) between two readings of a text that still continues its segment;
    ``None`` means 2.5 / fps, which bridges one sample where the reading failed."""
    skip_static: bool = True
    """Reuse the previous reading when a frame is pixel-wise the same as the last one read
    (static slides, telops over a still shot): the result cannot differ, the time is saved."""
    static_max_diff: float = Field(default=4.0, ge=0)
    """Largest absolute difference (0-255) between 1/8-scale grey thumbnails that still
    counts as the same frame; a line of text appearing changes its blocks by far more."""
    threads: int = Field(default=0, ge=0)
    """ONNX Runtime intra-op threads; 0 lets it choose."""
    batch_size: int = Field(default=16, ge=1)
    """Frames decoded per batch (memory only; OCR runs per frame)."""


@dataclass(frozen=True)
class OcrLine:
    """One line of text read in one frame; ``box`` is ``(x0, y0, x1, y1)`` in [0, 1] of the frame."""

    text: str
    score: float
    box: tuple[float, float, float, float]


def ocr_revision() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"rapidocr-onnxruntime=={version('rapidocr-onnxruntime')}"
    except PackageNotFoundError:
        return "rapidocr-onnxruntime"


class OcrEngine:
    """RapidOCR loaded once (lazily) and applied frame by frame."""

    def __init__(self, config: OcrConfig | None = None) -> None:
        self.config = config or OcrConfig()
        self._engine: Any = None

    def load(self) -> Any:
        if self._engine is not None:
            return self._engine
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise Unavailable(f"rapidocr-onnxruntime is not installed ({exc}); "
                              "pip install rapidocr-onnxruntime") from None
        cfg = self.config
        threads = cfg.threads or -1
        self._engine = RapidOCR(
            text_score=cfg.min_confidence, use_cls=cfg.use_cls,
            det_limit_type="max", det_limit_side_len=cfg.det_limit_side_len,
            intra_op_num_threads=threads,
        )
        return self._engine

    def provenance(self) -> dict[str, Any]:
        from bench.modelref import package_dir, weights_checksum

        location = str(package_dir(OCR_MODEL_ID))
        return {"id": OCR_MODEL_ID, "revision": ocr_revision(), "source": "package",
                "random_init": False, "checksum": weights_checksum(location),
                "models": sorted(p.name for p in Path(location).glob("*.onnx"))}

    def read(self, frame: np.ndarray) -> list[OcrLine]:
        """Read one RGB uint8 frame of shape ``(H, W, 3)``; lines top-to-bottom, left-to-right."""
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an RGB frame of shape (H, W, 3), got {frame.shape}")
        engine = self.load()
        height, width = frame.shape[:2]
        # RapidOCR takes ndarrays as BGR (OpenCV order).
        result, _ = engine(np.ascontiguousarray(frame[:, :, ::-1]))
        lines: list[OcrLine] = []
        for points, text, score in result or []:
            pts = np.asarray(points, dtype=np.float64)
            text = str(text).strip()
            if float(score) < self.config.min_confidence:
                continue
            if len(normalize_text(text).replace(" ", "")) < self.config.min_chars:
                continue
            box = (float(pts[:, 0].min() / width), float(pts[:, 1].min() / height),
                   float(pts[:, 0].max() / width), float(pts[:, 1].max() / height))
            lines.append(OcrLine(text=text, score=float(score),
                                 box=tuple(min(1.0, max(0.0, v)) for v in box)))  # type: ignore[arg-type]
        return lines


_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Matching form of a reading: NFKC, case-folded, punctuation dropped, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(ch if not unicodedata.category(ch).startswith("P") else " " for ch in text)
    return _SPACE.sub(" ", text).strip()


def position_of(box: tuple[float, float, float, float]) -> str:
    """``top`` / ``middle`` / ``bottom`` third of the frame, by the box's vertical centre."""
    centre = (box[1] + box[3]) / 2
    return "top" if centre < 1 / 3 else ("bottom" if centre > 2 / 3 else "middle")


def same_region(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """Boxes overlap horizontally and share at least half of the shorter one's height."""
    x_overlap = min(a[2], b[2]) - max(a[0], b[0])
    y_overlap = min(a[3], b[3]) - max(a[1], b[1])
    shorter = min(a[3] - a[1], b[3] - b[1])
    return x_overlap > 0 and shorter > 0 and y_overlap >= 0.5 * shorter


@dataclass
class _Track:
    start: float
    last: float
    box: tuple[float, float, float, float]
    key: str
    readings: dict[str, list[float]] = field(default_factory=dict)
    """Raw text -> scores of every frame it was read in."""
    frames: int = 0

    def add(self, line: OcrLine, time_s: float) -> None:
        self.readings.setdefault(line.text, []).append(line.score)
        self.last = time_s
        self.box = line.box
        self.frames += 1

    def best_text(self) -> str:
        # The reading seen most often wins; ties go to the more confident one.
        return max(self.readings, key=lambda t: (len(self.readings[t]), max(self.readings[t])))


def merge_readings(
    vid: str,
    times_s: Sequence[float],
    lines_per_frame: Sequence[Sequence[OcrLine]],
    *,
    hold_s: float,
    match_ratio: float = 0.8,
    max_gap_s: float | None = None,
    duration_s: float | None = None,
) -> list[Segment]:
    """Merge per-frame readings into ``ocr`` segments.

    ``times_s`` (seconds, increasing) holds one time per frame and ``lines_per_frame`` the
    lines read in it. A line continues an open segment when it is in the same screen region
    and its normalised text matches with ratio >= ``match_ratio``; a segment spans from the
    first frame its text was read in to ``hold_s`` (the sampling interval) after the last,
    clipped to ``duration_s``. ``meta`` carries ``box`` (normalised ``[x0, y0, x1, y1]``),
    ``position`` (top/middle/bottom), ``confidence`` (mean) and ``frames`` (readings merged).
    """
    if len(times_s) != len(lines_per_frame):
        raise ValueError(f"{len(times_s)} times for {len(lines_per_frame)} frames")
    gap = max_gap_s if max_gap_s is not None else 2.5 * hold_s
    open_tracks: list[_Track] = []
    done: list[_Track] = []
    for time_s, lines in zip(times_s, lines_per_frame, strict=True):
        time_s = float(time_s)
        still_open: list[_Track] = []
        for track in open_tracks:
            (still_open if time_s - track.last <= gap + 1e-6 else done).append(track)
        open_tracks = still_open
        used: set[int] = set()
        for line in lines:
            key = normalize_text(line.text)
            match = None
            best = match_ratio
            for i, track in enumerate(open_tracks):
                if i in used or not same_region(track.box, line.box):
                    continue
                ratio = 1.0 if key == track.key else difflib.SequenceMatcher(None, key, track.key).ratio()
                if ratio >= best:
                    match, best = i, ratio
            if match is None:
                track = _Track(start=time_s, last=time_s, box=line.box, key=key)
                track.add(line, time_s)
                open_tracks.append(track)
                used.add(len(open_tracks) - 1)
            else:
                open_tracks[match].add(line, time_s)
                used.add(match)
    done.extend(open_tracks)
    segments = []
    for track in done:
        end = track.last + hold_s
        if duration_s is not None:
            end = min(end, duration_s)
        if end <= track.start:  # a reading at the very last instant of the video
            end = track.start + 1e-3
        scores = [s for ss in track.readings.values() for s in ss]
        segments.append(Segment(
            vid=vid, start=track.start, end=end, source="ocr", text=track.best_text(),
            meta={"box": [round(v, 4) for v in track.box], "position": position_of(track.box),
                  "confidence": float(np.mean(scores)), "frames": track.frames},
        ))
    segments.sort(key=lambda s: (s.start, s.meta["box"][1], s.meta["box"][0]))
    return segments


def _thumb(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[0] // 8 * 8, frame.shape[1] // 8 * 8
    grey = frame[:h, :w].astype(np.float32).mean(axis=2)
    return grey.reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3))


def read_video(path: Path, vid: str, engine: OcrEngine, *, duration_s: float | None = None) -> list[Segment]:
    """Sample ``path`` at ``engine.config.fps`` and return its merged ``ocr`` segments.

    Decoding is timed as stage ``decode`` and reading as stage ``ocr`` (items = frames read,
    including frames whose reading was reused because they did not change).
    """
    from bench.video import sample_frames

    cfg = engine.config
    times: list[float] = []
    readings: list[list[OcrLine]] = []
    prev_thumb: np.ndarray | None = None
    batches = iter(sample_frames(path, fps=cfg.fps, short_side=cfg.short_side, batch_size=cfg.batch_size))
    while True:
        with stage("decode"):
            batch = next(batches, None)
        if batch is None:
            break
        with stage("ocr", items=len(batch.times_s)):
            for frame, time_s in zip(batch.frames, batch.times_s, strict=True):
                thumb = _thumb(frame) if cfg.skip_static else None
                if (thumb is not None and prev_thumb is not None and readings
                        and thumb.shape == prev_thumb.shape
                        and float(np.abs(thumb - prev_thumb).max()) <= cfg.static_max_diff):
                    lines = readings[-1]
                else:
                    lines = engine.read(frame)
                    prev_thumb = thumb
                times.append(float(time_s))
                readings.append(lines)
    return merge_readings(vid, times, readings, hold_s=1.0 / cfg.fps, match_ratio=cfg.match_ratio,
                          max_gap_s=cfg.max_gap_s, duration_s=duration_s)
