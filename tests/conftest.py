"""Test setup: no network, a cache that survives between runs, and shared fixtures."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
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
for var in ("SCENEBENCH_LLM_BASE_URL", "SCENEBENCH_LLM_MODEL", "SCENEBENCH_LLM_API_KEY",
            "SCENEBENCH_ARTEFACTS"):
    os.environ.pop(var, None)


# -- required tools: a skip for a missing one fails the run where they must be present -----------

REQUIRED_TOOLS: dict[str, re.Pattern[str]] = {
    "ffmpeg": re.compile(r"\bffmpeg\b", re.IGNORECASE),
    "ffprobe": re.compile(r"\bffprobe\b", re.IGNORECASE),
    "espeak-ng": re.compile(r"\bespeak", re.IGNORECASE),
    "chromium": re.compile(r"chromium|playwright", re.IGNORECASE),
    "fonts": re.compile(r"\bfont\b", re.IGNORECASE),
    "shared": re.compile(r"shared[/\\]data|\.\./shared"),
}
"""What a skip reason names when the skip is for a missing tool (or ``../shared`` data)."""
CI_REQUIRED = ("ffmpeg", "ffprobe", "espeak-ng", "chromium")
"""Required under ``CI=true`` unless ``SCENEBENCH_REQUIRED`` says otherwise: what
``scripts/setup.sh`` installs. ``../shared`` is not: a clean clone has nothing beside it."""


def required_tools() -> tuple[str, ...]:
    """``SCENEBENCH_REQUIRED`` (comma-separated names of :data:`REQUIRED_TOOLS`, ``all``, or
    empty for none) when set; else :data:`CI_REQUIRED` under ``CI=true``; else nothing."""
    value = os.environ.get("SCENEBENCH_REQUIRED")
    if value is None:
        return CI_REQUIRED if os.environ.get("CI", "").lower() in ("1", "true", "yes") else ()
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if names == ("all",):
        return tuple(REQUIRED_TOOLS)
    unknown = sorted(set(names) - set(REQUIRED_TOOLS))
    if unknown:
        raise pytest.UsageError(f"SCENEBENCH_REQUIRED names unknown tools {unknown}; "
                                f"known: {', '.join(REQUIRED_TOOLS)}, all")
    return names


def missing_required(reason: str, required: tuple[str, ...]) -> str | None:
    """The required tool a skip reason says is missing, if any."""
    return next((name for name in required if REQUIRED_TOOLS[name].search(reason)), None)


def _fail_required_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    required = required_tools()
    if not required:
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    tool = missing_required(reason, required)
    if tool is not None:
        report.outcome = "failed"
        report.longrepr = (f"{tool} is required here (SCENEBENCH_REQUIRED / CI=true) but the test "
                           f"skipped: {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    _fail_required_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _fail_required_skip(outcome.get_result())


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
