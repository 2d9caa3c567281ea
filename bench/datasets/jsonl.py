"""Generic JSONL/CSV adapter with a column mapping, and the helpers every adapter shares.

Shared: locating ``<videos>/<vid>.<ext>``, probing durations, strict reading
of JSON/text files, a collector that rejects duplicate qids and conflicting durations with
the file and line, and the common finish (``--limit``, card, atomic save).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.datasets import BuildOptions
from bench.datasets.io import read_jsonl, save_query_set
from bench.errors import BadInput
from bench.types import QID, Query, QuerySet, RowError, Video

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi")
"""Video files looked for as ``<videos>/<vid><suffix>``, in this order of preference."""

# --------------------------------------------------------------------------- shared helpers


def require_input(options: BuildOptions, builder: str, what: str) -> Path:
    """``options.input`` as an existing path, or a BadInput telling how to pass it."""
    if options.input is None:
        raise BadInput(f"builder {builder!r} needs {what}: pass --input PATH")
    path = Path(options.input)
    if not path.exists():
        raise BadInput(f"{path}: not found (the --input of builder {builder!r} should be {what})")
    return path


def split_name(options: BuildOptions, path: Path) -> str:
    """The split: ``options.split`` if given, else guessed from the file name, else ``test``."""
    if "split" in options.model_fields_set:
        return options.split
    for token in re.split(r"[^a-z]+", path.name.lower()):
        if token in ("train", "val", "test"):
            return token
    return options.split


def read_text(path: Path) -> str:
    """A text file as strict UTF-8 (BOM allowed); newlines normalized to ``\\n``."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BadInput(f"{path}:{line}: not valid UTF-8 (byte {exc.start}); "
                       "re-encode the file as UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


_KEY_OBJECT = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:\s*\{')


def read_json_object(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """A JSON file holding one object, plus the line where each object-valued key starts.

    The line map lets errors in ``{vid: {...}}`` files (ActivityNet, TACoS) point at the
    video's entry; keys that occur more than once keep their first line.
    """
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}:1: expected a JSON object {{video id: {{...}}}}, "
                       f"got {type(data).__name__}")
    lines: dict[str, int] = {}
    line, last = 1, 0
    for match in _KEY_OBJECT.finditer(text):
        line += text.count("\n", last, match.start())
        last = match.start()
        try:
            key = json.loads(f'"{match.group(1)}"')
        except json.JSONDecodeError:
            continue
        lines.setdefault(key, line)
    return data, lines


def index_videos(videos_dir: Path | None) -> dict[str, Path]:
    """Map file stem -> video path for the files in ``videos_dir`` (one directory scan)."""
    if videos_dir is None:
        return {}
    videos_dir = Path(videos_dir)
    if not videos_dir.is_dir():
        raise BadInput(f"{videos_dir}: videos folder not found; pass an existing --videos DIR")
    rank = {suffix: i for i, suffix in enumerate(VIDEO_SUFFIXES)}
    found: dict[str, Path] = {}
    for entry in sorted(videos_dir.iterdir()):
        suffix = entry.suffix.lower()
        if suffix not in rank or not entry.is_file():
            continue
        prev = found.get(entry.stem)
        if prev is None or rank[suffix] < rank[prev.suffix.lower()]:
            found[entry.stem] = entry.resolve()
    return found


def probe_duration(path: Path) -> float:
    """Duration of a video file in seconds, as players show it (the container's duration).

    Delegates to :func:`bench.video.probe.probe`, the one place videos are probed, so a set's
    durations agree with what the decoders later see.
    """
    from bench.video.probe import probe

    try:
        return probe(Path(path)).duration_s
    except ModuleNotFoundError as exc:
        raise BadInput(f"reading video durations needs {exc.name!r}: pip install 'scenebench[video]', "
                       "or give durations in the annotations") from None


