"""The tagging task in the harness: index a tagging set with a configuration, tag every video
zero-shot, score top-k and macro-F1 (overall, per class, per language, per tag), add a
cross-validated linear probe where the family stores embeddings, and write a versioned result."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from bench import timing
from bench.datasets.tagging import TaggingSet
from bench.errors import BadInput, Unavailable
from bench.eval.results import ResultFile, find_random_init, save_result
from bench.retrievers.base import RetrieverConfig
from bench.tagging.metrics import by_class, by_group, gold_indices, tagging_metrics
from bench.tagging.zeroshot import Aggregation, Tagged, family_of, tag_videos
from bench.types import Video
from bench.workspace import Workspace

log = logging.getLogger("bench")

PROBE_FAMILIES = frozenset({"clip-frames", "xclip-clips", "dense-text"})
TAGGING_FAMILIES = frozenset({*PROBE_FAMILIES, "bm25-text", "llm-metadata", "fusion"})
"""Families with a zero-shot tagger; another (e.g. ``chance``) is reported unavailable."""


def tagging_videos(ts: TaggingSet) -> list[Video]:
    """The set's videos with absolute local paths; BadInput for a missing file."""
    out = []
    for tv in ts.videos.values():
        path = tv.video.resolve(ts.root)
        if path is None or not path.is_file():
            raise BadInput(f"{ts.name}: video file not found for vid {tv.vid!r}: {path}")
        out.append(dataclasses.replace(tv.video, path=str(path.resolve())))
    return out


def score_tags(ts: TaggingSet, tagged: Tagged) -> tuple[dict[str, float], dict[str, Any],
                                                         dict[str, Any], dict[str, Any], dict[str, str]]:
    """(metrics, by class, by language, by tag, per-video reasons). A video the family could
    not score counts as a miss (its scores are all equal, so no label ranks first by merit:
    it is scored as wrong), and its reason is kept."""
    tax = ts.taxonomy
    index = {lid: i for i, lid in enumerate(tax.ids)}
    rows = [ts.videos[v.vid] for v in tagged.videos]
    gold = gold_indices([r.labels for r in rows], index)
    n = len(tax.labels)
    scores = np.zeros((len(rows), n))
    reasons = {}
    for i, vt in enumerate(tagged.videos):
        if vt.scores is None:
            reasons[vt.vid] = vt.reason or "no scores"
            scores[i] = _miss_row(gold[i], n)
        else:
            scores[i] = vt.scores
    metrics = tagging_metrics(scores, gold)
    langs = [[r.video.lang] if r.video.lang else [] for r in rows]
    tags = [list(r.tags) for r in rows]
    return (metrics, by_class(scores, gold, tax.ids), by_group(scores, gold, langs),
            by_group(scores, gold, tags), reasons)


def _miss_row(gold: frozenset[int], n: int) -> np.ndarray:
    # An unscored video must never be credited by tie-breaking: its gold labels rank last.
    row = np.zeros(n)
    row[list(gold)] = -1.0
    return row


def run_tagging(cfg: RetrieverConfig, ts: TaggingSet, *, workspace: Workspace, out: Path | None,
                aggregation: Aggregation | None = None, probe: bool = True) -> ResultFile:
    """One configuration on one tagging set (see the module docstring); never raises for a
    configuration that is unavailable or crashes: the result says so."""
    from bench.eval.runner import environment

    base: dict[str, Any] = dict(task="tagging", retriever=cfg.name, family=cfg.family,
                                config_revision=cfg.revision, dataset=ts.name, split=ts.split)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    if cfg.family not in TAGGING_FAMILIES:
        return _write(out, ResultFile(**base, status="unavailable",
                                      reason=f"family {cfg.family} has no zero-shot tagger",
                                      provenance={"environment": environment()}, created_at=now))
    videos = tagging_videos(ts)
    rec = timing.TimingRecorder()
    try:
        with timing.recording(rec):
            t0 = time.perf_counter()
            retriever = workspace.index(cfg, videos)
            index_wall = time.perf_counter() - t0
            tagged = tag_videos(retriever, [v.vid for v in videos], ts.taxonomy, aggregation)
    except Unavailable as exc:
        log.warning("%s unavailable: %s", cfg.name, exc)
        return _write(out, ResultFile(**base, status="unavailable", reason=str(exc),
                                      provenance={"environment": environment()}, created_at=now))
    except Exception as exc:  # recorded; the run goes on
        log.error("%s failed on %s: %s", cfg.name, ts.name, exc)
        log.debug("%s", traceback.format_exc())
        return _write(out, ResultFile(**base, status="failed", reason=f"tag: {type(exc).__name__}: {exc}",
                                      provenance={"environment": environment()}, created_at=now))
    metrics, per_class, per_lang, per_tag, reasons = score_tags(ts, tagged)
    prov: dict[str, Any] = {"environment": environment(), "device": retriever.device,
                            "retriever": retriever.provenance(), "config": cfg.model_dump(),
                            "aggregation": tagged.aggregation}
    prov["random_init"] = find_random_init(prov["retriever"])
    n = len(tagged.videos)
    timing_doc = {"index_wall_s": index_wall, "index": rec.as_dict(),
                  "label_encode_s": tagged.label_encode_s, "tag_s": tagged.score_s,
                  "tag_ms_per_video": 1000.0 * tagged.score_s / n if n else 0.0}
    probe_doc = None
    if probe and family_of(retriever) in PROBE_FAMILIES:
        probe_doc = _probe(retriever, ts)
    return _write(out, ResultFile(**base, status="ok", n_queries=n, metrics=metrics,
                                  metrics_by_lang=per_lang, metrics_by_tag=per_tag,
                                  metrics_by_class=per_class, probe=probe_doc, timing=timing_doc,
                                  provenance=prov, query_errors=reasons, created_at=now))


def _probe(retriever: Any, ts: TaggingSet) -> dict[str, Any]:
    from bench.tagging.probe import probe

    try:
        return probe(retriever, [(v.vid, v.labels[0]) for v in ts.videos.values()], ts.taxonomy).to_dict()
    except BadInput as exc:
        return {"trained": True, "reason": str(exc)}


def _write(out: Path | None, result: ResultFile) -> ResultFile:
    if out is not None:
        save_result(out, result)
    return result
