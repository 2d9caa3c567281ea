"""Chance floors: the ``chance`` family answers without looking at the video or the query's
meaning, so every leaderboard shows what a method gains over guessing.

``random``: seeded uniform windows with lengths drawn from the labelled windows of a set;
``prior``: the most common window (relative position and length) of a set's labelled
queries, leaving out the query being answered. Both are floors, never ranked as methods.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bench.engine.search import Candidate, EngineSearch, NoAnswer
from bench.errors import BadInput
from bench.evidence import NoEvidence
from bench.retrievers.base import RetrieverConfig, parse_params
from bench.types import Moment, QueryInput, QuerySet, Video

CHANCE_FAMILY = "chance"
"""Results of this family are floors: leaderboards label them so and never rank them."""


class Params(BaseModel):
    """``params`` of a ``chance`` configuration."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["random", "prior"]
    learn_from: str = "synthetic-v1"
    """The labelled set whose window lengths (``random``) or window positions (``prior``)
    are learnt: a registered name or a directory."""
    seed: int = 0
    bins: int = Field(default=10, ge=2, le=100)
    """``prior``: relative start and length are counted in this many bins each."""


@dataclass(frozen=True)
class Labelled:
    """One labelled window of the learning set, relative to its video's duration."""

    vid: str | None
    text: str
    start_frac: float
    length_frac: float


def learn(qs: QuerySet) -> list[Labelled]:
    """The first window of every query with windows and a duration, as fractions of it."""
    out = []
    for q in qs.queries:
        if not q.relevant_windows or not q.duration:
            continue
        start, end = q.relevant_windows[0]
        out.append(Labelled(q.vid, q.query, start / q.duration, (end - start) / q.duration))
    return out


def _rng(seed: int, *parts: object) -> np.random.Generator:
    # A per-(query, video) stream: the same question gets the same guess in any order or batch.
    digest = hashlib.sha256(repr((seed, *parts)).encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


class Chance(EngineSearch):
    """The ``chance`` family (``random`` or ``prior`` by ``params.kind``)."""

    def __init__(self, config: RetrieverConfig, device: str = "cpu") -> None:
        self.name = config.name
        self.device = device
        self.params: Params = parse_params(Params, config)
        self.durations_s: dict[str, float] = {}
        self.labelled: list[Labelled] | None = None

    def index(self, videos: Sequence[Video], store: Any) -> None:
        for v in videos:
            if not v.duration:
                raise BadInput(f"{self.name}: video {v.vid!r} has no duration")
            self.durations_s[v.vid] = v.duration
        if self.labelled is None:
            from bench.datasets import resolve_dataset

            self.labelled = learn(resolve_dataset(self.params.learn_from))
            if not self.labelled:
                raise BadInput(f"{self.name}: {self.params.learn_from} has no labelled windows "
                               "to learn from")

    def ready(self) -> str | None:
        return None if self.durations_s else "nothing indexed; call index() before search()"

    def check_vids(self, vids: Sequence[str]) -> list[str]:
        unknown = [v for v in vids if v not in self.durations_s]
        if unknown:
            raise BadInput(f"video {unknown[0]!r} was not indexed; index it before searching it")
        return list(vids)

    def prepare(self, queries: Sequence[QueryInput],
                vids: Sequence[str] | None) -> list[QueryInput | NoAnswer]:
        return list(queries)

    def candidates(self, prepared: QueryInput, vids: Sequence[str] | None,
                   top_k: int) -> list[Candidate]:
        return [Candidate(v) for v in (vids if vids is not None else sorted(self.durations_s))]

    def _others(self, query: QueryInput, vid: str) -> list[Labelled]:
        """The learning windows less those of the query being answered (same text), in every
        candidate video alike: leaving them out only in the query's own video would score that
        video apart from the others and leak the answer to a corpus search."""
        assert self.labelled is not None
        kept = [w for w in self.labelled if w.text != (query.text or "")]
        return kept or self.labelled

    def score(self, prepared: QueryInput, candidate: Candidate, max_windows: int) -> list[Moment]:
        duration = self.durations_s[candidate.vid]
        others = self._others(prepared, candidate.vid)
        if self.params.kind == "random":
            return self._random(prepared, candidate.vid, duration, others, max_windows)
        return self._prior(candidate.vid, duration, others, max_windows)

    def _random(self, query: QueryInput, vid: str, duration: float, others: list[Labelled],
                n: int) -> list[Moment]:
        rng = _rng(self.params.seed, query.qid, query.text, vid)
        lengths = np.array([w.length_frac for w in others])
        out = []
        for _ in range(n):
            length = min(1.0, float(rng.choice(lengths))) * duration
            start = float(rng.uniform(0.0, max(duration - length, 0.0)))
            out.append(Moment(vid, start, min(duration, start + length), float(rng.uniform()),
                              NoEvidence(method="chance", note="a random window (chance floor)")))
        return sorted(out, key=lambda m: -m.score)

    def _prior(self, vid: str, duration: float, others: list[Labelled], n: int) -> list[Moment]:
        bins = self.params.bins
        counts = Counter((min(int(w.start_frac * bins), bins - 1),
                          min(int(w.length_frac * bins), bins - 1)) for w in others)
        out = []
        for (s_bin, l_bin), count in counts.most_common(n):
            length = (l_bin + 0.5) / bins * duration
            start = min((s_bin + 0.5) / bins * duration, max(duration - length, 0.0))
            out.append(Moment(vid, start, min(duration, start + length), count / len(others),
                              NoEvidence(method="chance",
                                         note=f"the most common window of {len(others)} "
                                              "labelled queries (prior floor)")))
        return out

    def provenance(self) -> dict[str, Any]:
        return {"family": CHANCE_FAMILY, "kind": self.params.kind, "seed": self.params.seed,
                "learn_from": self.params.learn_from, "random_init": False, "device": self.device}
