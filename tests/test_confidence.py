"""Absent queries, calibrated confidence, the chance floors and the results snapshot, with
hand-made queries and predictions whose expectations are worked out by hand."""

from __future__ import annotations

import json
import math

import pytest

from bench.errors import BadInput
from bench.eval import report
from bench.eval.calibration import (
    KERNEL_BANDWIDTH,
    MAX_FALSE_ALARM,
    Calibration,
    calibrate,
    confidence_metrics,
    signals,
    split,
)
from bench.eval.regression import compare
from bench.eval.results import ResultFile, load_result, parse_result, save_result
from bench.eval.snapshot import load_policy, refresh
from bench.evidence import FusedEvidence, MemberMatch, NoEvidence
from bench.types import Moment, Prediction, Query


def q(qid: str, windows: list[tuple[float, float]], tags: list[str] | None = None) -> Query:
    return Query(qid=qid, query=f"query {qid}", vid="v", duration=60.0,
                 relevant_windows=windows, tags=tags or (["absent"] if not windows else ["speech"]))


def pred(qid: str, *windows: tuple[float, float, float]) -> Prediction:
    return Prediction(qid=qid, query=f"query {qid}", vid="v",
                      pred_relevant_windows=[list(w) for w in windows])


def top(start: float, end: float, score: float) -> Moment:
    return Moment("v", start, end, score)


# --- absent queries in rows and specs -------------------------------------------------------

def test_a_query_tagged_absent_may_have_no_windows_and_no_others():
    row = {"qid": "a", "query": "ピザを切る", "vid": "v", "duration": 10.0,
           "relevant_windows": [], "tags": ["absent"]}
    assert Query.from_row(row).is_absent
    with pytest.raises(BadInput, match="must be \\[\\] for a query tagged 'absent'"):
        Query.from_row({**row, "relevant_windows": [[1, 2]]})
    # without the tag, a query without windows is just unscored, not absent
    assert not Query.from_row({**row, "tags": []}).is_absent


def test_the_spec_refuses_an_absent_query_that_points_at_scenes(tmp_path):
    from bench.datasets.synthetic.spec import load_spec, spec_path

    spec = load_spec(spec_path("synthetic-v2"))
    absent = [(v.vid, qs) for v in spec.videos for qs in v.queries if qs.tag == "absent"]
    assert {qs.lang for _, qs in absent} == {"en", "ja", "zh", "ru", "pt"}
    assert any(qs.query == "ピザを切る" for _, qs in absent)
    part = tmp_path / "spec.yaml"
    text = spec_path("synthetic-v2").read_text(encoding="utf-8").replace(
        "parts: [extent.yaml, languages.yaml, absent.yaml]", "parts: [bad.yaml]")
    part.write_text(text, encoding="utf-8")
    (tmp_path / "bad.yaml").write_text(
        "queries:\n  syn01-space-museum:\n"
        "    - {query: pizza, lang: en, tag: absent, scenes: [0]}\n", encoding="utf-8")
    with pytest.raises(BadInput, match="an absent query has no scenes, image, cues or event"):
        load_spec(part)


# --- calibration ----------------------------------------------------------------------------

def test_a_calibration_split_without_absent_queries_gives_no_threshold():
    queries = [q(f"p{i}", [(0.0, 10.0)]) for i in range(6)]
    preds = {x.qid: pred(x.qid, (0.0, 10.0, 0.9)) for x in queries}
    tops = {x.qid: top(0.0, 10.0, 0.9) for x in queries}
    cal, held_out = calibrate(queries, preds, tops)
    assert cal.status == "uncalibrated" and cal.threshold is None
    assert "no absent queries" in (cal.reason or "")
    assert confidence_metrics(held_out, preds, tops, cal) == {}
    assert cal.confident(tops["p0"], "query p0") is None


