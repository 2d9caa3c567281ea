"""The prior estimator: per-window music and picture features -> the 8 impression axes, by a
fixed mapping whose signs come from the music-emotion and colour-emotion literature (for
use when no ratings exist). docs/impression.md says where each coefficient comes from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.impression.audio import AUDIO_FEATURES, SILENT_DB
from bench.impression.axes import Axes
from bench.impression.picture import PICTURE_FEATURES

MUSIC_WEIGHT = 0.7
"""Share of the music in the combined impression; music drives a music video's impression
more than its picture (the study behind the 8 axes), so the picture gets the rest."""
CLUSTER_FALLOFF = 1.25
"""A cluster axis drops this much per unit of valence-arousal distance from its centre."""


def _cue(x: np.ndarray, centre: float, half_range: float) -> np.ndarray:
    """A feature as a cue in [-1, 1]: ``centre`` -> 0, ``centre +- half_range`` -> +-1."""
    return np.clip((x - centre) / half_range, -1.0, 1.0)


@dataclass(frozen=True)
class Cues:
    """Features read as cues in [-1, 1] (positive: fast, loud, major, ...), per window."""

    tempo: np.ndarray
    loudness: np.ndarray
    mode: np.ndarray
    onsets: np.ndarray
    timbre: np.ndarray
    """Spectral centroid: dull (-1) .. bright, high-pitched (+1)."""
    noise: np.ndarray
    """Spectral flatness: tonal (-1) .. noisy, rough (+1)."""
    brightness: np.ndarray
    saturation: np.ndarray
    colourfulness: np.ndarray
    motion: np.ndarray
    cuts: np.ndarray


def cues(audio: np.ndarray | None, picture: np.ndarray, cuts_per_min: np.ndarray) -> Cues:
    """Cues of ``audio`` ``(n, len(AUDIO_FEATURES))`` (None: no music; its cues are 0),
    ``picture`` ``(n, len(PICTURE_FEATURES))`` and the cut rate per window.

    The centres and ranges are fixed, not fitted per video, so windows of different videos
    compare: 110 +- 50 bpm, -25 +- 12 dBFS, centroid 1 kHz +- 1.5 octaves, and so on."""
    n = len(picture)
    a = {name: (audio[:, i] if audio is not None else np.zeros(n)) for i, name in enumerate(AUDIO_FEATURES)}
    p = {name: picture[:, i] for i, name in enumerate(PICTURE_FEATURES)}
    zero = np.zeros(n)
    has = audio is not None
    return Cues(
        tempo=_cue(a["tempo_bpm"], 110.0, 50.0) if has else zero,
        loudness=_cue(a["loudness_db"], -25.0, 12.0) if has else zero,
        mode=_cue(a["mode"], 0.12, 0.12) if has else zero,
        onsets=_cue(a["onset"], 1.2, 1.0) if has else zero,
        timbre=_cue(np.log2(np.maximum(a["centroid_hz"], 1.0) / 1000.0), 0.0, 1.5) if has else zero,
        noise=_cue(a["flatness"], 0.01, 0.03) if has else zero,
        brightness=_cue(p["brightness"], 0.45, 0.25),
        saturation=_cue(p["saturation"], 0.35, 0.25),
        colourfulness=_cue(p["colourfulness"], 0.25, 0.2),
        motion=_cue(p["motion"], 0.03, 0.05),
        cuts=_cue(cuts_per_min, 10.0, 10.0),
    )


def music_va(c: Cues) -> tuple[np.ndarray, np.ndarray]:
    """(valence, arousal) in [-1, 1] from the music cues.

    Arousal: tempo and sound level are the most consistent activity cues (Gabrielsson &
    Lindström 2010; Juslin & Laukka 2003: fast and loud for anger and happiness, slow and
    soft for sadness and tenderness), then the density of onsets and a bright timbre.
    Valence: mode first (major happy, minor sad; Hevner 1935, Gabrielsson & Lindström 2010),
    then fast tempo and high, bright sound for happiness, and a noisy, rough timbre for
    anger and fear (Juslin & Laukka 2003)."""
    arousal = 0.40 * c.tempo + 0.35 * c.loudness + 0.15 * c.onsets + 0.10 * c.timbre
    valence = 0.55 * c.mode + 0.20 * c.tempo + 0.10 * c.timbre - 0.15 * c.noise
    return valence, arousal


def picture_va(c: Cues) -> tuple[np.ndarray, np.ndarray]:
    """(valence, arousal) in about [-1, 1] from the picture cues.

    Colour: Valdez & Mehrabian (1994) regressed pleasure = .69 brightness + .22 saturation
    and arousal = -.31 brightness + .60 saturation; their coefficients are used as they are.
    Motion raises arousal (Detenber, Simons & Bennett 1998), and so does the pace of cuts
    (Lang, Bolls, Potter & Kawahara 1999); colourfulness (Hasler & Süsstrunk 2003) adds a
    little pleasure (our assumption, no published coefficient)."""
    pleasure = 0.69 * c.brightness + 0.22 * c.saturation
    colour_arousal = -0.31 * c.brightness + 0.60 * c.saturation
    valence = 0.8 * pleasure + 0.2 * c.colourfulness
    arousal = 0.35 * colour_arousal + 0.45 * c.motion + 0.20 * c.cuts
    return valence, arousal


def music_heard(audio: np.ndarray) -> np.ndarray:
    """bool ``(n,)``: windows whose sound level reaches :data:`SILENT_DB`."""
    return np.asarray(audio[:, AUDIO_FEATURES.index("loudness_db")] >= SILENT_DB)


def estimate(axes: Axes, audio: np.ndarray | None, picture: np.ndarray,
             cuts_per_min: np.ndarray) -> np.ndarray:
    """float32 ``(n, len(axes.ids))`` axis values on the axes' scale per window.

    ``audio`` None (a video without an audio track) gives the picture-only estimate, and so
    does every window whose sound is below :data:`~bench.impression.audio.SILENT_DB`."""
    c = cues(audio, picture, cuts_per_min)
    pv, pa = picture_va(c)
    valence, arousal = pv, pa
    if audio is not None:
        mv, ma = music_va(c)
        heard = music_heard(audio)
        valence = np.where(heard, MUSIC_WEIGHT * mv + (1 - MUSIC_WEIGHT) * pv, pv)
        arousal = np.where(heard, MUSIC_WEIGHT * ma + (1 - MUSIC_WEIGHT) * pa, pa)
    lo, hi = axes.scale
    half = (hi - lo) / 2
    v = np.clip(valence * half, lo, hi)
    a = np.clip(arousal * half, lo, hi)
    out = np.zeros((len(picture), len(axes.ids)), dtype=np.float32)
    for j, spec in enumerate(axes.specs):
        if spec.id == "valence":
            out[:, j] = v
        elif spec.id == "arousal":
            out[:, j] = a
        elif spec.va is not None:
            dist = np.hypot(v - spec.va[0], a - spec.va[1])
            value = hi - CLUSTER_FALLOFF * dist
            if spec.id == "C6":
                # Cute: high, bright sound and a light picture, not loud (our assumption: no
                # published cue table exists for this cluster).
                value = value + half * (0.2 * c.timbre + 0.2 * c.brightness - 0.2 * c.loudness)
            out[:, j] = np.clip(value, lo, hi)
    return out


def cue_matrix(audio: np.ndarray | None, picture: np.ndarray,
               cuts_per_min: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(names, ``(n, 11)`` cues) per window: the predictors a learnt model is fitted on."""
    c = cues(audio, picture, cuts_per_min)
    names = list(Cues.__dataclass_fields__)
    return names, np.stack([np.asarray(getattr(c, n), dtype=np.float64) for n in names], axis=1)
