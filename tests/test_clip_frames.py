"""clip-frames end to end with the tiny random-init CLIP on short ffmpeg-made videos.

The tiny model's similarities are noise; these tests check shapes, timestamps, caching,
modes and errors, and use colour-only videos where equal pixels must give equal vectors.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.errors import BadInput, Unavailable
from bench.retrievers import build_retriever
from bench.retrievers.base import RetrieverConfig
from bench.retrievers.clip_frames import ClipFrames
from bench.store import FeatureStore
from bench.types import QueryInput, Video
from bench.video import probe
from bench.video.stream import prefetch, preprocessed_batches
from bench.vision.transforms import ImageTransform

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def make_video(path: Path, colours: list[str], seconds_each: float, size: str = "64x48",
               rate: int = 10) -> Path:
    """An H.264 file of solid colour segments (e.g. red for 4 s, then blue for 4 s)."""
    args = ["ffmpeg", "-v", "error", "-y"]
    for c in colours:
        args += ["-f", "lavfi", "-i", f"color=c={c}:s={size}:d={seconds_each}:r={rate}"]
    chain = "".join(f"[{i}:v]" for i in range(len(colours)))
    args += ["-filter_complex", f"{chain}concat=n={len(colours)}:v=1:a=0[v]", "-map", "[v]",
             "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "10", str(path)]
    subprocess.run(args, check=True, timeout=60)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Video]:
    root = tmp_path_factory.mktemp("clipvid")
    a = make_video(root / "redblue.mp4", ["red", "blue"], 4.0)
    b = make_video(root / "greenwhite.mp4", ["green", "white", "green"], 2.0)
    return [Video(vid="redblue", path=str(a), duration=8.0),
            Video(vid="greenwhite", path=str(b), duration=6.0)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    return FeatureStore(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def retriever(videos: list[Video], store: FeatureStore) -> ClipFrames:
    r = build_retriever("clip-frames-tiny", "cpu")
    assert isinstance(r, ClipFrames)
    r.index(videos, store)
    return r


def test_index_stores_one_unit_vector_per_sampled_frame(retriever: ClipFrames, store: FeatureStore,
                                                        videos: list[Video]) -> None:
    video_id = store.video_id(Path(videos[0].path or ""))
    arrays = store.load(video_id, retriever.extractor)
    assert arrays is not None
    emb, times = arrays["emb"], arrays["times_s"]
    assert emb.dtype == np.float32 and emb.shape == (8, retriever.dim) == (8, 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(times, np.arange(8.0), atol=0.051)  # 10 fps source, 1 fps sampling
    # Solid colours: frames of one segment embed (nearly) identically, the segments differ.
    assert float(emb[0] @ emb[2]) > 0.99 and float(emb[5] @ emb[7]) > 0.99
    assert float(emb[1] @ emb[6]) < float(emb[0] @ emb[2]) - 1e-3
    assert retriever.encoder_calls >= 2  # one batch per video at least
    assert retriever.stats()["frames"] == 14
    # The decoder that produced each video's frames is stored with them and reported.
    assert store.load_meta(video_id, retriever.extractor)["decoder"] in ("decord", "pyav")
    used = retriever.provenance()["decoders_used"]
    assert sum(used.values()) == 2 and set(used) <= {"decord", "pyav"}


def test_second_index_computes_nothing(videos: list[Video], store: FeatureStore,
                                       retriever: ClipFrames) -> None:
    again = build_retriever("clip-frames-tiny", "cpu")
    assert isinstance(again, ClipFrames)
    again.index(videos, store)
    assert again.encoder_calls == 0
    assert all(store.status(store.video_id(Path(v.path or "")), again.extractor) == "done" for v in videos)
    q = [QueryInput(text="a red square")]
    assert [(m.vid, m.start, m.end) for m in again.search(q, top_k=3)[0]] == \
        [(m.vid, m.start, m.end) for m in retriever.search(q, top_k=3)[0]]


def test_grounding_returns_windows_inside_the_video(retriever: ClipFrames) -> None:
    (moments,) = retriever.search([QueryInput(text="a person opens a door", qid="q1")], top_k=3,
                                  vids=["greenwhite"])
    assert 1 <= len(moments) <= 3
    assert all(m.vid == "greenwhite" and 0.0 <= m.start < m.end <= 6.0 for m in moments)
    assert [m.score for m in moments] == sorted((m.score for m in moments), reverse=True)
    for m in moments:
        frames = m.evidence.frames
        assert frames and all(m.start - 1e-6 <= f.t_s < m.end for f in frames)
        assert m.evidence.method == "clip-frames" and m.score <= 1.0 + 1e-6


def test_corpus_search_ranks_across_videos(retriever: ClipFrames) -> None:
    (moments,) = retriever.search([QueryInput(text="something")], top_k=10)
    assert {m.vid for m in moments} <= {"redblue", "greenwhite"}
    assert [m.score for m in moments] == sorted((m.score for m in moments), reverse=True)
    # Corpus scores are the same cosine scores grounding gives for that video.
    best = moments[0]
    (grounded,) = retriever.search([QueryInput(text="something")], top_k=10, vids=[best.vid])
    assert grounded[0].score == pytest.approx(best.score)
    assert retriever.stats()["vector_index"]["kind"] == "flat"


def test_image_query_finds_the_frames_of_that_colour(retriever: ClipFrames, tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (64, 48), (0, 0, 255)).save(tmp_path / "blue.png")
    (moments,) = retriever.search([QueryInput(image=str(tmp_path / "blue.png"))], top_k=1, vids=["redblue"])
    assert moments[0].start >= 3.0 and moments[0].end <= 8.0  # the blue half (4-8 s), not the red
    assert moments[0].score > 0.9


def test_query_errors(retriever: ClipFrames, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="empty"):
        retriever.search([QueryInput(text="   ")])
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(BadInput, match="not a readable image"):
        retriever.search([QueryInput(image=str(tmp_path / "notes.png"))])
    with pytest.raises(BadInput, match="not found"):
        retriever.search([QueryInput(image=str(tmp_path / "missing.png"))])
    with pytest.raises(BadInput, match="not indexed"):
        retriever.search([QueryInput(text="x")], vids=["nope"])
    with pytest.raises(BadInput, match="top_k"):
        retriever.search([QueryInput(text="x")], top_k=0)
    fresh = build_retriever("clip-frames-tiny", "cpu")
    with pytest.raises(BadInput, match="index"):
        fresh.search([QueryInput(text="x")])


def test_very_long_query_is_truncated_with_one_warning(retriever: ClipFrames,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    fresh = ClipFrames(retriever.config, "cpu")
    fresh.corpus = retriever.corpus
    long = "word " * 20_000  # 100,000 characters
    with caplog.at_level(logging.WARNING, logger="bench"):
        first = fresh.search([QueryInput(text=long)], top_k=2, vids=["redblue"])[0]
        fresh.search([QueryInput(text=long)], top_k=2, vids=["redblue"])
    warnings = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1 and "100000-character" in warnings[0].getMessage()
    short = fresh.search([QueryInput(text="word " * 76)], top_k=2, vids=["redblue"])[0]
    assert first[0].score == pytest.approx(short[0].score, abs=1e-5)  # same 77 tokens


def test_params_and_model_errors() -> None:
    cfg = RetrieverConfig(name="x", family="clip-frames", model={"id": "tiny:clip"}, params={"fpss": 2})
    with pytest.raises(BadInput, match="fpss"):
        ClipFrames(cfg, "cpu")
    hub = RetrieverConfig(name="hub", family="clip-frames",
                          model={"id": "openai/clip-vit-base-patch32",
                                 "revision": "3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268"})
    try:
        ClipFrames(hub, "cpu")
    except Unavailable as exc:
        assert "openai/clip-vit-base-patch32" in str(exc)
    else:
        pytest.skip("real CLIP weights are in the local cache; nothing to check offline")


def test_torch_preprocessing_matches_the_reference_processor() -> None:
    from transformers import CLIPImageProcessorPil

    rng = np.random.default_rng(0)
    # Smooth content: resampling kernels differ slightly (PIL vs torch) on high frequencies.
    base = rng.integers(0, 256, (12, 16, 3)).astype(np.uint8)
    from PIL import Image

    frame = np.asarray(Image.fromarray(base).resize((160, 120), Image.Resampling.BILINEAR))
    ref = CLIPImageProcessorPil(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    expected = ref(images=[frame], return_tensors="np")["pixel_values"][0]
    ours = ImageTransform.from_config(ref.to_dict())(frame[None])[0].numpy()
    assert ours.shape == expected.shape == (3, 64, 64)
    assert float(np.abs(ours - expected).mean()) < 0.02


def test_prefetch_propagates_errors_and_stops_early() -> None:
    def boom():
        yield 1
        raise RuntimeError("decoder broke")

    with pytest.raises(RuntimeError, match="decoder broke"):
        list(prefetch(boom()))
    produced: list[int] = []

    def many():
        for i in range(1000):
            produced.append(i)
            yield i

    for i in prefetch(many(), depth=2):
        if i == 3:
            break
    assert len(produced) < 10


def _stream_items(n_batches: int) -> list[Any]:
    """Fake stream items: batches 0..n-1 (pixels = their number), a VideoEnd after every third."""
    import torch

    from bench.video.stream import StreamBatch, VideoEnd

    items: list[Any] = []
    for k in range(n_batches):
        items.append(StreamBatch(torch.full((1, 1), float(k)), np.array([float(k)]), np.array([k // 3])))
        if k % 3 == 2:
            items.append(VideoEnd(k // 3, 3, {"pyav"}))
    return items


def test_encoder_workers_run_calls_at_once_and_keep_the_order() -> None:
    import threading
    import time

    import torch

    from bench.video.stream import StreamBatch, encoded_stream

    both = threading.Barrier(2, timeout=10)  # the first two calls must be running together
    lock = threading.Lock()
    state = {"now": 0, "most": 0}
    before = torch.get_num_threads()
    seen_threads: set[int] = set()

    def encode(batch: StreamBatch) -> float:
        k = int(batch.pixels.item())
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        seen_threads.add(torch.get_num_threads())
        if k < 2:
            both.wait()
        time.sleep(0.02 * ((k * 7) % 3))  # later calls finish out of order
        with lock:
            state["now"] -= 1
        return k * 10.0

    items = _stream_items(8)
    got = list(encoded_stream(iter(items), encode, workers=2))
    assert [item for item, _ in got] == items
    assert [r for item, r in got if isinstance(item, StreamBatch)] == [k * 10.0 for k in range(8)]
    assert all(r is None for item, r in got if not isinstance(item, StreamBatch))
    assert state["most"] == 2
    assert seen_threads == {max(1, before // 2)}  # each worker has its share of intra-op threads
    assert torch.get_num_threads() == before  # and the caller's count is back


def test_a_free_worker_takes_the_next_batch_while_an_older_call_runs() -> None:
    import threading

    from bench.video.stream import StreamBatch, encoded_stream

    release = threading.Event()  # holds up the call on batch 0
    started: dict[int, threading.Event] = {k: threading.Event() for k in range(8)}
    yielded: list[int] = []

    def encode(batch: StreamBatch) -> float:
        k = int(batch.pixels.item())
        started[k].set()
        if k == 0:
            assert release.wait(10), "batch 0 was never released"
        return k * 10.0

    seen: dict[str, bool] = {}

    def release_when_batches_1_to_3_have_run() -> None:
        # The other worker runs batches 1, 2 and 3 while batch 0's call is still running;
        # batch 4 waits, since three calls already wait for batch 0's.
        seen["1-3 ran"] = all(started[k].wait(10) for k in (1, 2, 3))
        seen["4 waited"] = not started[4].wait(0.2)
        seen["nothing yielded"] = not yielded
        release.set()

    checker = threading.Thread(target=release_when_batches_1_to_3_have_run)
    checker.start()
    got = []
    for item, result in encoded_stream(iter(_stream_items(8)), encode, workers=2):
        if isinstance(item, StreamBatch):
            yielded.append(int(item.pixels.item()))
            got.append(result)
    checker.join()
    assert seen == {"1-3 ran": True, "4 waited": True, "nothing yielded": True}
    assert yielded == list(range(8)) and got == [k * 10.0 for k in range(8)]


def test_encoder_workers_default_to_two_only_for_two_calls_of_work_on_the_cpu() -> None:
    import torch

    from bench.vision.params import VisualParams

    unset = VisualParams()
    two = 2 if torch.get_num_threads() >= 2 else 1
    assert unset.workers_for("cpu") == unset.workers_for("cpu", 2.0) == two
    assert unset.workers_for("cpu", 1.5) == 1  # a lone call keeps every intra-op thread
    assert unset.workers_for("cuda", 100.0) == 1
    assert VisualParams(encoder_workers=3).workers_for("cpu", 0.5) == 3


def test_encoder_worker_errors_and_early_stops_clean_up() -> None:
    import torch

    from bench.video.stream import StreamBatch, encoded_stream

    before = torch.get_num_threads()
    closed: list[bool] = []

    def source() -> Any:
        try:
            yield from _stream_items(6)
        finally:
            closed.append(True)

    def encode(batch: StreamBatch) -> float:
        if int(batch.pixels.item()) == 3:
            raise RuntimeError("encoder broke on batch 3")
        return 1.0

    with pytest.raises(RuntimeError, match="batch 3"):
        list(encoded_stream(source(), encode, workers=2))
    assert closed == [True] and torch.get_num_threads() == before
    stream = encoded_stream(source(), lambda b: 2.0, workers=2)
    assert next(stream)[1] == 2.0
    stream.close()  # the caller stops early
    assert closed == [True, True] and torch.get_num_threads() == before
    assert [r for _, r in encoded_stream(iter(_stream_items(2)), lambda b: 3.0, workers=1)] == [3.0, 3.0]


def test_encoder_workers_give_the_same_vectors_and_timings(videos: list[Video]) -> None:
    from bench.timing import TimingRecorder, recording

    results = {}
    for workers in (1, 2):
        r = build_retriever("clip-frames-tiny", "cpu")
        assert isinstance(r, ClipFrames)
        r.params = r.params.model_copy(update={"batch_size": 3, "encoder_workers": workers})
        rec = TimingRecorder()
        with recording(rec):
            paths = [Path(v.path or "") for v in videos]
            outcomes = dict(r.encode_videos([(path, probe(path)) for path in paths]))
        results[workers] = (outcomes, r.encoder_calls, rec.as_dict()["stages"]["encode"])
    (one, calls_one, timed_one), (two, calls_two, timed_two) = results[1], results[2]
    # Batches of 1, 2, 3, 3, 3, 2 frames; with two workers the last 2 frames are split in two.
    assert (calls_one, calls_two) == (6, 7)
    assert timed_one["items"] == timed_two["items"] == 14 and timed_two["calls"] == 7
    for position in (0, 1):
        np.testing.assert_array_equal(one[position][0]["times_s"], two[position][0]["times_s"])
        np.testing.assert_allclose(one[position][0]["emb"], two[position][0]["emb"], atol=1e-5)


def test_prefetched_batches_start_small_and_match_inline_ones(retriever: ClipFrames,
                                                             videos: list[Video]) -> None:
    from bench.timing import TimingRecorder, recording

    path = Path(videos[0].path or "")
    rec = TimingRecorder()

    def batches(depth: int) -> list[tuple[Any, np.ndarray]]:
        return list(preprocessed_batches(path, fps=1.0, transform=retriever.transform, batch_size=16,
                                         depth=depth))

    with recording(rec):
        ahead = batches(2)
    inline = batches(0)
    assert [len(t) for _, t in ahead] == [2, 4, 2]  # an eighth of the batch first, then doubling
    assert [len(t) for _, t in inline] == [8]
    assert np.array_equal(np.concatenate([x.numpy() for x, _ in ahead]), inline[0][0].numpy())
    np.testing.assert_array_equal(np.concatenate([t for _, t in ahead]), inline[0][1])
    stages = rec.as_dict()["stages"]
    assert stages["decode_start"]["items"] == 2 and stages["decode_wait"]["items"] == 6
    assert stages["decode"]["items"] == stages["preprocess"]["items"] == 8


def test_batches_shrink_at_the_end_so_that_the_encoder_workers_finish_together(
        retriever: ClipFrames, videos: list[Video]) -> None:
    from bench.video.stream import StreamBatch, preprocessed_stream

    paths = [Path(v.path or "") for v in videos]  # 8 + 6 frames at 1 fps

    def sizes(workers: int) -> tuple[list[int], np.ndarray]:
        batches = [item for item in preprocessed_stream(paths, fps=1.0, transform=retriever.transform,
                                                        batch_size=8, video_s=14.0, workers=workers)
                   if isinstance(item, StreamBatch)]
        return [len(b.times_s) for b in batches], np.concatenate([b.times_s for b in batches])

    one, times_one = sizes(1)
    two, times_two = sizes(2)
    assert one == [1, 2, 4, 7]  # the ramp, then what is left
    # Each batch at most half the frames left: after 7 frames, 4 (of 7 left), 2 (of 3), 1.
    assert two == [1, 2, 4, 4, 2, 1]
    np.testing.assert_array_equal(times_one, times_two)


def build_tiny_siglip(out: Path) -> Path:
    """A random-init SigLIP saved like a hub checkpoint (CLIP BPE tokenizer: SigLIP's own
    needs sentencepiece); exercises the no-projection, squash-resize, max-length-padding path."""
    import json

    import torch
    from transformers import SiglipConfig, SiglipModel

    from bench.testing.tiny_models import build_clip_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    tok = build_clip_tokenizer(out, 500, 16)
    (out / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "SiglipImageProcessor", "do_resize": True,
        "size": {"height": 32, "width": 32},
        "resample": 2, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    torch.manual_seed(0)
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    text = {**small, "vocab_size": len(tok), "max_position_embeddings": 16, "pad_token_id": tok.pad_token_id}
    SiglipModel(SiglipConfig(text_config=text, vision_config={**small, "image_size": 32, "patch_size": 8}))\
        .save_pretrained(out)
    return out


def test_siglip_style_model_from_a_local_directory(tmp_path: Path, videos: list[Video]) -> None:
    model_dir = build_tiny_siglip(tmp_path / "siglip")
    cfg = RetrieverConfig(name="siglip-tiny", family="clip-frames", model={"id": f"local-dir:{model_dir}"})
    r = ClipFrames(cfg, "cpu")
    assert r.dim == 32 and r.transform.shortest_edge is None and r.transform.crop == (32, 32)
    assert r.extractor.params["model"] == "local"  # no machine path in the cache key
    r.index(videos[:1], FeatureStore(tmp_path / "store"))
    (moments,) = r.search([QueryInput(text="a red square")], top_k=2, vids=["redblue"])
    assert moments and all(0.0 <= m.start < m.end <= 8.0 for m in moments)
    assert r.provenance()["random_init"] is False  # a local directory is taken at its word


def build_tiny_multilingual_text_tower(out: Path, dim: int) -> Path:
    """A random-init sentence-transformers text tower (BERT word pieces incl. CJK and
    Cyrillic words, mean pooling, dense to ``dim``)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizer

    words = ["a", "the", "dog", "cat", "red", "blue", "square", "犬", "猫", "赤", "青", "собака", "кошка",
             "красный"]
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    bert = out / "bert"
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(bert)
    BertTokenizer(vocab=vocab).save_pretrained(bert)
    transformer = Transformer(str(bert), max_seq_length=32)
    st = SentenceTransformer(modules=[transformer, Pooling(16, pooling_mode="mean"), Dense(16, dim)])
    st.save(str(out / "st"))
    return out / "st"


