"""Moment-retrieval metrics: QVHighlights (official semantics), Charades-style R@K/mIoU/mAP, corpus R@K.

All functions are pure and keep full float precision; only :func:`percent` rounds (for display and
for the QVHighlights dict, which the official script reports rounded).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from bench.errors import BadInput
from bench.spans import paired_iou, temporal_iou_matrix
from bench.types import QID, Prediction, Query

QVH_IOUS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
"""IoU thresholds 0.5:0.05:0.95 of the QVHighlights metrics (and of every ``mAP`` here)."""
GROUNDING_IOUS: tuple[float, ...] = (0.3, 0.5, 0.7)
GROUNDING_KS: tuple[int, ...] = (1, 5)
CORPUS_KS: tuple[int, ...] = (1, 5, 10, 100)
CORPUS_IOUS: tuple[float, ...] = (0.5, 0.7)
MAX_AP_WINDOWS = 10
"""mAP looks at the first 10 predicted windows of a query, as the official QVHighlights script."""
CLIP_LENGTH_S = 2.0
"""QVHighlights saliency is annotated on 2-second clips."""
SALIENCY_LEVELS: tuple[tuple[str, int], ...] = (("Fair", 2), ("Good", 3), ("VeryGood", 4))
LENGTH_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("short", 0.0, 10.0), ("middle", 10.0, 30.0), ("long", 30.0, math.inf),
)
"""GT window length buckets ``(low, high]`` in seconds. The official script closes "long" at 150 s,
the longest QVHighlights video; an open end gives the same numbers there and keeps longer windows of
other sets in a bucket."""


class PredictionError(BadInput):
    """A prediction or ground-truth query breaks a rule; carries the qid so a caller can add file:line."""

    def __init__(self, qid: QID, field_name: str, rule: str, *, side: str = "prediction") -> None:
        self.qid = qid
        self.field_name = field_name
        self.rule = rule
        self.side = side
        super().__init__(f"{side} for qid {qid!r}: field '{field_name}': {rule}")


def percent(fraction: float) -> float:
    """``fraction`` -> percent rounded to 2 decimals exactly as the official QVHighlights script prints."""
    return float(f"{100 * fraction:.2f}")


# ----------------------------------------------------------------------------------------------
# Array-level metrics


def _voc_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC (2011+) all-point interpolated AP of one precision/recall curve (both shape (N,))."""
    p = np.concatenate(([0.0], precision, [0.0]))
    r = np.concatenate(([0.0], recall, [1.0]))
    p = np.maximum.accumulate(p[::-1])[::-1]
    idx = np.nonzero(r[1:] != r[:-1])[0] + 1
    return float(np.sum((r[idx] - r[idx - 1]) * p[idx]))


def average_precision(ious: ArrayLike, scores: ArrayLike,
                      thresholds: Sequence[float] = QVH_IOUS) -> np.ndarray:
    """Detection AP of one query at each IoU threshold; returns shape (T,), fractions in [0, 1].

    ``ious`` (N, M): IoU of each of N predicted windows with each of M ground-truth windows (rows of
    windows in another video are all 0); ``scores`` (N,). Predictions are taken by decreasing score
    (ties keep their order); each is greedily matched to the free GT window of highest IoU that
    reaches the threshold; unmatched predictions are false positives. AP is VOC all-point
    interpolated. Among GT windows of equal IoU the later one is tried first: what the reference's
    ``argsort()[::-1]`` did with the numpy it was released with (newer numpy's SIMD sort breaks such
    ties by platform, so this fixes the released behaviour).
    """
    iou = np.asarray(ious, dtype=float)
    score = np.asarray(scores, dtype=float).reshape(-1)
    if iou.ndim != 2:
        raise ValueError(f"ious must be (N predicted, M ground truth), got shape {iou.shape}")
    n_pred, n_gt = iou.shape
    if n_gt == 0:
        raise ValueError("average_precision needs at least one ground-truth window")
    if n_pred == 0:
        return np.zeros(len(thresholds))
    if score.shape[0] != n_pred:
        raise ValueError(f"{n_pred} predicted windows but {score.shape[0]} scores")
    order = np.argsort(-score, kind="stable")
    iou = iou[order]
    gt_order = np.argsort(iou, axis=1, kind="stable")[:, ::-1]
    tp = np.zeros((len(thresholds), n_pred))
    for t_idx, threshold in enumerate(thresholds):
        taken = np.zeros(n_gt, dtype=bool)
        for i in range(n_pred):
            for j in gt_order[i]:
                if iou[i, j] < threshold:
                    break
                if not taken[j]:
                    taken[j] = True
                    tp[t_idx, i] = 1.0
                    break
    # Thresholds often share a hit pattern (and one with no hit has AP 0): compute each pattern once.
    by_pattern: dict[bytes, float] = {}
    out = np.zeros(len(thresholds))
    for t_idx in range(len(thresholds)):
        hits = tp[t_idx]
        if not hits.any():
            continue
        key = hits.tobytes()
        if key not in by_pattern:
            tp_cum = np.cumsum(hits)
            fp_cum = np.cumsum(1.0 - hits)
            by_pattern[key] = _voc_ap(tp_cum / (tp_cum + fp_cum), tp_cum / float(n_gt))
        out[t_idx] = by_pattern[key]
    return out