def test_the_split_is_seeded_and_stratified():
    queries = [q(f"a{i}", []) for i in range(10)] + [q(f"p{i}", [(0.0, 5.0)]) for i in range(10)]
    cal, held = split(queries)
    assert sum(x.is_absent for x in cal) == 5 and sum(x.is_absent for x in held) == 5
    assert len(cal) == len(held) == 10
    assert [x.qid for x in split(queries)[0]] == [x.qid for x in cal]  # the same every time
    assert [x.qid for x in split(queries, seed=1)[0]] != [x.qid for x in cal]


def test_threshold_keeps_false_alarms_within_target_and_metrics_count_by_hand():
    # 10 absent queries with top scores 0.1 .. 1.0, 10 present ones
    absent = [q(f"a{i}", []) for i in range(10)]
    present = [q(f"p{i}", [(10.0, 20.0)]) for i in range(10)]
    queries = absent + present
    tops = {x.qid: top(0.0, 5.0, (i + 1) / 10) for i, x in enumerate(absent)}
    tops.update({x.qid: top(10.0, 20.0, 0.95) for x in present})
    preds = {x.qid: pred(x.qid, (m.start, m.end, m.score)) for x, m in
             ((x, tops[x.qid]) for x in queries) if m is not None}
    cal, held_out = calibrate(queries, preds, tops, max_false_alarm=0.1, bandwidth=0.0)
    assert cal.status == "calibrated" and cal.n_calibration_absent == 5
    # counted values (no kernel): five calibration absent scores; at most floor(0.1 * 5) = 0
    # may pass: the threshold is
    # just above the strongest absent moment's strength (4 of 5 beaten = 0.8)
    assert cal.threshold == pytest.approx(0.8) and cal.threshold > 0.8
    assert cal.calibration_false_alarm == 0.0 and cal.calibration_confident_hit == 1.0
    strongest = max(tops[x.qid].score for x in absent if any(c.qid == x.qid for c in [*split(queries)[0]]))
    assert cal.confident(top(0.0, 1.0, strongest + 1e-9), "query") is True
    assert cal.confident(top(0.0, 1.0, strongest), "query") is False
    got = confidence_metrics(held_out, preds, tops, cal)
    held_absent = [x for x in held_out if x.is_absent]
    expected_fa = sum(tops[x.qid].score > strongest for x in held_absent) / len(held_absent)
    assert got == {"false_alarm": expected_fa, "confident_hit@0.5": 1.0}


def test_the_kernel_smooths_the_count_of_absent_values_below_a_moment():
    # three absent values around 0.2, two absent queries without the signal (below all)
    cal = Calibration(status="calibrated", threshold=0.95, n_calibration_absent=5,
                      bandwidth=1.0, absent_signals={"score": [0.1, 0.2, 0.3]})
    # at the middle value the kernels are symmetric: 2 + (1 + 0.5 + 0) smoothed to 1.5
    assert cal.strength(top(0.0, 1.0, 0.2), "x") == pytest.approx(3.5 / 5)
    # Silverman's width: 1.06 * sd (0.1) * 3 ** -0.2; 0.3 is 1.175 widths above 0.2
    width = 1.06 * 0.1 * 3 ** -0.2
    phi = [0.5 * math.erfc(-(0.3 - x) / (width * math.sqrt(2))) for x in (0.1, 0.2, 0.3)]
    assert cal.strength(top(0.0, 1.0, 0.3), "x") == pytest.approx((2 + sum(phi)) / 5)
    # counted, 0.3 beats only the two values below it; smoothed, part of itself too
    counted = cal.model_copy(update={"bandwidth": 0.0})
    assert counted.strength(top(0.0, 1.0, 0.3), "x") == pytest.approx(4 / 5)
    assert cal.strength(top(0.0, 1.0, 0.3), "x") > 4 / 5
    assert cal.strength(top(0.0, 1.0, 5.0), "x") == pytest.approx(1.0)
    assert cal.confident(top(0.0, 1.0, 5.0), "x") and not cal.confident(top(0.0, 1.0, 0.3), "x")


