"""The Space's library logic (bench.serving) and its Gradio handlers, called directly.

Retrievers are stand-ins here (the real ones have their own tests); videos are tiny
files made with ffmpeg, so these tests take seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bench.engine.search import QueryResult
from bench.errors import BadInput, Unavailable
from bench.eval.results import ResultFile, predictions_path, save_result
from bench.evidence import (
    ClipEvidence,
    ClipMatch,
    FrameEvidence,
    FrameMatch,
    FusedEvidence,
    MemberMatch,
    NoEvidence,
    SceneEvidence,
    Snippet,
    TextEvidence,
    fmt_ts,
    fmt_window,
)
from bench.retrievers.base import RetrieverConfig
from bench.serving.display import best_iou, describe_evidence, score_timeline, timeline_figure
from bench.serving.leaderboard import (
    browser_queries,
    disagreement,
    find_query,
    leaderboard_table,
    load_predictions,
    prediction_rows,
)
from bench.serving.media import build_sheet, card_thumbnail, clip_from, sheet_frame, thumbnail
from bench.serving.search import search
from bench.serving.sessions import (
    MAX_QUERY_CHARS,
    Session,
    UploadLimits,
    accept_upload,
    check_query,
    remove_session,
    safe_name,
    session_dir,
)
from bench.types import Moment, Query, QueryInput, QuerySet, Video
from bench.workspace import Workspace
from demo import handlers

REPO = Path(__file__).resolve().parents[1]


def make_video(path: Path, seconds: float = 3.0, size: str = "96x64") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
           f"testsrc=duration={seconds}:size={size}:rate=10", "-pix_fmt", "yuv420p",
           "-c:v", "libx264", "-preset", "ultrafast", str(path)]
    subprocess.run(cmd, check=True, timeout=60)
    return path


@pytest.fixture(scope="module")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "clip.mp4")


@pytest.fixture
def session(tmp_path: Path) -> Session:
    return Session.open(tmp_path / "sessions", "abc123")


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --- names, sessions, uploads --------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\evil.mp4", "evil.mp4"),
    ("/abs/path/My Video (1).mp4", "My_Video_1.mp4"),
    (".hidden.mp4", "hidden.mp4"),
    ("..", "upload"),
    ("", "upload"),
    ("会議の録画.mp4", "会議の録画.mp4"),
    ("a\x00b.mp4", "a_b.mp4"),
    ("ｆｕｌｌｗｉｄｔｈ.mp4", "fullwidth.mp4"),
])
def test_safe_name(raw: str, expected: str) -> None:
    assert safe_name(raw) == expected


def test_safe_name_keeps_the_suffix_of_a_long_name() -> None:
    name = safe_name("x" * 500 + ".webm")
    assert name.endswith(".webm")
    assert len(name) == 120


def test_session_folder_is_named_by_key_and_refuses_odd_keys(tmp_path: Path) -> None:
    base = tmp_path / "sessions"
    s = Session.open(base, "k_1-A")
    assert s.root == (base / "k_1-A").resolve() and s.root.is_dir()
    for bad in ("../escape", "a/b", "", ".", "x" * 65, "ü"):
        with pytest.raises(BadInput, match="refused session id"):
            session_dir(base, bad)
    assert not (tmp_path / "escape").exists()
    assert remove_session(base, "k_1-A") is True
    assert not s.root.exists()
    assert remove_session(base, "k_1-A") is False
    assert remove_session(base, "../sessions") is False
    assert base.is_dir()


def test_session_without_key_gets_a_fresh_folder(tmp_path: Path) -> None:
    a = Session.open(tmp_path)
    b = Session.open(tmp_path)
    assert a.root != b.root and a.root.parent == b.root.parent == tmp_path
    a.cleanup()
    assert not a.root.exists() and b.root.exists()


def test_upload_of_a_video_is_copied_into_the_session(session: Session,
                                                      video_file: Path) -> None:
    v = accept_upload(session, video_file, "../../holiday.mp4")
    assert v.vid == "holiday"
    assert v.path == str(session.root / "uploads" / "holiday.mp4")
    assert v.duration == pytest.approx(3.0, abs=0.15)
    assert Path(v.path).read_bytes() == video_file.read_bytes()
    assert session.uploads == {"holiday": v}


def test_upload_names_never_collide(session: Session, video_file: Path) -> None:
    a = accept_upload(session, video_file, "clip.mp4", reserved=["clip"])
    b = accept_upload(session, video_file, "clip.mp4", reserved=["clip"])
    c = accept_upload(session, video_file, "sub/clip.MP4", reserved=["clip"])
    assert [a.vid, b.vid, c.vid] == ["clip-2", "clip-3", "clip-4"]
    assert files_under(session.root) == ["uploads/clip-2.mp4", "uploads/clip-3.mp4",
                                         "uploads/clip-4.mp4"]


def test_upload_refusals_write_nothing(tmp_path: Path, session: Session,
                                       video_file: Path) -> None:
    text = tmp_path / "in" / "passwd"
    text.parent.mkdir()
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    fake_mp4 = tmp_path / "in" / "fake.mp4"
    fake_mp4.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    before = files_under(tmp_path)
    cases: list[tuple[Path, str, dict[str, Any], str]] = [
        (text, "../../etc/passwd", {}, r"^\.\./\.\./etc/passwd: not a video file; upload one of "
                                       r"\.mp4, \.mkv"),
        (fake_mp4, "fake.mp4", {}, "^fake.mp4: not a readable video; upload an mp4"),
        (video_file, "big.mp4", {"limits": UploadLimits(max_bytes=1000)},
         r"^big.mp4: 0 MiB is over the 0 MiB limit$"),
        (video_file, "long.mp4", {"limits": UploadLimits(max_seconds=2.0)},
         r"^long.mp4: 00:03 is longer than the 00:02 limit$"),
        (tmp_path / "in" / "gone.mp4", "gone.mp4", {}, "did not arrive"),
    ]
    for src, name, kwargs, message in cases:
        with pytest.raises(BadInput, match=message):
            accept_upload(session, src, name, **kwargs)
    assert files_under(tmp_path) == before
    assert session.uploads == {}


def test_upload_count_is_limited(session: Session, video_file: Path) -> None:
    limits = UploadLimits(max_files=1)
    accept_upload(session, video_file, "a.mp4", limits=limits)
    with pytest.raises(BadInput, match="already has 1 uploads, the limit"):
        accept_upload(session, video_file, "b.mp4", limits=limits)
    assert list(session.uploads) == ["a"]


def test_limits_are_described_for_the_page() -> None:
    text = UploadLimits().describe()
    assert text.startswith("up to 5 videos of at most 200 MiB and 15:00 each (.mp4, ")


# --- queries ---------------------------------------------------------------------------------

def test_empty_query_is_a_friendly_prompt() -> None:
    for text in (None, "", "   \n\t "):
        with pytest.raises(BadInput, match="^Type what you are looking for"):
            check_query(text, None)


def test_query_is_cleaned_and_bounded() -> None:
    q = check_query("  the\x07 budget\n slide  ", None)
    assert q == QueryInput(text="the budget slide")
    assert check_query("x" * 2000).text == "x" * MAX_QUERY_CHARS
    assert check_query("", "/tmp/example.png") == QueryInput(image="/tmp/example.png")
    assert check_query("ホワイトボード").text == "ホワイトボード"


def test_time_formatting() -> None:
    assert fmt_ts(0) == "00:00"
    assert fmt_ts(59.6) == "01:00"
    assert fmt_ts(-3) == "00:00"
    assert fmt_ts(3725) == "1:02:05"
    assert fmt_window(12.2, 18.9) == "00:12-00:19"


# --- evidence, IoU, plots --------------------------------------------------------------------

BM25_EVIDENCE = TextEvidence("bm25", (
    Snippet(12.0, 15.0, "ocr", "Budget 2025", terms=("budget",)),
    Snippet(14.0, 16.0, "speech", "the  budget\nslide", terms=("budget", "slide")),
    Snippet(30.0, 31.0, "speech", "x"), Snippet(40.0, 41.0, "speech", "y")), terms=("budget", "slide"))


def test_evidence_of_text_methods_shows_snippets_with_times() -> None:
    assert describe_evidence(BM25_EVIDENCE) == (
        "terms: budget, slide · snippets: [00:12 ocr] Budget 2025; [00:14 speech] the budget "
        "slide; [00:30 speech] x (+1)")
    dense = TextEvidence("dense", (Snippet(3.0, 4.0, "subtitle", "hello", similarity=0.71),),
                         model="minilm")
    assert describe_evidence(dense) == "snippets: [00:03 subtitle] hello"
    assert dense.to_dict() == {"method": "dense", "model": "minilm", "snippets": [
        {"start": 3.0, "end": 4.0, "source": "subtitle", "text": "hello", "similarity": 0.71}]}


def test_evidence_of_frame_clip_llm_and_fusion_methods() -> None:
    frames = FrameEvidence((FrameMatch(1.5, 0.25), FrameMatch(2.0, 0.31234)), peak_s=2.0)
    assert describe_evidence(frames) == "frames: 00:02 (0.312), 00:02 (0.25) · peak: 00:02"
    clips = ClipEvidence((ClipMatch(0.0, 8.0, 0.2),), reranked=True, plain_score=0.31234)
    assert describe_evidence(clips) == "clips: 00:00-00:08 (0.2) · plain score: 0.312"
    llm = SceneEvidence("a chef  cuts a pizza", ("[00:03] narration: cutting",), confidence=0.8,
                        timestamp="00:03", rank=1, model="tiny", chunk="00:00-05:00")
    assert describe_evidence(llm) == (
        "description: a chef cuts a pizza · evidence: [00:03] narration: cutting · confidence: 0.8"
        " · chunk: 00:00-05:00")
    fused = FusedEvidence("rrf", {
        "clip-frames-tiny": MemberMatch(4, 0.2, 1, 2, FrameEvidence((), None)),
        "bm25-text": MemberMatch(1, 7.0, 12, 16, BM25_EVIDENCE)})
    assert describe_evidence(fused, limit=1000) == (
        "agreed: bm25-text #1, clip-frames-tiny #4 · terms: budget, slide · snippets: [00:12 ocr] "
        "Budget 2025; [00:14 speech] the budget slide; [00:30 speech] x (+1)")
    assert list(fused.to_dict()["members"]) == ["bm25-text", "clip-frames-tiny"]


def test_evidence_is_cut_to_the_limit() -> None:
    text = describe_evidence(SceneEvidence("word " * 100), limit=40)
    assert len(text) == 40 and text.endswith("…")


def test_best_iou() -> None:
    assert best_iou((10, 20), [(0, 5), (12, 20)]) == pytest.approx(0.8)
    assert best_iou((0, 10), [(5, 15)]) == pytest.approx(5 / 15)
    assert best_iou((10, 20), []) == 0.0


def test_timeline_figure_puts_truth_first_and_every_method_on_one_axis() -> None:
    rows = [("bm25-text", [Moment("v", 10, 20, 3.0), Moment("v", 40, 45, 1.0)]),
            ("clip", [Moment("v", 12, 18, 0.3)]),
            ("broken", [])]
    fig = timeline_figure(rows, 60.0, [(11.0, 19.0)], title="q")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["ground truth", "bm25-text", "clip",
                                                            "broken"]
    assert ax.get_xlim() == (0.0, 60.0)
    bars = ax.collections
    assert len(bars) == 4  # truth + 2 + 1

    def span(i: int) -> tuple[float, float]:
        xs = np.asarray(bars[i].get_paths()[0].vertices)[:, 0]
        return float(xs.min()), float(xs.max())

    assert span(0) == (11.0, 19.0)
    # a method's windows are drawn weakest first; the best is the most opaque
    assert [(span(i), bars[i].get_alpha()) for i in (1, 2, 3)] == [
        ((40.0, 45.0), pytest.approx(0.2)), ((10.0, 20.0), pytest.approx(0.9)),
        ((12.0, 18.0), pytest.approx(0.9))]


def test_score_timeline_has_one_panel_per_video_best_first() -> None:
    ms = [Moment("b", 5, 8, 0.9), Moment("a", 1, 2, 0.5), Moment("b", 20, 25, 0.2)]
    fig = score_timeline(ms, {"a": 10.0, "b": 30.0})
    assert fig is not None
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["b", "a"]
    assert fig.axes[0].get_xlim() == (0.0, 30.0)
    tops = sorted(round(p.get_height() + p.get_y(), 3)  # type: ignore[attr-defined]
                  for p in fig.axes[0].patches)
    assert tops == [0.2, 0.9]
    assert score_timeline([], {}) is None


# --- search ----------------------------------------------------------------------------------

class FakeRetriever:
    """Moments at fixed places in every indexed video the query may search."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.index_calls: list[list[str]] = []
        self.indexed: list[str] = []
        self.asked: list[str | None] = []

    def index(self, videos: Sequence[Video], store: Any) -> None:
        self.index_calls.append([v.vid for v in videos])
        self.indexed = [v.vid for v in videos]

    def search(self, queries: Sequence[QueryInput], *, top_k: int = 10,
               vids: Sequence[str] | None = None) -> list[list[Moment]]:
        return [r.moments for r in self.search_results(queries, top_k=top_k, vids=vids)]

    def search_results(self, queries: Sequence[QueryInput], *, top_k: int = 10,
                       vids: Sequence[str] | None = None) -> list[QueryResult]:
        self.asked.append(queries[0].text)
        if queries[0].text == "crash":
            raise RuntimeError("boom\nsecond line")
        if queries[0].text == "bad":
            raise BadInput("this method takes text queries")
        if queries[0].text == "stop":
            return [QueryResult([], "the query has no searchable terms")]
        out = []
        for i, vid in enumerate(v for v in self.indexed if vids is None or v in vids):
            out.append(Moment(vid, 1.0 + i, 2.0 + i, 1.0 / (i + 1), NoEvidence(note="hit")))
        return [QueryResult(out[:top_k])]

    def provenance(self) -> dict[str, Any]:
        return {}


