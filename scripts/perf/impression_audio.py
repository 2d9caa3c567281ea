"""Speed of the impression family's music features (librosa: tempo, onsets, loudness, key and
mode, spectral shape, harmonic/percussive balance) against real time, written to a Markdown
report with the machine's load average.

The audio is the synthesized music of synthetic-mood-v1's generator (seven moods, 60 s each,
so 7 minutes in all), encoded to AAC in an mp4 as a set video is, so that the timing covers
decoding with ffmpeg as well as the features. Each configuration runs ``--repeats`` times;
the best and the median are reported (the machine is shared).

    python scripts/perf/impression_audio.py --out scripts/perf/reports/impression_audio.md
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

MOODS = [
    {"tempo_bpm": 152, "mode": "major", "loudness_db": -14, "timbre": "bright", "pitch": "high"},
    {"tempo_bpm": 66, "mode": "major", "loudness_db": -30, "timbre": "soft", "pitch": "mid"},
    {"tempo_bpm": 56, "mode": "minor", "loudness_db": -33, "timbre": "soft", "pitch": "low"},
    {"tempo_bpm": 170, "mode": "minor", "loudness_db": -11, "timbre": "harsh", "pitch": "low"},
    {"tempo_bpm": 118, "mode": "major", "loudness_db": -24, "timbre": "soft", "pitch": "high"},
    {"tempo_bpm": 78, "mode": "minor", "loudness_db": -25, "timbre": "bright", "pitch": "mid"},
    {"tempo_bpm": 138, "mode": "major", "loudness_db": -10, "timbre": "bright", "pitch": "low"},
]


def make_audio(seconds_each: float, work: Path) -> Path:
    """The seven moods back to back as an AAC track in an mp4 (no picture)."""
    from bench.datasets.synthetic.music import music
    from bench.datasets.synthetic.spec import MusicSpec
    from bench.impression.audio import SAMPLE_RATE

    track = np.concatenate([music(MusicSpec.model_validate(m), seconds_each, SAMPLE_RATE) for m in MOODS])
    wav = work / "music.wav"
    with wave.open(str(wav), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(SAMPLE_RATE)
        wf.writeframes((np.clip(track, -1, 1) * 32767).astype("<i2").tobytes())
    mp4 = work / "music.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(wav), "-c:a", "aac",
                    "-b:a", "64k", str(mp4)], check=True)
    return mp4


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds-each", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "scripts/perf/reports/impression_audio.md")
    args = ap.parse_args(argv)

    from bench.impression.audio import SAMPLE_RATE, WindowGrid, audio_features, librosa_version
    from bench.video.audio import extract_audio

    grid = WindowGrid(3.0, 1.0)
    with tempfile.TemporaryDirectory() as tmp:
        mp4 = make_audio(args.seconds_each, Path(tmp))
        duration_s = args.seconds_each * len(MOODS)
        audio_features(extract_audio(mp4, SAMPLE_RATE)[: SAMPLE_RATE * 10], grid)  # compile numba code once
        rows = []
        load_before = os.getloadavg()
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            samples = extract_audio(mp4, SAMPLE_RATE)
            t1 = time.perf_counter()
            audio_features(samples, grid, duration_s)
            t2 = time.perf_counter()
            rows.append((t1 - t0, t2 - t1))
        load_after = os.getloadavg()
    decode = np.array([r[0] for r in rows])
    feats = np.array([r[1] for r in rows])
    total = decode + feats
    lines = [
        "# Impression music features: speed against real time", "",
        f"Command: `python scripts/perf/impression_audio.py --seconds-each {args.seconds_each:g} "
        f"--repeats {args.repeats}`", "",
        "Machine: 2-core AMD EPYC VM, 24 GiB, no GPU, shared with other jobs "
        f"({platform.processor() or 'x86_64'}, "
        f"{os.cpu_count()} logical CPUs, Python {platform.python_version()}, librosa {librosa_version()}). "
        f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.1f}' for x in load_before)}; after: "
        f"{', '.join(f'{x:.1f}' for x in load_after)}.", "",
        f"Audio: {duration_s:g} s of synthesized music (the seven moods of synthetic-mood-v1), AAC in mp4; "
        "features on 3 s windows every 1 s at 22,050 Hz (one STFT of 2048/512, mel, onsets, onset "
        "autocorrelation at window centres for tempo, chroma, spectral shape, median-filter HPSS on 96 "
        "mel bands).", "",
        "| stage | best s | median s | x real time (best) | x real time (median) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, t in (("decode (ffmpeg -> 22,050 Hz mono)", decode), ("features (librosa)", feats),
                    ("decode + features", total)):
        lines.append(f"| {name} | {t.min():.2f} | {np.median(t):.2f} | {duration_s / t.min():.0f}x | "
                     f"{duration_s / np.median(t):.0f}x |")
    lines += ["", "Target: at least 50x real time on 2 cores. On a shared machine the median moves with the "
              "other jobs; the best run is closest to what the code costs.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
