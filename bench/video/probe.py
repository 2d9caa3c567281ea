"""Probe a video file: duration, frame rate, display size and orientation, frame count, audio, VFR.

PyAV reads the container in-process (no ffprobe subprocess); the first frame is decoded so
that a file which opens but holds no decodable frame is rejected here, not mid-index.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from bench.errors import BadInput

log = logging.getLogger("bench")

VFR_SCAN_PACKETS = 2000
"""Packets read from the start of the stream to detect variable frame rate (about a minute
at 30 fps); the whole file is never read by :func:`probe`."""

TRUNCATION_SLACK_S = 1.0
"""How far the header's duration may exceed the span of the packets in a fully scanned file
before the file counts as truncated (container and stream ends differ by a frame or two)."""
_warned_truncated: set[tuple[str, int, int]] = set()


@dataclass(frozen=True)
class ProbeInfo:
    """What a decoder and a retriever need to know about one video file."""

    path: str
    duration_s: float
    fps: float
    """Average frame rate (frames per second over the whole stream)."""
    width: int
    """Display width in pixels, after rotation and the pixel aspect ratio are applied (a
    720x576 frame of 16:15 pixels is 768 wide)."""
    height: int
    """Display height in pixels, after rotation is applied."""
    rotation: int
    """Degrees clockwise (0, 90, 180 or 270) the decoder must turn coded frames for display."""
    n_frames: int
    """Exact when the container records it (or the stream was short enough to count), else
    ``round(duration_s * fps)``."""
    has_audio: bool
    video_codec: str
    audio_codec: str | None
    vfr: bool
    """True when frame durations vary (screen recordings, phone video, concatenations)."""
    mirrored: bool = False
    """True when the display matrix mirrors the picture: after turning by ``rotation``,
    frames are flipped left to right for display."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> ProbeInfo:
        """Inverse of :meth:`to_dict` (e.g. for a probe cached in the feature store)."""
        return cls(
            path=str(row["path"]), duration_s=float(row["duration_s"]), fps=float(row["fps"]),
            width=int(row["width"]), height=int(row["height"]), rotation=int(row["rotation"]),
            n_frames=int(row["n_frames"]), has_audio=bool(row["has_audio"]),
            video_codec=str(row["video_codec"]),
            audio_codec=None if row.get("audio_codec") is None else str(row["audio_codec"]),
            vfr=bool(row["vfr"]), mirrored=bool(row.get("mirrored", False)),
        )


def unreadable(path: Path, why: str) -> BadInput:
    """The one error for a file that is not a usable video."""
    return BadInput(f"{path}: not a readable video ({why})")


def ffmpeg_reason(exc: BaseException) -> str:
    """A short reason from a PyAV/decord exception (first line, no file path repeated)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def display_orientation(matrix: Sequence[int]) -> tuple[int, bool]:
    """(degrees clockwise 0/90/180/270, mirrored) of an FFmpeg display matrix: nine int32,
    row-major ``[a b u; c d v; x y w]``, ``a``-``d`` in 16.16 fixed point; a coded pixel
    ``(p, q)`` (y down) is shown at ``(a p + c q + x, b p + d q + y)``.

    A matrix that mirrors (negative determinant, e.g. some front-camera recordings) reads
    as: turn clockwise by the angle, then flip left to right, which is what ``ffmpeg
    -autorotate`` and players show. Angles between quarter turns round to the nearest one.
    """
    a, b, _, c, d = (int(x) for x in matrix[:5])
    mirrored = a * d - b * c < 0
    if mirrored:  # M = H R with H the left-right flip, so R = H M: its first column is (-a, b)
        a = -a
    return int(round(math.degrees(math.atan2(b, a)) / 90.0)) % 4 * 90, mirrored


def frame_orientation(frame: Any) -> tuple[int, bool]:
    """:func:`display_orientation` of a decoded PyAV frame's display matrix (none: upright)."""
    import struct

    for side in frame.side_data:
        if getattr(side.type, "name", str(side.type)).endswith("DISPLAYMATRIX"):
            raw = bytes(side)
            if len(raw) >= 36:
                return display_orientation(struct.unpack("=9i", raw[:36]))
    return 0, False


def display_width(coded_width: int, sample_aspect: Fraction | None) -> int:
    """Width players show for ``coded_width`` pixels of aspect ratio ``sample_aspect``
    (width/height of one pixel; unset, zero or absurd means square)."""
    if not sample_aspect or not 0.1 <= sample_aspect <= 10:
        return coded_width
    return max(1, round(coded_width * sample_aspect))


def _rate(value: Fraction | None) -> float:
    return float(value) if value else 0.0


def is_vfr(pts: list[int], time_base: Fraction) -> bool:
    """True when the gaps between consecutive presentation times vary by more than a tick
    and 1 % (timestamp rounding in containers makes exact equality too strict)."""
    ordered = sorted(set(pts))
    if len(ordered) < 3:
        return False
    gaps = [b - a for a, b in zip(ordered, ordered[1:], strict=False)]
    lo, hi = min(gaps), max(gaps)
    tolerance = max(1, int(0.01 * hi))
    return hi - lo > tolerance and float((hi - lo) * time_base) > 1e-3


