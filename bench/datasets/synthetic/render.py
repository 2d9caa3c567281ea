"""Pictures of a scene: the photograph under a slow eased pan or zoom, and its telop and caption."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.datasets.synthetic.spec import IMAGES, Scene, SceneSpec, SynthSpec, TextSpec
from bench.datasets.synthetic.tools import run_tool
from bench.errors import BadInput

if TYPE_CHECKING:
    from PIL import Image, ImageFont

ZOOM = 1.2
"""Ken Burns: the closest zoom, relative to the widest crop of the photograph."""
PAN_TRAVEL = 0.3
"""Ken Burns: the longest pan, as a fraction of the view's width (or height)."""


@cache
def _image_array(name: str) -> np.ndarray:
    """The photograph ``name`` as an ``(H, W, 3)`` uint8 RGB array."""
    try:
        if name in ("china", "flower"):
            from sklearn.datasets import load_sample_image

            arr = np.asarray(load_sample_image(f"{name}.jpg"))
        else:
            import skimage.data as data

            arr = np.asarray(data.stereo_motorcycle()[0] if name == "motorcycle_left"
                             else getattr(data, name)())
    except ImportError as exc:
        raise BadInput(f"the synthetic sets need scikit-image and scikit-learn ({exc.name} is missing): "
                       "pip install 'scenebench[data]'") from None
    if arr.dtype == bool:
        arr = np.where(arr, 255, 0).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3].astype(np.uint8))


@cache
def _font_path(lang: str, bold: bool) -> tuple[str, int]:
    """(file, face index) of the Noto Sans CJK face that suits ``lang``."""
    region = {"zh": "SC"}.get(lang, "JP")  # the JP face also carries Latin and Cyrillic
    family = f"Noto Sans CJK {region}"
    style = "Bold" if bold else "Regular"
    fc = shutil.which("fc-match")
    if fc:
        got = run_tool([fc, "-f", "%{file}|%{index}|%{family}", f"{family}:style={style}"], "fc-match")
        file, index, families = (got.stdout.decode("utf-8", "replace").split("|") + ["", "", ""])[:3]
        if family in families and Path(file).is_file():
            return file, int(index or 0)
    else:  # no fontconfig: look where Debian's fonts-noto-cjk puts the collections
        from PIL import ImageFont

        collection = f"/usr/share/fonts/opentype/noto/NotoSansCJK-{style}.ttc"
        for face in range(10) if Path(collection).is_file() else ():
            if ImageFont.truetype(collection, 12, index=face).getname()[0] == family:
                return collection, face
    raise BadInput(f"font '{family} {style}' not found; install the Debian package 'fonts-noto-cjk' "
                   "(apt-get install fonts-noto-cjk)")


def _font(lang: str, bold: bool, size: int) -> ImageFont.FreeTypeFont:
    from PIL import ImageFont

    file, index = _font_path(lang, bold)
    return ImageFont.truetype(file, size, index=index)


def overlay(spec: SynthSpec, scene: SceneSpec, where: str) -> tuple[Image.Image, tuple[int, int]] | None:
    """The scene's telop and caption as one RGBA patch and its top-left position, or None."""
    from PIL import Image, ImageDraw

    if scene.telop is None and scene.caption is None:
        return None
    w, h = spec.width, spec.height
    canvas = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    margin = round(h * 0.05)
    if scene.telop is not None:
        pad = round(h * 0.025)
        font, box = _fit(draw, scene.telop, True, round(h * 0.095), w - 2 * margin - 2 * pad, where)
        x, y = margin, margin
        draw.rounded_rectangle((x, y, x + box[2] - box[0] + 2 * pad, y + box[3] - box[1] + 2 * pad),
                               radius=pad, fill=(0, 0, 0, 200))
        draw.text((x + pad - box[0], y + pad - box[1]), scene.telop.text, font=font,
                  fill=(255, 255, 255, 255))
    if scene.caption is not None:
        pad = round(h * 0.018)
        font, box = _fit(draw, scene.caption, False, round(h * 0.066), w - 2 * margin - 2 * pad, where)
        tw, th = box[2] - box[0], box[3] - box[1]
        x, y = (w - tw) // 2 - pad, h - margin - th - 2 * pad
        draw.rectangle((x, y, x + tw + 2 * pad, y + th + 2 * pad), fill=(0, 0, 0, 150))
        draw.text((x + pad - box[0], y + pad - box[1]), scene.caption.text, font=font,
                  fill=(255, 255, 210, 255))
    bbox = canvas.getbbox()
    assert bbox is not None
    return canvas.crop(bbox), (bbox[0], bbox[1])


