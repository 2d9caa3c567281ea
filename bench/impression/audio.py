"""Music features per time window with librosa: tempo, onset strength, loudness, key and
mode, spectral shape and the harmonic/percussive balance, from one shared spectrogram."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from bench.errors import Unavailable

SAMPLE_RATE = 22050
N_FFT = 2048
HOP = 512
N_MELS = 96
HPSS_KERNEL = 17
KEY_CONTEXT_S = 8.0
"""Key and mode are judged over this much music around each window (a few chords): one
window may hold a single chord, which does not name a key."""
SILENT_DB = -55.0
"""A window whose RMS level is below this (dBFS) counts as silent: no music to judge."""
AUDIO_FEATURES = ("loudness_db", "onset", "tempo_bpm", "mode", "key_strength", "centroid_hz",
                  "flatness", "rolloff_hz", "harmonic_ratio")
"""The per-window music features, in the order of the stored array's columns."""

# Krumhansl-Kessler key profiles (Krumhansl 1990, "Cognitive Foundations of Musical Pitch"):
# how well each pitch class fits a major or minor key on C.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass(frozen=True)
class WindowGrid:
    """Windows ``[start_s, start_s + window_s)`` every ``hop_s`` over ``duration_s``."""

    window_s: float
    hop_s: float

    def starts(self, duration_s: float) -> np.ndarray:
        n = max(1, int(np.ceil(max(duration_s, 1e-9) / self.hop_s)))
        return np.arange(n, dtype=np.float64) * self.hop_s


def _librosa() -> Any:
    try:
        import librosa
    except ImportError as exc:
        raise Unavailable(f"music features need librosa ({exc}); pip install 'scenebench[audio]'") from None
    return librosa
    return librosa


@cache
def _chroma_filters() -> np.ndarray:
    return np.asarray(_librosa().filters.chroma(sr=SAMPLE_RATE, n_fft=N_FFT), dtype=np.float32)


def _rolloff_hz(spectrum: np.ndarray, freqs: np.ndarray, share: float = 0.85) -> float:
    """The frequency below which ``share`` of a magnitude spectrum lies (here of a window's
    mean spectrum: one cumulative sum per window instead of one per frame)."""
    total = float(spectrum.sum())
    if total <= 0:
        return 0.0
    return float(freqs[min(int(np.searchsorted(np.cumsum(spectrum), share * total)), len(freqs) - 1)])


def _triads(third: int) -> np.ndarray:
    base = np.zeros(12)
    base[[0, third, 7]] = 1.0
    return np.stack([np.roll(base, k) for k in range(12)])


def _zscored(rows: np.ndarray) -> np.ndarray:
    return (rows - rows.mean(axis=1, keepdims=True)) / rows.std(axis=1, keepdims=True)


_PROFILES = _zscored(np.stack([np.roll(p, k) for p in (_MAJOR, _MINOR) for k in range(12)]))
"""The 12 major then the 12 minor key profiles, z-scored (a dot product over 12 is Pearson's r)."""
_MAJOR_TRIADS = _triads(4)
_MINOR_TRIADS = _triads(3)