def test_multilingual_text_tower(tmp_path: Path, retriever: ClipFrames,
                                 caplog: pytest.LogCaptureFixture) -> None:
    tower = build_tiny_multilingual_text_tower(tmp_path, retriever.dim)
    cfg = RetrieverConfig(name="clip-frames-ml-tiny", family="clip-frames", model={"id": "tiny:clip"},
                          models={"text": {"id": f"local-dir:{tower}"}})
    r = ClipFrames(cfg, "cpu")
    assert r.extractor.key == retriever.extractor.key  # frame features shared with the plain model
    r.corpus = retriever.corpus
    q = [QueryInput(text="赤 犬", lang="ja"), QueryInput(text="красный квадрат", lang="ru")]
    results = r.search(q, top_k=2, vids=["redblue"])
    assert len(results) == 2 and all(results)
    assert r.text.describe["tower"] == "sentence-transformers"
    vec = r.encode_queries(q[:1])
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    with caplog.at_level(logging.WARNING, logger="bench"):
        r.search([QueryInput(text="犬 " * 500)], top_k=1, vids=["redblue"])
    assert sum("truncated" in rec.getMessage() for rec in caplog.records) == 1
    narrow = build_tiny_multilingual_text_tower(tmp_path / "narrow", 8)
    wrong = RetrieverConfig(name="bad", family="clip-frames", model={"id": "tiny:clip"},
                            models={"text": {"id": f"local-dir:{narrow}"}})
    with pytest.raises(BadInput, match="8-d"):
        ClipFrames(wrong, "cpu")


