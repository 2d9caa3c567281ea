"""Build the embedded scene-suite query sets (``synthetic-v1``, ``synthetic-mini``) from a YAML spec.

Photographs shipped by scikit-image/scikit-learn get Ken Burns motion, Noto CJK telops and
espeak-ng narration, and are encoded to H.264/AAC mp4, so every scene interval is exact ground truth.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import wave
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.datasets import BuildOptions
from bench.datasets.io import load_query_set, read_jsonl, write_jsonl
from bench.errors import BadInput, BenchError
from bench.paths import repo_root
from bench.types import Query, QuerySet, Video

if TYPE_CHECKING:
    from PIL import Image, ImageFont

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1"
"""Bumped whenever the rendering changes what a spec produces; part of the cache stamp."""

NARRATION_LEAD_S = 0.4
"""Silence between a cut and the start of its narration."""
NARRATION_TAIL_S = 0.3
"""Silence kept between the end of a narration and the next cut."""
MAX_WPM = 280
"""Fastest espeak-ng rate tried when a narration does not fit its scene at the spec's rate."""
SAMPLE_RATE = 22050
"""espeak-ng's native output rate; the AAC track keeps it."""
ZOOM = 1.2
"""Ken Burns: the closest zoom, relative to the widest crop of the photograph."""
PAN_TRAVEL = 0.3
"""Ken Burns: the longest pan, as a fraction of the view's width (or height)."""

Lang = Literal["en", "ja", "zh", "ru", "pt"]
Move = Literal["zoom-in", "zoom-out", "pan-left", "pan-right", "pan-up", "pan-down"]
Tag = Literal["speech", "onscreen-text", "visual", "multi"]
Cue = Literal["speech", "onscreen-text", "visual"]
MOVES: tuple[Move, ...] = ("zoom-in", "pan-right", "zoom-out", "pan-left", "pan-up", "pan-down")
LANG_NAMES = {"en": "English", "ja": "Japanese", "zh": "Chinese", "ru": "Russian", "pt": "Portuguese"}


# --------------------------------------------------------------------------- source images


@dataclass(frozen=True)
class SourceImage:
    """A photograph that ships inside an installed package, with its licence."""

    package: str
    call: str
    shows: str
    license: str
    credit: str
    focus: tuple[float, float] = (0.5, 0.5)
    """Point of interest (x, y as fractions of width, height) that crops and zooms keep in view."""


IMAGES: dict[str, SourceImage] = {
    "astronaut": SourceImage("scikit-image", "skimage.data.astronaut()",
                             "astronaut Eileen Collins in an orange spacesuit beside a US flag",
                             "public domain", "NASA Great Images", (0.4, 0.22)),
    "rocket": SourceImage("scikit-image", "skimage.data.rocket()",
                          "a Falcon 9 rocket on its launch pad at night between lit towers",
                          "public domain", "SpaceX"),
    "hubble_deep_field": SourceImage("scikit-image", "skimage.data.hubble_deep_field()",
                                     "hundreds of distant galaxies on a black sky",
                                     "public domain", "NASA / HubbleSite"),
    "chelsea": SourceImage("scikit-image", "skimage.data.chelsea()",
                           "close-up of a tabby cat with green eyes", "CC0", "Stefan van der Walt"),
    "coffee": SourceImage("scikit-image", "skimage.data.coffee()",
                          "a cup of espresso on a red saucer on a wooden table", "CC0",
                          "Rachel Michetti (Pikolo Espresso Bar)"),
    "camera": SourceImage("scikit-image", "skimage.data.camera()",
                          "black-and-white photo of a man filming with a camera on a tripod",
                          "CC0", "Lav Varshney", (0.45, 0.4)),
    "coins": SourceImage("scikit-image", "skimage.data.coins()",
                         "rows of ancient Greek coins from Pompeii (grey)",
                         "no known copyright restrictions", "Brooklyn Museum"),
    "brick": SourceImage("scikit-image", "skimage.data.brick()", "a grey brick wall",
                         "CC0", "CC0Textures (Bricks25)"),
    "grass": SourceImage("scikit-image", "skimage.data.grass()", "close-up of grass (grey)",
                         "CC0", "linolafett (DeviantArt)"),
    "gravel": SourceImage("scikit-image", "skimage.data.gravel()", "a patch of gravel (grey)",
                          "CC0", "CC0Textures (Gravel04)"),
    "retina": SourceImage("scikit-image", "skimage.data.retina()",
                          "fundus photograph of a human retina: an orange disc with red vessels",
                          "CC0", "Mikael Häggström"),
    "immunohistochemistry": SourceImage("scikit-image", "skimage.data.immunohistochemistry()",
                                        "stained tissue under a microscope, brown and blue",
                                        "no known copyright restrictions",
                                        "Center for Microscopy And Molecular Imaging"),
    "horse": SourceImage("scikit-image", "skimage.data.horse()",
                         "black silhouette of a horse on white", "CC0", "Andreas Preuss (openclipart)"),
    "cell": SourceImage("scikit-image", "skimage.data.cell()",
                        "a single cell floating in saline (grey phase image)", "CC0", "Paul Müller"),
    "clock": SourceImage("scikit-image", "skimage.data.clock()",
                         "a motion-blurred wall clock (grey)", "public domain", "Stefan van der Walt"),
    "motorcycle_left": SourceImage("scikit-image", "skimage.data.stereo_motorcycle()[0]",
                                   "a red motorcycle parked in a workshop",
                                   "Middlebury 2014 stereo data set (cite Scharstein et al., GCPR 2014)",
                                   "Middlebury College"),
    "china": SourceImage("scikit-learn", "sklearn.datasets.load_sample_image('china.jpg')",
                         "a Chinese pagoda above a lake among trees", "CC BY 2.0",
                         "danielbuechele (Flickr)"),
    "flower": SourceImage("scikit-learn", "sklearn.datasets.load_sample_image('flower.jpg')",
                          "an orange dahlia on a dark green background", "CC BY 2.0",
                          "vultilion (Flickr)"),
}


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


