"""Test setup: no network, a cache that survives between runs, and shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Nothing may try a model hub; tiny and package-shipped models only.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Built datasets, tiny models and features are cached here so reruns are fast; CI starts empty.
os.environ.setdefault("SCENEBENCH_CACHE", str(REPO / ".cache" / "test"))
for var in ("SCENEBENCH_LLM_BASE_URL", "SCENEBENCH_LLM_MODEL", "SCENEBENCH_LLM_API_KEY"):
    os.environ.pop(var, None)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (public annotation files); tests skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present beside the checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synthetic_mini():
    """The tiny built-in set (2 short videos), built once per cache."""
    from bench.datasets import resolve_dataset

    return resolve_dataset("synthetic-mini")


@pytest.fixture(scope="session")
def synthetic_v1():
    """The embedded default set, built once per cache (about a minute on 2 cores)."""
    from bench.datasets import resolve_dataset

    return resolve_dataset("synthetic-v1")
