"""The Ray indexing engine on one local cluster (shared by the whole module: Ray takes seconds
to start): the same features and moments as the local engine, a resume that sends nothing
finished, and one-line errors for a missing Ray or an unreachable cluster."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.cli import main
from bench.store import FeatureStore

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

TINY = "clip-frames-tiny"


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def artefacts(root: Path, where: str | None = None) -> dict[tuple[str, str], Any]:
    """Every done artefact of the store at ``root`` (files at ``where``, default ``root``):
    (video id, extractor key) -> its arrays or JSON object."""
    store = FeatureStore(root, artefacts=where)
    out: dict[tuple[str, str], Any] = {}
    for r in store._query("SELECT video_id, extractor, kind, relpath FROM artefacts WHERE status='done'"):
        data = store.location.read_bytes(r["relpath"])
        if r["kind"] == "npz":
            with np.load(io.BytesIO(data)) as npz:
                out[(r["video_id"], r["extractor"])] = {k: npz[k] for k in npz.files}
        else:
            out[(r["video_id"], r["extractor"])] = json.loads(data.decode("utf-8"))
    return out


def run_json(engine: str, out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict[str, Any]]:
    """``bench run --engine ENGINE --json`` of the tiny CLIP on synthetic-mini: its predictions."""
    rc = main(["run", "--dataset", "synthetic-mini", "--retriever", TINY, "--device", "cpu",
               "--mode", "grounding", "--out", str(out), "--json", "--engine", engine, *extra])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and [r["status"] for r in doc["results"]] == ["ok"]
    result = Path(doc["results"][0]["results_path"])
    path = result.with_name(f"{result.stem}.predictions.jsonl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_bench_run_on_ray_matches_local_and_resumes(cluster: None, synthetic_mini: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    preds, stored = {}, {}
    monkeypatch.delenv("SCENEBENCH_ARTEFACTS", raising=False)
    objects = f"local://{tmp_path / 'objects'}"  # through fsspec, as an object store would be
    for engine, extra, where in (("local", (), None), ("ray", (), None),
                                 ("ray-objects", ("--artefacts", objects), objects)):
        # a fresh store per engine, so each computes every feature itself
        monkeypatch.setattr("bench.store.catalog.cache_home", lambda e=engine: tmp_path / f"cache-{e}")
        preds[engine] = run_json(engine.split("-")[0], tmp_path / f"results-{engine}", capsys, *extra)
        stored[engine] = artefacts(tmp_path / f"cache-{engine}" / "store", where)
    assert "SCENEBENCH_ARTEFACTS" not in os.environ  # --artefacts held for its command only
    # workers wrote every file at the object location, none beside the catalog
    assert not (tmp_path / "cache-ray-objects" / "store" / "features").exists()
    assert stored["ray-objects"].keys() == stored["ray"].keys()
    for key, want in stored["ray"].items():
        got = stored["ray-objects"][key]
        if isinstance(want, dict) and all(isinstance(a, np.ndarray) for a in want.values()):
            for name in want:
                np.testing.assert_array_equal(got[name], want[name])
        else:
            assert got == want
    assert preds["ray-objects"] == preds["ray"]

    # the same artefacts (frame features and shots of both videos), floats to 1e-5
    assert set(stored["ray"]) == set(stored["local"])
    assert {ex.split("-")[0] for _, ex in stored["ray"]} == {"clip", "shots"}
    assert len(stored["ray"]) == 4
    for key, want in stored["local"].items():
        got = stored["ray"][key]
        if isinstance(want, dict) and all(isinstance(a, np.ndarray) for a in want.values()):
            assert set(got) == set(want)
            for name in want:
                np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-5)
        else:
            assert got == want
    # the same moments
    assert preds["ray"] and len(preds["ray"]) == len(preds["local"])
    for got_row, want_row in zip(preds["ray"], preds["local"], strict=True):
        assert got_row["qid"] == want_row["qid"]
        np.testing.assert_allclose(np.array(got_row["pred_relevant_windows"]),
                                   np.array(want_row["pred_relevant_windows"]), atol=1e-5)

    # run again on Ray: everything is done, so nothing goes to the cluster and nothing changes
    def no_ray(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a finished video was sent to Ray again")

    monkeypatch.setattr("bench.store.ray_engine.run_on_ray", no_ray)
    monkeypatch.setattr("bench.store.catalog.cache_home", lambda: tmp_path / "cache-ray")
    root = tmp_path / "cache-ray" / "store"
    files = sorted(p.relative_to(root) for p in (root / "features").rglob("*"))
    assert run_json("ray", tmp_path / "results-again", capsys) == preds["ray"]
    assert artefacts(root).keys() == stored["ray"].keys()
    assert sorted(p.relative_to(root) for p in (root / "features").rglob("*")) == files


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
