"""What the Gradio Space does, as plain library functions (the UI in ``demo/app.py`` is thin).

Uploads are validated and copied into a per-session folder; retrievers come from the
process's :class:`~bench.workspace.Workspace` (built once, shared between sessions behind a
lock per retriever); every search goes through the same
:class:`~bench.retrievers.base.Retriever` protocol as the benchmark runner; the
leaderboard and benchmark browser read the runner's result files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import BadInput, BenchError, Unavailable
from bench.types import Moment, Query, QueryInput, QuerySet, Video

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bench.eval.results import ResultFile
    from bench.workspace import Workspace

log = logging.getLogger("bench")

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
MAX_UPLOAD_SECONDS = 15 * 60.0
MAX_UPLOADS_PER_SESSION = 5
MAX_QUERY_CHARS = 500
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")
DEFAULT_RETRIEVER = "bm25-text"
DEFAULT_DATASET = "synthetic-v1"
DATASET_ENV = "SCENEBENCH_DEMO_DATASET"
SESSIONS_ENV = "SCENEBENCH_SESSIONS_DIR"
FFMPEG_TIMEOUT_S = 120


def fmt_ts(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` past an hour); negative times read as ``00:00``."""
    total = max(0, int(round(seconds)))
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def fmt_window(start: float, end: float) -> str:
    return f"{fmt_ts(start)}-{fmt_ts(end)}"


def demo_dataset() -> str:
    """The embedded set the Space searches: ``$SCENEBENCH_DEMO_DATASET`` or synthetic-v1."""
    return os.environ.get(DATASET_ENV) or DEFAULT_DATASET


# --- uploads and sessions ----------------------------------------------------------------

def safe_name(name: str, max_chars: int = 120) -> str:
    """A file name that cannot leave its folder: no separators, no leading dots, no control
    or shell-special characters; letters of any script are kept. The suffix survives the
    length cut so a long name is still recognised as a video."""
    base = unicodedata.normalize("NFKC", name).replace("\\", "/").rsplit("/", 1)[-1]
    base = re.sub(r"[^\w.\-]+", "_", base).strip("._-")
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    suffix = suffix[:10]
    stem = stem.strip("._-")[: max_chars - len(suffix) - 1] or "upload"
    return f"{stem}.{suffix}" if suffix else stem


def sessions_root() -> Path:
    """Where session folders live: ``$SCENEBENCH_SESSIONS_DIR`` or ``<tmp>/scenebench-sessions``."""
    env = os.environ.get(SESSIONS_ENV)
    return Path(env) if env else Path(tempfile.gettempdir()) / "scenebench-sessions"


def session_dir(base: Path, key: str) -> Path:
    """The folder of session ``key`` (a browser session id) under ``base``.

    ``key`` comes from the client: anything but 1-64 letters, digits, ``_`` or ``-`` is
    refused rather than cleaned, so two keys can never share a folder.
    """
    if not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", key):
        raise BadInput(f"refused session id {key[:80]!r}")
    path = (base / key).resolve()
    if path.parent != base.resolve():
        raise BadInput(f"refused session id {key[:80]!r}")
    return path


def remove_session(base: Path, key: str) -> bool:
    """Delete session ``key``'s folder; True when there was one."""
    try:
        path = session_dir(base, key)
    except BadInput:
        return False
    existed = path.is_dir()
    shutil.rmtree(path, ignore_errors=True)
    return existed


@dataclass
class Session:
    """Per-browser-session state (held in ``gr.State``): its private folder and uploads."""

    root: Path
    uploads: dict[str, Video] = field(default_factory=dict)

    @classmethod
    def open(cls, base: Path, key: str | None = None) -> Session:
        """The folder is named after the browser session id when there is one, so the
        unload handler can find and delete it; otherwise it is a fresh temp folder."""
        base.mkdir(parents=True, exist_ok=True)
        if key:
            root = session_dir(base, key)
            root.mkdir(exist_ok=True)
        else:
            root = Path(tempfile.mkdtemp(prefix="s-", dir=base))
        return cls(root=root)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = MAX_UPLOAD_BYTES
    max_seconds: float = MAX_UPLOAD_SECONDS
    max_files: int = MAX_UPLOADS_PER_SESSION

    def describe(self) -> str:
        return (f"up to {self.max_files} videos of at most {self.max_bytes // 2**20} MiB and "
                f"{fmt_ts(self.max_seconds)} each ({', '.join(VIDEO_SUFFIXES)})")