def test_calibrate_sets_the_smoothed_quantile_as_threshold():
    absent = [q(f"a{i}", []) for i in range(10)]
    present = [q(f"p{i}", [(10.0, 20.0)]) for i in range(10)]
    tops = {x.qid: top(0.0, 5.0, (i + 1) / 10) for i, x in enumerate(absent)}
    tops.update({x.qid: top(10.0, 20.0, 5.0) for x in present})
    preds = {x: pred(x, (m.start, m.end, m.score)) for x, m in tops.items()}
    cal, held_out = calibrate([*absent, *present], preds, tops)
    assert cal.bandwidth == KERNEL_BANDWIDTH and cal.max_false_alarm == MAX_FALSE_ALARM
    assert cal.threshold == pytest.approx(1.0 - MAX_FALSE_ALARM)
    # present tops far above every absent value are confident hits; no absent top reaches
    # the smoothed 95% quantile of five values spread over 0.1 .. 1.0
    assert cal.calibration_confident_hit == 1.0 and cal.calibration_false_alarm == 0.0
    assert confidence_metrics(held_out, preds, tops, cal)["confident_hit@0.5"] == 1.0


def test_a_miss_is_not_a_confident_hit_and_no_moment_is_not_a_false_alarm():
    queries = [q("a", []), q("p", [(10.0, 20.0)])]
    cal = Calibration(status="calibrated", threshold=0.5, n_calibration_absent=1,
                      absent_signals={"score": [0.3]})
    preds = {"p": pred("p", (30.0, 40.0, 0.9))}
    tops: dict[str, Moment | None] = {"a": None, "p": top(30.0, 40.0, 0.9)}
    assert confidence_metrics(queries, preds, tops, cal) == {"false_alarm": 0.0,
                                                             "confident_hit@0.5": 0.0}


def test_a_fused_moment_is_judged_on_its_members_scores():
    fused = Moment("v", 0.0, 5.0, 1 / 61, FusedEvidence("f", {
        "bm25": MemberMatch(1, 3.0, 0.0, 5.0, NoEvidence()),
        "dense": MemberMatch(4, 0.2, 0.0, 5.0, NoEvidence())}))
    assert signals(fused) == {"member:bm25": 3.0, "member:dense": 0.2}
    # absent queries never got a bm25 answer: any bm25 support beats all of them
    cal = Calibration(status="calibrated", threshold=0.9, n_calibration_absent=4,
                      absent_signals={"member:dense": [0.1, 0.3, 0.5, 0.7]})
    assert cal.strength(fused, "x") == 1.0 and cal.confident(fused, "x")
    dense_only = Moment("v", 0.0, 5.0, 1 / 61, FusedEvidence("f", {
        "dense": MemberMatch(1, 0.4, 0.0, 5.0, NoEvidence())}))
    assert cal.strength(dense_only, "x") == 0.5 and cal.confident(dense_only, "x") is False


def test_absent_queries_stay_out_of_r1_and_map():
    from bench.eval.evaluate import evaluate_predictions

    queries = [q("p", [(10.0, 20.0)]), q("a", [])]
    preds = [pred("p", (10.0, 20.0, 1.0)), pred("a", (0.0, 5.0, 1.0))]
    got = evaluate_predictions(queries, preds)
    assert got["n_queries"] == 1 and got["n_without_windows"] == 1
    assert got["R1@0.5"] == 1.0 and got["mAP"] == 1.0


# --- result files ---------------------------------------------------------------------------

def test_a_v3_result_file_migrates_without_a_threshold():
    doc = {"schema_version": 3, "retriever": "bm25-text", "family": "bm25-text",
           "config_revision": "1", "dataset": "toy", "split": "test", "status": "ok",
           "metrics": {"R1@0.5": 0.5}, "backend_failures": 0}
    r = parse_result(doc)
    assert r.schema_version == 5 and r.calibration is None and r.metrics == {"R1@0.5": 0.5}
    assert r.task == "grounding"


