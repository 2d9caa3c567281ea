"""Dataset adapters (QVHighlights, Charades-STA, ActivityNet, TACoS, TVR, JSONL/CSV) and HF import/export."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.datasets import (
    BUILDERS,
    BuildOptions,
    activitynet,
    charades_sta,
    hf,
    jsonl,
    qvhighlights,
    tacos,
    tvr,
)
from bench.datasets.io import load_query_set
from bench.errors import BadInput
from bench.types import Query, QuerySet, Video

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
QVH_VAL = SHARED / "qvhighlights" / "highlight_val_release.jsonl"
CHARADES_TEST = SHARED / "charades_sta" / "charades_test_release.jsonl"


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_every_adapter_is_registered() -> None:
    expected = {"qvhighlights": qvhighlights.build, "charades-sta": charades_sta.build,
                "activitynet": activitynet.build, "tacos": tacos.build, "tvr": tvr.build,
                "jsonl": jsonl.build_jsonl, "csv": jsonl.build_csv, "hf": hf.build}
    for name, func in expected.items():
        assert BUILDERS.get(name) is func


# ----------------------------------------------------------------------------- QVHighlights


def test_qvhighlights_real_rows_keep_every_field() -> None:
    if not QVH_VAL.is_file():
        pytest.skip(f"{QVH_VAL} not present")
    source = rows_of(QVH_VAL)
    qs = qvhighlights.convert(QVH_VAL)
    assert len(qs.queries) == len(source) == 1550
    assert len(qs.videos) == len({r["vid"] for r in source})
    first = qs.queries[0]
    assert first.qid == 2579 and first.vid == "NUsG9BgSes0_210.0_360.0"
    assert first.relevant_windows == [(82.0, 150.0)]
    assert first.relevant_clip_ids is not None and first.relevant_clip_ids[:3] == [41, 42, 43]
    assert first.saliency_scores is not None and first.saliency_scores[0] == [1, 1, 2]
    for row, query in zip(source, qs.queries, strict=True):
        assert query.to_row() == {**row, "lang": "en"}


def test_qvhighlights_fixture_build_finds_videos(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "abcDEF12345_60.0_210.0.mp4").write_bytes(b"")
    (videos / "abcDEF12345_60.0_210.0.avi").write_bytes(b"")  # mp4 is preferred
    out = tmp_path / "qvh"
    qs = qvhighlights.build(out, BuildOptions(input=FIXTURES / "highlight_val_mini.jsonl", videos=videos))
    assert qs.split == "val"
    assert [q.qid for q in qs.queries] == [101, 102, 103]
    assert qs.queries[2].relevant_windows == [(0.0, 4.0), (10.0, 14.0)]
    assert qs.videos["abcDEF12345_60.0_210.0"].path == str((videos / "abcDEF12345_60.0_210.0.mp4").resolve())
    assert qs.videos["xyzXYZ98765_0.0_150.0"].path is None
    loaded = load_query_set(out)
    assert [q.to_row() for q in loaded.queries] == [q.to_row() for q in qs.queries]
    assert loaded.split == "val"
    assert loaded.card is not None and "QVHighlights" in loaded.card


def test_limit_keeps_first_queries_and_their_videos(tmp_path: Path) -> None:
    qs = qvhighlights.build(tmp_path / "o", BuildOptions(input=FIXTURES / "highlight_val_mini.jsonl",
                                                         limit=1, split="mine"))
    assert [q.qid for q in qs.queries] == [101]
    assert list(qs.videos) == ["abcDEF12345_60.0_210.0"]
    assert qs.split == "mine"


def test_bad_rows_name_file_line_and_field(tmp_path: Path) -> None:
    good = rows_of(FIXTURES / "highlight_val_mini.jsonl")
    dup = write(tmp_path, "dup.jsonl", "\n".join(json.dumps(r) for r in [good[0], good[1], good[0]]))
    first_at = r"\(first at .*dup\.jsonl:1\)"
    with pytest.raises(BadInput, match=rf"dup\.jsonl:3: field 'qid': duplicate qid 101 {first_at}"):
        qvhighlights.convert(dup)
    bad = {**good[0], "relevant_windows": [[30, 20]]}
    path = write(tmp_path, "rev.jsonl", json.dumps(good[1]) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(BadInput, match=r"rev\.jsonl:2: field 'relevant_windows\[0\]': end <= start"):
        qvhighlights.convert(path)
    missing = {k: v for k, v in good[0].items() if k != "query"}
    with pytest.raises(BadInput, match=r"miss\.jsonl:1: field 'query': is required"):
        qvhighlights.convert(write(tmp_path, "miss.jsonl", json.dumps(missing)))
    latin = write(tmp_path, "latin.jsonl", json.dumps(good[1]).encode() + b"\n" +
                  json.dumps(good[0]).replace("mug", "m\xfcg").encode("latin-1"))
    with pytest.raises(BadInput, match=r"latin\.jsonl:2: not valid UTF-8"):
        qvhighlights.convert(latin)
    conflict = {**good[2], "duration": 120}
    path = write(tmp_path, "dur.jsonl", json.dumps(good[0]) + "\n" + json.dumps(conflict) + "\n")
    with pytest.raises(BadInput, match=r"dur\.jsonl:2: field 'duration': 120s for vid .* but 150s"):
        qvhighlights.convert(path)


def test_non_utf8_files_name_the_line(tmp_path: Path) -> None:
    json_bytes = b'{\n "v_a": {"duration": 5, "timestamps": [[1, 2]],\n "sentences": ["caf\xe9"]}}'
    with pytest.raises(BadInput, match=r"a\.json:3: not valid UTF-8"):
        activitynet.convert(write(tmp_path, "a.json", json_bytes))
    with pytest.raises(BadInput, match=r"b\.csv:3: not valid UTF-8"):
        jsonl.parse_csv(write(tmp_path, "b.csv", b"video,sentence,t0,t1\nv,ok,1,2\nv,caf\xe9,1,2\n"), CSV_MAP)
    with pytest.raises(BadInput, match=r"c\.txt:2: not valid UTF-8"):
        charades_sta.convert(write(tmp_path, "c.txt", b"AB12C 0 1##ok\nAB12C 0 1##caf\xe9\n"))


def test_missing_input_is_actionable(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"builder 'tvr' needs .*: pass --input PATH"):
        tvr.build(tmp_path / "o", BuildOptions())
    with pytest.raises(BadInput, match="nope.jsonl: not found"):
        tvr.build(tmp_path / "o", BuildOptions(input=tmp_path / "nope.jsonl"))
    with pytest.raises(BadInput, match="videos folder not found"):
        tvr.build(tmp_path / "o", BuildOptions(input=FIXTURES / "tvr_val_mini.jsonl", videos=tmp_path / "v"))


# ----------------------------------------------------------------------------- Charades-STA


def test_charades_real_jsonl_rows() -> None:
    if not CHARADES_TEST.is_file():
        pytest.skip(f"{CHARADES_TEST} not present")
    source = rows_of(CHARADES_TEST)
    qs = charades_sta.convert(CHARADES_TEST)
    assert len(qs.queries) == len(source) == 3720
    first = qs.queries[0]
    assert (first.qid, first.query, first.vid) == (12404, "person turn a light on.", "3MSZA")
    assert first.duration == 30.96 and first.relevant_windows == [(24.3, 30.4)]
    assert qs.videos["3MSZA"].duration == 30.96
    for row, query in zip(source, qs.queries, strict=True):
        assert query.to_row() == {**row, "lang": "en"}


def test_charades_text_with_durations_csv(tmp_path: Path) -> None:
    folder = FIXTURES / "charades"
    durations = charades_sta.read_durations(folder / "Charades_v1_test.csv")
    assert durations == {"AB12C": 30.25, "XY34Z": 32.0}
    qs = charades_sta.convert(folder / "charades_sta_test.txt", durations=durations)
    assert [q.qid for q in qs.queries] == ["AB12C#0", "AB12C#1", "XY34Z#0"]
    assert qs.queries[1].query == "person opens the door."
    assert qs.queries[1].relevant_windows == [(5.2, 12.1)]
    assert qs.queries[2].duration == 32.0
    assert qs.queries[2].relevant_windows == [(11.0, 32.0)]  # clipped to the video
    # the builder finds the csv beside the input on its own
    built = charades_sta.build(tmp_path / "c", BuildOptions(input=folder / "charades_sta_test.txt"))
    assert built.split == "test"
    assert built.videos["XY34Z"].duration == 32.0


def test_charades_text_without_durations_keeps_windows_unclipped() -> None:
    qs = charades_sta.convert(FIXTURES / "charades" / "charades_sta_test.txt")
    assert all(q.duration is None for q in qs.queries)
    assert qs.queries[2].relevant_windows == [(11.0, 35.5)]
    assert qs.videos["XY34Z"].duration is None


def test_charades_text_durations_by_probing_videos(tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    videos = tmp_path / "videos"
    videos.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=red:s=32x32:d=3",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(videos / "AB12C.mp4")], check=True)
    text = write(tmp_path, "sta.txt", "AB12C 0.5 2.0##a person waves.\nAB12C 1.0 4.0##a person sits.\n"
                                      "QQ000 1.0 4.0##no video for this one.\n")
    qs = charades_sta.convert(text, videos=videos)
    assert qs.queries[0].duration == pytest.approx(3.0, abs=0.05)
    assert qs.queries[1].relevant_windows[0] == pytest.approx((1.0, 3.0), abs=0.05)
    assert qs.videos["AB12C"].path == str((videos / "AB12C.mp4").resolve())
    assert qs.queries[2].duration is None and qs.queries[2].relevant_windows == [(1.0, 4.0)]


def test_charades_text_errors(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"a\.txt:2: expected 'VIDEO_ID START END##sentence'"):
        charades_sta.convert(write(tmp_path, "a.txt", "AB12C 0 1##ok\nAB12C 0 1 sentence\n"))
    with pytest.raises(BadInput, match=r"b\.txt:1: field 'end': end <= start \(4 >= 2\)"):
        charades_sta.convert(write(tmp_path, "b.txt", "AB12C 4 2##backwards\n"))
    with pytest.raises(BadInput, match=r"c\.txt:1: field 'start/end': must be numbers"):
        charades_sta.convert(write(tmp_path, "c.txt", "AB12C x 2##text\n"))
    with pytest.raises(BadInput, match=r"d\.csv:1: no 'length' column"):
        charades_sta.read_durations(write(tmp_path, "d.csv", "id,subject\nAB12C,x\n"))
    with pytest.raises(BadInput, match=r"e\.csv:2: field 'length': must be a number"):
        charades_sta.read_durations(write(tmp_path, "e.csv", "id,length\nAB12C,long\n"))


# ----------------------------------------------------------------------------- ActivityNet, TACoS


def test_activitynet_one_query_per_sentence(tmp_path: Path) -> None:
    videos = tmp_path / "v"
    videos.mkdir()
    (videos / "abc123.mkv").write_bytes(b"")  # stored without the v_ prefix
    qs = activitynet.convert(FIXTURES / "activitynet_val_mini.json", videos)
    assert [q.qid for q in qs.queries] == ["v_abc123#0", "v_abc123#1", "v_abc123#2", "v_def456#0"]
    q = qs.queries[1]
    assert q.query == "He plays the bagpipes while walking."
    assert (q.vid, q.duration, q.relevant_windows) == ("v_abc123", 82.73, [(17.37, 60.81)])
    assert qs.queries[2].relevant_windows == [(56.26, 82.73)]
    assert qs.videos["v_abc123"].path == str((videos / "abc123.mkv").resolve())
    assert qs.videos["v_def456"].path is None


def test_activitynet_errors_point_at_the_video_entry(tmp_path: Path) -> None:
    data = {"v_ok": {"duration": 10.0, "timestamps": [[1, 2]], "sentences": ["fine"]},
            "v_bad": {"duration": 10.0, "timestamps": [[1, 2], [5, 3]], "sentences": ["a", "b"]}}
    path = write(tmp_path, "anet.json", json.dumps(data, indent=2))
    where = r"anet\.json:14 \(video 'v_bad'\)"
    with pytest.raises(BadInput, match=rf"{where}: field 'timestamps\[1\]': end <= start"):
        activitynet.convert(path)
    data["v_bad"] = {"duration": 10.0, "timestamps": [[1, 2]], "sentences": ["a", "b"]}
    with pytest.raises(BadInput, match=r"field 'sentences': has 2 items but timestamps has 1"):
        activitynet.convert(write(tmp_path, "b.json", json.dumps(data)))
    data["v_bad"] = {"timestamps": [[1, 2]], "sentences": ["a"]}
    with pytest.raises(BadInput, match=r"c\.json:1 \(video 'v_bad'\): field 'duration': is required"):
        activitynet.convert(write(tmp_path, "c.json", json.dumps(data)))
    with pytest.raises(BadInput, match=r"d\.json:3: invalid JSON"):
        activitynet.convert(write(tmp_path, "d.json", '{\n "v": {"duration": 1,\n }\n}'))


def test_tacos_frames_become_seconds() -> None:
    qs = tacos.convert(FIXTURES / "tacos_test_mini.json")
    assert [q.qid for q in qs.queries] == ["s13-d21#0", "s13-d21#1", "s22-d55#0"]
    assert qs.queries[0].relevant_windows == [(0.0, pytest.approx(10.0))]
    assert qs.queries[1].relevant_windows[0] == pytest.approx((10.0, 30.0))
    assert qs.videos["s13-d21"].duration == pytest.approx(3000 / 29.4)
    assert qs.queries[2].relevant_windows[0] == pytest.approx((5.0, 50.0))
    assert qs.queries[2].duration == pytest.approx(50.0)


def test_tacos_bad_fps(tmp_path: Path) -> None:
    data = {"s1.avi": {"num_frames": 100, "fps": 0, "timestamps": [[0, 10]], "sentences": ["x"]}}
    with pytest.raises(BadInput, match=r"field 'fps': must be a positive number"):
        tacos.convert(write(tmp_path, "t.json", json.dumps(data)))


# ----------------------------------------------------------------------------- TVR


def test_tvr_queries_are_corpus_queries(tmp_path: Path) -> None:
    out = tmp_path / "tvr"
    qs = tvr.build(out, BuildOptions(input=FIXTURES / "tvr_val_mini.jsonl"))
    assert qs.split == "val"
    q0, q1, q2 = qs.queries
    assert q0.vid is None and q0.is_corpus
    assert q0.extra["truth_vid"] == "friends_s01e03_seg02_clip_19"
    assert (q0.qid, q0.duration, q0.relevant_windows, q0.tags) == (90200, 61.46, [(16.48, 33.87)], ["visual"])
    assert q1.tags == ["speech", "subtitle"]
    assert q2.tags == ["visual", "speech", "subtitle", "multi"]
    assert q2.relevant_windows == [(2.0, 88.2)]
    assert {v: x.duration for v, x in qs.videos.items()} == {
        "friends_s01e03_seg02_clip_19": 61.46, "bbt_s02e05_seg01_clip_03": 88.2}
    loaded = load_query_set(out)
    assert all(q.vid is None for q in loaded.queries)
    assert [q.extra["truth_vid"] for q in loaded.queries] == [q.extra["truth_vid"] for q in qs.queries]
    limited = tvr.build(tmp_path / "l", BuildOptions(input=FIXTURES / "tvr_val_mini.jsonl", limit=1))
    assert list(limited.videos) == ["friends_s01e03_seg02_clip_19"]


def test_tvr_bad_rows(tmp_path: Path) -> None:
    row = {"desc_id": 1, "desc": "x", "vid_name": "v", "duration": 10.0, "ts": [1, 2], "type": "v"}
    with pytest.raises(BadInput, match=r"a\.jsonl:1: field 'vid_name': is required"):
        tvr.convert(write(tmp_path, "a.jsonl", json.dumps({k: v for k, v in row.items() if k != "vid_name"})))
    with pytest.raises(BadInput, match=r"b\.jsonl:1: field 'type': must be one of v, t, vt"):
        tvr.convert(write(tmp_path, "b.jsonl", json.dumps({**row, "type": "x"})))
    with pytest.raises(BadInput, match=r"c\.jsonl:1: field 'ts\[0\]': end <= start"):
        tvr.convert(write(tmp_path, "c.jsonl", json.dumps({**row, "ts": [5, 5]})))


# ----------------------------------------------------------------------------- generic JSONL / CSV

CSV_MAP = {"query": "sentence", "start": "t0", "end": "t1", "vid": "video"}


def test_csv_with_column_mapping(tmp_path: Path) -> None:
    qs = jsonl.parse_csv(FIXTURES / "generic_mini.csv", CSV_MAP)
    assert [q.qid for q in qs.queries] == [1, 2, 3]
    q = qs.queries[1]
    assert q.query == "someone sits down, then stands up"
    assert (q.vid, q.relevant_windows) == ("clipA", [(4.0, 9.5)])
    assert q.extra == {"note": "second"}
    assert qs.queries[2].extra == {}
    assert set(qs.videos) == {"clipA", "clipB"}
    out = tmp_path / "csvset"
    built = jsonl.build_csv(out, BuildOptions(input=FIXTURES / "generic_mini.csv", columns=CSV_MAP))
    assert [x.to_row() for x in load_query_set(out).queries] == [x.to_row() for x in built.queries]


def test_jsonl_with_windows_column() -> None:
    cols = {"qid": "id", "query": "text", "vid": "video", "windows": "span", "duration": "len"}
    qs = jsonl.parse_jsonl(FIXTURES / "generic_mini.jsonl", cols)
    q0, q1 = qs.queries
    assert (q0.qid, q0.query, q0.duration) == ("g1", "a cat jumps onto the sofa", 20.0)
    assert q0.relevant_windows == [(2.0, 4.5), (10.0, 12.0)]
    assert q0.extra == {"source": "crowd"}
    assert q1.relevant_windows == [(14.0, 19.5)]
    assert qs.videos["clipC"].duration == 20.0


def test_generic_errors_name_the_input_column(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"mapped column\(s\) not in the header: start=begin"):
        jsonl.parse_csv(FIXTURES / "generic_mini.csv", {**CSV_MAP, "start": "begin", "end": "t1"})
    with pytest.raises(BadInput, match=r"unknown field\(s\) in the column mapping: when"):
        jsonl.parse_csv(FIXTURES / "generic_mini.csv", {"when": "t0"})
    with pytest.raises(BadInput, match="names only one of start/end"):
        jsonl.parse_csv(FIXTURES / "generic_mini.csv", {"start": "t0"})
    bad = write(tmp_path, "bad.csv", "video,sentence,t0,t1\nclipA,ok,1,2\nclipA,backwards,5,3\n")
    with pytest.raises(BadInput, match=r"bad\.csv:3: field 't0/t1': end <= start \(5 >= 3\)"):
        jsonl.parse_csv(bad, CSV_MAP)
    nan = write(tmp_path, "nan.csv", "video,sentence,t0,t1\nclipA,ok,one,2\n")
    with pytest.raises(BadInput, match=r"nan\.csv:2: field 't0': must be a number"):
        jsonl.parse_csv(nan, CSV_MAP)
    rows = write(tmp_path, "r.jsonl",
                 '{"text": "x", "video": "v", "span": [[1, 2]]}\n{"video": "v", "span": []}\n')
    with pytest.raises(BadInput, match=r"r\.jsonl:2: field 'text': is missing \(mapped to 'query'\)"):
        jsonl.parse_jsonl(rows, {"query": "text", "vid": "video", "windows": "span"})
    past = write(tmp_path, "p.jsonl", '{"text": "x", "video": "v", "span": [[30, 40]], "len": 20}\n')
    with pytest.raises(BadInput, match=r"p\.jsonl:1: field 'span\[0\]': starts at 30s, past the duration"):
        jsonl.parse_jsonl(past, {"query": "text", "vid": "video", "windows": "span", "duration": "len"})
    nowin = write(tmp_path, "n.jsonl", '{"query": "x", "vid": "v"}\n')
    with pytest.raises(BadInput, match=r"n\.jsonl:1: no time window"):
        jsonl.parse_jsonl(nowin)
    dup = write(tmp_path, "d.jsonl", '{"qid": 7, "query": "x", "vid": "v", "start": 1, "end": 2}\n' * 2)
    with pytest.raises(BadInput, match=r"d\.jsonl:2: field 'qid': duplicate qid 7"):
        jsonl.parse_jsonl(dup)


def test_generic_corpus_query_and_identity_mapping() -> None:
    rows = [(1, {"query": "find it", "truth_vid": "v9", "start": 1, "end": 3, "duration": 10})]
    collector = jsonl.convert_rows(rows, Path("mem.jsonl"), jsonl.FIELDS)
    (q,) = collector.queries
    assert q.vid is None and q.extra == {"truth_vid": "v9"} and q.qid == 1
    assert collector.videos["v9"].duration == 10.0


# ----------------------------------------------------------------------------- Hugging Face datasets


def mixed_set() -> QuerySet:
    queries = [
        Query(qid="a", query="grounded", vid="v1", duration=10.0, relevant_windows=[(1.0, 2.5), (4.0, 5.0)],
              lang="en", tags=["speech", "subtitle"], extra={"note": {"k": [1, 2]}}),
        Query(qid="b", query="corpus", vid=None, duration=20.0, relevant_windows=[(3.0, 9.0)],
              relevant_clip_ids=[1, 2], saliency_scores=[[1, 2, 3], [4, 4, 4]], extra={"truth_vid": "v2"}),
        Query(qid="c", query="", vid="v1", duration=10.0, relevant_windows=[], query_image="img/q.png"),
    ]
    videos = {"v1": Video("v1", "/data/v1.mp4", 10.0, subtitles="/data/v1.srt", lang="en"),
              "v2": Video("v2", None, 20.0)}
    return QuerySet(name="mixed", videos=videos, queries=queries, split="dev", card="# Mixed\n")


def test_hf_round_trip_is_identical(tmp_path: Path) -> None:
    qs = mixed_set()
    dd = hf.to_hf(qs)
    assert set(dd) == {"queries", "videos"}
    assert dd["queries"][0]["relevant_windows"] == [[1.0, 2.5], [4.0, 5.0]]
    path = hf.export_hf(qs, tmp_path / "export")
    assert (path / "README.md").read_text(encoding="utf-8") == "# Mixed\n"
    back = hf.import_hf(path)
    assert (back.name, back.split) == ("mixed", "dev")
    assert [q.to_row() for q in back.queries] == [q.to_row() for q in qs.queries]
    assert [v.to_row() for v in back.videos.values()] == [v.to_row() for v in qs.videos.values()]


def test_hf_round_trip_of_real_qvhighlights(tmp_path: Path) -> None:
    if not QVH_VAL.is_file():
        pytest.skip(f"{QVH_VAL} not present")
    qs = qvhighlights.convert(QVH_VAL)
    back = hf.import_hf(hf.export_hf(qs, tmp_path / "qvh"))
    assert [q.to_row() for q in back.queries] == [q.to_row() for q in qs.queries]
    assert isinstance(back.queries[0].qid, int)


def test_hf_build_and_json_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets.config

    # load_dataset caches what it converts; keep that inside the test's folder
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    export = hf.export_hf(mixed_set(), tmp_path / "export")
    built = hf.build(tmp_path / "set", BuildOptions(input=export))
    assert built.split == "dev"
    assert [q.to_row() for q in load_query_set(tmp_path / "set").queries] == \
        [q.to_row() for q in mixed_set().queries]
    cols = {"qid": "id", "query": "text", "vid": "video", "windows": "span", "duration": "len"}
    qs = hf.import_hf(FIXTURES / "generic_mini.jsonl", columns=cols)
    assert [q.qid for q in qs.queries] == ["g1", "g2"]
    assert qs.queries[0].relevant_windows == [(2.0, 4.5), (10.0, 12.0)]
    with pytest.raises(BadInput, match=r"mapped column\(s\) not in the table: query=sentence"):
        hf.import_hf(FIXTURES / "generic_mini.jsonl", columns={**cols, "query": "sentence"})


def test_hf_foreign_dataset_dict_picks_a_split(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    def table(prefix: str) -> Dataset:
        return Dataset.from_list([{"id": f"{prefix}1", "sentence": "a dog barks", "video": "v1",
                                   "t0": 1.0, "t1": 2.5, "length": 9.0}])

    path = tmp_path / "foreign"
    DatasetDict({"train": table("tr"), "test": table("te")}).save_to_disk(str(path))
    cols = {"qid": "id", "query": "sentence", "vid": "video", "start": "t0", "end": "t1",
            "duration": "length"}
    qs = hf.import_hf(path, split="test", columns=cols)
    assert qs.split == "test"
    assert [(q.qid, q.relevant_windows, q.duration) for q in qs.queries] == [("te1", [(1.0, 2.5)], 9.0)]
    with pytest.raises(BadInput, match="holds splits train, test; choose one with --split"):
        hf.import_hf(path, columns=cols)


def test_hf_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets.config
    import huggingface_hub.constants

    # never reach for the network, even where HF_HUB_OFFLINE was not set before import
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    qs = mixed_set()
    qs.queries[0].qid = 5
    with pytest.raises(BadInput, match="mixes integer and string qids"):
        hf.to_hf(qs)
    with pytest.raises(BadInput, match=r"x\.txt: unsupported file type"):
        hf.import_hf(write(tmp_path, "x.txt", "hello"))
    with pytest.raises(BadInput, match="cannot load it as a Hugging Face dataset"):
        hf.import_hf("no-such-owner/no-such-dataset-xyz")
