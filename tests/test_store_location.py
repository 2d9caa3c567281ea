"""Feature files away from the catalog: an fsspec location (an in-memory object store, and the
local file system reached through fsspec's ``local://``) holds every artefact, the catalog stays
in the store's root, and the store's guarantees hold there too: nothing half-written is served,
a changed or truncated object is recomputed, prune removes only what no row points to."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.errors import BadInput, Unavailable
from bench.store import Extractor, FeatureStore, Location, index_videos
from bench.store.location import is_url
from bench.types import Video

fsspec = pytest.importorskip("fsspec")

EX = Extractor("location-test", {"fps": 1.0})


@pytest.fixture(params=["memory", "local-url"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        url = f"memory://sb-{uuid.uuid4().hex[:8]}/features-store"
        yield url
        fsspec.filesystem("memory").rm(url.removeprefix("memory:/"), recursive=True)
    else:
        yield f"local://{tmp_path / 'objects'}"


def objects(loc: Location) -> list[str]:
    return sorted(rel for rel, _ in loc.files("features"))


def test_artefacts_live_at_the_location_and_the_catalog_in_root(where: str, tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store", artefacts=where)
    store.save("v1", EX, {"x": np.arange(5, dtype=np.float32)}, {"n": 5})
    store.save_json("v2", EX, {"text": "Привет"})
    assert (tmp_path / "store" / "catalog.sqlite").is_file()
    assert not (tmp_path / "store" / "features").exists()  # nothing written beside the catalog
    names = objects(store.location)
    assert len(names) == 2 and all(n.startswith(f"features/{EX.key}/") for n in names)
    # a second store on the same root and location serves them: nothing recomputed
    again = FeatureStore(tmp_path / "store", artefacts=where)
    assert again.status("v1", EX) == "done"
    np.testing.assert_array_equal(again.load("v1", EX)["x"], np.arange(5, dtype=np.float32))  # type: ignore[index]
    assert again.load_json("v2", EX) == {"text": "Привет"} and again.load_meta("v1", EX) == {"n": 5}


def test_a_truncated_or_changed_object_is_never_served(where: str, tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store", artefacts=where)
    store.save("v1", EX, {"x": np.arange(100, dtype=np.float64)})
    (rel,) = objects(store.location)
    fs, key = store.location.fs, store.location._key(rel)
    data = fs.cat_file(key)
    fs.pipe_file(key, data[:-10])  # truncated: the size check finds it
    assert store.status("v1", EX) == "missing"
    store.save("v1", EX, {"x": np.arange(100, dtype=np.float64)})
    (rel,) = objects(store.location)
    key = store.location._key(rel)
    flipped = bytearray(fs.cat_file(key))
    flipped[-50] ^= 0xFF  # same size, other bytes: the checksum finds it, and the object goes
    fs.pipe_file(key, bytes(flipped))
    assert store.status("v1", EX) == "done" and store.load("v1", EX) is None
    assert store.status("v1", EX) == "missing" and objects(store.location) == []


def test_replacing_failing_and_prune_clean_the_location(where: str, tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store", artefacts=where)
    store.save("v1", EX, {"x": np.zeros(3)})
    store.save("v1", EX, {"x": np.ones(3)})  # replaced: the old object goes
    assert len(objects(store.location)) == 1
    store.save("v2", EX, {"x": np.ones(4)})
    store.mark_failed("v2", EX, "decoder crashed")  # a failed row keeps no object
    assert len(objects(store.location)) == 1
    # an object no row points to (a run killed between upload and commit) is swept once old
    store.location.write(f"features/{EX.key}", "orphan", "npz", lambda fh: fh.write(b"x"))
    assert len(objects(store.location)) == 2
    assert store.prune(older_than_s=3600.0) == 0  # too recent: it may be about to be registered
    time.sleep(0.05)
    assert store.prune(older_than_s=0.0) == 1
    assert len(objects(store.location)) == 1 and store.status("v1", EX) == "done"


def test_the_indexing_loop_resumes_against_the_location(where: str, tmp_path: Path,
                                                        synthetic_mini: Any) -> None:
    videos = [Video(vid=v.vid, path=str(v.resolve(synthetic_mini.root)))
              for v in sorted(synthetic_mini.videos.values(), key=lambda v: v.vid)]
    first, second = videos[0].vid, videos[1].vid
    calls: list[str] = []
    broken = {second}

    def compute(path: Path, info: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        vid = next(v.vid for v in videos if Path(v.path) == path)
        calls.append(vid)
        if vid in broken:
            raise BadInput(f"{vid}: cannot decode")
        return {"d": np.full(2, info.duration_s, dtype=np.float32)}, {}

    store = FeatureStore(tmp_path / "store", artefacts=where)
    done = index_videos(store, videos, EX, compute, desc="toy")
    assert sorted(done) == [first] and calls == [first, second]
    calls.clear()
    broken.clear()  # fixed: the failed video is tried again, the finished one is not
    again = index_videos(store, videos, EX, compute, desc="toy")
    assert calls == [second] and sorted(again) == [first, second]
    assert len(objects(store.location)) == 2


def test_a_location_that_cannot_be_used_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="artefacts at nosuch://bucket/x: Protocol not known") as err:
        FeatureStore(tmp_path / "store", artefacts="nosuch://bucket/x")
    assert "\n" not in str(err.value)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BadInput, match="cannot be written") as err2:
        Location(blocker / "under-a-file").check_writable()
    assert "\n" not in str(err2.value)
    assert is_url("s3://b/p") and is_url("local:///x") and not is_url("file:///x") and not is_url("/x")
    assert Location("file:///tmp/x").local == Path("/tmp/x")
    nested = Location(tmp_path / "a" / "b")
    nested.check_writable()
    nested.check_writable()  # there already: fine
    assert (tmp_path / "a" / "b").is_dir()
    assert nested.describe("features/x") == str(tmp_path / "a" / "b" / "features" / "x")
    rel, nbytes, digest = nested.write("features/x", "vid", "json", lambda fh: fh.write(b"{}"))
    assert rel == f"features/x/vid.{digest[:12]}.json" and nbytes == 2 and nested.read_bytes(rel) == b"{}"
    nested.unlink(rel)
    nested.unlink(rel)  # already gone: nothing to do
    assert list(nested.files("features")) == []


def test_cli_artefacts_option_checks_the_location_first(capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.cli import main

    monkeypatch.delenv("SCENEBENCH_ARTEFACTS", raising=False)
    rc = main(["index", "--dataset", "synthetic-mini", "--retriever", "bm25-text",
               "--artefacts", "nosuch://bucket/x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("error: artefacts at nosuch://bucket/x: Protocol not known")
    assert "SCENEBENCH_ARTEFACTS" not in os.environ  # nothing set for a refused location


def test_object_ages_from_every_filesystem_s_own_field() -> None:
    import datetime as dt

    from bench.store.location import _mtime

    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert _mtime({"mtime": 12.5}) == 12.5  # local
    assert _mtime({"created": 7}) == 7.0  # memory
    assert _mtime({"LastModified": when}) == when.timestamp()  # s3
    assert _mtime({"last_modified": when}) == when.timestamp()  # abfs
    assert _mtime({"updated": "2026-01-02T03:04:05Z"}) == when.timestamp()  # gcs: ISO text
    assert _mtime({"updated": "yesterday", "created": 3.0}) == 3.0  # unreadable: the next field
    assert _mtime({"mtime": None, "size": 4}) == float("inf")  # unknown age: never swept


def test_an_object_location_writes_hashes_and_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    url = f"memory://sb-{uuid.uuid4().hex[:8]}/root/"
    loc = Location(url)
    assert loc.describe("features/x/a.npz") == url.rstrip("/") + "/features/x/a.npz"
    assert list(loc.files("features")) == []  # nothing there yet: no error
    loc.check_writable()
    loc.check_writable()  # again: the prefix exists now
    assert list(loc.fs.find(loc.base)) == []  # the write test leaves nothing behind
    rel, nbytes, digest = loc.write("features/x", "vid", "json", lambda fh: fh.write(b'{"a": 1}'))
    assert (nbytes, digest) == (8, hashlib.sha256(b'{"a": 1}').hexdigest())
    assert rel == f"features/x/vid.{digest[:12]}.json"
    assert loc.read_bytes(rel) == b'{"a": 1}' and loc.sha256(rel) == digest and loc.size(rel) == 8
    assert [r for r, _ in loc.files("features")] == [rel]
    loc.unlink(rel)
    loc.unlink(rel)  # already gone: nothing to do
    with pytest.raises(FileNotFoundError):
        loc.size(rel)

    def denied(*args: Any, **kwargs: Any) -> None:
        raise PermissionError("Access Denied\n(bucket policy)")

    monkeypatch.setattr(loc.fs, "pipe_file", denied)
    with pytest.raises(BadInput) as err:
        loc.check_writable()
    assert str(err.value) == f"artefacts at {url} cannot be written: Access Denied (bucket policy)"
    fsspec.filesystem("memory").rm(loc.base, recursive=True)


def test_a_location_whose_name_ends_in_x_keeps_its_name() -> None:
    # the trailing-slash strip must take only slashes: 'storeX/' is not 'store'
    url = f"memory://sb-{uuid.uuid4().hex[:8]}/storeX/"
    loc = Location(url)
    assert loc.base.endswith("/storeX")
    assert loc.describe("features/a.npz") == url + "features/a.npz"
    rel, _, _ = loc.write("features/ex", "vid", "json", lambda fh: fh.write(b"{}"))
    assert loc.fs.exists(f"{loc.base}/{rel}") and objects(loc) == [rel]
    fsspec.filesystem("memory").rm(loc.base, recursive=True)


def test_each_write_test_is_a_fresh_empty_object(monkeypatch: pytest.MonkeyPatch) -> None:
    # two checks at once (two workers starting) must not remove each other's probe
    loc = Location(f"memory://sb-{uuid.uuid4().hex[:8]}/root")
    written: list[tuple[str, object]] = []
    real = loc.fs.pipe_file
    monkeypatch.setattr(loc.fs, "pipe_file", lambda key, data: (written.append((key, data)), real(key, data)))
    loc.check_writable()
    loc.check_writable()
    (k1, d1), (k2, d2) = written
    assert k1 != k2 and all(k.startswith(f"{loc.base}/.write-test.") for k in (k1, k2))
    assert isinstance(d1, bytes) and isinstance(d2, bytes)  # an object store takes bytes only
    assert not loc.fs.exists(k1) and not loc.fs.exists(k2)
    fsspec.filesystem("memory").rm(loc.base, recursive=True)


def test_files_are_the_store_s_two_levels_only(where: str, tmp_path: Path) -> None:
    loc = Location(where)
    kept, _, _ = loc.write("features/ex", "vid", "json", lambda fh: fh.write(b"{}"))
    loc.write("features/ex/deeper", "other", "json", lambda fh: fh.write(b"{}"))  # not the store's
    assert objects(loc) == [kept]


def test_a_file_that_vanishes_while_listed_is_skipped_and_listing_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loc = Location(tmp_path / "objects")
    rels = sorted(loc.write("features/ex", f"v{i}", "json", lambda fh: fh.write(b"{}"))[0] for i in range(3))
    real_stat = Path.stat
    gone: list[Path] = []

    def stat(self: Path, **kw: Any) -> os.stat_result:
        if self.suffix == ".json" and not gone:
            gone.append(self)  # the first file listed is removed by a concurrent prune
            raise FileNotFoundError(self)
        return real_stat(self, **kw)

    monkeypatch.setattr(Path, "is_file", lambda self: self.suffix == ".json")
    monkeypatch.setattr(Path, "stat", stat)
    listed = [rel for rel, _ in loc.files("features")]
    assert len(gone) == 1 and len(listed) == 2
    assert sorted([*listed, gone[0].relative_to(loc.local).as_posix()]) == rels  # type: ignore[arg-type]
