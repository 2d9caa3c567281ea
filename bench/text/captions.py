"""Frame captions as timestamped text: a Hugging Face image-to-text model every N seconds.

Consecutive identical captions merge into one segment. ``tiny:caption`` is a random-init
BLIP built offline for tests; its captions are noise and every segment says ``random_init``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bench.errors import BadInput, Unavailable
from bench.modelref import ModelRef, ResolvedModel, hub_offline, hub_unavailable_reason, resolve
from bench.text.segments import Segment
from bench.timing import stage

CAPTION_PRESETS: dict[str, dict[str, Any]] = {
    "blip-base": {"model": {"id": "Salesforce/blip-image-captioning-base",
                            "revision": "82a37760796d32b1411fe092ab5d4e227313294b"}},
    # Random-init BLIP of models/tiny/caption.yaml: exercises the code path, says nothing.
    "tiny": {"model": {"id": "tiny:caption"}},
}
"""Named caption configurations; YAML may say ``caption: blip-base``."""


CAPTION_CPU_DTYPE = "float32"
"""The captioner's precision on the CPU (half-precision matmuls there are slow and lossy)."""


class CaptionConfig(BaseModel):
    """Which captioner, how often, and how it decodes."""

    model_config = ConfigDict(extra="forbid")

    model: ModelRef = Field(default_factory=lambda: ModelRef(**CAPTION_PRESETS["blip-base"]["model"]))
    every_s: float = Field(default=2.0, gt=0)
    """Seconds between captioned frames. Captions describe the scene, which changes more
    slowly than on-screen text, and a forward + decode costs ~50x an OCR read."""
    short_side: int | None = Field(default=384, ge=16)
    """Decode frames at this short side (BLIP's input is 384 x 384; decoding larger is waste)."""
    batch_size: int = Field(default=8, ge=1)
    max_new_tokens: int = Field(default=24, ge=1)
    num_beams: int = Field(default=1, ge=1)
    prompt: str | None = None
    """Conditional prefix (BLIP: ``"a picture of"``); ``None`` captions unconditionally."""

    @model_validator(mode="before")
    @classmethod
    def _from_preset(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data not in CAPTION_PRESETS:
                known = ", ".join(sorted(CAPTION_PRESETS))
                raise BadInput(f"unknown caption preset {data!r}; known: {known}")
            return dict(CAPTION_PRESETS[data])
        return data


def resolve_torch_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Captioner:
    """An image-to-text model loaded once (lazily) and applied to batches of frames."""

    def __init__(self, config: CaptionConfig | None = None, device: str = "cpu") -> None:
        self.config = config or CaptionConfig()
        self.device = resolve_torch_device(device)
        self._resolved: ResolvedModel | None = None
        self._model: Any = None
        self._processor: Any = None

    @property
    def resolved(self) -> ResolvedModel:
        if self._resolved is None:
            self._resolved = resolve(self.config.model)
        return self._resolved

    @property
    def random_init(self) -> bool:
        return self.resolved.random_init

    def revision(self) -> str | None:
        """What pins the weights: the hub revision, or the tiny recipe's digest directory."""
        if self.resolved.source == "tiny":
            return Path(self.resolved.location).name
        return self.resolved.revision

    @property
    def dtype_name(self) -> str:
        """The model's precision: float16 on CUDA, :data:`CAPTION_CPU_DTYPE` on the CPU."""
        return "float16" if self.device == "cuda" else CAPTION_CPU_DTYPE

    def provenance(self) -> dict[str, Any]:
        out = self.resolved.provenance()
        out.update(revision=self.revision(), device=self.device, dtype=self.dtype_name)
        return out

    def load(self) -> tuple[Any, Any]:
        """(processor, model), loaded once; :class:`Unavailable` with the reason if they cannot be."""
        if self._model is not None:
            return self._processor, self._model
        resolved = self.resolved
        try:
            import torch
            from transformers import AutoModelForImageTextToText, AutoProcessor
        except ImportError as exc:
            raise Unavailable(f"captions need torch and transformers ({exc})") from None
        hub = resolved.source == "hub"
        kwargs: dict[str, Any] = {"local_files_only": not hub or hub_offline()}
        if hub and resolved.revision:
            kwargs["revision"] = resolved.revision
        try:
            processor = AutoProcessor.from_pretrained(resolved.location, **kwargs)
            dtype = getattr(torch, self.dtype_name)
            model: Any = AutoModelForImageTextToText.from_pretrained(resolved.location, dtype=dtype,
                                                                     **kwargs)
        except Exception as exc:  # hub, file and config errors come in many types
            raise Unavailable(hub_unavailable_reason(self.config.model, exc)) from exc
        self._processor, self._model = processor, model.to(self.device).eval()
        return self._processor, self._model

    def caption(self, frames: np.ndarray | Sequence[np.ndarray]) -> list[str]:
        """Caption RGB uint8 frames (``(n, H, W, 3)`` or a list of ``(H, W, 3)``); one string each."""
        import torch

        processor, model = self.load()
        images = list(frames)
        if not images:
            return []
        out: list[str] = []
        cfg = self.config
        for i in range(0, len(images), cfg.batch_size):
            chunk = images[i:i + cfg.batch_size]
            if cfg.prompt is None:
                inputs = processor(images=chunk, return_tensors="pt")
            else:
                inputs = processor(images=chunk, text=[cfg.prompt] * len(chunk), return_tensors="pt")
            inputs = {k: (v.to(self.device, model.dtype) if v.is_floating_point() else v.to(self.device))
                      for k, v in inputs.items()}
            with torch.inference_mode():
                ids = model.generate(**inputs, max_new_tokens=cfg.max_new_tokens, num_beams=cfg.num_beams)
            out.extend(t.strip() for t in processor.batch_decode(ids, skip_special_tokens=True))
        return out


def merge_captions(
    vid: str,
    times_s: Sequence[float],
    captions: Sequence[str],
    *,
    hold_s: float,
    duration_s: float | None = None,
    meta: dict[str, Any] | None = None,
) -> list[Segment]:
    """Merge consecutive identical captions (case and spacing ignored) into ``caption`` segments.

    ``times_s`` (seconds, increasing) are the captioned frames' times. A segment runs from its
    first frame to the next different caption's frame, or ``hold_s`` after its last frame,
    clipped to ``duration_s``. Empty captions end the previous segment and make none.
    ``meta`` (e.g. the model id and ``random_init``) is copied into every segment, with
    ``frames`` (captions merged) added.
    """
    if len(times_s) != len(captions):
        raise ValueError(f"{len(times_s)} times for {len(captions)} captions")
    runs: list[list[Any]] = []  # [start, last_time, text, key, frames, end_or_None]
    for time_s, text in zip(times_s, captions, strict=True):
        key = " ".join(text.casefold().split())
        if runs and runs[-1][5] is None and runs[-1][3] != key:
            runs[-1][5] = float(time_s)
        if not key:
            continue
        if runs and runs[-1][3] == key and runs[-1][5] is None:
            runs[-1][1] = float(time_s)
            runs[-1][4] += 1
        else:
            runs.append([float(time_s), float(time_s), text.strip(), key, 1, None])
    segments = []
    for start, last, text, _, frames, end in runs:
        end = last + hold_s if end is None else end
        if duration_s is not None:
            end = min(end, duration_s)
        end = max(end, start + 1e-3)
        segments.append(Segment(vid=vid, start=start, end=end, source="caption", text=text,
                                meta={**(meta or {}), "frames": frames}))
    return segments


def caption_video(path: Path, vid: str, captioner: Captioner, *,
                  duration_s: float | None = None) -> list[Segment]:
    """Caption ``path`` every ``captioner.config.every_s`` seconds; merged ``caption`` segments.

    Decoding is timed as stage ``decode`` and captioning as stage ``caption`` (items = frames).
    """
    from bench.video import sample_frames

    cfg = captioner.config
    times: list[float] = []
    texts: list[str] = []
    batches = iter(sample_frames(path, fps=1.0 / cfg.every_s, short_side=cfg.short_side,
                                 batch_size=cfg.batch_size))
    while True:
        with stage("decode"):
            batch = next(batches, None)
        if batch is None:
            break
        with stage("caption", items=len(batch.times_s)):
            texts.extend(captioner.caption(batch.frames))
        times.extend(float(t) for t in batch.times_s)
    meta = {"model": captioner.config.model.id, "random_init": captioner.random_init}
    return merge_captions(vid, times, texts, hold_s=cfg.every_s, duration_s=duration_s, meta=meta)