def test_large_corpus_index_is_saved_and_reused(videos: list[Video], store: FeatureStore) -> None:
    first = build_retriever("clip-frames-tiny", "cpu")
    assert isinstance(first, ClipFrames)
    first.corpus.persist_min = 5  # treat 14 frames as "large" so the index is persisted
    first.index(videos, store)
    want = first.search([QueryInput(text="persist")], top_k=3)[0]
    assert first.stats()["vector_index_from_cache"] is False
    second = build_retriever("clip-frames-tiny", "cpu")
    assert isinstance(second, ClipFrames)
    second.corpus.persist_min = 5
    second.index(videos, store)
    got = second.search([QueryInput(text="persist")], top_k=3)[0]
    assert second.stats()["vector_index_from_cache"] is True
    assert [(m.vid, m.start, m.score) for m in got] == [(m.vid, m.start, m.score) for m in want]


def test_frame_stream_runs_batches_across_videos_and_past_a_broken_one(
        retriever: ClipFrames, videos: list[Video], tmp_path: Path) -> None:
    from bench.video.stream import StreamBatch, VideoEnd, preprocessed_stream

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 20)
    a, b = (Path(v.path or "") for v in videos)
    items = list(preprocessed_stream([a, broken, b], fps=1.0, transform=retriever.transform,
                                     batch_size=4, depth=2))
    batches = [i for i in items if isinstance(i, StreamBatch)]
    ends = {i.position: i for i in items if isinstance(i, VideoEnd)}
    assert [len(x.times_s) for x in batches] == [1, 2, 4, 4, 3]  # ramp 1, 2, 4; 8 + 6 frames
    assert any(len(set(x.owner.tolist())) == 2 for x in batches)  # a batch spans both videos
    assert ends[1].n_frames == 0 and "not a readable video" in str(ends[1].error)
    assert (ends[0].n_frames, ends[2].n_frames) == (8, 6) and ends[0].error is ends[2].error is None
    pixels = torch_cat([x.pixels for x in batches])
    owner = np.concatenate([x.owner for x in batches])
    times = np.concatenate([x.times_s for x in batches])
    for position, path in ((0, a), (2, b)):
        ((alone, alone_t),) = preprocessed_batches(path, fps=1.0, transform=retriever.transform,
                                                   batch_size=16, depth=0)
        assert np.array_equal(pixels[owner == position], alone.numpy())
        np.testing.assert_array_equal(times[owner == position], alone_t)


