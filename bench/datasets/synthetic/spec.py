"""What a synthetic set is made of: the source photographs, the YAML spec (parsed and checked)
and the timeline of scenes it implies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.errors import BadInput
from bench.paths import repo_root

Lang = Literal["en", "ja", "zh", "ru", "pt"]
Move = Literal["zoom-in", "zoom-out", "pan-left", "pan-right", "pan-up", "pan-down"]
Tag = Literal["speech", "onscreen-text", "visual", "multi", "cross-lingual", "absent", "mood"]
Cue = Literal["speech", "onscreen-text", "visual"]
Enter = Literal["cut", "fade", "dissolve"]
MOVES: tuple[Move, ...] = ("zoom-in", "pan-right", "zoom-out", "pan-left", "pan-up", "pan-down")


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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextSpec(_Model):
    """A line of text and its language (a telop, caption or narration)."""

    text: str = Field(min_length=1)
    lang: Lang


class EventSpec(_Model):
    """Something that happens inside a shot for a few seconds: a picture inset in the corner,
    a telop, or one narrated sentence (exactly one of them)."""

    at_s: float = Field(ge=0)
    """Start, seconds from the start of its scene (whole frames)."""
    duration_s: float = Field(gt=0)
    inset: str | None = None
    """A photograph shown small in the lower right corner."""
    telop: TextSpec | None = None
    narration: TextSpec | None = None

    @property
    def kind(self) -> str:
        return "inset" if self.inset else "telop" if self.telop else "narration"


class MusicSpec(_Model):
    """Music synthesized under a scene: chords, bass and a melody in a key, with the cues
    that carry a mood (tempo, mode, sound level, timbre, pitch) set by hand."""

    tempo_bpm: float = Field(ge=40, le=220)
    mode: Literal["major", "minor"]
    loudness_db: float = Field(ge=-45, le=-6)
    """RMS level of the scene's music, dBFS."""
    timbre: Literal["soft", "bright", "harsh"]
    """soft: sine tones, no drums; bright: saw-like tones with a light kick; harsh: clipped
    square tones, kick and noise hits."""
    pitch: Literal["low", "mid", "high"] = "mid"
    """Register of the tones: bass and chords an octave apart from low to high."""
    seed: int = 0


