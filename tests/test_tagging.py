"""Tagging into a taxonomy: metrics against hand-computed values, strict taxonomy and set
loading, window aggregation, zero-shot tags from dense-text, bm25-text, fusion and an LLM (the
scripted test server), linear probes, the adapters and ``python -m bench tag``/``run``."""

from __future__ import annotations

import json
import re
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from llm_server import Reply, ScriptedLLMServer

from bench.datasets import BuildOptions, is_tagging
from bench.datasets.tagging import (
    build_csv,
    build_folders,
    guess_lang,
    load_tagging_set,
    parse_taxonomy,
)
from bench.errors import BadInput
from bench.index.corpus import pool_rows
from bench.retrievers.base import RetrieverConfig
from bench.tagging.metrics import by_group, macro_f1, per_class_f1, ranks, tagging_metrics, top_k_accuracy
from bench.tagging.probe import cross_validate, mean_ci
from bench.tagging.zeroshot import aggregate, label_texts, score_pooled, score_windows, tag_pooled, tag_videos
from bench.text.segments import Segment
from bench.types import Video

TAXONOMY = {
    "labels": [
        {"id": "food", "names": {"en": "Food", "ru": "Еда"},
         "description": {"en": "cooking, recipes, kitchen"}},
        {"id": "sport", "names": {"en": "Sport", "ru": "Спорт"},
         "description": {"en": "football, goals, matches"}},
        {"id": "science", "names": {"en": "Science", "ru": "Наука"},
         "description": {"en": "laboratory, experiments, equations"}},
    ],
    "prompts": {"en": "Video belongs to category '{name}'", "ru": ["Видео принадлежит категории '{name}'"]},
}


# -- metrics, by hand -----------------------------------------------------------------------

SCORES = np.array([[0.9, 0.1, 0.0],    # gold 0: top1 0
                   [0.2, 0.5, 0.3],    # gold 2: top1 1, rank of 2 is second
                   [0.1, 0.2, 0.7],    # gold 2: top1 2
                   [0.3, 0.3, 0.1]])   # gold 1: tie 0/1 -> 0 first (taxonomy order)
GOLD = [frozenset({0}), frozenset({2}), frozenset({2}), frozenset({1})]


def test_top_k_and_macro_f1_by_hand() -> None:
    order = ranks(SCORES)
    assert order[:, 0].tolist() == [0, 1, 2, 0]
    assert top_k_accuracy(order, GOLD, 1) == 0.5
    assert top_k_accuracy(order, GOLD, 2) == 1.0
    # class 0: tp 1, fp 1, fn 0 -> P 0.5 R 1 F1 2/3; class 1: tp 0 fp 1 fn 1 -> 0;
    # class 2: tp 1 fp 0 fn 1 -> P 1 R 0.5 F1 2/3. Macro = (2/3 + 0 + 2/3) / 3 = 4/9.
    per = per_class_f1(order[:, 0].tolist(), GOLD, 3)
    assert per[0] == pytest.approx((0.5, 1.0, 2 / 3, 1))
    assert per[1] == (0.0, 0.0, 0.0, 1)
    assert per[2] == pytest.approx((1.0, 0.5, 2 / 3, 2))
    assert macro_f1(order[:, 0].tolist(), GOLD, 3) == pytest.approx(4 / 9)
    m = tagging_metrics(SCORES, GOLD)
    assert m == pytest.approx({"top1": 0.5, "top5": 1.0, "top10": 1.0, "macro_f1": 4 / 9})


def test_multi_label_hit_and_groups() -> None:
    # a video with labels {1, 2} is a top-1 hit when either ranks first
    assert top_k_accuracy(ranks(SCORES[1:2]), [frozenset({1, 2})], 1) == 1.0
    groups = by_group(SCORES, GOLD, [["en"], ["ja"], ["ja"], []])
    assert set(groups) == {"en", "ja"}
    assert groups["ja"]["top1"] == 0.5 and groups["ja"]["n"] == 2.0
    assert groups["en"]["top1"] == 1.0


