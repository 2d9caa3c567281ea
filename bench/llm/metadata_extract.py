"""Metadata for a set of videos, each stage (text-side assembly, LLM summary, VLM frames)
cached in the feature store and remade only when what it read changes."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import BackendError, BadInput
from bench.llm.metadata import METADATA_VERSION, Entry, MetadataConfig, VideoMetadata, render_metadata
from bench.llm.metadata_describe import ExtractionFailed, VlmPart, llm_summary, merge_vlm_parts, vlm_describe
from bench.llm.metadata_local import metadata_from_segments
from bench.text.segments import Segment

if TYPE_CHECKING:
    from bench.llm.cache import LLMClient
    from bench.store import FeatureStore
    from bench.types import Video



@dataclass
class ExtractedMetadata:
    """Metadata by vid, and why a video's metadata is partial (fallback used) or missing."""

    metadata: dict[str, VideoMetadata]
    errors: dict[str, str] = field(default_factory=dict)
    backend_errors: dict[str, BackendError] = field(default_factory=dict)
    """vid -> the backend error of a model stage (summary, VLM) that failed on the backend."""


def _portable(name: str) -> str:
    # Endpoints often serve a model under its directory path; keys must not hold machine paths.
    return Path(name).name if name.startswith(("/", "~")) or ":\\" in name else name


def _llm_identity(client: LLMClient) -> dict[str, Any]:
    b = client.backend
    return {"backend": b.kind, "model": _portable(b.model), "revision": b.revision,
            "prompt_revision": client.prompt_revision}


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _duration(store: FeatureStore, video_id: str, path: Path) -> float:
    from bench.video import ProbeInfo, probe

    cached = store.get_probe(video_id)
    if cached is not None:
        return ProbeInfo.from_dict(cached).duration_s
    info = probe(path)
    store.record_probe(video_id, info)
    return info.duration_s