def result(name: str, r1: float, *, family: str | None = None, dataset: str = "toy",
           by_tag: dict[str, dict[str, float]] | None = None, **metrics: float) -> ResultFile:
    return ResultFile(retriever=name, family=family or name, config_revision="1", dataset=dataset,
                      split="test", status="ok", n_queries=10,
                      metrics={"R1@0.5": r1, "mIoU": r1, **metrics}, metrics_by_tag=by_tag or {},
                      created_at="2026-01-01T00:00:00+00:00")


def test_chance_rows_are_floors_never_ranked():
    rows = [result("chance-random", 0.1, family="chance"), result("bm25-text", 0.5),
            result("chance-prior", 0.2, family="chance"), result("dense", 0.05)]
    flat = report.leaderboard_rows(report.group(rows)[("toy", "test")])
    assert [(r["retriever"], r["rank"], r["floor"]) for r in flat] == [
        ("bm25-text", 1, False), ("dense", 2, False),
        ("chance-prior", None, True), ("chance-random", None, True)]
    assert flat[2]["note"].startswith("chance floor")
    md = report.markdown(rows)
    assert "| floor | `chance-prior` |" in md and "| 2 | `dense` |" in md


def test_plots_keep_their_labels_apart():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    tags = {t: {"R1@0.5": 0.1 * i} for i, t in enumerate(
        ["speech", "onscreen-text", "visual", "multi", "cross-lingual", "extent"])}
    rows = [result(f"configuration-with-a-long-name-{i}", 0.3 + 0.01 * i, by_tag=tags)
            for i in range(6)] + [result("chance-random", 0.1, family="chance", by_tag=tags)]
    for r in rows:
        r.timing = {"queries": {"p50_s": 0.01}, "video_s_per_wall_s": 5.0}
    figures = report.plot_figures(rows)
    assert set(figures) == {"toy · test · accuracy vs latency", "toy · test · accuracy vs index",
                            "toy · test · recall at IoU", "toy · test · by tag"}
    for name, fig in figures.items():
        FigureCanvasAgg(fig)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        boxes = []
        for ax in fig.axes:
            texts = [*ax.get_xticklabels(), *ax.get_yticklabels(), ax.title, ax.xaxis.label,
                     ax.yaxis.label, *(ax.get_legend().get_texts() if ax.get_legend() else [])]
            assert not ax.texts, f"{name}: a name written on the plot"
            boxes += [t.get_window_extent(renderer) for t in texts if t.get_text()]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert not a.overlaps(b), f"{name}: labels overlap"


# --- snapshot and gate ----------------------------------------------------------------------

POLICY = """datasets: [toy]
configurations: [bm25-text, dense]
deterministic: [bm25-text]
metrics: ["R1@0.5", "mIoU"]
tag_metrics: ["R1@0.5"]
"""


def test_the_gate_holds_deterministic_rows_exactly_and_skips_vacuous_metrics(tmp_path):
    snap = tmp_path / "snapshot"
    save_result(snap, result("bm25-text", 0.5, by_tag={"speech": {"R1@0.5": 0.9}}))
    save_result(snap, result("dense", 0.01))  # within 0.02 of zero: never held
    save_result(snap, result("other", 0.3))  # not in the policy: leaderboard only
    (snap / "gate.yaml").write_text(POLICY, encoding="utf-8")
    assert load_policy(snap) is not None
    fresh = tmp_path / "fresh"
    save_result(fresh, result("bm25-text", 0.5, by_tag={"speech": {"R1@0.5": 0.9}}))
    save_result(fresh, result("dense", 0.0))
    outcome = compare(fresh, snap)
    assert outcome.ok, outcome.table()
    assert sorted((r.key[0], r.metric, r.tolerance) for r in outcome.rows) == [
        ("bm25-text", "R1@0.5", 0.001), ("bm25-text", "mIoU", 0.001),
        ("bm25-text", "tag:speech:R1@0.5", 0.001)]
    # a deterministic configuration that gets better fails too: the snapshot must be refreshed
    save_result(fresh, result("bm25-text", 0.52, by_tag={"speech": {"R1@0.5": 0.85}}))
    outcome = compare(fresh, snap)
    statuses = {r.metric: r.status for r in outcome.rows}
    assert not outcome.ok
    assert statuses == {"R1@0.5": "changed", "mIoU": "changed", "tag:speech:R1@0.5": "regressed"}