def saliency_average_precision(relevant: ArrayLike, scores: ArrayLike) -> float:
    """AP of ranking clips by ``scores`` (C,) against binary ``relevant`` (C,), as QVHighlights HL-mAP.

    ``scores`` is cut or zero-padded to C. All-relevant gives 1 and none-relevant 0. Otherwise the
    mean, over each distinct recall level reached (ties in score reach a level together), of the
    best precision at that recall or higher: the reference's interpolated average over
    ``sklearn.metrics.precision_recall_curve``, written out so it does not depend on its version.
    """
    y = np.asarray(relevant).astype(bool).reshape(-1)
    s = np.asarray(scores, dtype=float).reshape(-1)
    n = y.shape[0]
    s = np.concatenate((s[:n], np.zeros(max(0, n - s.shape[0]))))
    if not y.any():
        return 0.0
    if y.all():
        return 1.0
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.concatenate((np.nonzero(np.diff(s))[0], [n - 1]))  # end of each tie group
    tp = np.cumsum(y)[last].astype(float)
    seen = (last + 1).astype(float)
    precision = tp / seen
    best_from_here = np.maximum.accumulate(precision[::-1])[::-1]
    first_at_level = np.nonzero(np.diff(np.concatenate(([0.0], tp))) > 0)[0]
    # Averaged from the highest recall down, the order in which the reference sums them.
    return float(np.mean(best_from_here[first_at_level][::-1]))


# ----------------------------------------------------------------------------------------------
# One query: ground truth and ranked predicted windows


def truth_vid(query: Query) -> str | None:
    """The video a query's windows are in: ``extra["truth_vid"]`` for corpus queries, else ``vid``."""
    value = query.extra.get("truth_vid", query.vid)
    if value is not None and not isinstance(value, str):
        raise PredictionError(query.qid, "truth_vid", f"must be a video id string, got {value!r}",
                              side="ground truth")
    return value


@dataclass(frozen=True)
class RankedCase:
    """One query ready to score: GT windows (M, 2) and predicted windows in rank order.

    ``windows`` (K, 2) seconds, ``scores`` (K,), ``vids`` the video of each window (``None`` when
    unnamed), ``on_truth`` (K,) whether a window is in the query's true video.
    """

    qid: QID
    gt: np.ndarray
    windows: np.ndarray
    scores: np.ndarray
    vids: tuple[str | None, ...]
    on_truth: np.ndarray

    def ious(self, limit: int | None = None) -> np.ndarray:
        """(K, M) IoU of the first ``limit`` predicted windows with every GT window; 0 off-video."""
        k = len(self.vids) if limit is None else min(limit, len(self.vids))
        return temporal_iou_matrix(self.windows[:k], self.gt) * self.on_truth[:k, None]

    def with_gt(self, gt: np.ndarray) -> RankedCase:
        return RankedCase(self.qid, gt, self.windows, self.scores, self.vids, self.on_truth)


