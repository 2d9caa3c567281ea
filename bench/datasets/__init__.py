"""Dataset builders and adapters: every format people have, turned into a canonical query set.

A builder is ``build(out: Path, options: BuildOptions) -> QuerySet``; it writes the set to
``out`` (atomically, via :func:`bench.datasets.io.save_query_set`) and returns it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from bench.errors import BadInput
from bench.paths import cache_home
from bench.registry import Registry
from bench.types import QuerySet

if TYPE_CHECKING:
    from bench.datasets.tagging import TaggingSet

class BuildOptions(BaseModel):
    """Options shared by builders; each builder reads the ones it needs."""

    model_config = ConfigDict(extra="forbid")

    input: Path | None = None
    """Annotation file or folder to convert (adapters), or a folder of videos (subtitles)."""
    videos: Path | None = None
    """Folder holding the videos (``<vid>.mp4`` etc.); paths in the set point there."""
    split: str = "test"
    limit: int | None = None
    """Keep only the first N queries (after sorting), for quick runs."""
    columns: dict[str, str] = {}
    """Generic JSONL/CSV: canonical field -> column name in the input."""
    lines_per_query: int = 1
    """Subtitle builder: subtitle lines per query window."""
    hold_out_wording: bool = False
    """Subtitle builder: query with a normalized paraphrase instead of the exact line."""
    force: bool = False
    """Rebuild even if a cached build with the same inputs exists."""


Builder = Callable[[Path, BuildOptions], "QuerySet | TaggingSet"]
"""Query sets for grounding; tagging sets (``taxonomy.yaml`` + labelled videos) for tagging."""

BUILDERS: Registry[Builder] = Registry("dataset")
BUILDERS.register("synthetic-v1", "bench.datasets.synthetic.builder:build")
BUILDERS.register("synthetic-v2", "bench.datasets.synthetic.builder:build_v2")
BUILDERS.register("synthetic-mini", "bench.datasets.synthetic.builder:build_mini")
BUILDERS.register("synthetic-actions-v1", "bench.datasets.synthetic.builder:build_actions")
BUILDERS.register("synthetic-mood-v1", "bench.datasets.synthetic.builder:build_mood")
BUILDERS.register("qvhighlights", "bench.datasets.qvhighlights:build")
BUILDERS.register("charades-sta", "bench.datasets.charades_sta:build")
BUILDERS.register("activitynet", "bench.datasets.activitynet:build")
BUILDERS.register("tacos", "bench.datasets.tacos:build")
BUILDERS.register("tvr", "bench.datasets.tvr:build")
BUILDERS.register("jsonl", "bench.datasets.jsonl:build_jsonl")
BUILDERS.register("csv", "bench.datasets.jsonl:build_csv")
BUILDERS.register("subtitles", "bench.datasets.subtitles:build")
BUILDERS.register("hf", "bench.datasets.hf:build")
BUILDERS.register("synthetic-tags-v1", "bench.datasets.tagging:build_synthetic_tags")
BUILDERS.register("tagging-folders", "bench.datasets.tagging:build_folders")
BUILDERS.register("tagging-csv", "bench.datasets.tagging:build_csv")

# Sets that build with no input, so ``--dataset NAME`` works on a fresh machine.
SELF_CONTAINED = ("synthetic-v1", "synthetic-v2", "synthetic-mini", "synthetic-actions-v1",
                  "synthetic-tags-v1", "synthetic-mood-v1")
TAGGING_SETS = ("synthetic-tags-v1",)
"""Self-contained sets that are tagging sets (``resolve_tagging`` builds them)."""


def build(name: str, out: Path, options: BuildOptions | None = None) -> QuerySet | TaggingSet:
    """Run builder ``name`` into ``out``."""
    return BUILDERS.get(name)(Path(out), options or BuildOptions())


def is_tagging(spec: str) -> bool:
    """``--dataset`` value ``spec`` names a tagging set (a directory with ``taxonomy.yaml``, or a
    self-contained tagging set's name)."""
    from bench.datasets.tagging import is_tagging_set

    path = Path(spec)
    return is_tagging_set(path) if path.is_dir() else spec in TAGGING_SETS


def resolve_tagging(spec: str) -> TaggingSet:
    """``--dataset`` value -> tagging set: a directory, or a self-contained tagging set built once
    into ``$SCENEBENCH_CACHE/datasets/NAME``."""
    from bench.datasets.tagging import TaggingSet, load_tagging_set

    path = Path(spec)
    if path.is_dir():
        return load_tagging_set(path)
    if spec in TAGGING_SETS:
        built = build(spec, cache_home() / "datasets" / spec)
        assert isinstance(built, TaggingSet)
        return built
    raise BadInput(f"dataset {spec!r} is not a tagging set (a directory with taxonomy.yaml)")


def resolve_dataset(spec: str) -> QuerySet:
    """``--dataset`` value -> query set: a directory, or a self-contained registered name.

    Self-contained sets are built once into ``$SCENEBENCH_CACHE/datasets/NAME`` and reused.
    """
    from bench.datasets.io import load_query_set

    path = Path(spec)
    if path.is_dir():
        return load_query_set(path)
    if spec in TAGGING_SETS:
        raise BadInput(f"dataset {spec!r} is a tagging set; it has no queries to search")
    if spec in SELF_CONTAINED:
        out = cache_home() / "datasets" / spec
        built = build(spec, out)
        assert isinstance(built, QuerySet)
        return built
    if spec in BUILDERS:
        raise BadInput(
            f"dataset {spec!r} needs its annotation files: run "
            f"'python -m bench build {spec} --input FILE --out DIR', then pass --dataset DIR"
        )
    raise BadInput(f"dataset {spec!r} is neither a directory nor a known name "
                   f"({', '.join(BUILDERS.names())})")


def describe() -> list[dict[str, str]]:
    """Rows for ``python -m bench list datasets``."""
    rows = []
    for name in BUILDERS.names():
        target = BUILDERS.target(name)
        rows.append({"name": name, "target": target,
                     "needs_input": json.dumps(name not in SELF_CONTAINED)})
    return rows
