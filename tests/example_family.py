"""An example family, as small as a family gets: ``clock`` finds the time a query names
("the moment at 01:30", "at 12 s").

It shows what a family supplies and nothing more: its index (here only durations), how a
query is prepared (a time, or why there is none), which videos to look at, and a score
curve per video with evidence for each window. The engine does the rest: input checks,
proposals, sorting, ``top_k`` and per-query reasons. docs/architecture.md walks through it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bench.engine.proposals import ProposalConfig
from bench.engine.search import Candidate, Curve, EngineSearch, NoAnswer
from bench.errors import BadInput
from bench.evidence import NoEvidence
from bench.retrievers.base import RetrieverConfig, parse_params
from bench.spans import Window
from bench.types import QueryInput, Video

_TIME = re.compile(r"\b(?:(\d{1,2}):)?(\d{1,2}):(\d{2})\b|\b(\d+(?:\.\d+)?)\s*s\b")


class Params(BaseModel):
    """``params`` of a ``clock`` configuration."""

    model_config = ConfigDict(extra="forbid")

    fps: float = Field(default=2.0, gt=0)
    """Samples per second of the score curve."""
    width_s: float = Field(default=2.0, gt=0)
    """How fast the score falls off around the named time (seconds)."""
    proposals: ProposalConfig = Field(
        default_factory=lambda: ProposalConfig(rel_threshold=0.5, min_len_s=4.0))


def named_time_s(text: str) -> float | None:
    """The first time written in ``text`` (``h:mm:ss``, ``mm:ss`` or ``12 s``), in seconds."""
    m = _TIME.search(text)
    if m is None:
        return None
    if m.group(4) is not None:
        return float(m.group(4))
    return int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + int(m.group(3))


class Clock(EngineSearch):
    """The ``clock`` family."""

    def __init__(self, config: RetrieverConfig, device: str = "cpu") -> None:
        self.name = config.name
        self.device = device
        self.params: Params = parse_params(Params, config)
        self.durations_s: dict[str, float] = {}

    def index(self, videos: Sequence[Video], store: Any) -> None:
        for v in videos:
            if not v.duration:
                raise BadInput(f"{self.name}: video {v.vid!r} has no duration")
            self.durations_s[v.vid] = v.duration

    # -- what the engine asks --------------------------------------------------------------

    def ready(self) -> str | None:
        return None if self.durations_s else "nothing indexed; call index() before search()"

    def check_vids(self, vids: Sequence[str]) -> list[str]:
        unknown = [v for v in vids if v not in self.durations_s]
        if unknown:
            raise BadInput(f"video {unknown[0]!r} was not indexed; index it before searching it")
        return list(vids)

    def prepare(self, queries: Sequence[QueryInput], vids: Sequence[str] | None) -> list[float | NoAnswer]:
        times = [named_time_s(q.text or "") for q in queries]
        return [NoAnswer("the query names no time (write 01:30 or 90 s)") if t is None else t for t in times]

    def candidates(self, prepared: float, vids: Sequence[str] | None, top_k: int) -> list[Candidate]:
        pool = vids if vids is not None else sorted(self.durations_s)
        return [Candidate(v) for v in pool if self.durations_s[v] > prepared][:top_k]

    def score(self, prepared: float, candidate: Candidate, max_windows: int) -> Curve:
        p = self.params
        duration = self.durations_s[candidate.vid]
        times = np.arange(0.0, duration, 1.0 / p.fps)
        scores = np.exp(-(((times - prepared) / p.width_s) ** 2))

        def explain(w: Window) -> NoEvidence:
            return NoEvidence(method="clock", note=f"the query names {prepared:g} s")

        return Curve(times, scores, duration, p.fps, p.proposals, explain)

    def provenance(self) -> dict[str, Any]:
        return {"family": "clock", "random_init": False, "device": self.device}
