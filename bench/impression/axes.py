"""The impression axes as data (``axes.yaml``: MIREX clusters C1-C5, cute C6, valence,
arousal) and the adjective lexicon that turns mood words into target axis values."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.errors import BadInput

AXES_FILE = Path(__file__).with_name("axes.yaml")
LANGS = ("en", "ja", "zh", "ru", "pt")
Pole = Literal["high", "low"]
_WORD = re.compile(r"\w+", re.UNICODE)
_EN_SUFFIXES = ("", "s", "ly", "ness")


class AxisSpec(BaseModel):
    """One axis: its id, names per language, optional place in the valence-arousal plane
    (clusters) and the adjectives that ask for its top (``high``) or bottom (``low``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    names: dict[str, str]
    va: tuple[float, float] | None = None
    high: dict[str, list[str]] = Field(default_factory=dict)
    low: dict[str, list[str]] = Field(default_factory=dict)


class AxesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: tuple[float, float]
    axes: list[AxisSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Adjective:
    """A lexicon entry: ``word`` (a whole English word, a ru/pt stem, or a ja/zh string)
    asks for ``pole`` of ``axis``."""

    word: str
    lang: str
    axis: str
    pole: Pole


@dataclass(frozen=True)
class Axes:
    """The axes in file order, their scale and the lexicon."""

    ids: tuple[str, ...]
    scale: tuple[float, float]
    specs: tuple[AxisSpec, ...]
    lexicon: tuple[Adjective, ...]

    def index(self, axis: str) -> int:
        try:
            return self.ids.index(axis)
        except ValueError:
            raise BadInput(f"unknown impression axis {axis!r}; known: {', '.join(self.ids)}") from None

    def pole_value(self, pole: Pole) -> float:
        return self.scale[1] if pole == "high" else self.scale[0]

    def spec(self, axis: str) -> AxisSpec:
        return self.specs[self.index(axis)]


@cache
def load_axes(path: Path = AXES_FILE) -> Axes:
    """The axes of ``path`` (the shipped ``axes.yaml`` by default); BadInput names a bad field."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        parsed = AxesFile.model_validate(doc)
    except (OSError, yaml.YAMLError) as exc:
        raise BadInput(f"{path}: cannot read the impression axes ({str(exc).splitlines()[0]})") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        raise BadInput(f"{path}: field '{'.'.join(str(x) for x in err['loc'])}': {err['msg']}") from None
    lo, hi = parsed.scale
    if not lo < 0 < hi:
        raise BadInput(f"{path}: scale must run from a negative to a positive value, got {parsed.scale}")
    ids = tuple(a.id for a in parsed.axes)
    if len(set(ids)) != len(ids):
        raise BadInput(f"{path}: an axis id is used twice")
    lexicon = []
    for a in parsed.axes:
        for pole, by_lang in (("high", a.high), ("low", a.low)):
            for lang, words in by_lang.items():
                if lang not in LANGS:
                    raise BadInput(f"{path}: axis {a.id}: unknown language {lang!r}")
                lexicon += [Adjective(normalize(w), lang, a.id, pole) for w in words]  # type: ignore[arg-type]
    return Axes(ids, (lo, hi), tuple(parsed.axes), tuple(lexicon))


def normalize(text: str) -> str:
    """Lower case, NFKC, and ё read as е (Russian writes both)."""
    return unicodedata.normalize("NFKC", text).lower().replace("ё", "е")


def matches(adj: Adjective, text: str, words: list[str]) -> bool:
    """Whether ``adj`` occurs in the normalized query ``text`` (split into ``words``)."""
    if adj.lang in ("ja", "zh"):
        return adj.word in text
    if adj.lang == "en":
        return any(w == adj.word + s for w in words for s in _EN_SUFFIXES)
    return any(w.startswith(adj.word) for w in words)


def lexicon_hits(axes: Axes, text: str) -> list[Adjective]:
    """The lexicon entries found in ``text``; of entries that overlap (``весел`` in
    ``веселый``) every one counts, they name the same pole."""
    norm = normalize(text)
    words = _WORD.findall(norm)
    return [a for a in axes.lexicon if matches(a, norm, words)]