def _number(value: Any, qid: QID, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PredictionError(qid, name, f"must be a finite number, got {value!r}")
    return float(value)


def ranked_case(query: Query, prediction: Prediction | None) -> RankedCase:
    """Build the :class:`RankedCase` of ``query``; a missing prediction ranks nothing.

    The ranking is the order of ``pred_moments`` when present (corpus mode), else of
    ``pred_relevant_windows`` in ``prediction.vid`` (unnamed: the query's own ``vid``). The list
    order is the rank, as in the official script (top-1 is the first row), so rows should be
    sorted by score; mAP re-sorts its first 10 rows by score.
    """
    truth = truth_vid(query)
    gt = np.asarray(query.relevant_windows, dtype=float).reshape(-1, 2)
    rows: list[tuple[str | None, float, float, float]] = []
    if prediction is not None and prediction.pred_moments is not None:
        for i, row in enumerate(prediction.pred_moments):
            name = f"pred_moments[{i}]"
            if not isinstance(row, list | tuple) or len(row) != 4 or not isinstance(row[0], str):
                raise PredictionError(query.qid, name, f"must be [vid, start, end, score], got {row!r}")
            rows.append((row[0], _number(row[1], query.qid, f"{name}[1]"),
                         _number(row[2], query.qid, f"{name}[2]"), _number(row[3], query.qid, f"{name}[3]")))
    elif prediction is not None:
        vid = prediction.vid if prediction.vid is not None else query.vid
        for i, w in enumerate(prediction.pred_relevant_windows):
            name = f"pred_relevant_windows[{i}]"
            if not isinstance(w, list | tuple) or len(w) != 3:
                raise PredictionError(query.qid, name, f"must be [start, end, score], got {w!r}")
            rows.append((vid, _number(w[0], query.qid, f"{name}[0]"), _number(w[1], query.qid, f"{name}[1]"),
                         _number(w[2], query.qid, f"{name}[2]")))
    for i, (_, start, end, _) in enumerate(rows):
        if end < start:
            field = "pred_moments" if prediction is not None and prediction.pred_moments is not None \
                else "pred_relevant_windows"
            raise PredictionError(query.qid, f"{field}[{i}]",
                                  f"end < start ({start:g} > {end:g}); emit windows as [start, end]")
    vids = tuple(r[0] for r in rows)
    return RankedCase(
        qid=query.qid, gt=gt,
        windows=np.array([[r[1], r[2]] for r in rows], dtype=float).reshape(-1, 2),
        scores=np.array([r[3] for r in rows], dtype=float),
        vids=vids,
        on_truth=np.array([truth is not None and v == truth for v in vids], dtype=float),
    )


def _cases(queries: Sequence[Query], predictions: Mapping[QID, Prediction]) -> list[RankedCase]:
    # A query without GT windows cannot be scored for moments; callers count and report them.
    return [ranked_case(q, predictions.get(q.qid)) for q in queries if q.relevant_windows]


def _best_iou_per_rank(case: RankedCase, limit: int) -> np.ndarray:
    """(min(K, limit),) IoU of each of the first ``limit`` ranked windows with its best GT window.

    The best GT window is picked by IoU (first on ties), then the IoU is recomputed over the hull of
    the pair, as the official R1 does: equal in exact arithmetic, and equal to it to the last bit, so
    a window exactly at a threshold counts the same way.
    """
    k = min(limit, len(case.vids))
    if k == 0:
        return np.zeros(0)
    pred = case.windows[:k]
    best = case.gt[np.argmax(temporal_iou_matrix(pred, case.gt), axis=1)]
    return paired_iou(pred, best) * case.on_truth[:k]


def _top1_iou(case: RankedCase) -> float:
    best = _best_iou_per_rank(case, 1)
    return float(best[0]) if best.size else 0.0


def _ap_matrix(cases: Sequence[RankedCase]) -> np.ndarray:
    """(Q, T) AP of each case at each :data:`QVH_IOUS` threshold over its first 10 windows."""
    return np.array([average_precision(c.ious(MAX_AP_WINDOWS), c.scores[:MAX_AP_WINDOWS], QVH_IOUS)
                     for c in cases]).reshape(-1, len(QVH_IOUS))


# ----------------------------------------------------------------------------------------------
# QVHighlights


def _in_bucket(cases: Sequence[RankedCase], low: float, high: float) -> list[RankedCase]:
    out = []
    for c in cases:
        length = c.gt[:, 1] - c.gt[:, 0]
        keep = (length > low) & (length <= high)
        if keep.any():
            out.append(c.with_gt(c.gt[keep]))
    return out


def _moment_block(cases: Sequence[RankedCase]) -> dict[str, dict[str, float]]:
    ap_by_threshold = _ap_matrix(cases).mean(axis=0)
    mean_ap: dict[str, float] = {str(t): percent(v) for t, v in zip(QVH_IOUS, ap_by_threshold, strict=True)}
    mean_ap["average"] = percent(float(np.mean(ap_by_threshold)))
    top1 = np.array([_top1_iou(c) for c in cases])
    recall = {str(t): percent(float(np.mean(top1 >= t))) for t in QVH_IOUS}
    return {"MR-mAP": mean_ap, "MR-R1": recall}


def has_saliency(query: Query) -> bool:
    return query.saliency_scores is not None and query.relevant_clip_ids is not None


def _saliency_matrix(query: Query) -> np.ndarray:
    """(clips, annotators) saliency in 0..4 over the whole video; unlisted clips are 0."""
    assert query.saliency_scores is not None and query.relevant_clip_ids is not None
    ids = query.relevant_clip_ids
    widths = {len(row) for row in query.saliency_scores}
    if len(widths) > 1:
        raise PredictionError(query.qid, "saliency_scores",
                              f"rows have different numbers of annotators {sorted(widths)}",
                              side="ground truth")
    if any(i < 0 for i in ids):
        raise PredictionError(query.qid, "relevant_clip_ids", "must be >= 0", side="ground truth")
    n_annotators = widths.pop() if widths else 1
    # The official script sizes the video as int(duration / 2) clips and would crash on a clip id
    # past that; growing to hold every listed clip scores such a query instead.
    n_clips = int(query.duration / CLIP_LENGTH_S) if query.duration is not None else 0
    n_clips = max([n_clips, *(i + 1 for i in ids)])
    out = np.zeros((n_clips, n_annotators))
    if ids:
        out[np.asarray(ids)] = np.asarray(query.saliency_scores, dtype=float)
    return out


def _pred_saliency(query: Query, prediction: Prediction | None) -> np.ndarray:
    values = prediction.pred_saliency_scores if prediction is not None else None
    if values is None:
        return np.zeros(0)
    for i, v in enumerate(values):
        _number(v, query.qid, f"pred_saliency_scores[{i}]")
    return np.asarray(values, dtype=float)


def highlight_metrics(queries: Sequence[Query], predictions: Mapping[QID, Prediction]
                      ) -> dict[str, dict[str, float]]:
    """QVHighlights highlight detection: ``{"HL-min-Fair": {"HL-mAP", "HL-Hit1"}, ...}`` in percent.

    A clip is relevant at level Fair/Good/VeryGood when an annotator scored it >= 2/3/4 (each
    annotator separately). HL-mAP averages :func:`saliency_average_precision` over queries and
    annotators; HL-Hit1 is the share of queries whose top-scored clip (first on ties) is relevant
    for at least one annotator. Every query needs ``saliency_scores`` and ``relevant_clip_ids``.
    """
    gt = {}
    for q in queries:
        if not has_saliency(q):
            raise PredictionError(q.qid, "saliency_scores", "is required for highlight metrics",
                                  side="ground truth")
        gt[q.qid] = _saliency_matrix(q)
    preds = {q.qid: _pred_saliency(q, predictions.get(q.qid)) for q in queries}
    out: dict[str, dict[str, float]] = {}
    for name, minimum in SALIENCY_LEVELS:
        hits: list[float] = []
        aps: list[float] = []
        for q in queries:
            binary = gt[q.qid] >= minimum
            scores = preds[q.qid]
            top = int(np.argmax(scores)) if scores.size else binary.shape[0]
            hits.append(float(binary[top].any()) if top < binary.shape[0] else 0.0)
            aps.extend(saliency_average_precision(binary[:, a], scores) for a in range(binary.shape[1]))
        out[f"HL-min-{name}"] = {"HL-mAP": percent(float(np.mean(aps))),
                                 "HL-Hit1": percent(float(np.mean(hits)))}
    return out


def qvhighlights_metrics(queries: Sequence[Query], predictions: Mapping[QID, Prediction],
                         *, highlights: bool | None = None) -> dict[str, Any]:
    """The official QVHighlights evaluation dict (percent, 2 decimals), keys ordered as it writes them.

    ``{"brief": {"MR-full-R1@0.5", ...}, "HL-min-Fair": {...}, "full": {"MR-mAP": {"0.5", ...,
    "average"}, "MR-R1": {...}}, "long": ..., "middle": ..., "short": ...}``.

    Moment retrieval scores queries with GT windows: R1 takes the first predicted window (IoU with
    its best GT window), mAP the first 10 windows sorted by score. A length bucket keeps a query's
    GT windows in ``(low, high]`` and drops queries left with none; an empty bucket is left out.
    Highlight keys appear when ``highlights`` is true; ``None`` means: when every prediction carries
    ``pred_saliency_scores`` (a mix of rows with and without raises).

    Where the official script crashes (a query with no predicted window) this scores a miss.
    A window whose prediction names another video than the query's never matches (the official
    script ignores ``vid``).
    """
    cases = _cases(queries, predictions)
    metrics: dict[str, Any] = {}
    if cases:
        metrics["full"] = _moment_block(cases)
    for name, low, high in LENGTH_BUCKETS:
        bucket = _in_bucket(cases, low, high)
        if bucket:
            metrics[name] = _moment_block(bucket)
    brief: dict[str, float] = {}
    if "full" in metrics:
        moment_brief = {
            "MR-full-mAP": metrics["full"]["MR-mAP"]["average"],
            "MR-full-mAP@0.5": metrics["full"]["MR-mAP"]["0.5"],
            "MR-full-mAP@0.75": metrics["full"]["MR-mAP"]["0.75"],
            "MR-full-R1@0.5": metrics["full"]["MR-R1"]["0.5"],
            "MR-full-R1@0.7": metrics["full"]["MR-R1"]["0.7"],
        }
        for name, _, _ in LENGTH_BUCKETS:
            if name in metrics:
                moment_brief[f"MR-{name}-mAP"] = metrics[name]["MR-mAP"]["average"]
        brief.update(sorted(moment_brief.items()))
    if highlights is None:
        highlights = saliency_predicted(queries, predictions)
    if highlights:
        hl = highlight_metrics(queries, predictions)
        metrics.update(hl)
        for level, values in hl.items():
            for key, value in values.items():
                brief[f"{level}-{key.split('-')[1]}"] = value
    return {"brief": brief, **dict(sorted(metrics.items()))}


def saliency_predicted(queries: Sequence[Query], predictions: Mapping[QID, Prediction]) -> bool:
    """True when every prediction of ``queries`` has ``pred_saliency_scores``, False when none does."""
    present = [predictions[q.qid].pred_saliency_scores is not None
               for q in queries if q.qid in predictions]
    if any(present) and not all(present):
        missing = next(q.qid for q in queries
                       if q.qid in predictions and predictions[q.qid].pred_saliency_scores is None)
        raise PredictionError(missing, "pred_saliency_scores",
                              "is missing while other predictions have it; give every row saliency or none")
    return bool(present) and all(present)


# ----------------------------------------------------------------------------------------------
# Charades / ActivityNet style


def grounding_metrics(queries: Sequence[Query], predictions: Mapping[QID, Prediction]) -> dict[str, float]:
    """R1/R5 at IoU 0.3/0.5/0.7, mIoU and mAP as fractions in [0, 1]; ``{}`` when nothing is scorable.

    ``R{k}@{t}``: share of queries with a window among the first k predicted whose IoU with some GT
    window is >= t. ``mIoU``: mean IoU of the first window with its best GT window (0 when nothing is
    predicted). ``mAP``: per-query AP over the first 10 windows at IoU 0.5:0.05:0.95, averaged.
    """
    cases = _cases(queries, predictions)
    if not cases:
        return {}
    best = [_best_iou_per_rank(c, max(GROUNDING_KS)) for c in cases]
    out: dict[str, float] = {}
    for k in GROUNDING_KS:
        top_k = np.array([b[:k].max() if b.size else 0.0 for b in best])
        for t in GROUNDING_IOUS:
            out[f"R{k}@{t}"] = float(np.mean(top_k >= t))
    out["mIoU"] = float(np.mean([b[0] if b.size else 0.0 for b in best]))
    out["mAP"] = float(np.mean(_ap_matrix(cases).mean(axis=0)))
    return out


# ----------------------------------------------------------------------------------------------
# Corpus (TVR style)


def corpus_answers(query: Query) -> dict[str, np.ndarray] | None:
    """Every moment in the corpus that answers the query, by video, when the set lists them.

    ``extra["corpus_windows"]`` rows are ``[vid, start, end]``: a query about a photograph is
    also answered wherever the same photograph appears, so corpus search is not penalised for
    finding another true answer. ``None`` when the set gives no such list.
    """
    rows = query.extra.get("corpus_windows")
    if not rows:
        return None
    out: dict[str, list[tuple[float, float]]] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, list | tuple) or len(row) != 3 or not isinstance(row[0], str):
            raise PredictionError(query.qid, f"corpus_windows[{i}]",
                                  f"must be [vid, start, end], got {row!r}", side="ground truth")
        out.setdefault(row[0], []).append((_number(row[1], query.qid, f"corpus_windows[{i}][1]"),
                                           _number(row[2], query.qid, f"corpus_windows[{i}][2]")))
    return {v: np.asarray(w, dtype=float).reshape(-1, 2) for v, w in out.items()}


