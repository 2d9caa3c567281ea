"""Learning impressions from a user's ratings: a CSV of (item, axis, rating, condition) ->
per-axis multiple regression of the combined impression on the music-only and picture-only
ones (as in the study behind the axes), and a direct features -> impression regression;
ordinary least squares with confidence intervals, scored by 5-fold cross-validation."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from bench.errors import BadInput
from bench.fsio import atomic_write_text
from bench.impression.axes import Axes

Condition = Literal["music-only", "picture-only", "both"]
CONDITIONS: tuple[Condition, ...] = ("music-only", "picture-only", "both")
COLUMNS = ("item", "axis", "rating", "condition")
WITHIN = 0.5
"""An estimate counts as right when it is within this of the rating (the study's measure)."""


@dataclass(frozen=True)
class Ratings:
    """Mean rating per (item, axis, condition); ``item`` is a video id or a window
    (``vid@start-end``), whatever the caller's design matrix is keyed by."""

    means: dict[tuple[str, str, str], float]
    counts: dict[tuple[str, str, str], int]
    source: str

    def items(self, axis: str, condition: str) -> list[str]:
        return sorted(i for (i, a, c) in self.means if a == axis and c == condition)


def load_ratings(path: Path, axes: Axes) -> Ratings:
    """Read and check a ratings CSV (header ``item,axis,rating,condition``; more columns, e.g.
    ``rater``, are ignored). A bad row raises BadInput naming the file, line and rule."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the ratings ({exc})") from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise BadInput(f"{path}: line 1: missing column(s) {', '.join(missing)} "
                       f"(need {', '.join(COLUMNS)})")
    lo, hi = axes.scale
    sums: dict[tuple[str, str, str], float] = {}
    counts: dict[tuple[str, str, str], int] = {}
    for line, row in enumerate(reader, start=2):
        item, axis, cond = ((row[c] or "").strip() for c in ("item", "axis", "condition"))
        if not item:
            raise BadInput(f"{path}: line {line}: field 'item' is empty")
        if axis not in axes.ids:
            raise BadInput(f"{path}: line {line}: field 'axis': unknown axis {axis!r} "
                           f"(known: {', '.join(axes.ids)})")
        if cond not in CONDITIONS:
            raise BadInput(f"{path}: line {line}: field 'condition': {cond!r} is not one of "
                           f"{', '.join(CONDITIONS)}")
        try:
            rating = float(row["rating"])
        except (TypeError, ValueError):
            raise BadInput(f"{path}: line {line}: field 'rating': {row['rating']!r} "
                           "is not a number") from None
        if not lo <= rating <= hi:
            raise BadInput(f"{path}: line {line}: field 'rating': {rating:g} is outside the scale "
                           f"[{lo:g}, {hi:g}]")
        key = (item, axis, cond)
        sums[key] = sums.get(key, 0.0) + rating
        counts[key] = counts.get(key, 0) + 1
    if not sums:
        raise BadInput(f"{path}: no ratings (only a header)")
    return Ratings({k: v / counts[k] for k, v in sums.items()}, counts, str(path))


@dataclass(frozen=True)
class OLSFit:
    """Coefficients with standard errors and 95 % confidence intervals (t distribution)."""

    names: tuple[str, ...]
    coef: tuple[float, ...]
    se: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    r2: float
    n: int


def ols(x: np.ndarray, y: np.ndarray, names: Sequence[str], level: float = 0.95) -> OLSFit:
    """Least squares of ``y`` ``(n,)`` on ``x`` ``(n, p)`` (include an intercept column
    yourself). Needs more rows than columns; a rank-deficient ``x`` raises BadInput."""
    from scipy import stats

    n, p = x.shape
    if n <= p:
        raise BadInput(f"{n} rated items cannot fit {p} coefficients; rate more items")
    xtx = x.T @ x
    if np.linalg.matrix_rank(xtx) < p:
        raise BadInput("the predictors are collinear (e.g. a feature constant over the rated items)")
    coef = np.linalg.solve(xtx, x.T @ y)
    resid = y - x @ coef
    dof = n - p
    sigma2 = float(resid @ resid) / dof
    se = np.sqrt(np.diag(np.linalg.inv(xtx)) * sigma2)
    t = float(stats.t.ppf(0.5 + level / 2, dof))
    tss = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(resid @ resid) / tss if tss > 0 else 0.0
    return OLSFit(tuple(names), tuple(coef.tolist()), tuple(se.tolist()),
                  tuple((coef - t * se).tolist()), tuple((coef + t * se).tolist()), r2, n)


@dataclass(frozen=True)
class CVScores:
    """Held-out scores of k-fold cross-validation: share of estimates within
    :data:`WITHIN` of the rating, root-mean-square error, Pearson correlation."""

    within: float
    rmse: float
    pearson: float
    folds: int
    n: int


def cross_validate(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> CVScores:
    """k-fold cross-validation of :func:`ols` (items shuffled with ``seed``)."""
    n = len(y)
    if n < folds:
        raise BadInput(f"{n} rated items are too few for {folds}-fold cross-validation")
    order = np.random.default_rng(seed).permutation(n)
    pred = np.zeros(n)
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        coef = np.linalg.lstsq(x[train], y[train], rcond=None)[0]
        pred[test] = x[test] @ coef
    err = pred - y
    pearson = float(np.corrcoef(pred, y)[0, 1]) if np.std(pred) > 0 and np.std(y) > 0 else 0.0
    return CVScores(float(np.mean(np.abs(err) <= WITHIN)), float(np.sqrt(np.mean(err ** 2))), pearson,
                    folds, n)


@dataclass(frozen=True)
class AxisReport:
    """One axis: the fit and its cross-validation, or why the axis was not fitted."""

    axis: str
    fit: OLSFit | None = None
    cv: CVScores | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _fit_axis(axis: str, x: np.ndarray, y: np.ndarray, names: Sequence[str], folds: int) -> AxisReport:
    try:
        return AxisReport(axis, ols(x, y, names), cross_validate(x, y, folds))
    except BadInput as exc:
        return AxisReport(axis, reason=str(exc))


def fit_conditions(ratings: Ratings, axes: Axes, folds: int = 5) -> list[AxisReport]:
    """Per axis: both ~ b0 + b_music * music-only + b_picture * picture-only, over the items
    rated in all three conditions. An axis without such items gets a reason, not a fit."""
    out = []
    for axis in axes.ids:
        both = ratings.items(axis, "both")
        if not both:
            out.append(AxisReport(axis, reason=f"axis {axis}: no ratings in condition 'both'"))
            continue
        keep = [i for i in both if (i, axis, "music-only") in ratings.means
                and (i, axis, "picture-only") in ratings.means]
        if not keep:
            out.append(AxisReport(axis, reason=f"axis {axis}: no item is rated music-only, picture-only "
                                               "and both"))
            continue
        x = np.array([[1.0, ratings.means[(i, axis, "music-only")], ratings.means[(i, axis, "picture-only")]]
                      for i in keep])
        y = np.array([ratings.means[(i, axis, "both")] for i in keep])
        out.append(_fit_axis(axis, x, y, ("intercept", "music-only", "picture-only"), folds))
    return out


def fit_direct(ratings: Ratings, axes: Axes, design: Mapping[str, np.ndarray], names: Sequence[str],
               folds: int = 5) -> list[AxisReport]:
    """Per axis: the ``both`` rating ~ intercept + features (``design[item]``, columns
    ``names``). Items without features are left out; an axis with too few gets a reason."""
    out = []
    for axis in axes.ids:
        keep = [i for i in ratings.items(axis, "both") if i in design]
        if not keep:
            out.append(AxisReport(axis, reason=f"axis {axis}: no item rated 'both' has features"))
            continue
        x = np.array([np.concatenate([[1.0], np.asarray(design[i], dtype=np.float64)]) for i in keep])
        y = np.array([ratings.means[(i, axis, "both")] for i in keep])
        out.append(_fit_axis(axis, x, y, ("intercept", *names), folds))
    return out


@dataclass(frozen=True)
class DirectModel:
    """A learnt features -> impression model: per axis, coefficients over the prior's cues
    (:func:`bench.impression.prior.cue_matrix`) with an intercept; axes without a fit fall
    back to the prior."""

    columns: tuple[str, ...]
    coef: dict[str, tuple[float, ...]]

    @classmethod
    def from_reports(cls, reports: Sequence[AxisReport], columns: Sequence[str]) -> DirectModel:
        return cls(tuple(columns), {r.axis: r.fit.coef for r in reports if r.fit is not None})

    def save(self, path: Path) -> None:
        atomic_write_text(Path(path), json.dumps({"kind": "impression-direct", "columns": list(self.columns),
                                                  "coef": {a: list(c) for a, c in self.coef.items()}},
                                                 indent=2) + "\n")

    @classmethod
    def load(cls, path: Path, axes: Axes) -> DirectModel:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
            columns = tuple(str(c) for c in doc["columns"])
            coef = {str(a): tuple(float(v) for v in c) for a, c in doc["coef"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BadInput(f"{path}: not an impression model written by impression_fit.py ({exc})") from None
        for a, c in coef.items():
            axes.index(a)
            if len(c) != len(columns) + 1:
                raise BadInput(f"{path}: axis {a}: {len(c)} coefficients for {len(columns)} "
                               "columns and the intercept")
        return cls(columns, coef)

    def predict(self, audio: np.ndarray | None, picture: np.ndarray, cuts_per_min: np.ndarray) -> np.ndarray:
        from bench.impression.axes import load_axes
        from bench.impression.prior import cue_matrix, estimate

        axes = load_axes()
        names, x = cue_matrix(audio, picture, cuts_per_min)
        if tuple(names) != self.columns:
            raise BadInput(f"the learnt model's columns {self.columns} differ from this "
                           f"version's cues {tuple(names)}; fit it again")
        out = estimate(axes, audio, picture, cuts_per_min)
        design = np.hstack([np.ones((len(x), 1)), x])
        for axis, c in self.coef.items():
            out[:, axes.index(axis)] = np.clip(design @ np.asarray(c), *axes.scale)
        return out
