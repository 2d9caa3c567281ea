"""Vector index: faiss and numpy agree, approximate kinds reach their recall target, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.errors import BadInput
from bench.index import VectorIndex, exact_topk, normalize, recall_at_k

faiss = pytest.importorskip("faiss")


def random_unit(n: int, d: int, seed: int) -> np.ndarray:
    return normalize(np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32))


def clustered(n: int, d: int, clusters: int, seed: int) -> np.ndarray:
    """Video-like vectors: tight groups (shots) around random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    labels = rng.integers(0, clusters, n)
    return normalize(centres[labels] + 0.35 * rng.standard_normal((n, d)).astype(np.float32))


def test_faiss_and_numpy_flat_give_the_same_topk() -> None:
    x = random_unit(3000, 48, 0)
    ids = np.arange(3000, dtype=np.int64) * 7 + 5  # ids need not be positions
    q = random_unit(20, 48, 1)
    results = []
    for backend in ("faiss", "numpy"):
        index = VectorIndex(48, kind="flat", backend=backend)  # type: ignore[arg-type]
        index.add(x[:1000], ids[:1000])
        index.add(x[1000:], ids[1000:])
        results.append(index.search(q, 10))
    (s_f, i_f), (s_n, i_n) = results
    np.testing.assert_array_equal(i_f, i_n)
    np.testing.assert_allclose(s_f, s_n, rtol=0, atol=1e-5)
    truth = np.argsort(-(q @ x.T), axis=1)[:, :10] * 7 + 5
    np.testing.assert_array_equal(i_n, truth)
    assert s_n.dtype == np.float32 and i_n.dtype == np.int64
    assert bool((np.diff(s_n, axis=1) <= 0).all())


@pytest.mark.parametrize("backend", ["faiss", "numpy"])
def test_padding_when_k_exceeds_size_and_single_query(backend: str) -> None:
    index = VectorIndex(8, backend=backend)  # type: ignore[arg-type]
    x = random_unit(3, 8, 2)
    index.add(x, np.array([10, 11, 12]))
    scores, ids = index.search(x[1], 5)  # a 1-D query is one query
    assert scores.shape == (1, 5) and ids.shape == (1, 5)
    assert ids[0, 0] == 11 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert ids[0, 3:].tolist() == [-1, -1] and np.isneginf(scores[0, 3:]).all()
    assert len(index) == 3


def test_empty_index_returns_padding() -> None:
    scores, ids = VectorIndex(4).search(np.ones((2, 4), np.float32), 3)
    assert ids.tolist() == [[-1] * 3] * 2 and np.isneginf(scores).all()


def test_add_after_build_goes_into_the_index() -> None:
    index = VectorIndex(16, kind="flat")
    x = random_unit(50, 16, 3)
    index.add(x[:40], np.arange(40))
    index.search(x[0], 1)
    index.add(x[40:], np.arange(40, 50))
    _, ids = index.search(x[45], 1)
    assert ids[0, 0] == 45 and len(index) == 50


def test_ivf_calibrates_nprobe_to_the_recall_target() -> None:
    x = clustered(20_000, 32, 400, 4)
    index = VectorIndex(32, kind="ivf", target_recall=0.99)
    index.add(x, np.arange(len(x)))
    index.build()
    stats = index.stats()
    assert stats["kind"] == "ivf" and stats["calibrated_recall"] >= 0.99
    nlist = index._index.nlist
    assert 1 <= stats["search_param"] < nlist  # it did not need every list
    q = normalize(x[np.random.default_rng(5).choice(len(x), 100)] +
                  0.1 * np.random.default_rng(6).standard_normal((100, 32)).astype(np.float32))
    _, truth = exact_topk(x, q, 10)
    _, found = index.search(q, 10)
    assert recall_at_k(found, truth) >= 0.97  # fresh queries, same distribution


def test_pq_reaches_the_target_even_on_unclustered_vectors() -> None:
    x = random_unit(3000, 32, 7)
    index = VectorIndex(32, kind="pq", target_recall=0.99)
    index.add(x, np.arange(len(x)))
    q = random_unit(100, 32, 8)
    index.build(calibration_queries=q[:50])
    assert index.stats()["calibrated_recall"] >= 0.99
    _, truth = exact_topk(x, q[50:], 10)
    _, found = index.search(q[50:], 10)
    assert recall_at_k(found, truth) >= 0.97


def test_auto_is_flat_when_small_and_pq_when_large() -> None:
    small = VectorIndex(16)
    small.add(random_unit(100, 16, 9), np.arange(100))
    small.build()
    assert small.stats()["kind"] == "flat"
    large = VectorIndex(16, flat_max=200)
    large.add(random_unit(1000, 16, 10), np.arange(1000))
    large.build()
    assert large.stats()["kind"] == "pq"