def corpus_metrics(queries: Sequence[Query], predictions: Mapping[QID, Prediction]) -> dict[str, float]:
    """Video R@K and moment R@K at IoU 0.5/0.7 for K in 1/5/10/100, fractions; ``{}`` if nothing to score.

    The truth is ``extra["truth_vid"]`` (corpus queries) or ``vid``. ``video-R@K``: the true video is
    among the first K distinct videos of the ranking. ``moment-R@K@t``: one of the first K moments is
    in the true video with IoU >= t against a GT window. Where a query lists every answering moment
    of the corpus (``extra["corpus_windows"]``), any of them counts.
    """
    for q in queries:
        if q.relevant_windows and truth_vid(q) is None:
            raise PredictionError(q.qid, "truth_vid",
                                  "corpus metrics need the true video: set 'vid' or 'truth_vid'",
                                  side="ground truth")
    cases = _cases(queries, predictions)
    if not cases:
        return {}
    out: dict[str, float] = {}
    truths = {q.qid: truth_vid(q) for q in queries}
    answers = {q.qid: corpus_answers(q) for q in queries}
    ranks = []
    best = []
    for c in cases:
        distinct = list(dict.fromkeys(v for v in c.vids if v is not None))
        answer = answers[c.qid]
        if answer is None:
            truth = truths[c.qid]
            ranks.append(distinct.index(truth) + 1 if truth in distinct else math.inf)
            best.append(_best_iou_per_rank(c, max(CORPUS_KS)))
            continue
        hits = [i + 1 for i, v in enumerate(distinct) if v in answer]
        ranks.append(hits[0] if hits else math.inf)
        k = min(max(CORPUS_KS), len(c.vids))
        best.append(np.array([temporal_iou_matrix(c.windows[i:i + 1], answer[v]).max()
                              if (v := c.vids[i]) in answer else 0.0 for i in range(k)]))
    for k in CORPUS_KS:
        out[f"video-R@{k}"] = float(np.mean([r <= k for r in ranks]))
    for k in CORPUS_KS:
        top_k = np.array([b[:k].max() if b.size else 0.0 for b in best])
        for t in CORPUS_IOUS:
            out[f"moment-R@{k}@{t}"] = float(np.mean(top_k >= t))
    return out


