"""Image preprocessing in torch (resize, center-crop, normalize) matching a model's
``preprocessor_config.json``, and image files read as query images.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.errors import BadInput

if TYPE_CHECKING:
    import torch

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}
"""PIL resampling codes of ``preprocessor_config.json`` -> torch interpolation modes."""


@dataclass(frozen=True)
class ImageTransform:
    """Resize + center-crop + normalize of uint8 RGB batches, in torch, matching a model's
    ``preprocessor_config.json`` (CLIP: short side -> size, crop; SigLIP: squash to size)."""

    crop: tuple[int, int]
    """Output (height, width) in pixels."""
    shortest_edge: int | None
    """Resize the short side to this (aspect kept) then crop; ``None`` resizes straight to ``crop``."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ImageTransform:
        size = cfg.get("size", {"shortest_edge": 224})
        if isinstance(size, int):
            size = {"shortest_edge": size}
        crop = cfg.get("crop_size") or {}
        if isinstance(crop, int):
            crop = {"height": crop, "width": crop}
        center = bool(cfg.get("do_center_crop", "shortest_edge" in size))
        if "shortest_edge" in size:
            short = int(size["shortest_edge"])
            hw = (int(crop.get("height", short)), int(crop.get("width", short))) if center else (short, short)
            shortest: int | None = short
        else:
            hw = (int(size["height"]), int(size["width"]))
            shortest = None
        mean = tuple(float(x) for x in cfg.get("image_mean", CLIP_MEAN))
        std = tuple(float(x) for x in cfg.get("image_std", CLIP_STD))
        if len(mean) != 3 or len(std) != 3:
            raise BadInput(f"preprocessor config: image_mean and image_std need 3 values, got {mean}, {std}")
        mode = _RESAMPLE.get(int(cfg.get("resample", 3)), "bicubic")
        return cls(crop=hw, shortest_edge=shortest, mean=mean, std=std,  # type: ignore[arg-type]
                   interpolation=mode)

    @property
    def decode_short_side(self) -> int:
        """Short side to ask the decoder for: the resize target (scaling inside the decoder
        is cheaper than decoding full size and resizing in torch)."""
        return self.shortest_edge or max(self.crop)

    def signature(self) -> dict[str, Any]:
        return {"crop": list(self.crop), "shortest_edge": self.shortest_edge, "mean": list(self.mean),
                "std": list(self.std), "interpolation": self.interpolation}

    def __call__(self, frames: np.ndarray | torch.Tensor, device: str = "cpu",
                 dtype: torch.dtype | None = None) -> torch.Tensor:
        """uint8 ``(n, H, W, 3)`` RGB -> normalized float ``(n, 3, crop_h, crop_w)`` on ``device``."""
        import torch
        import torch.nn.functional as F

        if isinstance(frames, np.ndarray):
            # Read-only arrays (PIL views) are copied: torch will not wrap them safely.
            x = torch.from_numpy(frames if frames.flags.writeable else frames.copy())
        else:
            x = frames
        if x.ndim != 4 or x.shape[-1] != 3:
            raise BadInput(f"frames must be (n, H, W, 3) RGB, got shape {tuple(x.shape)}")
        x = x.to(device).permute(0, 3, 1, 2).float()
        h, w = int(x.shape[2]), int(x.shape[3])
        if self.shortest_edge is not None:
            scale = self.shortest_edge / min(h, w)
            size = (max(self.crop[0], round(h * scale)), max(self.crop[1], round(w * scale)))
        else:
            size = self.crop
        if size != (h, w):
            antialias = self.interpolation != "nearest"
            x = F.interpolate(x, size=size, mode=self.interpolation, antialias=antialias,
                              align_corners=False if self.interpolation != "nearest" else None)
            x = x.clamp_(0.0, 255.0).round_()  # PIL resizes to uint8; keep the same values
        top = (x.shape[2] - self.crop[0]) // 2
        left = (x.shape[3] - self.crop[1]) // 2
        x = x[:, :, top:top + self.crop[0], left:left + self.crop[1]]
        mean, std = _scaled_constants(self.mean, self.std, str(x.device))
        x = (x - mean) / std
        return x.to(dtype) if dtype is not None else x.contiguous()


@functools.lru_cache(maxsize=16)
def _scaled_constants(mean: tuple[float, ...], std: tuple[float, ...],
                      device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean`` and ``std`` times 255 as ``(1, 3, 1, 1)`` tensors on ``device``, made once per
    device: a new tensor per batch would be a blocking host-to-device copy on a GPU."""
    import torch

    return (torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255.0,
            torch.tensor(std, device=device).view(1, 3, 1, 1) * 255.0)


def load_image(path: str | Path) -> np.ndarray:
    """An image file as uint8 ``(H, W, 3)`` RGB; :class:`BadInput` if it is not an image."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise BadInput(f"query image {p}: file not found")
    try:
        with Image.open(p) as im:
            return np.array(im.convert("RGB"))  # a writable copy (torch refuses read-only arrays)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadInput(f"query image {p}: not a readable image ({exc})") from None