def test_hnsw_recall() -> None:
    x = clustered(5000, 32, 100, 11)
    index = VectorIndex(32, kind="hnsw", hnsw_m=16)
    index.add(x, np.arange(len(x)))
    index.build()
    assert index.stats()["calibrated_recall"] >= 0.99


@pytest.mark.parametrize("kind,backend", [("flat", "faiss"), ("ivf", "faiss"), ("flat", "numpy")])
def test_save_and_load_round_trip(tmp_path: Path, kind: str, backend: str) -> None:
    x = clustered(3000, 24, 60, 12)
    index = VectorIndex(24, kind=kind, backend=backend)  # type: ignore[arg-type]
    index.add(x, np.arange(3000) + 100)
    q = x[:5]
    before = index.search(q, 7)
    index.save(tmp_path / "idx")
    index.save(tmp_path / "idx")  # overwriting an existing index is fine
    loaded = VectorIndex.load(tmp_path / "idx")
    after = loaded.search(q, 7)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_allclose(before[0], after[0], atol=1e-6)
    assert len(loaded) == 3000 and loaded.search_param == index.search_param
    assert sorted(p.name for p in (tmp_path).iterdir()) == ["idx"]


def test_bad_inputs_fail_loudly(tmp_path: Path) -> None:
    index = VectorIndex(8)
    with pytest.raises(BadInput, match="shape"):
        index.add(np.zeros((2, 7), np.float32), np.arange(2))
    with pytest.raises(BadInput, match="ids"):
        index.add(np.zeros((2, 8), np.float32), np.arange(3))
    with pytest.raises(BadInput, match="NaN"):
        index.add(np.full((1, 8), np.nan, np.float32), np.arange(1))
    with pytest.raises(BadInput, match="kind"):
        VectorIndex(8, kind="lsh")  # type: ignore[arg-type]
    with pytest.raises(BadInput, match="needs faiss"):
        VectorIndex(8, kind="ivf", backend="numpy")
    with pytest.raises(BadInput, match="shape"):
        index.search(np.zeros((1, 9), np.float32), 3)
    with pytest.raises(BadInput, match="k must"):
        index.search(np.zeros((1, 8), np.float32), 0)
    with pytest.raises(BadInput, match="meta.json"):
        VectorIndex.load(tmp_path)


def test_auto_kind_by_corpus_size() -> None:
    from bench.index.vector import auto_kind, ivf_lists

    assert [auto_kind(n, "faiss", False) for n in (65_536, 65_537, 524_288, 524_289, 10_000_000)] == \
        ["flat", "pq", "pq", "ivfpq", "ivfpq"]
    assert auto_kind(10_000_000, "numpy", False) == "flat"  # numpy is always exact
    assert auto_kind(10_000_000, "faiss", True) == "ivf"  # faiss-gpu has no PQ fast-scan
    assert [ivf_lists(n) for n in (1_000_000, 10_000_000, 20_000, 100)] == [1024, 4096, 128, 2]


def test_ivfpq_calibrates_nprobe_and_is_what_auto_builds_above_pq_max(tmp_path: Path) -> None:
    x = clustered(20_000, 32, 400, 13)
    index = VectorIndex(32, flat_max=1000, pq_max=5000, target_recall=0.99)
    index.add(x, np.arange(len(x)) + 7)
    index.build()
    stats = index.stats()
    assert stats["kind"] == "ivfpq" and stats["calibrated_recall"] >= 0.99
    assert 1 <= stats["search_param"] < 128  # 128 lists for 20k vectors; it did not need them all
    q = normalize(x[np.random.default_rng(14).choice(len(x), 100)] +
                  0.1 * np.random.default_rng(15).standard_normal((100, 32)).astype(np.float32))
    _, truth = exact_topk(x, q, 10)
    scores, found = index.search(q, 10)
    assert recall_at_k(found - 7, truth) >= 0.97  # fresh queries, same distribution
    exact_scores = np.take_along_axis(q @ x.T, found - 7, axis=1)
    np.testing.assert_allclose(scores, exact_scores, atol=2e-3)  # re-ranked on float16 vectors
    index.save(tmp_path / "idx")
    loaded = VectorIndex.load(tmp_path / "idx")
    assert loaded.stats()["kind"] == "ivfpq"
    np.testing.assert_array_equal(loaded.search(q, 10)[1], found)


@pytest.mark.parametrize("kind", ["ivf", "pq", "ivfpq"])
def test_too_few_vectors_for_a_trained_kind_are_searched_exactly(kind: str) -> None:
    pytest.importorskip("faiss")
    from bench.index.vector import MIN_TRAIN

    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = VectorIndex(64, kind=kind)  # type: ignore[arg-type]
    index.add(x, np.arange(10, dtype=np.int64))
    _, ids = index.search(x[3], 2)
    assert ids[0, 0] == 3 and index._built_kind == "flat" and MIN_TRAIN > 10
