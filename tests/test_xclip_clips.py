"""xclip-clips end to end with the tiny random-init X-CLIP on short ffmpeg-made videos.

The tiny model's scores are noise; these tests check clip layout, streaming equivalence,
caching, the re-scoring path, modes and errors.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.errors import BadInput
from bench.retrievers import build_retriever, get_config
from bench.retrievers.xclip_clips import XClipClips
from bench.store import FeatureStore
from bench.types import QueryInput, Video

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def make_video(path: Path, colours: list[str], seconds_each: float, size: str = "64x48",
               rate: int = 10) -> Path:
    """An H.264 file of solid colour segments."""
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
    root = tmp_path_factory.mktemp("xclipvid")
    a = make_video(root / "long.mp4", ["red", "blue"], 6.5)  # 13 frames at 1 fps
    b = make_video(root / "short.mp4", ["green", "white"], 3.0)  # 6 frames: shorter than a clip
    return [Video(vid="long", path=str(a), duration=13.0), Video(vid="short", path=str(b), duration=6.0)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    return FeatureStore(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def retriever(videos: list[Video], store: FeatureStore) -> XClipClips:
    r = build_retriever("xclip-clips-tiny", "cpu")
    assert isinstance(r, XClipClips)
    r.index(videos, store)
    return r


def with_params(**params: object) -> XClipClips:
    cfg = get_config("xclip-clips-tiny")
    cfg = cfg.model_copy(update={"params": {**cfg.params, **params}})
    return XClipClips(cfg, "cpu")


def test_clip_layout_stride_and_tail(retriever: XClipClips, store: FeatureStore, videos: list[Video]) -> None:
    assert retriever.clip_len == 8
    long_id = store.video_id(Path(videos[0].path or ""))
    arrays = store.load(long_id, retriever.extractor)
    assert arrays is not None
    np.testing.assert_allclose(arrays["frame_times_s"], np.arange(13.0), atol=0.051)
    # Starts every 4 frames while a clip fits (0, 4), then one clip ending at the last frame.
    assert arrays["clip_frames"].tolist() == [[0, 7], [4, 11], [5, 12]]
    assert arrays["emb"].shape == (3, 32) and arrays["emb"].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(arrays["emb"], axis=1), 1.0, atol=1e-5)
    prompt = store.load(long_id, retriever.prompt_extractor)
    assert prompt is not None and prompt["prompt"].shape == (3, 16, 32)  # (32/8)^2 patches
    short = store.load(store.video_id(Path(videos[1].path or "")), retriever.extractor)
    assert short is not None and short["clip_frames"].tolist() == [[0, 5]]


def test_streaming_gives_the_same_clips_for_any_batch_size(retriever: XClipClips, store: FeatureStore,
                                                           videos: list[Video], tmp_path: Path) -> None:
    small = with_params(batch_size=3)  # decoded 3 frames at a time: buffers trimmed between batches
    other = FeatureStore(tmp_path / "store")
    small.index(videos[:1], other)
    got = other.load(other.video_id(Path(videos[0].path or "")), small.extractor)
    want = store.load(store.video_id(Path(videos[0].path or "")), retriever.extractor)
    assert got is not None and want is not None
    assert got["clip_frames"].tolist() == want["clip_frames"].tolist()
    np.testing.assert_allclose(got["emb"], want["emb"], atol=1e-5)
    assert small.encoder_calls == 3  # one clip per call: batch_size 3 < 8 frames per clip


def test_second_index_computes_nothing(videos: list[Video], store: FeatureStore,
                                       retriever: XClipClips) -> None:
    again = build_retriever("xclip-clips-tiny", "cpu")
    assert isinstance(again, XClipClips)
    again.index(videos, store)
    assert again.encoder_calls == 0
    assert again.stats()["clips"] == 4


def test_grounding_is_rescored_with_the_conditioned_text(retriever: XClipClips) -> None:
    (moments,) = retriever.search([QueryInput(text="a man juggles")], top_k=3, vids=["long"])
    assert 1 <= len(moments) <= 3
    assert [m.score for m in moments] == sorted((m.score for m in moments), reverse=True)
    for m in moments:
        assert m.vid == "long" and 0.0 <= m.start < m.end <= 13.0
        assert m.evidence.reranked is True and m.evidence.plain_score is not None
        assert m.evidence.clips and -1.0 <= m.score <= 1.0
    plain = with_params(rerank_top=0)
    plain.corpus, plain.spans, plain._store = retriever.corpus, retriever.spans, retriever._store
    (raw,) = plain.search([QueryInput(text="a man juggles")], top_k=3, vids=["long"])
    assert all(m.evidence.reranked is False for m in raw)
    by_window = {(m.start, m.end): m.score for m in raw}
    for m in moments:  # same windows, scored before re-scoring by the plain clip cosine
        if (m.start, m.end) in by_window:
            assert m.evidence.plain_score == pytest.approx(by_window[(m.start, m.end)])


def test_corpus_search_and_image_query(retriever: XClipClips, tmp_path: Path) -> None:
    (moments,) = retriever.search([QueryInput(text="colours")], top_k=5)
    assert moments and {m.vid for m in moments} <= {"long", "short"}
    assert [m.score for m in moments] == sorted((m.score for m in moments), reverse=True)
    from PIL import Image

    Image.new("RGB", (64, 48), (255, 0, 0)).save(tmp_path / "red.png")
    (img,) = retriever.search([QueryInput(image=str(tmp_path / "red.png"))], top_k=2, vids=["long"])
    assert img and all(m.evidence.reranked is False for m in img)


def test_errors(retriever: XClipClips) -> None:
    with pytest.raises(BadInput, match="empty"):
        retriever.search([QueryInput(text="")])
    with pytest.raises(BadInput, match="not indexed"):
        retriever.search([QueryInput(text="x")], vids=["missing"])
    with pytest.raises(BadInput, match="stride_frames"):
        with_params(stride_frames=0)


def test_missing_prompt_features_are_recomputed(videos: list[Video], tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "s")
    first = with_params()
    first.index(videos[1:], store)
    vid_id = store.video_id(Path(videos[1].path or ""))
    store.mark_failed(vid_id, first.prompt_extractor, "simulated loss")
    second = with_params()
    second.index(videos[1:], store)
    assert second.encoder_calls >= 1
    assert store.status(vid_id, second.prompt_extractor) == "done"


@pytest.fixture(scope="module")
def longer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("xclipvid2") / "longer.mp4", ["red", "blue", "yellow"], 8.0)


@pytest.mark.parametrize("workers", [1, 2])
def test_streamed_index_matches_indexing_one_video_at_a_time(videos: list[Video], longer: Path,
                                                             tmp_path: Path, workers: int) -> None:
    from bench.video import probe

    library = [*videos, Video(vid="longer", path=str(longer), duration=24.0)]
    # batch_size 16: two 8-frame clips per encoder call; calls run `workers` at a time
    r = with_params(stream_videos=True, encoder_workers=workers)
    store = FeatureStore(tmp_path / "store")
    r.index(library, store)
    # 3 + 1 + 5 clips in 5 calls of 2, 2, 2, 2, 1 clips; one video at a time takes 2 + 1 + 3.
    assert r.encoder_calls == 5
    one_by_one = with_params(stream_videos=False)
    one_by_one.index(library, FeatureStore(tmp_path / "store2"))
    assert one_by_one.encoder_calls == 6
    for video in library:
        path = Path(video.path or "")
        vid_id = store.video_id(path)
        stored, prompt = store.load(vid_id, r.extractor), store.load(vid_id, r.prompt_extractor)
        alone, meta = with_params(encoder_workers=1).encode_video(path, probe(path))
        assert stored is not None and prompt is not None
        assert stored["clip_frames"].tolist() == alone["clip_frames"].tolist()
        assert meta["n_clips"] == len(prompt["prompt"]) == len(alone["emb"])
        np.testing.assert_array_equal(stored["frame_times_s"], alone["frame_times_s"])
        np.testing.assert_allclose(stored["emb"], alone["emb"], atol=1e-5)
    assert store.load(store.video_id(longer), r.extractor)["clip_frames"].tolist() == \
        [[0, 7], [4, 11], [8, 15], [12, 19], [16, 23]]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_video_failing_mid_decode_leaves_its_neighbours_whole(videos: list[Video], longer: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                workers: int) -> None:
    import bench.video
    from bench.video import DecodeError, probe

    real = bench.video.sample_frames
    short = Path(videos[1].path or "")

    def flaky(path: Path, *args: object, **kwargs: object) -> object:
        for k, batch in enumerate(real(path, *args, **kwargs)):
            if path == longer and k == 3:  # after 2 + 4 + 8 frames: its first clip is encoded
                raise DecodeError(f"{path}: PyAV failed after frame 13 (Invalid data found)")
            yield batch

    monkeypatch.setattr(bench.video, "sample_frames", flaky)
    r = with_params(encoder_workers=workers)
    outcomes = dict(r.encode_videos([(short, probe(short)), (longer, probe(longer)), (short, probe(short))]))
    assert isinstance(outcomes[1], DecodeError) and "Invalid data" in str(outcomes[1])
    # The first short clip shared a call with the broken video's first clip; the second ran alone.
    assert r.encoder_calls == 2
    first, second = outcomes[0], outcomes[2]
    assert not isinstance(first, BaseException) and not isinstance(second, BaseException)
    assert first[1]["n_clips"] == second[1]["n_clips"] == 1
    np.testing.assert_allclose(first[0]["emb"], second[0]["emb"], atol=1e-5)
    assert first[0]["clip_frames"].tolist() == second[0]["clip_frames"].tolist() == [[0, 5]]


def test_a_free_worker_takes_the_next_call_while_an_older_one_runs(videos: list[Video], longer: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import torch

    from bench.video import probe

    paths = [Path(v.path or "") for v in videos] + [longer]
    items = [(path, probe(path)) for path in paths]
    reference = dict(with_params(stream_videos=True, encoder_workers=1).encode_videos(items))
    r = with_params(stream_videos=True, encoder_workers=2)  # 5 calls (see above)
    real = r.encode_clip_pixels
    started = threading.Condition()
    calls: list[int] = []
    seen: dict[str, bool] = {}

    def encode(pixels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        with started:
            k = len(calls)
            calls.append(k)
            started.notify_all()
            if k == 0:  # held up until the other worker has taken calls 1 and 2
                seen["calls 1-2 ran during call 0"] = started.wait_for(lambda: len(calls) >= 3, timeout=10)
        return real(pixels)

    monkeypatch.setattr(r, "encode_clip_pixels", encode)
    outcomes = dict(r.encode_videos(items))
    assert seen == {"calls 1-2 ran during call 0": True} and len(calls) == 5
    for position, want in reference.items():
        got = outcomes[position]
        assert not isinstance(got, BaseException) and not isinstance(want, BaseException)
        assert got[0]["clip_frames"].tolist() == want[0]["clip_frames"].tolist()
        np.testing.assert_allclose(got[0]["emb"], want[0]["emb"], atol=1e-5)
