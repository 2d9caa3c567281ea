"""The GPU path's pieces that run without a GPU: raw uint8 batches preprocessed in the encoder
call, decoding in worker processes, key-frame sampling, batch planning per device, and the
cache keys these change. On the CPU every way must give the vectors of today's pipeline."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.retrievers import build_retriever
from bench.retrievers.clip_frames import ClipFrames
from bench.video import probe
from bench.video.parallel import DecodeJob, VideoDone, decoded_videos
from bench.video.stream import StreamBatch, VideoEnd, preprocessed_stream
from bench.vision.params import VisualParams

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def make_video(path: Path, seconds: int, size: str, gop: int = 10) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=10:duration={seconds}", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-g", str(gop), "-sc_threshold", "0", str(path)],
                   check=True, timeout=60)
    return path


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("gpupath")
    # Two sizes: raw batches that span both hold one chunk per size.
    return [make_video(root / "a.mp4", 5, "96x64"), make_video(root / "b.mp4", 4, "64x64"),
            make_video(root / "c.mp4", 3, "96x64")]


def tiny(**params: Any) -> ClipFrames:
    r = build_retriever("clip-frames-tiny", "cpu")
    assert isinstance(r, ClipFrames)
    r.params = r.params.model_copy(update={"batch_size": 4, "encoder_workers": 1, **params})
    return r


def encode_all(r: ClipFrames, paths: list[Path]) -> dict[int, Any]:
    return dict(r.encode_videos([(p, probe(p)) for p in paths]))


def test_device_preprocessing_and_decoder_processes_give_todays_vectors_on_the_cpu(paths: list[Path]) -> None:
    today = encode_all(tiny(), paths)
    for params in ({"preprocess": "device"}, {"decode_processes": 2},
                   {"preprocess": "device", "decode_processes": 3}):
        got = encode_all(tiny(**params), paths)
        assert sorted(got) == sorted(today) == [0, 1, 2], params
        for position, (arrays, meta) in today.items():
            other, other_meta = got[position]
            np.testing.assert_array_equal(other["times_s"], arrays["times_s"])
            # Bit for bit: the transform works frame by frame, wherever it runs.
            np.testing.assert_array_equal(other["emb"], arrays["emb"])
            assert other_meta["n_frames"] == meta["n_frames"]


def test_raw_batches_carry_uint8_chunks_one_per_frame_size(paths: list[Path]) -> None:
    r = tiny()
    items = list(preprocessed_stream(paths, fps=1.0, transform=r.transform, batch_size=8, depth=0, raw=True))
    batches = [x for x in items if isinstance(x, StreamBatch)]
    ends = [x for x in items if isinstance(x, VideoEnd)]
    assert [e.n_frames for e in ends] == [5, 4, 3]
    assert all(b.pixels is None for b in batches)
    assert all(c.dtype.is_floating_point is False and c.shape[-1] == 3 for b in batches for c in b.frames)
    for b in batches:
        assert sum(len(c) for c in b.frames) == len(b.times_s) == len(b.owner)
    # The first batch (8 frames): 5 of a.mp4 (96x64, decoded at the tiny model's 32 px short
    # side, 3:2 kept) and 3 of b.mp4 (square).
    first = batches[0]
    assert [tuple(c.shape[:3]) for c in first.frames] == [(5, 32, 48), (3, 32, 32)]
    assert first.owner.tolist() == [0] * 5 + [1] * 3


def test_decoder_processes_keep_the_order_and_report_a_broken_file(paths: list[Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    files = [paths[0], broken, paths[1]]
    job = DecodeJob(fps=1.0, short_side=None, batch_size=2)
    here = list(decoded_videos(files, job, processes=0))
    there = list(decoded_videos(files, job, processes=2))
    assert [type(e).__name__ for e in here] == [type(e).__name__ for e in there]
    for a, b in zip(here, there, strict=True):
        if isinstance(a, VideoDone):
            assert isinstance(b, VideoDone) and a.position == b.position
            assert (a.error is None) == (b.error is None)
        else:
            assert isinstance(b, tuple) and a[0] == b[0]
            np.testing.assert_array_equal(a[1].frames, b[1].frames)
            np.testing.assert_array_equal(a[1].times_s, b[1].times_s)
    failed = [e for e in there if isinstance(e, VideoDone) and e.error is not None]
    assert [e.position for e in failed] == [1] and str(broken) in str(failed[0].error)


def test_keyframe_sampling_takes_only_key_frames(paths: list[Path], tmp_path: Path) -> None:
    from bench.video import sample_frames

    video = make_video(tmp_path / "gop20.mp4", 6, "64x64", gop=20)  # a key frame every 2 s
    every = np.concatenate([b.times_s for b in sample_frames(video, 1.0)])
    keys = np.concatenate([b.times_s for b in sample_frames(video, 1.0, keyframes_only=True)])
    np.testing.assert_allclose(every, np.arange(6.0), atol=0.051)
    np.testing.assert_allclose(keys, [0.0, 2.0, 4.0], atol=0.051)
    r, k = tiny(), tiny(sampling="keyframes")
    assert "sampling" not in r._extractor().params and k._extractor().params["sampling"] == "keyframes"
    arrays, _ = k.encode_video(video, probe(video))
    np.testing.assert_allclose(arrays["times_s"], [0.0, 2.0, 4.0], atol=0.051)


def test_batch_and_decoder_planning_per_device() -> None:
    p = VisualParams()
    assert (p.batch_for("cpu"), p.batch_for("cuda")) == (32, 256)
    assert VisualParams(batch_size=8, cuda_batch_size=512).batch_for("cuda") == 512
    assert p.processes_for("cpu", 10) == 0  # the CPU encoder needs the cores
    assert p.processes_for("cuda", 1) == 0  # one video: FFmpeg's own threads
    assert p.processes_for("cuda", 100, cores=16) == 8
    assert p.processes_for("cuda", 3, cores=16) == 3
    assert VisualParams(decode_processes=4).processes_for("cpu", 2) == 2
    assert (p.on_device("cpu"), p.on_device("cuda")) == (False, True)
    assert VisualParams(preprocess="producer").on_device("cuda") is False
    assert VisualParams(preprocess="device").on_device("cpu") is True


def test_clip_keys_name_the_gpu_and_keep_the_cpu_ones() -> None:
    r = tiny()
    cpu_key = r.extractor.key
    assert "device" not in r.extractor.params
    r.device = "cuda"  # no GPU here: only the key is computed
    gpu = r._extractor()
    assert gpu.key != cpu_key and gpu.params["device"] == "cuda"
    r.device = "cpu"
    assert r._extractor().key == cpu_key


def test_xclip_refuses_device_preprocessing() -> None:
    from bench.errors import BadInput
    from bench.retrievers import get_config

    cfg = get_config("xclip-clips-tiny")
    cfg = cfg.model_copy(update={"params": {**cfg.params, "preprocess": "device"}})
    with pytest.raises(BadInput, match="preprocess"):
        build_retriever(cfg, "cpu")

