"""The embedded set the Space searches, and one method's answer to a query as a
:class:`SearchOutcome`, through the process's :class:`~bench.workspace.Workspace`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.errors import BadInput, BenchError, Unavailable
from bench.types import Moment, QueryInput, QuerySet, Video

if TYPE_CHECKING:
    from bench.workspace import Workspace

log = logging.getLogger("bench")

DEFAULT_RETRIEVER = "fusion-text-multilingual"
DEFAULT_DATASET = "synthetic-v2"
DATASET_ENV = "SCENEBENCH_DEMO_DATASET"


def demo_dataset() -> str:
    """The embedded set the Space searches: ``$SCENEBENCH_DEMO_DATASET`` or synthetic-v2."""
    return os.environ.get(DATASET_ENV) or DEFAULT_DATASET


def embedded_videos(qs: QuerySet) -> dict[str, Video]:
    """The set's videos that have a local file, with absolute paths."""
    out = {}
    for vid, v in qs.videos.items():
        p = v.resolve(qs.root)
        if p is not None and p.is_file():
            out[vid] = Video(vid=vid, path=str(p.resolve()), duration=v.duration, lang=v.lang)
    return out


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
    (result,) = results
    # the engine ranked them; videos outside the choice are none of the visitor's business
    wanted = {v.vid for v in videos}
    moments = [m for m in result.moments if m.vid in wanted][:top_k]
    return SearchOutcome(retriever, moments, took, None if moments else result.reason)