class FakeBuilder:
    def __init__(self) -> None:
        self.built: list[str] = []
        self.made: dict[str, FakeRetriever] = {}

    def __call__(self, config: RetrieverConfig, device: str, workspace: Workspace) -> FakeRetriever:
        name = config.name
        self.built.append(name)
        if name.startswith("missing"):
            raise Unavailable(f"{name}: weights not found; see models/README.md")
        self.made[name] = FakeRetriever(name)
        return self.made[name]


@pytest.fixture
def fake_build() -> FakeBuilder:
    return FakeBuilder()


@pytest.fixture
def fake_workspace(fake_build: FakeBuilder, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A workspace of stand-in retrievers, whatever name is asked for."""
    monkeypatch.setattr("bench.retrievers.get_config",
                        lambda spec: RetrieverConfig(name=spec, family="fake"))
    return Workspace(device="cpu", store=object(), build=fake_build)  # type: ignore[arg-type]


def videos(*vids: str) -> list[Video]:
    return [Video(vid=v, path=f"/videos/{v}.mp4", duration=30.0) for v in vids]


def test_search_indexes_the_corpus_and_the_chosen_videos(fake_workspace: Workspace,
                                                         fake_build: FakeBuilder) -> None:
    ws, build = fake_workspace, fake_build
    corpus = videos("a", "b")
    q = QueryInput(text="x")
    out = search(ws, "bm25", videos("b"), q, top_k=5, corpus=corpus)
    assert out.error is None and [m.vid for m in out.moments] == ["b"]
    search(ws, "bm25", videos("a"), q, corpus=corpus)
    assert build.built == ["bm25"] and build.made["bm25"].index_calls == [["a", "b"]]
    # an upload joins the corpus for that search only
    search(ws, "bm25", videos("up"), q, corpus=corpus)
    search(ws, "bm25", videos("a"), q, corpus=corpus)
    assert build.made["bm25"].index_calls == [["a", "b"], ["a", "b", "up"], ["a", "b"]]
    assert ws.loaded() == ["bm25"] and ws.builds == {"bm25": 1}


def test_search_reports_problems_as_one_line(fake_workspace: Workspace,
                                             fake_build: FakeBuilder) -> None:
    ws, build = fake_workspace, fake_build
    vs = videos("a")
    out = search(ws, "missing-llm", vs, QueryInput(text="x"))
    assert out.unavailable and out.moments == []
    assert out.error == "unavailable: missing-llm: weights not found; see models/README.md"
    search(ws, "missing-llm", vs, QueryInput(text="x"))
    assert build.built == ["missing-llm"]  # the reason is remembered, not retried
    out = search(ws, "bm25", vs, QueryInput(text="crash"))
    assert out.error == "failed: RuntimeError: boom second line" and not out.unavailable
    out = search(ws, "bm25", vs, QueryInput(text="bad"))
    assert out.error == "this method takes text queries"
    out = search(ws, "bm25", vs, QueryInput(text="stop"))  # no moments: the engine's reason
    assert out.moments == [] and out.error == "the query has no searchable terms"
    with pytest.raises(BadInput, match="^Choose at least one video"):
        search(ws, "bm25", [], QueryInput(text="x"))


def test_search_keeps_only_the_chosen_videos_best_first(fake_workspace: Workspace) -> None:
    out = search(fake_workspace, "r", videos("b", "c"), QueryInput(text="x"), top_k=1,
                         corpus=videos("a", "b", "c"))
    assert [(m.vid, m.score) for m in out.moments] == [("b", 1.0)]


# --- media -----------------------------------------------------------------------------------

def test_thumbnail_and_clip(tmp_path: Path, video_file: Path) -> None:
    from bench.video import probe

    v = Video(vid="clip", path=str(video_file), duration=3.0)
    thumb = thumbnail(v, 1.5, tmp_path / "thumbs", width=64)
    assert thumb.name == "clip-00000015.jpg" and thumb.read_bytes()[:2] == b"\xff\xd8"
    assert thumbnail(v, 1.5, tmp_path / "thumbs") == thumb  # cached
    clip = clip_from(v, 1.0, 1.5, tmp_path / "clips")
    info = probe(clip)
    assert info.duration_s == pytest.approx(2.0, abs=0.25)  # to the end of the video
    assert info.video_codec == "h264"
    with pytest.raises(BadInput, match="ffmpeg produced nothing"):
        thumbnail(Video("gone", str(tmp_path / "gone.mp4")), 1.0, tmp_path / "thumbs")
    assert sorted(p.name for p in (tmp_path / "thumbs").iterdir()) == ["clip-00000015.jpg"]


def test_thumbnail_sheet(tmp_path: Path, video_file: Path) -> None:
    v = Video(vid="clip", path=str(video_file), duration=3.0)
    root = tmp_path / "sheets"
    assert sheet_frame(root, v, 1.0) is None  # no sheet yet
    sheet = build_sheet(v, root, fps=2.0, short_side=32)
    names = sorted(p.name for p in sheet.iterdir())
    assert names == ["000000000.jpg", "000000500.jpg", "000001000.jpg", "000001500.jpg",
                     "000002000.jpg", "000002500.jpg", "done"]
    from PIL import Image

    with Image.open(sheet / "000001000.jpg") as im:
        assert min(im.size) == 32
    assert sheet_frame(root, v, 1.2) == sheet / "000001000.jpg"
    assert sheet_frame(root, v, 99.0) == sheet / "000002500.jpg"
    assert build_sheet(v, root) == sheet  # finished sheets are reused
    assert [p.name for p in root.iterdir()] == [sheet.name]  # no temp folder left
    # a video without a sheet gets an ffmpeg frame in the session's folder
    other = Video(vid="other", path=str(video_file), duration=3.0)
    out = card_thumbnail(other, 1.0, tmp_path / "thumbs", root)
    assert out == tmp_path / "thumbs" / "other-00000010.jpg"


# --- leaderboard and benchmark browser data ---------------------------------------------------

def result(retriever: str, r1: float, *, status: str = "ok", by_tag: dict[str, Any] | None = None,
           random_init: bool = False) -> ResultFile:
    return ResultFile(retriever=retriever, family=retriever.split("-")[0], config_revision="1",
                      dataset="toy", split="test", status=status,  # type: ignore[arg-type]
                      reason=None if status == "ok" else "no weights", n_queries=2,
                      metrics={"R1@0.5": r1, "R1@0.3": r1, "R1@0.7": r1 / 2, "R5@0.5": 1.0,
                               "mIoU": r1 / 3} if status == "ok" else {},
                      metrics_by_tag=by_tag or {},
                      metrics_by_lang={"ja": {"R1@0.5": 0.25, "n_queries": 1.0}} if status == "ok"
                      else {},
                      timing={"queries": {"p50_s": 0.0123}},
                      provenance={"retriever": {"random_init": random_init}})


def toy_set(root: Path, video: Path) -> QuerySet:
    from bench.datasets.io import save_query_set

    qs = QuerySet(name="toy", root=root,
                  videos={"v1": Video("v1", str(video), 3.0), "v2": Video("v2", str(video), 3.0)},
                  queries=[Query(1, "the red sign", "v1", 3.0, [(1.0, 2.0)], lang="en",
                                 tags=["onscreen-text"]),
                           Query(2, "会議", "v2", 3.0, [(0.0, 1.0)], lang="ja", tags=["speech"]),
                           Query(10, "clock", "v1", 3.0, [(2.0, 3.0)], lang="en")])
    save_query_set(qs, root)
    return qs


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    out = tmp_path / "results"
    preds = {"bm25-text": {1: [[1.0, 2.0, 5.0]], 2: [[0.0, 1.0, 4.0]], 10: [[2.0, 3.0, 1.0]]},
             "clip-frames": {1: [[1.0, 2.0, 0.3]], 2: [[2.0, 3.0, 0.2]], 10: [[2.0, 3.0, 0.5]]}}
    for name, r1 in (("bm25-text", 1.0), ("clip-frames", 0.67)):
        rows = [{"qid": qid, "query": "", "vid": "v1", "pred_relevant_windows": w}
                for qid, w in preds[name].items()]
        save_result(out, result(name, r1, by_tag={"speech": {"R1@0.5": r1 / 2, "n_queries": 1.0}}),
                    rows)
    save_result(out, result("llm-tiny", 0.0, status="unavailable"))
    return out


def test_leaderboard_table_filters_by_tag_and_language(results_dir: Path) -> None:
    from bench.eval import report

    rows = report.group(report.load_all(results_dir))[("toy", "test")]
    headers, data = leaderboard_table(rows)
    assert headers == ["#", "retriever", "family", "R1@0.5", "R1@0.3", "R1@0.7", "R5@0.5", "mIoU",
                       "queries", "p50 ms", "note"]
    assert [r[:4] for r in data] == [[1, "bm25-text", "bm25", "1.000"],
                                     [2, "clip-frames", "clip", "0.670"],
                                     ["–", "llm-tiny", "llm", "–"]]
    assert data[0][8:10] == [2, "12.3"] and data[2][10] == "unavailable: no weights"
    _, by_tag = leaderboard_table(rows, tag="speech")
    assert [r[3] for r in by_tag] == ["0.500", "0.335", "–"] and by_tag[0][8] == 1
    _, by_lang = leaderboard_table(rows, lang="ja")
    assert [r[3] for r in by_lang] == ["0.250", "0.250", "–"]
    assert leaderboard_table([]) == ([], [])


def test_predictions_and_disagreement(tmp_path: Path, results_dir: Path, video_file: Path) -> None:
    from bench.eval import report

    qs = toy_set(tmp_path / "toy", video_file)
    preds = load_predictions(results_dir, report.load_all(results_dir), "toy")
    assert sorted(preds) == ["bm25-text", "clip-frames"]  # the unavailable run has none
    assert preds["bm25-text"]["1"] == [[1.0, 2.0, 5.0]]
    q1, q2, q10 = qs.queries
    assert disagreement(q2, preds) == 1.0   # bm25 exact, clip misses
    assert disagreement(q1, preds) == 0.0
    ranked = browser_queries(qs, preds, "disagreement")
    assert [label for label, _ in ranked] == ["2 · 会議", "1 · the red sign", "10 · clock"]
    by_id = browser_queries(qs, preds, "query id")
    assert [label for label, _ in by_id] == ["1 · the red sign", "2 · 会議", "10 · clock"]
    rows = prediction_rows(q2, preds)
    assert [(n, [(m.start, m.end) for m in ms]) for n, ms in rows] == [
        ("bm25-text", [(0.0, 1.0)]), ("clip-frames", [(2.0, 3.0)])]
    assert find_query(qs, "10 · anything").query == "clock"
    with pytest.raises(BadInput, match="unknown benchmark query '99'"):
        find_query(qs, "99 · x")


def test_damaged_prediction_lines_are_skipped(results_dir: Path) -> None:
    from bench.eval import report

    results = report.load_all(results_dir)
    path = predictions_path(results_dir, next(r for r in results if r.retriever == "bm25-text"))
    path.write_text('{"qid": 1, "pred_relevant_windows": [[1, 2, 3]]}\nnot json\n{"qid": 2}\n')
    preds = load_predictions(results_dir, results, "toy")
    assert preds["bm25-text"] == {"1": [[1.0, 2.0, 3.0]], "2": []}


# --- the Gradio handlers, called directly ------------------------------------------------------

def load_app_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scenebench_demo_app", REPO / "demo" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def app_module() -> ModuleType:
    return load_app_module()


@pytest.fixture
def app(tmp_path: Path, results_dir: Path, video_file: Path,
        monkeypatch: pytest.MonkeyPatch, fake_workspace: Workspace) -> Any:
    toy_set(tmp_path / "toy", video_file)
    a = handlers.App(results_dir, str(tmp_path / "toy"), sessions=tmp_path / "sessions",
                     workspace=fake_workspace, sheets=tmp_path / "sheets")
    monkeypatch.setattr(a, "configurations", lambda: ["bm25-text", "clip-frames", "missing-llm"])
    a.snapshot = tmp_path / "no-snapshot"  # thresholds only from the toy results (none)
    return a


def upload_obj(path: Path, name: str) -> SimpleNamespace:
    return SimpleNamespace(path=str(path), orig_name=name)


def test_load_opens_a_session_named_by_the_browser_session(app: Any) -> None:
    sess, retr, lb, br = handlers.on_load(app, SimpleNamespace(session_hash="h1"))
    assert sess.root == (app.sessions / "h1").resolve() and sess.root.is_dir()
    assert retr["choices"] == [("bm25-text", "bm25-text"), ("clip-frames", "clip-frames"),
                               ("missing-llm", "missing-llm")] or retr["choices"] == [
        "bm25-text", "clip-frames", "missing-llm"]
    assert lb["value"] == br["value"] == "toy · test"
    sess, videos_upd, retr2, why, bq, cmp_video = handlers.on_load_videos(app, sess)
    assert videos_upd["value"] == ["v1", "v2"]
    assert retr2["value"] == "bm25-text"
    assert why == "Best on the toy leaderboard: **bm25-text** (you can change it)."
    assert [c for c in bq["choices"]] == ["1 · the red sign", "2 · 会議", "10 · clock"]


def test_default_method_can_be_set_by_the_deployer(app: Any) -> None:
    app.default_method = "clip-frames"
    assert app.best() == ("clip-frames", "Default method: **clip-frames**.")
    app.default_method = "nope"
    with pytest.raises(BadInput, match="--method 'nope' is not one of the offered configurations"):
        app.best()


def test_upload_handler_accepts_and_refuses(app: Any, tmp_path: Path,
                                            video_file: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    sess = Session.open(app.sessions, "h2")
    files = [upload_obj(video_file, "v1.mp4"), upload_obj(junk, "../../etc/passwd"),
             upload_obj(junk, "notes.mp4")]
    sess, note, chosen, cleared, cmp_video = handlers.on_upload(app, sess, files, ["v2"])
    assert note.split("\n\n") == [
        "✓ **v1-2** accepted (00:03); it is indexed on your first search.",
        "✗ ../../etc/passwd: not a video file; upload one of .mp4, .mkv, .webm, .mov, .avi, .m4v",
        "✗ notes.mp4: not a readable video; upload an mp4, webm or mkv file"]
    assert chosen["value"] == ["v2", "v1-2"]
    assert ("v1-2 · 00:03 (yours)", "v1-2") in chosen["choices"]
    assert cleared is None
    assert files_under(app.sessions) == ["h2/uploads/v1-2.mp4"]
    assert not (tmp_path / "etc").exists()
    assert video_file.is_file() and junk.is_file()  # not gradio's copies: left alone


def test_upload_handler_drops_gradios_copy(app: Any, tmp_path: Path,
                                           video_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gradio_tmp = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(gradio_tmp))
    copies = []
    for name, data in (("a.mp4", video_file.read_bytes()), ("notes.txt", b"hello")):
        copy = gradio_tmp / "f00d" / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(data)
        copies.append(copy)
    sess = Session.open(app.sessions, "h6")
    _, note, *_ = handlers.on_upload(app, sess, [str(c) for c in copies], [])
    assert note.startswith("✓ **a** accepted") and "✗ notes.txt: not a video file" in note
    assert [c.exists() for c in copies] == [False, False]
    assert files_under(app.sessions) == ["h6/uploads/a.mp4"]


def test_search_handler(app: Any) -> None:
    sess = Session.open(app.sessions, "h3")
    out = handlers.on_search(app, sess, ["v1"], "  ", None, "bm25-text", 5)
    assert out == (sess, "→ Type what you are looking for (any language), or give an example image.",
                   [], [], None, "")
    out = handlers.on_search(app, sess, [], "sign", None, "bm25-text", 5)
    assert out[1] == "→ Choose at least one video, or upload one."
    calls: list[tuple[float, str]] = []
    sess, status, cards, moments, player, details = handlers.on_search(
        app, sess, ["v2"], "sign", None, "bm25-text", 3, lambda p, desc="": calls.append((p, desc)))
    assert status.startswith("**1 moment** from **bm25-text** in ")
    assert [(m.vid, m.start, m.end, m.score) for m in moments] == [("v2", 1.0, 2.0, 1.0)]
    assert len(cards) == 1 and cards[0][1] == "#1 · v2 · 00:01-00:02 · ▰▰▰▰▰▰▰▰▰▰ no threshold"
    assert [m.confident for m in moments] == [None]  # toy results: no calibrated threshold
    assert Path(cards[0][0]).parent == sess.root / "thumbs"
    fig = handlers.on_timeline(app, sess, moments)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["v2"]
    assert fig.axes[0].get_xlim() == (0.0, 3.0)  # the video's duration
    assert handlers.on_timeline(app, sess, []) is None
    assert "1. `v2` **00:01-00:02** · ▰▰▰▰▰▰▰▰▰▰ no threshold · score 1.000 · hit" in details
    assert "bm25-text has no calibrated threshold" in details
    assert calls and calls[0][0] == 0.05
    out = handlers.on_search(app, sess, ["v1"], "sign", None, "missing-llm", 3)
    assert out[1] == ("⚠ **missing-llm** unavailable: missing-llm: weights not found; "
                      "see models/README.md")
    clip = handlers.on_card(app, sess, moments, 0)
    assert Path(clip).parent == sess.root / "clips" and Path(clip).stat().st_size > 0
    assert handlers.on_card(app, sess, moments, 5) is None
    # several videos: cards keep the ranking, thumbnails cut in parallel land in the session
    _, status, cards, moments, _, _ = handlers.on_search(app, sess, ["v1", "v2"], "sign", None,
                                                           "bm25-text", 5)
    assert [c[1] for c in cards] == ["#1 · v1 · 00:01-00:02 · ▰▰▰▰▰▰▰▰▰▰ no threshold",
                                     "#2 · v2 · 00:02-00:03 · ▰▰▰▰▰▱▱▱▱▱ no threshold"]
    assert sorted(p.name for p in (sess.root / "thumbs").iterdir()) == [
        "v1-00000015.jpg", "v2-00000015.jpg", "v2-00000025.jpg"]


def test_no_confident_match_shows_the_nearest_moments_greyed(app: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.eval.calibration import Calibration

    # Answers to questions without an answer scored 5 and 6: the fake's 1.0 beats none of them.
    strict = Calibration(status="calibrated", threshold=0.9, n_calibration_absent=2,
                         absent_signals={"score": [5.0, 6.0]})
    monkeypatch.setattr(app, "calibration", lambda name: strict)
    sess = Session.open(app.sessions, "h7")
    _, status, cards, moments, _, details = handlers.on_search(app, sess, ["v2"], "sign", None,
                                                               "bm25-text", 3)
    assert status.startswith("**No confident match** from **bm25-text** for “sign”.")
    assert "nearest 1 moment (greyed)" in status
    assert [m.confident for m in moments] == [False]
    assert cards[0][1] == "#1 · v2 · 00:01-00:02 · ▱▱▱▱▱▱▱▱▱▱ weak"
    assert handlers.gallery_classes(moments) == ["unsure"]
    assert "confident means a strength of at least 0.9" in details
    # a lenient threshold: the same moment is a confident match
    lenient = Calibration(status="calibrated", threshold=0.5, n_calibration_absent=2,
                          absent_signals={"score": [0.1, 0.2]})
    monkeypatch.setattr(app, "calibration", lambda name: lenient)
    _, status, cards, moments, _, _ = handlers.on_search(app, sess, ["v2"], "sign", None,
                                                         "bm25-text", 3)
    assert status.startswith("**1 moment** from **bm25-text**")
    assert cards[0][1] == "#1 · v2 · 00:01-00:02 · ▰▰▰▰▰▰▰▰▰▰ confident"
    assert handlers.gallery_classes(moments) == []


def test_compare_handler_shows_truth_iou_and_reasons(app: Any) -> None:
    query, vid = handlers.on_bench_query(app, "1 · the red sign")
    assert (query, vid) == ("the red sign", "v1")
    fig, table, status = handlers.on_compare(app, None, "1 · the red sign", query, vid)
    data = table["data"]
    assert [r[0] for r in data] == ["bm25-text", "clip-frames", "missing-llm"]
    assert data[0][1:4] == ["00:01-00:02", "1.000", "1.00"]  # fake hit [1, 2] vs truth [1, 2]
    assert data[2][4] == "–" and data[2][5].startswith("unavailable: missing-llm")
    assert status == "2 of 3 methods answered · ground truth in green, IoU against it"
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["ground truth", "bm25-text", "clip-frames"]
    # an edited query is no longer the benchmark query: no truth, no IoU
    _, table, status = handlers.on_compare(app, None, "1 · the red sign", "red", "v1")
    assert table["data"][0][3] == "–" and "pick a benchmark query" in status
    _, _, status = handlers.on_compare(app, None, None, "", "v1")
    assert status.startswith("→ Type what you are looking for")


def test_leaderboard_and_browser_handlers(app: Any) -> None:
    table, note, images, tags, langs = handlers.on_leaderboard(app, "toy · test", "all", "all")
    assert [r[1] for r in table["data"]] == ["bm25-text", "clip-frames", "llm-tiny"]
    assert tags["choices"] == ["all", "speech"] and langs["choices"] == ["all", "ja"]
    assert len(images) >= 3 and all(title.startswith("toy · test") for _, title in images)
    table, note, *_ = handlers.on_leaderboard(app, "toy · test", "speech", "ja")
    assert note.startswith("Results break down by tag or by language, not both")
    assert table["data"][0][3] == "0.250"
    upd, note = handlers.on_browser_dataset(app, "toy · test", "disagreement")
    assert upd["value"] == "2 · 会議" and note == "3 queries, 2 methods with predictions."
    truth, video, fig, table = handlers.on_browser_query(app, "toy · test", "2 · 会議")
    assert truth == "**会議** in `v2` — truth: **00:00-00:01** · ja · speech"
    assert video is not None and Path(video).name == "clip.mp4"
    assert table["data"] == [["bm25-text", "00:00-00:01", "4.000", "1.00"],
                             ["clip-frames", "00:02-00:03", "0.200", "0.00"]]
    upd, note = handlers.on_browser_dataset(app, "other · test", "disagreement")
    assert note == "→ the query set of 'other' is not available in this app"


def test_no_results_is_a_hint_not_an_error(tmp_path: Path) -> None:
    a = handlers.App(tmp_path / "nothing", str(tmp_path), sessions=tmp_path / "s")
    table, note, images, *_ = handlers.on_leaderboard(a, None, "all", "all")
    assert note.startswith("No benchmark results here yet") and images == []


def test_unload_and_state_expiry_delete_the_session_folder(app: Any,
                                                           video_file: Path) -> None:
    sess = Session.open(app.sessions, "h4")
    accept_upload(sess, video_file, "mine.mp4")
    handlers.on_unload(app, SimpleNamespace(session_hash="h4"))
    assert not sess.root.exists()
    other = Session.open(app.sessions, "h5")
    handlers.cleanup_session(other)
    handlers.cleanup_session(None)
    assert not other.root.exists() and app.sessions.is_dir()
    handlers.on_unload(app, SimpleNamespace(session_hash="../.."))
    assert app.sessions.is_dir()


def test_warm_up_indexes_the_set_and_asks_one_query_per_language(
        app: Any, app_module: ModuleType, fake_build: FakeBuilder) -> None:
    app_module.warm_up(app)
    made = fake_build.made
    assert list(made) == ["bm25-text"]  # the leaderboard's best
    assert made["bm25-text"].index_calls == [["v1", "v2"]]
    assert made["bm25-text"].asked == ["the red sign", "会議"]  # en, ja
    # the cards of the embedded set now come from the thumbnail sheets, not ffmpeg
    sess = Session.open(app.sessions, "h7")
    cards = handlers.on_search(app, sess, ["v1"], "sign", None, "bm25-text", 5)[2]
    assert [Path(c[0]).parent.parent for c in cards] == [app.sheets]
    assert not (sess.root / "thumbs").exists()


def test_guarded_turns_errors_into_one_line_messages() -> None:
    import gradio as gr

    def boom() -> None:
        raise RuntimeError("missing\nthing")

    def bad() -> None:
        raise BadInput("a clear reason")

    with pytest.raises(gr.Error) as info:
        handlers.guarded(boom)()
    assert info.value.message == "Something went wrong: RuntimeError: missing thing"
    with pytest.raises(gr.Error) as info:
        handlers.guarded(bad)()
    assert info.value.message == "a clear reason"


def test_importing_and_building_the_app_loads_no_model(tmp_path: Path) -> None:
    code = (
        "import importlib.util, sys, json\n"
        f"spec = importlib.util.spec_from_file_location('app', {str(REPO / 'demo' / 'app.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        f"m.build(m.App({str(tmp_path / 'results')!r}, 'synthetic-v1', sessions={str(tmp_path)!r}))\n"
        "heavy = ['torch', 'transformers', 'sentence_transformers', 'faster_whisper', 'bm25s',\n"
        "         'bench.datasets.synthetic', 'bench.retrievers.bm25_text', 'bench.store']\n"
        "print(json.dumps([h for h in heavy if h in sys.modules]))\n"
    )
    env = {**os.environ, "SCENEBENCH_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    assert not (tmp_path / "cache").exists()


def test_a_fresh_space_shows_the_snapshot_leaderboard_with_floors(tmp_path: Path) -> None:
    from bench.eval.snapshot import snapshot_dir

    a = handlers.App(None, str(tmp_path), sessions=tmp_path / "s")
    a.local_results = tmp_path / "no-results"  # a fresh clone has no results/
    assert a.results_source() == snapshot_dir()
    _, _, lb, _ = handlers.on_load(a, None)
    assert "synthetic-v1 · test" in lb["choices"] and "synthetic-v2 · test" in lb["choices"]
    table, note, images, *_ = handlers.on_leaderboard(a, "synthetic-v2 · test", "all", "all")
    ranks = [row[0] for row in table["data"]]
    names = [row[1] for row in table["data"]]
    assert ranks[0] == 1 and "fusion-text" in names
    floors = {row[1] for row in table["data"] if row[0] == "floor"}
    assert floors == {"chance-random", "chance-prior"}
    assert ranks.index("floor") > max(i for i, r in enumerate(ranks) if isinstance(r, int))
    assert {"false_alarm", "confident_hit@0.5"} <= set(table["headers"])
    assert "*floor*" in note and images
    # the thresholds come from the snapshot too
    cal = a.calibration("fusion-text")
    assert cal is not None and cal.status == "calibrated" and cal.threshold is not None