def torch_cat(tensors: list[Any]) -> np.ndarray:
    return np.concatenate([t.numpy() for t in tensors])


def test_streamed_index_matches_indexing_one_video_at_a_time(videos: list[Video], tmp_path: Path) -> None:
    r = build_retriever("clip-frames-tiny", "cpu")
    assert isinstance(r, ClipFrames)
    # One call at a time: with two, the last batch is split between the workers.
    r.params = r.params.model_copy(update={"batch_size": 3, "encoder_workers": 1})
    store = FeatureStore(tmp_path / "store")
    r.index(videos, store)
    assert r.encoder_calls == 6  # 14 frames in batches of 1, 2, 3, 3, 3, 2; one at a time takes 7
    one_by_one = build_retriever("clip-frames-tiny", "cpu")
    assert isinstance(one_by_one, ClipFrames)
    one_by_one.params = r.params.model_copy(update={"stream_videos": False})
    one_by_one.index(videos, FeatureStore(tmp_path / "store2"))
    assert one_by_one.encoder_calls == 7
    for video in videos:
        path = Path(video.path or "")
        stored = store.load(store.video_id(path), r.extractor)
        alone, meta = r.encode_video(path, probe(path))
        assert stored is not None and meta["n_frames"] == len(alone["times_s"])
        np.testing.assert_array_equal(stored["times_s"], alone["times_s"])
        np.testing.assert_allclose(stored["emb"], alone["emb"], atol=1e-5)


