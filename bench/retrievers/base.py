"""The retriever protocol every method family implements, and its declarative configuration."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.engine.search import EngineSearch
from bench.errors import BadInput
from bench.modelref import ModelRef
from bench.types import Moment, QueryInput, Video

if TYPE_CHECKING:
    from bench.engine.search import QueryResult
    from bench.errors import BackendError
    from bench.store import FeatureStore
    from bench.text.windows import TextCorpus

Device = Literal["auto", "cpu", "cuda"]


class RetrieverConfig(BaseModel):
    """One configuration of a retriever family: one YAML file in ``models/``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    family: str
    description: str = ""
    model: ModelRef | None = None
    """The main model (CLIP, X-CLIP, sentence encoder, LLM)."""
    models: dict[str, ModelRef] = Field(default_factory=dict)
    """Further models by role, e.g. ``{"text": ..., "asr": ..., "caption": ...}``."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Family-specific parameters, validated by the family's own ``Params`` model."""
    tags: list[str] = Field(default_factory=list)
    """Free labels: ``offline`` (runs with no hub), ``tiny`` (random-init, not a result)."""
    answers: list[str] = Field(default_factory=list)
    """Query tags this configuration is made for (``mood``); empty: any query. A run that
    names no configuration leaves it out of sets with none of these queries."""
    revision: str = "1"
    """Configuration revision; results are stored per revision."""

    @classmethod
    def from_yaml(cls, path: Path) -> RetrieverConfig:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except yaml.MarkedYAMLError as exc:
            # The parser's own message spans several lines with a snippet of the file.
            mark = exc.problem_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
            reason = " ".join(str(exc.problem or exc.context or "syntax error").split())
            raise BadInput(f"{where}: invalid YAML in retriever configuration ({reason})") from None
        except yaml.YAMLError as exc:
            reason = " ".join(str(exc).split())
            raise BadInput(f"{path}: invalid YAML in retriever configuration ({reason})") from None
        except UnicodeDecodeError as exc:
            raise BadInput(f"{path}: not valid UTF-8 (byte {exc.start}); "
                           "re-encode the file as UTF-8") from None
        except OSError as exc:
            raise BadInput(f"{path}: cannot read retriever configuration ({exc.strerror or exc})") from None
        if not isinstance(data, dict):
            raise BadInput(f"{path}: a retriever configuration must be a YAML mapping")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise BadInput(f"{path}: field '{loc}': {err['msg']}") from None


def parse_params(model: type[BaseModel], config: RetrieverConfig) -> Any:
    """Validate ``config.params`` against a family's ``Params`` model (extra keys forbidden)."""
    try:
        return model.model_validate(config.params)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise BadInput(f"retriever {config.name!r}: params.{loc}: {err['msg']}") from None


@runtime_checkable
class Retriever(Protocol):
    """Index videos once (cached, resumable), then answer batches of queries.

    ``index`` receives videos whose ``path`` is a local absolute path. ``search`` returns,
    per query, at most ``top_k`` moments sorted by descending score; ``search_results`` the
    same with the reason when a query could not be answered. ``vids=None`` is corpus search
    over everything indexed; ``vids=[v]`` grounds the query in known video(s). Families get
    both from the one engine (:class:`bench.engine.EngineSearch`).
    """

    name: str
    device: str
    """``cpu`` or ``cuda``: where the models run."""

    def index(self, videos: Sequence[Video], store: FeatureStore) -> None: ...

    def search(self, queries: Sequence[QueryInput], *, top_k: int = 10,
               vids: Sequence[str] | None = None) -> list[list[Moment]]: ...

    def search_results(self, queries: Sequence[QueryInput], *, top_k: int = 10,
                       vids: Sequence[str] | None = None) -> list[QueryResult]: ...

    def stats(self) -> dict[str, Any]:
        """Index size, cache hits, backend counters (for the run's timing block)."""
        ...

    def reset_stats(self) -> None:
        """Start per-mode counters (LLM tokens, latency, cache hits) afresh."""
        ...

    def index_backend_errors(self) -> dict[str, BackendError]:
        """vid -> the backend error (an LLM call failed after its retries) that left that
        video's features partial in the last :meth:`index` call; empty for families that
        call no backend while indexing."""
        ...

    def provenance(self) -> dict[str, Any]:
        """Model ids, revisions, checksums, ``random_init`` flags, decoder, device."""
        ...


class TextCorpusSearch(EngineSearch):
    """Engine defaults for families over a :class:`~bench.text.windows.TextCorpus` of
    timestamped text windows (``bm25-text``, ``dense-text``)."""

    corpus: TextCorpus | None

    def ready(self) -> str | None:
        return None if self.corpus is not None else "call index() before search()"

    def check_vids(self, vids: Sequence[str]) -> list[str]:
        assert self.corpus is not None
        return self.corpus.check_vids(vids)
