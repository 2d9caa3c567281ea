"""The external programs a build needs (ffmpeg, ffprobe, espeak-ng): found, checked and run."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import subproc
from bench.errors import BadInput, BenchError

if TYPE_CHECKING:
    from bench.datasets.synthetic.spec import SynthSpec


@dataclass(frozen=True)
class Tools:
    """Where the programs are, and which spelling of the rotation option this ffmpeg takes."""

    ffmpeg: str
    ffprobe: str
    espeak: str | None
    display_rotation: bool
    """ffmpeg >= 6 takes ``-display_rotation``; older ones take the ``rotate`` stream tag."""


def run_tool(cmd: Sequence[str], what: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    """Run ``cmd`` to completion; a non-zero exit raises BenchError with ``what`` and its last stderr line."""
    proc = subproc.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, check=False, **kw)
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise BenchError(f"{what} failed (exit {proc.returncode}): {tail[0]}")
    return proc


@cache
def _tool_output(*cmd: str) -> str:
    """Stdout of a capability query (encoders, voices, options); asked once per process."""
    return run_tool(cmd, " ".join([Path(cmd[0]).name, *cmd[1:]])).stdout.decode("utf-8", "replace")


def check_tools(spec: SynthSpec) -> Tools:
    """Find the programs building ``spec`` needs; a missing one raises BadInput naming its Debian package."""
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if not ffmpeg or not ffprobe:
        raise BadInput("ffmpeg/ffprobe not found on PATH; install the Debian package 'ffmpeg' "
                       "(apt-get install ffmpeg)")
    if "libx264" not in _tool_output(ffmpeg, "-hide_banner", "-encoders"):
        raise BadInput(f"{ffmpeg} has no libx264 encoder; install the Debian package 'ffmpeg'")
    espeak = None
    langs = {t.lang for v in spec.videos for s in v.scenes
             for t in (s.narration, *(e.narration for e in s.events)) if t is not None}
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
    return Tools(ffmpeg, ffprobe, espeak, display_rotation)


def ffprobe_json(ffprobe: str, path: Path) -> dict[str, Any]:
    """``ffprobe -show_streams -show_format`` of ``path`` as a dict."""
    proc = run_tool([ffprobe, "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                    f"ffprobe {path.name}")
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc

