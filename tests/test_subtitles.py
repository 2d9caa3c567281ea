"""Subtitle parsing (.srt/.vtt) and the subtitle-sidecar builder."""

from __future__ import annotations

import codecs
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.datasets import BuildOptions
from bench.datasets import subtitles as sub_builder
from bench.datasets.io import load_query_set
from bench.errors import BadInput
from bench.text.subtitles import Cue, clean_text, read_subtitles

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "subtitles"

SRT = (
    "1\n00:00:01,000 --> 00:00:02,500\n<i>Hello</i> &amp; <font color=\"red\">welcome</font>{\\an8}\n"
    "to the show\n\n"
    "2\n00:00:03,000 --> 00:00:04,000\n\n\n"
    "3\n00:01:05.250 --> 01:00:06,000\nx < y > z\n"
)


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8", newline="")
    else:
        path.write_bytes(data)
    return path


def test_srt_cues_have_seconds_and_plain_text(tmp_path: Path) -> None:
    cues = read_subtitles(write(tmp_path, "a.srt", SRT))
    assert cues == [
        Cue(1.0, 2.5, "Hello & welcome to the show"),
        Cue(65.25, 3606.0, "x < y > z"),
    ]


def test_srt_with_bom_and_crlf_matches_plain(tmp_path: Path) -> None:
    plain = read_subtitles(write(tmp_path, "a.srt", SRT))
    crlf = read_subtitles(write(tmp_path, "b.srt", codecs.BOM_UTF8 + SRT.replace("\n", "\r\n").encode()))
    cr = read_subtitles(write(tmp_path, "c.srt", SRT.replace("\n", "\r")))
    assert crlf == plain
    assert cr == plain


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_by_bom(tmp_path: Path, encoding: str) -> None:
    bom = codecs.BOM_UTF16_LE if encoding.endswith("le") else codecs.BOM_UTF16_BE
    text = "1\n00:00:01,000 --> 00:00:02,000\nçà 日本語\n"
    cues = read_subtitles(write(tmp_path, "u.srt", bom + text.encode(encoding)))
    assert cues == [Cue(1.0, 2.0, "çà 日本語")]


def test_cp1252_fallback(tmp_path: Path) -> None:
    data = "1\n00:00:01,000 --> 00:00:02,000\ncafé “quoted”\n".encode("cp1252")
    assert read_subtitles(write(tmp_path, "w.srt", data)) == [Cue(1.0, 2.0, "café “quoted”")]


def test_undecodable_bytes_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "x.srt", b"1\n00:00:01,000 --> 00:00:02,000\nok \x81\x8d\n")
    with pytest.raises(BadInput, match=r"x\.srt:3: cannot decode"):
        read_subtitles(path)


def test_broken_srt_timestamp_names_file_and_line(tmp_path: Path) -> None:
    text = "1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:0x,000 --> 00:00:04,000\nbad\n"
    with pytest.raises(BadInput, match=r"bad\.srt:6: not a valid SRT cue"):
        read_subtitles(write(tmp_path, "bad.srt", text))


def test_srt_end_before_start_names_the_timing_line(tmp_path: Path) -> None:
    text = "1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:05,000 --> 00:00:04,000\nback\n"
    with pytest.raises(BadInput, match=r"rev\.srt:6: cue ends at 4s, not after its start 5s"):
        read_subtitles(write(tmp_path, "rev.srt", text))


VTT = """WEBVTT - a title
Kind: captions

NOTE this is
a comment --> with an arrow

STYLE
::cue { color: red }

intro
00:01.000 --> 00:02.000 align:start position:0%
<v Bob>Hi <c.yellow>there</c><00:00:01.500> friend</v>

00:00:02.000 --> 00:00:03.000
Hi there friend

00:00:04.000 --> 00:00:04.500
<ruby>漢<rt>kan</rt></ruby>
"""


def test_vtt_skips_header_notes_styles_and_merges_rolling_repeats(tmp_path: Path) -> None:
    cues = read_subtitles(write(tmp_path, "a.vtt", VTT))
    assert cues == [Cue(1.0, 3.0, "Hi there friend"), Cue(4.0, 4.5, "漢kan")]


def test_vtt_header_without_blank_line(tmp_path: Path) -> None:
    text = "WEBVTT\nKind: captions\n00:00:01.000 --> 00:00:02.000\nstraight in\n"
    assert read_subtitles(write(tmp_path, "h.vtt", text)) == [Cue(1.0, 2.0, "straight in")]


def test_vtt_content_wins_over_srt_suffix(tmp_path: Path) -> None:
    assert read_subtitles(write(tmp_path, "a.srt", VTT))[0] == Cue(1.0, 3.0, "Hi there friend")


def test_broken_vtt_timing_names_file_and_line(tmp_path: Path) -> None:
    text = "WEBVTT\n\n00:01.000 --> 00:02.000\nok\n\n00:03.000 --> 00:0x.000\nbad\n"
    with pytest.raises(BadInput, match=r"b\.vtt:6: malformed timing line"):
        read_subtitles(write(tmp_path, "b.vtt", text))
    with pytest.raises(BadInput, match=r"c\.vtt:3: expected a cue timing line"):
        read_subtitles(write(tmp_path, "c.vtt", "WEBVTT\n\njust text\nmore text\n"))
    with pytest.raises(BadInput, match=r"d\.vtt:3: cue ends at 1s, not after its start 2s"):
        read_subtitles(write(tmp_path, "d.vtt", "WEBVTT\n\n00:02.000 --> 00:01.000\nx\n"))


def test_unsupported_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"unsupported subtitle type '\.ass'"):
        read_subtitles(write(tmp_path, "a.ass", "[Script Info]\n"))
    with pytest.raises(BadInput, match="file not found"):
        read_subtitles(tmp_path / "none.srt")


def test_clean_text_keeps_literal_angle_brackets() -> None:
    assert clean_text("<b>1 < 2</b>\n&lt;i&gt; stays") == "1 < 2 <i> stays"


def test_fixture_files_parse() -> None:
    assert read_subtitles(FIXTURES / "talk.fr.vtt") == [
        Cue(0.2, 1.0, "Bienvenue dans la cuisine !"),
        Cue(1.6, 2.4, "Aujourd'hui, nous faisons du pain."),
    ]
    srt = read_subtitles(FIXTURES / "talk.srt")
    assert [c.text for c in srt] == [
        "Welcome to the kitchen!", "[Music]", "Today we bake bread with & without yeast.",
        "Welcome to the kitchen!", "This line starts after the video ends.",
    ]
    assert srt[2] == Cue(1.6, 2.4, "Today we bake bread with & without yeast.")


# ----------------------------------------------------------------------------- the builder


def test_reword_rule() -> None:
    assert sub_builder.reword("Today we BAKE bread, with & without yeast... bread!") == \
        "bake bread today without yeast"
    assert sub_builder.reword("I don't know what it is.") == "know"
    assert sub_builder.reword("Is it what it is?") == ""
    # not English: stop words stay, punctuation and order go
    assert sub_builder.reword("Aujourd'hui, nous faisons du pain.", "fr") == \
        "aujourd'hui du faisons nous pain"


def test_find_sidecars_reads_language_suffix(tmp_path: Path) -> None:
    for name in ("talk.srt", "talk.en.vtt", "my.clip.srt", "other.pt-BR.srt", "notes.txt"):
        (tmp_path / name).write_text("", encoding="utf-8")
    found = sub_builder.find_sidecars(tmp_path, {"talk", "my.clip"})
    assert [(s.path.name, s.vid, s.lang) for s in found] == [
        ("my.clip.srt", "my.clip", None),
        ("other.pt-BR.srt", "other", "pt-BR"),
        ("talk.srt", "talk", None),
        ("talk.en.vtt", "talk", "en"),
    ]


@pytest.fixture
def video_folder(tmp_path: Path) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    folder = tmp_path / "talks"
    folder.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=blue:s=64x64:d=3",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(folder / "talk.mp4")], check=True)
    for name in ("talk.srt", "talk.fr.vtt"):
        shutil.copy(FIXTURES / name, folder / name)
    return folder


def test_builder_one_line_per_query(video_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "set"
    qs = sub_builder.build(out, BuildOptions(input=video_folder))
    rows = {q.qid: q for q in qs.queries}
    assert list(rows) == ["talk#0", "talk#1", "talk.fr#0", "talk.fr#1"]
    welcome = rows["talk#0"]
    assert welcome.query == "Welcome to the kitchen!"
    assert welcome.vid == "talk" and welcome.lang is None
    assert welcome.duration == pytest.approx(3.0, abs=0.05)
    # said twice: both spans are truth; the second is clipped to the video's end
    assert welcome.relevant_windows[0] == (0.2, 1.0)
    assert welcome.relevant_windows[1] == pytest.approx((2.4, 3.0), abs=0.05)
    assert welcome.tags == ["speech", "subtitle"]
    assert rows["talk#1"].query == "Today we bake bread with & without yeast."
    assert rows["talk.fr#1"].lang == "fr"
    assert rows["talk.fr#1"].relevant_windows == [(1.6, 2.4)]

    video = qs.videos["talk"]
    assert video.path == str((video_folder / "talk.mp4").resolve())
    assert video.subtitles == str((video_folder / "talk.srt").resolve())
    row = json.loads((out / "videos.jsonl").read_text(encoding="utf-8"))
    assert row["subtitles"].endswith("talk.srt")
    loaded = load_query_set(out)
    assert [q.to_row() for q in loaded.queries] == [q.to_row() for q in qs.queries]


def test_builder_windows_of_lines_and_held_out_wording(video_folder: Path, tmp_path: Path) -> None:
    qs = sub_builder.build(tmp_path / "set", BuildOptions(input=video_folder, lines_per_query=2,
                                                          hold_out_wording=True))
    rows = {q.qid: q for q in qs.queries}
    assert rows["talk#0"].query == "bake bread kitchen today welcome without yeast"
    assert rows["talk#0"].relevant_windows == [(0.2, 2.4)]
    assert rows["talk.fr#0"].query == "aujourd'hui bienvenue cuisine dans du faisons la nous pain"
    assert all(q.query != "Welcome to the kitchen!" for q in qs.queries)


def test_builder_without_video_uses_last_cue(tmp_path: Path) -> None:
    folder = tmp_path / "subs"
    folder.mkdir()
    shutil.copy(FIXTURES / "talk.fr.vtt", folder / "talk.fr.vtt")
    qs = sub_builder.convert(folder)
    assert qs.videos["talk"].path is None
    assert qs.videos["talk"].duration == 2.4
    assert qs.videos["talk"].lang == "fr"
    assert [q.qid for q in qs.queries] == ["talk.fr#0", "talk.fr#1"]


def test_builder_errors(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no .srt/.vtt sidecars found"):
        sub_builder.convert(tmp_path)
    with pytest.raises(BadInput, match="needs a folder of videos"):
        sub_builder.build(tmp_path / "o", BuildOptions())
    (tmp_path / "x.srt").write_text("1\n00:00:02,000 --> 00:00:01,000\nx\n", encoding="utf-8")
    with pytest.raises(BadInput, match=r"x\.srt:2: cue ends"):
        sub_builder.convert(tmp_path)
