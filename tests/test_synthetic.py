"""The synthetic scene-suite generator: synthetic-mini end to end, a tiny VFR + rotated spec,
spec checks, caching, atomic replacement, missing tools; synthetic-v1 in full behind ``slow``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from bench.datasets import BuildOptions
from bench.datasets.synthetic import builder, render
from bench.datasets.synthetic.card import render_card, spec_counts
from bench.datasets.synthetic.narration import NARRATION_LEAD_S, NARRATION_TAIL_S
from bench.datasets.synthetic.queries import load_scenes
from bench.datasets.synthetic.spec import SynthSpec, load_spec, plan, spec_path
from bench.datasets.synthetic.tools import check_tools
from bench.errors import BadInput
from bench.types import QuerySet

REAL_PATH = os.environ.get("PATH", "")

pytestmark = pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("espeak-ng")),
                                reason="needs ffmpeg and espeak-ng")


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json",
                          str(path)], capture_output=True, check=True).stdout
    doc: dict[str, Any] = json.loads(out)
    return doc


def packet_times(path: Path) -> list[float]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "packet=pts_time", "-of", "csv=p=0", str(path)],
                         capture_output=True, check=True, text=True).stdout
    return sorted(float(t.strip(",")) for t in out.split() if t.strip(","))


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture
def mini(synthetic_mini: QuerySet) -> QuerySet:
    """synthetic-mini as ``resolve_dataset`` builds it into the test cache (once per cache)."""
    return synthetic_mini


def test_mini_counts_and_fields(mini: QuerySet) -> None:
    assert mini.name == "synthetic-mini"
    assert sorted(mini.videos) == ["mini01-mission", "mini02-garden"]
    assert len(mini.queries) == 8
    assert [q.qid for q in mini.queries] == [f"syn-mini-{i:04d}" for i in range(1, 9)]
    assert {t for q in mini.queries for t in q.tags} == {"speech", "onscreen-text", "visual"}
    assert {q.lang for q in mini.queries} == {"en", "ja", "pt", "zh"}
    assert all(v.duration == 12.0 and v.path == f"videos/{v.vid}.mp4" for v in mini.videos.values())
    first = mini.queries[0]
    assert (first.query, first.vid, first.relevant_windows) == (
        "the astronaut waves from the tower", "mini01-mission", [(0.0, 6.0)])
    assert first.extra == {"scenes": [0], "corpus_windows": [["mini01-mission", 0.0, 6.0]]}
    assert mini.card is not None and "synthetic-mini" in mini.card and "CC BY 2.0" in mini.card
    meta = json.loads((mini.root / "meta.json").read_text(encoding="utf-8"))  # type: ignore[operator]
    assert meta["videos"]["mini02-garden"] == {"audio": False, "vfr": False, "rotation": 0, "scenes": 2}


def test_mini_windows_are_the_scene_intervals(mini: QuerySet) -> None:
    assert mini.root is not None
    scenes = {(r["vid"], r["scene"]): r for r in load_scenes(mini.root)}
    assert len(scenes) == 4
    for q in mini.queries:
        assert q.vid is not None and q.duration is not None
        assert q.duration == mini.videos[q.vid].duration
        expected = [(scenes[(q.vid, i)]["start"], scenes[(q.vid, i)]["end"]) for i in q.extra["scenes"]]
        assert q.relevant_windows == expected
        assert all(0 <= s < e <= q.duration for s, e in q.relevant_windows)
    for r in scenes.values():
        n = r["narration"]
        if n is not None:  # narration measured, and inside its scene with the margins
            assert r["start"] + NARRATION_LEAD_S == pytest.approx(n["start"])
            assert n["start"] < n["end"] <= r["end"] - NARRATION_TAIL_S
            assert n["end"] - n["start"] > 1.0
    assert scenes[("mini02-garden", 0)]["telop"] == {"text": "ねこカフェ 営業中", "lang": "ja"}
    assert scenes[("mini02-garden", 0)]["narration"] is None


def test_mini_files_are_h264_aac_and_the_silent_one_has_no_audio(mini: QuerySet) -> None:
    assert mini.root is not None
    for vid, video in mini.videos.items():
        info = ffprobe(mini.root / str(video.path))
        codecs = {s["codec_type"]: s["codec_name"] for s in info["streams"]}
        expected = {"video": "h264", "audio": "aac"} if vid == "mini01-mission" else {"video": "h264"}
        assert codecs == expected
        v = next(s for s in info["streams"] if s["codec_type"] == "video")
        assert (v["width"], v["height"], v["pix_fmt"]) == (640, 360, "yuv420p")
        assert float(info["format"]["duration"]) == pytest.approx(12.0, abs=0.05)
        assert info["format"]["format_name"].startswith("mov,mp4")


def test_mini_narration_is_audible_where_the_scenes_say(mini: QuerySet) -> None:
    assert mini.root is not None
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(mini.root / "videos/mini01-mission.mp4"),
                          "-f", "s16le", "-ac", "1", "-ar", "8000", "pipe:1"],
                         capture_output=True, check=True).stdout
    pcm = np.frombuffer(raw, "<i2").astype(np.float64)
    rms = [float(np.sqrt(np.mean(pcm[int(s * 8000):int(e * 8000)] ** 2)))
           for s, e in ((0.0, 0.3), (0.5, 2.5), (9.5, 12.0))]
    assert rms[1] > 500 and rms[0] < 50 and rms[2] < 50


def test_same_spec_gives_identical_bytes(mini: QuerySet, tmp_path: Path) -> None:
    assert mini.root is not None
    again = builder.build_mini(tmp_path / "mini", BuildOptions())
    assert again.root is not None
    for name in ("videos.jsonl", "queries.jsonl", "scenes.jsonl", "meta.json", "README.md",
                 "videos/mini01-mission.mp4", "videos/mini02-garden.mp4"):
        assert (again.root / name).read_bytes() == (mini.root / name).read_bytes(), name


def test_second_build_is_served_from_the_stamp(mini: QuerySet, monkeypatch: pytest.MonkeyPatch) -> None:
    assert mini.root is not None
    before = {p.name: p.stat().st_mtime_ns for p in (mini.root / "videos").iterdir()}

    def no_rebuild(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("rebuilt although the stamp matched")

    monkeypatch.setattr(builder, "_build_into", no_rebuild)
    again = builder.build_mini(mini.root, BuildOptions())
    assert [q.to_row() for q in again.queries] == [q.to_row() for q in mini.queries]
    assert {p.name: p.stat().st_mtime_ns for p in (mini.root / "videos").iterdir()} == before


def test_refuses_to_replace_a_folder_it_did_not_make(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(BadInput, match="not made by this generator"):
        builder.build_mini(out, BuildOptions())
    assert (out / "notes.txt").read_text(encoding="utf-8") == "keep me"


TINY = {
    "name": "tiny", "title": "t", "summary": "s", "qid_prefix": "tiny", "fps": 10,
    "width": 160, "height": 96,
    "voices": {"en": "en-us"}, "wpm": {"en": 150},
    "videos": [{
        "vid": "turned", "lang": "en", "vfr": True, "rotation": 90,
        "scenes": [
            {"image": "astronaut", "duration_s": 2, "telop": {"text": "UP", "lang": "en"},
             "narration": {"text": "Hello.", "lang": "en"}},
            {"image": "coffee", "duration_s": 2, "move": "pan-left"},
        ],
        "queries": [{"query": "hello", "lang": "en", "tag": "speech", "scenes": [0]},
                    {"query": "a cup", "lang": "en", "tag": "visual", "image": "coffee"}],
    }],
}


def write_spec(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_vfr_and_rotated_video_are_real(tmp_path: Path) -> None:
    qs = builder.build_from_spec(write_spec(tmp_path, TINY), tmp_path / "out")
    assert qs.root is not None
    path = qs.root / "videos/turned.mp4"
    info = ffprobe(path)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (96, 160)  # stored turned a quarter
    assert [d.get("rotation") for d in video.get("side_data_list", []) if "rotation" in d] in ([90], [-90])
    times = packet_times(path)
    gaps = set(np.round(np.diff(times), 3).tolist())
    assert len(gaps) >= 2 and min(gaps) == pytest.approx(0.1)  # irregular, on the 10 fps grid
    assert {0.0, 1.0, 2.0} <= {round(t, 3) for t in times}  # cuts keep their frame
    assert len(times) < 40
    shown = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                            "-pix_fmt", "rgb24", "pipe:1"], capture_output=True, check=True).stdout
    assert len(shown) == 160 * 96 * 3  # a rotating decoder shows it landscape again...
    spec = SynthSpec.model_validate(TINY)
    first_scene = plan(spec, 0, spec.videos[0])[0]
    expected = next(render.scene_frames(spec, first_scene))
    layer = render.overlay(spec, first_scene.spec, "here")
    assert layer is not None
    expected.paste(layer[0], layer[1], layer[0])
    want = np.asarray(expected).astype(np.int16)
    got = np.frombuffer(shown, np.uint8).reshape(96, 160, 3).astype(np.int16)
    assert np.abs(got - want).mean() < 12 < np.abs(got - want[::-1, ::-1]).mean()  # ...and upright
    assert qs.queries[1].relevant_windows == [(2.0, 4.0)]
    assert qs.videos["turned"].duration == pytest.approx(4.0, abs=0.05)


def two_videos() -> dict[str, Any]:
    doc = json.loads(json.dumps(TINY))
    doc["videos"][0].update(vfr=False, rotation=0)
    doc["videos"].append({"vid": "plain", "lang": "pt", "audio": False,
                          "scenes": [{"image": "flower", "duration_s": 1}],
                          "queries": [{"query": "uma flor", "lang": "pt", "tag": "visual",
                                       "image": "flower"}]})
    return doc


def test_limit_is_part_of_the_stamp_and_keeps_the_first_queries(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, two_videos())
    qs = builder.build_from_spec(spec, tmp_path / "out", BuildOptions(limit=1))
    assert [(q.qid, q.query) for q in qs.queries] == [("tiny-0001", "hello")]
    full = builder.build_from_spec(spec, tmp_path / "out", BuildOptions())
    assert [q.qid for q in full.queries] == ["tiny-0001", "tiny-0002", "tiny-0003"]
    assert full.queries[2].relevant_windows == [(0.0, 1.0)] and full.queries[2].vid == "plain"


def test_a_killed_rebuild_leaves_the_old_set_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = write_spec(tmp_path, two_videos())
    out = builder.build_from_spec(spec, tmp_path / "out").root
    assert out is not None
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real = builder.make_video
    calls = []

    def dies_on_second_video(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[3].vid)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the build were killed half-way
        return real(*args, **kwargs)

    monkeypatch.setattr(builder, "make_video", dies_on_second_video)
    monkeypatch.setattr(builder.os, "cpu_count", lambda: 1)  # one worker: a fixed order
    with pytest.raises(KeyboardInterrupt):
        builder.build_from_spec(spec, out, BuildOptions(force=True))
    assert calls == ["turned", "plain"]
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not list(out.parent.glob(".out.build-*"))


def test_telop_is_high_contrast_where_it_is_drawn(tmp_path: Path) -> None:
    spec = SynthSpec.model_validate(TINY)
    layer = render.overlay(spec, spec.videos[0].scenes[0], "here")
    assert layer is not None
    patch, (x, y) = layer
    alpha = np.asarray(patch)[:, :, 3]
    assert (x, y) == (5, 5) and alpha.max() == 255 and (alpha >= 200).mean() > 0.9
    assert render.overlay(spec, spec.videos[0].scenes[1], "here") is None


def with_video(**changes: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(TINY))
    doc["videos"][0].update(changes)
    return doc


@pytest.mark.parametrize(("doc", "message"), [
    (with_video(scenes=[{"image": "lena", "duration_s": 2}]), "unknown image 'lena'"),
    (with_video(scenes=[{"image": "coffee", "duration_s": 2.05}]), "whole number of frames"),
    (with_video(audio=False), "has narration but the video has audio: false"),
    (with_video(queries=[{"query": "q", "lang": "en", "tag": "speech", "scenes": [1]}]),
     "must point at narrated scenes"),
    (with_video(queries=[{"query": "q", "lang": "en", "tag": "onscreen-text", "scenes": [5]}]),
     r"indices in 0\.\.1"),
    (with_video(queries=[{"query": "q", "lang": "en", "tag": "multi", "image": "coffee",
                          "scenes": [1], "cues": ["visual", "speech"]}]), "strict subset"),
    (with_video(queries=[{"query": "q", "lang": "xx", "tag": "visual", "image": "coffee"}]),
     "field 'videos.0.queries.0.lang'"),
    (with_video(queries=[{"query": "hallo", "lang": "en", "tag": "cross-lingual", "scenes": [0]}]),
     r"language \(en\) must differ from every language spoken or written in its scenes; "
     r"scene 0 has \['en'\]"),
    (with_video(queries=[{"query": "uma xícara", "lang": "pt", "tag": "cross-lingual", "scenes": [1]}]),
     "scene 1 has none"),
])
def test_bad_specs_name_the_file_and_the_rule(tmp_path: Path, doc: dict[str, Any], message: str) -> None:
    path = write_spec(tmp_path, doc)
    with pytest.raises(BadInput, match=message) as err:
        load_spec(path)
    assert str(path) in str(err.value)


def test_a_cross_lingual_query_in_another_language_is_valid(tmp_path: Path) -> None:
    doc = with_video(queries=[{"query": "olá", "lang": "pt", "tag": "cross-lingual", "scenes": [0]}])
    spec = load_spec(write_spec(tmp_path, doc))
    assert spec.videos[0].queries[0].tag == "cross-lingual"


def test_the_languages_part_crosses_languages_and_adds_russian_and_portuguese_narration() -> None:
    spec = load_spec(spec_path("synthetic-v2"))
    crossing = [(v, q) for v in spec.videos for q in v.queries if q.tag == "cross-lingual"]
    assert len(crossing) >= 20 and {q.lang for _, q in crossing} == {"en", "ja", "zh", "ru", "pt"}
    narrated = {v.vid: {s.narration.lang for s in v.scenes if s.narration} for v in spec.videos}
    assert narrated["syn15-volga-ferry"] == {"ru"} and narrated["syn16-lisboa-rua"] == {"pt"}


def test_narration_that_cannot_fit_is_refused(tmp_path: Path) -> None:
    doc = with_video(scenes=[{"image": "coffee", "duration_s": 1.5, "narration": {
        "text": "This sentence is far too long to be spoken in one second and a half.", "lang": "en"}}],
        queries=[], vfr=False, rotation=0)
    with pytest.raises(BadInput, match="shorten the text or lengthen the scene"):
        builder.build_from_spec(write_spec(tmp_path, doc), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def fake_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep: tuple[str, ...],
              extra: dict[str, str] | None = None) -> None:
    """PATH holding only ``keep`` (linked from the real PATH) and fake scripts ``extra``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for name in keep:
        real = shutil.which(name, path=REAL_PATH)
        assert real is not None
        (bin_dir / name).symlink_to(real)
    for name, body in (extra or {}).items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


