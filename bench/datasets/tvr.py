"""TVR adapter: TV show Retrieval jsonl (``desc_id, desc, vid_name, duration, ts, type``).

TVR is corpus moment retrieval, so each query has ``vid = None`` and its truth video in
``extra["truth_vid"]`` (the metrics read it there). ``type`` says what the description
needs: ``v`` video -> tag ``visual``; ``t`` subtitles -> ``speech``, ``subtitle``; ``vt`` both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.datasets import BuildOptions
from bench.datasets.activitynet import positive
from bench.datasets.io import read_jsonl
from bench.datasets.jsonl import SetCollector, finish, require_input
from bench.types import Query, QuerySet, RowError, parse_windows

ABOUT = ("TVR (Lei et al., ECCV 2020): moments in 6 TV shows described with reference to video, "
         "subtitles or both; corpus moment retrieval (find the clip and the time).")

TYPE_TAGS: dict[str, list[str]] = {
    "v": ["visual"],
    "t": ["speech", "subtitle"],
    "vt": ["visual", "speech", "subtitle", "multi"],
}


def _field(row: Any, name: str, where: str) -> Any:
    if name not in row:
        raise RowError(where, name, "is required in TVR rows")
    return row[name]


def collect(path: Path, videos: Path | None = None) -> SetCollector:
    """Read TVR jsonl; rows without ``ts`` (the public test split) get no windows."""
    path = Path(path)
    collector = SetCollector(videos)
    for line, row in read_jsonl(path):
        where = f"{path}:{line}"
        if not isinstance(row, dict):
            raise RowError(where, None, f"must be a JSON object, got {type(row).__name__}")
        qid = _field(row, "desc_id", where)
        if isinstance(qid, bool) or not isinstance(qid, int | str) or qid == "":
            raise RowError(where, "desc_id", f"must be an integer or a non-empty string, got {qid!r}")
        desc = _field(row, "desc", where)
        if not isinstance(desc, str) or not desc.strip():
            raise RowError(where, "desc", f"must be a non-empty string, got {desc!r}")
        vid = _field(row, "vid_name", where)
        if not isinstance(vid, str) or not vid:
            raise RowError(where, "vid_name", f"must be a non-empty string, got {vid!r}")
        duration = positive(_field(row, "duration", where), where, "duration")
        windows = parse_windows([row["ts"]], where, "ts", duration) if "ts" in row else []
        kind = row.get("type")
        if kind is not None and kind not in TYPE_TAGS:
            raise RowError(where, "type", f"must be one of {', '.join(TYPE_TAGS)}, got {kind!r}")
        extra = {k: v for k, v in row.items() if k not in ("desc_id", "desc", "vid_name", "duration", "ts")}
        extra["truth_vid"] = vid
        query = Query(qid=qid, query=desc.strip(), vid=None, duration=duration, relevant_windows=windows,
                      lang="en", tags=list(TYPE_TAGS.get(kind or "", [])), extra=extra)
        collector.add_query(query, where)
        collector.add_video(vid, duration, where)
    return collector


def convert(path: Path, videos: Path | None = None, *, split: str = "val") -> QuerySet:
    """TVR jsonl -> QuerySet of corpus queries, nothing written."""
    return collect(path, videos).query_set(Path(path).stem, split)


def build(out: Path, options: BuildOptions) -> QuerySet:
    """Builder ``tvr``: ``--input tvr_val_release.jsonl [--videos DIR]``."""
    path = require_input(options, "tvr", "a TVR jsonl (e.g. tvr_val_release.jsonl)")
    return finish(collect(path, options.videos), out, options, source=path, title="TVR", about=ABOUT)
