"""One video of the set: frames piped to ffmpeg (libx264) with the narration track, VFR and
rotation applied, and the file checked with ffprobe."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import subproc
from bench.datasets.synthetic.narration import narration_track
from bench.datasets.synthetic.render import graded_frames, inset, overlay
from bench.datasets.synthetic.spec import Scene, SceneSpec, SynthSpec, VideoSpec, plan
from bench.datasets.synthetic.tools import Tools, ffprobe_json, run_tool
from bench.errors import BenchError


@dataclass
class Built:
    """A video as encoded: its measured duration and when each narration is heard."""

    vid: str
    duration_s: float
    narration: dict[int, tuple[float, float, int]] = field(default_factory=dict)
    """scene index -> (start_s, end_s, wpm) of its narration."""
    events: dict[tuple[int, int], tuple[float, float, int]] = field(default_factory=dict)
    """(scene index, event index) -> (start_s, end_s, wpm) of a narrated event."""


def _vfr_select(n_frames: int, fps: int) -> str:
    # Every half-second boundary (hence every cut) and the last frame are kept, so scene
    # intervals stay exact; in between, an irregular pattern drops frames.
    keep_every = max(1, fps // 2)
    return (f"select='eq(mod(n,{keep_every}),0)+eq(n,{n_frames - 1})"
            f"+not(eq(mod(n,3),1))*not(eq(mod(n,7),4))'")


class _Cancelled(Exception):
    """Raised in a worker when another video of the build has failed."""


@dataclass
class Progress:
    """The shared progress bar, and the flag that stops every worker once one has failed."""

    bar: Any
    stop: threading.Event = field(default_factory=threading.Event)

    def update(self, frames: int) -> None:
        if self.stop.is_set():
            raise _Cancelled
        self.bar.update(frames)


def make_video(tools: Tools, spec: SynthSpec, vi: int, v: VideoSpec, dst: Path, work: Path,
               where: str, progress: Progress) -> Built:
    from PIL import Image

    scenes = plan(spec, vi, v)
    total = sum(s.frames for s in scenes)
    built = Built(v.vid, 0.0)
    wav: Path | None = None
    if v.audio:
        wav, built.narration, built.events = narration_track(tools, spec, v, scenes, work, where)

    coded = (spec.height, spec.width) if v.rotation else (spec.width, spec.height)
    encoded = work / f"{v.vid}.coded.mp4" if v.rotation else dst
    cmd = [tools.ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{coded[0]}x{coded[1]}", "-framerate", str(spec.fps), "-i", "pipe:0"]
    if wav is not None:
        cmd += ["-i", str(wav)]
    if v.vfr:
        cmd += ["-vf", _vfr_select(total, spec.fps), "-fps_mode", "passthrough"]
    # x264's frame threads are not repeatable on portrait frames (the rotated video's frames
    # gave 5 different encodings in 8 runs with two threads, landscape ones 1 in 6); one
    # thread gives the same bytes every time, and the builder runs videos in parallel anyway.
    threads = 1 if coded[1] > coded[0] else 2
    cmd += ["-map", "0:v:0", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
            "-g", str(2 * spec.fps), "-threads", str(threads)]
    if wav is not None:
        cmd += ["-map", "1:a:0", "-c:a", "aac", "-b:a", "64k"]
    cmd += _BITEXACT + [str(encoded)]

    first: np.ndarray | None = None
    with tempfile.TemporaryFile(dir=work) as err:
        proc = subproc.popen(cmd, stdin=subprocess.PIPE, stderr=err)
        assert proc.stdin is not None
        try:
            held: np.ndarray | None = None  # the previous scene's last frame, for a dissolve
            for si, s in enumerate(scenes):
                here = f"{where}: video {v.vid} scene {s.index}"
                layer = overlay(spec, s.spec, here)
                events = _event_layers(spec, s, here)
                nxt = scenes[si + 1].spec if si + 1 < len(scenes) else None
                for fi, frame in enumerate(graded_frames(spec, s)):
                    if layer is not None:
                        frame.paste(layer[0], layer[1], layer[0])
                    for lo, hi, (patch, at) in events:
                        if lo <= fi < hi:
                            frame.paste(patch, at, patch)
                    arr = _transition(np.asarray(frame), s, fi, nxt, held, spec.fps)
                    if first is None:
                        first = arr
                    out = Image.fromarray(arr)
                    if v.rotation:
                        # Turned a quarter clockwise; the display matrix written below turns it back.
                        out = out.transpose(Image.Transpose.ROTATE_270)
                    proc.stdin.write(out.tobytes())
                    progress.update(1)
                    held = arr
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
        run_tool(rot, f"ffmpeg rotation remux of {v.vid}")
        encoded.unlink()
    assert first is not None
    built.duration_s = _verify(tools, spec, v, dst, first)
    return built


def _event_layers(spec: SynthSpec, s: Scene, where: str) -> list[tuple[int, int, Any]]:
    """(first frame, end frame, (RGBA patch, position)) of each event of scene ``s`` that shows something."""
    out = []
    for e in s.spec.events:
        lo = round(e.at_s * spec.fps)
        hi = lo + round(e.duration_s * spec.fps)
        if e.inset is not None:
            out.append((lo, hi, inset(spec, e.inset)))
        elif e.telop is not None:
            patch = overlay(spec, SceneSpec(image=s.spec.image, duration_s=s.spec.duration_s, telop=e.telop),
                            where)
            assert patch is not None
            out.append((lo, hi, patch))
    return out


def _transition(arr: np.ndarray, s: Scene, fi: int, nxt: SceneSpec | None, held: np.ndarray | None,
                fps: int) -> np.ndarray:
    """Frame ``fi`` of scene ``s`` with its entrance (fade in, dissolve) or the next scene's
    fade (this scene dipping to black) applied."""
    gain = 1.0
    if s.spec.enter == "fade":
        rise = round(s.spec.enter_s * fps / 2)
        if fi < rise:
            gain = fi / rise
    if nxt is not None and nxt.enter == "fade":
        fall = round(nxt.enter_s * fps / 2)
        if fi >= s.frames - fall:
            gain = min(gain, (s.frames - 1 - fi) / fall)
    out = arr.astype(np.float32) * gain if gain < 1.0 else arr
    if s.spec.enter == "dissolve" and held is not None:
        n = round(s.spec.enter_s * fps)
        if fi < n:
            a = (fi + 1) / (n + 1)
            out = a * np.asarray(out, dtype=np.float32) + (1 - a) * held.astype(np.float32)
    return arr if out is arr else np.clip(np.rint(out), 0, 255).astype(np.uint8)


_BITEXACT = ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
             "-movflags", "+faststart"]
"""No encoder version strings or dates in the file: the same spec gives the same bytes."""


def _verify(tools: Tools, spec: SynthSpec, v: VideoSpec, path: Path, first: np.ndarray) -> float:
    """Check the file is what the spec asked for (codecs, audio, VFR, rotation); return its duration."""
    info = ffprobe_json(tools.ffprobe, path)
    kinds = {s["codec_type"]: s for s in info["streams"]}
    problems = []
    if kinds.get("video", {}).get("codec_name") != "h264":
        problems.append("no H.264 video stream")
    if v.audio != ("audio" in kinds) or (v.audio and kinds["audio"].get("codec_name") != "aac"):
        problems.append(f"expected {'an AAC' if v.audio else 'no'} audio stream")
    if v.vfr:
        pts = run_tool([tools.ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries",
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
        frame = run_tool([tools.ffmpeg, "-v", "error", "-i", str(path), "-frames:v", "1", "-f",
                          "rawvideo", "-pix_fmt", "rgb24", "pipe:1"], f"ffmpeg decode {path.name}").stdout
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