# ----------------------------------------------------------------------------------------------
# Breakdowns


MetricFn = Callable[[Sequence[Query], Mapping[QID, Prediction]], dict[str, Any]]


def breakdown(queries: Sequence[Query], predictions: Mapping[QID, Prediction],
              groups: Callable[[Query], Iterable[str]], metric_fn: MetricFn) -> dict[str, dict[str, Any]]:
    """``{group: metric_fn(queries in group, predictions)}``, groups sorted; a query may be in several."""
    members: dict[str, list[Query]] = {}
    for q in queries:
        for g in dict.fromkeys(groups(q)):
            members.setdefault(g, []).append(q)
    return {g: metric_fn(members[g], predictions) for g in sorted(members)}


def by_tag(queries: Sequence[Query], predictions: Mapping[QID, Prediction],
           metric_fn: MetricFn) -> dict[str, dict[str, Any]]:
    """:func:`breakdown` by each of a query's ``tags``."""
    return breakdown(queries, predictions, lambda q: q.tags, metric_fn)


def by_lang(queries: Sequence[Query], predictions: Mapping[QID, Prediction],
            metric_fn: MetricFn) -> dict[str, dict[str, Any]]:
    """:func:`breakdown` by ``lang``; queries without a language are in no group."""
    return breakdown(queries, predictions, lambda q: [q.lang] if q.lang else [], metric_fn)
