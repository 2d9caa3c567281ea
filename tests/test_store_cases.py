"""Feature-store paths that no other test pins (found by mutation testing): list parameters,
extractor equality, the video listing, the wrong loader named, files that vanish or are replaced
while being read, marking failed after the file went, pruning's age cut, the artefacts location
from the environment, what the catalog records, registering a worker's file, bad input to a
read-only store, and closing."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import bench.store.catalog as catalog
from bench.errors import BadInput, Unavailable
from bench.store import Extractor, FeatureStore, Location
from bench.store.artefacts import write_artefact
from tests.test_store import PROBE, deny_writes_under

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


@pytest.mark.parametrize("cut_s", [100, None])  # None: the default, an hour
def test_prune_removes_only_files_strictly_older_than_the_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              cut_s: int | None) -> None:
    store = FeatureStore(tmp_path / "store")
    assert store.prune() == 0  # nothing stored yet: no features folder
    store.save("v1", EX, {"x": np.zeros(2)})
    now_s, cut = 2_000_000_000, 3600 if cut_s is None else cut_s
    stray = [store.root / "features" / EX.key / f"stray{i}.npz" for i in range(2)]
    for path, age_s in zip(stray, (cut, cut + 1), strict=True):
        path.write_bytes(b"left over")
        os.utime(path, (now_s - age_s, now_s - age_s))
    monkeypatch.setattr(catalog.time, "time", lambda: float(now_s))
    assert (store.prune() if cut_s is None else store.prune(older_than_s=cut_s)) == 1  # the cut is kept
    assert [p.exists() for p in stray] == [True, False]
    assert store.load("v1", EX) is not None


def test_array_names_with_a_slash_are_refused(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    with pytest.raises(BadInput, match="array name 'a/b' must be non-empty, without '/'"):
        store.save("v1", EX, {"a/b": np.zeros(2)})
    assert store.status("v1", EX) == "missing"


def test_extractors_are_equal_and_hash_alike_only_with_the_same_key() -> None:
    a, b = Extractor("a", {"fps": 1.0}), Extractor("a", {"fps": 2.0})
    assert a == Extractor("a", {"fps": 1.0}) and hash(a) == hash(Extractor("a", {"fps": 1.0}))
    assert a != b and hash(a) != hash(b)
    assert a != a.key and a != "a"  # never equal to a non-extractor, not even its own key


def test_videos_known_without_a_file_or_an_artefact(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    store.save("v1", EX, {"x": np.zeros(2)})
    store.record_probe("v2", PROBE)
    probe = {"path": "v.mp4", "duration_s": 4.0, "fps": 25.0, "width": 64, "height": 48, "rotation": 0,
             "n_frames": 100, "has_audio": False, "video_codec": "h264", "audio_codec": None, "vfr": False,
             "mirrored": False}
    assert store.videos() == [
        {"video_id": "v1", "size": None, "last_path": None, "paths": [], "probe": None,
         "done": 1, "failed": 0},
        {"video_id": "v2", "size": None, "last_path": None, "paths": [], "probe": probe,
         "done": 0, "failed": 0}]


def test_a_failure_reason_is_one_line_of_at_most_500_characters(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    store.mark_failed("v1", EX, "decoder\n  crashed:\t" + "x" * 600)
    assert store.failure("v1", EX) == "decoder crashed: " + "x" * 483
    store.mark_failed("v2", EX, " \n ")
    assert store.failure("v2", EX) == "unknown reason"


def test_artefacts_go_to_the_environment_s_location_unless_one_is_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCENEBENCH_ARTEFACTS", str(tmp_path / "shared"))
    store = FeatureStore(tmp_path / "store")
    store.save("v1", EX, {"x": np.zeros(2)})
    shared = tmp_path / "shared"
    assert [p.parent for p in shared.rglob("*.npz")] == [shared / "features" / EX.key]
    assert not (tmp_path / "store" / "features").exists() and store.load("v1", EX) is not None
    given = FeatureStore(tmp_path / "store", artefacts=tmp_path / "given")
    given.save("v2", EX, {"x": np.zeros(2)})
    assert [p.parent for p in (tmp_path / "given").rglob("*.npz")] == [
        tmp_path / "given" / "features" / EX.key]
    monkeypatch.delenv("SCENEBENCH_ARTEFACTS")
    FeatureStore(tmp_path / "plain").save("v3", EX, {"x": np.zeros(2)})
    assert len(list((tmp_path / "plain" / "features" / EX.key).glob("v3.*.npz"))) == 1


def test_the_catalog_records_its_version_and_how_to_rebuild_each_extractor(tmp_path: Path) -> None:
    other = Extractor("cases-v", {"size": [224, 224], "fps": 2.0}, version="3")
    with FeatureStore(tmp_path / "store") as store:
        store.save("v1", other, {"x": np.zeros(2)})
        store.mark_failed("v2", EX, "no audio")
    with contextlib.closing(sqlite3.connect(tmp_path / "store" / "catalog.sqlite")) as db:
        version = db.execute("SELECT value FROM meta WHERE key='catalog_version'").fetchall()
        rows = db.execute("SELECT key, name, version, params FROM extractors ORDER BY key").fetchall()
    assert version == [("1",)]
    assert rows == [(EX.key, "cases-test", "1", '{"fps":1.0}'),
                    (other.key, "cases-v", "3", '{"fps":2.0,"size":[224,224]}')]
    assert [Extractor(name, catalog.json.loads(params), v) for _, name, v, params in rows] == [EX, other]


def test_register_refuses_a_file_elsewhere_or_of_another_size(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    elsewhere = write_artefact(Location(tmp_path / "worker"), "v1", EX.key, "json", {"n": 1}, None)
    target = store.location.describe(elsewhere.relpath)
    with pytest.raises(BadInput) as err:
        store.register("v1", EX, elsewhere)
    assert str(err.value) == (f"{EX.key} for video v1: the written artefact {target} is not where this "
                              "store keeps artefacts (is it shared with the workers?)")
    written = write_artefact(store.location, "v1", EX.key, "json", {"n": 1}, None)
    path = store.root / written.relpath
    path.write_bytes(path.read_bytes() + b"   ")
    with pytest.raises(BadInput) as err:
        store.register("v1", EX, written)
    assert str(err.value) == (f"{EX.key} for video v1: {path} has {written.nbytes + 3} bytes, "
                              f"the writer wrote {written.nbytes}")
    assert store.status("v1", EX) == "missing"


def test_a_read_only_store_still_calls_bad_arrays_and_meta_bad_input(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    FeatureStore(tmp_path / "store").close()
    deny_writes_under(monkeypatch, tmp_path / "store")
    ro = FeatureStore(tmp_path / "store")
    assert ro.read_only
    with pytest.raises(BadInput, match=re.escape(f"extractor {EX.key}: save() needs at least one array")):
        ro.save("v1", EX, {})
    for save in (lambda: ro.save("v1", EX, {"x": np.zeros(1)}, {"t": float("nan")}),
                 lambda: ro.save_json("v1", EX, [], {"t": float("nan")})):
        with pytest.raises(BadInput, match=re.escape(f"extractor {EX.key}: meta must be JSON-able")):
            save()
    with pytest.raises(Unavailable, match="read-only"):
        ro.save("v1", EX, {"x": np.zeros(1)}, {"t": 1.0})


def test_a_closed_store_closes_again_harmlessly_and_reopens_on_use(tmp_path: Path) -> None:
    with FeatureStore(tmp_path / "store") as store:
        store.save("v1", EX, {"x": np.arange(3)})
    store.close()
    assert store.status("v1", EX) == "done"  # the catalog is opened again
    store.save("v2", EX, {"x": np.arange(2)})
    store.close()
    assert [v["video_id"] for v in FeatureStore(tmp_path / "store").videos()] == ["v1", "v2"]


def test_a_symlink_loop_is_a_file_not_found(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(BadInput, match=r"a: file not found$"):
        FeatureStore(tmp_path / "store").video_id(tmp_path / "a")
