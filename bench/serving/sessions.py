"""Per-browser-session folders, validated uploads copied into them, and query checks.

Nothing a client sends can write outside its session folder or name another session's.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BadInput
from bench.evidence import fmt_ts
from bench.types import QueryInput, Video
from bench.workspace import unique_vid

log = logging.getLogger("bench")

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
MAX_UPLOAD_SECONDS = 15 * 60.0
MAX_UPLOADS_PER_SESSION = 5
MAX_QUERY_CHARS = 500
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")
SESSIONS_ENV = "SCENEBENCH_SESSIONS_DIR"


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
    vid = unique_vid(Path(name).stem, set(reserved) | set(session.uploads))
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
