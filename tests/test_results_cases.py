"""Result files: refusals and edge paths that no other test pins (found by mutation testing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.errors import BadInput
from bench.eval.results import (
    MIGRATIONS,
    RESULT_SCHEMA_VERSION,
    ResultFile,
    find_random_init,
    iter_results,
    load_result,
    parse_result,
    predictions_path,
    save_result,
)

BASE = {"retriever": "bm25-text", "family": "bm25-text", "config_revision": "1",
        "dataset": "synthetic-v1", "split": "test", "status": "ok"}


def test_documents_that_are_not_results_or_not_this_version_are_refused() -> None:
    with pytest.raises(BadInput, match="not a SceneBench result file"):
        parse_result({"schema_version": 4, "family": "x"})  # no retriever
    with pytest.raises(BadInput, match="not a SceneBench result file"):
        parse_result({"retriever": "x"})  # no schema_version
    with pytest.raises(BadInput, match=r"'schema_version' must be an integer, got '4'"):
        parse_result({**BASE, "schema_version": "4"})
    with pytest.raises(BadInput, match="no migration from result schema v0"):
        parse_result({**BASE, "schema_version": 0})
    with pytest.raises(BadInput, match=r"r\.json: field 'status': "):
        parse_result({**BASE, "schema_version": RESULT_SCHEMA_VERSION, "status": "fine"}, "r.json")


def test_a_current_document_is_read_as_is() -> None:
    r = parse_result({**BASE, "schema_version": RESULT_SCHEMA_VERSION, "backend_failures": 3})
    assert r.schema_version == RESULT_SCHEMA_VERSION and r.backend_failures == 3


def test_v1_breakdown_moves_to_tag_and_language_metrics() -> None:
    r = parse_result({**BASE, "schema_version": 1, "breakdown": {"tags": {"ocr": {"mIoU": 0.5}}}})
    assert (r.mode, r.metrics_by_tag, r.metrics_by_lang) == ("grounding", {"ocr": {"mIoU": 0.5}}, {})
    assert parse_result({**BASE, "schema_version": 1, "breakdown": None}).metrics_by_tag == {}


def test_random_init_is_found_at_any_depth_and_only_when_true() -> None:
    assert find_random_init({"members": {"a": {"models": [{"random_init": True}]}}}) is True
    assert find_random_init({"models": ({"random_init": False}, {"id": "x"})}) is False
    assert find_random_init([{"random_init": "yes"}]) is False


def test_predictions_keep_their_text_and_are_only_written_when_given(tmp_path: Path) -> None:
    r = ResultFile(**BASE)  # type: ignore[arg-type]
    save_result(tmp_path, r)
    assert not predictions_path(tmp_path, r).exists()
    save_result(tmp_path, r, [{"qid": 1, "query": "猫がピアノを弾く"}])
    assert predictions_path(tmp_path, r).read_text(encoding="utf-8") == \
        '{"qid": 1, "query": "猫がピアノを弾く"}\n'


def test_iter_results_reads_one_file_and_refuses_a_missing_folder(tmp_path: Path) -> None:
    r = ResultFile(**BASE)  # type: ignore[arg-type]
    path = save_result(tmp_path, r)
    assert [(p, x) for p, x in iter_results(path)] == [(path, r)]
    with pytest.raises(BadInput, match="results directory not found"):
        list(iter_results(tmp_path / "nowhere"))


def test_a_v1_document_without_a_breakdown_loads() -> None:
    r = parse_result({**BASE, "schema_version": 1, "metrics": {"mIoU": 0.25}})
    assert (r.metrics, r.metrics_by_tag, r.metrics_by_lang) == ({"mIoU": 0.25}, {}, {})


def test_errors_name_the_source_and_the_nested_field() -> None:
    with pytest.raises(BadInput, match=r"^<memory>: not a SceneBench result file"):
        parse_result([])
    bad = {**BASE, "schema_version": RESULT_SCHEMA_VERSION, "metrics_by_tag": {"ocr": {"mIoU": "x"}}}
    with pytest.raises(BadInput, match=r"^r\.json: field 'metrics_by_tag\.ocr\.mIoU': "):
        parse_result(bad, "r.json")


def test_result_files_are_indented_json_and_predictions_one_row_a_line(tmp_path: Path) -> None:
    r = ResultFile(**BASE)  # type: ignore[arg-type]
    path = save_result(tmp_path, r, [{"qid": 1}, {"qid": 2}])
    head = (f'{{\n  "schema_version": {RESULT_SCHEMA_VERSION},\n  "task": "grounding",\n'
            '  "retriever": "bm25-text",\n')
    assert path.read_text(encoding="utf-8").startswith(head)
    assert predictions_path(tmp_path, r).read_text(encoding="utf-8") == '{"qid": 1}\n{"qid": 2}\n'


def test_each_migration_moves_exactly_one_version_and_keeps_what_it_does_not_add() -> None:
    assert sorted(MIGRATIONS) == list(range(1, RESULT_SCHEMA_VERSION))  # a step from every old version
    for version, step in MIGRATIONS.items():
        before = {"schema_version": version, "retriever": "bm25-text", "extra": [1]}
        after = step(before)
        assert after["schema_version"] == version + 1, f"v{version}"
        assert after["retriever"] == "bm25-text" and after["extra"] == [1]
        assert before["schema_version"] == version  # the input is not changed in place


def test_a_result_file_is_read_as_utf_8_under_an_ascii_locale(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    r = ResultFile(**BASE, metrics_by_tag={"日本語": {"r1": 0.5}})  # type: ignore[arg-type]
    path = save_result(tmp_path, r)
    assert "日本語".encode() in path.read_bytes()  # written as UTF-8, not escaped
    # a machine whose locale encoding is plain ASCII: text opened without an encoding is ASCII
    monkeypatch.setattr(io, "text_encoding", lambda encoding, stacklevel=2: encoding or "ascii")
    with pytest.raises(UnicodeDecodeError):
        path.read_text()  # the stand-in locale is in force
    assert load_result(path).metrics_by_tag == {"日本語": {"r1": 0.5}}