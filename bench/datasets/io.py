"""Reading and writing query-set directories (``queries.jsonl``, ``videos.jsonl``, card).

Reads are strict (a bad row names file, line, field and rule); writes are atomic (a
directory is written beside the target and renamed, so nothing half-written is left).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bench.errors import BadInput
from bench.fsio import atomic_writer, directory_swap
from bench.types import Prediction, Query, QuerySet, RowError, Video


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, parsed_row)`` for each non-blank line; errors name file and line."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: file not found")
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise BadInput(
                    f"{path}:{number}: not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8"
                ) from None
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as exc:
                raise BadInput(f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno})") from None


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows atomically (temp file + rename); keys keep their order, UTF-8 unescaped."""
    with atomic_writer(Path(path), newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def load_queries(path: Path) -> list[Query]:
    return [Query.from_row(row, path, n) for n, row in read_jsonl(path)]


def load_predictions(path: Path) -> list[Prediction]:
    preds = [Prediction.from_row(row, path, n) for n, row in read_jsonl(path)]
    seen: set[Any] = set()
    for n, p in enumerate(preds, start=1):
        if p.qid in seen:
            raise RowError(f"{path}:{n}", "qid", f"duplicate qid {p.qid!r}")
        seen.add(p.qid)
    return preds


def load_query_set(directory: Path, name: str | None = None, *, check_files: bool = False) -> QuerySet:
    """Load a query-set directory. With ``check_files``, every local video path must exist."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BadInput(f"{directory}: not a query-set directory (expected queries.jsonl inside)")
    qpath = directory / "queries.jsonl"
    vpath = directory / "videos.jsonl"
    if not qpath.is_file():
        raise BadInput(f"{qpath}: file not found; a query set needs queries.jsonl")
    videos: dict[str, Video] = {}
    if vpath.is_file():
        for n, row in read_jsonl(vpath):
            video = Video.from_row(row, vpath, n)
            if video.vid in videos:
                raise RowError(f"{vpath}:{n}", "vid", f"duplicate vid {video.vid!r}")
            videos[video.vid] = video
    queries = load_queries(qpath)
    card_path = directory / "README.md"
    qs = QuerySet(name=name or directory.name, videos=videos, queries=queries, root=directory,
                  split=_read_split(directory / "meta.json"),
                  card=_read_text(card_path) if card_path.is_file() else None)
    qs.validate(qpath)
    if check_files:
        for n, video in enumerate(videos.values(), start=1):
            p = video.resolve(directory)
            if p is not None and not p.is_file():
                raise RowError(f"{vpath}:{n}", "path", f"video file not found: {p}")
    return qs


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot be read ({exc.strerror})") from None


def _read_split(meta_path: Path) -> str:
    """The ``split`` in a set's ``meta.json`` (``test`` when the file or the key is absent)."""
    if not meta_path.is_file():
        return "test"
    try:
        meta = json.loads(_read_text(meta_path))
    except json.JSONDecodeError as exc:
        raise BadInput(f"{meta_path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno}); "
                       "fix it, or delete the file (the split is then 'test')") from None
    if not isinstance(meta, dict):
        raise BadInput(f"{meta_path}: expected a JSON object like {{\"split\": \"test\"}}, "
                       f"got {type(meta).__name__}")
    split = meta.get("split", "test")
    if isinstance(split, bool) or not isinstance(split, str | int) or not str(split).strip():
        raise BadInput(f"{meta_path}: \"split\" must be a non-empty string, got {split!r}")
    return str(split)


def save_query_set(qs: QuerySet, directory: Path, *, copy_videos: bool = False) -> Path:
    """Write ``qs`` as a directory, atomically replacing ``directory`` if it exists."""
    directory = Path(directory)
    qs.validate()
    with directory_swap(directory) as tmp:
        rows = []
        for video in qs.videos.values():
            row = video.to_row()
            src = video.resolve(qs.root)
            if copy_videos and src is not None and src.is_file():
                (tmp / "videos").mkdir(exist_ok=True)
                shutil.copy2(src, tmp / "videos" / src.name)
                row["path"] = f"videos/{src.name}"
            elif src is not None and qs.root is not None and not Path(video.path or "").is_absolute():
                row["path"] = str(src.resolve())
            rows.append(row)
        write_jsonl(tmp / "videos.jsonl", rows)
        write_jsonl(tmp / "queries.jsonl", (q.to_row() for q in qs.queries))
        (tmp / "meta.json").write_text(json.dumps({"name": qs.name, "split": qs.split}) + "\n",
                                       encoding="utf-8")
        if qs.card:
            (tmp / "README.md").write_text(qs.card, encoding="utf-8")
    return directory