def test_missing_tools_name_the_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_spec(spec_path("synthetic-mini"))
    fake_path(tmp_path, monkeypatch, ())
    with pytest.raises(BadInput, match="Debian package 'ffmpeg'"):
        check_tools(spec)
    fake_path(tmp_path / "with-ffmpeg", monkeypatch, ("ffmpeg", "ffprobe"))
    with pytest.raises(BadInput, match="Debian package 'espeak-ng'"):
        check_tools(spec)


def test_missing_cjk_font_names_fonts_noto_cjk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dejavu = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf|0|DejaVu Sans"
    fake_path(tmp_path, monkeypatch, (), {"fc-match": f"printf '{dejavu}'"})
    render._font_path.cache_clear()
    try:
        with pytest.raises(BadInput, match="fonts-noto-cjk"):
            render._font_path("ja", True)
    finally:
        render._font_path.cache_clear()


def test_v1_spec_meets_the_brief_without_building() -> None:
    spec = load_spec(spec_path("synthetic-v1"))
    durations = [sum(s.duration_s for s in v.scenes) for v in spec.videos]
    assert len(spec.videos) >= 12 and all(30 <= d <= 90 for d in durations)
    counts = spec_counts(spec)
    n = sum(counts["tags"].values())
    assert n >= 60 and set(counts["tags"]) == {"speech", "onscreen-text", "visual", "multi"}
    assert n - counts["langs"]["en"] >= n / 3 and {"ja", "zh", "ru", "pt"} <= set(counts["langs"])
    assert counts["features"]["variable frame rate"] == 1
    assert counts["features"]["rotated (display matrix)"] == 1
    assert counts["features"]["without audio"] >= 2
    spoken = {s.narration.lang for v in spec.videos for s in v.scenes if s.narration}
    shown = {t.lang for v in spec.videos for s in v.scenes for t in (s.telop, s.caption) if t}
    assert spoken == shown == {"en", "ja", "zh", "ru", "pt"}
    english = [v for v in spec.videos if v.audio and all(s.narration is None or s.narration.lang == "en"
                                                           for s in v.scenes)]
    assert len(english) >= 4  # enough clear English narration for Whisper tiny.en