def accept_upload(session: Session, src: Path, original_name: str | None = None, *,
                  reserved: Sequence[str] = (), limits: UploadLimits = UploadLimits()) -> Video:  # noqa: B008 (frozen, immutable default)
    """Validate an uploaded file and copy it into ``session.root/uploads``; return it as a Video.

    Refuses a non-video, an oversized or overlong file, or one upload too many with a
    one-line reason, before anything is written. The stored name is derived from a
    sanitized name, so nothing is ever written outside the session folder. ``reserved``
    holds vids already in use (the embedded set's), which an upload must not shadow.
    """
    from bench.video import probe

    src = Path(src)
    name = safe_name(original_name or src.name)
    shown = (original_name or src.name)[:80]
    suffix = Path(name).suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise BadInput(f"{shown}: not a video file; upload one of {', '.join(VIDEO_SUFFIXES)}")
    if not src.is_file():
        raise BadInput(f"{shown}: the upload did not arrive; try again")
    size = src.stat().st_size
    if size > limits.max_bytes:
        raise BadInput(f"{shown}: {size / 2**20:.0f} MiB is over the "
                       f"{limits.max_bytes // 2**20} MiB limit")
    if len(session.uploads) >= limits.max_files:
        raise BadInput(f"{shown}: this session already has {limits.max_files} uploads, the limit")
    try:
        info = probe(src)
    except BadInput:
        raise BadInput(f"{shown}: not a readable video; upload an mp4, webm or mkv file") from None
    except Exception as exc:  # a decoder crash on hostile input is still just a bad file
        log.warning("probe failed on an upload: %s: %s", type(exc).__name__, exc)
        raise BadInput(f"{shown}: not a readable video; upload an mp4, webm or mkv file") from None
    if info.duration_s > limits.max_seconds:
        raise BadInput(f"{shown}: {fmt_ts(info.duration_s)} is longer than the "
                       f"{fmt_ts(limits.max_seconds)} limit")
    stem = Path(name).stem
    taken = set(reserved) | set(session.uploads)
    vid, n = stem, 2
    while vid in taken:
        vid, n = f"{stem}-{n}", n + 1
    dest_dir = (session.root / "uploads").resolve()
    dest = (dest_dir / f"{vid}{suffix}").resolve()
    if dest.parent != dest_dir:  # unreachable after safe_name; kept as the last line of defence
        raise BadInput(f"{shown}: refused file name")
    dest_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    video = Video(vid=vid, path=str(dest), duration=info.duration_s)
    session.uploads[vid] = video
    return video


def check_query(text: str | None, image: str | None = None) -> QueryInput:
    """Trim and bound the query. An empty one raises BadInput with a friendly prompt."""
    clean = "".join(ch for ch in (text or "") if ch.isprintable() or ch == " ")
    clean = " ".join(clean.split())
    if not clean and not image:
        raise BadInput("Type what you are looking for (any language), or give an example image.")
    return QueryInput(text=clean[:MAX_QUERY_CHARS] or None, image=image or None)


# --- search ------------------------------------------------------------------------------

