"""Timestamps and the robust parsing/validation of LLM scene answers."""

from __future__ import annotations

import json

import pytest

from bench.llm.parsing import (
    MAX_DESCRIPTION_CHARS,
    MAX_EVIDENCE_ITEMS,
    InvalidOutput,
    Scene,
    extract_json,
    format_range,
    format_timestamp,
    merge_same_scenes,
    parse_scenes,
    parse_time_range,
    parse_timestamp,
)


@pytest.mark.parametrize(("token", "seconds"), [
    ("00:00", 0.0), ("0:05", 5.0), ("1:05", 65.0), ("12:34", 754.0), ("99:59", 5999.0),
    ("1:02:03", 3723.0), ("01:00:00", 3600.0), ("00:07.5", 7.5), ("00:07,25", 7.25),
])
def test_parse_timestamp(token: str, seconds: float) -> None:
    assert parse_timestamp(token) == seconds


@pytest.mark.parametrize("token", ["00:60", "1:60:00", "abc", "12", "1:2:3:4"])
def test_parse_timestamp_rejects(token: str) -> None:
    with pytest.raises(InvalidOutput):
        parse_timestamp(token)


@pytest.mark.parametrize(("text", "expected"), [
    ("00:05-00:10", (5.0, 10.0)),
    ("0:05 – 0:10", (5.0, 10.0)),
    ("[01:00:05 to 01:00:10]", (3605.0, 3610.0)),
    ("00:10-00:05", (10.0, 5.0)),  # order kept here; parse_scenes swaps
    ("at 00:42", (42.0, 42.0)),
    ("12s - 20s", (12.0, 20.0)),
])
def test_parse_time_range(text: str, expected: tuple[float, float]) -> None:
    assert parse_time_range(text) == expected


def test_format_timestamps() -> None:
    assert format_timestamp(0) == "00:00"
    assert format_timestamp(65.9) == "01:05"
    assert format_timestamp(3723, hours=True) == "01:02:03"
    assert format_timestamp(3723) == "62:03"
    # the range covers the entry: start rounds down, end up
    assert format_range(5.4, 9.2) == "00:05-00:10"
    assert format_range(5.0, 9.0) == "00:05-00:09"


SCENES = '[{"Timestamp": "00:05-00:10", "Description": "a dog", "Evidence": ["dog"], "Confidence": 0.9}]'


@pytest.mark.parametrize("answer", [
    SCENES,
    f"```json\n{SCENES}\n```",
    f"Here are the scenes:\n```\n{SCENES}\n```\nLet me know if you need more.",
    f"{SCENES}\n\nThese scenes show a dog [see above].",
    f"<think>the [dog] is at 00:05</think>{SCENES}",
    SCENES.replace('"', "'"),
    SCENES[:-1] + ",]",  # trailing comma
    '{"scenes": ' + SCENES + "}",
    '{"Timestamp": "00:05-00:10", "Description": "a dog", "Evidence": ["dog"], "Confidence": 0.9}',
])
def test_parse_scenes_accepts_common_shapes(answer: str) -> None:
    parsed = parse_scenes(answer, 60.0)
    assert [(s.start_s, s.end_s) for s in parsed.scenes] == [(5.0, 10.0)]
    assert parsed.scenes[0].description == "a dog"
    assert parsed.scenes[0].confidence == pytest.approx(0.9)


def test_single_quotes_with_apostrophes_and_python_literals() -> None:
    answer = "[{'Timestamp': '0:05-0:09', 'Description': \"the dog's bowl\", 'Evidence': None}]"
    (scene,) = parse_scenes(answer, 60.0).scenes
    assert (scene.start_s, scene.end_s, scene.description, scene.evidence) == (5.0, 9.0, "the dog's bowl", ())


def test_cut_off_answer_keeps_complete_objects() -> None:
    answer = ('[{"Timestamp": "00:05-00:10", "Description": "a"}, '
              '{"Timestamp": "00:20-00:30", "Description": "b"}, {"Timestamp": "00:4')
    parsed = parse_scenes(answer, 60.0)
    assert [(s.start_s, s.end_s) for s in parsed.scenes] == [(5.0, 10.0), (20.0, 30.0)]


def test_ranges_past_duration_are_clipped_or_dropped() -> None:
    answer = json.dumps([{"Timestamp": "00:50-01:30", "Description": "clipped"},
                         {"Timestamp": "02:00-02:30", "Description": "dropped"}])
    parsed = parse_scenes(answer, 70.0)
    assert [(s.start_s, s.end_s) for s in parsed.scenes] == [(50.0, 70.0)]
    assert any("past the duration" in n for n in parsed.notes)
    assert any("clipped" in n for n in parsed.notes)


