"""Fusion of other retrievers: reciprocal-rank fusion or weighted normalized scores, with
moments of different members merged when they overlap in time.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bench.engine.search import QueryResult, check_top_k, rank_moments
from bench.errors import BackendError, BadInput, Unavailable
from bench.evidence import FusedEvidence, MemberMatch
from bench.retrievers.base import Retriever, RetrieverConfig, parse_params
from bench.spans import temporal_iou
from bench.types import Moment, QueryInput, Video

if TYPE_CHECKING:
    from bench.store import FeatureStore
    from bench.workspace import Workspace

log = logging.getLogger(__name__)

Method = Literal["rrf", "weighted"]
Span = Literal["mean", "best", "union"]

# Configuration names being built, so a fusion that (indirectly) contains itself is caught.
_BUILDING: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("fusion_building",
                                                                           default=())


class Params(BaseModel):
    """``params`` of a ``fusion`` configuration."""

    model_config = ConfigDict(extra="forbid")

    members: list[str] = Field(min_length=1)
    """Configuration names in ``models/`` (or YAML paths) of the retrievers to fuse."""
    method: Method = "rrf"
    """``rrf``: sum of ``weight / (k + rank)``; ``weighted``: sum of ``weight * score``, each
    member's scores min-max normalized to [0, 1] per query."""
    k: float = Field(default=60.0, gt=0)
    """RRF constant (60 in Cormack et al. 2009): larger flattens the rank discount."""
    weights: dict[str, float] = Field(default_factory=dict)
    """Per member name; members not listed weigh 1."""
    iou_threshold: float = Field(default=0.3, gt=0, le=1)
    """Moments of different members in one video with temporal IoU >= this are one moment."""
    span: Span = "mean"
    """Merged window: score-weighted mean of the members' boundaries, the best-ranked
    member's window, or the union."""
    member_top_k: int = Field(default=50, ge=1)
    """Moments requested from each member (at least the caller's ``top_k``)."""
    require_all: bool = False
    """``False``: a member that is unavailable (no weights offline) is left out and recorded;
    the fusion is unavailable only when no member is left."""

    @model_validator(mode="after")
    def _check(self) -> Params:
        if len(set(self.members)) != len(self.members):
            raise ValueError(f"members are listed twice: {self.members}")
        unknown = sorted(set(self.weights) - set(self.members))
        if unknown:
            raise ValueError(f"weights name members that are not in members: {unknown}")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights must be >= 0")
        return self


@dataclass
class _Cluster:
    vid: str
    parts: dict[str, tuple[int, Moment, float]] = field(default_factory=dict)
    """member -> (1-based rank, moment, contribution to the fused score)."""

    @property
    def score(self) -> float:
        return sum(c for _, _, c in self.parts.values())

    def best(self) -> Moment:
        return max(self.parts.values(), key=lambda p: p[2])[1]

    def window(self, span: Span) -> tuple[float, float]:
        if span == "best":
            m = self.best()
            return m.start, m.end
        if span == "union":
            return (min(m.start for _, m, _ in self.parts.values()),
                    max(m.end for _, m, _ in self.parts.values()))
        total = sum(c for _, _, c in self.parts.values())
        if total <= 0:
            m = self.best()
            return m.start, m.end
        start = sum(m.start * c for _, m, c in self.parts.values()) / total
        end = sum(m.end * c for _, m, c in self.parts.values()) / total
        return start, end


def _normalized(moments: Sequence[Moment]) -> list[float]:
    if not moments:
        return []
    lo, hi = min(m.score for m in moments), max(m.score for m in moments)
    if hi - lo <= 1e-12:
        return [1.0] * len(moments)
    return [(m.score - lo) / (hi - lo) for m in moments]