@dataclass
class SearchOutcome:
    """One retriever's answer: moments, search latency (indexing excluded) or the reason."""

    retriever: str
    moments: list[Moment]
    latency_s: float
    error: str | None = None
    unavailable: bool = False


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def search(workspace: Workspace, retriever: str, videos: Sequence[Video], query: QueryInput, *,
           top_k: int = 5, corpus: Sequence[Video] = ()) -> SearchOutcome:
    """Search ``videos`` with ``retriever``; its index holds ``corpus`` plus ``videos``.

    Keeping the embedded set in ``corpus`` keeps corpus statistics (BM25 IDF, score
    normalisation) the same as in the benchmark whichever videos are picked. Errors come
    back as a one-line message in the outcome, never as an exception or a traceback.
    """
    if not videos:
        raise BadInput("Choose at least one video from the embedded set, or upload one.")
    merged = {v.vid: v for v in corpus}
    merged.update({v.vid: v for v in videos})
    t0 = time.perf_counter()
    try:
        results, took = workspace.search(retriever, list(merged.values()), [query], top_k=top_k,
                                         vids=[v.vid for v in videos])
    except Unavailable as exc:
        return SearchOutcome(retriever, [], 0.0, f"unavailable: {one_line(exc)}", unavailable=True)
    except BenchError as exc:
        return SearchOutcome(retriever, [], time.perf_counter() - t0, one_line(exc))
    except Exception as exc:  # a crashing method must not take the page down; log the trace
        log.exception("%s failed on a demo query", retriever)
        return SearchOutcome(retriever, [], time.perf_counter() - t0,
                             f"failed: {type(exc).__name__}: {one_line(exc)}")
    wanted = {v.vid for v in videos}
    moments = sorted((m for m in results[0] if m.vid in wanted), key=lambda m: -m.score)[:top_k]
    return SearchOutcome(retriever, moments, took)


# --- media ---------------------------------------------------------------------------------

def _ffmpeg(cmd: list[str], out: Path, what: str) -> Path:
    try:
        subprocess.run(cmd, check=False, capture_output=True, timeout=FFMPEG_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
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
    tmp = out.with_name(f".{out.name}")
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
    tmp = Path(tempfile.mkdtemp(prefix=".sheet-", dir=root))
    try:
        # The auto decoder hands over to PyAV where decord fails (e.g. sizes it cannot scale to).
        for batch in sample_frames(Path(str(video.path)), fps, short_side=short_side):
            for frame, t in zip(batch.frames, batch.times_s.tolist(), strict=True):
                Image.fromarray(frame).save(tmp / f"{int(round(t * 1000)):09d}.jpg", quality=85)
        (tmp / SHEET_DONE).write_text(f"{video.vid}\n", encoding="utf-8")
        try:
            tmp.rename(out)
        except OSError:  # another process finished the same sheet first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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
    tmp = out.with_name(f".{out.stem}.tmp.mp4")
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", f"{start:.2f}", "-i", video.path,
           "-t", f"{max(0.5, stop - start):.2f}", "-map", "0:v:0", "-map", "0:a:0?",
           "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
           "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-c:a", "aac", "-movflags", "+faststart",
           str(tmp)]
    _ffmpeg(cmd, tmp, f"{video.vid}: a clip at {fmt_ts(start)}").replace(out)
    return out


# --- evidence, IoU and plots --------------------------------------------------------------

_TEXT_KEYS = ("text", "description", "snippet", "caption", "reason")
_TIME_KEYS = ("start", "time", "t", "start_s")
_WINDOW_KEYS = ("window", "span", "range")


def _is_window(key: str, value: Any) -> bool:
    """``[start, end]`` under a window-like key (a bare pair of numbers may be two frame times)."""
    return (any(w in key for w in _WINDOW_KEYS) and isinstance(value, list | tuple)
            and len(value) == 2 and all(isinstance(x, int | float) for x in value))