def test_reversed_range_is_swapped() -> None:
    parsed = parse_scenes('[{"Timestamp": "00:30-00:20", "Description": "x"}]', 60.0)
    assert [(s.start_s, s.end_s) for s in parsed.scenes] == [(20.0, 30.0)]
    assert any("swapped" in n for n in parsed.notes)


def test_point_becomes_two_second_window() -> None:
    (scene,) = parse_scenes('[{"Timestamp": "00:30", "Description": "x"}]', 60.0).scenes
    assert (scene.start_s, scene.end_s) == (29.0, 31.0)
    (scene,) = parse_scenes('[{"Timestamp": "00:00-00:00", "Description": "x"}]', 60.0).scenes
    assert (scene.start_s, scene.end_s) == (0.0, 1.0)


def test_same_moment_merges_and_duplicates_collapse() -> None:
    answer = json.dumps([
        {"Timestamp": "00:10-00:20", "Description": "first", "Evidence": ["e1"], "Confidence": 0.4},
        {"Timestamp": "00:40-00:45", "Description": "second"},
        {"Timestamp": "00:11-00:21", "Description": "same as first", "Evidence": ["e2"], "Confidence": 0.8},
        {"Timestamp": "00:40-00:45", "Description": "duplicate of second"},
    ])
    scenes = parse_scenes(answer, 60.0).scenes
    assert [(s.start_s, s.end_s, s.description, s.rank) for s in scenes] == [
        (10.0, 20.0, "first", 0), (40.0, 45.0, "second", 1)]
    assert scenes[0].evidence == ("e1", "e2")
    assert scenes[0].confidence == pytest.approx(0.8)


def test_a_long_vague_scene_does_not_swallow_a_short_one() -> None:
    scenes = [Scene(10.0, 14.0, "precise", rank=0), Scene(0.0, 120.0, "vague", rank=1),
              Scene(12.0, 30.0, "neighbour", rank=2)]
    assert [(s.start_s, s.end_s) for s in merge_same_scenes(scenes)] == [
        (10.0, 14.0), (0.0, 120.0), (12.0, 30.0)]


def test_output_is_bounded() -> None:
    many = [{"Timestamp": f"00:{i:02d}-00:{i:02d}.5", "Description": "d" * 1000,
             "Evidence": [f"ev{j}" * 10 for j in range(20)]} for i in range(0, 20, 2)]
    scenes = parse_scenes(json.dumps(many), 60.0, max_scenes=3).scenes
    assert len(scenes) == 3
    assert all(len(s.description) <= MAX_DESCRIPTION_CHARS for s in scenes)
    assert all(len(s.evidence) <= MAX_EVIDENCE_ITEMS for s in scenes)
    assert all(0.0 <= s.start_s < s.end_s <= 60.0 for s in scenes)


def test_scores_from_rank_and_confidence() -> None:
    answer = json.dumps([{"Timestamp": "00:01-00:02", "Description": "a"},
                         {"Timestamp": "00:05-00:06", "Description": "b", "Confidence": 1.0},
                         {"Timestamp": "00:10-00:12", "Description": "c", "Confidence": "40%"}])
    scores = [s.score for s in parse_scenes(answer, 60.0).scenes]
    assert scores == pytest.approx([1.0, 0.5, (1 / 3) * 0.7])


@pytest.mark.parametrize(("value", "expected"), [(0.7, 0.7), (85, 0.85), ("high", 0.9), ("0.25", 0.25),
                                                 ("n/a", None), (-1, None), (500, None)])
def test_confidence_forms(value: object, expected: float | None) -> None:
    answer = json.dumps([{"Timestamp": "00:01-00:02", "Description": "a", "Confidence": value}])
    assert parse_scenes(answer, 60.0).scenes[0].confidence == (
        None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(("answer", "why"), [
    ("", "empty"),
    ("I could not find the scene.", "no JSON list"),
    ("[]", "empty list"),
    ('[{"Description": "no time"}]', "no Timestamp"),
    ('[{"Timestamp": "99:00-99:59", "Description": "late"}]', "past the duration"),
    ("\n\n\x00\x01 garbage ]]]{{{", "no JSON"),
])
def test_no_valid_scenes(answer: str, why: str) -> None:
    with pytest.raises(InvalidOutput, match="^no valid scenes: ") as err:
        parse_scenes(answer, 60.0)
    assert why in str(err.value)


def test_empty_list_allowed_for_chunks() -> None:
    assert parse_scenes("[]", 60.0, allow_empty=True).scenes == []


def test_extract_json_ignores_bracketed_prose() -> None:
    assert extract_json('See [visual info] and [texts]: [{"Timestamp": "00:01-00:02"}]') == [
        {"Timestamp": "00:01-00:02"}]


def test_string_items() -> None:
    (scene,) = parse_scenes('["00:05-00:10: the dog barks"]', 60.0).scenes
    assert (scene.start_s, scene.end_s, scene.description) == (5.0, 10.0, "the dog barks")
