"""Tag video files directly (``python -m bench tag`` and the Space's Tag tab): index them with a
configuration through the workspace, then tag them zero-shot into a taxonomy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.datasets.tagging import Taxonomy
from bench.tagging.zeroshot import Aggregation, Tagged, tag_videos
from bench.workspace import Workspace, videos_from_files

DEFAULT_TAGGER = "dense-text-use-multilingual"
"""Cross-lingual text of speech and on-screen text: offline, and the best measured zero-shot
tagger on synthetic-tags-v1 (docs/tagging.md)."""


def tag_files(workspace: Workspace, paths: Sequence[Path], taxonomy: Taxonomy, retriever: str, *,
              aggregation: Aggregation | None = None) -> tuple[list[str], Tagged]:
    """(vids, tags) of the video files ``paths``; BadInput for a missing file."""
    videos = videos_from_files(list(paths))
    with workspace.holding(retriever) as r:
        workspace.index(retriever, videos)
        tagged = tag_videos(r, [v.vid for v in videos], taxonomy, aggregation)
    return [v.vid for v in videos], tagged


def tags_doc(taxonomy: Taxonomy, tagged: Tagged, retriever: str, top_k: int,
             files: Sequence[str]) -> dict[str, Any]:
    """The ``tag --json`` document: per video its best ``top_k`` labels (id, names, score,
    evidence), or the reason it has none."""
    names = {lb.id: dict(lb.names) for lb in taxonomy.labels}
    videos = []
    for path, vt in zip(files, tagged.videos, strict=True):
        row: dict[str, Any] = {"vid": vt.vid, "path": str(path)}
        if vt.scores is None:
            row["labels"] = []
            row["reason"] = vt.reason
        else:
            row["labels"] = [{"id": lid, "names": names[lid], "score": score, "evidence": ev}
                             for lid, score, ev in vt.top(taxonomy, top_k)]
        videos.append(row)
    return {"retriever": retriever, "family": tagged.family, "aggregation": tagged.aggregation,
            "videos": videos}
