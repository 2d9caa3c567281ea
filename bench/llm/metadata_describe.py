"""Metadata written by models: the LLM's summary and important scenes, the vision-language
model's description of sampled frames, and reading both answers into timed entries."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import BackendError, BadInput, BenchError, Unavailable
from bench.llm.metadata import (
    Entry,
    MetadataConfig,
    VideoMetadata,
    chunk_windows,
    fit_text,
    one_line,
    render_metadata,
)
from bench.llm.parsing import (
    InvalidOutput,
    clip_range,
    extract_json,
    format_range,
    parse_time_range,
    uses_hours,
    validate_scenes,
)
from bench.llm.prompts import summary_messages, vlm_messages

if TYPE_CHECKING:
    from bench.llm.cache import LLMClient


class ExtractionFailed(BadInput):
    """Metadata for one video could not be made (its model call failed); recorded in the
    store as failed with this reason and retried on the next run.

    ``backend`` is the backend's error when the model calls failed on the backend (down,
    timed out, HTTP errors after retries) rather than giving an unusable answer."""

    def __init__(self, message: str, *, backend: BackendError | None = None) -> None:
        super().__init__(message)
        self.backend = backend


def _timed(items: Any, duration_s: float, text_keys: Sequence[str], *,
           lo: float = 0.0, hi: float | None = None, position: bool = False) -> list[Entry]:
    """Entries from a JSON list of ``{"Timestamp": ..., <text key>: ...}``; invalid ones dropped."""
    if not isinstance(items, list):
        return []
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        low = {str(k).strip().lower(): v for k, v in item.items()}
        text = next((low[k] for k in text_keys if isinstance(low.get(k), str) and low[k].strip()), None)
        stamp = low.get("timestamp") or low.get("time")
        if text is None or not isinstance(stamp, str):
            continue
        try:
            start, end = sorted(parse_time_range(stamp))
        except InvalidOutput:
            continue
        top = duration_s if hi is None else hi
        if end < lo or start > top:
            continue  # outside the stretch the model was shown
        window, _ = clip_range(max(start, lo), min(end, top), duration_s)
        if window is None:
            continue
        pos = low.get("position") if position else None
        out.append(Entry(start_s=window[0], end_s=window[1], text=one_line(text),
                         position=one_line(pos, 40) if isinstance(pos, str) and pos.strip() else None))
    return sorted(out, key=lambda e: (e.start_s, e.end_s))


def _lower_keys(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidOutput(f"expected a JSON object, got {type(data).__name__}")
    return {" ".join(str(k).replace("_", " ").lower().split()): v for k, v in data.items()}


def parse_summary_answer(answer: str, duration_s: float, *, max_scenes: int = 8) -> tuple[str, list[Entry]]:
    """``(summary, important scenes)`` from a summary answer; InvalidOutput when unusable."""
    data = _lower_keys(extract_json(answer))
    summary = data.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise InvalidOutput("the answer has no \"Summary\" text")
    items = data.get("important scenes") or data.get("scenes") or []
    scenes = validate_scenes(items if isinstance(items, list) else [], duration_s,
                             max_scenes=max_scenes, merge=False)
    return one_line(summary, 2000), [Entry(start_s=s.start_s, end_s=s.end_s, text=s.description)
                                      for s in scenes if s.description]


@dataclass
class VlmPart:
    """What a vision-language model said about one batch of frames."""

    start_s: float
    end_s: float
    summary: str
    important_scenes: list[Entry] = field(default_factory=list)
    visual_info: list[Entry] = field(default_factory=list)
    texts: list[Entry] = field(default_factory=list)
    transcription: list[Entry] = field(default_factory=list)


def parse_vlm_answer(answer: str, duration_s: float, start_s: float, end_s: float) -> VlmPart:
    """A VLM answer for frames in ``[start_s, end_s]``; entries are clipped to that stretch."""
    data = _lower_keys(extract_json(answer))
    summary = data.get("summary")
    part = VlmPart(
        start_s=start_s, end_s=end_s,
        summary=one_line(summary, 1000) if isinstance(summary, str) else "",
        important_scenes=_timed(data.get("important scenes"), duration_s, ("description", "text"),
                                lo=start_s, hi=end_s),
        visual_info=_timed(data.get("visual info"), duration_s, ("description", "text"),
                           lo=start_s, hi=end_s),
        texts=_timed(data.get("texts"), duration_s, ("text", "description"), lo=start_s, hi=end_s,
                     position=True),
        transcription=_timed(data.get("transcription"), duration_s, ("text", "description"),
                             lo=start_s, hi=end_s))
    if not (part.summary or part.visual_info or part.texts or part.important_scenes):
        raise InvalidOutput("the answer has none of Summary, Important scenes, Visual info, Texts")
    return part


def merge_vlm_parts(base: VideoMetadata, parts: Sequence[VlmPart], model: str) -> VideoMetadata:
    """``base`` (from the text side) with the VLM's sections added; its summary and scenes win."""
    hours = uses_hours(base.duration_s)
    if len(parts) == 1:
        summary = parts[0].summary
    else:
        summary = " ".join(f"{format_range(p.start_s, p.end_s, hours=hours)}: {p.summary}"
                           for p in parts if p.summary)

    def joined(name: str) -> list[Entry]:
        entries = [*getattr(base, name), *(e for p in parts for e in getattr(p, name))]
        return sorted(entries, key=lambda e: (e.start_s, e.end_s, e.text))

    scenes = sorted((e for p in parts for e in p.important_scenes), key=lambda e: (e.start_s, e.end_s))
    return base.model_copy(update={
        "summary": summary or base.summary,
        "important_scenes": scenes or base.important_scenes,
        "visual_info": joined("visual_info"), "texts": joined("texts"),
        "transcription": base.transcription or joined("transcription"),
        "sources": [*(s for s in base.sources if not s.startswith("summary:")), f"vlm:{model}"]})