def fuse(results: Mapping[str, Sequence[Moment]], *, method: Method = "rrf", k: float = 60.0,
         weights: Mapping[str, float] | None = None, iou_threshold: float = 0.3,
         span: Span = "mean", top_k: int | None = None) -> list[Moment]:
    """Fuse per-member ranked moments of one query into moments (at most ``top_k``), best first.

    ``results``: member name -> its moments, best first. Each member moment contributes
    ``weight / (k + rank)`` (``rrf``, rank from 1) or ``weight * normalized score``
    (``weighted``). Moments are visited by descending contribution; one joins the first
    cluster of the same video whose best window overlaps it by IoU >= ``iou_threshold`` and
    holds nothing from its member yet, else starts a cluster. A cluster's score is the sum
    of its contributions, so agreement between members lifts a moment. Evidence keeps each
    member's rank, score, window and own evidence. Scores are fused scores (RRF values are
    small: 1/61 for a single first place). An unknown ``method`` or ``span`` is BadInput.
    """
    if method not in get_args(Method) or span not in get_args(Span):
        raise BadInput(f"fusion method {method!r} / span {span!r}: choose a method of "
                       f"{', '.join(get_args(Method))} and a span of {', '.join(get_args(Span))}")
    weights = weights or {}
    entries: list[tuple[float, str, int, Moment]] = []
    for name, moments in results.items():
        w = float(weights.get(name, 1.0))
        if w <= 0:
            continue
        ranked = sorted(moments, key=lambda m: -m.score)
        contrib = ([w / (k + r) for r in range(1, len(ranked) + 1)] if method == "rrf"
                   else [w * x for x in _normalized(ranked)])
        entries += [(c, name, r, m) for r, (c, m) in enumerate(zip(contrib, ranked, strict=True), 1)]
    entries.sort(key=lambda e: (-e[0], e[1], e[2]))
    clusters: list[_Cluster] = []
    for weight, name, rank, moment in entries:
        home = None
        for c in clusters:
            if c.vid != moment.vid or name in c.parts:
                continue
            best = c.best()
            if temporal_iou((best.start, best.end), (moment.start, moment.end)) >= iou_threshold:
                home = c
                break
        if home is None:
            home = _Cluster(vid=moment.vid)
            clusters.append(home)
        home.parts[name] = (rank, moment, weight)
    clusters.sort(key=lambda c: -c.score)
    out = []
    for c in clusters[:top_k]:
        start, end = c.window(span)
        members = {name: MemberMatch(rank, m.score, m.start, m.end, m.evidence)
                   for name, (rank, m, _) in sorted(c.parts.items())}
        out.append(Moment(vid=c.vid, start=start, end=end, score=c.score,
                          evidence=FusedEvidence(method, members)))
    return out