def _extend_span(spans: dict[int, list[float]], packet: Any) -> None:
    tb = packet.time_base or Fraction(1, 1)
    start = float(packet.pts * tb)
    end = float((packet.pts + (packet.duration or 0)) * tb)
    span = spans.setdefault(packet.stream.index, [start, end])
    span[0], span[1] = min(span[0], start), max(span[1], end)


def _decodable_duration(path: Path, header_s: float, packets_s: float) -> float:
    """``header_s``, or ``packets_s`` (the longest stream's packets, every packet read) when
    the header claims clearly more: a truncated file (an interrupted download or copy) is
    indexed for what it holds, and its windows and score curves end there. Warned once per
    file and process."""
    if packets_s <= 0 or header_s - packets_s <= max(TRUNCATION_SLACK_S, 0.05 * header_s):
        return header_s
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _warned_truncated:
        _warned_truncated.add(key)
        log.warning("%s: the header says %.1f s but the file holds only %.1f s of video and audio "
                    "(truncated?); using %.1f s", path, header_s, packets_s, packets_s)
    return packets_s


def video_stream(container: Any, path: Path) -> Any:
    """The first video stream of an open PyAV container that is not cover art."""
    import av

    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise unreadable(path, "no video stream")


def probe(path: Path) -> ProbeInfo:
    """Read ``path``'s container and first frame.

    Raises :class:`~bench.errors.BadInput` ``"<path>: not a readable video (...)"`` for a
    missing, empty, truncated or non-video file, or one with no decodable frame or no
    duration.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise unreadable(path, "empty file")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise unreadable(path, ffmpeg_reason(exc)) from None
    with container:
        vs = video_stream(container, path)
        audio = container.streams.audio[0] if container.streams.audio else None
        cc = vs.codec_context
        tb = vs.time_base or Fraction(1, 1)

        pts: list[int] = []
        spans: dict[int, list[float]] = {}  # stream index -> [first start, last end] in seconds
        first = None
        scanned_all = True
        try:
            for packet in container.demux(*(s for s in (vs, audio) if s is not None)):
                if packet.size == 0:  # flush packet at end of stream
                    continue
                if packet.pts is not None and not packet.is_discard:
                    _extend_span(spans, packet)
                if packet.stream is not vs:
                    continue
                if packet.pts is not None and not packet.is_discard:  # edit-list trimmed
                    pts.append(packet.pts)
                if first is None:
                    frames = packet.decode()
                    if frames:
                        first = frames[0]
                if len(pts) >= VFR_SCAN_PACKETS and first is not None:
                    scanned_all = False
                    break
            if first is None:  # frames held back by the decoder (B-frames, threads)
                for frame in vs.codec_context.decode(None):
                    first = frame
                    break
        except av.error.FFmpegError as exc:
            if first is None:
                raise unreadable(path, ffmpeg_reason(exc)) from None
        if first is None:
            raise unreadable(path, "no decodable video frame")

        # The container's duration is what players show (it also spans an audio track
        # longer than the video); a stream's own duration is the fallback.
        duration = 0.0
        if container.duration:
            duration = container.duration / 1e6  # AV_TIME_BASE microseconds
        elif vs.duration:
            duration = float(vs.duration * tb)
        if duration <= 0 and scanned_all and len(pts) >= 2:
            duration = float((max(pts) - min(pts)) * tb)
        if not math.isfinite(duration) or duration <= 0:
            raise unreadable(path, "zero duration" + (", a still image?" if len(pts) <= 1 else ""))

        if scanned_all and spans:
            duration = _decodable_duration(path, duration, max(end - start for start, end in spans.values()))
        fps = _rate(vs.average_rate) or _rate(vs.guessed_rate)
        if scanned_all and pts:
            n_frames = len(pts)  # counted: the container's count includes trimmed frames
        elif vs.frames > 0:
            n_frames = int(vs.frames)
        else:
            n_frames = max(1, round(duration * fps))
        if fps <= 0:
            fps = n_frames / duration

        rotation, mirrored = frame_orientation(first)
        width = display_width(int(cc.width or first.width), vs.sample_aspect_ratio or cc.sample_aspect_ratio)
        height = int(cc.height or first.height)
        if rotation in (90, 270):
            width, height = height, width
        # A real frame rate (r_frame_rate) far from the average one also betrays VFR in
        # files whose irregular part starts after the scanned packets.
        base = _rate(vs.base_rate)
        vfr = is_vfr(pts, tb) or (base > 0 and abs(base - fps) > 0.01 * base and not scanned_all)
        return ProbeInfo(
            path=str(path), duration_s=duration, fps=fps, width=width, height=height,
            rotation=rotation, n_frames=n_frames, has_audio=audio is not None,
            video_codec=str(cc.name), audio_codec=None if audio is None else str(audio.codec_context.name),
            vfr=vfr, mirrored=mirrored,
        )