@pytest.mark.parametrize("name", ["synthetic-v1", "synthetic-v2", "synthetic-actions-v1",
                                  "synthetic-mood-v1"])
def test_committed_card_matches_the_generator(name: str) -> None:
    path = spec_path(name)
    card = (path.parent / "README.md").read_text(encoding="utf-8")
    assert card == render_card(load_spec(path), path), \
        f"regenerate datasets/{name}/README.md with bench.datasets.synthetic.card.render_card"


def test_v2_keeps_every_video_and_query_of_v1() -> None:
    v1, v2 = load_spec(spec_path("synthetic-v1")), load_spec(spec_path("synthetic-v2"))
    by_vid = {v.vid: v for v in v2.videos}
    for v in v1.videos:
        assert by_vid[v.vid].scenes == v.scenes
        assert by_vid[v.vid].queries[:len(v.queries)] == v.queries


def test_parts_add_videos_and_queries_and_change_the_stamp(tmp_path: Path) -> None:
    doc = yaml.safe_load(spec_path("synthetic-mini").read_text(encoding="utf-8"))
    doc["parts"] = ["more.yaml"]
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    first = doc["videos"][0]
    extra_query = {"query": "the first scene again", "lang": "en", "tag": "visual", "scenes": [0]}
    new_video = {**first, "vid": "extra", "queries": [],
                 "scenes": [{"image": "coffee", "duration_s": 2.0}]}
    part = tmp_path / "more.yaml"
    part.write_text(yaml.safe_dump({"videos": [new_video], "queries": {first["vid"]: [extra_query]}}),
                    encoding="utf-8")
    spec = load_spec(spec_file)
    assert [v.vid for v in spec.videos][-1] == "extra"
    assert spec.videos[0].queries[-1].query == "the first scene again"
    stamp = builder.build_stamp(spec_file, BuildOptions())
    part.write_text(yaml.safe_dump({"videos": [new_video]}), encoding="utf-8")
    assert builder.build_stamp(spec_file, BuildOptions()) != stamp
    part.write_text(yaml.safe_dump({"queries": {"nobody": [extra_query]}}), encoding="utf-8")
    with pytest.raises(BadInput, match=r"more\.yaml: queries for unknown video 'nobody'"):
        load_spec(spec_file)
    part.write_text(yaml.safe_dump({"scenes": []}), encoding="utf-8")
    with pytest.raises(BadInput, match=r"more\.yaml: a part holds only"):
        load_spec(spec_file)


