"""The feature store's cheap ``status()`` check on its own (no ``load()`` first), the index
loop recomputing an artefact that changed size after it was marked done, and the edge cases of
loading and verification: what is logged for each kind of damage, catalog rows that are
incomplete or foreign, files written by someone else that cannot (or must not) be read, files
that cannot be removed, pruning's default age and asking for an artefact directory again."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bench.store.catalog as catalog
from bench.store import Extractor, FeatureStore, Location, Written, index_videos
from bench.types import Video
from bench.video import ProbeInfo

EX = Extractor("status-test", {"fps": 1.0})


def artefact(store: FeatureStore, ex: Extractor = EX) -> Path:
    (path,) = (store.root / "features" / ex.key).iterdir()
    return path


def discarded(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bench" and r.levelno == logging.WARNING]


def discard_line(path: Path | str, why: str, ex: Extractor = EX) -> str:
    return (f"feature store: discarding {ex.key} for video v1: {path} {why}; "
            "it will be recomputed")


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


# -- loading and verification edge cases ----------------------------------------------------


@pytest.mark.parametrize("change", ["delete", "truncate"])
def test_status_logs_which_file_went_wrong_and_forgets_the_row(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, change: str) -> None:
    store = FeatureStore(tmp_path / "store")
    store.save("v1", EX, {"x": np.arange(10, dtype=np.int64)}, {"n": 1})
    path = artefact(store)
    nbytes = path.stat().st_size
    if change == "delete":
        path.unlink()
        why = "is missing"
    else:
        path.write_bytes(path.read_bytes()[:-7])
        why = f"has {nbytes - 7} bytes, expected {nbytes}"
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert store.status("v1", EX) == "missing"
    assert discarded(caplog) == [discard_line(path, why)]
    assert store.load_meta("v1", EX) is None  # the row itself is gone


@pytest.mark.parametrize("damage", ["delete", "flip"])
def test_load_logs_which_file_went_wrong_and_forgets_the_row(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str) -> None:
    store = FeatureStore(tmp_path / "store")
    store.save("v1", EX, {"x": np.arange(100, dtype=np.float32)}, {"n": 1})
    store.save("v2", EX, {"x": np.arange(3, dtype=np.float32)})
    (path,) = (store.root / "features" / EX.key).glob("v1.*")
    if damage == "delete":
        path.unlink()
        why = "is missing"
    else:
        data = bytearray(path.read_bytes())
        data[-40] ^= 0xFF  # same size: only the checksum can tell
        path.write_bytes(bytes(data))
        why = "does not match its checksum (truncated or changed)"
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert store.load("v1", EX) is None
    assert discarded(caplog) == [discard_line(path, why)]
    assert not path.exists()  # a damaged file is deleted
    assert store.load_meta("v1", EX) is None and store.status("v1", EX) == "missing"
    assert store.load("v2", EX)["x"].tolist() == [0.0, 1.0, 2.0]  # type: ignore[index]


def test_a_row_with_a_status_this_version_does_not_know_is_missing(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    store.save("v1", EX, {"x": np.zeros(2)}, {"n": 1})
    with sqlite3.connect(store.catalog_path) as db:  # e.g. written by a newer version
        db.execute("UPDATE artefacts SET status='pending' WHERE video_id='v1'")
    assert store.status("v1", EX) == "missing"
    assert store.load("v1", EX) is None and store.load_meta("v1", EX) is None
    assert store.failure("v1", EX) is None


@pytest.mark.parametrize("arrays", ['{"x":{"dtype":"<f8","shape":[3]}}', None])
def test_arrays_that_do_not_match_the_catalog_are_logged_and_not_served(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, arrays: str | None) -> None:
    store = FeatureStore(tmp_path / "store")
    store.save("v1", EX, {"x": np.zeros(2)})
    with sqlite3.connect(store.catalog_path) as db:  # a wrong or lost record of the arrays
        db.execute("UPDATE artefacts SET arrays=? WHERE video_id='v1'", (arrays,))
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert store.load("v1", EX) is None
    assert discarded(caplog) == [
        f"feature store: discarding {EX.key} for video v1: stored arrays do not match their "
        "recorded shapes/dtypes; it will be recomputed"]
    assert store.status("v1", EX) == "missing"


def test_a_done_row_without_meta_has_empty_meta(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    store.save("v1", EX, {"x": np.zeros(2)}, {"n": 1})
    with sqlite3.connect(store.catalog_path) as db:
        db.execute("UPDATE artefacts SET meta=NULL WHERE video_id='v1'")
    assert store.load_meta("v1", EX) == {}
    assert store.load("v1", EX)["x"].tolist() == [0.0, 0.0]  # type: ignore[index]


def register_file(store: FeatureStore, write: Any, arrays: dict[str, dict[str, Any]] | None) -> Path:
    """Publish a file as a worker would (through the store's location) and register it as the
    npz artefact of ("v1", EX) with the given array spec; return its path."""
    rel, nbytes, digest = store.location.write(f"features/{EX.key}", "v1", "npz", write)
    store.register("v1", EX, Written("npz", rel, nbytes, digest, arrays, '{"n":1}'))
    assert store.status("v1", EX) == "done"
    return store.root / rel


def test_a_registered_file_that_is_not_an_npz_is_reset(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    store = FeatureStore(tmp_path / "store")
    path = register_file(store, lambda fh: fh.write(b"not a zip file"), {})
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert store.load("v1", EX) is None
    (line,) = discarded(caplog)
    assert line.startswith(f"feature store: discarding {EX.key} for video v1: {path} cannot be read (")
    assert line.endswith("); it will be recomputed")
    assert store.status("v1", EX) == "missing" and store.load_meta("v1", EX) is None


@pytest.mark.parametrize(("content", "error"), [(b"{not json", "JSONDecodeError"),
                                              (b"\xff\xfe not utf-8", "UnicodeDecodeError")])
def test_a_registered_json_file_that_is_not_json_is_reset(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                          content: bytes, error: str) -> None:
    # a worker's file whose checksum matches its row but whose bytes are not UTF-8 JSON
    store = FeatureStore(tmp_path / "store")
    rel, nbytes, digest = store.location.write(f"features/{EX.key}", "v1", "json",
                                               lambda fh: fh.write(content))
    store.register("v1", EX, Written("json", rel, nbytes, digest, None, "{}"))
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert store.load_json("v1", EX) is None
    (line,) = discarded(caplog)
    path = store.root / rel
    assert line.startswith(f"feature store: discarding {EX.key} for video v1: {path} is not JSON ({error})")
    assert store.status("v1", EX) == "missing" and store.load_meta("v1", EX) is None


def test_pickled_object_arrays_are_never_loaded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = FeatureStore(tmp_path / "store")
    objects = np.array([{"a": 1}, None], dtype=object)  # save() refuses these; a worker might not
    path = register_file(store, lambda fh: np.savez(fh, x=objects),
                         {"x": {"shape": [2], "dtype": objects.dtype.str}})
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert store.load("v1", EX) is None
    (line,) = discarded(caplog)
    assert line.startswith(f"feature store: discarding {EX.key} for video v1: {path} cannot be read (")
    assert store.status("v1", EX) == "missing"


def test_files_vanishing_while_being_read_are_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    store = FeatureStore(tmp_path / "store")
    npz_ex, json_ex = EX, Extractor("status-test-json")
    store.save("v1", npz_ex, {"x": np.zeros(2)})
    store.save_json("v1", json_ex, {"n": 1})
    npz_path, json_path = artefact(store, npz_ex), artefact(store, json_ex)

    def gone(*args: object, **kwargs: object) -> object:
        raise FileNotFoundError("removed by someone else")

    monkeypatch.setattr(catalog.np, "load", gone)
    monkeypatch.setattr(Location, "read_bytes", gone)
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert store.load("v1", npz_ex) is None
        assert store.load_json("v1", json_ex) is None
    assert discarded(caplog) == [discard_line(npz_path, "vanished while being read", npz_ex),
                                 discard_line(json_path, "vanished while being read", json_ex)]


def test_files_that_cannot_be_removed_do_not_stop_the_store(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # e.g. an object store that refuses deletes: the catalog moves on and the file stays
    store = FeatureStore(tmp_path / "store")
    store.save("v1", EX, {"x": np.zeros(2)})
    store.save("v2", EX, {"x": np.arange(50, dtype=np.float32)})
    (v1,) = (store.root / "features" / EX.key).glob("v1.*")
    (v2,) = (store.root / "features" / EX.key).glob("v2.*")

    def denied(self: Location, rel: str) -> None:
        raise PermissionError(13, "Permission denied", rel)

    monkeypatch.setattr(Location, "unlink", denied)
    store.mark_failed("v1", EX, "decoder crashed")
    assert store.failure("v1", EX) == "decoder crashed" and v1.exists()
    data = bytearray(v2.read_bytes())
    data[-20] ^= 0xFF
    v2.write_bytes(bytes(data))
    assert store.load("v2", EX) is None
    assert store.status("v2", EX) == "missing" and v2.exists()
    for path in (v1, v2):
        os.utime(path, (1, 1))
    assert store.prune() == 0  # neither could go, so none is counted
    assert v1.exists() and v2.exists()


def test_an_artifact_dir_can_be_asked_for_again(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    first = store.artifact_dir("bm25-text")
    (first / "index.bin").write_bytes(b"kept")
    assert store.artifact_dir("bm25-text") == first == store.root / "artifacts" / "bm25-text"
    assert (first / "index.bin").read_bytes() == b"kept"
