"""QVHighlights adapter: the official ``highlight_{train,val,test}_release.jsonl`` files.

The release rows are already the canonical query format, so every field is kept (clip ids,
saliency scores, anything else goes to ``extra``); ``lang`` is set to ``en`` where absent.
"""

from __future__ import annotations

from pathlib import Path

from bench.datasets import BuildOptions
from bench.datasets.io import read_jsonl
from bench.datasets.jsonl import SetCollector, finish, require_input
from bench.types import Query, QuerySet, RowError

ABOUT = ("QVHighlights (Lei et al., NeurIPS 2021): 150 s YouTube clips with free-text queries, "
         "relevant windows and per-clip saliency scores (2 s clips). Annotations CC BY-NC-SA 4.0.")


def collect(path: Path, videos: Path | None = None) -> SetCollector:
    """Read a QVHighlights release file into a collector (videos found as ``<videos>/<vid>.mp4``)."""
    path = Path(path)
    collector = SetCollector(videos)
    for line, row in read_jsonl(path):
        if isinstance(row, dict) and "lang" not in row:
            row = {**row, "lang": "en"}
        query = Query.from_row(row, path, line)
        where = f"{path}:{line}"
        if query.vid is None:
            raise RowError(where, "vid", "is required: each row grounds its query in one video")
        collector.add_query(query, where)
        collector.add_video(query.vid, query.duration, where)
    return collector


def convert(path: Path, videos: Path | None = None, *, split: str = "val") -> QuerySet:
    """QVHighlights jsonl -> QuerySet, in file order, nothing written."""
    return collect(path, videos).query_set(Path(path).stem, split)


def build(out: Path, options: BuildOptions) -> QuerySet:
    """Builder ``qvhighlights``: ``--input highlight_val_release.jsonl [--videos DIR]``."""
    path = require_input(options, "qvhighlights", "a highlight_*_release.jsonl file")
    return finish(collect(path, options.videos), out, options, source=path,
                  title="QVHighlights", about=ABOUT)
