"""The Ray indexing engine on a simulated two-node cluster (``ray.cluster_utils.Cluster``,
shared by the module): work spreads over both nodes, a worker killed mid-run is replaced
and its video computed once, a video that fails on a worker is a recorded failure."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.errors import BadInput
from bench.store import Extractor, FeatureStore, index_videos
from bench.store.engines import EngineConfig
from bench.types import Video
from bench.video import ProbeInfo, sample_frames
from tests.test_clip_frames import make_video

ray = pytest.importorskip("ray")
cloudpickle = pytest.importorskip("cloudpickle")
pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

EX = Extractor("mean-colour", {"fps": 1.0, "short_side": 16})
# The workers unpickle this module's functions by value: it is not importable there.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def mean_colour(path: Path, info: ProbeInfo) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    rgb = np.concatenate([b.frames.reshape(len(b), -1, 3).mean(1)
                          for b in sample_frames(path, 1.0, short_side=16)])
    return {"rgb": rgb.astype(np.float32)}, {"n_frames": len(rgb)}


Compute = Callable[[Path, ProbeInfo], tuple[dict[str, np.ndarray], dict[str, Any]]]


def _dying_worker(marker: Path) -> Compute:
    def compute(path: Path, info: ProbeInfo) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if path.stem == "bad":
            raise RuntimeError("this worker cannot read bad.mp4")
        try:  # the first video any worker starts kills that worker's process
            marker.touch(exist_ok=False)
        except FileExistsError:
            pass
        else:
            os._exit(1)
        arrays, meta = mean_colour(path, info)
        return arrays, {**meta, "node": ray.get_runtime_context().get_node_id()}

    return compute


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Video]:
    root = tmp_path_factory.mktemp("clustervid")
    colours = [["red", "blue"], ["green", "white"], ["yellow", "black"], ["blue", "red"], ["white", "red"]]
    names = ["a", "b", "c", "d", "bad"]
    return [Video(vid=n, path=str(make_video(root / f"{n}.mp4", cs, 1.0)))
            for n, cs in zip(names, colours, strict=True)]


def test_two_nodes_killed_worker_and_failed_video(two_nodes: Any, videos: list[Video],
                                                  tmp_path: Path) -> None:
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    store = FeatureStore(tmp_path / "store")
    store.engine = EngineConfig(kind="ray", workers=2)
    marker = tmp_path / "killed-once"
    done = index_videos(store, videos, EX, mean_colour, desc="colour",
                        worker=functools.partial(_dying_worker, marker))
    assert marker.exists()  # a worker did die mid-run
    assert sorted(done) == ["a", "b", "c", "d"]
    bad_id = store.video_id(Path(videos[-1].path))
    assert store.status(bad_id, EX) == "failed"
    assert "RuntimeError: this worker cannot read bad.mp4" in (store.failure(bad_id, EX) or "")

    rows = store._query("SELECT video_id, status FROM artefacts WHERE extractor=?", (EX.key,))
    assert sorted(r["status"] for r in rows) == ["done"] * 4 + ["failed"]
    files = sorted((store.root / "features" / EX.key).iterdir())
    assert len(files) == 4  # one artefact per done video: nothing lost, nothing twice
    nodes = set()
    for v in videos[:4]:
        video_id = done[v.vid]
        got = store.load(video_id, EX)
        assert got is not None
        want, _ = mean_colour(Path(v.path), ProbeInfo.from_dict(store.get_probe(video_id) or {}))
        np.testing.assert_allclose(got["rgb"], want["rgb"], atol=1e-5)
        nodes.add((store.load_meta(video_id, EX) or {})["node"])
    assert len(nodes) == 2  # both nodes computed videos

    # a second run sends nothing finished again (only the failed video is retried)
    sent: list[str] = []

    def counting(path: Path, info: ProbeInfo) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        sent.append(path.stem)
        raise BadInput("still unreadable")  # a decoder error: recorded, the loop goes on

    store.engine = EngineConfig()  # the retry runs here, so it can be counted
    again = index_videos(store, videos, EX, counting, desc="colour")
    assert again == done and sent == ["bad"]
    assert len(list((store.root / "features" / EX.key).iterdir())) == 4