def test_aggregations_by_hand() -> None:
    sims = np.array([[0.1, 0.9], [0.5, 0.2], [0.3, 0.4], [0.7, 0.0]])
    assert aggregate(sims, "first").tolist() == [0.1, 0.9]
    assert aggregate(sims, "mean") == pytest.approx([0.4, 0.375])
    assert aggregate(sims, "max").tolist() == [0.7, 0.9]
    assert aggregate(sims, "topk", k=2) == pytest.approx([0.6, 0.65])
    with pytest.raises(ValueError):
        aggregate(np.zeros((0, 2)), "max")


def test_pooled_scores_equal_every_window_where_promised() -> None:
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(1000, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    labels = rng.normal(size=(5, 16)).astype(np.float32)
    labels /= np.linalg.norm(labels, axis=1, keepdims=True)
    t = np.arange(1000, dtype=np.float64)
    long_p, short_p = pool_rows(vecs, t, t, max_rows=64), pool_rows(vecs, t, t, max_rows=1000)
    for how in ("first", "mean"):  # exact at any length
        every = score_windows(vecs, labels, how)[1]
        assert score_pooled(long_p, labels, how)[1] == pytest.approx(every, abs=1e-5)
    for how in ("max", "topk"):  # exact while every window is its own run
        every = score_windows(vecs, labels, how)[1]
        assert score_pooled(short_p, labels, how)[1] == pytest.approx(every, abs=1e-6)
    # over runs, max is the best run's mean cosine: no more than the best window's
    sims = vecs @ labels.T
    assert long_p.rows.shape == (64, 16)
    assert (score_pooled(long_p, labels, "max")[1] <= sims.max(axis=0) + 1e-6).all()
    first_run = sims[:16].mean(axis=0)  # 1000 = 64 * 15 + 40: the first 40 runs are 16 rows
    assert (long_p.rows[0] @ labels.T) == pytest.approx(first_run, abs=1e-5)
    tags = tag_pooled("v", long_p, labels, "max", "frame", ["a", "b", "c", "d", "e"])
    j = int(np.argmax(long_p.rows @ labels[0]))
    lo, hi = long_p.spans[j]
    assert tags.evidence["a"].startswith(f"best frame {lo:.1f}-{hi:.1f} s")


# -- taxonomy and sets: bad input is one line --------------------------------------------------

@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(labels=[]), "non-empty list"),
    (lambda d: d["labels"].append(dict(d["labels"][0])), "'food': duplicate id"),
    (lambda d: d["labels"][1]["names"].pop("ru"), "label 'sport': no name in 'ru'"),
    (lambda d: d["labels"][2]["names"].update(ja="科学"), "no name in 'ja'"),
    (lambda d: d["labels"][0]["names"].update(en=" "), "names.en must be non-empty"),
    (lambda d: d.update(prompts={"en": "no placeholder"}), "prompts.en"),
    (lambda d: d.update(extra=1), "unknown field 'extra'"),
])
def test_bad_taxonomy_is_one_line(change: Any, message: str) -> None:
    doc = json.loads(json.dumps(TAXONOMY))
    change(doc)
    with pytest.raises(BadInput, match=message) as err:
        parse_taxonomy(doc, "tax.yaml")
    assert "\n" not in str(err.value) and str(err.value).startswith("tax.yaml: ")


def test_taxonomy_prompt_ensembles() -> None:
    tax = parse_taxonomy(TAXONOMY)
    assert tax.ids == ["food", "sport", "science"] and tax.languages == ["en", "ru"]
    assert label_texts(tax)[0] == ["Video belongs to category 'Food'",
                                   "Видео принадлежит категории 'Еда'", "cooking, recipes, kitchen"]
    assert tax.prompt_templates("ja")  # a language without prompts takes the defaults