class LookSpec(_Model):
    """How a scene's picture is graded and moved, to set its visual mood."""

    brightness: float = Field(default=1.0, gt=0, le=3)
    """Gain on pixel values (1: as photographed)."""
    saturation: float = Field(default=1.0, ge=0, le=3)
    """0: grey; 1: as photographed; more: more vivid."""
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Gain per R, G, B channel (e.g. pink, or a red cast)."""
    motion: Literal["still", "slow", "fast", "shake"] = "slow"
    """still: no camera move; slow: the usual pan or zoom; fast: a quick back-and-forth pan;
    shake: a jittering, flickering picture."""


class MoodSpec(_Model):
    """The impression a scene is built to give (by construction, not rated by people)."""

    valence: float = Field(ge=-2, le=2)
    arousal: float = Field(ge=-2, le=2)
    label: str = ""


class SceneSpec(_Model):
    """One shot: a photograph with slow motion, optional telop/caption and narration, and
    optional music and picture grading that set its mood."""

    image: str
    duration_s: float = Field(gt=0)
    move: Move | None = None
    """Ken Burns path; by default it cycles through :data:`MOVES`."""
    telop: TextSpec | None = None
    """Large headline box at the top left (high contrast, for OCR)."""
    caption: TextSpec | None = None
    """Smaller lower-third line at the bottom."""
    narration: TextSpec | None = None
    enter: Enter = "cut"
    """How the scene begins: a hard cut, a fade (the previous scene dips to black and this one
    rises from it, ``enter_s`` in all, centred on the scene's start) or a dissolve (this one
    blends in over the previous scene's last frame during its first ``enter_s``)."""
    enter_s: float = Field(default=1.0, gt=0)
    """Length of a fade or dissolve (whole frames)."""
    events: list[EventSpec] = []
    """Short actions inside the shot (see :class:`EventSpec`)."""
    music: MusicSpec | None = None
    look: LookSpec | None = None
    mood: MoodSpec | None = None


class QuerySpec(_Model):
    """A labelled query. Windows come from ``scenes`` or, for visual ones, from ``image``;
    an ``absent`` query has neither (its answer is in no scene of the set)."""

    query: str = Field(min_length=1)
    lang: Lang
    tag: Tag
    scenes: list[int] | None = None
    image: str | None = None
    cues: list[Cue] | None = None
    """For ``multi``: the two (or more) kinds of evidence that together pick the scenes."""
    event: tuple[int, int] | None = None
    """``[scene, event]``: the query's window is that event of that scene, not the scene."""


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
    parts: list[str] = []
    """Further YAML files beside the spec (see :func:`load_spec`), merged in order."""


def spec_path(name: str) -> Path:
    """``datasets/NAME/spec.yaml`` in the checkout."""
    path = repo_root() / "datasets" / name / "spec.yaml"
    if not path.is_file():
        raise BadInput(f"{path}: spec not found; the synthetic sets need the repository's datasets/ folder")
    return path


def spec_files(path: Path) -> list[Path]:
    """The spec file and the part files it names, in merge order (all of them make the stamp)."""
    path = Path(path)
    doc = _read_yaml(path)
    names = doc.get("parts", []) if isinstance(doc, dict) else []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadInput(f"{path}: field 'parts': must be a list of file names beside the spec")
    return [path, *(path.parent / n for n in names)]


def load_spec(path: Path) -> SynthSpec:
    """Parse and check a spec file; every problem raises BadInput naming the file and the field.

    A spec may name ``parts``: YAML files beside it, each with ``videos`` (appended to the
    spec's) and ``queries`` (``{vid: [query, ...]}``, appended to a video of the spec or of an
    earlier part). Versions of a set grow this way without copying each other's lines.
    """
    path = Path(path)
    doc = _read_yaml(path)
    files = spec_files(path)
    if isinstance(doc, dict):
        for part in files[1:]:
            _merge_part(doc, part)
    try:
        spec = SynthSpec.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise BadInput(f"{path}: field '{loc}': {err['msg']}") from None
    _check_spec(spec, path)
    return spec


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BadInput(f"{path}: cannot read the spec ({str(exc).splitlines()[0]})") from None


def _merge_part(doc: dict[str, Any], part: Path) -> None:
    extra = _read_yaml(part) or {}
    if not isinstance(extra, dict) or set(extra) - {"videos", "queries"}:
        raise BadInput(f"{part}: a part holds only 'videos' (a list) and 'queries' ({{vid: [...]}})")
    videos = extra.get("videos") or []
    queries = extra.get("queries") or {}
    if not isinstance(videos, list) or not isinstance(queries, dict):
        raise BadInput(f"{part}: 'videos' must be a list and 'queries' a mapping of vid to a list")
    doc.setdefault("videos", [])
    doc["videos"] = [*doc["videos"], *videos]
    by_vid = {v.get("vid"): v for v in doc["videos"] if isinstance(v, dict)}
    for vid, rows in queries.items():
        if vid not in by_vid:
            raise BadInput(f"{part}: queries for unknown video {vid!r}; add it to the spec or a part before")
        if not isinstance(rows, list):
            raise BadInput(f"{part}: queries.{vid} must be a list")
        by_vid[vid]["queries"] = [*by_vid[vid].get("queries", []), *rows]


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
            for what, secs in (("duration_s", s.duration_s), ("enter_s", s.enter_s),
                               *((f"event {k} at_s", e.at_s) for k, e in enumerate(s.events)),
                               *((f"event {k} duration_s", e.duration_s) for k, e in enumerate(s.events))):
                if abs(secs * spec.fps - round(secs * spec.fps)) > 1e-6:
                    raise fail(where, f"{what} {secs:g} is not a whole number of frames at {spec.fps} fps")
            _check_transition(v, i, s, where, fail)
            _check_events(v, s, where, fail)
            if s.music is not None and (not v.audio or s.narration is not None
                                        or any(e.narration for e in s.events)):
                raise fail(where, "music needs a video with audio: true and a scene without narration")
            if s.narration is not None:
                if not v.audio:
                    raise fail(where, "has narration but the video has audio: false")
                if s.narration.lang not in spec.voices or s.narration.lang not in spec.wpm:
                    raise fail(where, f"no voice/wpm for narration language {s.narration.lang!r}")
            # Unique text keeps corpus search meaningful: one line names one video.
            lines = [("telop", s.telop), ("caption", s.caption), ("narration", s.narration),
                     *((f"event {e.kind}", e.telop or e.narration) for e in s.events)]
            for kind, text in lines:
                if text is None:
                    continue
                if text.text in seen_text:
                    raise fail(where, f"{kind} {text.text!r} repeats {seen_text[text.text]}; make it unique")
                seen_text[text.text] = where
        for j, q in enumerate(v.queries):
            _check_query(v, j, q, fail)


def _check_transition(v: VideoSpec, i: int, s: SceneSpec, where: str, fail: Any) -> None:
    if s.enter == "cut":
        return
    if i == 0:
        raise fail(where, f"the first scene cannot enter by a {s.enter}: nothing comes before it")
    prev = v.scenes[i - 1]
    half = s.enter_s / 2 if s.enter == "fade" else 0.0
    if s.enter_s > s.duration_s / 2 or half > prev.duration_s / 2:
        raise fail(where, f"a {s.enter} of {s.enter_s:g}s is longer than half a scene")


def _check_events(v: VideoSpec, s: SceneSpec, where: str, fail: Any) -> None:
    for k, e in enumerate(s.events):
        at = f"{where} event {k}"
        if sum(x is not None for x in (e.inset, e.telop, e.narration)) != 1:
            raise fail(at, "give exactly one of inset, telop, narration")
        if e.at_s + e.duration_s > s.duration_s + 1e-9:
            raise fail(at, f"ends after its scene ({e.at_s:g}s + {e.duration_s:g}s > {s.duration_s:g}s)")
        if e.inset is not None and e.inset not in IMAGES:
            raise fail(at, f"unknown image {e.inset!r}")
        if e.narration is not None and (not v.audio or s.narration is not None):
            raise fail(at, "a narrated event needs a video with audio and a scene without its own narration")


def _check_query(v: VideoSpec, j: int, q: QuerySpec, fail: Any) -> None:
    where = f"video {v.vid} query {j}"
    n = len(v.scenes)
    if q.tag == "absent":
        # An absent query's truth is "nowhere": any scene, image or cue would give it an answer.
        if q.scenes is not None or q.image is not None or q.cues is not None or q.event is not None:
            raise fail(where, "an absent query has no scenes, image, cues or event (nothing answers it)")
        return
    if q.event is not None:
        si, ei = q.event
        if not (0 <= si < n and 0 <= ei < len(v.scenes[si].events)):
            raise fail(where, f"event {list(q.event)} names no event of video {v.vid}")
        if q.scenes is not None or q.image is not None:
            raise fail(where, "an event query gives event only (its window is the event's)")
        kind = v.scenes[si].events[ei].kind
        want = {"inset": "visual", "telop": "onscreen-text", "narration": "speech"}[kind]
        if q.tag != want:
            raise fail(where, f"an event of kind {kind} is found by a {want} query")
        return
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
    if q.tag == "mood":
        for i in scenes:
            if v.scenes[i].mood is None or (v.scenes[i].music is None and v.scenes[i].look is None):
                raise fail(where, f"a mood query must point at scenes built for a mood (mood with music "
                                  f"or look); scene {i} has none")
    if q.tag == "cross-lingual":
        for i in scenes:
            said = _scene_languages(v.scenes[i])
            if not said:
                raise fail(where, f"a cross-lingual query must point at scenes with narration or on-screen "
                                  f"text; scene {i} has none")
            if q.lang in said:
                raise fail(where, f"a cross-lingual query's language ({q.lang}) must differ from every "
                                  f"language spoken or written in its scenes; scene {i} has {sorted(said)}")
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


def _scene_languages(scene: SceneSpec) -> set[str]:
    """Languages spoken (narration) or written (telop, caption) in a scene."""
    return {t.lang for t in (scene.telop, scene.caption, scene.narration) if t is not None}


@dataclass(frozen=True)
class Scene:
    """One scene placed on its video's timeline: frames ``[start_s, end_s)`` and its Ken Burns move."""

    index: int
    start_s: float
    end_s: float
    frames: int
    move: Move
    spec: SceneSpec


def plan(spec: SynthSpec, vi: int, v: VideoSpec) -> list[Scene]:
    """The scenes of video ``v`` (number ``vi`` in the spec) back to back, as hard cuts on whole frames."""
    out: list[Scene] = []
    frame = 0
    # Scenes abut on whole frames whatever their transition: a fade or dissolve is drawn over
    # the frames around the start, so every scene interval (and query window) stays exact.
    for i, s in enumerate(v.scenes):
        n = round(s.duration_s * spec.fps)
        move = s.move or MOVES[(vi + i) % len(MOVES)]
        out.append(Scene(i, frame / spec.fps, (frame + n) / spec.fps, n, move, s))
        frame += n
    return out



def transition_span(spec: SynthSpec, scene: Scene) -> tuple[float, float]:
    """Seconds over which ``scene`` enters: its start for a cut, ``enter_s`` centred on it for a
    fade, its first ``enter_s`` for a dissolve."""
    s = scene.spec
    if s.enter == "fade":
        return scene.start_s - s.enter_s / 2, scene.start_s + s.enter_s / 2
    if s.enter == "dissolve":
        return scene.start_s, scene.start_s + s.enter_s
    return scene.start_s, scene.start_s


def event_span(scene: Scene, k: int) -> tuple[float, float]:
    """Seconds on the video's timeline of event ``k`` of ``scene``."""
    e = scene.spec.events[k]
    return scene.start_s + e.at_s, scene.start_s + e.at_s + e.duration_s