class SetCollector:
    """Accumulates queries and videos of one set; rejects duplicate qids and conflicting durations.

    ``videos_dir`` is scanned once; a video's path is ``<videos_dir>/<vid>.<ext>`` (or one of
    the alternative stems passed to :meth:`add_video`), absolute, else ``None``.
    """

    def __init__(self, videos_dir: Path | None = None) -> None:
        self.videos_dir = videos_dir
        self.files = index_videos(videos_dir)
        self.queries: list[Query] = []
        self.videos: dict[str, Video] = {}
        self._qid_at: dict[QID, str] = {}
        self._duration_at: dict[str, str] = {}
        self._probed: dict[str, float] = {}

    def video_file(self, vid: str, alternatives: Iterable[str] = ()) -> Path | None:
        for stem in (vid, *alternatives):
            if stem in self.files:
                return self.files[stem]
        return None

    def probed_duration(self, vid: str, alternatives: Iterable[str] = ()) -> float | None:
        """Probed duration of the video file of ``vid`` (cached), or ``None`` if there is no file."""
        if vid not in self._probed:
            file = self.video_file(vid, alternatives)
            if file is None:
                return None
            self._probed[vid] = probe_duration(file)
        return self._probed[vid]

    def add_query(self, query: Query, where: str) -> None:
        first = self._qid_at.get(query.qid)
        if first is not None:
            raise RowError(where, "qid", f"duplicate qid {query.qid!r} (first at {first}); "
                                         "make qids unique")
        self._qid_at[query.qid] = where
        self.queries.append(query)

    def add_video(self, vid: str, duration: float | None, where: str, *,
                  alternatives: Iterable[str] = (), subtitles: str | None = None,
                  lang: str | None = None, path: Path | None = None) -> None:
        """Record a video; the same vid seen again must agree on its duration."""
        prev = self.videos.get(vid)
        if prev is not None:
            if duration is not None and prev.duration is not None and abs(prev.duration - duration) > 1e-6:
                raise RowError(where, "duration",
                               f"{duration:g}s for vid {vid!r}, but {prev.duration:g}s at "
                               f"{self._duration_at[vid]}; use one duration per video")
            if prev.duration is None and duration is not None:
                self.videos[vid] = Video(vid, prev.path, duration, prev.subtitles, prev.lang)
                self._duration_at[vid] = where
            return
        file = path if path is not None else self.video_file(vid, alternatives)
        self.videos[vid] = Video(vid=vid, path=None if file is None else str(file),
                                 duration=duration, subtitles=subtitles, lang=lang)
        self._duration_at[vid] = where

    def query_set(self, name: str, split: str, *, limit: int | None = None,
                  card: str | None = None) -> QuerySet:
        """The collected set; ``limit`` keeps the first N queries (file order) and their videos."""
        queries = self.queries if limit is None else self.queries[:limit]
        videos = self.videos
        if limit is not None:
            used = {q.vid if q.vid is not None else q.extra.get("truth_vid") for q in queries}
            videos = {vid: v for vid, v in self.videos.items() if vid in used}
        if self.videos_dir is not None:
            missing = sum(1 for v in videos.values() if v.path is None)
            if missing:
                log.warning("%d of %d videos not found in %s; their path is left empty",
                            missing, len(videos), self.videos_dir)
        return QuerySet(name=name, videos=dict(videos), queries=list(queries), split=split, card=card)


def make_card(title: str, source: Path, qs: QuerySet, about: str) -> str:
    """A short README.md card: what the set is, where it came from, what it holds."""
    corpus = sum(1 for q in qs.queries if q.is_corpus)
    kind = "corpus (video + time)" if corpus == len(qs.queries) and corpus else "grounding (known video)"
    return (f"# {title} ({qs.split})\n\n{about}\n\n"
            f"- converted from: `{source.name}`\n"
            f"- queries: {len(qs.queries)}, videos: {len(qs.videos)}, task: {kind}\n"
            "- times are seconds; windows are clipped to each video's duration where known\n")


def finish(collector: SetCollector, out: Path, options: BuildOptions, *, source: Path,
           title: str, about: str, split: str | None = None) -> QuerySet:
    """Apply ``options.limit``, attach a card, save to ``out`` atomically, return the set.

    The split is ``split`` if given, else :func:`split_name` of ``options`` and ``source``.
    """
    qs = collector.query_set(Path(out).name, split or split_name(options, source), limit=options.limit)
    if not qs.queries:
        raise BadInput(f"{source}: no queries found; check that this is the right file")
    qs.card = make_card(title, source, qs, about)
    save_query_set(qs, Path(out))
    return qs


# --------------------------------------------------------------------------- generic JSONL/CSV

FIELDS: dict[str, str] = {
    "qid": "qid", "query": "query", "vid": "vid", "duration": "duration",
    "start": "start", "end": "end", "windows": "relevant_windows", "lang": "lang",
    "tags": "tags", "query_image": "query_image", "video_path": "video_path",
    "truth_vid": "truth_vid", "relevant_clip_ids": "relevant_clip_ids",
    "saliency_scores": "saliency_scores",
}
"""Canonical field -> the input column used when ``columns`` does not map it."""

