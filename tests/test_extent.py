"""Shots, scenes, speech turns and the engine's choice of a hit's extent, with bad input
(no cuts, one frame, variable frame rate, black frames, a flash)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.engine.extent import (
    NO_CUTS,
    NO_SHOTS,
    Boundaries,
    ExtentConfig,
    VideoExtents,
    build_boundaries,
    choose,
    merge_scenes,
    place,
    speech_turns,
)
from bench.engine.proposals import ProposalConfig
from bench.engine.search import Curve, curve_moments
from bench.evidence import NoEvidence, Snippet, TextEvidence, with_note
from bench.spans import Window
from bench.text.segments import Segment
from bench.types import Video
from bench.video.shots import ShotConfig, Shots, boundary_f1, detect_shots

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed")


def speech(start: float, end: float, text: str = "words") -> Segment:
    return Segment("v", start, end, "speech", text)


# -- units ---------------------------------------------------------------------------------


def test_turns_merge_short_pauses_but_not_across_a_cut() -> None:
    segs = [speech(0.4, 2.0), speech(2.5, 4.0), speech(6.0, 7.0), speech(7.5, 8.0), speech(10.4, 12.0)]
    assert speech_turns(segs, cuts_s=[7.2], gap_s=1.0) == [(0.4, 4.0), (6.0, 7.0), (7.5, 8.0), (10.4, 12.0)]
    ocr = Segment("v", 0.0, 12.0, "ocr", "TITLE")
    assert speech_turns([ocr], cuts_s=[], gap_s=1.0) == []


def test_scenes_join_shots_where_speech_or_the_same_text_runs_across_the_cut() -> None:
    shots = [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]
    # speech running 1 s into the second shot joins the first two; a line ending at the cut does not
    segs = [speech(8.0, 11.0), speech(15.0, 19.9)]
    assert merge_scenes(shots, segs, tolerance_s=0.5) == [(0.0, 20.0), (20.0, 30.0)]
    telop = Segment("v", 18.0, 30.0, "ocr", "SAME TELOP")
    assert merge_scenes(shots, [telop], tolerance_s=0.5) == [(0.0, 10.0), (10.0, 30.0)]
    assert merge_scenes(shots, [], tolerance_s=0.5) == shots
    # narration across a cut between two captioned scenes does not join them
    captions = [Segment("v", 0.0, 10.0, "ocr", "NIGHT SKY TOUR"), Segment("v", 10.0, 20.0, "ocr", "CREW")]
    assert merge_scenes(shots, [*segs, *captions], tolerance_s=0.5, telop_match=0.8) == shots
    assert merge_scenes(shots, [*segs, *captions], tolerance_s=0.5) == [(0.0, 20.0), (20.0, 30.0)]


def test_boundaries_note_missing_shots_and_a_video_without_cuts() -> None:
    cfg = ExtentConfig()
    none = build_boundaries(30.0, None, [speech(1.0, 3.0)], cfg)
    assert none.notes == [NO_SHOTS] and "shot" not in none.units and none.units["turn"] == [(1.0, 3.0)]
    one = build_boundaries(30.0, Shots(30.0, []), [], cfg)
    assert one.notes == [NO_CUTS] and "shot" not in one.units and "scene" not in one.units
    hit = choose(Window(2.0, 6.0, 1.0), one, cfg)  # a hit in a video of one shot keeps its extent
    assert (hit.window, hit.granularity, hit.note) == (Window(2.0, 6.0, 1.0), "curve", NO_CUTS)


# -- choosing an extent ----------------------------------------------------------------------


def bounds(shots: list[float], duration: float, segs: list[Segment] = ()) -> Boundaries:  # type: ignore[assignment]
    return build_boundaries(duration, Shots(duration, shots), segs, ExtentConfig())


def test_a_hit_inside_a_short_shot_takes_the_shot() -> None:
    b = bounds([10.0, 20.0, 30.0], 40.0)
    got = choose(Window(11.0, 15.0, 0.8), b, ExtentConfig())
    assert (got.window, got.granularity) == (Window(10.0, 20.0, 0.8), "scene")
    assert got.note is None


def test_a_short_action_in_a_long_shot_keeps_its_extent_or_its_turn() -> None:
    b = bounds([30.0], 60.0, [speech(11.5, 15.0), speech(15.3, 17.0)])
    hit = Window(12.0, 16.0, 1.0)
    got = choose(hit, b, ExtentConfig(use=["scene", "shot", "turn"]))
    assert (got.window, got.granularity) == (Window(11.5, 17.0, 1.0), "turn")
    assert choose(hit, b, ExtentConfig()).window == hit  # by default a turn is not a unit
    alone = choose(Window(40.0, 44.0, 1.0), b, ExtentConfig(use=["scene", "shot", "turn"]))
    assert (alone.window, alone.granularity) == (Window(40.0, 44.0, 1.0), "curve")
    # the stretch limit is what keeps the shot away: with a loose one the shot wins
    loose = choose(hit, b, ExtentConfig(max_stretch=10.0))
    assert loose.granularity == "scene" and loose.window[:2] == (0.0, 30.0)


def test_a_shot_showing_two_telops_one_after_the_other_is_refused() -> None:
    # a dissolve at 10 s went undetected: one 20 s shot holds two scenes with their telops
    segs = [Segment("v", 0.5, 10.5, "ocr", "CREW PORTRAITS"), Segment("v", 10.5, 20.0, "ocr", "PAD 39"),
            Segment("v", 0.0, 20.0, "ocr", "EXIT")]  # a sign in the picture the whole time
    b = bounds([20.0], 40.0, segs)
    cfg = ExtentConfig(max_stretch=2.5)
    got = choose(Window(1.0, 9.0, 1.0), b, cfg)
    assert got.granularity == "curve" and (got.window.start, got.window.end) == (1.0, 9.0)
    # a hit over half of each text may take the shot (not one reaching a little into one);
    # without the guard the shot is taken
    assert choose(Window(3.0, 17.0, 1.0), b, cfg).window.end == 20.0
    assert choose(Window(5.0, 15.0, 1.0), b, cfg).granularity == "curve"
    assert choose(Window(1.0, 9.0, 1.0), b, ExtentConfig(telop_guard=False)).window.end == 20.0
    # the same telop read twice with OCR noise is one telop
    noisy = [Segment("v", 0.5, 9.0, "ocr", "CREW PORTRAITS"),
             Segment("v", 9.5, 20.0, "ocr", "CREW P0RTRAITS")]
    assert choose(Window(1.0, 9.0, 1.0), bounds([20.0], 40.0, noisy), cfg).window.end == 20.0


def test_snapping_off_and_the_order_of_preference() -> None:
    b = bounds([10.0], 20.0, [speech(2.0, 8.0)])
    hit = Window(3.0, 7.0, 0.5)
    assert choose(hit, b, ExtentConfig(use=["curve"])).window == hit
    assert choose(hit, b, ExtentConfig(use=["turn", "shot"])).window == Window(2.0, 8.0, 0.5)
    with pytest.raises(ValueError, match="twice"):
        ExtentConfig(use=["shot", "shot"])


def test_hits_snapped_to_one_shot_collapse_and_the_next_fill_in() -> None:
    b = bounds([10.0, 20.0], 30.0)
    hits = [Window(1.0, 5.0, 0.9), Window(5.0, 9.0, 0.8), Window(21.0, 25.0, 0.7)]
    got = place(hits, b, ExtentConfig(), nms_iou=0.5, max_windows=5)
    assert [(e.window, e.granularity) for e in got] == [(Window(0.0, 10.0, 0.9), "scene"),
                                                        (Window(20.0, 30.0, 0.7), "scene")]


def test_missing_boundaries_are_noted_in_the_evidence() -> None:
    ev = TextEvidence("bm25", (Snippet(1.0, 2.0, "speech", "hello"),))
    b = build_boundaries(20.0, None, [], ExtentConfig())
    times = np.arange(0, 20, 0.5)
    scores = np.where((times >= 4) & (times < 8), 1.0, 0.0)
    curve = Curve(times, scores, 20.0, 2.0, ProposalConfig(), lambda w: ev)
    moments = curve_moments("v", curve, 3, (b, ExtentConfig()))
    assert (moments[0].start, moments[0].end) == (4.0, 8.0)
    assert moments[0].evidence.to_dict()["notes"] == [NO_SHOTS]
    assert "notes" not in ev.to_dict()
    # with shots, the hit takes its shot and carries no note
    b2 = build_boundaries(20.0, Shots(20.0, [3.0, 9.0]), [], ExtentConfig())
    m2 = curve_moments("v", curve, 3, (b2, ExtentConfig()))
    assert (m2[0].start, m2[0].end) == (3.0, 9.0) and "notes" not in m2[0].evidence.to_dict()
    assert with_note(NoEvidence(note="a"), "b").to_dict()["note"] == "a; b"


def test_video_extents_without_a_store_note_missing_shots() -> None:
    ext = VideoExtents.build(ExtentConfig(), [Video(vid="v", path="missing.mp4", duration=12.0)], None,
                             {"v": [speech(1.0, 3.0)]})
    got = ext.get("v")
    assert got is not None and got.notes == [NO_SHOTS] and got.duration_s == 12.0
    assert ext.get("other") is None


def test_boundary_f1_counts_each_transition_once() -> None:
    got = boundary_f1([10.0, 10.1, 20.4, 33.0], [(10.0, 10.0), (20.0, 21.0)], tolerance_s=0.2)
    assert got["precision"] == 0.5 and got["recall"] == 1.0 and got["f1"] == pytest.approx(2 / 3)
    assert boundary_f1([], [], 0.1)["f1"] == 1.0


# -- detection on real files -------------------------------------------------------------------


def _ffmpeg(dst: Path, inputs: list[str], graph: str, extra: list[str] = ()) -> Path:  # type: ignore[assignment]
    assert FFMPEG is not None
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y"]
    for src in inputs:
        cmd += ["-f", "lavfi", "-i", src]
    cmd += ["-filter_complex", graph, *extra, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(dst)]
    subprocess.run(cmd, check=True)
    return dst


SIZE = "s=160x90:r=10"


@needs_ffmpeg
def test_hard_cuts_black_frames_and_no_cuts(tmp_path: Path) -> None:
    cuts = _ffmpeg(tmp_path / "cuts.mp4", [f"testsrc={SIZE}:d=3", f"color=c=black:{SIZE}:d=1.5",
                                          f"smptebars={SIZE}:d=3"], "[0:v][1:v][2:v]concat=n=3:v=1")
    got = detect_shots(cuts)
    assert got.cuts_s == pytest.approx([3.0, 4.5]) and got.frames == 75
    assert got.spans() == [(0.0, 3.0), (3.0, 4.5), (4.5, got.duration_s)]
    still = _ffmpeg(tmp_path / "still.mp4", [f"smptebars={SIZE}:d=4"], "[0:v]null")
    assert detect_shots(still).cuts_s == []
    assert detect_shots(cuts, ShotConfig(detector="adaptive")).cuts_s == pytest.approx([3.0, 4.5])


@needs_ffmpeg
def test_one_frame_a_flash_and_variable_frame_rate(tmp_path: Path) -> None:
    one = _ffmpeg(tmp_path / "one.mp4", [f"testsrc={SIZE}:d=1"], "[0:v]null", ["-frames:v", "1"])
    got = detect_shots(one)
    assert got.cuts_s == [] and got.frames == 1 and got.spans() == [(0.0, got.duration_s)]
    flash = _ffmpeg(tmp_path / "flash.mp4", [f"testsrc={SIZE}:d=3", f"color=c=white:{SIZE}:d=0.1",
                                             f"testsrc={SIZE}:d=3"], "[0:v][1:v][2:v]concat=n=3:v=1")
    assert len(detect_shots(flash).cuts_s) <= 1  # a one-frame flash is not two shots
    vfr = _ffmpeg(tmp_path / "vfr.mp4", [f"testsrc={SIZE}:d=3", f"smptebars={SIZE}:d=3"],
                  "[0:v][1:v]concat=n=2:v=1[v];[v]select='not(eq(mod(n\\,3)\\,1))'",
                  ["-fps_mode", "passthrough"])
    assert detect_shots(vfr).cuts_s == pytest.approx([3.0], abs=0.15)


@needs_ffmpeg
def test_a_dissolve_is_found_at_its_middle_and_a_slow_zoom_is_not(tmp_path: Path) -> None:
    dissolve = _ffmpeg(tmp_path / "dissolve.mp4", [f"color=c=0x806040:{SIZE}:d=4",
                                                  f"color=c=0x30a0d0:{SIZE}:d=4"],
                       "[0:v][1:v]xfade=transition=fade:duration=1.2:offset=3")
    # content alone misses it: no two neighbouring frames differ much
    assert detect_shots(dissolve, ShotConfig(gradual=False)).cuts_s == []
    assert detect_shots(dissolve).cuts_s == pytest.approx([3.6], abs=0.2)
    zoom = _ffmpeg(tmp_path / "zoom.mp4", ["smptebars=s=320x180:r=10:d=6"],
                   "[0:v]zoompan=z='1+0.01*on':d=1:s=160x90:fps=10")
    assert detect_shots(zoom).cuts_s == []


@needs_ffmpeg
def test_shots_are_stored_once_and_shared(tmp_path: Path) -> None:
    from bench.store import FeatureStore
    from bench.store.shots import index_shots, shots_extractor

    path = _ffmpeg(tmp_path / "cuts.mp4", [f"testsrc={SIZE}:d=2", f"smptebars={SIZE}:d=2"],
                   "[0:v][1:v]concat=n=2:v=1")
    videos = [Video(vid="a", path=str(path), duration=4.0), Video(vid="gone", path=str(tmp_path / "x.mp4"))]
    with FeatureStore(tmp_path / "store") as store:
        first = index_shots(store, videos)
        assert set(first) == {"a"} and first["a"].cuts_s == pytest.approx([2.0])
        video_id = store.video_id(path)
        assert store.status(video_id, shots_extractor(ShotConfig())) == "done"
        ext = VideoExtents.build(ExtentConfig(), videos, store)
        a, gone = ext.get("a"), ext.get("gone")
        assert a is not None and a.units["shot"] == [(0.0, 2.0), (2.0, a.duration_s)]
        assert gone is not None and gone.notes == [NO_SHOTS]