def test_v1_builds_as_specified(synthetic_v1: QuerySet) -> None:
    # In the default run: the regression gate builds synthetic-v1 anyway, so this costs only
    # the probes. Rebuilding it to compare bytes takes minutes: that half is behind ``slow``.
    qs = synthetic_v1
    assert qs.root is not None
    assert len(qs.videos) >= 12 and len(qs.queries) >= 60
    assert sum(q.lang != "en" for q in qs.queries) >= len(qs.queries) / 3
    assert {t for q in qs.queries for t in q.tags} == {"speech", "onscreen-text", "visual", "multi"}
    vfr, turned, silent = [], [], []
    for vid, video in qs.videos.items():
        path = qs.root / str(video.path)
        info = ffprobe(path)
        assert 30 <= float(info["format"]["duration"]) <= 90
        assert video.duration == pytest.approx(float(info["format"]["duration"]), abs=1e-3)
        v = next(s for s in info["streams"] if s["codec_type"] == "video")
        assert v["codec_name"] == "h264"
        if not any(s["codec_type"] == "audio" for s in info["streams"]):
            silent.append(vid)
        if any("rotation" in d for d in v.get("side_data_list", [])):
            turned.append(vid)
        if len(set(np.round(np.diff(packet_times(path)), 3).tolist())) > 1:
            vfr.append(vid)
    assert len(vfr) == 1 and len(turned) == 1 and len(silent) >= 2
    for q in qs.queries:
        assert q.vid is not None and q.duration is not None
        assert all(0 <= s < e <= q.duration for s, e in q.relevant_windows)
    scenes = load_scenes(qs.root)
    assert all(r["narration"] is None or r["start"] < r["narration"]["start"] < r["narration"]["end"]
               <= r["end"] for r in scenes)


