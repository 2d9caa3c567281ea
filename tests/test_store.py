"""Feature store: keys, content ids, atomic round trips, damaged files, failures, the index loop."""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bench.store.catalog as catalog
from bench.errors import BadInput, Unavailable
from bench.store import Extractor, FeatureStore, index_videos, index_videos_json
from bench.store.access import store_errors
from bench.types import Video
from bench.video import ProbeInfo, sample_frames

EX = Extractor("clip-image", {"model": "openai/clip-vit-base-patch32", "revision": "3d74acf", "fps": 1.0})


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    return FeatureStore(tmp_path / "store")


def video_file(path: Path, payload: bytes = b"\x00fake video bytes") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


# -- extractor keys -----------------------------------------------------------------------


def test_extractor_key_is_stable_and_order_free() -> None:
    same = Extractor("clip-image",
                     {"fps": 1.0, "revision": "3d74acf", "model": "openai/clip-vit-base-patch32"})
    assert EX.key == same.key and same == EX and hash(EX) == hash(same)
    # pinned: a change here silently invalidates every cache in the wild
    assert EX.key == "clip-image-dbc4b3710e6fb28e"
    assert EX.key == "clip-image-" + catalog.hashlib.sha256(
        b'{"name":"clip-image","params":{"fps":1.0,"model":"openai/clip-vit-base-patch32",'
        b'"revision":"3d74acf"},"version":"1"}').hexdigest()[:16]
    assert len(EX.key) == len("clip-image-") + 16
    assert Extractor("clip-image", {**EX.params, "fps": 2.0}).key != EX.key
    assert Extractor("clip-image", EX.params, version="2").key != EX.key
    assert Extractor("asr", EX.params).key.startswith("asr-")


def test_extractor_rejects_machine_paths_and_non_json() -> None:
    for bad in ("/home/me/models/clip", "local-dir:/models/x", "C:\\models", "~/models"):
        with pytest.raises(BadInput, match="machine path"):
            Extractor("clip-image", {"model": {"id": bad}})
    with pytest.raises(BadInput, match="JSON-able"):
        Extractor("clip-image", {"model": Path("x")})
    with pytest.raises(BadInput, match="JSON-able"):
        Extractor("clip-image", {"fps": float("nan")})
    with pytest.raises(BadInput, match="extractor name"):
        Extractor("../evil", {})


# -- video ids ----------------------------------------------------------------------------


def test_same_bytes_under_two_paths_is_one_video(store: FeatureStore, tmp_path: Path) -> None:
    a = video_file(tmp_path / "a" / "clip.mp4")
    b = tmp_path / "b" / "renamed.mkv"
    b.parent.mkdir()
    shutil.copyfile(a, b)
    c = video_file(tmp_path / "c.mp4", b"other bytes")
    vid = store.video_id(a)
    assert vid == store.video_id(b) != store.video_id(c)
    assert vid == catalog.hashlib.sha256(a.read_bytes()).hexdigest()[:32]
    rows = {r["video_id"]: r for r in store.videos()}
    assert sorted(rows[vid]["paths"]) == sorted([str(a.resolve()), str(b.resolve())])


