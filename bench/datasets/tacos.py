"""TACoS adapter: the json of 2D-TAN-style splits, ``{video: {num_frames, fps, timestamps, sentences}}``.

Timestamps are frame indices; seconds = frame / fps and duration = num_frames / fps. The
vid is the key without its video suffix (``s13-d21.avi`` -> ``s13-d21``); qid ``<vid>#<i>``.
"""

from __future__ import annotations

from pathlib import Path

from bench.datasets import BuildOptions
from bench.datasets.activitynet import add_captions, entry_field, positive
from bench.datasets.jsonl import VIDEO_SUFFIXES, SetCollector, finish, read_json_object, require_input
from bench.types import QuerySet, RowError

ABOUT = ("TACoS (Regneri et al., TACL 2013; splits of 2D-TAN, Zhang et al., AAAI 2020): cooking "
         "videos from MPII Cooking Composite with sentence-level temporal annotations.")


def frames_to_seconds(timestamps: object, fps: float, where: str) -> list[list[float]]:
    """``[[start_frame, end_frame], ...]`` -> ``[[start_s, end_s], ...]``."""
    if not isinstance(timestamps, list):
        raise RowError(where, "timestamps", f"must be a list of [start, end] frames, got {timestamps!r}")
    out: list[list[float]] = []
    for i, pair in enumerate(timestamps):
        if not isinstance(pair, list) or len(pair) != 2 or not all(
                isinstance(f, int | float) and not isinstance(f, bool) for f in pair):
            raise RowError(where, f"timestamps[{i}]", f"must be [start_frame, end_frame], got {pair!r}")
        out.append([pair[0] / fps, pair[1] / fps])
    return out


def collect(path: Path, videos: Path | None = None) -> SetCollector:
    path = Path(path)
    data, lines = read_json_object(path)
    collector = SetCollector(videos)
    for key, entry in data.items():
        where = f"{path}:{lines.get(key, 1)} (video {key!r})"
        fps = positive(entry_field(entry, "fps", where), where, "fps")
        duration = positive(entry_field(entry, "num_frames", where), where, "num_frames") / fps
        timestamps = frames_to_seconds(entry_field(entry, "timestamps", where), fps, where)
        vid = Path(key).stem if Path(key).suffix.lower() in VIDEO_SUFFIXES else key
        add_captions(collector, vid, duration, timestamps, entry_field(entry, "sentences", where), where)
    return collector


def convert(path: Path, videos: Path | None = None, *, split: str = "test") -> QuerySet:
    """TACoS json -> QuerySet (times in seconds), nothing written."""
    return collect(path, videos).query_set(Path(path).stem, split)


def build(out: Path, options: BuildOptions) -> QuerySet:
    """Builder ``tacos``: ``--input test.json [--videos DIR]``."""
    path = require_input(options, "tacos", "a TACoS json of 2D-TAN-style splits (e.g. test.json)")
    return finish(collect(path, options.videos), out, options, source=path, title="TACoS", about=ABOUT)