def write_set(root: Path, rows: list[dict[str, Any]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "taxonomy.yaml").write_text(yaml.safe_dump(TAXONOMY, allow_unicode=True), encoding="utf-8")
    (root / "videos.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root


@pytest.mark.parametrize(("rows", "message"), [
    ([{"vid": "a", "labels": ["food"]}, {"vid": "a", "labels": ["sport"]}], ":2: field 'vid': duplicate"),
    ([{"vid": "a", "labels": []}], ":1: field 'labels': must be a non-empty list"),
    ([{"vid": "a", "labels": ["cars"]}], "unknown label 'cars'"),
    ([{"vid": "a", "labels": ["food", "food"]}], "names a label twice"),
    ([{"vid": "a", "path": "missing.mp4", "labels": ["food"]}], "video file not found"),
    ([{"vid": "a", "duration": 10, "labels": ["food"], "windows": [[2, 1, "food"]]}], "start < end"),
    ([{"vid": "a", "duration": 10, "labels": ["food"], "windows": [[2, 11, "food"]]}], "<= duration"),
    ([{"vid": "a", "labels": ["food"], "windows": [[0, 1, "cars"]]}], "windows': unknown label"),
])
def test_bad_tagging_rows(tmp_path: Path, rows: list[dict[str, Any]], message: str) -> None:
    root = write_set(tmp_path / "set", rows)
    with pytest.raises(BadInput, match=message) as err:
        load_tagging_set(root)
    assert "\n" not in str(err.value)


def test_tagging_set_loads_and_is_recognised(tmp_path: Path) -> None:
    row = {"vid": "a", "duration": 9.0, "labels": ["food"], "lang": "en", "tags": ["speech"],
           "windows": [[0, 4.5, "food"], [4.5, 9, "sport"]]}
    root = write_set(tmp_path / "set", [row])
    ts = load_tagging_set(root, check_files=False)
    assert ts.videos["a"].labels == ("food",) and ts.videos["a"].tags == ("speech",)
    assert ts.videos["a"].windows == ((0.0, 4.5, "food"), (4.5, 9.0, "sport"))
    assert ts.videos["a"].to_row() == {"path": None, **row}
    assert is_tagging(str(root)) and not is_tagging(str(tmp_path))


# -- zero-shot tags from stored text features ---------------------------------------------------

def seg(vid: str, start: float, end: float, text: str, source: str = "speech") -> Segment:
    return Segment(vid=vid, start=start, end=end, source=source, text=text)  # type: ignore[arg-type]


SEGMENTS = [
    seg("cook", 0, 4, "welcome to the kitchen, today we follow a bread recipe"),
    seg("cook", 10, 14, "now knead the dough and preheat the oven"),
    seg("match", 2, 6, "sport news: the striker scores in the last minute of the football match", "caption"),
    seg("lab", 1, 5, "in the laboratory we repeat the experiment twice"),
]
VIDEOS = [Video(vid="cook", duration=20.0), Video(vid="match", duration=10.0),
          Video(vid="lab", duration=10.0), Video(vid="silent", duration=10.0)]
GOLD_LABELS = {"cook": "food", "match": "sport", "lab": "science"}


def bag_of_words(texts: Sequence[str]) -> np.ndarray:
    """Unit word-count vectors over hashed words: a stand-in text tower that makes the tagging
    logic checkable by hand without loading a sentence model (test_dense_text covers that)."""
    out = np.zeros((len(texts), 1024), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in re.findall(r"\w+", t.lower()):
            out[i, zlib.crc32(w.encode()) % 1024] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@pytest.fixture(scope="module")
def dense() -> Any:
    from bench.retrievers.dense_text import DenseText

    class BagDense(DenseText):
        @property
        def dim(self) -> int:
            return 1024

        def encode(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
            return bag_of_words(texts)

        def _extractor_params(self) -> dict[str, Any]:
            return {}

    r = BagDense(RetrieverConfig(name="dense-tag", family="dense-text"), "cpu")
    r.index_segments(SEGMENTS, videos=VIDEOS)
    return r


@pytest.fixture(scope="module")
def bm25() -> Any:
    from bench.retrievers.bm25_text import BM25Text

    r = BM25Text(RetrieverConfig(name="bm25-tag", family="bm25-text"), "cpu")
    r.index_segments(SEGMENTS, videos=VIDEOS)
    return r


def best(tagged: Any, tax: Any) -> dict[str, str | None]:
    return {vt.vid: (vt.top(tax, 1)[0][0] if vt.scores is not None else None) for vt in tagged.videos}


def test_dense_tags_each_video_and_gives_a_reason_for_no_text(dense: Any) -> None:
    tax = parse_taxonomy(TAXONOMY)
    tagged = tag_videos(dense, [v.vid for v in VIDEOS], tax)
    assert tagged.family == "dense-text" and tagged.aggregation == "max"
    assert best(tagged, tax) == {**GOLD_LABELS, "silent": None}
    silent = tagged.videos[3]
    assert silent.reason is not None and silent.reason.startswith("no usable features")
    assert "text window" in tagged.videos[0].evidence["food"]
    assert tag_videos(dense, ["cook"], tax, "mean").aggregation == "mean"


def test_probe_features_are_each_videos_mean_window(dense: Any, bm25: Any) -> None:
    from bench.tagging.probe import video_features

    feats, missing = video_features(dense, [v.vid for v in VIDEOS])
    lo, hi = dense.corpus.ranges["cook"]
    assert feats["cook"] == pytest.approx(dense.window_vecs[lo:hi].mean(axis=0), abs=1e-6)
    assert set(feats) == {v.vid for v in VIDEOS} - {"silent"}
    assert missing["silent"].startswith("no usable features")
    with pytest.raises(BadInput, match="linear probes need stored embeddings"):
        video_features(bm25, ["cook"])


def test_bm25_tags_by_label_words(bm25: Any) -> None:
    tax = parse_taxonomy(TAXONOMY)
    tagged = tag_videos(bm25, [v.vid for v in VIDEOS], tax)
    assert best(tagged, tax) == {**GOLD_LABELS, "silent": None}
    assert "kitchen" in tagged.videos[0].evidence["food"]


def test_fusion_ranks_members_together(dense: Any, bm25: Any) -> None:
    from bench.retrievers.fusion import Fusion

    cfg = RetrieverConfig(name="fuse-tag", family="fusion", params={"members": ["dense-tag", "bm25-tag"]})
    fusion = Fusion.from_retrievers(cfg, {"dense-tag": dense, "bm25-tag": bm25})
    tax = parse_taxonomy(TAXONOMY)
    tagged = tag_videos(fusion, [v.vid for v in VIDEOS], tax)
    assert best(tagged, tax) == {**GOLD_LABELS, "silent": None}
    # both members rank food first for "cook": 2 / (60 + 1)
    assert tagged.videos[0].scores is not None
    assert tagged.videos[0].scores[0] == pytest.approx(2 / 61)
    assert "dense-tag" in (tagged.videos[3].reason or "")


# -- the LLM tagger, on the project's scripted server -----------------------------------------------

def llm_retriever(srv: ScriptedLLMServer, model: str = "scripted") -> Any:
    """An llm-metadata retriever on ``srv``; answers are cached by model name, so each scripted
    answer below goes to a model of its own."""
    from bench.llm.metadata_local import metadata_from_segments
    from bench.retrievers.llm_metadata import LLMMetadata

    cfg = RetrieverConfig(name="llm-tag", family="llm-metadata", params={
        "backend": "openai", "endpoint": {"base_url": srv.base_url, "model": model, "max_retries": 0}})
    r = LLMMetadata(cfg, "cpu")
    r.add_metadata([metadata_from_segments("cook", 20.0, [s for s in SEGMENTS if s.vid == "cook"])])
    return r


@pytest.fixture
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCENEBENCH_CACHE", str(tmp_path / "cache"))


@pytest.mark.usefixtures("_own_cache")
def test_llm_answer_becomes_scores_and_bad_answers_reasons() -> None:
    tax = parse_taxonomy(TAXONOMY)
    answer = json.dumps({"labels": [{"id": "food", "score": 0.9}, {"id": "cars", "score": 0.8},
                                    {"id": "science", "score": 0.1}]})
    with ScriptedLLMServer([Reply(answer)]) as srv:
        tagged = tag_videos(llm_retriever(srv), ["cook", "nope"], tax)
        prompt = srv.requests[0]["body"]["messages"][1]["content"]
    assert "food: Food / Еда" in prompt and "knead the dough" in prompt
    cook = tagged.videos[0]
    assert cook.scores is not None and cook.scores.tolist() == [0.9, -1.0, 0.1]
    assert tagged.videos[1].reason is not None and "no metadata" in tagged.videos[1].reason
    with ScriptedLLMServer([Reply('{"labels": [{"id": "cars"}]}')]) as srv:
        bad = tag_videos(llm_retriever(srv, "scripted-bad"), ["cook"], tax).videos[0]
    assert bad.scores is None and "no valid labels" in (bad.reason or "")
    with ScriptedLLMServer([Reply(status=500)]) as srv:
        down = tag_videos(llm_retriever(srv, "scripted-down"), ["cook"], tax).videos[0]
    assert down.scores is None and "backend failed" in (down.reason or "")


# -- linear probes ---------------------------------------------------------------------------------

def test_probe_separates_clusters_with_seeded_folds() -> None:
    rng = np.random.default_rng(0)
    centers = np.eye(3) * 5
    x = np.concatenate([centers[c] + rng.normal(0, 0.1, (6, 3)) for c in range(3)])
    y = [c for c in range(3) for _ in range(6)]
    folds, per_fold = cross_validate(x, y, 3)
    assert folds == 5 and all(f["top1"] == 1.0 for f in per_fold)
    assert cross_validate(x, y, 3)[1] == per_fold  # seeded
    with pytest.raises(BadInput, match="at least two videos"):
        cross_validate(x[:7], y[:7], 3)


def test_mean_ci_by_hand() -> None:
    mean, half = mean_ci([0.5, 0.7, 0.9])
    # sd = 0.2, t(0.975, 2) = 4.302653; half = 4.302653 * 0.2 / sqrt(3)
    assert mean == pytest.approx(0.7) and half == pytest.approx(4.302653 * 0.2 / 3 ** 0.5, rel=1e-5)
    assert mean_ci([0.4]) == (0.4, 0.0)


# -- adapters and the CLI (real video files from synthetic-mini) --------------------------------------

def test_guess_lang() -> None:
    assert [guess_lang(t) for t in ("Еда", "料理", "Food")] == ["ru", "ja", "en"]


@pytest.fixture(scope="module")
def mini_files(synthetic_mini: Any) -> list[Path]:
    return sorted(Path(v.resolve(synthetic_mini.root)) for v in synthetic_mini.videos.values())


def test_folder_and_csv_adapters(tmp_path: Path, mini_files: list[Path]) -> None:
    root = tmp_path / "library"
    for i, (folder, f) in enumerate(zip(["001_Космос", "002_Животные"], mini_files, strict=True)):
        (root / folder).mkdir(parents=True)
        shutil.copy(f, root / folder / f"clip{i}.mp4")
    ts = build_folders(tmp_path / "out", BuildOptions(input=root))
    assert ts.taxonomy.ids == ["животные", "космос"]
    assert ts.taxonomy.labels[1].names == {"ru": "Космос"}
    assert {v.labels for v in ts.videos.values()} == {("космос",), ("животные",)}
    (root / "003_Empty").mkdir()
    with pytest.raises(BadInput, match="no video files"):
        build_folders(tmp_path / "out2", BuildOptions(input=root))

    csv = tmp_path / "list.csv"
    csv.write_text(f"path,label\n{mini_files[0]},Space\n{mini_files[1]},Animals\n", encoding="utf-8")
    ts = build_csv(tmp_path / "out3", BuildOptions(input=csv))
    assert sorted(ts.taxonomy.ids) == ["animals", "space"] and len(ts.videos) == 2
    csv.write_text(f"{mini_files[0]},\n", encoding="utf-8")
    with pytest.raises(BadInput, match=r"list.csv:1: expected two non-empty columns"):
        build_csv(tmp_path / "out4", BuildOptions(input=csv))


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """``python -m bench ARGV`` in this process: (exit code, the one JSON document on stdout or
    None, stderr)."""
    from bench.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    if "--json" not in argv or code != 0:
        return code, None, err
    doc, end = json.JSONDecoder().raw_decode(out)
    assert out[end:].strip() == "", "more than one JSON document on stdout"
    return code, doc, err


def test_cli_tag_and_run_on_a_tagging_set(tmp_path: Path, mini_files: list[Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    tax = tmp_path / "taxonomy.yaml"
    tax.write_text(yaml.safe_dump({"labels": [
        {"id": "space", "names": {"en": "Space"}, "description": {"en": "astronaut, launch tower, mission"}},
        {"id": "food", "names": {"en": "Food"}, "description": {"en": "coffee, kitchen"}},
        {"id": "animals", "names": {"en": "Animals"}, "description": {"en": "cat, dog"}}]}), encoding="utf-8")
    code, doc, err = cli(capsys, "tag", "--video", str(mini_files[0]), "--taxonomy", str(tax),
                         "--retriever", "bm25-text", "--top-k", "2", "--json")
    assert code == 0, err
    (video,) = doc["videos"]
    assert doc["family"] == "bm25-text" and len(video["labels"]) == 2
    assert video["labels"][0]["id"] == "space" and video["labels"][0]["names"] == {"en": "Space"}
    code, _, err = cli(capsys, "tag", "--video", str(mini_files[0]), "--taxonomy", str(tmp_path / "no.yaml"))
    assert code == 2 and err.count("\n") == 1 and "cannot read the taxonomy" in err

    root = tmp_path / "set"
    root.mkdir()
    shutil.copy(tax, root / "taxonomy.yaml")
    rows = [{"vid": "mission", "path": str(mini_files[0]), "duration": 12.0, "labels": ["space"],
             "lang": "en"},
            {"vid": "garden", "path": str(mini_files[1]), "duration": 12.0, "labels": ["animals"]}]
    (root / "videos.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    code, doc, err = cli(capsys, "run", "--dataset", str(root), "--retriever", "bm25-text",
                         "--out", str(tmp_path / "res"), "--json")
    assert code == 0, err
    (row,) = doc["results"]
    assert row["task"] == "tagging" and row["status"] == "ok" and "mode" not in row
    assert set(row["metrics"]) == {"top1", "top5", "top10", "macro_f1"}
    assert row["metrics"]["top1"] == 0.5 and row["metrics"]["top5"] == 1.0
    assert row["metrics_by_lang"]["en"]["top1"] == 1.0
    assert row["probe"] is None  # bm25 stores no embeddings to probe
    assert "garden" in row["video_errors"]  # no text of it names a label: a reason, not a guess
    saved = json.loads(Path(row["results_path"]).read_text(encoding="utf-8"))
    assert saved["task"] == "tagging" and saved["schema_version"] == 5
    code, doc, err = cli(capsys, "run", "--dataset", str(root), "--retriever", "chance-random",
                         "--out", str(tmp_path / "res"), "--json")
    (row,) = doc["results"]
    assert code == 0 and row["status"] == "unavailable" and "no zero-shot tagger" in row["reason"]


def test_space_tag_tab_handler(tmp_path: Path, mini_files: list[Path]) -> None:
    from types import SimpleNamespace

    from bench.workspace import Workspace
    from demo.tag_tab import default_taxonomy, tag_handler

    app: Any = SimpleNamespace(workspace=Workspace(device="cpu"))
    assert tag_handler(app, None, None, None, "ru") == "Upload one or more videos to tag."
    assert [lb.id for lb in load_taxonomy_file(default_taxonomy())][:2] == ["food", "science"]
    text = tag_handler(app, [str(mini_files[0])], None, "bm25-text", "ru")
    assert text.startswith("Method `bm25-text` (bm25-text; windows aggregated by max).")
    # it speaks of the astronaut and of coffee in the kitchen: both labels, Russian names
    assert "Космос (`space`)" in text and "Еда (`food`)" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text("labels: []\n", encoding="utf-8")
    got = tag_handler(app, [str(mini_files[0])], str(bad), "bm25-text", "en")
    assert got.startswith("**Could not tag:**")


def test_the_space_has_a_tag_tab() -> None:
    import gradio as gr

    from demo.app import build
    from demo.handlers import App

    demo = build(App(None))
    tabs = [b.label for b in demo.blocks.values() if isinstance(b, gr.Tab)]
    assert "Tag" in tabs and "Search" in tabs


def load_taxonomy_file(path: Path) -> Any:
    from bench.datasets.tagging import load_taxonomy

    return load_taxonomy(path).labels


def test_leaderboard_shows_the_tagging_task_and_the_probe_apart() -> None:
    from bench.eval.report import leaderboard_rows, markdown
    from bench.eval.results import ResultFile

    probe = {"trained": True, "folds": 3, "mean": {"top1": 0.5}, "ci95": {"top1": 0.25}}
    rows = [ResultFile(task="tagging", retriever=name, family="dense-text", config_revision="1",
                       dataset="tags", split="test", status="ok", n_queries=4,
                       metrics={"top1": t1, "top5": 1.0, "top10": 1.0, "macro_f1": 0.5}, probe=probe)
            for name, t1 in (("a", 0.25), ("b", 0.75))]
    text = markdown(rows)
    assert "## tags · test · tagging (sorted by top1)" in text
    assert "| 1 | `b` | dense-text | 0.750 | 1.000 | 1.000 | 0.500 |" in text
    assert "trained linear probe: top1 0.500 ± 0.250 (3-fold)" in text
    assert [r["task"] for r in leaderboard_rows(rows)] == ["tagging", "tagging"]


def test_embedded_tagging_set_is_consistent_without_building() -> None:
    from bench.datasets import BUILDERS, TAGGING_SETS
    from bench.datasets.synthetic.spec import load_spec, spec_path
    from bench.datasets.tagging import build_synthetic_tags, load_taxonomy, read_labels

    assert BUILDERS.get("synthetic-tags-v1") is build_synthetic_tags and "synthetic-tags-v1" in TAGGING_SETS
    assert BUILDERS.get("tagging-folders") is build_folders and BUILDERS.get("tagging-csv") is build_csv
    path = spec_path("synthetic-tags-v1")
    spec, tax = load_spec(path), load_taxonomy(path.parent / "taxonomy.yaml")
    rows = read_labels(path.parent / "labels.yaml")
    assert set(rows) == {v.vid for v in spec.videos} and len(rows) == 24
    assert tax.languages == ["en", "ja", "ru"] and len(tax.labels) == 8
    for labels, tags in rows.values():
        assert set(labels) <= set(tax.ids) and len(tags) == 1
    # every label is revealed once by each cue
    cues = sorted((labels[0], tags[0]) for labels, tags in rows.values())
    assert cues == sorted((lab, cue) for lab in tax.ids for cue in ("speech", "onscreen-text", "visual"))
