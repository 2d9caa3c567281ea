"""Video I/O against ffmpeg as the oracle: rotation, VFR timestamps, odd sizes, bad files, audio."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import bench.video.decord_backend as decord_module
import bench.video.pyav_backend as pyav_module
from bench.errors import BadInput
from bench.video import (
    DecodeError,
    FrameSelector,
    choose_decoder,
    decord_available,
    extract_audio,
    frame_times,
    output_size,
    probe,
    sample_frames,
    select_indices,
)
from bench.video.packets import Packets, packets

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                reason="ffmpeg/ffprobe not installed")

DECODERS = ("decord", "pyav") if decord_available() else ("pyav",)
needs_decord = pytest.mark.skipif(not decord_available(), reason="decord is not installed")


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def ffprobe_json(path: Path, *args: str) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, str(path)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def ffmpeg_frames(path: Path, width: int, height: int) -> np.ndarray:
    """Every frame as ffmpeg itself decodes it (autorotated, no frame dropped or duplicated)."""
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-fps_mode", "passthrough",
         "-vf", f"scale={width}:{height}:flags=bicubic", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def sample_all(path: Path, **kwargs: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    batches = list(sample_frames(path, **kwargs))  # type: ignore[arg-type]
    return (np.concatenate([b.frames for b in batches]), np.concatenate([b.times_s for b in batches]),
            np.concatenate([b.indices for b in batches]))


def expected_selection(pts: list[float], fps: float, duration: float) -> list[int]:
    """The sampling rule, written out plainly: per target k/fps, the first frame at or after it."""
    picked: list[int] = []
    for k in range(math.ceil(duration * fps)):
        target = k / fps
        later = [i for i, t in enumerate(pts) if t >= target - 1e-3]
        i = later[0] if later else len(pts) - 1
        if i not in picked:
            picked.append(i)
    return picked


MIRRORS = {  # file: (a, b, c, d) of the display matrix, in units of 1.0
    "hflip.mp4": (-1, 0, 0, 1),
    "vflip.mp4": (1, 0, 0, -1),
    "transpose.mp4": (0, 1, 1, 0),
    "antitranspose.mp4": (0, -1, -1, 0),
}


def with_display_matrix(src: Path, dst: Path, abcd: tuple[int, int, int, int], width: int,
                        height: int) -> None:
    """Copy of the one-track MP4 ``src`` whose track header holds the display matrix ``abcd``
    (translated so the picture stays in view, as cameras write it)."""
    import struct

    a, b, c, d = abcd
    x = -min(a * p + c * q for p in (0, width) for q in (0, height))
    y = -min(b * p + d * q for p in (0, width) for q in (0, height))
    data = bytearray(src.read_bytes())
    at = data.find(b"tkhd")
    assert at > 0 and data[at + 4] == 0  # version 0: the matrix is 40 bytes into the box body
    one = 1 << 16
    data[at + 44:at + 80] = struct.pack(">9i", a * one, b * one, 0, c * one, d * one, 0, x * one, y * one,
                                        1 << 30)
    dst.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    m = {name: d / name for name in ("quad.mp4", "vfr.mp4", "vfr.ts", "odd.mp4", "sine.mp4",
                                      "late_audio.mov", "audio_only.m4a")}
    # Red top-left quadrant on blue: any rotation or mirror shows in where the red lands.
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:size=320x240:rate=10:duration=1[bg];"
           "color=c=red:size=160x120:rate=10:duration=1[r];[bg][r]overlay=0:0",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", str(m["quad.mp4"]))
    for deg in (90, 180, 270):
        m[f"rot{deg}.mp4"] = d / f"rot{deg}.mp4"
        ffmpeg("-i", str(m["quad.mp4"]), "-c", "copy", "-metadata:s:v:0", f"rotate={deg}",
               str(m[f"rot{deg}.mp4"]))
    # Mirrored display matrices (left-right, top-bottom, and the two diagonals), written into
    # the track header of a copy.
    for name, matrix in MIRRORS.items():
        m[name] = d / name
        with_display_matrix(m["quad.mp4"], m[name], matrix, 320, 240)
    # Non-square pixels (2:1, as in the H.264 stream's VUI), upright and turned.
    m["sar2.mp4"], m["sar2rot90.mp4"] = d / "sar2.mp4", d / "sar2rot90.mp4"
    ffmpeg("-i", str(m["quad.mp4"]), "-vf", "setsar=2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           str(m["sar2.mp4"]))
    ffmpeg("-i", str(m["sar2.mp4"]), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(m["sar2rot90.mp4"]))
    # Variable frame rate: 1 s at 10 fps, 2 s at 2 fps, 1 s at 25 fps; each frame's
    # brightness grows with its index so a wrong frame shows in its pixels.
    ffmpeg("-filter_complex",
           "color=c=black:size=160x120:rate=10:duration=1[a];color=c=black:size=160x120:rate=2:duration=2[b];"
           "color=c=black:size=160x120:rate=25:duration=1[c];[a][b][c]concat=n=3:v=1:a=0,"
           "format=yuv420p,geq=lum='16+N*5':cb=128:cr=128[v]",
           "-map", "[v]", "-fps_mode", "vfr", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p",
           "-video_track_timescale", "1000", str(m["vfr.mp4"]))
    ffmpeg("-i", str(m["vfr.mp4"]), "-c", "copy", "-output_ts_offset", "5", str(m["vfr.ts"]))
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=321x241:rate=15:duration=2", "-c:v", "libx264",
           "-pix_fmt", "yuv444p", str(m["odd.mp4"]))
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1", "-f", "lavfi",
           "-i", "sine=frequency=440:sample_rate=44100:duration=1", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(m["sine.mp4"]))
    # Audio starting 0.5 s after the container start.
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=2", "-f", "lavfi",
           "-i", "sine=frequency=440:sample_rate=16000:duration=1.5", "-af", "adelay=500:all=1",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", str(m["late_audio.mov"]))
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(m["audio_only.m4a"]))
    return m


# -- sampling rule ----------------------------------------------------------------------


def test_selector_takes_first_frame_at_or_after_each_target() -> None:
    times = np.array([0.0, 0.04, 0.5, 0.98, 1.0, 1.9, 2.6])
    # targets 0, 0.5, 1.0, 1.5, 2.0, 2.5 (duration 2.7 at 2 fps -> 6 targets)
    assert select_indices(times, 2.0, 2.7).tolist() == [0, 2, 4, 5, 6]


def test_selector_dedupes_gaps_and_uses_last_frame_past_the_end() -> None:
    times = np.array([0.0, 2.0])  # one frame covers targets 0.5 .. 2.0
    assert select_indices(times, 2.0, 3.0).tolist() == [0, 1]
    # targets 0..3 at 1 fps, frames stop at 1.5: the last frame answers the late targets
    assert select_indices(np.array([0.0, 0.5, 1.5]), 1.0, 4.0).tolist() == [0, 2]


def test_selector_tolerates_timestamp_rounding() -> None:
    # 0.9999 is within 1 ms of target 1.0, so it is taken for it (not the frame at 1.04).
    assert select_indices(np.array([0.0, 0.9999, 1.04]), 1.0, 2.0).tolist() == [0, 1]


def test_selector_rejects_bad_rate() -> None:
    for fps in (0.0, -1.0, float("nan")):
        with pytest.raises(BadInput, match="frames per second"):
            FrameSelector(fps, 10.0)


def test_output_size_keeps_aspect_and_never_upscales(media: dict[str, Path]) -> None:
    info = probe(media["odd.mp4"])
    assert output_size(info, None) == (321, 241)
    assert output_size(info, 100) == (133, 100)
    assert output_size(info, 500) == (321, 241)
    portrait = probe(media["rot90.mp4"])
    assert output_size(portrait, 60) == (60, 80)
    with pytest.raises(BadInput):
        output_size(info, 0)


# -- probe --------------------------------------------------------------------------------


def test_probe_plain_clip(media: dict[str, Path]) -> None:
    info = probe(media["odd.mp4"])
    assert (info.width, info.height, info.rotation) == (321, 241, 0)
    assert info.fps == pytest.approx(15.0)
    assert info.n_frames == 30
    assert info.duration_s == pytest.approx(2.0, abs=0.01)
    assert (info.has_audio, info.audio_codec, info.video_codec, info.vfr) == (False, None, "h264", False)
    assert info.to_dict()["width"] == 321
    assert type(info).from_dict(info.to_dict()) == info


@pytest.mark.parametrize("deg", [90, 180, 270])
def test_probe_reports_rotation_as_players_apply_it(media: dict[str, Path], deg: int) -> None:
    path = media[f"rot{deg}.mp4"]
    side = ffprobe_json(path, "-select_streams", "v:0", "-show_streams")["streams"][0]["side_data_list"]
    ccw = next(s["rotation"] for s in side if "rotation" in s)  # display matrix: counter-clockwise
    info = probe(path)
    assert info.rotation == (-ccw) % 360
    assert info.rotation != 0
    assert (info.width, info.height) == ((240, 320) if info.rotation in (90, 270) else (320, 240))


def test_probe_vfr_matches_ffprobe(media: dict[str, Path]) -> None:
    info = probe(media["vfr.mp4"])
    fmt = ffprobe_json(media["vfr.mp4"], "-show_format")["format"]
    pts = ffprobe_json(media["vfr.mp4"], "-select_streams", "v:0", "-show_entries", "frame=pts_time")
    assert info.vfr is True
    assert info.n_frames == len(pts["frames"]) >= 37  # about 10 + 4 + 25
    assert info.duration_s == pytest.approx(float(fmt["duration"]), abs=1e-3)
    assert probe(media["odd.mp4"]).vfr is False


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 50, "truncated", "audio_only"])
def test_probe_rejects_non_videos(media: dict[str, Path], tmp_path: Path, content: object) -> None:
    if content == "truncated":
        data = media["odd.mp4"].read_bytes()
        path = tmp_path / "truncated.mp4"
        path.write_bytes(data[: len(data) // 3])  # the index (moov) sits at the end: lost
    elif content == "audio_only":
        path = media["audio_only.m4a"]
    else:
        path = tmp_path / "bad.mp4"
        path.write_bytes(content)  # type: ignore[arg-type]
    with pytest.raises(BadInput, match=r"not a readable video \(.+\)") as err:
        probe(path)
    assert str(path) in str(err.value)
    with pytest.raises(BadInput):
        list(sample_frames(path))


def test_probe_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="file not found"):
        probe(tmp_path / "nope.mp4")


def test_faststart_file_cut_after_the_first_frames_is_still_readable(media: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    whole = tmp_path / "fast.mp4"
    ffmpeg("-i", str(media["odd.mp4"]), "-c", "copy", "-movflags", "+faststart", str(whole))
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    # The index promises frames the file no longer holds: those that are there are served,
    # or the decoder error is a BadInput naming the file; never a crash or a hang.
    try:
        _, times, _ = sample_all(cut, fps=5.0, decoder="pyav")
    except BadInput as exc:
        assert str(cut) in str(exc)
    else:
        assert len(times) >= 1 and np.all(np.diff(times) > 0)


def test_truncated_file_takes_the_duration_it_holds_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    whole = tmp_path / "whole.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=7", "-f", "lavfi",
           "-i", "sine=frequency=440:duration=7", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-movflags", "+faststart", str(whole))
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 4])  # the header still says 7 s
    with caplog.at_level("WARNING", logger="bench"):
        assert probe(whole).duration_s == pytest.approx(7.0, abs=0.05)
        assert not caplog.records
        info = probe(cut)
        again = probe(cut)
    assert 0.5 < info.duration_s < 3.0 and again.duration_s == info.duration_s
    # what the decoder can still give ends within a frame or two of the probed duration
    times = np.concatenate([b.times_s for b in sample_frames(cut, 25.0, decoder="pyav")])
    assert info.duration_s - 0.2 <= times[-1] + 0.04 <= info.duration_s + 0.2
    (record,) = caplog.records  # once per file, not once per probe
    assert str(cut) in record.message and "7.0 s" in record.message
    assert f"{info.duration_s:.1f} s" in record.message


# -- sampling -----------------------------------------------------------------------------


@pytest.mark.parametrize("decoder", DECODERS)
def test_vfr_times_are_the_true_pts(media: dict[str, Path], decoder: str) -> None:
    path = media["vfr.mp4"]
    pts = [float(f["pts_time"]) for f in ffprobe_json(
        path, "-select_streams", "v:0", "-show_entries", "frame=pts_time")["frames"]]
    assert pts[9:13] == [0.9, 1.0, 1.5, 2.0]  # the clip really is variable-rate
    truth = ffmpeg_frames(path, 160, 120)
    info = probe(path)
    for fps in (4.0, 1.0, 0.5):
        frames, times, indices = sample_all(path, fps=fps, decoder=decoder)
        want = expected_selection(pts, fps, info.duration_s)
        assert indices.tolist() == want
        np.testing.assert_allclose(times, [pts[i] for i in want], rtol=0, atol=1e-9)
        assert times.dtype == np.float64 and indices.dtype == np.int64 and frames.dtype == np.uint8
        # each returned frame is that frame: its brightness is the oracle's for that index
        np.testing.assert_allclose(frames.reshape(len(frames), -1).mean(1),
                                   truth[indices].reshape(len(indices), -1).mean(1), atol=1.5)


@needs_decord
def test_decord_is_kept_for_vfr_mp4_and_pyav_takes_files_decord_cannot_open(media: dict[str, Path]) -> None:
    assert choose_decoder(media["vfr.mp4"]) == "decord"
    assert choose_decoder(media["vfr.ts"]) == "pyav"  # decord rejects this MPEG-TS
    _, want_t, want_i = sample_all(media["vfr.mp4"], fps=4.0)
    _, got_t, got_i = sample_all(media["vfr.ts"], fps=4.0)  # auto -> PyAV; times from its start
    assert got_i.tolist() == want_i.tolist()
    np.testing.assert_allclose(got_t, want_t, atol=1e-9)
    with pytest.raises(BadInput, match="decord cannot read it"):
        list(sample_frames(media["vfr.ts"], decoder="decord"))


@pytest.mark.parametrize("deg", [90, 180, 270])
@pytest.mark.parametrize("decoder", ["auto", *DECODERS])
def test_rotation_is_applied(media: dict[str, Path], deg: int, decoder: str) -> None:
    path = media[f"rot{deg}.mp4"]
    info = probe(path)
    truth = ffmpeg_frames(path, info.width, info.height)[0]  # ffmpeg autorotates
    frames, _, _ = sample_all(path, fps=1.0, decoder=decoder)
    assert frames.shape[1:] == (info.height, info.width, 3)
    assert np.abs(frames[0].astype(int) - truth).mean() < 4
    red = frames[0][..., 0] > 128
    ys, xs = np.nonzero(red)
    # the red quadrant moved with the rotation: its centre is in the oracle's quadrant
    tys, txs = np.nonzero(truth[..., 0] > 128)
    assert (ys.mean() > info.height / 2) == (tys.mean() > info.height / 2)
    assert (xs.mean() > info.width / 2) == (txs.mean() > info.width / 2)
    small, _, _ = sample_all(path, fps=1.0, short_side=60, decoder=decoder)
    assert small.shape[1:] == ((80, 60, 3) if deg in (90, 270) else (60, 80, 3))
    small_truth = ffmpeg_frames(path, small.shape[2], small.shape[1])[0]
    assert np.abs(small[0].astype(int) - small_truth).mean() < 6


def shown_by_definition(img: np.ndarray, abcd: tuple[int, int, int, int]) -> np.ndarray:
    """What a display matrix shows, pixel by pixel from its definition: the coded pixel
    (p, q) lands at (a p + c q + x, b p + d q + y), translated into view."""
    a, b, c, d = abcd
    h, w = img.shape[:2]
    cols = [a * p + c * q for p in (0, w - 1) for q in (0, h - 1)]
    rows = [b * p + d * q for p in (0, w - 1) for q in (0, h - 1)]
    out = np.zeros((max(rows) - min(rows) + 1, max(cols) - min(cols) + 1, *img.shape[2:]), img.dtype)
    for q in range(h):
        for p in range(w):
            out[b * p + d * q - min(rows), a * p + c * q - min(cols)] = img[q, p]
    return out


@pytest.mark.parametrize("abcd", [(1, 0, 0, 1), (0, 1, -1, 0), (-1, 0, 0, -1), (0, -1, 1, 0),
                                  *MIRRORS.values()])
def test_display_orientation_reads_every_quarter_turn_and_mirror(abcd: tuple[int, int, int, int]) -> None:
    from bench.video.probe import display_orientation

    img = np.arange(12).reshape(3, 4)  # every pixel distinct, not square
    one = 1 << 16
    rotation, mirrored = display_orientation([abcd[0] * one, abcd[1] * one, 0, abcd[2] * one, abcd[3] * one,
                                              0, 0, 0, 1 << 30])
    assert mirrored == (abcd[0] * abcd[3] - abcd[1] * abcd[2] < 0)
    shown = np.rot90(img, k=-rotation // 90)
    if mirrored:
        shown = shown[:, ::-1]
    assert np.array_equal(shown, shown_by_definition(img, abcd))


@pytest.mark.parametrize("name", sorted(MIRRORS))
@pytest.mark.parametrize("decoder", ["auto", "pyav"])
def test_mirrored_videos_are_shown_as_ffmpeg_shows_them(media: dict[str, Path], name: str,
                                                        decoder: str) -> None:
    path = media[name]
    info = probe(path)
    assert info.mirrored is True
    assert (info.width, info.height) == ((240, 320) if info.rotation in (90, 270) else (320, 240))
    truth = ffmpeg_frames(path, info.width, info.height)[0]  # ffmpeg applies the matrix
    frames, _, _ = sample_all(path, fps=1.0, decoder=decoder)
    assert frames.shape[1:] == (info.height, info.width, 3)
    assert np.abs(frames[0].astype(int) - truth).mean() < 4
    # The red quadrant (top left when coded) is where the matrix's definition puts it.
    coded = np.zeros((240, 320), dtype=bool)
    coded[:120, :160] = True
    want = shown_by_definition(coded, MIRRORS[name])
    assert ((frames[0][..., 0] > 128) == want).mean() > 0.98
    if decord_available():
        with pytest.raises(BadInput, match="does not mirror"):
            sample_all(path, fps=1.0, decoder="decord")


def test_probes_stored_before_mirroring_was_read_are_taken_again(media: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    from bench.store import FeatureStore
    from bench.store.indexing import _probe_for

    store = FeatureStore(tmp_path / "store")
    path = media["hflip.mp4"]
    vid = store.video_id(path)
    old = probe(path).to_dict()
    del old["mirrored"]
    old["rotation"] = 180  # what the angle alone said
    with store._tx() as db:  # the row an older version wrote
        db.execute("INSERT OR IGNORE INTO videos (video_id) VALUES (?)", (vid,))
        db.execute("UPDATE videos SET probe=? WHERE video_id=?", (json.dumps(old), vid))
    info = _probe_for(store, vid, path)
    assert (info.rotation, info.mirrored) == (0, True)
    assert (store.get_probe(vid) or {})["mirrored"] is True
    store.close()


@pytest.mark.parametrize("name", ["sar2.mp4", "sar2rot90.mp4"])
@pytest.mark.parametrize("decoder", ["auto", *DECODERS])
def test_non_square_pixels_are_shown_at_their_display_aspect(media: dict[str, Path], name: str,
                                                            decoder: str) -> None:
    path = media[name]
    stream = ffprobe_json(path, "-select_streams", "v:0", "-show_streams")["streams"][0]
    assert stream["sample_aspect_ratio"] == "2:1"  # the oracle agrees the pixels are 2:1
    info = probe(path)
    turned = info.rotation in (90, 270)
    assert (info.width, info.height) == ((240, 640) if turned else (640, 240))
    frames, _, _ = sample_all(path, fps=1.0, decoder=decoder)
    assert frames.shape[1:] == (info.height, info.width, 3)
    # The red quadrant of the coded frame stays a quarter of the picture, where ffmpeg
    # (autorotating, scaled to the display size) puts it.
    red = frames[0][..., 0] > 128
    assert red.mean() == pytest.approx(0.25, abs=0.02)
    truth = ffmpeg_frames(path, info.width, info.height)[0]
    assert np.abs(frames[0].astype(int) - truth).mean() < 4
    small, _, _ = sample_all(path, fps=1.0, short_side=60, decoder=decoder)
    assert small.shape[1:] == ((160, 60, 3) if turned else (60, 160, 3))
    assert (small[0][..., 0] > 128).mean() == pytest.approx(0.25, abs=0.03)


@pytest.mark.parametrize("decoder", DECODERS)
def test_odd_resolution_full_and_scaled(media: dict[str, Path], decoder: str) -> None:
    path = media["odd.mp4"]
    frames, times, indices = sample_all(path, fps=2.0, decoder=decoder)
    assert frames.shape == (4, 241, 321, 3)
    np.testing.assert_allclose(times, [0.0, 8 / 15, 1.0, 23 / 15], atol=1e-9)  # 15 fps grid
    assert indices.tolist() == [0, 8, 15, 23]
    truth = ffmpeg_frames(path, 321, 241)
    assert np.abs(frames.astype(int) - truth[indices]).mean() < 3
    small, _, _ = sample_all(path, fps=2.0, short_side=100, decoder=decoder)
    assert small.shape == (4, 100, 133, 3)
    assert np.abs(small.astype(int) - ffmpeg_frames(path, 133, 100)[indices]).mean() < 6


def test_batches_are_bounded_and_concatenate_to_the_whole(media: dict[str, Path]) -> None:
    for decoder in DECODERS:
        batches = list(sample_frames(media["vfr.mp4"], fps=8.0, batch_size=3, decoder=decoder))
        assert all(1 <= len(b) <= 3 for b in batches)
        assert all(len(b) == 3 for b in batches[:-1])
        _, _, whole = sample_all(media["vfr.mp4"], fps=8.0, batch_size=100, decoder=decoder)
        assert np.concatenate([b.indices for b in batches]).tolist() == whole.tolist()


def ramp(n: int, full: int, first: int) -> list[int]:
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(min(n - sum(sizes), full, first * 2 ** len(sizes)))
    return sizes


def test_first_batch_ramps_up_and_changes_no_frame(media: dict[str, Path],
                                                   gop_media: dict[str, Path]) -> None:
    cases = [(media["vfr.mp4"], 8.0, d) for d in DECODERS] + [(gop_media["closed.mp4"], 5.0, "auto")]
    for path, fps, decoder in cases:
        batches = list(sample_frames(path, fps=fps, batch_size=8, first_batch=2, decoder=decoder))
        sizes = [len(b) for b in batches]
        assert sum(sizes) > 2 + 4 + 8, (path, sizes)  # long enough to reach full batches
        assert sizes == ramp(sum(sizes), 8, 2), (path, decoder)
        frames, times, indices = sample_all(path, fps=fps, batch_size=100, decoder=decoder)
        assert np.concatenate([b.indices for b in batches]).tolist() == indices.tolist()
        assert np.array_equal(np.concatenate([b.frames for b in batches]), frames)
        np.testing.assert_array_equal(np.concatenate([b.times_s for b in batches]), times)
    assert [len(b) for b in sample_frames(media["vfr.mp4"], fps=8.0, batch_size=3, first_batch=5)][0] == 3


def test_bad_arguments_fail_before_decoding(media: dict[str, Path]) -> None:
    with pytest.raises(BadInput, match="unknown decoder"):
        sample_frames(media["odd.mp4"], decoder="opencv")
    with pytest.raises(BadInput, match="frames per second"):
        sample_frames(media["odd.mp4"], fps=0)
    with pytest.raises(BadInput, match="batch_size"):
        sample_frames(media["odd.mp4"], batch_size=0)
    with pytest.raises(BadInput, match="first_batch"):
        sample_frames(media["odd.mp4"], first_batch=0)


# -- audio --------------------------------------------------------------------------------


def test_extract_audio_sine(media: dict[str, Path]) -> None:
    audio = extract_audio(media["sine.mp4"], sample_rate=16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 16000) <= 800
    spectrum = np.abs(np.fft.rfft(audio[2000:14000]))
    peak_hz = np.argmax(spectrum) * 16000 / 12000
    assert abs(peak_hz - 440) < 5
    assert 0.05 < float(np.abs(audio).max()) <= 1.0


def test_extract_audio_is_on_the_container_clock(media: dict[str, Path]) -> None:
    audio = extract_audio(media["late_audio.mov"], sample_rate=8000)
    assert abs(len(audio) - 16000) <= 400  # 2 s at 8 kHz
    assert float(np.abs(audio[:3600]).max()) < 0.01  # silent until 0.5 s
    assert float(np.abs(audio[4400:12000]).max()) > 0.1


def test_extract_audio_while_another_thread_changes_the_environment(media: dict[str, Path]) -> None:
    # Speech is decoded in a thread beside OCR, whose libraries set variables as they load.
    from tests.test_subproc import environment_churn

    with environment_churn():
        lengths = [len(extract_audio(media["sine.mp4"], sample_rate=8000)) for _ in range(25)]
    assert all(abs(n - 8000) <= 400 for n in lengths), lengths


def test_extract_audio_empty_without_audio(media: dict[str, Path]) -> None:
    audio = extract_audio(media["odd.mp4"])
    assert audio.dtype == np.float32 and audio.shape == (0,)


def test_extract_audio_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(BadInput, match="bad.mp4"):
        extract_audio(bad)


# -- decoding only what the sampled frames need ---------------------------------------------


@pytest.fixture(scope="module")
def gop_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """H.264 with B-frames: closed groups in MP4, MKV and MPEG-TS, and open groups (frames
    shown before their group's I-frame, referring to the group before)."""
    d = tmp_path_factory.mktemp("gop")
    src = ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=12"]
    m = {"closed.mp4": d / "closed.mp4", "closed.mkv": d / "closed.mkv", "closed.ts": d / "closed.ts",
         "open.mp4": d / "open.mp4"}
    ffmpeg(*src, "-c:v", "libx264", "-bf", "3", "-g", "40", "-pix_fmt", "yuv420p", str(m["closed.mp4"]))
    ffmpeg("-i", str(m["closed.mp4"]), "-c", "copy", str(m["closed.mkv"]))
    ffmpeg("-i", str(m["closed.mp4"]), "-c", "copy", str(m["closed.ts"]))
    ffmpeg(*src, "-c:v", "libx264", "-x264-params", "open-gop=1:keyint=30:bframes=3:b-pyramid=normal",
           "-pix_fmt", "yuv420p", str(m["open.mp4"]))
    return m


def decode_whole(monkeypatch: pytest.MonkeyPatch, path: Path, **kwargs: object) -> tuple[np.ndarray, ...]:
    with monkeypatch.context() as mp:
        mp.setattr(pyav_module, "decode_plan", lambda *a: None)
        return sample_all(path, decoder="pyav", **kwargs)


@pytest.mark.parametrize("name", ["closed.mp4", "closed.mkv", "closed.ts", "open.mp4"])
def test_planned_decoding_gives_the_same_frames_as_decoding_everything(
        gop_media: dict[str, Path], monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    path = gop_media[name]
    monkeypatch.setattr(pyav_module, "_PLAN_FAILED", set())
    for fps in (0.2, 1.0, 3.0):
        want = decode_whole(monkeypatch, path, fps=fps, short_side=48, threads=1)
        for threads in (1, 2, 0):
            got = sample_all(path, fps=fps, short_side=48, decoder="pyav", threads=threads)
            assert got[1].tolist() == want[1].tolist() and got[2].tolist() == want[2].tolist()
            assert np.array_equal(got[0], want[0]), (name, fps, threads)
    assert not pyav_module._PLAN_FAILED  # no file needed the fallback


def test_plan_skips_group_tails_only_in_closed_groups(gop_media: dict[str, Path]) -> None:
    for name, tails in (("closed.mp4", True), ("open.mp4", False)):
        path = gop_media[name]
        times = frame_times(path)
        found = packets(path)
        plan = pyav_module.decode_plan(found, times[select_indices(times, 0.2, 12.0)])
        assert plan is not None and len(plan) == len(found) == 300
        assert int((plan == 2).sum()) == 3  # 0, 5 and 10 s
        last = int(np.flatnonzero(plan)[-1])
        skipped = int((plan[:last] == 0).sum())
        assert (skipped > 100) if tails else (skipped == 0), name
        for i in np.flatnonzero(plan == 2):  # every frame from the group's start is decoded
            start = int(np.flatnonzero(found.key[:i + 1])[-1])
            assert (plan[start:i + 1] >= 1).all()


def test_plan_refuses_streams_it_cannot_trust(gop_media: dict[str, Path]) -> None:
    found = packets(gop_media["closed.mp4"])
    times = found.time_s.copy()
    times[5] = np.nan
    broken = Packets(time_s=times, key=found.key, shown=found.shown)
    assert pyav_module.decode_plan(broken, np.array([0.0])) is None
    no_keys = Packets(time_s=found.time_s, key=np.zeros_like(found.key), shown=found.shown)
    assert pyav_module.decode_plan(no_keys, np.array([0.0])) is None
    assert pyav_module.decode_plan(found, np.array([0.123456])) is None  # not a frame time


def test_a_plan_the_decoder_does_not_follow_falls_back_to_decoding_everything(
        gop_media: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = gop_media["closed.mkv"]
    want = decode_whole(monkeypatch, path, fps=1.0, batch_size=4)
    real = pyav_module.decode_plan

    def lossy(found: object, selected: np.ndarray) -> np.ndarray | None:
        plan = real(found, selected)  # type: ignore[arg-type]
        assert plan is not None
        plan = plan.copy()
        plan[np.flatnonzero(plan == 2)[6]] = 0  # the 7th sampled frame never reaches the decoder
        return plan

    monkeypatch.setattr(pyav_module, "decode_plan", lossy)
    monkeypatch.setattr(pyav_module, "_PLAN_FAILED", set())
    got = sample_all(path, fps=1.0, batch_size=4, decoder="pyav")
    assert got[2].tolist() == want[2].tolist() and np.array_equal(got[0], want[0])
    assert len(pyav_module._PLAN_FAILED) == 1  # remembered: the next call decodes whole


@pytest.mark.parametrize("decoder", DECODERS)
def test_decoder_threads_do_not_change_the_frames(gop_media: dict[str, Path], decoder: str) -> None:
    path = gop_media["closed.mp4"]
    one = sample_all(path, fps=2.0, decoder=decoder, threads=1)
    for threads in (0, 2):
        other = sample_all(path, fps=2.0, decoder=decoder, threads=threads)
        assert other[2].tolist() == one[2].tolist() and np.array_equal(other[0], one[0])
    with pytest.raises(BadInput, match="threads must be >= 0"):
        sample_frames(path, threads=-1)


@needs_decord
def test_pyav_takes_over_where_decord_cannot_scale(tmp_path: Path) -> None:
    path = tmp_path / "tiny.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=10:duration=3", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(path))
    assert choose_decoder(path) == "decord"
    with pytest.raises(BadInput, match="decord failed"):  # decord cannot scale this one to 48x32
        list(sample_frames(path, short_side=32, decoder="decord"))
    batches = list(sample_frames(path, fps=10.0, short_side=32))  # every frame: auto tries decord
    assert [b.decoder for b in batches] == ["pyav"]
    assert batches[0].frames.shape == (30, 32, 48, 3)
    np.testing.assert_allclose(batches[0].times_s, np.arange(30) / 10, atol=1e-9)


@needs_decord
def test_pyav_goes_on_from_the_next_frame_when_decord_fails_part_way(
        media: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = media["vfr.mp4"]
    want = sample_all(path, fps=8.0, batch_size=3, decoder="pyav")
    real = decord_module.sample_decord

    def fails_after_two_batches(*args: object) -> object:
        for i, batch in enumerate(real(*args)):  # type: ignore[arg-type]
            if i == 2:
                raise DecodeError(f"{path}: decord failed at frame {batch.indices[0]}")
            yield batch

    monkeypatch.setattr(decord_module, "sample_decord", fails_after_two_batches)
    batches = list(sample_frames(path, fps=8.0, batch_size=3))  # dense: auto takes decord
    assert [b.decoder for b in batches[:2]] == ["decord", "decord"]
    assert {b.decoder for b in batches[2:]} == {"pyav"}
    got = np.concatenate([b.indices for b in batches])
    assert got.tolist() == want[2].tolist()  # every sampled frame once, in order
    np.testing.assert_allclose(np.concatenate([b.times_s for b in batches]), want[1], atol=1e-9)


def test_auto_takes_pyav_for_sparse_h264_and_decord_for_dense(gop_media: dict[str, Path]) -> None:
    path = gop_media["closed.mp4"]  # 25 fps
    assert {b.decoder for b in sample_frames(path, fps=1.0)} == {"pyav"}
    if decord_available():
        assert {b.decoder for b in sample_frames(path, fps=25.0)} == {"decord"}


# -- seeking over what a sparse sampling skips --------------------------------------------


@pytest.fixture(scope="module")
def seek_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Long enough for skipped stretches over SEEK_MIN_PACKETS: 2 s groups at 25 fps (50
    packets) in MP4 and Matroska with B-frames, 10 s groups without B-frames, and a
    variable-rate MP4 (10 s at 10 fps, 10 s at 30 fps, 10 s at 5 fps) with 2 s-ish groups."""
    d = tmp_path_factory.mktemp("seek")
    src = ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=40"]
    fixed = ["-sc_threshold", "0", "-pix_fmt", "yuv420p"]
    m = {name: d / name for name in ("gop2.mp4", "gop2.mkv", "gop10.mp4", "vfr.mp4")}
    ffmpeg(*src, "-c:v", "libx264", "-bf", "2", "-g", "50", "-keyint_min", "50", *fixed, str(m["gop2.mp4"]))
    ffmpeg("-i", str(m["gop2.mp4"]), "-c", "copy", str(m["gop2.mkv"]))
    ffmpeg(*src, "-c:v", "libx264", "-bf", "0", "-g", "250", "-keyint_min", "250", *fixed,
           str(m["gop10.mp4"]))
    ffmpeg("-filter_complex",
           "testsrc2=size=160x120:rate=10:duration=10[a];testsrc2=size=160x120:rate=30:duration=10[b];"
           "testsrc2=size=160x120:rate=5:duration=10[c];[a][b][c]concat=n=3:v=1:a=0,format=yuv420p[v]",
           "-map", "[v]", "-fps_mode", "vfr", "-c:v", "libx264", "-g", "40", *fixed,
           "-video_track_timescale", "1000", str(m["vfr.mp4"]))
    return m


def test_seek_jumps_skip_long_stretches_to_their_key_frame() -> None:
    plan = np.zeros(200, dtype=np.int8)
    key = np.zeros(200, dtype=bool)
    key[::50] = True
    plan[0], plan[50:53], plan[60], plan[150:152] = 2, [1, 1, 2], 2, [1, 2]
    # 1..49 (49 packets, ends at key 50): a jump; 53..59 is too short; 61..149 ends at key 150;
    # 152.. is after the last needed packet: never read.
    assert pyav_module.seek_jumps(plan, key, min_packets=48) == {1: 50, 61: 150}
    assert pyav_module.seek_jumps(plan, key, min_packets=60) == {61: 150}
    late = np.zeros(200, dtype=np.int8)
    late[100] = 2
    assert pyav_module.seek_jumps(late, key, min_packets=48) == {0: 100}  # straight to the first
    key[150] = False
    assert pyav_module.seek_jumps(plan, key, min_packets=48) == {1: 50}  # resumes only at a key
    assert pyav_module.planned_share(plan) == 7 / 200


@pytest.mark.parametrize("name", ["gop2.mp4", "gop2.mkv", "gop10.mp4", "vfr.mp4"])
def test_seeking_gives_the_frames_decoding_everything_gives(
        seek_media: dict[str, Path], monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    path = seek_media[name]
    monkeypatch.setattr(pyav_module, "_PLAN_FAILED", set())
    pts = [float(f["pts_time"]) for f in ffprobe_json(
        path, "-select_streams", "v:0", "-show_entries", "frame=pts_time")["frames"]]
    duration = probe(path).duration_s
    seeks = pyav_module._SEEKS[0]
    for fps in (0.1, 0.3):
        want = decode_whole(monkeypatch, path, fps=fps, short_side=48, threads=1)
        got = sample_all(path, fps=fps, short_side=48, decoder="pyav", threads=1)
        assert got[2].tolist() == want[2].tolist() == expected_selection(pts, fps, duration), (name, fps)
        np.testing.assert_allclose(got[1], [pts[i] for i in got[2]], rtol=0, atol=1e-9)
        assert np.array_equal(got[0], want[0]), (name, fps)
    assert pyav_module._SEEKS[0] > seeks  # the stretches between samples were sought over
    assert not pyav_module._PLAN_FAILED  # and no file needed the fallback


def test_seeking_in_mpeg_ts_is_left_to_reading_through(seek_media: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "gop2.ts"  # MPEG-TS seeks by byte estimates, not to the exact key frame
    ffmpeg("-i", str(seek_media["gop2.mp4"]), "-c", "copy", str(path))
    seeks = pyav_module._SEEKS[0]
    times = sample_all(path, fps=0.1, decoder="pyav")[1]
    assert pyav_module._SEEKS[0] == seeks and len(times) == 4


def test_auto_decodes_everything_where_the_plan_skips_too_little(seek_media: dict[str, Path]) -> None:
    long_gop, short_gop = seek_media["gop10.mp4"], seek_media["gop2.mp4"]
    info = probe(long_gop)
    share = pyav_module.planned_share(pyav_module.sampling_plan(long_gop, info, 1.0)[1])  # type: ignore[index]
    assert share > 0.9  # 10 s groups without B-frames sampled every second: nearly all decoded
    assert pyav_module.planned_share(pyav_module.sampling_plan(long_gop, info, 0.1)[1]) < 0.05  # type: ignore[index]
    assert {b.decoder for b in sample_frames(short_gop, fps=0.5)} == {"pyav"}
    assert {b.decoder for b in sample_frames(long_gop, fps=0.1)} == {"pyav"}
    if decord_available():
        assert {b.decoder for b in sample_frames(long_gop, fps=1.0)} == {"decord"}
    # With B-frames the plan drops unsampled frames nothing refers to: kept even when it
    # sends most packets to the decoder.
    assert pyav_module.reorders(packets(short_gop)) and not pyav_module.reorders(packets(long_gop))
    dense = pyav_module.sampling_plan(short_gop, probe(short_gop), 3.0)
    assert dense is not None and pyav_module.planned_share(dense[1]) > 0.75
    assert {b.decoder for b in sample_frames(short_gop, fps=3.0)} == {"pyav"}