def _stage(store: FeatureStore, video_id: str, ex: Any, input_digest: str,
           compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The stored result of a stage for this input, computing and saving it when absent or stale.

    ``input_digest`` names what the stage read; a stored result made from other input (the
    text segments changed) is recomputed. ExtractionFailed is recorded in the store and re-raised.
    """
    obj = store.load_json(video_id, ex)
    if isinstance(obj, dict) and obj.get("input_digest") == input_digest:
        return obj
    try:
        obj = {**compute(), "input_digest": input_digest}
    except ExtractionFailed as exc:
        store.mark_failed(video_id, ex, str(exc))
        raise
    store.save_json(video_id, ex, obj)
    return obj


def extract_metadata(videos: Sequence[Video], store: FeatureStore, config: MetadataConfig, *,
                     device: str, llm: LLMClient | None = None,
                     vlm: LLMClient | None = None) -> ExtractedMetadata:
    """Metadata for every video (``Video.path`` local files), each stage cached in ``store``.

    1. text segments (:func:`bench.text.extract.extract_segments`, cached there);
    2. ``llm-metadata.local``: :func:`metadata_from_segments`, stored as JSON plus rendered
       text, remade only when the segments change;
    3. ``llm-metadata.summary`` when ``config.summary_llm`` (needs ``llm``): the LLM's summary
       and important scenes, keyed by backend, model, revision and prompt revision;
    4. ``llm-metadata.vlm`` when ``config.extractor == "vlm"`` (needs ``vlm``): the VLM's
       description of sampled frames, keyed the same way plus the sampling settings.
    A failed stage 3 or 4 is recorded in the store as failed (retried next run) and in
    ``errors``, and the video keeps the stage-2 metadata. A video that cannot be read is
    left out, with the reason in ``errors``.
    """
    from tqdm.auto import tqdm

    from bench.store import Extractor
    from bench.text.extract import extract_segments

    if config.extractor == "vlm" and vlm is None:
        raise BadInput("extractor 'vlm' needs an OpenAI-compatible endpoint for the vision model")
    if config.summary_llm and llm is None:
        raise BadInput("summary_llm needs an LLM backend")
    segments = extract_segments(videos, store, config.sources, device=device)
    local_ex = Extractor("llm-metadata.local", {"max_important_scenes": config.max_important_scenes},
                         METADATA_VERSION)
    sum_ex = vlm_ex = None
    if config.summary_llm and llm is not None:
        sum_ex = Extractor("llm-metadata.summary", {**_llm_identity(llm),
                                                    "max_new_tokens": config.summary_max_new_tokens},
                           METADATA_VERSION)
    if config.extractor == "vlm" and vlm is not None:
        vlm_ex = Extractor("llm-metadata.vlm", {
            **_llm_identity(vlm), "fps": config.vlm_fps, "frames_per_call": config.vlm_frames_per_call,
            "short_side": config.vlm_short_side, "max_new_tokens": config.vlm_max_new_tokens,
        }, METADATA_VERSION)
    out = ExtractedMetadata(metadata={})
    for video in tqdm(videos, desc="llm-metadata", unit="video", leave=False):
        path = video.resolve(None)
        if path is None or not path.is_file():
            out.errors[video.vid] = f"no metadata: video file not found ({video.path})"
            continue
        try:
            video_id = store.video_id(path)
            duration = _duration(store, video_id, path)
        except BadInput as exc:
            out.errors[video.vid] = f"no metadata: {exc}"
            continue
        segs = segments.get(video.vid, [])
        rows = [{k: v for k, v in seg.to_row().items() if k != "vid"} for seg in segs]

        def local(video: Video = video, duration: float = duration,
                  segs: list[Segment] = segs) -> dict[str, Any]:
            meta = metadata_from_segments(video.vid, duration, segs,
                                          max_important_scenes=config.max_important_scenes)
            return {"metadata": meta.model_dump(), "rendered": render_metadata(meta)}

        obj = _stage(store, video_id, local_ex, _digest([duration, rows]), local)
        meta = VideoMetadata.model_validate(obj["metadata"]).model_copy(update={"vid": video.vid})
        if sum_ex is not None and llm is not None:
            body = render_metadata(meta, sections=("visual_info", "transcription", "texts"))
            try:
                got = _stage(store, video_id, sum_ex, _digest(body),
                             functools.partial(llm_summary, meta, llm, config))
                meta = _with_summary(meta, got)
            except ExtractionFailed as exc:
                out.errors[video.vid] = f"{exc}; the fixed-form summary is used"
                if exc.backend is not None:
                    out.backend_errors[video.vid] = exc.backend
        if vlm_ex is not None and vlm is not None:
            try:
                got = _stage(store, video_id, vlm_ex, "frames",
                             functools.partial(_vlm_stage, path, meta, vlm, config))
                meta = merge_vlm_parts(meta, [_part_from(d) for d in got["parts"]],
                                       _portable(vlm.backend.model))
            except ExtractionFailed as exc:
                out.errors[video.vid] = f"{exc}; the text-side metadata is used"
                if exc.backend is not None:
                    out.backend_errors[video.vid] = exc.backend
        out.metadata[video.vid] = meta
    return out


def _vlm_stage(path: Path, meta: VideoMetadata, client: LLMClient, config: MetadataConfig) -> dict[str, Any]:
    return {"parts": [_part_dict(p) for p in vlm_describe(path, meta, client, config)]}


def _with_summary(meta: VideoMetadata, obj: Any) -> VideoMetadata:
    return meta.model_copy(update={
        "summary": obj["summary"],
        "important_scenes": ([Entry.model_validate(e) for e in obj["important_scenes"]]
                             or meta.important_scenes),
        "sources": [*(s for s in meta.sources if not s.startswith("summary:")), "summary:llm"]})


def _part_dict(p: VlmPart) -> dict[str, Any]:
    return {"start_s": p.start_s, "end_s": p.end_s, "summary": p.summary,
            **{k: [e.model_dump() for e in getattr(p, k)]
               for k in ("important_scenes", "visual_info", "texts", "transcription")}}


def _part_from(d: dict[str, Any]) -> VlmPart:
    return VlmPart(start_s=float(d["start_s"]), end_s=float(d["end_s"]), summary=str(d["summary"]),
                   **{k: [Entry.model_validate(e) for e in d.get(k, [])]
                      for k in ("important_scenes", "visual_info", "texts", "transcription")})
