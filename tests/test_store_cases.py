"""Feature-store paths that no other test pins (found by mutation testing): list parameters,
the video listing, the wrong loader named, files that vanish or are replaced while being read,
marking failed after the file went, and pruning's age cut."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import bench.store.catalog as catalog
from bench.errors import BadInput
from bench.store import Extractor, FeatureStore, Location

EX = Extractor("cases-test", {"fps": 1.0})


def _file(store: FeatureStore) -> Path:
    (path,) = (store.root / "features" / EX.key).iterdir()
    return path


def test_list_parameters_are_checked_item_by_item() -> None:
    assert Extractor("sizes", {"sizes": [224, 336]}).spec()["params"] == {"sizes": [224, 336]}
    with pytest.raises(BadInput, match=r"params\.files\[1\] = '/home/me/w\.bin' is a machine path"):
        Extractor("files", {"files": ["w.bin", "/home/me/w.bin"]})


def test_videos_lists_size_paths_and_counts(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"0123456789")
    vid = store.video_id(clip)
    store.save(vid, EX, {"x": np.zeros(2)})
    store.mark_failed(vid, Extractor("other"), "no audio")
    assert store.videos() == [{"video_id": vid, "size": 10, "last_path": str(clip.resolve()),
                               "paths": [str(clip.resolve())], "probe": None, "done": 1, "failed": 1}]


def test_the_wrong_loader_names_the_right_one(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    store.save("v1", EX, {"x": np.zeros(2)})
    with pytest.raises(BadInput, match=r"was stored as npz; use load\(\)"):
        store.load_json("v1", EX)
    store.save_json("v2", EX, {"a": 1})
    with pytest.raises(BadInput, match=r"was stored as json; use load_json\(\)"):
        store.load("v2", EX)


def test_a_file_gone_before_loading_is_reset_to_missing(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    store.save("v1", EX, {"x": np.zeros(2)})
    _file(store).unlink()
    assert store.load("v1", EX) is None
    assert store.load_meta("v1", EX) is None  # the row was reset, not just skipped once


def test_an_npz_replaced_while_being_read_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    store = FeatureStore(tmp_path / "store")
    store.save("v1", EX, {"x": np.zeros(2)})
    real_load = np.load
    calls: list[Path] = []

    def replaced_meanwhile(path: Path, **kwargs: object) -> object:
        calls.append(path)
        if len(calls) == 1:  # another writer commits new arrays; the old file is gone
            store.save("v1", EX, {"x": np.ones(3)})
            raise FileNotFoundError(path)
        return real_load(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(catalog.np, "load", replaced_meanwhile)
    out = store.load("v1", EX)
    assert out is not None and out["x"].tolist() == [1.0, 1.0, 1.0] and len(calls) == 2


def test_an_npz_vanishing_while_being_read_is_reset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FeatureStore(tmp_path / "store")
    store.save("v1", EX, {"x": np.zeros(2)})

    def vanished(path: Path, **kwargs: object) -> object:
        raise FileNotFoundError(path)

    monkeypatch.setattr(catalog.np, "load", vanished)
    assert store.load("v1", EX) is None
    assert store.status("v1", EX) == "missing" and store.load_meta("v1", EX) is None


def test_json_replaced_or_vanishing_while_being_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FeatureStore(tmp_path / "store")
    store.save_json("v1", EX, {"n": 1})
    real_read = Location.read_bytes
    calls: list[str] = []

    def replaced_meanwhile(self: Location, rel: str) -> bytes:
        if rel.endswith(".json") and rel.startswith("features/"):
            calls.append(rel)
            if len(calls) == 1:
                store.save_json("v1", EX, {"n": 2})
                raise FileNotFoundError(rel)
        return real_read(self, rel)

    monkeypatch.setattr(Location, "read_bytes", replaced_meanwhile)
    assert store.load_json("v1", EX) == {"n": 2} and len(calls) == 2

    def vanished(self: Location, rel: str) -> bytes:
        if rel.endswith(".json") and rel.startswith("features/"):
            raise FileNotFoundError(rel)
        return real_read(self, rel)

    monkeypatch.setattr(Location, "read_bytes", vanished)
    assert store.load_json("v1", EX) is None
    assert store.status("v1", EX) == "missing"


def test_mark_failed_after_the_file_is_already_gone(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    store.save("v1", EX, {"x": np.zeros(2)})
    _file(store).unlink()
    store.mark_failed("v1", EX, "decoder crashed")
    assert store.status("v1", EX) == "failed" and store.failure("v1", EX) == "decoder crashed"


def test_prune_removes_only_files_strictly_older_than_the_cut(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    store = FeatureStore(tmp_path / "store")
    assert store.prune() == 0  # nothing stored yet: no features folder
    store.save("v1", EX, {"x": np.zeros(2)})
    now_s = 2_000_000_000
    stray = [store.root / "features" / EX.key / f"stray{i}.npz" for i in range(2)]
    for path, age_s in zip(stray, (100, 101), strict=True):
        path.write_bytes(b"left over")
        os.utime(path, (now_s - age_s, now_s - age_s))
    monkeypatch.setattr(catalog.time, "time", lambda: float(now_s))
    assert store.prune(older_than_s=100) == 1  # exactly 100 s old is kept
    assert [p.exists() for p in stray] == [True, False]
    assert store.load("v1", EX) is not None


def test_array_names_with_a_slash_are_refused(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    with pytest.raises(BadInput, match="array name 'a/b' must be non-empty, without '/'"):
        store.save("v1", EX, {"a/b": np.zeros(2)})
    assert store.status("v1", EX) == "missing"
