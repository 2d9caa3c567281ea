"""Extract a video's audio track as mono float32 samples with an ffmpeg subprocess.

Sample 0 is the container's start (the player's zero), so speech timestamps line up with
frame times even when the audio track starts late.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from bench import subproc
from bench.errors import BadInput, Unavailable
from bench.video.probe import ffmpeg_reason


def has_audio_stream(path: Path) -> bool:
    """True when ``path`` holds at least one audio stream (BadInput if it cannot be opened)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: file not found")
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            return bool(container.streams.audio)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not a readable media file ({ffmpeg_reason(exc)})") from None


def extract_audio(path: Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode the first audio stream of ``path`` to float32 mono at ``sample_rate`` Hz.

    Returns a float32 ``(n_samples,)`` array in [-1, 1]; sample ``i`` is at ``i /
    sample_rate`` seconds from the container start (a late-starting track is padded with
    silence). An empty array when the file has no audio stream. BadInput when the file
    cannot be read or its audio cannot be decoded.
    """
    path = Path(path)
    if sample_rate <= 0:
        raise BadInput(f"sample_rate must be a positive number of Hz, got {sample_rate}")
    if not has_audio_stream(path):
        return np.zeros(0, dtype=np.float32)
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise Unavailable("ffmpeg is not on PATH; install it (e.g. apt-get install ffmpeg)")
    # Written to a temporary file, not a pipe, so the samples are held once (np.fromfile)
    # rather than as a bytes object plus its copy: two hours at 16 kHz is 460 MB.
    with tempfile.TemporaryDirectory(prefix="bench-audio-") as tmp:
        out = Path(tmp) / "audio.f32"
        cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
               "-map", "0:a:0", "-vn", "-sn", "-dn",
               # async fills gaps and pads the start so samples sit on the container clock
               "-af", "aresample=async=1:first_pts=0",
               "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "-y", str(out)]
        proc = subproc.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, check=False)
        if proc.returncode != 0:
            lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            reason = lines[-1][:200] if lines else f"ffmpeg exit code {proc.returncode}"
            raise BadInput(f"{path}: cannot decode its audio ({reason})")
        return np.fromfile(out, dtype="<f4").astype(np.float32, copy=False)
