"""ActivityNet Captions adapter: ``{vid: {duration, timestamps, sentences}}`` json files.

One query per sentence, qid ``<vid>#<i>``; windows are clipped to the video's duration.
Video files are found as ``<videos>/<vid>.<ext>`` or without the ``v_`` prefix.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.datasets import BuildOptions
from bench.datasets.jsonl import SetCollector, finish, read_json_object, require_input
from bench.types import Query, QuerySet, RowError, parse_windows

ABOUT = ("ActivityNet Captions (Krishna et al., ICCV 2017): dense event captions of YouTube "
         "videos (about 2 minutes each), one query per sentence.")


def entry_field(entry: Any, name: str, where: str) -> Any:
    """``entry[name]`` of a per-video object, or a RowError naming the missing field."""
    if not isinstance(entry, dict):
        raise RowError(where, None, f"must be an object with {name!r}, got {type(entry).__name__}")
    if name not in entry:
        raise RowError(where, name, "is required")
    return entry[name]


def positive(value: Any, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value <= 0:
        raise RowError(where, name, f"must be a positive number, got {value!r}")
    return float(value)


def add_captions(collector: SetCollector, vid: str, duration: float, timestamps: Any, sentences: Any,
                 where: str, *, alternatives: tuple[str, ...] = ()) -> None:
    """Add one query per sentence of a video; ``timestamps`` are ``[[start, end], ...]`` seconds."""
    if not isinstance(sentences, list):
        raise RowError(where, "sentences", f"must be a list of strings, got {type(sentences).__name__}")
    windows = parse_windows(timestamps, where, "timestamps", duration)
    if len(windows) != len(sentences):
        raise RowError(where, "sentences", f"has {len(sentences)} items but timestamps has "
                                           f"{len(windows)}; they must pair up")
    for i, (sentence, window) in enumerate(zip(sentences, windows, strict=True)):
        if not isinstance(sentence, str) or not sentence.strip():
            raise RowError(where, f"sentences[{i}]", f"must be a non-empty string, got {sentence!r}")
        collector.add_query(Query(qid=f"{vid}#{i}", query=sentence.strip(), vid=vid, duration=duration,
                                  relevant_windows=[window], lang="en"), where)
    collector.add_video(vid, duration, where, alternatives=alternatives)


def collect(path: Path, videos: Path | None = None) -> SetCollector:
    path = Path(path)
    data, lines = read_json_object(path)
    collector = SetCollector(videos)
    for vid, entry in data.items():
        where = f"{path}:{lines.get(vid, 1)} (video {vid!r})"
        duration = positive(entry_field(entry, "duration", where), where, "duration")
        timestamps = entry_field(entry, "timestamps", where)
        sentences = entry_field(entry, "sentences", where)
        alternatives = (vid[2:],) if vid.startswith("v_") else ()
        add_captions(collector, vid, duration, timestamps, sentences, where, alternatives=alternatives)
    return collector


def convert(path: Path, videos: Path | None = None, *, split: str = "val") -> QuerySet:
    """ActivityNet Captions json -> QuerySet (videos in file order), nothing written."""
    return collect(path, videos).query_set(Path(path).stem, split)


def build(out: Path, options: BuildOptions) -> QuerySet:
    """Builder ``activitynet``: ``--input val_1.json [--videos DIR]``."""
    path = require_input(options, "activitynet", "an ActivityNet Captions json (e.g. val_1.json)")
    return finish(collect(path, options.videos), out, options, source=path,
                  title="ActivityNet Captions", about=ABOUT)