# --------------------------------------------------------------------------- spec


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextSpec(_Model):
    """A line of text and its language (a telop, caption or narration)."""

    text: str = Field(min_length=1)
    lang: Lang


class SceneSpec(_Model):
    """One shot: a photograph with slow motion, optional telop/caption and narration."""

    image: str
    duration_s: float = Field(gt=0)
    move: Move | None = None
    """Ken Burns path; by default it cycles through :data:`MOVES`."""
    telop: TextSpec | None = None
    """Large headline box at the top left (high contrast, for OCR)."""
    caption: TextSpec | None = None
    """Smaller lower-third line at the bottom."""
    narration: TextSpec | None = None


class QuerySpec(_Model):
    """A labelled query. Windows come from ``scenes`` or, for visual ones, from ``image``."""

    query: str = Field(min_length=1)
    lang: Lang
    tag: Tag
    scenes: list[int] | None = None
    image: str | None = None
    cues: list[Cue] | None = None
    """For ``multi``: the two (or more) kinds of evidence that together pick the scenes."""


class VideoSpec(_Model):
    vid: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    lang: Lang
    """Main language (of the narration, or of the telops when there is no audio)."""
    audio: bool = True
    vfr: bool = False
    """Drop frames in an irregular pattern, keeping true timestamps (variable frame rate)."""
    rotation: Literal[0, 90] = 0
    """Store frames turned a quarter and a display matrix that turns them back."""
    scenes: list[SceneSpec] = Field(min_length=1)
    queries: list[QuerySpec] = []


class SynthSpec(_Model):
    """A whole generated set: rendering parameters, voices, videos and their queries."""

    name: str
    title: str
    summary: str
    qid_prefix: str
    fps: int = Field(default=10, ge=2, le=60)
    width: int = Field(default=640, ge=64)
    height: int = Field(default=360, ge=64)
    voices: dict[Lang, str]
    """Query/narration language -> espeak-ng voice."""
    wpm: dict[Lang, int]
    """Starting speech rate per language (words per minute, espeak-ng ``-s``)."""
    videos: list[VideoSpec] = Field(min_length=1)


def spec_path(name: str) -> Path:
    """``datasets/NAME/spec.yaml`` in the checkout."""
    path = repo_root() / "datasets" / name / "spec.yaml"
    if not path.is_file():
        raise BadInput(f"{path}: spec not found; the synthetic sets need the repository's datasets/ folder")
    return path