_CANONICAL_ROW = {"qid", "query", "vid", "duration", "relevant_windows", "lang", "tags",
                  "query_image", "relevant_clip_ids", "saliency_scores", "truth_vid"}


def _check_columns(columns: Mapping[str, str]) -> dict[str, str]:
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise BadInput(f"unknown field(s) in the column mapping: {', '.join(unknown)}; "
                       f"map any of {', '.join(FIELDS)} with --map FIELD=COLUMN")
    if ("start" in columns) != ("end" in columns):
        raise BadInput("the column mapping names only one of start/end; map both, or map 'windows'")
    return {**FIELDS, **columns}


def _number(value: Any, where: str, column: str) -> float:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise RowError(where, column, f"must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RowError(where, column, f"must be a number, got {value!r}")
    return float(value)


def _json_cell(value: Any, where: str, column: str) -> Any:
    """CSV cells hold nested values (windows, tags) as JSON text."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise RowError(where, column, f"must be JSON (e.g. [[0.5, 3.0]]), got {value!r}") from None


def convert_rows(rows: Iterable[tuple[int, Any]], source: Path, columns: Mapping[str, str], *,
                 videos: Path | None = None, explicit: Iterable[str] = (),
                 collector: SetCollector | None = None) -> SetCollector:
    """Turn input rows into canonical queries (see :data:`FIELDS` for the mapping).

    ``rows`` are ``(line_number, mapping)``. Columns named in ``explicit`` (the user's
    mapping) must be present on every row; others are used when present. A row needs a
    query, a vid (or ``truth_vid`` for a corpus query) and either start/end or windows; with
    no qid column the qid is the row's 1-based ordinal.
    Durations missing from the rows are probed from the video files when ``videos`` is given.
    """
    cols = dict(columns)
    required = set(explicit)
    collector = collector or SetCollector(videos)
    for ordinal, (line, row) in enumerate(rows, start=1):
        where = f"{source}:{line}"
        if not isinstance(row, Mapping):
            raise RowError(where, None, f"must be a JSON object, got {type(row).__name__}")

        def cell(field: str, row: Mapping[str, Any] = row, where: str = where) -> Any:
            column = cols[field]
            value = row.get(column)
            if value is None or value == "":
                if field in required:
                    raise RowError(where, column, f"is missing (mapped to {field!r}); "
                                                  "fix the row or the column mapping")
                return None
            return value

        query_text = cell("query")
        if query_text is None:
            raise RowError(where, cols["query"],
                           "is missing; map the query text with --map query=COLUMN")
        vid, truth_vid = cell("vid"), cell("truth_vid")
        if vid is None and truth_vid is None:
            raise RowError(where, cols["vid"], "is missing; map the video id with --map vid=COLUMN "
                                               "(or --map truth_vid=COLUMN for corpus queries)")
        vid_s = str(vid) if vid is not None else None
        truth_s = str(truth_vid) if truth_vid is not None else None
        key = vid_s or truth_s
        assert key is not None
        duration_value = cell("duration")
        duration = None if duration_value is None else _number(duration_value, where, cols["duration"])
        video_path_value = cell("video_path")
        video_file = None
        if video_path_value is not None:
            video_file = Path(str(video_path_value))
            if not video_file.is_absolute():
                video_file = (source.parent / video_file).resolve()
        if duration is None:
            duration = (probe_duration(video_file) if video_file is not None and video_file.is_file()
                        else collector.probed_duration(key))
        start, end, windows = cell("start"), cell("end"), cell("windows")
        if start is not None or end is not None or "start" in required:
            if start is None or end is None:
                missing = cols["start"] if start is None else cols["end"]
                raise RowError(where, missing, "is missing; a window needs both start and end")
            s = _number(start, where, cols["start"])
            e = _number(end, where, cols["end"])
            if e <= s:
                raise RowError(where, f"{cols['start']}/{cols['end']}",
                               f"end <= start ({s:g} >= {e:g}); fix or drop the row")
            windows = [[s, e]]
        elif windows is not None:
            windows = _json_cell(windows, where, cols["windows"])
        else:
            raise RowError(where, None, f"no time window: --map start=COL --map end=COL, or "
                                        f"--map windows=COL (now {cols['start']!r}/{cols['end']!r}/"
                                        f"{cols['windows']!r})")
        canonical: dict[str, Any] = {
            "qid": cell("qid") if cell("qid") is not None else ordinal,
            "query": str(query_text), "vid": vid_s, "duration": duration, "relevant_windows": windows,
        }
        for field in ("lang", "query_image"):
            value = cell(field)
            if value is not None:
                canonical[field] = str(value)
        tags = cell("tags")
        if tags is not None:
            canonical["tags"] = (_json_cell(tags, where, cols["tags"]) if str(tags).startswith("[")
                                 else [t.strip() for t in str(tags).split(",") if t.strip()])
        for field in ("relevant_clip_ids", "saliency_scores"):
            value = cell(field)
            if value is not None:
                canonical[field] = _json_cell(value, where, cols[field])
        if vid_s is None:
            canonical["truth_vid"] = truth_s
        used = {cols[f] for f in FIELDS}
        for column, value in row.items():
            if column not in used and column not in _CANONICAL_ROW and value not in (None, ""):
                canonical[column] = value
        qid = canonical["qid"]
        if isinstance(qid, str) and qid.strip().lstrip("-").isdigit() and source.suffix.lower() == ".csv":
            canonical["qid"] = int(qid)  # CSV cells are text; "17" is the integer qid 17
        try:
            query = Query.from_row(canonical, source, line)
        except RowError as exc:
            window_column = cols["start"] if start is not None else cols["windows"]
            raise _renamed(exc, cols, window_column) from None
        collector.add_query(query, where)
        collector.add_video(key, query.duration, where, path=video_file)
    return collector


def _renamed(exc: RowError, cols: Mapping[str, str], window_column: str) -> RowError:
    """Re-name a canonical field in an error after the user's input column."""
    name = exc.field_name or ""
    renames = {field: cols[field] for field in FIELDS if field not in ("start", "end", "windows")}
    renames["relevant_windows"] = window_column
    for field, column in renames.items():
        if name == field or name.startswith(f"{field}["):
            return RowError(exc.where, column + name[len(field):], exc.rule)
    return exc


def read_csv(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)`` of a UTF-8 CSV file with a header line."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    if not reader.fieldnames:
        raise BadInput(f"{path}:1: no header line; the first line must name the columns")
    for row in reader:
        if None in row:
            raise BadInput(f"{path}:{reader.line_num}: more cells than header columns; "
                           "quote cells that contain commas")
        yield reader.line_num, row


def _collect(path: Path, kind: str, columns: Mapping[str, str], videos: Path | None) -> SetCollector:
    cols = _check_columns(columns)
    if not path.is_file():
        raise BadInput(f"{path}: file not found")
    rows: Iterable[tuple[int, Any]]
    if kind == "csv":
        header = next(csv.reader(io.StringIO(read_text(path), newline="")), [])
        absent = [f"{field}={column}" for field, column in columns.items() if column not in header]
        if absent:
            raise BadInput(f"{path}:1: mapped column(s) not in the header: {', '.join(absent)}; "
                           f"the header has: {', '.join(header)}")
        rows = read_csv(path)
    else:
        rows = read_jsonl(path)
    return convert_rows(rows, path, cols, videos=videos, explicit=columns)


def parse_jsonl(path: Path, columns: Mapping[str, str] | None = None, *,
                videos: Path | None = None, name: str | None = None, split: str = "test") -> QuerySet:
    """Convert a JSONL file with a column mapping into a QuerySet (nothing written)."""
    path = Path(path)
    return _collect(path, "jsonl", columns or {}, videos).query_set(name or path.stem, split)


def parse_csv(path: Path, columns: Mapping[str, str] | None = None, *,
              videos: Path | None = None, name: str | None = None, split: str = "test") -> QuerySet:
    """Convert a CSV file (header line, UTF-8) with a column mapping into a QuerySet."""
    path = Path(path)
    return _collect(path, "csv", columns or {}, videos).query_set(name or path.stem, split)


def _build(out: Path, options: BuildOptions, kind: str) -> QuerySet:
    path = require_input(options, kind, f"a .{kind} file of labelled queries")
    collector = _collect(path, kind, options.columns, options.videos)
    mapping = json.dumps(options.columns) if options.columns else "(identity)"
    return finish(collector, out, options, source=path, title=f"{path.stem} ({kind.upper()} import)",
                  about=f"Labelled queries imported from a {kind.upper()} file with the column "
                        f"mapping {mapping}.")


def build_jsonl(out: Path, options: BuildOptions) -> QuerySet:
    """Builder ``jsonl``: ``options.input`` JSONL + ``options.columns`` -> query set at ``out``."""
    return _build(out, options, "jsonl")


def build_csv(out: Path, options: BuildOptions) -> QuerySet:
    """Builder ``csv``: ``options.input`` CSV + ``options.columns`` -> query set at ``out``."""
    return _build(out, options, "csv")
