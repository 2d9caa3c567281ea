"""The ``impression`` family: finds the part of a video that feels as the query asks ("the
cheerful part", 「静かな場面」, "a parte tensa") by closeness in impression space (MIREX
clusters C1-C5, cute, valence, arousal) estimated per window from music and picture."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bench.engine.extent import ExtentConfig, VideoExtents
from bench.engine.proposals import ProposalConfig
from bench.engine.search import Candidate, Curve, EngineSearch, NoAnswer
from bench.errors import BadInput
from bench.evidence import ImpressionEvidence
from bench.impression.axes import Axes, load_axes
from bench.impression.features import FeatureParams, VideoFeatures, cuts_per_minute, index_features
from bench.impression.query import QueryMapper, Target, closeness
from bench.impression.ratings import DirectModel
from bench.retrievers.base import RetrieverConfig, parse_params
from bench.spans import Window
from bench.types import QueryInput, Video


class Params(BaseModel):
    """``params`` of an ``impression`` configuration."""

    model_config = ConfigDict(extra="forbid")

    features: FeatureParams = Field(default_factory=FeatureParams)
    estimator: str = "prior"
    """``prior`` (the literature mapping, :mod:`bench.impression.prior`) or the path of a model
    learnt from ratings (``python scripts/impression_fit.py ... --save FILE``)."""
    encoder: bool = True
    """Map queries without a lexicon word through the multilingual sentence encoder (the
    configuration's ``model``); off: the lexicon alone."""
    min_similarity: float = Field(default=0.52, ge=0, le=1)
    """Cosine similarity a query needs to its nearest mood word (through the encoder); below
    it the query names no impression ("the dog" reaches 0.49, "the sleepy bit" 0.54)."""
    proposals: ProposalConfig = Field(default_factory=lambda: ProposalConfig(
        rel_threshold=0.6, min_len_s=4.0, nms_iou=0.3))
    extent: ExtentConfig = Field(default_factory=ExtentConfig)


@dataclass
class Indexed:
    """One video's windows and their estimated impressions."""

    features: VideoFeatures
    estimates: np.ndarray
    """``(n_windows, n_axes)`` on the axes' scale."""
    basis: str


class Impression(EngineSearch):
    """The ``impression`` family."""

    def __init__(self, config: RetrieverConfig, device: str = "cpu") -> None:
        self.name = config.name
        self.device = device
        self.params: Params = parse_params(Params, config)
        self.axes: Axes = load_axes()
        self.model = config.model
        self.learnt: DirectModel | None = None
        if self.params.estimator != "prior":
            self.learnt = DirectModel.load(Path(self.params.estimator), self.axes)
        self.videos: dict[str, Indexed] = {}
        self._mapper: QueryMapper | None = None

    # -- index -----------------------------------------------------------------------------

    def index(self, videos: Sequence[Video], store: Any) -> None:
        p = self.params
        self.extents = VideoExtents.build(p.extent, videos, store, into=self.extents)
        for vid, f in index_features(store, videos, p.features).items():
            bounds = self.extents.get(vid)
            shots = bounds.units.get("shot") if bounds is not None else None
            cuts = cuts_per_minute(shots, f.starts_s, p.features.window_s)
            self.videos[vid] = Indexed(f, self.estimate(f, cuts), f.audio_note or "music+picture")

    def estimate(self, f: VideoFeatures, cuts_per_min: np.ndarray) -> np.ndarray:
        """Axis values per window of one video (prior, or the learnt model)."""
        from bench.impression.prior import estimate

        if self.learnt is not None:
            return self.learnt.predict(f.audio, f.picture, cuts_per_min)
        return estimate(self.axes, f.audio, f.picture, cuts_per_min)

    def timeline(self, vid: str) -> tuple[np.ndarray, np.ndarray, str]:
        """(window centres in seconds, ``(n, n_axes)`` estimates, basis) of an indexed video."""
        if vid not in self.videos:
            raise BadInput(f"video {vid!r} was not indexed; index it before asking for its impressions")
        got = self.videos[vid]
        return got.features.starts_s + self.params.features.window_s / 2, got.estimates, got.basis

    # -- what the engine asks --------------------------------------------------------------

    def ready(self) -> str | None:
        return None if self.videos else "nothing indexed; call index() before search()"

    def check_vids(self, vids: Sequence[str]) -> list[str]:
        unknown = [v for v in vids if v not in self.videos]
        if unknown:
            raise BadInput(f"video {unknown[0]!r} was not indexed; index it before searching it")
        return list(vids)

    def mapper(self) -> QueryMapper:
        if self._mapper is None:
            encoder = None
            if self.params.encoder and self.model is not None:
                from bench.modelref import resolve
                from bench.text.use_encoder import UseEncoder

                encoder = UseEncoder(resolve(self.model).location)
            self._mapper = QueryMapper(self.axes, encoder, min_similarity=self.params.min_similarity)
        return self._mapper

    def prepare(self, queries: Sequence[QueryInput], vids: Sequence[str] | None) -> list[Target | NoAnswer]:
        out: list[Target | NoAnswer] = []
        for q in queries:
            if not q.text:
                out.append(NoAnswer("an impression query needs text (an example image has no mood words)"))
                continue
            got = self.mapper().map(q.text)
            out.append(NoAnswer(got) if isinstance(got, str) else got)
        return out

    def candidates(self, prepared: Target, vids: Sequence[str] | None, top_k: int) -> list[Candidate]:
        return [Candidate(v) for v in (vids if vids is not None else sorted(self.videos))]

    def score(self, prepared: Target, candidate: Candidate, max_windows: int) -> Curve:
        got = self.videos[candidate.vid]
        f = got.features
        scores = closeness(got.estimates, self.axes, prepared)
        hop = self.params.features.hop_s
        centres = f.starts_s + self.params.features.window_s / 2 - hop / 2
        times = np.clip(centres, 0.0, max(f.duration_s - hop, 0.0))

        def explain(w: Window) -> ImpressionEvidence:
            inside = (times >= w.start - 1e-9) & (times < w.end)
            rows = got.estimates[inside] if inside.any() else got.estimates
            mean = rows.mean(axis=0)
            estimated = {a: float(mean[self.axes.index(a)]) for a in prepared.values}
            return ImpressionEvidence(dict(prepared.values), estimated, got.basis, prepared.words)

        return Curve(times, scores, f.duration_s, 1.0 / hop, self.params.proposals, explain)

    def provenance(self) -> dict[str, Any]:
        from bench.impression.audio import librosa_version

        out: dict[str, Any] = {"family": "impression", "estimator": self.params.estimator,
                               "librosa": librosa_version(), "random_init": False, "device": self.device}
        if self.model is not None and self.params.encoder:
            out["model"] = {"id": self.model.id, "revision": self.model.revision}
        return out