def _item(value: Any) -> str:
    if isinstance(value, Mapping):
        text = next((_scalar(value[k]) for k in _TEXT_KEYS if value.get(k)), "")
        t = next((value[k] for k in _TIME_KEYS if isinstance(value.get(k), int | float)), None)
        src = value.get("source")
        stamp = " ".join(x for x in (fmt_ts(float(t)) if t is not None else "", str(src or "")) if x)
        head = f"[{stamp}]" if stamp else ""
        if not text:
            text = ", ".join(f"{k}={_scalar(v)}" for k, v in value.items()
                             if isinstance(v, str | int | float) and k not in _TIME_KEYS)
        return f"{head} {text}".strip() if head else text
    return _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3g}"
    return " ".join(str(value).split())


_QUIET_KEYS = frozenset({"method", "model", "fusion", "rank", "timestamp"})
"""Evidence keys that say which code ran, not why the moment matched."""


def describe_evidence(evidence: Mapping[str, Any], limit: int = 240, per_list: int = 3) -> str:
    """One readable line of why a moment matched: text snippets with their times, matched
    frame times, an LLM's description, and for a fusion the members that agreed (with the
    best-ranked member's own evidence)."""
    parts = []
    members = evidence.get("members")
    if isinstance(members, Mapping) and members:
        ranked = sorted(members.items(), key=lambda kv: _rank_of(kv[1]))
        parts.append("agreed: " + ", ".join(
            f"{name} #{_rank_of(m)}" if _rank_of(m) < 10**6 else name for name, m in ranked))
        for _, m in ranked:
            inner = m.get("evidence") if isinstance(m, Mapping) else None
            if isinstance(inner, Mapping) and (text := describe_evidence(inner, limit, per_list)):
                parts.append(text)
                break
    for key, value in evidence.items():
        if key in _QUIET_KEYS or key == "members":
            continue
        if value is None or value == "" or value == [] or value == {}:
            continue
        label = key.replace("_", " ")
        if _is_window(key, value):
            parts.append(f"{label}: {fmt_window(float(value[0]), float(value[1]))}")
        elif isinstance(value, list | tuple):
            shown = [_item(v) for v in value[:per_list]]
            sep = "; " if any(isinstance(v, Mapping) for v in value) else ", "
            more = f" (+{len(value) - per_list})" if len(value) > per_list else ""
            parts.append(f"{label}: " + sep.join(x for x in shown if x) + more)
        elif isinstance(value, Mapping):
            inner_text = ", ".join(f"{k} {_scalar(v)}" if isinstance(v, int | float | str) else str(k)
                                   for k, v in list(value.items())[:4])
            parts.append(f"{label}: {inner_text}")
        else:
            parts.append(f"{label}: {_item(value)}")
    text = " · ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rank_of(member: Any) -> int:
    rank = member.get("rank") if isinstance(member, Mapping) else None
    return int(rank) if isinstance(rank, int | float) and not isinstance(rank, bool) else 10**6


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Temporal IoU of two ``(start, end)`` windows in seconds."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def best_iou(window: tuple[float, float], truth: Sequence[tuple[float, float]]) -> float:
    """The window's IoU with the ground-truth window it overlaps most (0 without truth)."""
    return max((iou(window, (float(s), float(e))) for s, e in truth), default=0.0)


