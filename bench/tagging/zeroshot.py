"""Zero-shot tagging from what an indexed retriever already holds: per-window embeddings (frames,
clips, text windows) against prompt-ensemble label vectors, BM25 over a video's text with each
label's names and description, an LLM given the video's metadata and the taxonomy, and rank
fusion of members. Nothing is decoded: features come from the retriever's index."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bench.datasets.tagging import Taxonomy
from bench.errors import BadInput, BenchError
from bench.index.corpus import PooledVectors, pool_rows

if TYPE_CHECKING:
    from bench.retrievers.base import Retriever

Aggregation = Literal["first", "mean", "max", "topk"]
AGGREGATIONS: tuple[Aggregation, ...] = ("first", "mean", "max", "topk")
TOPK_WINDOWS = 3
"""``topk`` attends to this many best windows per label (their mean)."""
RRF_K = 60.0


@dataclass
class VideoTags:
    """One video's label scores (``(n_labels,)``, higher is better; None when the family had
    nothing to score it by, with the ``reason``) and one line of evidence per label."""

    vid: str
    scores: np.ndarray | None
    reason: str | None = None
    evidence: dict[str, str] = field(default_factory=dict)

    def top(self, taxonomy: Taxonomy, k: int = 5) -> list[tuple[str, float, str]]:
        """The ``k`` best (label id, score, evidence), best first (ties in taxonomy order)."""
        if self.scores is None:
            return []
        order = np.argsort(-self.scores, kind="stable")[:k]
        ids = taxonomy.ids
        return [(ids[i], float(self.scores[i]), self.evidence.get(ids[i], "")) for i in order]


@dataclass
class Tagged:
    """A family's tags for a list of videos, how windows were aggregated, and the seconds spent
    scoring (label encoding aside, which is once per taxonomy)."""

    family: str
    aggregation: str
    videos: list[VideoTags]
    label_encode_s: float = 0.0
    score_s: float = 0.0


def label_texts(taxonomy: Taxonomy) -> list[list[str]]:
    """Per label, its prompt ensemble: every prompt template of every language with the label's
    name in that language, then its descriptions."""
    out = []
    for lb in taxonomy.labels:
        texts = [t.replace("{name}", lb.names[lang])
                 for lang in taxonomy.languages for t in taxonomy.prompt_templates(lang)]
        texts += list(lb.description.values())
        out.append(texts)
    return out


def label_vectors(encode: Any, taxonomy: Taxonomy) -> np.ndarray:
    """Unit ``(n_labels, d)``: each label's mean unit prompt vector, normalized again.
    ``encode(texts) -> (n, d)`` is the family's text tower."""
    groups = label_texts(taxonomy)
    flat = [t for g in groups for t in g]
    vecs = _unit(np.asarray(encode(flat), dtype=np.float32))
    out, row = [], 0
    for g in groups:
        out.append(vecs[row:row + len(g)].mean(axis=0))
        row += len(g)
    return _unit(np.stack(out))


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


def aggregate(sims: np.ndarray, how: Aggregation, k: int = TOPK_WINDOWS) -> np.ndarray:
    """Window scores ``(n_windows, n_labels)`` -> label scores ``(n_labels,)``: the first
    window's, the mean, the max, or the mean of the ``k`` best windows per label (``topk``)."""
    if sims.ndim != 2 or sims.shape[0] == 0:
        raise ValueError("aggregate needs at least one window")
    if how == "first":
        return sims[0]
    if how == "mean":
        return sims.mean(axis=0)
    if how == "max":
        return sims.max(axis=0)
    k = min(k, sims.shape[0])
    return np.sort(sims, axis=0)[-k:].mean(axis=0)


def score_windows(vecs: np.ndarray, labels: np.ndarray, how: Aggregation) -> tuple[np.ndarray, np.ndarray]:
    """(window x label cosines, label scores) of unit window vectors ``(n, d)`` against unit
    label vectors ``(labels, d)``, every window looked at."""
    sims = vecs @ labels.T
    return sims, aggregate(sims, how)


