"""Tagging metrics, pure and at full precision: top-k accuracy (a video is a hit when any of its
labels is among the k best scored) and macro-F1 of the top-1 label, overall, per class and per
group (language, tag)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

TOP_KS = (1, 5, 10)


def ranks(scores: np.ndarray) -> np.ndarray:
    """Label indices of each row of ``scores`` ``(n_videos, n_labels)``, best first; ties go to
    the lower index (the taxonomy's order), so a row of equal scores ranks in file order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), axis=1, kind="stable")


def top_k_accuracy(order: np.ndarray, gold: Sequence[frozenset[int]], k: int) -> float:
    """Share of videos with a gold label among the first ``k`` of ``order`` (see :func:`ranks`)."""
    if not gold:
        return 0.0
    hits = sum(1 for row, g in zip(order, gold, strict=True) if g & set(row[:k].tolist()))
    return hits / len(gold)


def per_class_f1(top1: Sequence[int], gold: Sequence[frozenset[int]], n_labels: int,
                 ) -> dict[int, tuple[float, float, float, int]]:
    """Class -> (precision, recall, F1, support) of the top-1 label, for every class that is a
    gold label or a prediction somewhere. A prediction is right when it is one of the video's
    gold labels; a video counts toward the recall of each of its gold labels."""
    out = {}
    for c in range(n_labels):
        tp = sum(1 for p, g in zip(top1, gold, strict=True) if p == c and c in g)
        fp = sum(1 for p, g in zip(top1, gold, strict=True) if p == c and c not in g)
        fn = sum(1 for p, g in zip(top1, gold, strict=True) if p != c and c in g)
        support = tp + fn
        if tp + fp + fn == 0:
            continue
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[c] = (precision, recall, f1, support)
    return out


def macro_f1(top1: Sequence[int], gold: Sequence[frozenset[int]], n_labels: int) -> float:
    """Unweighted mean F1 over the classes :func:`per_class_f1` reports."""
    per = per_class_f1(top1, gold, n_labels)
    return float(np.mean([f for _, _, f, _ in per.values()])) if per else 0.0


def tagging_metrics(scores: np.ndarray, gold: Sequence[frozenset[int]]) -> dict[str, float]:
    """``top1``, ``top5``, ``top10`` and ``macro_f1`` (fractions) of ``scores`` ``(n, labels)``."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[0] == 0:
        return {}
    order = ranks(scores)
    out = {f"top{k}": top_k_accuracy(order, gold, k) for k in TOP_KS}
    out["macro_f1"] = macro_f1(order[:, 0].tolist(), gold, scores.shape[1])
    return out


def by_group(scores: np.ndarray, gold: Sequence[frozenset[int]],
             groups: Sequence[Sequence[str]]) -> dict[str, dict[str, float]]:
    """:func:`tagging_metrics` over the videos of each group (a video may be in several, e.g.
    its tags; or one, its language), with ``n`` the group's size."""
    members: dict[str, list[int]] = {}
    for i, gs in enumerate(groups):
        for g in gs:
            members.setdefault(g, []).append(i)
    out = {}
    for g, rows in sorted(members.items()):
        m = tagging_metrics(np.asarray(scores)[rows], [gold[i] for i in rows])
        out[g] = {**m, "n": float(len(rows))}
    return out


def by_class(scores: np.ndarray, gold: Sequence[frozenset[int]],
             label_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """Label id -> precision, recall, F1 and support of the top-1 label."""
    top1 = ranks(scores)[:, 0].tolist() if len(gold) else []
    per = per_class_f1(top1, gold, len(label_ids))
    return {label_ids[c]: {"precision": p, "recall": r, "f1": f, "n": float(s)}
            for c, (p, r, f, s) in per.items()}


def gold_indices(labels: Sequence[Sequence[str]], index: Mapping[str, int]) -> list[frozenset[int]]:
    """Label ids per video -> sets of label indices."""
    return [frozenset(index[lab] for lab in row) for row in labels]
