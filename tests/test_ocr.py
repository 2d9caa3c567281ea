"""On-screen text: real PP-OCR reads of rendered text, and merging readings into segments."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.text.ocr import (
    OcrConfig,
    OcrEngine,
    OcrLine,
    merge_readings,
    normalize_text,
    position_of,
    read_video,
    same_region,
)

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
W, H = 640, 360
BOTTOM = (0.05, 0.80, 0.60, 0.90)
TOP = (0.05, 0.05, 0.40, 0.15)


def render(texts: list[tuple[str, tuple[int, int]]], size: tuple[int, int] = (W, H)) -> np.ndarray:
    """An RGB frame (H, W, 3) with white text in black bars at the given pixel positions."""
    from PIL import Image, ImageDraw, ImageFont

    if not FONT.is_file():
        pytest.skip(f"font {FONT} is not installed")
    img = Image.new("RGB", size, (40, 90, 40))
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(FONT), 30)
    for text, (x, y) in texts:
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        draw.rectangle([left - 8, top - 8, right + 8, bottom + 8], fill=(0, 0, 0))
        draw.text((x, y), text, font=font, fill=(255, 255, 255))
    return np.asarray(img)


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    return OcrEngine(OcrConfig(threads=1))


def test_reads_rendered_text_with_its_box(engine: OcrEngine) -> None:
    lines = engine.read(render([("Heavy rain in Osaka", (40, 290)), ("LIVE 12:30", (420, 20))]))
    assert [normalize_text(line.text) for line in lines] == ["live 12 30", "heavy rain in osaka"]
    live, rain = lines
    assert position_of(live.box) == "top" and position_of(rain.box) == "bottom"
    # The box is normalised to the frame: the bar text starts 40 px from the left of 640.
    assert rain.box[0] == pytest.approx(40 / W, abs=0.02)
    assert rain.box[1] == pytest.approx(290 / H, abs=0.03)
    assert all(0.6 <= line.score <= 1.0 for line in lines)


def test_blank_frame_reads_nothing(engine: OcrEngine) -> None:
    assert engine.read(np.full((H, W, 3), 90, dtype=np.uint8)) == []


def _line(text: str, box: tuple[float, float, float, float] = BOTTOM, score: float = 0.9) -> OcrLine:
    return OcrLine(text=text, score=score, box=box)


def test_merge_spans_the_time_text_stays_and_absorbs_misreads() -> None:
    frames = [[], [_line("Heavy rain")], [_line("Heavy rain")], [_line("Heavy rein")],
              [_line("Heavy rain"), _line("LIVE", TOP)], [_line("LIVE", TOP)], []]
    segs = merge_readings("v", [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0], frames, hold_s=1.0)
    assert [(s.text, s.start, s.end) for s in segs] == [("Heavy rain", 1.0, 5.0), ("LIVE", 4.0, 6.0)]
    rain = segs[0]
    assert rain.source == "ocr" and rain.vid == "v"
    assert rain.meta["frames"] == 4 and rain.meta["position"] == "bottom"
    assert rain.meta["box"] == list(BOTTOM)
    assert rain.meta["confidence"] == pytest.approx(0.9)


def test_merge_keeps_regions_and_different_texts_apart() -> None:
    frames = [[_line("Tokyo"), _line("Tokyo", TOP)], [_line("Kyoto station")]]
    segs = merge_readings("v", [0.0, 1.0], frames, hold_s=1.0)
    assert sorted((s.text, s.start, s.end, s.meta["position"]) for s in segs) == [
        ("Kyoto station", 1.0, 2.0, "bottom"), ("Tokyo", 0.0, 1.0, "bottom"), ("Tokyo", 0.0, 1.0, "top")]


def test_merge_bridges_one_missed_sample_but_not_two() -> None:
    frames = [[_line("A sign")], [], [_line("A sign")], [], [], [_line("A sign")]]
    segs = merge_readings("v", [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], frames, hold_s=1.0, duration_s=5.5)
    assert [(s.start, s.end) for s in segs] == [(0.0, 3.0), (5.0, 5.5)]


def test_merge_checks_its_inputs() -> None:
    with pytest.raises(ValueError, match="2 times for 1 frames"):
        merge_readings("v", [0.0, 1.0], [[]], hold_s=1.0)


def test_region_and_text_helpers() -> None:
    assert same_region(BOTTOM, (0.10, 0.82, 0.50, 0.91))
    assert not same_region(BOTTOM, TOP)
    assert not same_region(BOTTOM, (0.70, 0.80, 0.90, 0.90))  # same row, no horizontal overlap
    assert normalize_text("  Ｈｅａｖｙ   RAIN!! ") == "heavy rain"
    assert position_of((0.0, 0.4, 1.0, 0.6)) == "middle"


def _write_video(path: Path, frames: list[np.ndarray], fps: int) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed")
    h, w = frames[0].shape[:2]
    cmd = [ffmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", str(fps), "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", str(fps), str(path)]
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True)


@pytest.fixture(scope="module")
def telop_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 s at 5 fps: "Heavy rain in Osaka" at the bottom over [2, 5) s, "Tokyo Station" on top
    over [4, 7) s."""
    fps = 5
    frames = []
    for i in range(8 * fps):
        t = i / fps
        texts = []
        if 2 <= t < 5:
            texts.append(("Heavy rain in Osaka", (40, 290)))
        if 4 <= t < 7:
            texts.append(("Tokyo Station", (40, 20)))
        frames.append(render(texts))
    path = tmp_path_factory.mktemp("ocr") / "telop.mp4"
    _write_video(path, frames, fps)
    return path


def test_read_video_merges_telops_into_on_screen_spans(telop_video: Path, engine: OcrEngine) -> None:
    calls = []
    read = engine.read

    def counting_read(frame: np.ndarray) -> list[OcrLine]:
        calls.append(frame.shape)
        return read(frame)

    engine.read = counting_read  # type: ignore[method-assign]
    try:
        segs = read_video(telop_video, "news", engine, duration_s=8.0)
    finally:
        del engine.read
    got = [(normalize_text(s.text), s.start, s.end, s.meta["position"]) for s in segs]
    assert got == [("heavy rain in osaka", pytest.approx(2.0), pytest.approx(5.0), "bottom"),
                   ("tokyo station", pytest.approx(4.0), pytest.approx(7.0), "top")]
    # Frames are decoded at a 480-pixel short side (not upscaled), and unchanged frames are
    # not read again: the text changes at 2, 4, 5 and 7 s, so 5 of the 8 frames are read.
    assert calls[0] == (360, 640, 3)
    assert len(calls) == 5
