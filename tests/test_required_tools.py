"""The conftest rule that turns a skip for a missing required tool into a failure (in CI, or
wherever ``SCENEBENCH_REQUIRED`` names the tools), checked on a throwaway test directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

SAMPLE = '''
import pytest

def test_needs_ffmpeg():
    pytest.skip("ffmpeg not installed")

@pytest.mark.skipif(True, reason="no Chromium at /usr/bin/chromium")
def test_needs_chromium():
    pass

def test_needs_shared():
    pytest.skip("QVHighlights sample files not found under /x/shared/data/qvhighlights")

def test_skips_for_another_reason():
    pytest.skip("real CLIP weights are in the local cache; nothing to check offline")

@pytest.mark.xfail(reason="ffmpeg quirk", run=False)
def test_expected_failure():
    pass
'''


def run_sample(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_sample.py").write_text(SAMPLE, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "SCENEBENCH_REQUIRED")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           str(tmp_path)], cwd=tmp_path, env={**clean, **env},
                          capture_output=True, text=True, timeout=300)


def outcome(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout.strip().splitlines()[-1]


def test_skips_stay_skips_outside_ci(tmp_path: Path) -> None:
    done = run_sample(tmp_path)
    assert done.returncode == 0, done.stdout
    assert "4 skipped, 1 xfailed" in outcome(done)


def test_ci_fails_skips_for_the_tools_setup_installs(tmp_path: Path) -> None:
    done = run_sample(tmp_path, CI="true")
    assert done.returncode == 1, done.stdout
    # ffmpeg and Chromium fail (a skipif mark skips in setup, so that one is an error);
    # ../shared (absent from a clean clone) and other reasons stay skips.
    assert "1 failed, 2 skipped, 1 xfailed, 1 error" in outcome(done)
    assert "ffmpeg is required here" in done.stdout
    assert "chromium is required here" in done.stdout


def test_required_list_overrides_ci(tmp_path: Path) -> None:
    done = run_sample(tmp_path, CI="true", SCENEBENCH_REQUIRED="shared")
    assert "1 failed, 3 skipped, 1 xfailed" in outcome(done)
    assert "shared is required here" in done.stdout
    done = run_sample(tmp_path, CI="true", SCENEBENCH_REQUIRED="")
    assert done.returncode == 0 and "4 skipped" in outcome(done)
    done = run_sample(tmp_path, SCENEBENCH_REQUIRED="all")
    assert "2 failed, 1 skipped, 1 xfailed, 1 error" in outcome(done)


def test_unknown_required_name_is_a_usage_error(tmp_path: Path) -> None:
    done = run_sample(tmp_path, SCENEBENCH_REQUIRED="ffmpeg,vlc")
    assert done.returncode != 0
    assert "unknown tools ['vlc']" in done.stdout + done.stderr


@pytest.mark.parametrize(("reason", "tool"), [
    ("needs ffmpeg", "ffmpeg"),
    ("ffprobe is not installed", "ffprobe"),
    ("needs ffmpeg and espeak-ng", "ffmpeg"),
    ("espeak-ng is not installed", "espeak-ng"),
    ("could not import 'playwright.sync_api': No module named 'playwright'", "chromium"),
    ("font /usr/share/fonts/x.ttf is not installed", "fonts"),
    ("../shared/data is not present beside the checkout", "shared"),
    ("decord is not installed", None),
])
def test_skip_reasons_name_their_tool(reason: str, tool: str | None) -> None:
    from conftest import REQUIRED_TOOLS, missing_required

    assert missing_required(reason, tuple(REQUIRED_TOOLS)) == tool