def frame_data_url(frame: Any, *, quality: int = 85) -> str:
    """An RGB uint8 ``(H, W, 3)`` array as a ``data:image/jpeg;base64,...`` URL."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _summary_budget(client: LLMClient, max_new_tokens: int) -> int:
    overhead = client.backend.count_tokens(str(summary_messages("", 1.0)))
    return client.backend.context_tokens - max_new_tokens - overhead - 64


def llm_summary(meta: VideoMetadata, client: LLMClient, config: MetadataConfig) -> dict[str, Any]:
    """Ask the LLM for the summary and important scenes (chunked by time when long).

    Returns ``{"summary": str, "important_scenes": [Entry dicts]}``; raises
    :class:`ExtractionFailed` when the backend fails or no chunk gives a usable answer.
    """
    count = client.backend.count_tokens
    budget = _summary_budget(client, config.summary_max_new_tokens)
    sections = ("visual_info", "transcription", "texts")
    body = meta.model_copy(update={"summary": ""})
    full = render_metadata(body, sections=sections)
    windows = [(0.0, meta.duration_s)] if count(full) <= budget else chunk_windows(body, budget, count)
    summaries: list[str] = []
    scenes: list[Entry] = []
    problems: list[str] = []
    backend_errors: list[BackendError] = []
    hours = uses_hours(meta.duration_s)
    for lo, hi in windows:
        text, _ = fit_text(render_metadata(body, window=(lo, hi), sections=sections), budget, count)
        try:
            done = client.chat(summary_messages(text, meta.duration_s),
                               max_new_tokens=config.summary_max_new_tokens, purpose="summary", tag=meta.vid)
            summary, found = parse_summary_answer(done.text, meta.duration_s,
                                                  max_scenes=config.max_important_scenes)
        except Unavailable:
            raise  # a refused key concerns every video: the configuration cannot run
        except (BenchError, InvalidOutput) as exc:
            problems.append(str(exc))
            if isinstance(exc, BackendError):
                backend_errors.append(exc)
            continue
        prefix = "" if len(windows) == 1 else f"{format_range(lo, hi, hours=hours)}: "
        summaries.append(prefix + summary)
        scenes.extend(e for e in found if e.end_s > lo and e.start_s < hi)
    if not summaries:
        on_backend = backend_errors[0] if problems and len(backend_errors) == len(problems) else None
        raise ExtractionFailed(f"{meta.vid}: LLM summary failed: {problems[0] if problems else 'no answer'}",
                               backend=on_backend)
    return {"summary": " ".join(summaries),
            "important_scenes": [e.model_dump() for e in sorted(scenes, key=lambda e: (e.start_s, e.end_s))]}


def vlm_describe(path: Path, meta: VideoMetadata, client: LLMClient, config: MetadataConfig) -> list[VlmPart]:
    """Frames of ``path`` at ``vlm_fps``, ``vlm_frames_per_call`` per call, described by the VLM.

    Raises :class:`ExtractionFailed` when any call fails or is unusable: partial visual
    metadata would silently hide whole stretches of the video from search.
    """
    from bench.video import sample_frames

    parts: list[VlmPart] = []
    step = 1.0 / config.vlm_fps
    for batch in sample_frames(path, config.vlm_fps, short_side=config.vlm_short_side,
                               batch_size=config.vlm_frames_per_call):
        times = [float(t) for t in batch.times_s]
        frames = [(t, frame_data_url(f)) for t, f in zip(times, batch.frames, strict=True)]
        lo, hi = times[0], min(meta.duration_s, times[-1] + step)
        try:
            done = client.chat(vlm_messages(frames, meta.duration_s),
                               max_new_tokens=config.vlm_max_new_tokens, purpose="vlm", tag=meta.vid)
            parts.append(parse_vlm_answer(done.text, meta.duration_s, lo, hi))
        except Unavailable:
            raise
        except (BenchError, InvalidOutput) as exc:
            raise ExtractionFailed(f"{meta.vid}: VLM on {format_range(lo, hi)} failed: {exc}",
                                   backend=exc if isinstance(exc, BackendError) else None) from None
    if not parts:
        raise ExtractionFailed(f"{meta.vid}: no frames could be sampled for the VLM")
    return parts