def _harmonic_percussive(mel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the energy of the mel bins that are harmonic (steady across time) and
    percussive (spread across frequency), as in Fitzgerald's median-filtering separation
    (2010) with a hard mask; on 96 mel bands with 17-step kernels it costs a tenth of
    librosa's soft-mask HPSS on the linear spectrogram."""
    from scipy.ndimage import median_filter

    # Pairs of frames are averaged first (46 ms steps): half the filtering, and the kernels
    # still span 0.8 s of time and 17 mel bands.
    n = mel.shape[1] - mel.shape[1] % 2
    pairs = 0.5 * (mel[:, 0:n:2] + mel[:, 1:n:2]) if n else mel
    steady = median_filter(pairs, size=(1, HPSS_KERNEL))
    spread = median_filter(pairs, size=(HPSS_KERNEL, 1))
    harmonic = np.repeat(steady >= spread, 2, axis=1)
    if harmonic.shape[1] < mel.shape[1]:
        harmonic = np.pad(harmonic, ((0, 0), (0, mel.shape[1] - harmonic.shape[1])), mode="edge")
    harmonic = harmonic[:, : mel.shape[1]]
    return (mel * harmonic).sum(axis=0), (mel * ~harmonic).sum(axis=0)


def librosa_version() -> str:
    """The installed librosa's version (part of the cache key and the provenance)."""
    return str(getattr(_librosa(), "__version__", "unknown"))


def key_mode(chroma: np.ndarray, local: np.ndarray | None = None) -> tuple[float, float]:
    """(mode, key strength) of 12-bin chroma vectors; mode > 0 reads as major.

    Half of ``mode`` is the Krumhansl-Schmuckler key fit over ``chroma`` (a few chords): how
    much better the major key on the best-fitting tonic fits than the minor one on it.
    Relative keys (C major, A minor) share their notes, so that half alone often hears minor
    music as its relative major; the other half is the quality of the chord in ``local``
    (the window itself): best major-triad minus best minor-triad correlation."""
    if not np.any(chroma > 0) or np.allclose(chroma, chroma.mean()):
        return 0.0, 0.0
    z = (chroma - chroma.mean()) / chroma.std()
    fits = _PROFILES @ z / 12.0  # Pearson correlation with each of the 24 keys
    major, minor = fits[:12], fits[12:]
    tonic = int(np.argmax(np.maximum(major, minor)))
    key = float(major[tonic] - minor[tonic])
    here = chroma if local is None or not np.any(local > 0) else local
    # Triad energy as a share of all chroma energy is at most 3/12 for a spread chroma; times
    # 3 it spans about the range of the key-fit difference.
    share = float(np.abs(here).sum() or 1.0)
    quality = 3.0 * float((_MAJOR_TRIADS @ here).max() - (_MINOR_TRIADS @ here).max()) / share
    return 0.5 * key + 0.5 * quality, float(max(major[tonic], minor[tonic]))


TEMPO_WIN = 384
"""Onset-envelope frames (about 8.9 s) over which local tempo is judged, as librosa's tempogram."""


def local_tempo(onset: np.ndarray, centres: np.ndarray, fps: float, start_bpm: float = 120.0) -> np.ndarray:
    """Beats per minute at each frame index in ``centres``: the autocorrelation of the onset
    envelope over :data:`TEMPO_WIN` frames around it (Hann-weighted), its periods weighted by
    librosa's log-normal prior around ``start_bpm`` (one octave wide), as
    ``librosa.feature.tempo`` does for every frame; here only where a window needs it."""
    half = TEMPO_WIN // 2
    padded = np.pad(onset, half)
    idx = np.clip(centres.astype(int), 0, len(onset) - 1)[:, None] + np.arange(TEMPO_WIN)[None, :]
    segs = padded[idx] * np.hanning(TEMPO_WIN)[None, :]
    spec = np.fft.rfft(segs, n=2 * TEMPO_WIN, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :TEMPO_WIN]
    lags = np.arange(1, TEMPO_WIN)
    bpm = 60.0 * fps / lags
    prior = -0.5 * ((np.log2(bpm) - np.log2(start_bpm)) / 1.0) ** 2
    prior[bpm > 320.0] = -np.inf
    peak = np.maximum(ac.max(axis=1, keepdims=True), 1e-12)
    score = np.log1p(1e6 * np.maximum(ac[:, 1:], 0) / peak) + prior[None, :]
    return np.asarray(bpm[np.argmax(score, axis=1)], dtype=np.float64)


def audio_features(samples: np.ndarray, grid: WindowGrid, duration_s: float | None = None) -> np.ndarray:
    """float32 ``(n_windows, len(AUDIO_FEATURES))`` for mono ``samples`` at :data:`SAMPLE_RATE`.

    Row ``i`` covers ``[i * hop_s, i * hop_s + window_s)``; a window past the end of the
    samples (or silent) has loudness -100 dB and zeros elsewhere. Units: dBFS, onset
    strength (librosa's mean spectral flux of the log-mel spectrogram), beats per minute,
    correlation difference (mode), Hz, flatness (0..1), harmonic share of the energy (0..1).
    """
    librosa = _librosa()
    duration_s = float(duration_s if duration_s is not None else len(samples) / SAMPLE_RATE)
    starts = grid.starts(duration_s)
    out = np.zeros((len(starts), len(AUDIO_FEATURES)), dtype=np.float32)
    out[:, 0] = -100.0
    if len(samples) < N_FFT:
        return out
    y = np.asarray(samples, dtype=np.float32)
    stft = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))
    power = stft ** 2
    mel = librosa.feature.melspectrogram(S=power, sr=SAMPLE_RATE, n_mels=N_MELS)
    onset = librosa.onset.onset_strength(S=librosa.power_to_db(mel), sr=SAMPLE_RATE)
    # Level from the samples, not the spectrogram: the signal's own RMS in dBFS, per window
    # from a running sum of squares.
    energy_sum = np.concatenate([[0.0], np.cumsum(y.astype(np.float64) ** 2)])
    chroma = _chroma_filters() @ power
    freqs = librosa.fft_frequencies(sr=SAMPLE_RATE, n_fft=N_FFT)
    total = np.maximum(stft.sum(axis=0), 1e-10)
    centroid = (freqs @ stft) / total
    flatness = librosa.feature.spectral_flatness(S=stft)[0]
    harm_e, perc_e = _harmonic_percussive(mel)
    frames = stft.shape[1]
    fps = SAMPLE_RATE / HOP
    tempo = local_tempo(onset, (starts + grid.window_s / 2) * fps, fps)
    for i, t in enumerate(starts):
        lo = int(t * fps)
        hi = min(frames, max(lo + 1, int(np.ceil((t + grid.window_s) * fps))))
        if lo >= frames:
            continue
        a = min(len(y), int(t * SAMPLE_RATE))
        b = min(len(y), max(a + 1, int((t + grid.window_s) * SAMPLE_RATE)))
        level = float(np.sqrt(max(energy_sum[b] - energy_sum[a], 0.0) / max(b - a, 1)))
        db = 20.0 * np.log10(max(level, 1e-5))
        out[i, 0] = db
        if db < SILENT_DB:
            continue
        centre = (lo + hi) / 2
        k_lo = max(0, int(centre - KEY_CONTEXT_S * fps / 2))
        k_hi = min(frames, int(centre + KEY_CONTEXT_S * fps / 2) + 1)
        mode, strength = key_mode(chroma[:, k_lo:k_hi].mean(axis=1), chroma[:, lo:hi].mean(axis=1))
        energy = float(harm_e[lo:hi].sum() + perc_e[lo:hi].sum())
        out[i, 1:] = (float(onset[lo:hi].mean()), float(tempo[i]), mode, strength,
                      float(centroid[lo:hi].mean()), float(flatness[lo:hi].mean()),
                      _rolloff_hz(stft[:, lo:hi].mean(axis=1), freqs),
                      float(harm_e[lo:hi].sum()) / energy if energy > 0 else 0.0)
    return out
