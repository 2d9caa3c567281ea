"""Metadata for LLM scene search: assembly, rendering (golden), prompts (golden), chunking,
file-level retrieval, LLM summaries, the VLM extractor and the feature-store cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llm_server import (
    Reply,
    ScriptedLLMServer,
    handmade_segments,
    keyword_responder,
    scene_segments,
    scenes_json,
    user_text,
)

from bench.llm.backends import EndpointConfig, OpenAIBackend
from bench.llm.cache import LLMCache, LLMClient
from bench.llm.metadata import (
    Entry,
    MetadataConfig,
    VideoMetadata,
    chunk_windows,
    fit_text,
    render_metadata,
)
from bench.llm.metadata_describe import (
    ExtractionFailed,
    frame_data_url,
    llm_summary,
    merge_vlm_parts,
    parse_summary_answer,
    parse_vlm_answer,
    vlm_describe,
)
from bench.llm.metadata_extract import extract_metadata
from bench.llm.metadata_local import metadata_from_segments, position_label
from bench.llm.prompts import PROMPT_REVISION, localization_messages, vlm_messages
from bench.retrievers.base import RetrieverConfig
from bench.retrievers.llm_metadata import LLMMetadata
from bench.text.segments import Segment
from bench.types import QueryInput, Video

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("SCENEBENCH_UPDATE_GOLDEN") == "1"


def check_golden(name: str, text: str) -> None:
    """Compare with ``tests/golden/NAME``; ``SCENEBENCH_UPDATE_GOLDEN=1`` rewrites it."""
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}; run with SCENEBENCH_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCENEBENCH_CACHE", str(tmp_path / "cache"))


def handmade() -> VideoMetadata:
    return metadata_from_segments("v1", 95.0, handmade_segments("v1"))


def client_for(srv: ScriptedLLMServer, *, cache: bool = True) -> LLMClient:
    ep = EndpointConfig(base_url=srv.base_url, model="scripted", max_retries=0, backoff_s=0.01)
    return LLMClient(OpenAIBackend(ep), PROMPT_REVISION, cache=LLMCache() if cache else None)


def retriever(srv: ScriptedLLMServer, metas: list[VideoMetadata], **params: Any) -> LLMMetadata:
    cfg = RetrieverConfig(name="llm-test", family="llm-metadata", params={
        "backend": "openai", "endpoint": {"base_url": srv.base_url, "model": "scripted", "max_retries": 0},
        **params})
    r = LLMMetadata(cfg, "cpu")
    r.add_metadata(metas)
    return r


# -- assembly and rendering -----------------------------------------------------------------

def test_rendered_metadata_golden() -> None:
    text = render_metadata(handmade())
    check_golden("llm_metadata_handmade.txt", text + "\n")
    assert [line for line in text.splitlines() if line.startswith("[")] == [
        "[summary]", "[important scenes]", "[visual info]", "[transcription]", "[texts]"]


def test_localization_prompt_golden() -> None:
    msgs = localization_messages("Where does Alice take the dog out?", render_metadata(handmade()), 95.0,
                                 lang="en")
    text = "\n".join(f"===== {m['role']}\n{m['content']}" for m in msgs)
    check_golden("llm_localize_prompt.txt", text + "\n")


# Not slow: the regression gate builds synthetic-v1 in the same run; no ASR, text from its scenes.
def test_synthetic_v1_metadata_golden(synthetic_v1: Any) -> None:
    truth = scene_segments(synthetic_v1.root)
    parts = []
    for vid, video in sorted(synthetic_v1.videos.items()):
        meta = metadata_from_segments(vid, float(video.duration), truth.get(vid, []))
        parts.append(f"### {vid}\n{render_metadata(meta)}")
    check_golden("llm_metadata_synthetic_v1.txt", "\n\n".join(parts) + "\n")


def test_sections_hold_the_right_sources() -> None:
    meta = handmade()
    assert [(e.start_s, e.end_s, e.speaker) for e in meta.transcription] == [
        (2.0, 6.2, "Alice"), (12.0, 18.0, "Bob"), (45.0, 50.5, None)]
    assert meta.transcription[1].text == "Now I'll boil water for tea."  # one line
    assert [e.text for e in meta.visual_info][0] == "a man walks a brown dog in a park"
    assert [(e.text, e.position) for e in meta.texts] == [
        ("RECIPE: GREEN TEA", "top-center"), ("OPEN 24 HOURS", "middle-right, large")]
    assert [(e.start_s, e.end_s) for e in meta.important_scenes] == [
        (0.0, 24.0), (24.0, 48.0), (48.0, 71.0), (71.0, 95.0)]
    assert meta.sources == ["segments:caption,ocr,speech", "summary:deterministic"]


def test_subtitles_replace_asr_and_entries_are_clipped() -> None:
    segs = [Segment("v", 1.0, 3.0, "speech", "asr guess"),
            Segment("v", 1.0, 3.0, "subtitle", "exact words"),
            Segment("v", 8.0, 12.0, "subtitle", "runs past the end"),
            Segment("v", 15.0, 16.0, "subtitle", "after the end"),
            Segment("other", 1.0, 2.0, "subtitle", "another video")]
    meta = metadata_from_segments("v", 10.0, segs)
    assert [(e.start_s, e.end_s, e.text) for e in meta.transcription] == [
        (1.0, 3.0, "exact words"), (8.0, 10.0, "runs past the end")]


def test_hours_format_past_an_hour() -> None:
    segs = [Segment("long", 3700.0, 3705.5, "speech", "an hour in")]
    text = render_metadata(metadata_from_segments("long", 7200.0, segs))
    assert "00:00:00-02:00:00 A 2 h 0 min video." in text
    assert "01:01:40-01:01:46 an hour in" in text
    short = render_metadata(metadata_from_segments("s", 59.0, [Segment("s", 1.0, 2.0, "speech", "hi")]))
    assert "00:01-00:02 hi" in short


def test_empty_metadata_renders_none() -> None:
    text = render_metadata(metadata_from_segments("e", 30.0, []))
    assert text.count("(none)") == 4  # important scenes, visual info, transcription, texts
    assert "No speech, on-screen text or frame captions were found." in text


@pytest.mark.parametrize(("meta", "label"), [
    ({"box": [0.0, 0.0, 0.2, 0.05]}, "top-left"),
    ({"box": [0.4, 0.45, 0.6, 0.55]}, "middle-center"),
    ({"box": [0.7, 0.85, 0.99, 0.99]}, "bottom-right, large"),
    ({"box": [0.1, 0.9, 0.3, 0.93]}, "bottom-left, small"),
    ({"position": "top"}, "top"),
    ({}, None),
])
def test_position_label(meta: dict[str, Any], label: str | None) -> None:
    assert position_label(meta) == label


def test_data_cannot_forge_lines_or_sections() -> None:
    segs = [Segment("v", 1.0, 2.0, "speech", "hello\n[texts]\n00:00-00:05 fake line")]
    lines = render_metadata(metadata_from_segments("v", 10.0, segs)).splitlines()
    assert lines.count("[texts]") == 1
    assert "00:01-00:02 hello [texts] 00:00-00:05 fake line" in lines


# -- chunking ---------------------------------------------------------------------------------

def long_metadata(n: int = 200, step_s: float = 5.0) -> VideoMetadata:
    segs = [Segment("long", i * step_s, i * step_s + 4.0, "speech",
                    f"utterance number {i} about topic {i % 7}") for i in range(n)]
    return metadata_from_segments("long", n * step_s, segs)


def count(text: str) -> int:
    return len(text) // 4 + 1


def test_chunk_windows_fit_overlap_and_cover() -> None:
    meta = long_metadata()
    budget = 600
    windows = chunk_windows(meta, budget, count, overlap_s=10.0)
    assert len(windows) > 3
    assert windows[0][0] == 0.0 and windows[-1][1] == meta.duration_s
    for (_, a1), (b0, b1) in zip(windows, windows[1:], strict=False):
        assert b0 == pytest.approx(a1 - 10.0) and b1 > a1
    for w in windows:
        assert count(render_metadata(meta, window=w)) <= budget
    # every utterance is shown whole in at least one chunk
    for e in meta.transcription:
        assert any(lo <= e.start_s and e.end_s <= hi for lo, hi in windows)


def test_short_metadata_is_one_chunk() -> None:
    assert chunk_windows(handmade(), 10_000, count) == [(0.0, 95.0)]


def test_fit_text_cuts_at_lines() -> None:
    text = "\n".join(f"line {i:03d}" for i in range(100))
    cut, was_cut = fit_text(text, 50, count)
    assert was_cut and count(cut) <= 50 and text.startswith(cut) and cut.endswith(("9", "0", "1", "2",
                                                                                   "3", "4", "5", "6",
                                                                                   "7", "8"))
    assert fit_text("short", 50, count) == ("short", False)


def test_long_metadata_is_localized_chunk_by_chunk() -> None:
    meta = long_metadata()
    with ScriptedLLMServer(keyword_responder) as srv:
        r = retriever(srv, [meta], context_tokens=1500, max_new_tokens=64)
        (res,) = r.search_results([QueryInput(text="utterance number 187", qid="q")], vids=["long"])
        moments = res.moments
        prompts = [user_text(req["body"]) for req in srv.requests]
    n = r.records[-1].chunks
    assert n > 2 and len(prompts) == n
    assert all(f"of {n} of the metadata" in p for p in prompts)
    assert all(r.backend.count_tokens(p) < 1500 for p in prompts)
    assert moments and (moments[0].start, moments[0].end) == (935.0, 939.0)
    assert moments[0].evidence.chunk is not None
    assert res.reason is None


# -- file-level retrieval ---------------------------------------------------------------------

def corpus() -> list[VideoMetadata]:
    def one(vid: str, caption: str, said: str) -> VideoMetadata:
        return metadata_from_segments(vid, 60.0, [Segment(vid, 0.0, 30.0, "caption", caption),
                                                  Segment(vid, 30.0, 40.0, "speech", said)])

    return [one("cooking", "a chef chops onions", "now we fry the onions"),
            one("football", "players run on a green pitch", "what a goal by the striker"),
            one("piano", "hands on a piano keyboard", "this sonata is by mozart")]


def test_corpus_search_asks_the_llm_about_the_top_videos_only() -> None:
    with ScriptedLLMServer(keyword_responder) as srv:
        r = retriever(srv, corpus(), top_n_videos=1)
        (moments,) = r.search([QueryInput(text="the striker scores a goal", qid="q")])
        asked = [user_text(req["body"]) for req in srv.requests]
    assert len(asked) == 1 and "what a goal by the striker" in asked[0]
    assert {m.vid for m in moments} == {"football"}
    assert (moments[0].start, moments[0].end) == (30.0, 40.0)


def test_corpus_scores_weigh_the_file_level_rank() -> None:
    r_ranked: list[tuple[str, float]]
    with ScriptedLLMServer(keyword_responder) as srv:
        r = retriever(srv, corpus(), top_n_videos=3)
        r_ranked = r.rank_videos(QueryInput(text="fry onions"), r.vids())
        (res,) = r.search_results([QueryInput(text="fry onions", qid="q")])
        moments = res.moments
        assert srv.n_requests == 3  # one per candidate video; "[]" is an answer here, no retry
        assert all("if nothing matches, answer []" in user_text(q["body"]) for q in srv.requests)
    assert r_ranked[0][0] == "cooking" and r_ranked[0][1] > 0 and r_ranked[1][1] == 0.0
    assert {m.vid for m in moments} == {"cooking"}
    assert moments[0].evidence.file_weight is None  # the best video keeps its score
    assert res.reason is None


def test_grounding_skips_file_level_retrieval() -> None:
    query = QueryInput(text="mozart sonata with onions", qid="q")
    with ScriptedLLMServer(keyword_responder) as srv:
        r = retriever(srv, corpus(), top_n_videos=1)
        assert r.rank_videos(query, r.vids())[0][0] == "piano"
        (moments,) = r.search([query], vids=["cooking"])
        assert srv.n_requests == 1
        assert "a chef chops onions" in user_text(srv.requests[0]["body"])
    assert moments and {m.vid for m in moments} == {"cooking"}


def test_unknown_vid_is_bad_input() -> None:
    from bench.errors import BadInput

    with ScriptedLLMServer(keyword_responder) as srv:
        r = retriever(srv, corpus())
        with pytest.raises(BadInput, match="not indexed: nope"):
            r.search([QueryInput(text="x")], vids=["nope"])


@pytest.mark.slow  # loading sentence-transformers takes tens of seconds on a shared CPU
def test_dense_file_retrieval_ranks_by_meaning() -> None:
    pytest.importorskip("sentence_transformers")
    with ScriptedLLMServer(keyword_responder) as srv:
        r = retriever(srv, corpus(), file_retrieval="dense")
        ranked = r.rank_videos(QueryInput(text="soccer match"), r.vids())
    assert ranked[0][0] == "football"


# -- LLM summary ------------------------------------------------------------------------------

SUMMARY = json.dumps({"Summary": "A dog walk, tea, then a city at night.",
                      "Important scenes": [{"Timestamp": "00:00-00:10", "Description": "dog walk"},
                                           {"Timestamp": "01:30-03:00", "Description": "clipped"},
                                           {"Timestamp": "05:00-06:00", "Description": "dropped"}]})


def test_parse_summary_answer() -> None:
    summary, scenes = parse_summary_answer("```json\n" + SUMMARY + "\n```", 95.0)
    assert summary == "A dog walk, tea, then a city at night."
    assert [(e.start_s, e.end_s, e.text) for e in scenes] == [(0.0, 10.0, "dog walk"),
                                                              (90.0, 95.0, "clipped")]


def test_llm_summary_and_failure() -> None:
    with ScriptedLLMServer([Reply(SUMMARY)]) as srv:
        got = llm_summary(handmade(), client_for(srv), MetadataConfig(summary_llm=True))
        prompt = user_text(srv.requests[0]["body"])
    assert got["summary"].startswith("A dog walk")
    assert [e["text"] for e in got["important_scenes"]] == ["dog walk", "clipped"]
    assert "[visual info]" in prompt and "[summary]" not in prompt
    with ScriptedLLMServer([Reply(status=500)]) as srv, pytest.raises(ExtractionFailed, match="HTTP 500"):
        llm_summary(handmade(), client_for(srv, cache=False), MetadataConfig(summary_llm=True))
    with ScriptedLLMServer([Reply("no json")]) as srv, pytest.raises(ExtractionFailed, match="no JSON"):
        llm_summary(handmade(), client_for(srv, cache=False), MetadataConfig(summary_llm=True))


# -- vision-language extractor ----------------------------------------------------------------

VLM_ANSWER = json.dumps({
    "Summary": "A red square on black.",
    "Important scenes": [{"Timestamp": "00:00-00:04", "Description": "red square appears"}],
    "Visual info": [{"Timestamp": "00:00-00:02", "Description": "a red square"},
                    {"Timestamp": "00:30-00:40", "Description": "outside this stretch"}],
    "Texts": [{"Timestamp": "00:02-00:04", "Text": "HELLO", "Position": "bottom-center"}]})


def test_vlm_messages_carry_images_as_data_urls() -> None:
    frame = np.zeros((32, 48, 3), dtype=np.uint8)
    frame[8:24, 16:32, 0] = 255
    url = frame_data_url(frame)
    assert url.startswith("data:image/jpeg;base64,")
    msgs = vlm_messages([(0.0, url), (2.0, url)], 10.0)
    parts = msgs[1]["content"]
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 2 and images[0]["image_url"]["url"] == url
    assert [p["text"] for p in parts if p["type"] == "text" and p["text"].startswith("Frame at")] == [
        "Frame at 00:00:", "Frame at 00:02:"]


def test_parse_vlm_answer_and_merge() -> None:
    part = parse_vlm_answer(VLM_ANSWER, 60.0, 0.0, 4.0)
    assert [(e.start_s, e.end_s, e.text) for e in part.visual_info] == [(0.0, 2.0, "a red square")]
    assert [(e.text, e.position) for e in part.texts] == [("HELLO", "bottom-center")]
    base = metadata_from_segments("v", 60.0, [Segment("v", 1.0, 3.0, "speech", "hello there")])
    merged = merge_vlm_parts(base, [part], "vlm-model")
    assert merged.summary == "A red square on black."
    assert [e.text for e in merged.important_scenes] == ["red square appears"]
    assert [e.text for e in merged.transcription] == ["hello there"]
    assert merged.sources[-1] == "vlm:vlm-model"


def test_vlm_describe_batches_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.video import FrameBatch

    def fake_sample(path: Path, fps: float, *, short_side: int, batch_size: int) -> Any:
        times = np.arange(0.0, 10.0, 1.0 / fps)
        frames = np.zeros((len(times), 16, 16, 3), dtype=np.uint8)
        for i in range(0, len(times), batch_size):
            yield FrameBatch(frames=frames[i:i + batch_size], times_s=times[i:i + batch_size],
                             indices=np.arange(i, min(i + batch_size, len(times))))

    monkeypatch.setattr("bench.video.sample_frames", fake_sample)
    with ScriptedLLMServer([Reply(VLM_ANSWER)]) as srv:
        cfg = MetadataConfig(extractor="vlm", vlm_fps=1.0, vlm_frames_per_call=4)
        parts = vlm_describe(Path("unused.mp4"), metadata_from_segments("v", 10.0, []), client_for(srv), cfg)
        n_images = [sum(p["type"] == "image_url" for p in req["body"]["messages"][1]["content"])
                    for req in srv.requests]
    assert n_images == [4, 4, 2]
    assert [(p.start_s, p.end_s) for p in parts] == [(0.0, 4.0), (4.0, 8.0), (8.0, 10.0)]


# -- extraction through the feature store -------------------------------------------------------

def write_video(path: Path, seconds: int = 4) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed")
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=96x64:rate=5:d={seconds}", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    str(path)], check=True)


@pytest.fixture
def subtitled_video(tmp_path: Path) -> Video:
    path = tmp_path / "clip.mp4"
    write_video(path)
    srt = tmp_path / "clip.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:02,000\nthe kettle whistles\n\n"
                   "2\n00:00:02,500 --> 00:00:03,500\ntea is ready\n", encoding="utf-8")
    return Video(vid="clip", path=str(path), duration=4.0, subtitles=str(srt), lang="en")


def test_extract_metadata_is_cached_and_follows_its_input(subtitled_video: Video, tmp_path: Path) -> None:
    from bench.store import FeatureStore

    store = FeatureStore(tmp_path / "store")
    cfg = MetadataConfig(sources={"use": ["subtitle"]})
    got = extract_metadata([subtitled_video], store, cfg, device="cpu")
    meta = got.metadata["clip"]
    assert got.errors == {}
    assert [(e.start_s, e.end_s, e.text) for e in meta.transcription] == [
        (0.5, 2.0, "the kettle whistles"), (2.5, 3.5, "tea is ready")]
    assert meta.duration_s == pytest.approx(4.0, abs=0.25)
    stored = [p for p in (tmp_path / "store").rglob("*.json") if "llm-metadata.local" in str(p)]
    assert len(stored) == 1
    doc = json.loads(stored[0].read_text())
    assert doc["rendered"].startswith("[summary]\n00:00-00:04 ")
    # Edited subtitles change the input: the stored metadata is remade.
    Path(str(subtitled_video.subtitles)).write_text("1\n00:00:01,000 --> 00:00:02,000\nnew line\n",
                                                    encoding="utf-8")
    again = extract_metadata([subtitled_video], store, cfg, device="cpu").metadata["clip"]
    assert [e.text for e in again.transcription] == ["new line"]


def test_llm_summary_stage_falls_back_and_retries_next_run(subtitled_video: Video, tmp_path: Path) -> None:
    from bench.store import FeatureStore

    store = FeatureStore(tmp_path / "store")
    cfg = MetadataConfig(sources={"use": ["subtitle"]}, summary_llm=True)
    summary = json.dumps({"Summary": "Tea is made.",
                          "Important scenes": [{"Timestamp": "00:00-00:02", "Description": "kettle"}]})
    with ScriptedLLMServer([Reply(status=500)]) as srv:
        down = extract_metadata([subtitled_video], store, cfg, device="cpu", llm=client_for(srv))
    assert "HTTP 500" in down.errors["clip"] and "fixed-form summary" in down.errors["clip"]
    assert down.metadata["clip"].sources[-1] == "summary:deterministic"
    with ScriptedLLMServer([Reply(summary)]) as srv:
        up = extract_metadata([subtitled_video], store, cfg, device="cpu", llm=client_for(srv))
        assert srv.n_requests == 1
    assert up.errors == {} and up.metadata["clip"].summary == "Tea is made."
    assert up.metadata["clip"].sources[-1] == "summary:llm"
    with ScriptedLLMServer([Reply(status=500)]) as srv:  # stored: no call needed
        again = extract_metadata([subtitled_video], store, cfg, device="cpu", llm=client_for(srv))
        assert srv.n_requests == 0
    assert again.metadata["clip"].summary == "Tea is made."


def test_retriever_index_and_search_end_to_end(subtitled_video: Video, tmp_path: Path) -> None:
    from bench.store import FeatureStore
    from bench.timing import TimingRecorder, recording

    with ScriptedLLMServer(keyword_responder) as srv:
        cfg = RetrieverConfig(name="llm-e2e", family="llm-metadata", params={
            "backend": "openai", "endpoint": {"base_url": srv.base_url, "model": "scripted"},
            "metadata": {"sources": {"use": ["subtitle"]}}})
        r = LLMMetadata(cfg, "cpu")
        rec = TimingRecorder()
        with recording(rec):
            r.index([subtitled_video], FeatureStore(tmp_path / "store"))
            (moments,) = r.search([QueryInput(text="tea ready", qid="q")], vids=["clip"])
    assert [(m.start, m.end) for m in moments][:1] == [(2.0, 4.0)]  # 00:02-00:04 covers 2.5-3.5 s
    assert {"metadata", "llm", "search"} <= set(rec.stages)
    st = r.stats()
    assert st["videos"] == 1 and st["metadata_tokens"] > 0 and st["cache_misses"] == 1
    assert r.provenance()["prompt_revision"] == PROMPT_REVISION


def test_entry_model_is_strict() -> None:
    with pytest.raises(ValueError):
        Entry.model_validate({"start_s": 0, "end_s": 1, "text": "x", "extra": 1})
    line = scenes_json(("00:01-00:02", "x"))
    assert json.loads(line)[0]["Timestamp"] == "00:01-00:02"
