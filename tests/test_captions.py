"""Frame captions: the tiny random-init captioner end to end, merging, presets offline."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.errors import BadInput, Unavailable
from bench.text.captions import CaptionConfig, Captioner, caption_video, merge_captions


@pytest.fixture(scope="module")
def tiny() -> Captioner:
    return Captioner(CaptionConfig.model_validate({"model": {"id": "tiny:caption"}, "every_s": 2.0,
                                                   "batch_size": 2, "max_new_tokens": 6}))


def test_tiny_captioner_gives_one_caption_per_frame(tiny: Captioner) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(5, 48, 64, 3), dtype=np.uint8)
    captions = tiny.caption(frames)
    assert len(captions) == 5
    assert all(isinstance(c, str) and 0 < len(c.split()) <= 6 for c in captions)
    assert tiny.caption(frames[:0]) == []
    # Batching must not change results: frame 3 alone reads as it did in a batch of 2.
    assert tiny.caption(frames[3:4]) == captions[3:4]


def test_tiny_model_is_flagged_random_init(tiny: Captioner) -> None:
    prov = tiny.provenance()
    assert prov["random_init"] is True and prov["source"] == "tiny" and prov["id"] == "tiny:caption"
    assert prov["revision"].startswith("caption-")  # the recipe digest, not a machine path
    assert len(prov["checksum"]) == 64


def _write_video(path: Path, seconds: int, fps: int) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed")
    cmd = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=160x120:rate={fps}:d={seconds}",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, check=True)


def test_caption_video_end_to_end(tiny: Captioner, tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    _write_video(video, seconds=7, fps=10)
    segs = caption_video(video, "clip", tiny, duration_s=7.0)
    assert segs, "a 7 s video captioned every 2 s must give at least one segment"
    # Frames at 0, 2, 4 and 6 s; merged segments tile [0, 7] without gaps or overlaps.
    assert sum(s.meta["frames"] for s in segs) == 4
    assert segs[0].start == pytest.approx(0.0) and segs[-1].end == pytest.approx(7.0)
    for a, b in zip(segs, segs[1:], strict=False):
        assert a.end == pytest.approx(b.start) and a.text.casefold() != b.text.casefold()
    assert all(s.source == "caption" and s.vid == "clip" for s in segs)
    assert all(s.meta["random_init"] is True and s.meta["model"] == "tiny:caption" for s in segs)


def test_merge_joins_identical_neighbours_only() -> None:
    times = [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    caps = ["a dog on grass", "A dog  on grass", "a red car", "", "a red car", "a red car"]
    segs = merge_captions("v", times, caps, hold_s=2.0, duration_s=11.0, meta={"model": "m"})
    assert [(s.text, s.start, s.end, s.meta["frames"]) for s in segs] == [
        ("a dog on grass", 0.0, 4.0, 2), ("a red car", 4.0, 6.0, 1), ("a red car", 8.0, 11.0, 2)]
    assert all(s.meta["model"] == "m" for s in segs)
    with pytest.raises(ValueError, match="2 times for 1 captions"):
        merge_captions("v", [0.0, 1.0], ["x"], hold_s=1.0)


def test_presets_and_hub_model_unavailable_offline() -> None:
    blip = CaptionConfig.model_validate("blip-base")
    assert blip.model.id == "Salesforce/blip-image-captioning-base"
    assert blip.model.revision is not None and len(blip.model.revision) == 40
    assert CaptionConfig() == blip
    with pytest.raises(BadInput, match="unknown caption preset 'nope'"):
        CaptionConfig.model_validate("nope")
    with pytest.raises(Unavailable, match="blip-image-captioning-base"):
        Captioner(blip).load()
