"""The one entry point to timestamped text: speech, on-screen text, captions and subtitles.

Model-made text is cached per video and per source in the feature store (resumable); subtitle
sidecars are read on each call. BM25, dense retrieval and the LLM metadata all call
:func:`extract_segments`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bench.devices import device_key
from bench.errors import BadInput
from bench.modelref import ResolvedModel, weights_checksum
from bench.text.asr import CPU_COMPUTE_TYPE, AsrConfig, Transcriber, asr_revision
from bench.text.captions import CAPTION_CPU_DTYPE, CaptionConfig, Captioner, caption_video
from bench.text.ocr import OCR_MODEL_ID, OcrConfig, OcrEngine, ocr_revision, read_video
from bench.text.segments import SOURCES, Segment, Source, sort_segments
from bench.timing import stage
from bench.types import Video

if TYPE_CHECKING:
    from bench.store import Extractor, FeatureStore
    from bench.video import ProbeInfo

log = logging.getLogger(__name__)

EXTRACT_VERSION = "1"
"""Bumped when the stored JSON layout or the merging code changes (invalidates the cache)."""


DEFAULT_SOURCES: tuple[Source, ...] = ("speech", "ocr", "subtitle")


class TextSources(BaseModel):
    """Which text sources are extracted, and how (one block of a text retriever's params).

    YAML example: ``{use: [speech, ocr, caption], asr: whisper-small, caption: blip-base}``;
    ``asr`` and ``caption`` take a preset name or a full mapping.
    """

    model_config = ConfigDict(extra="forbid")

    use: list[Source] = Field(default_factory=lambda: list(DEFAULT_SOURCES))
    """Sources to extract. Captions are not on by default: their default model needs a hub
    download, while speech (bundled Whisper tiny.en) and OCR (bundled PP-OCR) run offline."""
    asr: AsrConfig = Field(default_factory=AsrConfig)
    ocr: OcrConfig = Field(default_factory=OcrConfig)
    caption: CaptionConfig = Field(default_factory=CaptionConfig)

    @field_validator("use")
    @classmethod
    def _use(cls, value: list[Source]) -> list[Source]:
        if not value:
            raise ValueError(f"name at least one source of {', '.join(SOURCES)}")
        if len(set(value)) != len(value):
            raise ValueError(f"lists a source twice: {value}")
        return value


def _model_key(resolved: ResolvedModel) -> str:
    """The model's part of a cache key: its id, or for a local directory (a machine path,
    which must not enter a key) the checksum of its weights."""
    if resolved.source == "local":
        return f"sha256:{weights_checksum(resolved.location)}"
    return resolved.ref_id


def _speech_extractor(asr: Transcriber, declared: str | None = None) -> Extractor:
    from bench.store import Extractor

    # Threads and which videos are skipped do not change a transcript; they stay out of the key.
    params = asr.config.model_dump(mode="json", exclude={"model", "cpu_threads", "skip_uncovered_languages",
                                                         "languages"})
    params.update(model=_model_key(asr.resolved), revision=asr_revision(asr.config))
    # compute_type unset means int8 on the CPU: keys made before device and precision
    # entered them stay as they were there; CUDA transcripts get keys of their own.
    params.update(device_key(asr.device, asr.compute_type, asr.config.compute_type or CPU_COMPUTE_TYPE))
    if asr.config.languages is not None:
        # The declared language steers decoding, so it is part of the key (as is the policy);
        # configurations without a policy keep their keys.
        params.update(languages=asr.config.languages.model_dump(mode="json"), declared=declared)
    return Extractor("text.speech", params, EXTRACT_VERSION)


def _ocr_extractor(config: OcrConfig) -> Extractor:
    from bench.store import Extractor

    params = config.model_dump(mode="json", exclude={"threads", "batch_size"})
    params.update(model=OCR_MODEL_ID, revision=ocr_revision())
    return Extractor("text.ocr", params, EXTRACT_VERSION)


def _caption_extractor(captioner: Captioner) -> Extractor:
    from bench.store import Extractor

    params = captioner.config.model_dump(mode="json", exclude={"model", "batch_size"})
    params.update(model=_model_key(captioner.resolved), revision=captioner.revision())
    params.update(device_key(captioner.device, captioner.dtype_name, CAPTION_CPU_DTYPE))
    return Extractor("text.caption", params, EXTRACT_VERSION)


def _rows(segments: Sequence[Segment]) -> list[dict[str, Any]]:
    # Stored without the vid: the cache is keyed by content, and the same file may be
    # another vid in another query set.
    return [{"start": s.start, "end": s.end, "text": s.text, "lang": s.lang, "meta": s.meta}
            for s in segments]


def _segments(vid: str, source: Source, obj: Any) -> list[Segment]:
    return [Segment(vid=vid, start=float(r["start"]), end=float(r["end"]), source=source,
                    text=r["text"], lang=r.get("lang"), meta=dict(r.get("meta") or {}))
            for r in obj["segments"]]


def extract_segments(videos: Sequence[Video], store: FeatureStore, sources: TextSources, *,
                     device: str = "cpu") -> dict[str, list[Segment]]:
    """Timestamped text of every video: ``{vid: segments sorted by (start, end, source)}``.

    ``Video.path`` must be a local file. Speech, OCR and caption segments are computed once
    per (video content, source settings) and cached in ``store`` as JSON, each source under
    its own extractor (model id and revision, parameters); a re-run computes only what is
    missing, with a progress bar per source; speech is transcribed in a second thread while
    OCR and captions run (each leaves part of the cores idle). Work is timed as stages ``decode``, ``asr``,
    ``ocr`` and ``caption`` (model loading, once per call and only if something is computed,
    is outside them). Subtitle cues come from ``Video.subtitles`` sidecars (source
    ``subtitle``, language ``Video.lang``). Speech is not transcribed for a video whose
    ``Video.lang`` the ASR model does not cover (English-only model, other language); one
    log line says so. A video that cannot be read is logged and
    recorded failed by the indexing loop and gets no model-made text; a model that cannot be
    loaded raises :class:`~bench.errors.Unavailable`. Every input vid is a key of the result.
    ``device`` is ``cpu``, ``cuda`` or ``auto`` (OCR always runs on the CPU).
    """
    from bench.store import index_videos_json
    from bench.video import extract_audio

    out: dict[str, list[Segment]] = {v.vid: [] for v in videos}
    if len(out) != len(videos):
        raise BadInput("extract_segments: the same vid is given twice")
    by_path = {str(p): v.vid for v in videos if (p := v.resolve(None)) is not None}

    def vid_of(path: Path) -> str:
        return by_path.get(str(path), path.name)

    def collect(ex: Extractor, source: Source, done: dict[str, str]) -> None:
        for vid, video_id in done.items():
            obj = store.load_json(video_id, ex)
            if obj is None:  # damaged and reset by the store since the loop finished
                raise BadInput(f"{vid}: cached {source} text vanished from the feature store; run again")
            out[vid].extend(_segments(vid, source, obj))

    def run_speech() -> None:
        asr = Transcriber(sources.asr, device=device)
        lang_of = {v.vid: v.lang for v in videos}

        def speech(path: Path, info: ProbeInfo) -> tuple[Any, dict[str, Any]]:
            with stage("decode", video_s=info.duration_s):
                audio = extract_audio(path)
            if audio.shape[0]:
                asr.load()  # once, outside the timed stage: a one-off cost, not a rate
            vid = vid_of(path)
            with stage("asr", items=1, video_s=audio.shape[0] / 16000):
                tr = asr.transcribe(audio, vid, lang_of.get(vid))
            return {"segments": _rows(tr.segments), "info": tr.info}, {"audio_s": tr.info["audio_s"]}

        covered = [v for v in videos if asr.covers(v.lang)]
        for v in videos:
            if not asr.covers(v.lang):
                log.info("%s: declared language %r is not covered by %s (English only); no speech "
                         "segments", v.vid, v.lang, sources.asr.model.id)
        # With a language policy, videos are keyed (and so grouped) by their declared language.
        groups: dict[str | None, list[Video]] = {}
        for v in covered:
            groups.setdefault(v.lang if sources.asr.languages is not None else None, []).append(v)
        for declared, group in groups.items():
            ex = _speech_extractor(asr, declared)
            collect(ex, "speech", index_videos_json(store, group, ex, speech, desc="text: speech"))

    # Speech runs beside OCR and captions: Whisper and the image models each leave part of the
    # cores idle (decoding, sampling frames), so the text index is ready sooner together.
    speech: concurrent.futures.Future[None] | None = None
    pool = None
    if "speech" in sources.use:
        if "ocr" in sources.use or "caption" in sources.use:
            _import_decoders()
            pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="speech")
            speech = pool.submit(contextvars.copy_context().run, run_speech)
        else:
            run_speech()

    try:
        if "ocr" in sources.use:
            engine = OcrEngine(sources.ocr)
            ex = _ocr_extractor(sources.ocr)

            def ocr(path: Path, info: ProbeInfo) -> tuple[Any, dict[str, Any]]:
                engine.load()
                segs = read_video(path, vid_of(path), engine, duration_s=info.duration_s)
                # frames sampled, for the progress bar's frames/s
                return {"segments": _rows(segs)}, {"n_frames": math.ceil(info.duration_s * sources.ocr.fps)}

            collect(ex, "ocr", index_videos_json(store, videos, ex, ocr, desc="text: ocr"))

        if "caption" in sources.use:
            captioner = Captioner(sources.caption, device=device)
            ex = _caption_extractor(captioner)

            def caption(path: Path, info: ProbeInfo) -> tuple[Any, dict[str, Any]]:
                captioner.load()
                segs = caption_video(path, vid_of(path), captioner, duration_s=info.duration_s)
                return {"segments": _rows(segs)}, {"n_frames": sum(int(s.meta["frames"]) for s in segs)}

            collect(ex, "caption", index_videos_json(store, videos, ex, caption, desc="text: caption"))
    finally:
        if pool is not None:
            pool.shutdown(wait=True)  # an OCR error still waits for speech to stop
    if speech is not None:
        speech.result()  # speech's error, if any, is raised here

    if "subtitle" in sources.use:
        for video in videos:
            out[video.vid].extend(subtitle_segments(video))

    return {vid: sort_segments(segs) for vid, segs in out.items()}


def _import_decoders() -> None:
    """Import the video decoders here, before two threads both reach them: a module two threads
    import at once can be seen half-initialized by one of them (PyAV's circular imports)."""
    import importlib

    for name in ("av", "decord"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def subtitle_segments(video: Video) -> list[Segment]:
    """The cues of ``video``'s subtitle sidecar as ``subtitle`` segments (none without one).

    Not cached: parsing is cheap, and the sidecar may be edited without the video changing.
    """
    from bench.text.subtitles import read_subtitles

    path = video.resolve_subtitles(None)
    if path is None:
        return []
    return [Segment(vid=video.vid, start=c.start, end=c.end, source="subtitle", text=c.text,
                    lang=video.lang, meta={"file": Path(path).name})
            for c in read_subtitles(path) if c.text]


def sources_provenance(sources: TextSources, *, device: str = "cpu") -> dict[str, Any]:
    """What made the text: per enabled source, model id, revision, checksum, ``random_init``.

    Loads no model (a tiny random-init one is built into the cache if needed)."""
    out: dict[str, Any] = {"use": list(sources.use), "version": EXTRACT_VERSION}
    if "speech" in sources.use:
        out["speech"] = {**Transcriber(sources.asr, device=device).provenance(),
                         "settings": sources.asr.model_dump(mode="json", exclude={"model"})}
    if "ocr" in sources.use:
        out["ocr"] = {**OcrEngine(sources.ocr).provenance(),
                      "settings": sources.ocr.model_dump(mode="json")}
    if "caption" in sources.use:
        out["caption"] = {**Captioner(sources.caption, device=device).provenance(),
                          "settings": sources.caption.model_dump(mode="json", exclude={"model"})}
    if "subtitle" in sources.use:
        out["subtitle"] = {"id": "sidecar files", "random_init": False}
    out["random_init"] = any(bool(v.get("random_init")) for v in out.values() if isinstance(v, dict))
    return out
