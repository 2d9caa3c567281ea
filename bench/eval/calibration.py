"""Confidence: a per-configuration score threshold chosen on a seeded calibration split, and the
metrics that need it (``false_alarm``, ``confident_hit@0.5``).

A moment is *confident* when its strength (how many of the calibration split's absent
queries it beats, on a kernel-smoothed count, see :class:`Calibration`) reaches the threshold:
``1 - MAX_FALSE_ALARM``, the smoothed quantile of those absent queries' top moments. A split
without absent queries gives no threshold (reported ``uncalibrated``, never invented). The
metrics are measured on the other, held-out queries.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bench.eval.metrics import ranked_case
from bench.evidence import FusedEvidence
from bench.spans import temporal_iou_matrix
from bench.types import QID, Moment, Prediction, Query

CALIBRATION_SEED = 0
CALIBRATION_SHARE = 0.5
"""Share of the absent and of the present queries (each) that goes to the calibration split."""
MAX_FALSE_ALARM = 0.05
"""Target on the calibration split, a quarter of the 0.2 the held-out queries must stay under:
with 38 absent queries a side, a threshold set at 0.1 let the held-out side pass 0.2 in about
one split in ten (docs/leaderboard.md, scripts/calibration_splits.py)."""
KERNEL_BANDWIDTH = 1.0
"""Scale of Silverman's rule for the Gaussian kernel that smooths the absent queries' values:
a tail quantile of a few dozen values is otherwise set by the one or two largest of them."""
HIT_IOU = 0.5
MIN_SCRIPT_ABSENT = 8
"""Fewer absent queries than this in a script, and its moments are compared with all scripts':
the top of a handful of samples is too optimistic a bound."""


class Calibration(BaseModel):
    """How a configuration's threshold was chosen, stored with its result.

    A moment's *strength* is, for the signal of it that fares best, the share of the
    calibration split's absent queries in the same script as the query (Latin, CJK,
    Cyrillic, ...) whose top moment it beats on that signal. A configuration's signal is its
    score; a fused moment's are its members' scores. Scores are compared within a script
    because a text model scores unrelated text of some scripts much higher than of others.
    With a ``bandwidth``, each absent value counts as a Gaussian kernel around it (how much of
    it lies below the moment's value) rather than 0 or 1, so the strength, and the threshold
    on it, move smoothly with the values instead of jumping at the largest few.
    The threshold is on strength, in [0, 1]: a moment at or above it is confident."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["calibrated", "uncalibrated"]
    threshold: float | None = None
    reason: str | None = None
    """Why there is no threshold (``uncalibrated``)."""
    seed: int = CALIBRATION_SEED
    share: float = CALIBRATION_SHARE
    max_false_alarm: float = MAX_FALSE_ALARM
    bandwidth: float = 0.0
    """Kernel width as a multiple of Silverman's rule; 0 counts values (files written before
    smoothing)."""
    n_calibration: int = 0
    n_calibration_absent: int = 0
    calibration_false_alarm: float | None = None
    calibration_confident_hit: float | None = None
    absent_signals: dict[str, list[float]] = Field(default_factory=dict)
    """Per signal and per ``signal@script``, its values on the top moments of the calibration
    split's absent queries, ascending (an absent query whose top moment lacks the signal, or
    that got no moment, is below every value)."""
    absent_by_script: dict[str, int] = Field(default_factory=dict)
    """Absent queries of the calibration split per script of their text."""

    def strength(self, moment: Moment, query: str | None) -> float | None:
        """The moment's strength for the query text ``query`` (see above); None without
        absent queries to compare with. A script with fewer than :data:`MIN_SCRIPT_ABSENT`
        absent queries is compared with all of them."""
        script = script_of(query)
        n = self.absent_by_script.get(script, 0)
        suffix = f"@{script}"
        if n < MIN_SCRIPT_ABSENT:
            n, suffix = self.n_calibration_absent, ""
        if not n:
            return None
        best = 0.0
        for name, value in signals(moment).items():
            values = self.absent_signals.get(name + suffix, [])
            # absent queries without the signal are below every value
            beaten = n - len(values) + below(values, value, self.bandwidth)
            best = max(best, beaten / n)
        return best

    def confident(self, moment: Moment, query: str | None) -> bool | None:
        """Whether the moment passes the threshold; None when there is none."""
        if self.threshold is None:
            return None
        got = self.strength(moment, query)
        return got is not None and got >= self.threshold


def below(values: Sequence[float], value: float, bandwidth: float) -> float:
    """How many of the ascending ``values`` lie below ``value``: counted, or with a Gaussian
    kernel of ``bandwidth`` x Silverman's width around each (fewer than two distinct values,
    or no bandwidth: counted)."""
    if not values:
        return 0.0
    arr = np.asarray(values, dtype=np.float64)
    width = bandwidth * 1.06 * float(arr.std(ddof=1)) * len(arr) ** -0.2 if len(arr) > 1 else 0.0
    if width <= 0.0:
        return float(np.searchsorted(arr, value, side="left"))
    # the standard normal CDF of each (value - x) / width
    return float(sum(0.5 * math.erfc((x - value) / (width * math.sqrt(2.0))) for x in values))


def script_of(text: str | None) -> str:
    """The script a query is written in: ``latin``, ``cjk``, ``cyrillic``, ``hangul`` or
    ``none`` (no letters, or an image query)."""
    from bench.text.tokenize import detect_lang

    lang = detect_lang(text) if text else None
    if lang is None:
        return "none"
    return {"ja": "cjk", "zh": "cjk", "ru": "cyrillic", "ko": "hangul"}.get(lang, "latin")


def signals(moment: Moment) -> dict[str, float]:
    """What a moment's confidence is judged on: its score, or for a fused moment the score
    each member gave it (a fused rank score says how members agreed, not how well it matched)."""
    if isinstance(moment.evidence, FusedEvidence) and moment.evidence.members:
        return {f"member:{name}": float(m.score) for name, m in moment.evidence.members.items()}
    return {"score": float(moment.score)}


def in_calibration(qid: QID, seed: int = CALIBRATION_SEED) -> float:
    """A stable number in [0, 1) per query: below the share, the query calibrates."""
    digest = hashlib.sha256(f"{seed}:{qid}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2.0**64


def split(queries: Sequence[Query], *, seed: int = CALIBRATION_SEED,
          share: float = CALIBRATION_SHARE) -> tuple[list[Query], list[Query]]:
    """``(calibration, held_out)``: the lowest ``share`` of absent and of present queries by a
    seeded hash of their qid (stratified, so both halves hold absent queries when there are)."""
    calibration: list[Query] = []
    held_out: list[Query] = []
    for group in ([q for q in queries if q.is_absent], [q for q in queries if not q.is_absent]):
        ranked = sorted(group, key=lambda q: in_calibration(q.qid, seed))
        n = round(share * len(ranked))
        calibration += ranked[:n]
        held_out += ranked[n:]
    order = {id(q): i for i, q in enumerate(queries)}
    return sorted(calibration, key=lambda q: order[id(q)]), sorted(held_out, key=lambda q: order[id(q)])


def top_hit(query: Query, prediction: Prediction | None) -> bool:
    """Whether the prediction's top window hits (IoU >= 0.5 with a GT window, in the true video)."""
    case = ranked_case(query, prediction)
    return bool(len(case.scores) and case.gt.size and case.on_truth[0]
                and temporal_iou_matrix(case.windows[:1], case.gt).max() >= HIT_IOU)


def confidence_metrics(queries: Sequence[Query], predictions: Mapping[QID, Prediction],
                       tops: Mapping[QID, Moment | None], calibration: Calibration) -> dict[str, float]:
    """``false_alarm`` (absent queries whose top moment is confident) and ``confident_hit@0.5``
    (present queries with windows whose top moment is confident and hits), as fractions; a key
    is left out when its queries are missing, both when there is no threshold."""
    if calibration.threshold is None:
        return {}
    absent, present = [], []
    for q in queries:
        top = tops.get(q.qid)
        confident = top is not None and bool(calibration.confident(top, q.query))
        if q.is_absent:
            absent.append(confident)
        elif q.relevant_windows:
            present.append(confident and top_hit(q, predictions.get(q.qid)))
    out: dict[str, float] = {}
    if absent:
        out["false_alarm"] = float(np.mean(absent))
    if present:
        out["confident_hit@0.5"] = float(np.mean(present))
    return out


def calibrate(queries: Sequence[Query], predictions: Mapping[QID, Prediction],
              tops: Mapping[QID, Moment | None], *, seed: int = CALIBRATION_SEED,
              share: float = CALIBRATION_SHARE,
              max_false_alarm: float = MAX_FALSE_ALARM, bandwidth: float = KERNEL_BANDWIDTH,
              ) -> tuple[Calibration, list[Query]]:
    """Choose the threshold on the calibration split from each query's top moment (``tops``,
    the first moment of its prediction); returns it and the held-out queries. ``bandwidth``
    0 counts values (the threshold then lies just above the strength of the absent query
    that would be one too many)."""
    cal, held_out = split(queries, seed=seed, share=share)
    absent = [q for q in cal if q.is_absent]
    base: dict[str, Any] = dict(seed=seed, share=share, max_false_alarm=max_false_alarm,
                                bandwidth=bandwidth, n_calibration=len(cal),
                                n_calibration_absent=len(absent))
    if not absent:
        return Calibration(status="uncalibrated", reason="the calibration split has no absent "
                           "queries (tag 'absent'), so no threshold can be chosen", **base), held_out
    values: dict[str, list[float]] = {}
    by_script: dict[str, int] = {}
    for q in absent:
        script = script_of(q.query)
        by_script[script] = by_script.get(script, 0) + 1
        top = tops.get(q.qid)
        for name, value in (signals(top) if top is not None else {}).items():
            values.setdefault(name, []).append(value)
            values.setdefault(f"{name}@{script}", []).append(value)
    calibration = Calibration(status="calibrated", threshold=1.0, **base,
                              absent_signals={k: sorted(v) for k, v in sorted(values.items())},
                              absent_by_script=dict(sorted(by_script.items())))
    if bandwidth > 0:
        # the smoothed (1 - max_false_alarm) quantile of the absent queries' top moments
        calibration.threshold = 1.0 - max_false_alarm
    else:
        # The lowest strength that at most max_false_alarm of the absent queries reach: each
        # absent query's own top moment beats itself, so its strength is at most 1 - 1/n.
        strengths = sorted((calibration.strength(t, q.query) or 0.0 for q in absent
                            if (t := tops.get(q.qid)) is not None), reverse=True)
        allowed = int(np.floor(max_false_alarm * len(absent) + 1e-9))
        threshold = (float(np.nextafter(strengths[allowed], np.inf)) if allowed < len(strengths)
                     else 0.0)
        calibration.threshold = min(threshold, 1.0)
    got = confidence_metrics(cal, predictions, tops, calibration)
    calibration.calibration_false_alarm = got.get("false_alarm")
    calibration.calibration_confident_hit = got.get("confident_hit@0.5")
    return calibration, held_out
