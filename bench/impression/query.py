"""A mood query's text -> target values on some impression axes: adjectives of the lexicon
found in the text, else the nearest adjectives in the multilingual sentence encoder's space
(paraphrases and words the lexicon lacks, in any of its languages)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bench.impression.axes import Adjective, Axes, lexicon_hits

if TYPE_CHECKING:
    from bench.text.use_encoder import UseEncoder

NO_MOOD = "the query names no impression (no mood word such as cheerful, calm, sad or tense)"


@dataclass(frozen=True)
class Target:
    """Wanted values on the axes a query names (others are free), and the words behind them."""

    values: dict[str, float]
    words: tuple[str, ...]
    via: str
    """``lexicon`` or ``encoder`` (nearest adjectives by sentence embedding)."""

    def describe(self) -> str:
        wanted = ", ".join(f"{a} {v:+.1f}" for a, v in self.values.items())
        return f"{'/'.join(self.words)} -> {wanted} ({self.via})"


def _combine(axes: Axes, hits: list[tuple[Adjective, float]]) -> dict[str, float]:
    """Weighted mean of the poles each axis is asked for (opposite poles cancel towards 0)."""
    sums: dict[str, list[float]] = {}
    for adj, weight in hits:
        s = sums.setdefault(adj.axis, [0.0, 0.0])
        s[0] += weight * axes.pole_value(adj.pole)
        s[1] += weight
    return {axis: s[0] / s[1] for axis, s in sorted(sums.items(), key=lambda kv: axes.index(kv[0]))}


class QueryMapper:
    """Maps query text to a :class:`Target`, or says why it cannot.

    ``encoder`` (optional) embeds the lexicon once; a query without a lexicon word then takes
    the adjectives whose embedding is within ``min_similarity`` (cosine) of the query's best
    match, at most ``neighbours`` of them, weighted by similarity."""

    def __init__(self, axes: Axes, encoder: UseEncoder | None = None, *, min_similarity: float = 0.52,
                 neighbours: int = 3, margin: float = 0.05) -> None:
        self.axes = axes
        self.encoder = encoder
        self.min_similarity = min_similarity
        self.neighbours = neighbours
        self.margin = margin
        self._entries: list[Adjective] = []
        self._vectors: np.ndarray | None = None

    def _lexicon_vectors(self) -> tuple[list[Adjective], np.ndarray]:
        assert self.encoder is not None
        if self._vectors is None:
            # Stems (ru, pt) are embedded as written: the encoder's subword pieces still carry
            # their meaning well enough to be found as neighbours.
            self._entries = list(self.axes.lexicon)
            self._vectors = self.encoder.encode([a.word for a in self._entries])
        return self._entries, self._vectors

    def map(self, text: str) -> Target | str:
        """The query's target, or the reason (a string) when it names no impression."""
        found = lexicon_hits(self.axes, text)
        if found:
            words = tuple(dict.fromkeys(a.word for a in found))
            return Target(_combine(self.axes, [(a, 1.0) for a in found]), words, "lexicon")
        if self.encoder is None or not text.strip():
            return NO_MOOD
        entries, vectors = self._lexicon_vectors()
        q = self.encoder.encode([text])[0]
        sims = vectors @ q
        best = float(sims.max())
        if best < self.min_similarity:
            return f"{NO_MOOD}; the nearest mood word is {entries[int(sims.argmax())].word!r} " \
                   f"at similarity {best:.2f} < {self.min_similarity:g}"
        order = np.argsort(-sims)[: self.neighbours]
        near = [(entries[i], float(sims[i])) for i in order if sims[i] >= best - self.margin]
        return Target(_combine(self.axes, near), tuple(a.word for a, _ in near), "encoder")


def closeness(estimates: np.ndarray, axes: Axes, target: Target) -> np.ndarray:
    """float ``(n,)`` in [0, 1]: 1 - root-mean-square distance to the target over the axes it
    names, divided by the scale's width (1: exactly the wanted impression)."""
    cols = [axes.index(a) for a in target.values]
    want = np.array(list(target.values.values()), dtype=np.float64)
    diff = estimates[:, cols].astype(np.float64) - want
    width = axes.scale[1] - axes.scale[0]
    return np.clip(1.0 - np.sqrt(np.mean(diff ** 2, axis=1)) / width, 0.0, 1.0)