V1_HARD = ("syn08-aldergrove-coins", "syn10-orion-launch", "syn11-brightwater-open-day")
"""v1 videos the generator finds hardest to make the same way twice: replaced audio, VFR, and
the rotated one (its portrait frames made x264's frame threads give different bytes run to run
until it was encoded on one thread)."""


def test_v1_hard_videos_rebuild_to_the_same_bytes(tmp_path: Path) -> None:
    # The determinism check in the default run: a spec of v1's hardest videos alone, built twice,
    # equal byte for byte (a fraction of a full v1 rebuild, which stays behind ``slow``). Not
    # compared with the full build: camera moves are dealt out over the whole spec.
    spec = yaml.safe_load(spec_path("synthetic-v1").read_text(encoding="utf-8"))
    spec["videos"] = [v for v in spec["videos"] if v["vid"] in V1_HARD]
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    first = builder.build_from_spec(spec_file, tmp_path / "a", BuildOptions())
    again = builder.build_from_spec(spec_file, tmp_path / "b", BuildOptions())
    assert first.root is not None and again.root is not None
    assert sorted(again.videos) == sorted(V1_HARD)
    names = ["videos.jsonl", "queries.jsonl", "scenes.jsonl",
             *(str(v.path) for v in first.videos.values())]
    for name in names:
        assert (again.root / name).read_bytes() == (first.root / name).read_bytes(), name