def test_a_video_failing_mid_decode_leaves_its_neighbours_whole(
        retriever: ClipFrames, videos: list[Video], monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.video
    from bench.video import DecodeError

    real = bench.video.sample_frames
    a, b = (Path(v.path or "") for v in videos)

    def flaky(path: Path, *args: Any, **kwargs: Any) -> Any:
        for k, batch in enumerate(real(path, *args, **kwargs)):
            if path == a and k == 2:
                raise DecodeError(f"{path}: PyAV failed after frame 3 (Invalid data found)")
            yield batch

    monkeypatch.setattr(bench.video, "sample_frames", flaky)
    saved = retriever.params
    retriever.params = saved.model_copy(update={"batch_size": 4})
    try:
        outcomes = dict(retriever.encode_videos([(b, probe(b)), (a, probe(a)), (b, probe(b))]))
    finally:
        retriever.params = saved
    assert isinstance(outcomes[1], DecodeError) and "Invalid data" in str(outcomes[1])
    first, second = outcomes[0], outcomes[2]
    assert not isinstance(first, BaseException) and not isinstance(second, BaseException)
    assert first[1]["n_frames"] == second[1]["n_frames"] == 6
    np.testing.assert_allclose(first[0]["emb"], second[0]["emb"], atol=1e-5)
    np.testing.assert_array_equal(first[0]["times_s"], second[0]["times_s"])
