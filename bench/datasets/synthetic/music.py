"""Music for the impression sets, synthesized in numpy: chords, bass and a melody in a major
or minor key at a set tempo, sound level, timbre and pitch (see :class:`MusicSpec`)."""

from __future__ import annotations

import numpy as np

from bench.datasets.synthetic.spec import MusicSpec

_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
# Scale degrees of the chord roots, four beats each: I-IV-V-I in major, i-iv-v-i in minor, so
# every chord has the mode's own third and the tonic returns often (the key is unambiguous).
_PROGRESSION = {"major": (0, 3, 4, 0), "minor": (0, 3, 4, 0)}
_ROOT_HZ = {"low": 110.0, "mid": 220.0, "high": 440.0}


def _tone(freq_hz: float, n: int, sr: int, timbre: str) -> np.ndarray:
    t = np.arange(n) / sr
    phase = 2 * np.pi * freq_hz * t
    if timbre == "soft":
        return np.sin(phase)
    if timbre == "bright":
        # A band-limited sawtooth (partials 1/k up to 8), many harmonics: a bright sound.
        return sum(np.sin(k * phase) / k for k in range(1, 9)) * 0.6  # type: ignore[return-value]
    square = sum(np.sin(k * phase) / k for k in range(1, 16, 2))
    return np.tanh(2.5 * square)  # type: ignore[no-any-return]


def _envelope(n: int, sr: int, attack_s: float, decay_s: float) -> np.ndarray:
    t = np.arange(n) / sr
    return np.minimum(1.0, t / max(attack_s, 1e-4)) * np.exp(-t / decay_s)


def _note_hz(root_hz: float, scale: tuple[int, ...], degree: int) -> float:
    octave, step = divmod(degree, len(scale))
    return root_hz * 2 ** (octave + scale[step] / 12)


def music(spec: MusicSpec, duration_s: float, sr: int) -> np.ndarray:
    """float32 mono samples of ``duration_s`` seconds, RMS at ``spec.loudness_db`` dBFS."""
    n = round(duration_s * sr)
    out = np.zeros(n, dtype=np.float64)
    rng = np.random.default_rng(spec.seed)
    scale = _MAJOR_SCALE if spec.mode == "major" else _MINOR_SCALE
    root = _ROOT_HZ[spec.pitch]
    beat_s = 60.0 / spec.tempo_bpm
    beat_n = round(beat_s * sr)
    beats = int(np.ceil(n / beat_n))
    soft = spec.timbre == "soft"
    for b in range(beats):
        at = b * beat_n
        chord = _PROGRESSION[spec.mode][(b // 4) % 4]
        length = min(beat_n, n - at)
        # Bass on the chord's root every beat (the tonic chord's bass names the key).
        bass = _tone(_note_hz(root / 2, scale, chord), length, sr, spec.timbre)
        out[at:at + length] += 0.5 * bass * _envelope(length, sr, 0.01, beat_s * 0.8)
        # Chord tones (root, third, fifth) held through the beat.
        for d in (0, 2, 4):
            tone = _tone(_note_hz(root, scale, chord + d), length, sr, spec.timbre)
            out[at:at + length] += 0.18 * tone * _envelope(length, sr, 0.02 if soft else 0.005, beat_s * 1.5)
        # A melody note from the chord or the scale, an octave up.
        degree = chord + int(rng.choice([0, 2, 4, 0, 2, 4, 1, 3, 5]))
        mel = _tone(_note_hz(root * 2, scale, degree), length, sr, spec.timbre)
        out[at:at + length] += 0.35 * mel * _envelope(length, sr, 0.03 if soft else 0.004, beat_s * 0.6)
        if not soft:
            k_n = min(round(0.12 * sr), length)
            t = np.arange(k_n) / sr
            kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 25)
            out[at:at + k_n] += 0.8 * kick
        if spec.timbre == "harsh":
            h_n = min(round(0.08 * sr), length)
            hit = rng.standard_normal(h_n) * np.exp(-np.arange(h_n) / sr * 40)
            mid = at + beat_n // 2
            out[mid:mid + h_n] += 0.5 * hit[: max(0, min(h_n, n - mid))]
    rms = float(np.sqrt(np.mean(out ** 2))) or 1.0
    out *= 10 ** (spec.loudness_db / 20) / rms
    return np.clip(out, -1.0, 1.0).astype(np.float32)