def score_pooled(pooled: PooledVectors, labels: np.ndarray,
                 how: Aggregation) -> tuple[np.ndarray, np.ndarray]:
    """(run x label cosines, label scores) from a video's summary (:func:`pool_rows`): the whole
    per-video cost of an embedding family's tags, at most ``POOL_ROWS`` rows whatever the video's
    length. ``first`` and ``mean`` are exact; ``max`` and ``topk`` take the best runs (the best
    windows themselves up to ``POOL_ROWS`` windows)."""
    sims = pooled.rows @ labels.T
    if how == "first":
        return sims, (pooled.first @ labels.T)[0]
    if how == "mean":
        return sims, (pooled.mean @ labels.T)[0]
    return sims, aggregate(sims, how)


def tag_pooled(vid: str, pooled: PooledVectors, labels: np.ndarray, how: Aggregation, what: str,
               label_ids: Sequence[str]) -> VideoTags:
    """One video's tags and evidence (the best run per label) from its summary."""
    sims, scores = score_pooled(pooled, labels, how)
    best = sims.argmax(axis=0)
    evidence = {}
    for j, lid in enumerate(label_ids):
        s, e = pooled.spans[int(best[j])]
        evidence[lid] = f"best {what} {s:.1f}-{e:.1f} s (cosine {float(sims[best[j], j]):.3f})"
    return VideoTags(vid, scores, None, evidence)


def family_of(retriever: Retriever) -> str:
    from bench.retrievers.bm25_text import BM25Text
    from bench.retrievers.clip_frames import ClipFrames
    from bench.retrievers.dense_text import DenseText
    from bench.retrievers.fusion import Fusion
    from bench.retrievers.llm_metadata import LLMMetadata
    from bench.retrievers.xclip_clips import XClipClips

    for cls, name in ((DenseText, "dense-text"), (BM25Text, "bm25-text"), (ClipFrames, "clip-frames"),
                      (XClipClips, "xclip-clips"), (LLMMetadata, "llm-metadata"), (Fusion, "fusion")):
        if isinstance(retriever, cls):
            return name
    raise BadInput(f"{retriever.name}: tagging has no zero-shot scorer for this family")


def default_aggregation(family: str) -> Aggregation:
    """Text families: the best window (a category is said once); visual ones: the best three."""
    return "max" if family in {"dense-text", "bm25-text"} else "topk"


def tag_videos(retriever: Retriever, vids: Sequence[str], taxonomy: Taxonomy,
               aggregation: Aggregation | None = None) -> Tagged:
    """Tag the indexed videos ``vids`` with ``retriever``'s family (index them first)."""
    family = family_of(retriever)
    how: Aggregation = aggregation or default_aggregation(family)
    if family == "fusion":
        return _fusion(retriever, vids, taxonomy, aggregation)
    if family == "llm-metadata":
        from bench.tagging.llm import tag_with_llm

        return tag_with_llm(retriever, vids, taxonomy)
    if family == "bm25-text":
        return _bm25(retriever, vids, taxonomy, how)
    t0 = time.perf_counter()
    windows = _window_source(retriever, family)
    labels = label_vectors(windows.encode, taxonomy)
    t1 = time.perf_counter()
    out = []
    for vid in vids:
        got = windows.pooled(vid)
        out.append(VideoTags(vid, None, got) if isinstance(got, str)
                   else tag_pooled(vid, got, labels, how, windows.what, taxonomy.ids))
    return Tagged(family, how, out, t1 - t0, time.perf_counter() - t1)


@dataclass
class _Windows:
    what: str
    encode: Any
    pooled: Any
    """vid -> the summary of its unit window vectors (:class:`PooledVectors`), or why there is none."""


