"""Versioned result files: one JSON per retriever configuration, revision, dataset and split.

``results/<retriever>/<config-revision>/<dataset>/<split>.json`` with ``predictions.jsonl``
beside it. Older schema versions keep loading through :data:`MIGRATIONS`; a file from a
newer schema is refused with a message instead of being read with the wrong fields.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.errors import BadInput
from bench.eval.calibration import Calibration
from bench.fsio import atomic_write_text

log = logging.getLogger("bench")

RESULT_SCHEMA_VERSION = 5
"""v1: metrics only under ``metrics``; v2 adds ``mode``, ``metrics_by_tag``/``_lang`` and
``timing.queries`` latency percentiles; v3 adds ``backend_failures``; v4 adds ``calibration``
(the confidence threshold, or why there is none); v5 adds ``task`` (grounding or tagging),
``metrics_by_class`` and ``probe`` (a trained linear probe, apart from zero-shot metrics)."""

Status = Literal["ok", "unavailable", "failed"]
Task = Literal["grounding", "tagging"]


class ResultFile(BaseModel):
    """What one (retriever configuration, dataset, split, mode) run produced."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = RESULT_SCHEMA_VERSION
    task: Task = "grounding"
    """``tagging``: ``metrics`` are top1/top5/top10/macro_f1 of zero-shot tags per video and
    ``n_queries`` counts videos; ``query_errors`` holds per-video reasons."""
    retriever: str
    family: str
    config_revision: str
    dataset: str
    split: str
    mode: Literal["grounding", "corpus"] = "grounding"
    status: Status
    reason: str | None = None
    n_queries: int = 0
    metrics: dict[str, float] = Field(default_factory=dict)
    metrics_by_tag: dict[str, dict[str, float]] = Field(default_factory=dict)
    metrics_by_lang: dict[str, dict[str, float]] = Field(default_factory=dict)
    timing: dict[str, Any] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)
    query_errors: dict[str, str] = Field(default_factory=dict)
    backend_failures: int = 0
    """Queries that got no answer because every backend call for them (an LLM endpoint)
    failed after its retries; past a share of the queries the run is ``failed``."""
    metrics_by_class: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Tagging: label id -> precision, recall, F1 and support of the top-1 label."""
    probe: dict[str, Any] | None = None
    """Tagging: a linear probe trained on this configuration's stored embeddings (k-fold mean,
    95% interval); a trained result, never mixed with the zero-shot ``metrics``."""
    calibration: Calibration | None = None
    """The confidence threshold chosen for this configuration on this set and mode; ``None``
    in results written before v4 (no threshold: every moment is shown, flagged)."""
    created_at: str | None = None

    @property
    def random_init(self) -> bool:
        """True when any model behind this result had random-init weights."""
        return find_random_init(self.provenance)

    @property
    def split_key(self) -> str:
        return self.split if self.mode == "grounding" else f"{self.split}-corpus"


def find_random_init(obj: Any) -> bool:
    """True if any nested mapping in a provenance record says ``random_init: true``."""
    if isinstance(obj, dict):
        if obj.get("random_init") is True:
            return True
        return any(find_random_init(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return any(find_random_init(v) for v in obj)
    return False


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    data.setdefault("mode", "grounding")
    breakdown = data.pop("breakdown", {}) or {}
    data.setdefault("metrics_by_tag", breakdown.get("tags", {}))
    data.setdefault("metrics_by_lang", breakdown.get("lang", {}))
    data["schema_version"] = 2
    return data


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    # v2 runs did not count backend failures; their query_errors still hold the messages.
    data = dict(data)
    data.setdefault("backend_failures", 0)
    data["schema_version"] = 3
    return data


def _v3_to_v4(data: dict[str, Any]) -> dict[str, Any]:
    # v3 runs chose no confidence threshold: the result has none, and says so by None.
    data = dict(data)
    data.setdefault("calibration", None)
    data["schema_version"] = 4
    return data


def _v4_to_v5(data: dict[str, Any]) -> dict[str, Any]:
    # Before v5 every result was a grounding (moment retrieval) result.
    data = dict(data)
    data.setdefault("task", "grounding")
    data["schema_version"] = 5
    return data


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4, 4: _v4_to_v5}


def parse_result(data: Any, source: Path | str = "<memory>") -> ResultFile:
    """Validate a result document, migrating older schema versions step by step."""
    if not isinstance(data, dict) or "schema_version" not in data or "retriever" not in data:
        raise BadInput(f"{source}: not a SceneBench result file (no schema_version/retriever)")
    version = data["schema_version"]
    if not isinstance(version, int):
        raise BadInput(f"{source}: field 'schema_version' must be an integer, got {version!r}")
    if version > RESULT_SCHEMA_VERSION:
        raise BadInput(f"{source}: result schema v{version} is newer than this SceneBench "
                       f"(v{RESULT_SCHEMA_VERSION}); upgrade SceneBench to read it")
    while version < RESULT_SCHEMA_VERSION:
        if version not in MIGRATIONS:
            raise BadInput(f"{source}: no migration from result schema v{version}")
        data = MIGRATIONS[version](data)
        version = data["schema_version"]
    try:
        return ResultFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise BadInput(f"{source}: field '{loc}': {err['msg']}") from None


def load_result(path: Path) -> ResultFile:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path}: unreadable result file ({exc})") from None
    return parse_result(data, path)


def result_path(root: Path, result: ResultFile) -> Path:
    return Path(root) / result.retriever / result.config_revision / result.dataset / \
        f"{result.split_key}.json"


def predictions_path(root: Path, result: ResultFile) -> Path:
    """``<split>.predictions.jsonl`` beside the result file."""
    return result_path(root, result).with_name(f"{result.split_key}.predictions.jsonl")


def save_result(root: Path, result: ResultFile,
                predictions: list[dict[str, Any]] | None = None) -> Path:
    """Write the result JSON (and ``<split>.predictions.jsonl`` beside it) atomically."""
    path = result_path(root, result)
    if predictions is not None:
        lines = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions)
        atomic_write_text(predictions_path(root, result), lines)
    atomic_write_text(path, result.model_dump_json(indent=2) + "\n")
    return path


def iter_results(root: Path) -> Iterator[tuple[Path, ResultFile]]:
    """Every result file under ``root``; corrupt or foreign JSON is reported by file and skipped."""
    root = Path(root)
    if not root.exists():
        raise BadInput(f"{root}: results directory not found; run 'python -m bench run' first")
    paths = [root] if root.is_file() else sorted(root.rglob("*.json"))
    for path in paths:
        try:
            yield path, load_result(path)
        except BadInput as exc:
            log.warning("skipping %s", exc)
