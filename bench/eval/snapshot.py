"""The committed results snapshot: result files as the runner writes them (one per configuration,
set and split) that the Space's leaderboard shows on first load and the regression gate reads.

``snapshot/gate.yaml`` says which of its entries the gate holds and how tightly: configurations
whose numbers are deterministic get an exact two-sided band (any change fails until the
snapshot is refreshed), others a one-sided tolerance; per-tag metrics are held the same way.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.errors import BadInput
from bench.eval.results import ResultFile, iter_results, save_result
from bench.paths import repo_root

GATE_FILE = "gate.yaml"
GATE_SCHEMA_VERSION = 1


class GatePolicy(BaseModel):
    """What the regression gate holds of a snapshot (``gate.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = GATE_SCHEMA_VERSION
    datasets: list[str] = Field(min_length=1)
    """Sets the gate compares (the CI test runs these); other entries are leaderboard only."""
    configurations: list[str] = Field(min_length=1)
    deterministic: list[str] = []
    """Seeded or exact configurations: held in an exact two-sided band."""
    metrics: list[str] = Field(min_length=1)
    tag_metrics: list[str] = []
    """Held per tag too (as ``tag:<tag>:<metric>``): per-tag floors at the measured values."""
    tolerance: float = Field(default=0.02, ge=0)
    """One-sided drop allowed on a configuration that is not deterministic."""
    exact_tolerance: float = Field(default=0.001, ge=0)
    """Two-sided band of a deterministic configuration: below one query's weight in any set
    of fewer than 1,000 queries, above float noise."""


def snapshot_dir() -> Path:
    """``snapshot/`` in the checkout."""
    return repo_root() / "snapshot"


def load_policy(directory: Path) -> GatePolicy | None:
    """The directory's ``gate.yaml``, or None when it has none (a plain results directory)."""
    path = Path(directory) / GATE_FILE
    if not path.is_file():
        return None
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        policy = GatePolicy.model_validate(doc)
    except (OSError, yaml.YAMLError) as exc:
        raise BadInput(f"{path}: unreadable gate policy ({exc})") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise BadInput(f"{path}: field '{loc}': {err['msg']}") from None
    if policy.schema_version > GATE_SCHEMA_VERSION:
        raise BadInput(f"{path}: gate schema v{policy.schema_version} is newer than this "
                       f"SceneBench (v{GATE_SCHEMA_VERSION})")
    return policy


def snapshot_results(directory: Path | None = None) -> list[ResultFile]:
    """Every result file of the snapshot (older schemas migrated as they load)."""
    return [r for _, r in iter_results(directory or snapshot_dir())]


def refresh(results_dir: Path, directory: Path, *, keep: Sequence[str] | None = None,
            only_ok: bool = True) -> list[Path]:
    """Replace the snapshot's entries with the results found in ``results_dir`` (newest per
    configuration, set and split; only ``ok`` ones unless ``only_ok`` is false; predictions
    are not copied); entries the run did not touch stay. ``keep`` limits it to those
    configurations."""
    directory = Path(directory)
    fresh: dict[tuple[str, str, str], ResultFile] = {}
    for _, r in iter_results(results_dir):
        if (keep is not None and r.retriever not in keep) or (only_ok and r.status != "ok"):
            continue
        key = (r.retriever, r.dataset, r.split_key)
        old = fresh.get(key)
        if old is None or (r.created_at or "") >= (old.created_at or ""):
            fresh[key] = r
    if not fresh:
        raise BadInput(f"{results_dir}: no result files to put in the snapshot")
    for path, old in list(iter_results(directory)) if directory.exists() else []:
        if (old.retriever, old.dataset, old.split_key) in fresh:
            path.unlink()
    written = [save_result(directory, r) for r in fresh.values()]
    _prune_empty(directory)
    return sorted(written)


def _prune_empty(directory: Path) -> None:
    for sub in sorted(directory.rglob("*"), key=lambda p: -len(p.parts)):
        if sub.is_dir() and not any(sub.iterdir()):
            shutil.rmtree(sub)
