"""The feature store's cheap ``status()`` check on its own (no ``load()`` first), and the index
loop recomputing an artefact that changed size after it was marked done."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.store import Extractor, FeatureStore, index_videos
from bench.types import Video
from bench.video import ProbeInfo

EX = Extractor("status-test", {"fps": 1.0})


def artefact(store: FeatureStore, ex: Extractor = EX) -> Path:
    (path,) = (store.root / "features" / ex.key).iterdir()
    return path


@pytest.mark.parametrize("change", ["truncate", "grow"])
def test_status_alone_sees_a_done_artefact_change_size(tmp_path: Path, change: str) -> None:
    store = FeatureStore(tmp_path / "store")
    store.save("v1", EX, {"x": np.arange(100, dtype=np.float32)})
    assert store.status("v1", EX) == "done"
    path = artefact(store)
    data = path.read_bytes()
    path.write_bytes(data[:-10] if change == "truncate" else data + b"\x00" * 10)
    assert store.status("v1", EX) == "missing"
    # The row is gone, not just reported missing once: the next look agrees without the file check.
    assert store.status("v1", EX) == "missing"
    assert store.load_meta("v1", EX) is None
    assert store.load("v1", EX) is None


def test_status_of_failed_and_unknown_rows(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    assert store.status("v1", EX) == "missing"
    store.mark_failed("v1", EX, "no audio")
    assert store.status("v1", EX) == "failed"
    assert store.failure("v1", EX) == "no audio"
    store.save("v1", EX, {"x": np.zeros(2)})
    assert store.status("v1", EX) == "done" and store.failure("v1", EX) is None
    # Another extractor of the same video is a different artefact.
    assert store.status("v1", Extractor("status-test", {"fps": 2.0})) == "missing"


def test_a_failure_replaces_a_done_artefact_and_removes_its_file(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    store.save("v1", EX, {"x": np.zeros(2)})
    path = artefact(store)
    store.mark_failed("v1", EX, "  a   long\nreason  ")
    assert not path.exists()
    assert store.failure("v1", EX) == "a long reason"
    store.mark_failed("v2", EX, "")
    assert store.failure("v2", EX) == "unknown reason"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    path = tmp_path_factory.mktemp("clip") / "red.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                    "color=c=red:size=64x48:rate=10:duration=1", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def test_index_videos_recomputes_an_artefact_that_changed_size(tmp_path: Path, clip: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    calls: list[str] = []

    def compute(path: Path, info: ProbeInfo) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        calls.append(path.name)
        return {"x": np.arange(50, dtype=np.float32)}, {"n": len(calls)}

    videos = [Video(vid="red", path=str(clip))]
    done = index_videos(store, videos, EX, compute, desc="status")
    assert calls == ["red.mp4"]
    video_id = done["red"]
    index_videos(store, videos, EX, compute, desc="status")
    assert calls == ["red.mp4"]  # done: not recomputed

    path = artefact(store)
    path.write_bytes(path.read_bytes()[:-16])
    assert store.status(video_id, EX) == "missing"
    assert index_videos(store, videos, EX, compute, desc="status") == done
    assert calls == ["red.mp4", "red.mp4"]
    assert store.status(video_id, EX) == "done"
    loaded = store.load(video_id, EX)
    assert loaded is not None and loaded["x"].tolist() == list(range(50))
    assert store.load_meta(video_id, EX) == {"n": 2}


def test_index_videos_recomputes_when_only_the_loop_checks(tmp_path: Path, clip: Path) -> None:
    # The same damage, with nothing asking status() before the loop does.
    store = FeatureStore(tmp_path / "store")
    calls: list[str] = []

    def compute(path: Path, info: ProbeInfo) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        calls.append(path.name)
        return {"x": np.ones(20)}, {}

    videos = [Video(vid="red", path=str(clip))]
    index_videos(store, videos, EX, compute, desc="status")
    path = artefact(store)
    path.write_bytes(path.read_bytes() + b"junk")
    index_videos(store, videos, EX, compute, desc="status")
    assert calls == ["red.mp4", "red.mp4"]