def load_spec(path: Path) -> SynthSpec:
    """Parse and check a spec file; every problem raises BadInput naming the file and the field."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BadInput(f"{path}: cannot read the spec ({str(exc).splitlines()[0]})") from None
    try:
        spec = SynthSpec.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise BadInput(f"{path}: field '{loc}': {err['msg']}") from None
    _check_spec(spec, path)
    return spec


def _check_spec(spec: SynthSpec, path: Path) -> None:
    def fail(where: str, rule: str) -> BadInput:
        return BadInput(f"{path}: {where}: {rule}")

    if spec.width % 2 or spec.height % 2:
        raise fail("width/height", "must be even (H.264 with 4:2:0 chroma)")
    seen_vids: set[str] = set()
    seen_text: dict[str, str] = {}
    for v in spec.videos:
        if v.vid in seen_vids:
            raise fail(f"video {v.vid}", "duplicate vid")
        seen_vids.add(v.vid)
        for i, s in enumerate(v.scenes):
            where = f"video {v.vid} scene {i}"
            if s.image not in IMAGES:
                raise fail(where, f"unknown image {s.image!r}; known: {', '.join(sorted(IMAGES))}")
            frames = s.duration_s * spec.fps
            if abs(frames - round(frames)) > 1e-6:
                raise fail(where, f"duration_s {s.duration_s:g} is not a whole number of frames at "
                                  f"{spec.fps} fps")
            if s.narration is not None:
                if not v.audio:
                    raise fail(where, "has narration but the video has audio: false")
                if s.narration.lang not in spec.voices or s.narration.lang not in spec.wpm:
                    raise fail(where, f"no voice/wpm for narration language {s.narration.lang!r}")
            # Unique text keeps corpus search meaningful: one line names one video.
            for kind, text in (("telop", s.telop), ("caption", s.caption), ("narration", s.narration)):
                if text is None:
                    continue
                if text.text in seen_text:
                    raise fail(where, f"{kind} {text.text!r} repeats {seen_text[text.text]}; make it unique")
                seen_text[text.text] = where
        for j, q in enumerate(v.queries):
            _check_query(v, j, q, fail)


def _check_query(v: VideoSpec, j: int, q: QuerySpec, fail: Any) -> None:
    where = f"video {v.vid} query {j}"
    n = len(v.scenes)
    if q.scenes is not None and (not q.scenes or any(not 0 <= i < n for i in q.scenes)):
        raise fail(where, f"scenes must be indices in 0..{n - 1}, got {q.scenes}")
    if q.image is not None and q.image not in {s.image for s in v.scenes}:
        raise fail(where, f"image {q.image!r} is not shown in video {v.vid}")
    if q.tag == "visual" and q.image is None and q.scenes is None:
        raise fail(where, "a visual query needs image or scenes")
    if q.tag != "visual" and q.scenes is None:
        raise fail(where, f"a {q.tag} query needs scenes")
    scenes = q.scenes or []
    if q.tag == "speech" and (not v.audio or any(v.scenes[i].narration is None for i in scenes)):
        raise fail(where, "a speech query must point at narrated scenes of a video with audio")
    if q.tag == "onscreen-text" and any(v.scenes[i].telop is None and v.scenes[i].caption is None
                                        for i in scenes):
        raise fail(where, "an onscreen-text query must point at scenes with a telop or caption")
    if q.tag == "multi":
        if not q.cues or len(set(q.cues)) < 2:
            raise fail(where, "a multi query needs cues naming two or more kinds of evidence")
        if q.image is not None:
            shown = {i for i, s in enumerate(v.scenes) if s.image == q.image}
            if not set(scenes) < shown:
                raise fail(where, f"scenes {scenes} must be a strict subset of the scenes showing "
                                  f"{q.image} {sorted(shown)} (else the picture alone answers it)")
    elif q.cues is not None:
        raise fail(where, "cues only apply to multi queries")


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class _Scene:
    index: int
    start_s: float
    end_s: float
    frames: int
    move: Move
    spec: SceneSpec


def _plan(spec: SynthSpec, vi: int, v: VideoSpec) -> list[_Scene]:
    out: list[_Scene] = []
    frame = 0
    for i, s in enumerate(v.scenes):
        n = round(s.duration_s * spec.fps)
        move = s.move or MOVES[(vi + i) % len(MOVES)]
        out.append(_Scene(i, frame / spec.fps, (frame + n) / spec.fps, n, move, s))
        frame += n
    return out


def _merge(windows: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for s, e in sorted(windows):
        if merged and s <= merged[-1][1] + 1e-9:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def _query_scenes(v: VideoSpec, q: QuerySpec) -> list[int]:
    if q.scenes is not None:
        return sorted(set(q.scenes))
    return [i for i, s in enumerate(v.scenes) if s.image == q.image]


# --------------------------------------------------------------------------- tools


@dataclass(frozen=True)
class _Tools:
    ffmpeg: str
    ffprobe: str
    espeak: str | None
    display_rotation: bool
    """ffmpeg >= 6 takes ``-display_rotation``; older ones take the ``rotate`` stream tag."""


def _run(cmd: Sequence[str], what: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(list(cmd), capture_output=True, stdin=subprocess.DEVNULL, check=False, **kw)
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise BenchError(f"{what} failed (exit {proc.returncode}): {tail[0]}")
    return proc


@cache
def _tool_output(*cmd: str) -> str:
    """Stdout of a capability query (encoders, voices, options); asked once per process."""
    return _run(cmd, " ".join([Path(cmd[0]).name, *cmd[1:]])).stdout.decode("utf-8", "replace")


def _check_tools(spec: SynthSpec) -> _Tools:
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if not ffmpeg or not ffprobe:
        raise BadInput("ffmpeg/ffprobe not found on PATH; install the Debian package 'ffmpeg' "
                       "(apt-get install ffmpeg)")
    if "libx264" not in _tool_output(ffmpeg, "-hide_banner", "-encoders"):
        raise BadInput(f"{ffmpeg} has no libx264 encoder; install the Debian package 'ffmpeg'")
    espeak = None
    langs = {s.narration.lang for v in spec.videos for s in v.scenes if s.narration is not None}
    if langs:
        espeak = shutil.which("espeak-ng")
        if not espeak:
            raise BadInput("espeak-ng not found on PATH; install the Debian package 'espeak-ng' "
                           "(apt-get install espeak-ng)")
        listed = _tool_output(espeak, "--voices").split()
        for lang in sorted(langs):
            if spec.voices[lang] not in listed:
                raise BadInput(f"espeak-ng has no voice {spec.voices[lang]!r} (for {lang}); install the "
                               "Debian packages 'espeak-ng' and 'espeak-ng-data'")
    display_rotation = False
    if any(v.rotation for v in spec.videos):
        display_rotation = "display_rotation" in _tool_output(ffmpeg, "-hide_banner", "-h", "full")
    return _Tools(ffmpeg, ffprobe, espeak, display_rotation)


@cache
def _font_path(lang: str, bold: bool) -> tuple[str, int]:
    """(file, face index) of the Noto Sans CJK face that suits ``lang``."""
    region = {"zh": "SC"}.get(lang, "JP")  # the JP face also carries Latin and Cyrillic
    family = f"Noto Sans CJK {region}"
    style = "Bold" if bold else "Regular"
    fc = shutil.which("fc-match")
    if fc:
        got = _run([fc, "-f", "%{file}|%{index}|%{family}", f"{family}:style={style}"], "fc-match")
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


# --------------------------------------------------------------------------- rendering


def _overlay(spec: SynthSpec, scene: SceneSpec, where: str) -> tuple[Image.Image, tuple[int, int]] | None:
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


def _fit(draw: Any, text: TextSpec, bold: bool, size: int, max_w: int,
         where: str) -> tuple[ImageFont.FreeTypeFont, tuple[int, int, int, int]]:
    """The largest font (from ``size`` down to 70 %) at which ``text`` fits in ``max_w`` pixels."""
    for s in range(size, int(size * 0.7) - 1, -1):
        font = _font(text.lang, bold, s)
        box = draw.textbbox((0, 0), text.text, font=font)
        if box[2] - box[0] <= max_w:
            return font, box
    raise BadInput(f"{where}: text {text.text!r} is too wide for a {max_w}px line; shorten it")


def _scene_frames(spec: SynthSpec, scene: _Scene) -> Iterator[Image.Image]:
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


def _pan(around: float, free: float, travel: float, u: float) -> float:
    """Crop offset at progress ``u`` (0..1) of a pan of ``travel`` pixels centred on offset
    ``around``, kept inside ``[0, free]``."""
    travel = min(travel, free)
    lo = min(max(around - travel / 2, 0.0), free - travel)
    return lo + travel * u


# --------------------------------------------------------------------------- audio


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wf:
        if wf.getframerate() != SAMPLE_RATE or wf.getnchannels() != 1 or wf.getsampwidth() != 2:
            raise BenchError(f"{path}: espeak-ng wrote {wf.getframerate()} Hz x{wf.getnchannels()}, "
                             f"{8 * wf.getsampwidth()}-bit; expected {SAMPLE_RATE} Hz mono 16-bit")
        return np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2")


def _speak(tools: _Tools, spec: SynthSpec, text: TextSpec, dst: Path, room_s: float,
           where: str) -> tuple[np.ndarray, int]:
    """Narrate ``text`` into int16 samples that last at most ``room_s`` seconds; returns (samples, wpm)."""
    assert tools.espeak is not None
    wpm = spec.wpm[text.lang]
    while True:
        _run([tools.espeak, "-v", spec.voices[text.lang], "-s", str(wpm), "-b", "1", "-w", str(dst),
              text.text], f"espeak-ng ({where})")
        samples = _read_wav(dst)
        length_s = len(samples) / SAMPLE_RATE
        if length_s <= room_s:
            return samples, wpm
        faster = math.ceil(wpm * length_s / room_s * 1.03)
        if faster > MAX_WPM:
            raise BadInput(f"{where}: narration lasts {length_s:.1f}s at {wpm} wpm but the scene leaves "
                           f"{room_s:.1f}s; shorten the text or lengthen the scene")
        wpm = faster


def _write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(SAMPLE_RATE)
        wf.writeframes(samples.astype("<i2").tobytes())


# --------------------------------------------------------------------------- one video


@dataclass
class _Built:
    vid: str
    duration_s: float
    narration: dict[int, tuple[float, float, int]] = field(default_factory=dict)
    """scene index -> (start_s, end_s, wpm) of its narration."""


def _vfr_select(n_frames: int, fps: int) -> str:
    # Every half-second boundary (hence every cut) and the last frame are kept, so scene
    # intervals stay exact; in between, an irregular pattern drops frames.
    keep_every = max(1, fps // 2)
    return (f"select='eq(mod(n,{keep_every}),0)+eq(n,{n_frames - 1})"
            f"+not(eq(mod(n,3),1))*not(eq(mod(n,7),4))'")


class _Cancelled(Exception):
    """Raised in a worker when another video of the build has failed."""


@dataclass
class _Progress:
    """The shared progress bar, and the flag that stops every worker once one has failed."""

    bar: Any
    stop: threading.Event = field(default_factory=threading.Event)

    def update(self, frames: int) -> None:
        if self.stop.is_set():
            raise _Cancelled
        self.bar.update(frames)


def _make_video(tools: _Tools, spec: SynthSpec, vi: int, v: VideoSpec, dst: Path, work: Path,
                where: str, progress: _Progress) -> _Built:
    from PIL import Image

    scenes = _plan(spec, vi, v)
    total = sum(s.frames for s in scenes)
    built = _Built(v.vid, 0.0)
    wav: Path | None = None
    if v.audio:
        track = np.zeros(round(total / spec.fps * SAMPLE_RATE), dtype=np.int16)
        for s in scenes:
            if s.spec.narration is None:
                continue
            room = s.end_s - s.start_s - NARRATION_LEAD_S - NARRATION_TAIL_S
            samples, wpm = _speak(tools, spec, s.spec.narration, work / f"{v.vid}-{s.index}.wav", room,
                                  f"{where}: video {v.vid} scene {s.index}")
            at = round((s.start_s + NARRATION_LEAD_S) * SAMPLE_RATE)
            track[at:at + len(samples)] = samples
            built.narration[s.index] = (s.start_s + NARRATION_LEAD_S,
                                        s.start_s + NARRATION_LEAD_S + len(samples) / SAMPLE_RATE, wpm)
        wav = work / f"{v.vid}.wav"
        _write_wav(wav, track)

    coded = (spec.height, spec.width) if v.rotation else (spec.width, spec.height)
    encoded = work / f"{v.vid}.coded.mp4" if v.rotation else dst
    cmd = [tools.ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{coded[0]}x{coded[1]}", "-framerate", str(spec.fps), "-i", "pipe:0"]
    if wav is not None:
        cmd += ["-i", str(wav)]
    if v.vfr:
        cmd += ["-vf", _vfr_select(total, spec.fps), "-fps_mode", "passthrough"]
    cmd += ["-map", "0:v:0", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
            "-g", str(2 * spec.fps), "-threads", "2"]
    if wav is not None:
        cmd += ["-map", "1:a:0", "-c:a", "aac", "-b:a", "64k"]
    cmd += _BITEXACT + [str(encoded)]

    first: np.ndarray | None = None
    with tempfile.TemporaryFile(dir=work) as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=err)
        assert proc.stdin is not None
        try:
            for s in scenes:
                layer = _overlay(spec, s.spec, f"{where}: video {v.vid} scene {s.index}")
                for frame in _scene_frames(spec, s):
                    if layer is not None:
                        frame.paste(layer[0], layer[1], layer[0])
                    if first is None:
                        first = np.asarray(frame)
                    if v.rotation:
                        # Turned a quarter clockwise; the display matrix written below turns it back.
                        frame = frame.transpose(Image.Transpose.ROTATE_270)
                    proc.stdin.write(frame.tobytes())
                    progress.update(1)
        except BrokenPipeError:
            pass  # ffmpeg stopped reading; its exit status and message are reported below
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        code = proc.wait()
        if code != 0:
            err.seek(0)
            tail = err.read().decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
            raise BenchError(f"ffmpeg failed encoding {v.vid} (exit {code}): {tail[0]}")

    if v.rotation:
        rot = ([tools.ffmpeg, "-hide_banner", "-loglevel", "error", "-y"]
               + (["-display_rotation:v:0", str(v.rotation)] if tools.display_rotation else [])
               + ["-i", str(encoded), "-map", "0", "-c", "copy"]
               + ([] if tools.display_rotation else ["-metadata:s:v:0", f"rotate={v.rotation}"])
               + _BITEXACT + [str(dst)])
        _run(rot, f"ffmpeg rotation remux of {v.vid}")
        encoded.unlink()
    assert first is not None
    built.duration_s = _verify(tools, spec, v, dst, first)
    return built


_BITEXACT = ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
             "-movflags", "+faststart"]
"""No encoder version strings or dates in the file: the same spec gives the same bytes."""


def ffprobe_json(ffprobe: str, path: Path) -> dict[str, Any]:
    """``ffprobe -show_streams -show_format`` of ``path`` as a dict."""
    proc = _run([ffprobe, "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                f"ffprobe {path.name}")
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def _verify(tools: _Tools, spec: SynthSpec, v: VideoSpec, path: Path, first: np.ndarray) -> float:
    """Check the file is what the spec asked for (codecs, audio, VFR, rotation); return its duration."""
    info = ffprobe_json(tools.ffprobe, path)
    kinds = {s["codec_type"]: s for s in info["streams"]}
    problems = []
    if kinds.get("video", {}).get("codec_name") != "h264":
        problems.append("no H.264 video stream")
    if v.audio != ("audio" in kinds) or (v.audio and kinds["audio"].get("codec_name") != "aac"):
        problems.append(f"expected {'an AAC' if v.audio else 'no'} audio stream")
    if v.vfr:
        pts = _run([tools.ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries",
                    "packet=pts_time", "-of", "csv=p=0", str(path)],
                   f"ffprobe packets {path.name}").stdout.decode().split()
        times = sorted(float(t.strip(",")) for t in pts if t.strip(","))
        gaps = np.round(np.diff(times), 4)
        if len(set(gaps.tolist())) < 2:
            problems.append("frame timestamps are regular although vfr: true")
    if v.rotation:
        side = [d for d in kinds["video"].get("side_data_list", []) if "rotation" in d]
        if not side:
            problems.append("no display-matrix rotation")
        frame = _run([tools.ffmpeg, "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                      "-pix_fmt", "rgb24", "pipe:1"], f"ffmpeg decode {path.name}").stdout
        if len(frame) != first.size:
            problems.append("the rotated video does not display at the rendered size")
        else:
            shown = np.frombuffer(frame, np.uint8).reshape(first.shape).astype(np.int16)
            if float(np.abs(shown - first).mean()) > 12:
                problems.append("the rotated video displays turned the wrong way")
    if problems:
        raise BenchError(f"{path.name}: {'; '.join(problems)} (ffmpeg at {tools.ffmpeg} behaves "
                         "unlike ffmpeg 5.1-7; report this with 'ffmpeg -version')")
    return round(float(info["format"]["duration"]), 3)


# --------------------------------------------------------------------------- build


def build(out: Path, options: BuildOptions) -> QuerySet:
    """Build ``synthetic-v1`` (14 videos, ~90 queries) into ``out``; cached by spec hash."""
    return build_from_spec(spec_path("synthetic-v1"), out, options)


def build_mini(out: Path, options: BuildOptions) -> QuerySet:
    """Build ``synthetic-mini`` (2 videos of 12 s, 8 queries) into ``out``; cached by spec hash."""
    return build_from_spec(spec_path("synthetic-mini"), out, options)


def build_from_spec(spec_file: Path, out: Path, options: BuildOptions | None = None) -> QuerySet:
    """Render the set that ``spec_file`` describes into the directory ``out`` and load it.

    Writes ``videos/*.mp4``, ``videos.jsonl``, ``queries.jsonl``, ``scenes.jsonl``, ``meta.json``
    and ``README.md``. A build with the same :func:`build_stamp` returns at once unless
    ``options.force``. Everything is made in a temporary directory
    beside ``out`` and renamed into place, so a killed build leaves ``out`` as it was.
    """
    options = options or BuildOptions()
    spec_file = Path(spec_file)
    out = Path(out)
    spec = load_spec(spec_file)
    stamp = build_stamp(spec_file, options)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _lock(out):
        if not options.force:
            cached = _load_cached(out, stamp)
            if cached is not None:
                return cached
        _refuse_foreign(out)
        for stale in [*out.parent.glob(f".{out.name}.build-*"), *out.parent.glob(f".{out.name}.old-*")]:
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed build; we hold the lock
        tools = _check_tools(spec)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
        try:
            _build_into(tmp, spec, spec_file, stamp, options, tools)
            if out.exists():
                old = out.with_name(f".{out.name}.old-{os.getpid()}")
                out.rename(old)
                tmp.rename(out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return load_query_set(out, spec.name, check_files=True)


def build_stamp(spec_file: Path, options: BuildOptions) -> str:
    """Hash of what a build depends on: the spec's bytes, the generator version, the generator's
    own source (so an edited renderer never serves a stale cache) and ``options.limit``."""
    parts = [hashlib.sha256(Path(spec_file).read_bytes()).digest(), GENERATOR_VERSION.encode(),
             _source_digest(), str(options.limit).encode()]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


@cache
def _source_digest() -> bytes:
    # Read once per process: the stamp describes the code that is running.
    return hashlib.sha256(Path(__file__).read_bytes()).digest()


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    """Serialise builds of one directory across processes (the second one then finds the cache)."""
    import fcntl

    with (out.parent / f".{out.name}.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _load_cached(out: Path, stamp: str) -> QuerySet | None:
    """The set already in ``out`` when it was built with ``stamp`` and is intact; else None."""
    meta = out / "meta.json"
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("build_stamp") != stamp:
        return None
    try:
        return load_query_set(out, str(doc.get("name")), check_files=True)
    except BadInput as exc:
        log.warning("rebuilding %s: the cached copy is damaged (%s)", out, exc)
        return None


def _refuse_foreign(out: Path) -> None:
    # The build replaces ``out`` wholesale; never do that to a folder it did not make.
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    try:
        doc = json.loads((out / "meta.json").read_text(encoding="utf-8"))
        ours = isinstance(doc, dict) and doc.get("generator") == __name__
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise BadInput(f"{out}: exists and was not made by this generator; pass a new or empty --out "
                       "directory (it is replaced on every build)")


def _build_into(tmp: Path, spec: SynthSpec, spec_file: Path, stamp: str, options: BuildOptions,
                tools: _Tools) -> None:
    from tqdm import tqdm

    work = tmp / ".work"
    work.mkdir()
    (tmp / "videos").mkdir()
    total = sum(round(s.duration_s * spec.fps) for v in spec.videos for s in v.scenes)
    workers = max(1, min(4, os.cpu_count() or 1, len(spec.videos)))
    with tqdm(total=total, unit="frame", desc=f"building {spec.name}", file=sys.stderr,
              leave=False) as bar, ThreadPoolExecutor(max_workers=workers) as pool:
        progress = _Progress(bar)
        futures = [pool.submit(_make_video, tools, spec, vi, v, tmp / "videos" / f"{v.vid}.mp4", work,
                               str(spec_file), progress)
                   for vi, v in enumerate(spec.videos)]
        try:
            built = [f.result() for f in futures]
        except BaseException:
            progress.stop.set()  # the other workers give up at their next frame
            for f in futures:
                f.cancel()
            raise
    shutil.rmtree(work)

    videos = {v.vid: Video(vid=v.vid, path=f"videos/{v.vid}.mp4", duration=b.duration_s, lang=v.lang)
              for v, b in zip(spec.videos, built, strict=True)}
    plans = {v.vid: _plan(spec, vi, v) for vi, v in enumerate(spec.videos)}
    queries = _queries(spec, plans, videos)
    if options.limit is not None:
        queries = queries[:options.limit]
    qs = QuerySet(name=spec.name, videos=videos, queries=queries, split=options.split,
                  card=render_card(spec, spec_file))
    qs.validate(tmp / "queries.jsonl")
    write_jsonl(tmp / "videos.jsonl", (v.to_row() for v in videos.values()))
    write_jsonl(tmp / "queries.jsonl", (q.to_row() for q in queries))
    write_jsonl(tmp / "scenes.jsonl", _scene_rows(spec, plans, built))
    meta = {
        "name": spec.name, "split": options.split, "generator": __name__,
        "generator_version": GENERATOR_VERSION, "build_stamp": stamp,
        "spec_sha256": hashlib.sha256(spec_file.read_bytes()).hexdigest(),
        "fps": spec.fps, "size": [spec.width, spec.height],
        "videos": {v.vid: {"audio": v.audio, "vfr": v.vfr, "rotation": v.rotation, "scenes": len(v.scenes)}
                   for v in spec.videos},
    }
    (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (tmp / "README.md").write_text(qs.card or "", encoding="utf-8")
    _share(tmp)


def _share(root: Path) -> None:
    """Give the set the permissions of ordinary files (temp dirs and files are created private)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [root, *root.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _queries(spec: SynthSpec, plans: dict[str, list[_Scene]], videos: dict[str, Video]) -> list[Query]:
    by_image: dict[str, list[tuple[str, float, float]]] = {}
    for vid, scenes in plans.items():
        for s in scenes:
            by_image.setdefault(s.spec.image, []).append((vid, s.start_s, s.end_s))
    out: list[Query] = []
    for v in spec.videos:
        duration = videos[v.vid].duration
        assert duration is not None
        for q in v.queries:
            ids = _query_scenes(v, q)
            windows = [(round(s, 3), round(min(e, duration), 3))
                       for s, e in _merge([(plans[v.vid][i].start_s, plans[v.vid][i].end_s) for i in ids])]
            corpus = [[v.vid, s, e] for s, e in windows]
            if q.tag == "visual":
                # The same photograph in another video answers a visual query there too.
                corpus = []
                for vid in videos:
                    dur = videos[vid].duration or 0.0
                    spans = _merge([(s, e) for ov, s, e in by_image[_image_of(v, q)] if ov == vid])
                    corpus += [[vid, round(s, 3), round(min(e, dur), 3)] for s, e in spans]
            extra: dict[str, Any] = {"scenes": ids, "corpus_windows": corpus}
            if q.cues:
                extra["cues"] = list(q.cues)
            out.append(Query(qid=f"{spec.qid_prefix}-{len(out) + 1:04d}", query=q.query, vid=v.vid,
                             duration=duration, relevant_windows=windows, lang=q.lang, tags=[q.tag],
                             extra=extra))
    return out


def _image_of(v: VideoSpec, q: QuerySpec) -> str:
    if q.image is not None:
        return q.image
    shown = {v.scenes[i].image for i in q.scenes or []}
    if len(shown) != 1:
        raise BadInput(f"video {v.vid}: visual query {q.query!r} spans scenes with different images "
                       f"({', '.join(sorted(shown))}); give image instead of scenes")
    return shown.pop()


def _scene_rows(spec: SynthSpec, plans: dict[str, list[_Scene]],
                built: list[_Built]) -> Iterator[dict[str, Any]]:
    spoken = {b.vid: b.narration for b in built}
    for v in spec.videos:
        for s in plans[v.vid]:
            row: dict[str, Any] = {"vid": v.vid, "scene": s.index, "start": s.start_s, "end": s.end_s,
                                   "image": s.spec.image, "move": s.move}
            for kind in ("telop", "caption"):
                text = getattr(s.spec, kind)
                row[kind] = None if text is None else {"text": text.text, "lang": text.lang}
            n = s.spec.narration
            if n is None:
                row["narration"] = None
            else:
                start, end, wpm = spoken[v.vid][s.index]
                row["narration"] = {"text": n.text, "lang": n.lang, "voice": spec.voices[n.lang],
                                    "wpm": wpm, "start": round(start, 3), "end": round(end, 3)}
            yield row


def load_scenes(directory: Path) -> list[dict[str, Any]]:
    """Rows of a built set's ``scenes.jsonl``: the ground truth every query was derived from.

    Each row: ``vid``, ``scene`` (index), ``start``/``end`` (seconds), ``image``, ``move``,
    ``telop``/``caption`` (``{"text", "lang"}`` or None) and ``narration`` (``{"text", "lang",
    "voice", "wpm", "start", "end"}`` or None; its times lie inside the scene).
    """
    return [row for _, row in read_jsonl(Path(directory) / "scenes.jsonl")]


# --------------------------------------------------------------------------- card


def spec_counts(spec: SynthSpec) -> dict[str, Counter[str]]:
    """Query counts by tag and by language, and video counts by feature, straight from the spec."""
    tags: Counter[str] = Counter(q.tag for v in spec.videos for q in v.queries)
    langs: Counter[str] = Counter(q.lang for v in spec.videos for q in v.queries)
    features: Counter[str] = Counter()
    for v in spec.videos:
        features["with narration" if v.audio else "without audio"] += 1
        features["variable frame rate"] += v.vfr
        features["rotated (display matrix)"] += bool(v.rotation)
    return {"tags": tags, "langs": langs, "features": features}


def render_card(spec: SynthSpec, spec_file: Path) -> str:
    """The dataset card (README.md) of the set ``spec`` describes; computed from the spec alone."""
    counts = spec_counts(spec)
    n_queries = sum(counts["tags"].values())
    durations = [sum(s.duration_s for s in v.scenes) for v in spec.videos]
    non_en = n_queries - counts["langs"].get("en", 0)
    lines = [
        f"# {spec.name}: {spec.title}", "",
        spec.summary.strip(), "",
        "## At a glance", "",
        f"- {len(spec.videos)} videos, {min(durations):g}–{max(durations):g} s each, "
        f"{sum(durations):g} s in all; {sum(len(v.scenes) for v in spec.videos)} scenes",
        f"- {n_queries} queries, {non_en} of them ({non_en / max(1, n_queries):.0%}) not in English",
        f"- {spec.width}x{spec.height}, {spec.fps} fps, H.264 (x264 veryfast, CRF 23) + AAC mono "
        f"{SAMPLE_RATE} Hz in mp4",
        "- " + ", ".join(f"{k}: {counts['features'][k]}" for k in ("with narration", "without audio",
                                                                   "variable frame rate",
                                                                   "rotated (display matrix)")),
        "", "### Queries by tag", "", "| tag | queries | answered by |", "|---|---:|---|",
    ]
    answered = {"speech": "the narration (ASR)", "onscreen-text": "a telop or caption (OCR)",
                "visual": "what the photograph shows (vision)",
                "multi": "two kinds of evidence together (`cues` lists them)"}
    lines += [f"| {t} | {counts['tags'][t]} | {answered[t]} |"
              for t in ("speech", "onscreen-text", "visual", "multi")]
    lines += ["", "### Queries by language", "", "| lang | queries |", "|---|---:|"]
    lines += [f"| {lang} ({LANG_NAMES[lang]}) | {counts['langs'][lang]} |"
              for lang in ("en", "ja", "zh", "ru", "pt") if counts["langs"][lang]]
    lines += ["", "### Videos", "", "| vid | s | scenes | narration | on-screen text | notes |",
              "|---|---:|---:|---|---|---|"]
    for v, d in zip(spec.videos, durations, strict=True):
        spoken = sorted({s.narration.lang for s in v.scenes if s.narration})
        shown = sorted({t.lang for s in v.scenes for t in (s.telop, s.caption) if t})
        notes = [x for x, on in (("no audio", not v.audio), ("VFR", v.vfr),
                                 (f"rotated {v.rotation}°", bool(v.rotation))) if on]
        lines.append(f"| {v.vid} | {d:g} | {len(v.scenes)} | {', '.join(spoken) or '–'} | "
                     f"{', '.join(shown) or '–'} | {', '.join(notes)} |")
    used = sorted({s.image for v in spec.videos for s in v.scenes})
    lines += [
        "", "## Files", "",
        "- `videos/<vid>.mp4`; `videos.jsonl`: `vid`, `path` (relative), `duration` (ffprobe, s), `lang`",
        "- `queries.jsonl`: `qid`, `query`, `vid`, `duration`, `relevant_windows` (the scenes' exact "
        "intervals, adjacent ones merged), `lang`, `tags` (one of speech, onscreen-text, visual, multi), "
        "plus `scenes` (indices into scenes.jsonl), `corpus_windows` (`[vid, start, end]` rows: every "
        "moment in the whole set that answers the query; a visual query is also answered wherever the "
        "same photograph appears) and, for multi, `cues`",
        "- `scenes.jsonl`: the ground truth: per scene `start`/`end`, `image`, Ken Burns `move`, "
        "`telop`/`caption` text and language, `narration` text, language, voice, rate and its "
        "measured `start`/`end` (always inside the scene)",
        "- `meta.json`: build stamp (hash of the spec and the generator), size, fps, "
        "per-video audio/VFR/rotation",
        "",
        "## How it is built", "",
        f"`python -m bench build {spec.name} --out DIR` reads `datasets/{spec_file.parent.name}/spec.yaml` "
        "and, for each scene, crops the photograph with a slow eased pan or zoom (numpy/Pillow), "
        "draws the telop (Noto Sans CJK Bold, white on a dark box, top left) and caption (lower third), "
        "and pipes raw RGB frames to ffmpeg (libx264). Narration is spoken by espeak-ng "
        f"({', '.join(f'{k}: `{val}`' for k, val in spec.voices.items())}), starts "
        f"{NARRATION_LEAD_S:g} s after the cut and is sped up when needed so that it ends at least "
        f"{NARRATION_TAIL_S:g} s before the next one (the measured length is checked). Scenes are hard cuts, "
        "so each interval is exact. The VFR video keeps every cut frame and drops others in an irregular "
        "pattern with true timestamps; the rotated one stores frames turned 90° with a display matrix "
        "that turns them back. Each file is checked with ffprobe after encoding.",
        "",
        "The same spec gives byte-identical `videos.jsonl`, `queries.jsonl` and `scenes.jsonl` (and, "
        "with the same ffmpeg, identical mp4 files). "
        "A second build with the same stamp returns at once (`--force` rebuilds); a build happens in a "
        "temporary folder beside the output and is renamed into place at the end.",
        "",
        "Needs: ffmpeg with libx264, espeak-ng, fonts-noto-cjk (Debian packages), scikit-image, "
        "scikit-learn, Pillow.",
        "",
        "## Limits", "",
        "Narration is synthetic (espeak-ng), and Japanese narration is written in kana because "
        "espeak-ng does not read kanji. Whisper tiny.en transcribes only the English narration; the "
        "other languages are there so that the benchmark shows that honestly. Several videos reuse "
        "a photograph, so a visual query names its own video in `vid` and lists the others in "
        "`corpus_windows`. Some photographs (a motion-blurred clock, grey textures, a phase image "
        "of a cell) are hard to name even for people; their visual queries are hard on purpose.",
        "",
        "## Licences of the source images", "",
        "The photographs ship with scikit-image (`skimage.data`) and scikit-learn "
        "(`sklearn.datasets.load_sample_image`); licences as those packages state them:", "",
        "| image | call | shows | licence | credit |", "|---|---|---|---|---|",
    ]
    lines += [f"| {n} | `{IMAGES[n].call}` | {IMAGES[n].shows} | {IMAGES[n].license} | {IMAGES[n].credit} |"
              for n in used]
    lines += ["", "The spec, narration and telop texts and the annotations are Apache-2.0, like the project. "
              "The videos are derived from the photographs above and carry their terms: credit the "
              "CC BY 2.0 photographers and cite the Middlebury data set when you redistribute them.", ""]
    return "\n".join(lines)