class Fusion:
    """The ``fusion`` family: runs its member retrievers and fuses their moments with :func:`fuse`.

    Members are other configurations: with a ``workspace``, the workspace's own retrievers
    (built once, shared with every other user of the workspace); without one, built here
    with :func:`bench.retrievers.build_retriever` (or handed in with :meth:`from_retrievers`).
    """

    def __init__(self, config: RetrieverConfig, device: str = "cpu",
                 members: Mapping[str, Retriever] | None = None, *,
                 workspace: Workspace | None = None) -> None:
        self.name = config.name
        self.config = config
        self.device = device
        self.workspace = workspace
        self.params: Params = parse_params(Params, config)
        self.unavailable: dict[str, str] = {}
        self.members: dict[str, Retriever] = dict(members) if members is not None else self._build()
        if members is not None and set(members) != set(self.params.members):
            raise BadInput(f"{self.name}: members given {sorted(members)} do not match "
                           f"params.members {self.params.members}")

    @classmethod
    def from_retrievers(cls, config: RetrieverConfig, members: Mapping[str, Retriever],
                        device: str = "cpu") -> Fusion:
        """A fusion of retrievers already built (and possibly already indexed)."""
        return cls(config, device, members=members)

    def _build(self) -> dict[str, Retriever]:
        from bench.retrievers import build_retriever

        stack = _BUILDING.get()
        if self.name in stack:
            raise BadInput(f"fusion {self.name!r} contains itself: {' -> '.join((*stack, self.name))}")
        token = _BUILDING.set((*stack, self.name))
        try:
            built: dict[str, Retriever] = {}
            for name in self.params.members:
                try:
                    built[name] = (_SharedMember(name, self.workspace) if self.workspace is not None
                                   else build_retriever(name, self.device))
                except Unavailable as exc:
                    self._drop(name, str(exc))
        finally:
            _BUILDING.reset(token)
        self._check_left(built)
        return built

    def _drop(self, name: str, reason: str) -> None:
        if self.params.require_all:
            raise Unavailable(f"{self.name}: member {name} is unavailable: {reason}")
        self.unavailable[name] = reason
        log.warning("%s: member %s left out: %s", self.name, name, reason)

    def _check_left(self, members: Mapping[str, Retriever]) -> None:
        if not members:
            why = "; ".join(f"{k}: {v}" for k, v in self.unavailable.items())
            raise Unavailable(f"{self.name}: no member is available ({why})")

    def index(self, videos: Sequence[Video], store: FeatureStore) -> None:
        """Index every member (each caches its own features); members from a workspace are
        indexed through it, in its own store."""
        for name in list(self.members):
            try:
                self.members[name].index(videos, store)
            except Unavailable as exc:  # e.g. weights found missing only when loading
                self._drop(name, str(exc))
                del self.members[name]
        self._check_left(self.members)

    def search(self, queries: Sequence[QueryInput], *, top_k: int = 10,
               vids: Sequence[str] | None = None) -> list[list[Moment]]:
        """Per query, at most ``top_k`` fused moments by descending fused score."""
        return [r.moments for r in self.search_results(queries, top_k=top_k, vids=vids)]

    def search_results(self, queries: Sequence[QueryInput], *, top_k: int = 10,
                       vids: Sequence[str] | None = None) -> list[QueryResult]:
        """Each member's results (from its own engine search) fused per query; a query with
        no fused moment carries its members' reasons."""
        check_top_k(top_k)
        p = self.params
        per_member = {name: member.search_results(queries, top_k=max(p.member_top_k, top_k), vids=vids)
                      for name, member in self.members.items()}
        out = []
        for i in range(len(queries)):
            fused = fuse({name: res[i].moments for name, res in per_member.items()}, method=p.method,
                         k=p.k, weights=p.weights, iou_threshold=p.iou_threshold, span=p.span)
            why = [f"{name}: {res[i].reason}" for name, res in per_member.items() if res[i].reason]
            reason = "; ".join(why) if why and not fused else None
            # Fused only from what answered: it failed on the backend when every member did.
            backend_errors = [e for res in per_member.values() for e in res[i].backend_errors]
            failed = bool(per_member) and all(res[i].backend_failed for res in per_member.values())
            # fuse() ranks ties by contribution, member and rank: the engine keeps that order.
            out.append(QueryResult(rank_moments(fused, top_k, ties="given"), reason, backend_errors,
                                   backend_failed=failed))
        return out

    def stats(self) -> dict[str, Any]:
        return {name: member.stats() for name, member in self.members.items()}

    def reset_stats(self) -> None:
        for member in self.members.values():
            member.reset_stats()

    def index_backend_errors(self) -> dict[str, BackendError]:
        """Per video, the first member's backend error while indexing it."""
        out: dict[str, BackendError] = {}
        for member in self.members.values():
            for vid, err in member.index_backend_errors().items():
                out.setdefault(vid, err)
        return out

    def provenance(self) -> dict[str, Any]:
        p = self.params
        members = {name: m.provenance() for name, m in self.members.items()}
        return {"family": "fusion", "method": p.method, "k": p.k, "weights": p.weights,
                "iou_threshold": p.iou_threshold, "span": p.span, "members": members,
                "unavailable": dict(self.unavailable), "device": self.device,
                "random_init": any(bool(m.get("random_init")) for m in members.values())}


class _SharedMember:
    """A fusion member that its workspace holds and shares with other users, who may index it
    on other videos at any time: it is indexed through the workspace, and each search first
    re-indexes it on this fusion's videos when needed, under the member's lock."""

    def __init__(self, spec: str, workspace: Workspace) -> None:
        self.spec = spec
        self.workspace = workspace
        self.retriever = workspace.retriever(spec)
        self.name = self.retriever.name
        self.device = self.retriever.device
        self.videos: list[Video] | None = None

    def index(self, videos: Sequence[Video], store: FeatureStore) -> None:
        self.workspace.index(self.spec, videos)
        self.videos = list(videos)

    def search(self, queries: Sequence[QueryInput], *, top_k: int = 10,
               vids: Sequence[str] | None = None) -> list[list[Moment]]:
        return [r.moments for r in self.search_results(queries, top_k=top_k, vids=vids)]

    def search_results(self, queries: Sequence[QueryInput], *, top_k: int = 10,
                       vids: Sequence[str] | None = None) -> list[QueryResult]:
        with self.workspace.holding(self.spec) as r:
            if self.videos is not None:  # a no-op unless someone else indexed it since
                self.workspace.index(self.spec, self.videos)
            return r.search_results(queries, top_k=top_k, vids=vids)

    def stats(self) -> dict[str, Any]:
        return self.retriever.stats()

    def reset_stats(self) -> None:
        self.retriever.reset_stats()

    def index_backend_errors(self) -> dict[str, BackendError]:
        return self.retriever.index_backend_errors()

    def provenance(self) -> dict[str, Any]:
        return self.retriever.provenance()
