"""CI regression gate: a fresh run of the gate's configurations on synthetic-v1 must match the
committed snapshot (snapshot/, the same result files the Space's leaderboard shows).

BM25, dense and fusion run on real Whisper transcripts and real OCR of the set; the tiny
random-init visual models are held only to catch code changes; the chance floors are seeded.
Every one of them is deterministic on the CPU, so the gate holds them in an exact two-sided
band (snapshot/gate.yaml). After an intended change of quality, refresh the snapshot with
``python scripts/refresh_snapshot.py``.
"""

from __future__ import annotations

from bench.eval.regression import compare
from bench.eval.runner import run
from bench.eval.snapshot import load_policy, snapshot_dir, snapshot_results


def test_offline_configurations_match_the_snapshot(synthetic_v1, tmp_path):
    policy = load_policy(snapshot_dir())
    assert policy is not None and policy.datasets == ["synthetic-v1"]
    results = run(policy.datasets, policy.configurations, out=tmp_path, device="cpu",
                  progress=False)
    assert {(r.retriever, r.mode) for r in results} == {
        (name, mode) for name in policy.configurations for mode in ("grounding", "corpus")}
    not_ok = [(r.retriever, r.mode, r.reason) for r in results if r.status != "ok"]
    assert not not_ok
    outcome = compare(tmp_path, snapshot_dir())
    assert outcome.ok, "\n" + outcome.table()
    held = {(r.key, r.metric) for r in outcome.rows}
    # every gate configuration, mode and per-tag floor is held, in its exact band
    for r in results:
        assert any(k[0] == r.retriever and k[2] == r.split_key for k, _ in held), r.retriever
    assert {row.tolerance for row in outcome.rows} == {policy.exact_tolerance}
    assert (("bm25-text", "synthetic-v1", "test"), "tag:onscreen-text:R1@0.5") in held
    assert (("bm25-text", "synthetic-v1", "test"), "tag:speech:R1@0.5") in held
    by_name = {(r.retriever, r.mode): r for r in results}
    tiny = by_name[("clip-frames-tiny", "grounding")]
    assert tiny.random_init and not by_name[("bm25-text", "grounding")].random_init


def test_the_snapshot_is_what_the_runner_writes():
    rows = snapshot_results()
    policy = load_policy(snapshot_dir())
    assert policy is not None
    keys = {(r.retriever, r.dataset, r.split_key) for r in rows}
    for name in policy.configurations:
        for split in ("test", "test-corpus"):
            assert (name, "synthetic-v1", split) in keys, (name, split)
    assert all(r.status == "ok" for r in rows)
    # the leaderboard's chance floors and the confidence figures come with the snapshot
    assert {"chance-random", "chance-prior"} <= {r.retriever for r in rows}
    v2 = [r for r in rows if r.dataset == "synthetic-v2" and r.mode == "grounding"]
    assert v2 and all(r.calibration is not None for r in v2)
    assert any(r.calibration is not None and r.calibration.status == "calibrated" for r in v2)
