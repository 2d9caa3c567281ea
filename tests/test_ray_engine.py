"""The Ray indexing engine on one local cluster (shared by the whole module: Ray takes seconds
to start): the same features and moments as the local engine, per-video failures recorded,
and one-line errors for a missing Ray or an unreachable cluster."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.cli import main
from bench.store import FeatureStore
from bench.store.engines import EngineConfig
from bench.types import Video
from bench.workspace import Workspace
from tests.test_clip_frames import make_video

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

TINY = "clip-frames-tiny"
RAY = EngineConfig(kind="ray", workers=2)


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Video]:
    root = tmp_path_factory.mktemp("rayvid")
    a = make_video(root / "redblue.mp4", ["red", "blue"], 3.0)
    b = make_video(root / "greenwhite.mp4", ["green", "white", "green"], 2.0)
    c = make_video(root / "yellow.mp4", ["yellow", "black"], 2.0)
    broken = root / "broken.mp4"
    broken.write_bytes(a.read_bytes()[:3000])  # a header and no whole frame: fails to decode
    return [Video(vid=p.stem, path=str(p)) for p in (a, b, c, broken)]


def features(store: FeatureStore, videos: list[Video], workspace: Workspace) -> dict[str, Any]:
    r = workspace.index(TINY, videos)
    ex = r.extractor  # type: ignore[attr-defined]
    out: dict[str, Any] = {}
    for v in videos:
        video_id = store.video_id(Path(v.path))
        out[v.vid] = store.load(video_id, ex) if store.status(video_id, ex) == "done" else \
            ("failed", store.failure(video_id, ex) is not None)
    return out


def clip_key(store: FeatureStore) -> str:
    """The clip-frames extractor's key (the artefacts that are not shots)."""
    keys = {r["extractor"] for r in store._query("SELECT extractor FROM artefacts")}
    (key,) = [k for k in keys if not k.startswith("shots-")]
    return str(key)


def catalog_rows(store: FeatureStore) -> list[tuple[str, str, str]]:
    return [(r["video_id"], r["extractor"], r["status"]) for r in store._query(
        "SELECT video_id, extractor, status FROM artefacts ORDER BY video_id, extractor")]


def test_ray_features_equal_local_and_resume_recomputes_nothing(
        cluster: None, videos: list[Video], tmp_path: Path) -> None:
    local_store, ray_store = FeatureStore(tmp_path / "local"), FeatureStore(tmp_path / "ray")
    local = features(local_store, videos, Workspace(device="cpu", store=local_store))
    on_ray = features(ray_store, videos, Workspace(device="cpu", store=ray_store, engine=RAY))
    assert set(on_ray) == set(local) == {v.vid for v in videos}
    assert on_ray["broken"] == local["broken"] == ("failed", True)  # a recorded per-video failure
    for vid in ("redblue", "greenwhite", "yellow"):
        assert set(on_ray[vid]) == {"emb", "times_s"}
        np.testing.assert_array_equal(on_ray[vid]["times_s"], local[vid]["times_s"])
        np.testing.assert_allclose(on_ray[vid]["emb"], local[vid]["emb"], rtol=0, atol=1e-5)
    assert len(on_ray["redblue"]["times_s"]) == 6  # 6 s at 1 fps
    before = catalog_rows(ray_store)
    ex_dir = ray_store.root / "features" / clip_key(ray_store)
    files = sorted(p.name for p in ex_dir.iterdir())
    assert len(files) == 3  # one file per done video, none for the failed one, no temp files left

    # a second run on Ray: finished videos are not sent again (the broken one is retried)
    again = Workspace(device="cpu", store=ray_store, engine=RAY)
    r = again.index(TINY, videos)
    assert r.encoder_calls == 0  # type: ignore[attr-defined]
    assert catalog_rows(ray_store) == before
    assert sorted(p.name for p in ex_dir.iterdir()) == files


def test_bench_run_on_ray_gives_the_local_moments(cluster: None, synthetic_mini: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    preds = {}
    for engine in ("local", "ray"):
        # a fresh store per engine, so each computes every feature itself
        monkeypatch.setattr("bench.store.catalog.cache_home", lambda e=engine: tmp_path / f"cache-{e}")
        out = tmp_path / f"results-{engine}"
        rc = main(["run", "--dataset", "synthetic-mini", "--retriever", TINY, "--device", "cpu",
                   "--mode", "grounding", "--out", str(out), "--json", "--engine", engine])
        doc = json.loads(capsys.readouterr().out)
        assert rc == 0 and [r["status"] for r in doc["results"]] == ["ok"]
        result = Path(doc["results"][0]["results_path"])
        path = result.with_name(f"{result.stem}.predictions.jsonl")
        preds[engine] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        assert (tmp_path / f"cache-{engine}" / "store" / "features").is_dir()
    assert preds["ray"] and len(preds["ray"]) == len(preds["local"])
    for got, want in zip(preds["ray"], preds["local"], strict=True):
        assert got["qid"] == want["qid"]
        np.testing.assert_allclose(np.array(got["pred_relevant_windows"]),
                                   np.array(want["pred_relevant_windows"]), atol=1e-5)


def test_without_ray_index_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    rc = main(["index", "--dataset", "synthetic-mini", "--retriever", TINY, "--engine", "ray"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("error: --engine ray needs Ray Data") and "scenebench[ray]" in err[0]


@pytest.mark.parametrize(("address", "says"), [
    ("127.0.0.1:1", "cannot reach the Ray cluster at 127.0.0.1:1"),
    ("ray://127.0.0.1:1", "cannot reach the Ray cluster at ray://127.0.0.1:1"),
    ("no-port", "is not host:port"),
])
def test_unreachable_ray_address_is_one_line(address: str, says: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["index", "--dataset", "synthetic-mini", "--retriever", TINY, "--engine", "ray",
               "--ray-address", address])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and says in err[0]


def test_ray_address_without_ray_engine_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["index", "--dataset", "synthetic-mini", "--retriever", TINY,
               "--ray-address", "127.0.0.1:6379"])
    assert rc == 2 and capsys.readouterr().err.strip() == "error: --ray-address needs --engine ray"
