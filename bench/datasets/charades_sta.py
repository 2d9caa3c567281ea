"""Charades-STA adapter: the original ``charades_sta_{train,test}.txt`` and the jsonl release.

Text lines are ``VIDEO_ID START END##sentence``; qids become ``<vid>#<i>`` (i-th sentence of
that video in file order). Durations come from the Charades csv (``id``, ``length``
columns), else from probing the video, else stay unknown and windows are kept unclipped.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path

from bench.datasets import BuildOptions
from bench.datasets.jsonl import SetCollector, finish, read_text, require_input
from bench.datasets.qvhighlights import collect as collect_jsonl
from bench.errors import BadInput
from bench.types import Query, QuerySet, RowError, parse_windows

ABOUT = ("Charades-STA (Gao et al., ICCV 2017): sentence-level temporal grounding on indoor "
         "Charades videos (about 30 s each). Charades is for non-commercial research use.")


def read_durations(path: Path) -> dict[str, float]:
    """Video id -> length in seconds from a Charades csv (``Charades_v1_{train,test}.csv``)."""
    path = Path(path)
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    header = reader.fieldnames or []
    for column in ("id", "length"):
        if column not in header:
            raise BadInput(f"{path}:1: no {column!r} column; expected the Charades csv "
                           f"(id, ..., length), got columns {', '.join(header) or '(none)'}")
    out: dict[str, float] = {}
    for row in reader:
        where = f"{path}:{reader.line_num}"
        try:
            length = float(row["length"])
        except (TypeError, ValueError):
            raise RowError(where, "length", f"must be a number of seconds, got {row['length']!r}") from None
        if not (math.isfinite(length) and length > 0):
            raise RowError(where, "length", f"must be > 0 seconds, got {row['length']!r}")
        out[row["id"]] = length
    return out


def collect_text(path: Path, durations: Mapping[str, float] | None = None,
                 videos: Path | None = None) -> SetCollector:
    """Read the text format; a duration is looked up in ``durations``, else probed, else None."""
    path = Path(path)
    collector = SetCollector(videos)
    durations = durations or {}
    counts: dict[str, int] = {}
    for line, raw in enumerate(read_text(path).split("\n"), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{line}"
        head, sep, sentence = raw.partition("##")
        parts = head.split()
        if not sep or len(parts) != 3:
            raise RowError(where, None, f"expected 'VIDEO_ID START END##sentence', got {raw.strip()!r}")
        vid = parts[0]
        try:
            start, end = float(parts[1]), float(parts[2])
        except ValueError:
            raise RowError(where, "start/end", f"must be numbers of seconds, got {parts[1]!r} {parts[2]!r}") \
                from None
        if end <= start:
            raise RowError(where, "end", f"end <= start ({start:g} >= {end:g}); fix or drop the line")
        if not sentence.strip():
            raise RowError(where, "sentence", "must not be empty (text after '##')")
        duration = durations.get(vid)
        if duration is None:
            duration = collector.probed_duration(vid)
        windows = parse_windows([[start, end]], where, "window", duration)
        index = counts.get(vid, 0)
        counts[vid] = index + 1
        query = Query(qid=f"{vid}#{index}", query=sentence.strip(), vid=vid, duration=duration,
                      relevant_windows=windows, lang="en")
        collector.add_query(query, where)
        collector.add_video(vid, duration, where)
    return collector


def _is_jsonl(path: Path) -> bool:
    if path.suffix.lower() == ".jsonl":
        return True
    with path.open("rb") as fh:
        return fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def convert(path: Path, *, durations: Mapping[str, float] | None = None, videos: Path | None = None,
            split: str = "test") -> QuerySet:
    """Charades-STA text or jsonl -> QuerySet, in file order, nothing written."""
    path = Path(path)
    collector = collect_jsonl(path, videos) if _is_jsonl(path) else collect_text(path, durations, videos)
    return collector.query_set(path.stem, split)


def find_duration_csvs(*folders: Path | None) -> list[Path]:
    """The Charades csv files (``Charades_v1*.csv``) lying in the given folders."""
    found: list[Path] = []
    for folder in folders:
        if folder is not None and folder.is_dir():
            found += sorted(p for p in folder.iterdir()
                            if p.suffix.lower() == ".csv" and p.name.lower().startswith("charades"))
    return found


def build(out: Path, options: BuildOptions) -> QuerySet:
    """Builder ``charades-sta``: ``--input charades_sta_test.txt|*.jsonl [--videos DIR]``.

    For the text format, ``Charades_v1*.csv`` files next to the input or in ``--videos``
    supply durations (train and test csv ids do not overlap, so all found are merged).
    """
    path = require_input(options, "charades-sta", "charades_sta_*.txt or a Charades-STA jsonl")
    if _is_jsonl(path):
        collector = collect_jsonl(path, options.videos)
    else:
        durations: dict[str, float] = {}
        for csv_path in find_duration_csvs(path.parent, options.videos):
            durations.update(read_durations(csv_path))
        collector = collect_text(path, durations, options.videos)
    return finish(collector, out, options, source=path, title="Charades-STA", about=ABOUT)