def _window_source(r: Any, family: str) -> _Windows:
    if family == "dense-text":
        def dense(vid: str) -> PooledVectors | str:
            # text windows are few (one per ~10 s of speech or text): summarised when scored
            if r.corpus is None or vid not in r.corpus.vids:
                return "not indexed"
            if vid not in r.corpus.ranges:
                return "no usable features: no speech or on-screen text was extracted"
            lo, hi = r.corpus.ranges[vid]
            ws = r.corpus.windows[lo:hi]
            return pool_rows(r.window_vecs[lo:hi], np.array([w.start for w in ws]),
                             np.array([w.end for w in ws]))

        return _Windows("text window", lambda t: r.encode(t, query=True), dense)

    def visual(vid: str) -> PooledVectors | str:
        try:
            item = r.corpus.get(vid)
        except BenchError:
            return "no usable features: the video was not indexed (it failed to decode)"
        if item.pooled is None:
            return "no usable features: no frames were sampled"
        return item.pooled

    if family == "clip-frames":
        return _Windows("frame", lambda t: r.text.encode(list(t)), visual)
    return _Windows("clip", lambda t: r.encode_text(list(t)), visual)


def _bm25(r: Any, vids: Sequence[str], taxonomy: Taxonomy, how: Aggregation) -> Tagged:
    """BM25 of each label's words (its names in every language and its descriptions, each
    tokenized in its own language) over each video's text windows."""
    t0 = time.perf_counter()
    terms: list[list[str]] = []
    for lb in taxonomy.labels:
        words: list[str] = []
        for lang, name in lb.names.items():
            words += r.tokenizer.tokenize_query(name, lang)
        for lang, desc in lb.description.items():
            words += r.tokenizer.tokenize_query(desc, lang)
        terms.append(list(dict.fromkeys(words)))
    t1 = time.perf_counter()
    corpus, scorer = r.corpus, r.scorer
    table = (np.stack([scorer.scores(t) if t else np.zeros(len(corpus.windows)) for t in terms], axis=1)
             if scorer is not None and corpus is not None else None)
    out = []
    for vid in vids:
        if corpus is None or vid not in corpus.vids:
            out.append(VideoTags(vid, None, "not indexed"))
            continue
        if vid not in corpus.ranges or table is None:
            out.append(VideoTags(vid, None, "no usable features: no speech or on-screen text was extracted"))
            continue
        lo, hi = corpus.ranges[vid]
        sims = table[lo:hi]
        if not (sims > 0).any():  # equal zeros would rank labels by file order: no answer
            out.append(VideoTags(vid, None, "no label's words occur in its text"))
            continue
        present = {t for w in corpus.windows[lo:hi] for s in w.segments for t in r.segment_terms(s)}
        ev = {}
        for lid, tt in zip(taxonomy.ids, terms, strict=True):
            found = sorted(set(tt) & present)
            ev[lid] = "matched " + ", ".join(found[:5]) if found else "no label word"
        out.append(VideoTags(vid, aggregate(sims, how), None, ev))
    return Tagged("bm25-text", how, out, t1 - t0, time.perf_counter() - t1)


def _fusion(r: Any, vids: Sequence[str], taxonomy: Taxonomy, aggregation: Aggregation | None) -> Tagged:
    """Reciprocal-rank fusion (k = 60) of the members' label rankings per video; a video a member
    could not score takes the others' ranks, and has none only when no member scored it."""
    t0 = time.perf_counter()
    parts = {}
    for name, member in r.members.items():
        inner = getattr(member, "retriever", member)  # a workspace member wraps its retriever
        parts[name] = tag_videos(inner, vids, taxonomy, aggregation)
    n = len(taxonomy.labels)
    out = []
    for i, vid in enumerate(vids):
        fused = np.zeros(n)
        reasons, used = [], []
        for name, tagged in parts.items():
            vt = tagged.videos[i]
            if vt.scores is None:
                reasons.append(f"{name}: {vt.reason}")
                continue
            order = np.argsort(-vt.scores, kind="stable")
            fused[order] += 1.0 / (RRF_K + np.arange(1, n + 1))
            used.append(name)
        if not used:
            out.append(VideoTags(vid, None, "; ".join(reasons)))
            continue
        ev = {lid: "; ".join(f"{name}: {parts[name].videos[i].evidence.get(lid, '')}" for name in used)
              for lid in taxonomy.ids}
        out.append(VideoTags(vid, fused, None, ev))
    aggs = sorted({t.aggregation for t in parts.values()})
    return Tagged("fusion", "rrf of " + "/".join(aggs), out,
                  sum(t.label_encode_s for t in parts.values()), time.perf_counter() - t0
                  - sum(t.label_encode_s for t in parts.values()))