@pytest.mark.slow
def test_v1_rebuilds_to_the_same_bytes(synthetic_v1: QuerySet, tmp_path: Path) -> None:
    qs = synthetic_v1
    assert qs.root is not None
    again = builder.build(tmp_path / "v1", BuildOptions())
    assert again.root is not None
    for name in ("videos.jsonl", "queries.jsonl", "scenes.jsonl"):
        assert (again.root / name).read_bytes() == (qs.root / name).read_bytes(), name


# -- transitions and events (synthetic-v2's extent part, synthetic-actions-v1) -----------------

MOTION = {
    "name": "motion", "title": "t", "summary": "s", "qid_prefix": "mo", "fps": 10, "width": 160,
    "height": 96, "voices": {"en": "en-us"}, "wpm": {"en": 150},
    "videos": [{"vid": "moves", "lang": "en", "audio": False, "scenes": [
        {"image": "coffee", "duration_s": 2},
        {"image": "horse", "duration_s": 2, "enter": "dissolve", "enter_s": 1},
        {"image": "rocket", "duration_s": 2, "enter": "fade", "enter_s": 1},
        {"image": "brick", "duration_s": 4, "events": [
            {"at_s": 1, "duration_s": 2, "inset": "chelsea"},
            {"at_s": 2.5, "duration_s": 1, "telop": {"text": "NOW", "lang": "en"}}]},
    ], "queries": [{"query": "a cat in the corner", "lang": "en", "tag": "visual", "event": [3, 0]},
                   {"query": "now", "lang": "en", "tag": "onscreen-text", "event": [3, 1]}]}],
}


