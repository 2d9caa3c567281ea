"""Whether the Space trusts a moment: each configuration's calibrated threshold (from its
result files, the committed snapshot by default) applied to the moments of a search, and the
confidence a visitor reads instead of a raw score.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bench.types import Moment

if TYPE_CHECKING:
    from bench.eval.calibration import Calibration
    from bench.eval.results import ResultFile

BAR_CELLS = 10


def calibrations(results: Sequence[ResultFile], dataset: str) -> dict[str, Calibration]:
    """Configuration -> its grounding threshold: the one calibrated on ``dataset`` when there is
    one, else the one calibrated on another set (newest first). Thresholds of corpus runs are
    left out: the Space grounds in the videos a visitor picks."""
    out: dict[str, Calibration] = {}
    ranked = sorted((r for r in results if r.mode == "grounding" and r.status == "ok"
                     and r.calibration is not None and r.calibration.status == "calibrated"),
                    key=lambda r: (r.dataset == dataset, r.created_at or ""))
    for r in ranked:  # later (better) rows overwrite earlier ones
        assert r.calibration is not None
        out[r.retriever] = r.calibration
    return out


def mark(moments: Sequence[Moment], calibration: Calibration | None,
         query: str | None) -> list[Moment]:
    """The moments of a search for the text ``query`` with ``confident`` set (left ``None``
    without a threshold)."""
    return [dataclasses.replace(m, confident=None if calibration is None
                                else calibration.confident(m, query)) for m in moments]


def strength(m: Moment, calibration: Calibration | None, best: float,
             query: str | None = None) -> float:
    """How strong a moment is, in [0, 1]: the share of answers to questions without an answer
    that it beats (calibrated), else its score relative to the best of its list."""
    if calibration is not None:
        got = calibration.strength(m, query)
        if got is not None:
            return got
    return max(0.0, min(1.0, m.score / best)) if best > 0 else 0.0


def bar(fraction: float, cells: int = BAR_CELLS) -> str:
    """A text confidence bar (``▰▰▰▰▰▰▰▱▱▱``) that reads the same in a caption and a table."""
    filled = round(max(0.0, min(1.0, fraction)) * cells)
    return "▰" * filled + "▱" * (cells - filled)


def verdict(m: Moment) -> str:
    if m.confident is None:
        return "no threshold"
    return "confident" if m.confident else "weak"