def _figure(width_in: float, height_in: float) -> Figure:
    # A bare Figure (no pyplot) keeps plotting thread-safe and leaves nothing registered.
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def timeline_figure(rows: Sequence[tuple[str, Sequence[Moment]]], duration: float,
                    truth: Sequence[tuple[float, float]] = (), title: str = "") -> Figure:
    """Each method's windows on one shared time axis; opacity is the score relative to that
    method's best, so methods on different score scales can share the plot. Truth in green."""
    n = len(rows) + (1 if truth else 0)
    fig = _figure(9.0, 0.9 + 0.42 * max(1, n))
    ax = fig.add_subplot()
    labels: list[str] = []
    if truth:
        ax.broken_barh([(s, e - s) for s, e in truth], (len(labels) - 0.35, 0.7),
                       color="tab:green")
        labels.append("ground truth")
    for name, moments in rows:
        y = len(labels)
        top = max((m.score for m in moments), default=0.0)
        low = min((m.score for m in moments), default=0.0)
        for rank, m in enumerate(sorted(moments, key=lambda m: m.score)):
            rel = (m.score - low) / (top - low) if top > low else 1.0
            ax.broken_barh([(m.start, max(m.end - m.start, 0.05))], (y - 0.35, 0.7),
                           color="tab:blue", alpha=0.2 + 0.7 * rel,
                           edgecolor="black" if rank == len(moments) - 1 else "none")
        labels.append(name)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlim(0, max(duration, 1.0))
    ax.set_xlabel("time (s)")
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def score_timeline(moments: Sequence[Moment], durations: Mapping[str, float | None],
                   max_videos: int = 6) -> Figure | None:
    """One small score-over-time panel per video that has moments (best video first):
    each moment is a bar spanning its window, as tall as its score."""
    by_vid: dict[str, list[Moment]] = {}
    for m in sorted(moments, key=lambda m: -m.score):
        by_vid.setdefault(m.vid, []).append(m)
    if not by_vid:
        return None
    vids = list(by_vid)[:max_videos]
    fig = _figure(9.0, 0.7 + 1.3 * len(vids))
    fig.suptitle("Score over time (each bar is a moment: its window and score)", fontsize=9)
    axes = fig.subplots(len(vids), 1, squeeze=False)[:, 0]
    scores = [m.score for m in moments]
    low = min(0.0, min(scores))
    high = max(scores) if max(scores) > low else low + 1.0
    for ax, vid in zip(axes, vids, strict=True):
        ms = by_vid[vid]
        duration = durations.get(vid) or max(m.end for m in ms)
        ax.bar([m.start for m in ms], [m.score - low for m in ms], bottom=low,
               width=[max(m.end - m.start, 0.05) for m in ms], align="edge",
               color="tab:blue", alpha=0.75)
        best = ms[0]
        ax.annotate(fmt_window(best.start, best.end), (best.start, best.score), fontsize=7,
                    xytext=(2, -9), textcoords="offset points")
        ax.set_xlim(0, max(duration, 1.0))
        ax.set_ylim(low, high + 0.08 * (high - low))
        ax.set_ylabel("score", fontsize=7)
        ax.set_title(vid, fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("time (s)", fontsize=8)
    return fig


# --- the embedded set, the leaderboard and the benchmark browser ---------------------------

def embedded_videos(qs: QuerySet) -> dict[str, Video]:
    """The set's videos that have a local file, with absolute paths."""
    out = {}
    for vid, v in qs.videos.items():
        p = v.resolve(qs.root)
        if p is not None and p.is_file():
            out[vid] = Video(vid=vid, path=str(p.resolve()), duration=v.duration, lang=v.lang)
    return out


def query_label(q: Query) -> str:
    return f"{q.qid} · {' '.join(q.query.split())[:90]}"


def label_qid(label: str) -> str:
    return label.split(" · ", 1)[0]


def find_query(qs: QuerySet, label: str) -> Query:
    qid = label_qid(label)
    for q in qs.queries:
        if str(q.qid) == qid:
            return q
    raise BadInput(f"unknown benchmark query {qid!r}")


def group_label(dataset: str, split: str) -> str:
    return f"{dataset} · {split}"


def parse_group_label(label: str) -> tuple[str, str]:
    dataset, _, split = label.partition(" · ")
    if not split:
        raise BadInput(f"not a 'dataset · split' choice: {label!r}")
    return dataset, split


def fmt_metric(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{float(v):.{digits}f}"


LEADERBOARD_METRICS = ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "mIoU")


def leaderboard_table(rows: Sequence[ResultFile], tag: str = "all", lang: str = "all",
                      ) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of one dataset's leaderboard, metrics restricted to a tag and/or a
    language (``all`` for none); rows keep the report's order and ranks."""
    from bench.eval import report

    if not rows:
        return [], []
    main = report.main_score(rows[0])
    cols = [main, *[c for c in LEADERBOARD_METRICS if c != main]]
    if rows[0].mode == "corpus":
        cols = [main, *[c for c in report.CORPUS_COLUMNS if c != main]]
    headers = ["#", "retriever", "family", *cols, "queries", "p50 ms", "note"]
    data: list[list[Any]] = []
    for flat, r in zip(report.leaderboard_rows(rows), rows, strict=True):
        metrics: Mapping[str, float] = r.metrics
        if tag != "all":
            metrics = r.metrics_by_tag.get(tag, {})
        if lang != "all":
            metrics = r.metrics_by_lang.get(lang, {}) if tag == "all" else {}
        n = metrics.get("n_queries", r.n_queries if tag == lang == "all" else None)
        data.append([flat["rank"] or "–", r.retriever, r.family,
                     *[fmt_metric(metrics.get(c)) for c in cols],
                     "–" if n is None else int(n), fmt_metric(flat["p50_ms"], 1), flat["note"]])
    return headers, data


def predictions_path(results_dir: Path, result: ResultFile) -> Path:
    from bench.eval.results import result_path

    return result_path(results_dir, result).with_name(f"{result.split_key}.predictions.jsonl")


def load_predictions(results_dir: Path, results: Sequence[ResultFile], dataset: str,
                     split: str = "test") -> dict[str, dict[str, list[list[float]]]]:
    """retriever -> qid -> predicted windows ``[[start, end, score], ...]`` (best first), from
    the ``*.predictions.jsonl`` files beside the grounding results of ``dataset``."""
    out: dict[str, dict[str, list[list[float]]]] = {}
    for r in results:
        if r.dataset != dataset or r.split_key != split or r.status != "ok":
            continue
        path = predictions_path(results_dir, r)
        if not path.is_file():
            continue
        by_qid: dict[str, list[list[float]]] = {}
        with path.open(encoding="utf-8") as fh:
            for i, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    windows = [[float(w[0]), float(w[1]), float(w[2])]
                               for w in row.get("pred_relevant_windows") or []]
                    by_qid[str(row["qid"])] = windows
                except (ValueError, KeyError, TypeError, IndexError) as exc:
                    log.warning("%s:%d: skipped unreadable prediction (%s)", path, i, exc)
        out[r.retriever] = by_qid
    return out


def disagreement(q: Query, preds: Mapping[str, Mapping[str, list[list[float]]]]) -> float:
    """How much the methods disagree on ``q``: the spread (max - min) of their top-1 IoUs;
    a method with no prediction for ``q`` counts as IoU 0."""
    ious = []
    for by_qid in preds.values():
        windows = by_qid.get(str(q.qid)) or []
        ious.append(best_iou((windows[0][0], windows[0][1]), q.relevant_windows) if windows else 0.0)
    return max(ious) - min(ious) if len(ious) > 1 else 0.0


def browser_queries(qs: QuerySet, preds: Mapping[str, Mapping[str, list[list[float]]]],
                    sort: str = "disagreement") -> list[tuple[str, float]]:
    """(label, disagreement) of the set's grounding queries, most disputed first or by qid."""
    items = [(query_label(q), disagreement(q, preds), str(q.qid))
             for q in qs.queries if q.vid is not None]
    if sort == "disagreement":
        items.sort(key=lambda t: (-t[1], _natural(t[2])))
    else:
        items.sort(key=lambda t: _natural(t[2]))
    return [(label, d) for label, d, _ in items]


def _natural(text: str) -> list[Any]:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text) if p]


def prediction_rows(q: Query, preds: Mapping[str, Mapping[str, list[list[float]]]],
                    top_k: int = 5) -> list[tuple[str, list[Moment]]]:
    """(method, its top-k moments for ``q``) for every method with results, sorted by name."""
    out = []
    for name, by_qid in sorted(preds.items()):
        windows = by_qid.get(str(q.qid)) or []
        out.append((name, [Moment(q.vid or "", w[0], w[1], w[2]) for w in windows[:top_k]]))
    return out
