"""Pictures and clips for the Space: a frame per card (from a video's thumbnail sheet when it
has one, else cut by ffmpeg), thumbnail sheets made once per video, and the clip a card plays.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from bench import subproc
from bench.errors import BadInput
from bench.evidence import fmt_ts
from bench.fsio import directory_swap, temp_sibling
from bench.serving.sessions import safe_name
from bench.types import Video

FFMPEG_TIMEOUT_S = 120


def _ffmpeg(cmd: list[str], out: Path, what: str) -> Path:
    try:
        subproc.run(cmd, check=False, capture_output=True, timeout=FFMPEG_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        out.unlink(missing_ok=True)  # a half-written file
        raise BadInput(f"{what}: ffmpeg did not finish ({type(exc).__name__})") from None
    if not out.is_file() or out.stat().st_size == 0:
        out.unlink(missing_ok=True)
        raise BadInput(f"{what}: ffmpeg produced nothing")
    return out


def thumbnail(video: Video, t: float, out_dir: Path, width: int = 320) -> Path:
    """A JPEG of the frame at ``t`` seconds of ``video`` (cached in ``out_dir``)."""
    if video.path is None:
        raise BadInput(f"{video.vid}: no local file to take a thumbnail from")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{safe_name(video.vid)}-{int(max(0.0, t) * 10):08d}.jpg"
    if out.is_file():
        return out
    tmp = temp_sibling(out)
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", f"{max(0.0, t):.2f}", "-i", video.path,
           "-frames:v", "1", "-vf", f"scale={width}:-2", "-f", "image2", str(tmp)]
    _ffmpeg(cmd, tmp, f"{video.vid}: a frame at {fmt_ts(t)}").replace(out)
    return out


SHEET_FPS = 1.0
SHEET_SHORT_SIDE = 180
SHEET_DONE = "done"


def sheet_dir(root: Path, video: Video) -> Path:
    """Where ``video``'s thumbnail sheet lives: named by vid, size and mtime, so a changed
    file gets a new sheet."""
    if video.path is None:
        raise BadInput(f"{video.vid}: no local file to take thumbnails from")
    st = Path(video.path).stat()
    key = hashlib.sha256(f"{video.vid}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return root / f"{safe_name(video.vid)}-{key}"


def build_sheet(video: Video, root: Path, *, fps: float = SHEET_FPS,
                short_side: int = SHEET_SHORT_SIDE) -> Path:
    """Decode ``video`` once at ``fps`` (through :func:`bench.video.sample_frames`, the one
    decoding path) and keep a small JPEG per frame named by its time in milliseconds.

    Cards of a set known in advance then cost a directory lookup instead of an ffmpeg run.
    Written to a temp folder and renamed, with a marker file, so a half-written sheet is
    never used; a concurrent builder's finished sheet wins.
    """
    from PIL import Image

    from bench.video import sample_frames

    out = sheet_dir(root, video)
    if (out / SHEET_DONE).is_file():
        return out
    root.mkdir(parents=True, exist_ok=True)
    with directory_swap(out, keep_existing=True) as tmp:  # a concurrent builder's sheet wins
        # The auto decoder hands over to PyAV where decord fails (e.g. sizes it cannot scale to).
        for batch in sample_frames(Path(str(video.path)), fps, short_side=short_side):
            for frame, t in zip(batch.frames, batch.times_s.tolist(), strict=True):
                Image.fromarray(frame).save(tmp / f"{int(round(t * 1000)):09d}.jpg", quality=85)
        (tmp / SHEET_DONE).write_text(f"{video.vid}\n", encoding="utf-8")
    return out


def sheet_frame(root: Path, video: Video, t: float) -> Path | None:
    """The sheet's frame nearest to ``t`` seconds, or None when ``video`` has no finished sheet."""
    try:
        sheet = sheet_dir(root, video)
    except (BadInput, OSError):
        return None
    if not (sheet / SHEET_DONE).is_file():
        return None
    frames = [(abs(int(p.stem) / 1000 - t), p) for p in sheet.glob("*.jpg") if p.stem.isdigit()]
    return min(frames)[1] if frames else None


def card_thumbnail(video: Video, t: float, out_dir: Path, sheets: Path | None = None) -> Path:
    """A card's picture: the nearest frame of the video's sheet when it has one, else a frame
    cut by ffmpeg into ``out_dir`` (uploads, or before the warm-up has made the sheets)."""
    if sheets is not None and (frame := sheet_frame(sheets, video, t)) is not None:
        return frame
    return thumbnail(video, t, out_dir)


CLIP_TAIL_S = 10.0
"""Seconds a card's clip runs past the moment's end, so the moment is seen in context."""


def clip_from(video: Video, start: float, end: float, out_dir: Path) -> Path:
    """An H.264 mp4 that starts at ``start`` and runs past ``end`` (what a card plays)."""
    if video.path is None:
        raise BadInput(f"{video.vid}: no local file to play")
    out_dir.mkdir(parents=True, exist_ok=True)
    start = max(0.0, start)
    stop = max(end, start + 1.0) + CLIP_TAIL_S
    if video.duration:
        stop = min(stop, video.duration)
    out = out_dir / f"{safe_name(video.vid)}-{int(start * 10):08d}-{int(stop * 10):08d}.mp4"
    if out.is_file():
        return out
    tmp = temp_sibling(out)
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", f"{start:.2f}", "-i", video.path,
           "-t", f"{max(0.5, stop - start):.2f}", "-map", "0:v:0", "-map", "0:a:0?",
           "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
           "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-c:a", "aac", "-movflags", "+faststart",
           str(tmp)]
    _ffmpeg(cmd, tmp, f"{video.vid}: a clip at {fmt_ts(start)}").replace(out)
    return out