def test_refresh_replaces_entries_and_keeps_the_rest(tmp_path):
    snap = tmp_path / "snapshot"
    save_result(snap, result("bm25-text", 0.4))
    save_result(snap, result("kept", 0.3))
    run_dir = tmp_path / "run"
    save_result(run_dir, result("bm25-text", 0.6), [{"qid": "x"}])
    failed = result("broken", 0.0)
    failed.status = "failed"
    save_result(run_dir, failed)
    written = refresh(run_dir, snap)
    assert [p.relative_to(snap).as_posix() for p in written] == ["bm25-text/1/toy/test.json"]
    assert not list(snap.rglob("*.predictions.jsonl"))
    by_name = {load_result(p).retriever: load_result(p) for p in snap.rglob("*.json")}
    assert set(by_name) == {"bm25-text", "kept"} and by_name["bm25-text"].metrics["R1@0.5"] == 0.6
    with pytest.raises(BadInput, match="no result files"):
        refresh(tmp_path / "snapshot", tmp_path / "other", keep=["nothing"])


def test_a_snapshot_file_of_an_older_schema_is_migrated(tmp_path):
    path = tmp_path / "bm25-text" / "1" / "toy" / "test.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"schema_version": 2, "retriever": "bm25-text",
                                "family": "bm25-text", "config_revision": "1", "dataset": "toy",
                                "split": "test", "status": "ok", "metrics": {"R1@0.5": 0.5}}))
    from bench.eval.snapshot import snapshot_results

    (r,) = snapshot_results(tmp_path)
    assert r.schema_version == 5 and r.calibration is None and r.backend_failures == 0


# --- chance floors ------------------------------------------------------------------------

def chance(kind: str) -> object:
    from bench.retrievers import build_retriever
    from bench.retrievers.base import RetrieverConfig

    cfg = RetrieverConfig(name=f"chance-{kind}", family="chance",
                          params={"kind": kind, "learn_from": "synthetic-mini", "seed": 3})
    return build_retriever(cfg, "cpu")


def test_chance_floors_are_seeded_and_learn_from_other_queries(synthetic_mini):
    from bench.eval.runner import local_videos
    from bench.retrievers.chance import learn
    from bench.types import QueryInput

    videos = local_videos(synthetic_mini)
    asked = next(x for x in synthetic_mini.queries if x.vid and x.relevant_windows)
    qin = QueryInput.from_query(asked)
    rnd = chance("random")
    rnd.index(videos, None)
    first = rnd.search([qin], top_k=5, vids=[asked.vid])[0]
    again = rnd.search([qin], top_k=5, vids=[asked.vid])[0]
    assert [(m.start, m.end, m.score) for m in first] == [(m.start, m.end, m.score) for m in again]
    assert len(first) == 5 and all(0 <= m.start < m.end <= asked.duration + 1e-9 for m in first)
    prior = chance("prior")
    prior.index(videos, None)
    (top,) = prior.search([qin], top_k=1, vids=[asked.vid])[0]
    # the most common (start, length) bin of the other labelled windows, at its bin centre
    others = [w for w in learn(synthetic_mini) if w.text != asked.query]
    from collections import Counter

    (s_bin, l_bin), count = Counter((min(int(w.start_frac * 10), 9), min(int(w.length_frac * 10), 9))
                                    for w in others).most_common(1)[0]
    assert top.score == pytest.approx(count / len(others))
    assert top.end - top.start == pytest.approx(min((l_bin + 0.5) / 10 * asked.duration,
                                                    asked.duration))
    # Every candidate video gets the same relative guess with the same score: the prior never
    # tells the query's own video apart (a corpus search by chance stays at chance).
    tops = [prior.search([qin], top_k=1, vids=[v.vid])[0][0] for v in videos]
    assert len({t.score for t in tops}) == 1