def decoded(path: Path) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24",
                          "pipe:1"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, 96, 160, 3).astype(np.float32)


def test_transitions_and_events_are_drawn_where_the_truth_says(tmp_path: Path) -> None:
    qs = builder.build_from_spec(write_spec(tmp_path, MOTION), tmp_path / "out")
    assert qs.root is not None
    scenes = load_scenes(qs.root)
    assert [r["enter"] for r in scenes] == [
        {"kind": "cut", "start": 0.0, "end": 0.0}, {"kind": "dissolve", "start": 2.0, "end": 3.0},
        {"kind": "fade", "start": 3.5, "end": 4.5}, {"kind": "cut", "start": 6.0, "end": 6.0}]
    assert scenes[3]["events"] == [{"kind": "inset", "start": 7.0, "end": 9.0, "image": "chelsea"},
                                   {"kind": "telop", "start": 8.5, "end": 9.5, "text": "NOW", "lang": "en"}]
    assert [q.relevant_windows for q in qs.queries] == [[(7.0, 9.0)], [(8.5, 9.5)]]
    frames = decoded(qs.root / "videos/moves.mp4")
    assert frames.shape[0] == 100
    brightness = frames.mean(axis=(1, 2, 3))
    assert brightness[39] < 8 and brightness[40] < 8 < brightness[35]  # dipped to black at the cut
    # halfway through the dissolve, the frame sits between the held coffee and the horse
    mid, before, after = frames[24], frames[19], frames[30]
    assert np.abs(mid - before).mean() > 10 and np.abs(mid - after).mean() > 10
    patch, (x, y) = render.inset(SynthSpec.model_validate(MOTION), "chelsea")
    want = np.asarray(patch.convert("RGB"), dtype=np.float32)
    region = (slice(y, y + patch.height), slice(x, x + patch.width))
    assert np.abs(frames[75][region] - want).mean() < 15  # the inset is up during its event...
    assert np.abs(frames[65][region] - want).mean() > 30 < np.abs(frames[95][region] - want).mean()


@pytest.mark.parametrize(("change", "message"), [
    ({"scenes": [{"image": "coffee", "duration_s": 2, "enter": "fade"}]}, "first scene cannot enter"),
    ({"scenes": [{"image": "coffee", "duration_s": 2},
                 {"image": "horse", "duration_s": 2, "enter": "dissolve", "enter_s": 1.5}]},
     "longer than half"),
    ({"scenes": [{"image": "coffee", "duration_s": 2,
                  "events": [{"at_s": 1, "duration_s": 2, "inset": "horse"}]}]},
     "ends after its scene"),
    ({"scenes": [{"image": "coffee", "duration_s": 4, "events": [{"at_s": 1, "duration_s": 2}]}]},
     "exactly one of"),
    ({"queries": [{"query": "q", "lang": "en", "tag": "speech", "event": [3, 0]}]},
     "found by a visual query"),
    ({"queries": [{"query": "q", "lang": "en", "tag": "visual", "event": [0, 0]}]}, "names no event"),
])
def test_bad_transitions_and_events_are_refused(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    doc = json.loads(json.dumps(MOTION))
    doc["videos"][0].update(change)
    if "scenes" in change:
        doc["videos"][0]["queries"] = []
    with pytest.raises(BadInput, match=message):
        load_spec(write_spec(tmp_path, doc))


def test_actions_set_has_short_actions_inside_long_shots() -> None:
    spec = load_spec(spec_path("synthetic-actions-v1"))
    for v in spec.videos:
        scenes = plan(spec, 0, v)
        assert all(s.spec.duration_s >= 20 for s in scenes)
        for q in v.queries:
            assert q.event is not None
            event = v.scenes[q.event[0]].events[q.event[1]]
            assert 3 <= event.duration_s <= 8
    assert sum(len(v.queries) for v in spec.videos) >= 12
