"""Narration: each scene's line spoken by espeak-ng, sped up until it fits, laid on one track
(with the scenes' synthesized music, where a scene has some)."""

from __future__ import annotations

import math
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.datasets.synthetic.spec import Scene, SynthSpec, TextSpec, VideoSpec
from bench.datasets.synthetic.tools import Tools, run_tool
from bench.errors import BadInput, BenchError

NARRATION_LEAD_S = 0.4
"""Silence between a cut and the start of its narration."""
NARRATION_TAIL_S = 0.3
"""Silence kept between the end of a narration and the next cut."""
MAX_WPM = 280
"""Fastest espeak-ng rate tried when a narration does not fit its scene at the spec's rate."""
SAMPLE_RATE = 22050
"""espeak-ng's native output rate; the AAC track keeps it."""


Spoken = dict[int, tuple[float, float, int]]
EventsSpoken = dict[tuple[int, int], tuple[float, float, int]]


def narration_track(tools: Tools, spec: SynthSpec, v: VideoSpec, scenes: Sequence[Scene], work: Path,
                    where: str) -> tuple[Path, Spoken, EventsSpoken]:
    """Speak the narrated scenes of ``v`` onto one WAV track as long as the video, each line
    :data:`NARRATION_LEAD_S` after its cut (a narrated event's line as long after the event
    starts); returns the file and, per scene index and per (scene, event), the measured
    (start_s, end_s, wpm) of its narration."""
    total = sum(s.frames for s in scenes)
    track = np.zeros(round(total / spec.fps * SAMPLE_RATE), dtype=np.int16)
    spoken: dict[int, tuple[float, float, int]] = {}
    for s in scenes:
        if s.spec.narration is None:
            continue
        room = s.end_s - s.start_s - NARRATION_LEAD_S - NARRATION_TAIL_S
        samples, wpm = _speak(tools, spec, s.spec.narration, work / f"{v.vid}-{s.index}.wav", room,
                              f"{where}: video {v.vid} scene {s.index}")
        at = round((s.start_s + NARRATION_LEAD_S) * SAMPLE_RATE)
        track[at:at + len(samples)] = samples
        spoken[s.index] = (s.start_s + NARRATION_LEAD_S,
                           s.start_s + NARRATION_LEAD_S + len(samples) / SAMPLE_RATE, wpm)
    events: EventsSpoken = {}
    for s in scenes:
        for k, e in enumerate(s.spec.events):
            if e.narration is None:
                continue
            room = e.duration_s - NARRATION_LEAD_S - NARRATION_TAIL_S
            samples, wpm = _speak(tools, spec, e.narration, work / f"{v.vid}-{s.index}-e{k}.wav", room,
                                  f"{where}: video {v.vid} scene {s.index} event {k}")
            begin = s.start_s + e.at_s + NARRATION_LEAD_S
            at = round(begin * SAMPLE_RATE)
            track[at:at + len(samples)] = samples
            events[(s.index, k)] = (begin, begin + len(samples) / SAMPLE_RATE, wpm)
    _lay_music(track, scenes)
    wav = work / f"{v.vid}.wav"
    _write_wav(wav, track)
    return wav, spoken, events

def _lay_music(track: np.ndarray, scenes: Sequence[Scene]) -> None:
    """Add each scene's music (:mod:`bench.datasets.synthetic.music`) to ``track`` in place."""
    from bench.datasets.synthetic.music import music

    for s in scenes:
        if s.spec.music is None:
            continue
        at = round(s.start_s * SAMPLE_RATE)
        samples = music(s.spec.music, s.end_s - s.start_s, SAMPLE_RATE)[: len(track) - at]
        mixed = track[at:at + len(samples)].astype(np.float32) + samples * 32767.0
        track[at:at + len(samples)] = np.clip(np.rint(mixed), -32768, 32767).astype(np.int16)


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wf:
        if wf.getframerate() != SAMPLE_RATE or wf.getnchannels() != 1 or wf.getsampwidth() != 2:
            raise BenchError(f"{path}: espeak-ng wrote {wf.getframerate()} Hz x{wf.getnchannels()}, "
                             f"{8 * wf.getsampwidth()}-bit; expected {SAMPLE_RATE} Hz mono 16-bit")
        return np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2")


def _speak(tools: Tools, spec: SynthSpec, text: TextSpec, dst: Path, room_s: float,
           where: str) -> tuple[np.ndarray, int]:
    """Narrate ``text`` into int16 samples that last at most ``room_s`` seconds; returns (samples, wpm)."""
    assert tools.espeak is not None
    wpm = spec.wpm[text.lang]
    while True:
        run_tool([tools.espeak, "-v", spec.voices[text.lang], "-s", str(wpm), "-b", "1", "-w", str(dst),
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