def inset(spec: SynthSpec, image: str) -> tuple[Image.Image, tuple[int, int]]:
    """The photograph ``image`` as a small framed picture for the lower right corner, and its
    top-left position."""
    from PIL import Image, ImageOps

    w, h = spec.width, spec.height
    arr = _image_array(image)
    box_w = round(w * 0.36)
    box_h = round(box_w * arr.shape[0] / arr.shape[1])
    box_h = min(box_h, round(h * 0.5))
    pic = Image.fromarray(arr).resize((box_w, box_h), Image.Resampling.LANCZOS)
    pic = ImageOps.expand(pic, border=max(2, round(h * 0.008)), fill=(255, 255, 255))
    margin = round(h * 0.05)
    return pic.convert("RGBA"), (w - pic.width - margin, h - pic.height - margin)


def _fit(draw: Any, text: TextSpec, bold: bool, size: int, max_w: int,
         where: str) -> tuple[ImageFont.FreeTypeFont, tuple[int, int, int, int]]:
    """The largest font (from ``size`` down to 70 %) at which ``text`` fits in ``max_w`` pixels."""
    for s in range(size, int(size * 0.7) - 1, -1):
        font = _font(text.lang, bold, s)
        box = draw.textbbox((0, 0), text.text, font=font)
        if box[2] - box[0] <= max_w:
            return font, box
    raise BadInput(f"{where}: text {text.text!r} is too wide for a {max_w}px line; shorten it")


def scene_frames(spec: SynthSpec, scene: Scene) -> Iterator[Image.Image]:
    """``scene.frames`` RGB frames of the photograph under a slow pan or zoom (eased)."""
    from PIL import Image

    w, h = spec.width, spec.height
    arr = _image_array(scene.spec.image)
    ih, iw = arr.shape[:2]
    # Resample once so the closest zoom is still about 1:1; each frame is then a cheap crop+resize.
    scale = max(w * ZOOM / iw, h * ZOOM / ih)
    size = (math.ceil(iw * scale), math.ceil(ih * scale))
    src = Image.fromarray(arr).resize(size, Image.Resampling.LANCZOS)
    sw, sh = src.size
    bw = min(sw, sh * w / h)
    bh = bw * h / w
    focus = IMAGES[scene.spec.image].focus
    n = scene.frames
    for i in range(n):
        t = i / (n - 1) if n > 1 else 0.0
        u = t * t * (3 - 2 * t)
        move = scene.move
        zoom = {"zoom-in": 1 + (ZOOM - 1) * u, "zoom-out": ZOOM - (ZOOM - 1) * u}.get(move, ZOOM)
        rw, rh = bw / zoom, bh / zoom
        x0 = min(max(focus[0] * sw - rw / 2, 0.0), sw - rw)
        y0 = min(max(focus[1] * sh - rh / 2, 0.0), sh - rh)
        # A pan travels at most PAN_TRAVEL of the view, around the point of interest, so a
        # tall photograph does not scroll its subject out of the picture.
        if move in ("pan-right", "pan-left"):
            x0 = _pan(x0, sw - rw, rw * PAN_TRAVEL, u if move == "pan-right" else 1 - u)
        elif move in ("pan-down", "pan-up"):
            y0 = _pan(y0, sh - rh, rh * PAN_TRAVEL, u if move == "pan-down" else 1 - u)
        yield src.resize((w, h), Image.Resampling.BILINEAR, box=(x0, y0, x0 + rw, y0 + rh))


def graded_frames(spec: SynthSpec, scene: Scene) -> Iterator[Image.Image]:
    """The scene's frames with its :class:`~bench.datasets.synthetic.spec.LookSpec` applied
    (exposure, saturation, tint and motion); the plain frames when it has none."""
    from PIL import Image

    look = scene.spec.look
    if look is None:
        yield from scene_frames(spec, scene)
        return
    rng = np.random.default_rng(scene.index)
    frames = scene_frames(spec, scene)
    first = next(frames)
    tint = np.array(look.tint, dtype=np.float32) * look.brightness
    for i in range(scene.frames):
        frame = first if i == 0 or look.motion == "still" else next(frames, first)
        arr = np.asarray(frame, dtype=np.float32)
        if look.motion == "fast":
            # A quick back-and-forth pan, about a tenth of the width every half second.
            shift = round(0.1 * spec.width * math.sin(2 * math.pi * i / max(1, spec.fps)))
            arr = np.roll(arr, shift, axis=1)
        elif look.motion == "shake":
            dx, dy = rng.integers(-spec.width // 16, spec.width // 16 + 1, size=2)
            arr = np.roll(arr, (int(dy), int(dx)), axis=(0, 1)) * float(rng.uniform(0.75, 1.25))
        grey = arr.mean(axis=2, keepdims=True)
        arr = (grey + (arr - grey) * look.saturation) * tint
        yield Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


def _pan(around: float, free: float, travel: float, u: float) -> float:
    """Crop offset at progress ``u`` (0..1) of a pan of ``travel`` pixels centred on offset
    ``around``, kept inside ``[0, free]``."""
    travel = min(travel, free)
    lo = min(max(around - travel / 2, 0.0), free - travel)
    return lo + travel * u