def test_video_id_is_memoised_until_the_file_changes(store: FeatureStore, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    a = video_file(tmp_path / "clip.mp4")
    calls: list[Path] = []
    real = catalog.sha256_file
    monkeypatch.setattr(catalog, "sha256_file", lambda p: calls.append(p) or real(p))
    first = store.video_id(a)
    assert store.video_id(a) == first
    assert FeatureStore(store.root).video_id(a) == first  # memo lives in the catalog
    assert len(calls) == 1
    a.write_bytes(b"new content")
    os.utime(a, ns=(1, 1))
    assert store.video_id(a) != first
    assert len(calls) == 2


def test_video_id_missing_file(store: FeatureStore, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="file not found"):
        store.video_id(tmp_path / "gone.mp4")


# -- save / load --------------------------------------------------------------------------


def test_round_trip_arrays_and_meta(store: FeatureStore) -> None:
    arrays = {
        "emb": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
        "half": np.ones((2, 2), dtype=np.float16),
        "times_s": np.array([0.0, 1.0, 2.5]),
        "idx": np.array([0, 25, 62], dtype=np.int64),
        "keep": np.array([True, False, True]),
        "labels": np.array(["a", "données", "日本"]),
        "empty": np.zeros((0, 512), dtype=np.float32),
    }
    assert store.status("v1", EX) == "missing"
    assert store.load("v1", EX) is None and store.load_meta("v1", EX) is None
    store.save("v1", EX, arrays, {"decoder": "decord", "n_frames": 3})
    assert store.status("v1", EX) == "done"
    got = store.load("v1", EX)
    assert got is not None and set(got) == set(arrays)
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape
        np.testing.assert_array_equal(got[k], v)
    assert store.load_meta("v1", EX) == {"decoder": "decord", "n_frames": 3}
    files = list((store.root / "features" / EX.key).iterdir())
    assert [f.suffix for f in files] == [".npz"] and files[0].name.startswith("v1.")
    # fresh process view: everything comes from the catalog and the file
    again = FeatureStore(store.root)
    np.testing.assert_array_equal(again.load("v1", EX)["emb"], arrays["emb"])  # type: ignore[index]


def test_equal_arrays_give_equal_bytes(store: FeatureStore) -> None:
    store.save("v1", EX, {"x": np.arange(5)})
    first = next((store.root / "features" / EX.key).iterdir()).read_bytes()
    store.save("v1", EX, {"x": np.arange(5)})
    files = list((store.root / "features" / EX.key).iterdir())
    assert len(files) == 1 and files[0].read_bytes() == first


def test_resave_replaces_and_removes_the_old_file(store: FeatureStore) -> None:
    store.save("v1", EX, {"x": np.zeros(3)})
    store.save("v1", EX, {"x": np.ones(4)})
    assert store.load("v1", EX)["x"].tolist() == [1.0] * 4  # type: ignore[index]
    assert len(list((store.root / "features" / EX.key).iterdir())) == 1


def test_save_rejects_what_cannot_round_trip(store: FeatureStore) -> None:
    with pytest.raises(BadInput, match="dtype object"):
        store.save("v1", EX, {"x": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(BadInput, match="at least one array"):
        store.save("v1", EX, {})
    with pytest.raises(BadInput, match="meta must be JSON-able"):
        store.save("v1", EX, {"x": np.zeros(1)}, {"when": object()})
    assert store.status("v1", EX) == "missing"


def test_interrupted_write_leaves_nothing_and_keeps_the_old_value(store: FeatureStore,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    store.save("v1", EX, {"x": np.arange(3)})

    def boom(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # e.g. Ctrl-C half-way through writing

    monkeypatch.setattr(np.lib.format, "write_array", boom)
    with pytest.raises(KeyboardInterrupt):
        store.save("v1", EX, {"x": np.arange(1000)})
    monkeypatch.undo()
    assert store.load("v1", EX)["x"].tolist() == [0, 1, 2]  # type: ignore[index]
    leftovers = [p.name for p in (store.root / "features" / EX.key).iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def _artefact(store: FeatureStore) -> Path:
    (path,) = (store.root / "features" / EX.key).iterdir()
    return path


def test_truncated_file_is_never_served(store: FeatureStore, caplog: pytest.LogCaptureFixture) -> None:
    store.save("v1", EX, {"x": np.arange(1000, dtype=np.float32)})
    path = _artefact(store)
    path.write_bytes(path.read_bytes()[:-100])
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert store.load("v1", EX) is None
    assert store.status("v1", EX) == "missing"
    assert any("v1" in r.getMessage() and "recomputed" in r.getMessage() for r in caplog.records)


def test_same_size_corruption_fails_the_checksum(store: FeatureStore) -> None:
    store.save("v1", EX, {"x": np.arange(1000, dtype=np.float32)})
    path = _artefact(store)
    data = bytearray(path.read_bytes())
    data[-200] ^= 0xFF  # inside the array payload: np.load alone would not notice
    path.write_bytes(bytes(data))
    assert store.status("v1", EX) == "done"  # cheap check: size still matches
    assert store.load("v1", EX) is None
    assert store.status("v1", EX) == "missing" and not path.exists()


def test_missing_file_resets_status(store: FeatureStore) -> None:
    store.save("v1", EX, {"x": np.arange(3)})
    _artefact(store).unlink()
    assert store.status("v1", EX) == "missing"
    assert store.load("v1", EX) is None


def test_shape_mismatch_with_the_catalog_is_not_served(store: FeatureStore) -> None:
    store.save("v1", EX, {"x": np.arange(3)})
    with sqlite3.connect(store.catalog_path) as db:
        db.execute("UPDATE artefacts SET arrays=? WHERE video_id='v1'",
                   ('{"x":{"dtype":"<i8","shape":[4]}}',))
    assert store.load("v1", EX) is None
    assert store.status("v1", EX) == "missing"


def test_json_round_trip(store: FeatureStore) -> None:
    segments = [{"start": 0.5, "end": 1.25, "text": "¿dónde está? 東京", "source": "speech"}]
    store.save_json("v1", EX, segments, {"lang": "es"})
    assert store.load_json("v1", EX) == segments
    assert store.load_meta("v1", EX) == {"lang": "es"}
    assert store.status("v1", EX) == "done"
    with pytest.raises(BadInput, match="load_json"):
        store.load("v1", EX)
    with pytest.raises(BadInput, match="not JSON-able"):
        store.save_json("v2", EX, {"x": float("inf")})
    path = _artefact(store)
    path.write_text("[]", encoding="utf-8")
    assert store.load_json("v1", EX) is None


def test_prune_removes_only_old_unreferenced_files(store: FeatureStore) -> None:
    store.save("v1", EX, {"x": np.arange(3)})
    kept = _artefact(store)
    orphan = kept.with_name("v2.0123456789ab.npz")
    orphan.write_bytes(b"left by a killed run")
    temp = kept.with_name(".v3.abc.tmp")
    temp.write_bytes(b"half written")
    assert store.prune() == 0  # too recent: may belong to a writer about to commit
    for path in (orphan, temp, kept):
        os.utime(path, (1, 1))
    assert store.prune() == 2
    assert sorted(p.name for p in kept.parent.iterdir()) == [kept.name]
    assert store.load("v1", EX) is not None


def test_failures_are_recorded_and_cleared_by_a_later_save(store: FeatureStore) -> None:
    store.save("v1", EX, {"x": np.arange(3)})
    store.mark_failed("v1", EX, "clip.mp4: not a readable video\n(moov atom not found)")
    assert store.status("v1", EX) == "failed"
    assert store.failure("v1", EX) == "clip.mp4: not a readable video (moov atom not found)"
    assert store.load("v1", EX) is None
    assert list((store.root / "features" / EX.key).iterdir()) == []
    store.save("v1", EX, {"x": np.arange(2)})
    assert store.status("v1", EX) == "done" and store.failure("v1", EX) is None


def test_probe_record_and_listing(store: FeatureStore, tmp_path: Path) -> None:
    path = video_file(tmp_path / "clip.mp4")
    vid = store.video_id(path)
    assert store.get_probe(vid) is None
    info = ProbeInfo(path=str(path), duration_s=12.5, fps=29.97, width=640, height=360, rotation=0,
                     n_frames=375, has_audio=True, video_codec="h264", audio_codec="aac", vfr=False)
    store.record_probe(vid, info)
    assert store.get_probe(vid) == info.to_dict()
    store.save(vid, EX, {"x": np.zeros(1)})
    store.mark_failed(vid, Extractor("ocr", {}), "no text model")
    (row,) = store.videos()
    assert row["video_id"] == vid and row["probe"]["duration_s"] == 12.5
    assert (row["done"], row["failed"], row["size"]) == (1, 1, path.stat().st_size)


def test_catalog_is_wal_and_artifact_dirs_are_safe(store: FeatureStore) -> None:
    with sqlite3.connect(store.catalog_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    d = store.artifact_dir("clip/ivf-abc")
    assert d == store.root / "artifacts" / "clip" / "ivf-abc" and d.is_dir()
    for bad in ("../x", "/abs", "a//b", ""):
        with pytest.raises(BadInput):
            store.artifact_dir(bad)


def test_default_root_is_under_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCENEBENCH_CACHE", str(tmp_path / "cache"))
    assert FeatureStore().root == tmp_path / "cache" / "store"


def test_two_stores_on_one_root_see_each_other(tmp_path: Path) -> None:
    a, b = FeatureStore(tmp_path), FeatureStore(tmp_path)
    a.save("v1", EX, {"x": np.arange(3)})
    assert b.status("v1", EX) == "done"
    b.mark_failed("v2", EX, "bad")
    assert a.failure("v2", EX) == "bad"


# -- read-only caches and broken catalogs ---------------------------------------------------


PROBE = ProbeInfo(path="v.mp4", duration_s=4.0, fps=25.0, width=64, height=48, rotation=0,
                  n_frames=100, has_audio=False, video_codec="h264", audio_codec=None, vfr=False)


def deny_writes_under(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Make ``root`` (and everything under it) look unwritable, as a read-only mount does even
    to root; the store decides writability with ``os.access``."""
    real = os.access

    def access(path: Any, mode: int, **kw: Any) -> bool:
        if mode & os.W_OK and Path(path).is_relative_to(root):
            return False
        return real(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)


def test_read_only_store_serves_what_is_indexed(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "cache" / "store"
    clip = video_file(tmp_path / "v.mp4")
    with FeatureStore(root) as rw:
        vid = rw.video_id(clip)
        rw.save(vid, EX, {"x": np.arange(4.0)}, {"n_frames": 4})
        rw.save_json(vid, Extractor("ocr", {}), [{"start": 1.0, "text": "hi"}])
        rw.record_probe(vid, PROBE)
    def files() -> dict[Path, bytes]:  # SQLite's WAL index files aside: they hold no data
        return {p: p.read_bytes() for p in root.rglob("*")
                if p.is_file() and not p.name.endswith(("-wal", "-shm"))}

    before = files()
    deny_writes_under(monkeypatch, tmp_path / "cache")

    ro = FeatureStore(root)
    assert ro.read_only
    assert ro.status(vid, EX) == "done"
    assert np.array_equal(ro.load(vid, EX)["x"], np.arange(4.0))
    assert ro.load_json(vid, Extractor("ocr", {})) == [{"start": 1.0, "text": "hi"}]
    assert ro.load_meta(vid, EX) == {"n_frames": 4} and ro.get_probe(vid)["duration_s"] == 4.0
    assert ro.video_id(clip) == vid
    other = video_file(tmp_path / "other.mp4", b"other bytes")
    assert ro.video_id(other) == catalog.sha256_file(other)[:32]  # hashed, not memoised
    assert ro.status(vid, Extractor("asr", {})) == "missing"
    assert ro.artifact_dir("bm25-text") == root / "artifacts" / "bm25-text"
    for write in (lambda: ro.save(vid, Extractor("asr", {}), {"x": np.zeros(1)}),
                  lambda: ro.save_json(vid, Extractor("asr", {}), []),
                  lambda: ro.mark_failed(vid, EX, "no"),
                  lambda: ro.record_probe(vid, PROBE)):
        with pytest.raises(Unavailable, match=r"store/? is read-only|read-only and .*SCENEBENCH_CACHE"):
            write()
    ro.close()
    assert files() == before
    assert not (root / "artifacts").exists()


def test_read_only_catalog_falls_back_to_immutable_without_a_wal_index(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only directory cannot hold the WAL index SQLite wants for plain ``mode=ro``."""
    import bench.store.access as access

    root = tmp_path / "store"
    with FeatureStore(root) as rw:
        rw.save("v1", EX, {"x": np.arange(3)})
    uris: list[str] = []
    real = access._connect

    def connect(target: str, *, uri: bool = False) -> sqlite3.Connection:
        uris.append(target)
        if uri and "immutable" not in target:
            return real(target + "&vfs=no-such-vfs", uri=True)  # fails to open, as on a read-only mount
        return real(target, uri=uri)

    monkeypatch.setattr(access, "_connect", connect)
    deny_writes_under(monkeypatch, root)
    ro = FeatureStore(root)
    assert np.array_equal(ro.load("v1", EX)["x"], np.arange(3))
    assert [u.rsplit("?", 1)[-1] for u in uris] == ["mode=ro", "mode=ro&immutable=1"]


def test_read_only_store_ignores_a_damaged_file_without_deleting_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "store"
    with FeatureStore(root) as rw:
        rw.save("v1", EX, {"x": np.arange(100)})
    (f,) = (root / "features").rglob("*.npz")
    f.write_bytes(f.read_bytes()[:-10])
    deny_writes_under(monkeypatch, root)
    ro = FeatureStore(root)
    assert ro.load("v1", EX) is None and f.exists()


def test_read_only_empty_cache_fails_only_when_writing(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    deny_writes_under(monkeypatch, cache)
    ro = FeatureStore(cache / "store")
    assert ro.read_only and not (cache / "store").exists()
    assert ro.status("v1", EX) == "missing" and ro.load("v1", EX) is None and ro.videos() == []
    with pytest.raises(Unavailable) as err:
        ro.save("v1", EX, {"x": np.zeros(1)})
    msg = str(err.value)
    assert str(cache / "store") in msg and "SCENEBENCH_CACHE" in msg and "\n" not in msg


@pytest.mark.parametrize("read_only", [False, True])
def test_a_catalog_that_is_not_a_database_says_how_to_rebuild(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_only: bool) -> None:
    root = tmp_path / "store"
    root.mkdir()
    bad = root / "catalog.sqlite"
    bad.write_bytes(os.urandom(4096))
    if read_only:
        deny_writes_under(monkeypatch, root)
    with pytest.raises(BadInput, match="not a SQLite database") as err:
        FeatureStore(root)
    assert f"mv {bad} {bad}.broken" in str(err.value)
    bad.rename(bad.with_name("catalog.sqlite.broken"))
    monkeypatch.undo()
    rebuilt = FeatureStore(root)  # the advice works: a fresh catalog, features recomputed
    rebuilt.save("v1", EX, {"x": np.arange(2)})
    assert rebuilt.status("v1", EX) == "done"


@pytest.mark.parametrize(("exc", "kind", "words"), [
    (sqlite3.OperationalError("attempt to write a readonly database"), Unavailable, "SCENEBENCH_CACHE"),
    (sqlite3.OperationalError("database is locked"), Unavailable, "locked"),
    (sqlite3.DatabaseError("database disk image is malformed"), BadInput, "move it aside"),
    (PermissionError(13, "Permission denied", "/c/store/features"), Unavailable,
     "/c/store/features (Permission denied); point SCENEBENCH_CACHE"),
    (OSError(30, "Read-only file system", "/c/store"), Unavailable, "SCENEBENCH_CACHE"),
    (OSError(28, "No space left on device", "/c/store/x"), Unavailable, "no space left"),
])
def test_store_errors_become_one_line_errors(exc: BaseException, kind: type, words: str) -> None:
    with pytest.raises(kind, match=re.escape(words)) as err, store_errors(Path("/c/store")):
        raise exc
    assert "\n" not in str(err.value)


def test_other_os_errors_are_not_disguised() -> None:
    with pytest.raises(FileNotFoundError), store_errors(Path("/c/store")):
        raise FileNotFoundError(2, "No such file or directory", "/c/store/x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file modes")
def test_a_chmod_read_only_cache_is_read_only(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with FeatureStore(root) as rw:
        rw.save("v1", EX, {"x": np.arange(3)})
    modes = {p: p.stat().st_mode for p in [root, *root.rglob("*")]}
    try:
        for p in modes:
            p.chmod(p.stat().st_mode & ~0o222)
        ro = FeatureStore(root)
        assert ro.read_only and np.array_equal(ro.load("v1", EX)["x"], np.arange(3))
        with pytest.raises(Unavailable, match="read-only"):
            ro.save("v2", EX, {"x": np.arange(3)})
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


# -- index loop ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    d = tmp_path_factory.mktemp("clips")
    out = []
    for i, color in enumerate(("red", "green", "blue")):
        path = d / f"c{i}.mp4"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                        f"color=c={color}:size=64x48:rate=10:duration={i + 1}", "-c:v", "libx264",
                        "-pix_fmt", "yuv420p", str(path)], check=True)
        out.append(path)
    bad = d / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    out.append(bad)
    return out


def mean_colour(path: Path, info: ProbeInfo) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    frames, times = [], []
    for batch in sample_frames(path, 1.0, short_side=16):
        frames.append(batch.frames.reshape(len(batch), -1, 3).mean(1))
        times.append(batch.times_s)
    return {"rgb": np.concatenate(frames), "times_s": np.concatenate(times)}, {"n_frames": len(times)}


def test_index_videos_computes_skips_and_records_failures(
        store: FeatureStore, clips: list[Path], caplog: pytest.LogCaptureFixture) -> None:
    videos = [Video(vid=p.stem, path=str(p)) for p in clips]
    videos.append(Video(vid="gone", path=str(clips[0].parent / "gone.mp4")))
    calls: list[str] = []

    def compute(path: Path, info: ProbeInfo) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        calls.append(path.stem)
        return mean_colour(path, info)

    with caplog.at_level(logging.INFO, logger="bench"):
        done = index_videos(store, videos, EX, compute, desc="colour")
    assert sorted(done) == ["c0", "c1", "c2"]
    assert calls == ["c0", "c1", "c2"]  # the broken file fails in probe, before compute
    bad_lines = [r for r in caplog.records if "broken" in r.getMessage()]
    assert len(bad_lines) == 1 and "not a readable video" in bad_lines[0].getMessage()
    assert len([r for r in caplog.records if "gone" in r.getMessage()]) == 1
    broken_id = store.video_id(clips[3])
    assert store.status(broken_id, EX) == "failed"
    assert "not a readable video" in (store.failure(broken_id, EX) or "")

    c1 = store.load(done["c1"], EX)
    assert c1 is not None and c1["times_s"].tolist() == [0.0, 1.0]
    assert c1["rgb"][0, 1] > 100 and c1["rgb"][0, 0] < 50  # green
    assert store.get_probe(done["c2"])["duration_s"] == pytest.approx(3.0, abs=0.05)  # type: ignore[index]

    calls.clear()
    assert index_videos(store, videos, EX, compute, desc="colour") == done
    assert calls == []  # done videos are not recomputed; the broken one fails in probe again


def test_index_videos_json_variant(store: FeatureStore, clips: list[Path]) -> None:
    videos = [Video(vid=p.stem, path=str(p)) for p in clips[:2]]
    ex = Extractor("frames-json", {"fps": 1.0})

    def compute(path: Path, info: ProbeInfo) -> tuple[Any, dict[str, Any]]:
        return [{"t": float(t)} for b in sample_frames(path, 1.0) for t in b.times_s], {"n_frames": 1}

    done = index_videos_json(store, videos, ex, compute, desc="json")
    assert store.load_json(done["c1"], ex) == [{"t": 0.0}, {"t": 1.0}]
    with pytest.raises(BadInput, match="kind"):
        index_videos(store, videos, ex, compute, desc="x", kind="npy")  # type: ignore[arg-type]


def test_index_videos_lets_bugs_through(store: FeatureStore, clips: list[Path]) -> None:
    def buggy(path: Path, info: ProbeInfo) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        raise ZeroDivisionError("bug")

    with pytest.raises(ZeroDivisionError):
        index_videos(store, [Video(vid="c0", path=str(clips[0]))], EX, buggy, desc="x")
    assert store.status(store.video_id(clips[0]), EX) == "missing"


def test_index_videos_records_decoder_errors_and_goes_on(store: FeatureStore, clips: list[Path],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    import av

    def compute(path: Path, info: ProbeInfo) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if path.stem == "c0":
            raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
        return mean_colour(path, info)

    videos = [Video(vid=p.stem, path=str(p)) for p in clips[:3]]
    with caplog.at_level(logging.WARNING, logger="bench"):
        done = index_videos(store, videos, EX, compute, desc="colour")
    assert sorted(done) == ["c1", "c2"]
    c0 = store.video_id(clips[0])
    assert store.status(c0, EX) == "failed"
    assert "Invalid data found" in (store.failure(c0, EX) or "")
    assert len([r for r in caplog.records if "c0 failed" in r.getMessage()]) == 1


def test_index_videos_streams_pending_videos_in_runs(store: FeatureStore, clips: list[Path],
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    import bench.store.indexing as indexing
    from bench.video import DecodeError

    monkeypatch.setattr(indexing, "STREAM_CHUNK_VIDEOS", 2)
    runs: list[list[str]] = []

    def stream(jobs: Any) -> Any:
        runs.append([path.stem for path, _ in jobs])
        # Outcomes may come in any order; c1 fails in its decoder.
        for position in reversed(range(len(jobs))):
            path, info = jobs[position]
            if path.stem == "c1":
                yield position, DecodeError(f"{path}: PyAV failed after frame 3 (Invalid data)")
            else:
                yield position, mean_colour(path, info)

    def never(path: Path, info: ProbeInfo) -> Any:
        raise AssertionError("a streamed loop calls no per-video compute")

    videos = [Video(vid=p.stem, path=str(p)) for p in clips]  # c0 c1 c2 broken
    videos.insert(1, Video(vid="c0-again", path=str(clips[0])))  # the same bytes twice
    with caplog.at_level(logging.WARNING, logger="bench"):
        done = index_videos(store, videos, EX, never, desc="colour", stream=stream)
    # The broken file fails in probe and never reaches the stream; the twin is computed once.
    assert runs == [["c0", "c1"], ["c2"]]
    assert done == {"c0": store.video_id(clips[0]), "c0-again": store.video_id(clips[0]),
                    "c2": store.video_id(clips[2])}
    c1 = store.video_id(clips[1])
    assert store.status(c1, EX) == "failed" and "Invalid data" in (store.failure(c1, EX) or "")
    assert len([r for r in caplog.records if "c1 failed" in r.getMessage()]) == 1
    c2 = store.load(done["c2"], EX)
    assert c2 is not None and c2["times_s"].tolist() == [0.0, 1.0, 2.0]

    # A second run streams only the failed one again.
    runs.clear()
    index_videos(store, videos, EX, never, desc="colour", stream=stream)
    assert runs == [["c1"]]


def test_index_videos_stream_bugs_stop_the_loop(store: FeatureStore, clips: list[Path]) -> None:
    videos = [Video(vid=p.stem, path=str(p)) for p in clips[:2]]

    def buggy(jobs: Any) -> Any:
        yield 1, mean_colour(*jobs[1])
        yield 0, ZeroDivisionError("bug")

    with pytest.raises(ZeroDivisionError):
        index_videos(store, videos, EX, mean_colour, desc="x", stream=buggy)
    assert store.status(store.video_id(clips[1]), EX) == "done"  # finished before the bug: kept
    assert store.status(store.video_id(clips[0]), EX) == "missing"

    def forgetful(jobs: Any) -> Any:
        yield 0, mean_colour(*jobs[0])

    with pytest.raises(RuntimeError, match="no outcome for 1 video"):
        index_videos(store, videos[:1] + [Video(vid="c2", path=str(clips[2]))], EX, mean_colour,
                     desc="x", stream=forgetful)
