"""Linear probes: logistic regression on a video's stored embeddings (the mean of its frame, clip
or text-window vectors), seeded stratified k-fold cross-validation, the mean and a 95%
confidence interval over folds. A trained result, always reported apart from zero-shot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.datasets.tagging import Taxonomy
from bench.errors import BadInput
from bench.tagging.metrics import tagging_metrics
from bench.tagging.zeroshot import _window_source, family_of

SEED = 0
MAX_FOLDS = 5


@dataclass
class ProbeResult:
    """Per metric the mean over folds and the half-width of its 95% t-interval; per fold the
    metrics; the videos left out (no features) with their reasons."""

    folds: int
    mean: dict[str, float]
    ci95: dict[str, float]
    per_fold: list[dict[str, float]]
    n_videos: int
    left_out: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"trained": True, "folds": self.folds, "seed": SEED, "mean": self.mean,
                "ci95": self.ci95, "per_fold": self.per_fold, "n_videos": self.n_videos,
                "left_out": self.left_out}


def video_features(retriever: Any, vids: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """vid -> the mean of its unit window vectors, and vid -> why it has none."""
    family = family_of(retriever)
    if family not in {"clip-frames", "xclip-clips", "dense-text"}:
        raise BadInput(f"{retriever.name}: linear probes need stored embeddings (clip-frames, "
                       f"xclip-clips, dense-text), not {family}")
    source = _window_source(retriever, family)
    feats, missing = {}, {}
    for vid in vids:
        got = source.pooled(vid)
        if isinstance(got, str):
            missing[vid] = got
        else:
            feats[vid] = got.mean[0]
    return feats, missing


def cross_validate(x: np.ndarray, y: Sequence[int], n_labels: int, *, seed: int = SEED,
                   max_folds: int = MAX_FOLDS) -> tuple[int, list[dict[str, float]]]:
    """(folds, metrics per fold) of a logistic regression on ``x`` ``(n, d)`` with labels ``y``
    (indices into the taxonomy); folds = min(``max_folds``, the rarest class's count)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(y)
    counts = np.bincount(labels, minlength=n_labels)
    folds = int(min(max_folds, counts[counts > 0].min()))
    if folds < 2:
        raise BadInput("a linear probe needs at least two videos of every label (for 2 folds)")
    out = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, labels):
        model = LogisticRegression(max_iter=1000, random_state=seed).fit(x[train], labels[train])
        proba = np.zeros((len(test), n_labels))
        proba[:, model.classes_] = model.predict_proba(x[test])
        out.append(tagging_metrics(proba, [frozenset([int(c)]) for c in labels[test]]))
    return folds, out


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% Student t-interval (0 for one value)."""
    arr = np.asarray(values, dtype=np.float64)
    if len(arr) < 2:
        return float(arr.mean()), 0.0
    from scipy import stats

    half = stats.t.ppf(0.975, len(arr) - 1) * arr.std(ddof=1) / np.sqrt(len(arr))
    return float(arr.mean()), float(half)


def probe(retriever: Any, videos: Sequence[tuple[str, str]], taxonomy: Taxonomy, *,
          seed: int = SEED) -> ProbeResult:
    """Cross-validated linear probe on ``retriever``'s stored embeddings of ``videos``
    ((vid, first label id) pairs; the retriever has indexed them)."""
    feats, missing = video_features(retriever, [v for v, _ in videos])
    counts: dict[str, int] = {}
    for v, lab in videos:
        if v in feats:
            counts[lab] = counts.get(lab, 0) + 1
    for v, lab in videos:  # a label seen once cannot be both trained on and tested
        if v in feats and counts[lab] < 2:
            missing[v] = f"label {lab!r} has fewer than two videos with features"
    kept = [(v, lab) for v, lab in videos if v not in missing]
    x = np.stack([feats[v] for v, _ in kept]) if kept else np.zeros((0, 1))
    y = [taxonomy.index(lab) for _, lab in kept]
    folds, per_fold = cross_validate(x, y, len(taxonomy.labels), seed=seed)
    mean, ci = {}, {}
    for key in per_fold[0]:
        mean[key], ci[key] = mean_ci([f[key] for f in per_fold])
    return ProbeResult(folds, mean, ci, per_fold, len(kept), missing)
