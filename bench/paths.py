"""Where SceneBench keeps caches: ``$SCENEBENCH_CACHE`` or ``~/.cache/scenebench``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """Root of every cache (feature store, built datasets, tiny models, LLM calls)."""
    env = os.environ.get("SCENEBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "scenebench"


def repo_root() -> Path:
    """The checkout (or install) root that holds ``models/`` and ``datasets/`` specs."""
    return Path(__file__).resolve().parent.parent


def umask_mode(directory: bool = False) -> int:
    """The mode a plain ``open``/``mkdir`` would give, for files made by ``tempfile`` (0600/0700)."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask
