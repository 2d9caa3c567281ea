"""The dataset card (README.md) of a synthetic set, computed from its spec alone."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bench.datasets.synthetic.narration import NARRATION_LEAD_S, NARRATION_TAIL_S, SAMPLE_RATE
from bench.datasets.synthetic.spec import IMAGES, SynthSpec

LANG_NAMES = {"en": "English", "ja": "Japanese", "zh": "Chinese", "ru": "Russian", "pt": "Portuguese"}


def spec_counts(spec: SynthSpec) -> dict[str, Counter[str]]:
    """Query counts by tag and by language, and video counts by feature, straight from the spec."""
    tags: Counter[str] = Counter(q.tag for v in spec.videos for q in v.queries)
    langs: Counter[str] = Counter(q.lang for v in spec.videos for q in v.queries)
    features: Counter[str] = Counter()
    for v in spec.videos:
        features["with narration" if v.audio else "without audio"] += 1
        features["variable frame rate"] += v.vfr
        features["rotated (display matrix)"] += bool(v.rotation)
    return {"tags": tags, "langs": langs, "features": features}


MOOD_NOTE = (
    "Scenes built for a mood carry `music` (synthesized in numpy: chords, bass and a melody at a set "
    "tempo, mode, RMS level, timbre and pitch), `look` (exposure, saturation, tint and camera "
    "motion applied to the photograph) and `mood`, the valence and arousal (-2..+2) the scene was "
    "built to give. These intended values follow from the construction (fast, loud, major, bright "
    "and vivid for high valence and arousal, and so on); they are not ratings by people, so they "
    "check that an estimator reads the cues, not that it agrees with listeners.")


def render_card(spec: SynthSpec, spec_file: Path) -> str:
    """The dataset card (README.md) of the set ``spec`` describes; computed from the spec alone."""
    counts = spec_counts(spec)
    n_queries = sum(counts["tags"].values())
    durations = [sum(s.duration_s for s in v.scenes) for v in spec.videos]
    non_en = n_queries - counts["langs"].get("en", 0)
    lines = [
        f"# {spec.name}: {spec.title}", "",
        spec.summary.strip(), "",
        "## At a glance", "",
        f"- {len(spec.videos)} videos, {min(durations):g}–{max(durations):g} s each, "
        f"{sum(durations):g} s in all; {sum(len(v.scenes) for v in spec.videos)} scenes",
        f"- {n_queries} queries, {non_en} of them ({non_en / max(1, n_queries):.0%}) not in English",
        f"- {spec.width}x{spec.height}, {spec.fps} fps, H.264 (x264 veryfast, CRF 23) + AAC mono "
        f"{SAMPLE_RATE} Hz in mp4",
        "- " + ", ".join(f"{k}: {counts['features'][k]}" for k in ("with narration", "without audio",
                                                                   "variable frame rate",
                                                                   "rotated (display matrix)")),
        "", "### Queries by tag", "", "| tag | queries | answered by |", "|---|---:|---|",
    ]
    answered = {"speech": "the narration (ASR)", "onscreen-text": "a telop or caption (OCR)",
                "visual": "what the photograph shows (vision)",
                "multi": "two kinds of evidence together (`cues` lists them)"}
    lines += [f"| {t} | {counts['tags'][t]} | {answered[t]} |"
              for t in ("speech", "onscreen-text", "visual", "multi")]
    if counts["tags"]["cross-lingual"]:
        lines.append(f"| cross-lingual | {counts['tags']['cross-lingual']} | the narration or on-screen "
                     "text, in another language than the query's |")
    if counts["tags"]["mood"]:
        lines.append(f"| mood | {counts['tags']['mood']} | how the moment feels: music and picture built "
                     "for an intended impression (by construction, not rated by people) |")
    lines += ["", "### Queries by language", "", "| lang | queries |", "|---|---:|"]
    lines += [f"| {lang} ({LANG_NAMES[lang]}) | {counts['langs'][lang]} |"
              for lang in ("en", "ja", "zh", "ru", "pt") if counts["langs"][lang]]
    lines += ["", "### Videos", "", "| vid | s | scenes | narration | on-screen text | notes |",
              "|---|---:|---:|---|---|---|"]
    for v, d in zip(spec.videos, durations, strict=True):
        said = [t for s in v.scenes for t in (s.narration, *(e.narration for e in s.events)) if t]
        drawn = [t for s in v.scenes for t in (s.telop, s.caption, *(e.telop for e in s.events)) if t]
        spoken, shown = sorted({t.lang for t in said}), sorted({t.lang for t in drawn})
        moves = Counter(s.enter for s in v.scenes[1:] if s.enter != "cut")
        events = sum(len(s.events) for s in v.scenes)
        notes = [x for x, on in (("no audio", not v.audio), ("VFR", v.vfr),
                                 (f"rotated {v.rotation}°", bool(v.rotation)),
                                 *((f"{n} {k}{'s' * (n > 1)}", True) for k, n in sorted(moves.items())),
                                 (f"{events} short actions", bool(events))) if on]
        lines.append(f"| {v.vid} | {d:g} | {len(v.scenes)} | {', '.join(spoken) or '–'} | "
                     f"{', '.join(shown) or '–'} | {', '.join(notes)} |")
    used = sorted({s.image for v in spec.videos for s in v.scenes})
    lines += [
        "", "## Files", "",
        "- `videos/<vid>.mp4`; `videos.jsonl`: `vid`, `path` (relative), `duration` (ffprobe, s), `lang`",
        "- `queries.jsonl`: `qid`, `query`, `vid`, `duration`, `relevant_windows` (the scenes' exact "
        "intervals, adjacent ones merged), `lang`, `tags` (one of speech, onscreen-text, visual, multi), "
        "plus `scenes` (indices into scenes.jsonl), `corpus_windows` (`[vid, start, end]` rows: every "
        "moment in the whole set that answers the query; a visual query is also answered wherever the "
        "same photograph appears) and, for multi, `cues`",
        "- `scenes.jsonl`: the ground truth: per scene `start`/`end`, `image`, Ken Burns `move`, "
        "`telop`/`caption` text and language, `narration` text, language, voice, rate and its "
        "measured `start`/`end` (always inside the scene)",
        "- `meta.json`: build stamp (hash of the spec and the generator), size, fps, "
        "per-video audio/VFR/rotation",
        "",
        "## How it is built", "",
        f"`python -m bench build {spec.name} --out DIR` reads `datasets/{spec_file.parent.name}/spec.yaml` "
        "and, for each scene, crops the photograph with a slow eased pan or zoom (numpy/Pillow), "
        "draws the telop (Noto Sans CJK Bold, white on a dark box, top left) and caption (lower third), "
        "and pipes raw RGB frames to ffmpeg (libx264). Narration is spoken by espeak-ng "
        f"({', '.join(f'{k}: `{val}`' for k, val in spec.voices.items())}), starts "
        f"{NARRATION_LEAD_S:g} s after the cut and is sped up when needed so that it ends at least "
        f"{NARRATION_TAIL_S:g} s before the next one (the measured length is checked). Scenes are hard cuts, "
        "so each interval is exact. The VFR video keeps every cut frame and drops others in an irregular "
        "pattern with true timestamps; the rotated one stores frames turned 90° with a display matrix "
        "that turns them back. Each file is checked with ffprobe after encoding.",
        *(["", MOOD_NOTE] if any(s.mood for v in spec.videos for s in v.scenes) else []),
        "",
        "The same spec gives byte-identical `videos.jsonl`, `queries.jsonl` and `scenes.jsonl` (and, "
        "with the same ffmpeg, identical mp4 files). "
        "A second build with the same stamp returns at once (`--force` rebuilds); a build happens in a "
        "temporary folder beside the output and is renamed into place at the end.",
        "",
        "Needs: ffmpeg with libx264, espeak-ng, fonts-noto-cjk (Debian packages), scikit-image, "
        "scikit-learn, Pillow.",
        "",
        "## Limits", "",
        "Narration is synthetic (espeak-ng), and Japanese narration is written in kana because "
        "espeak-ng does not read kanji. Whisper tiny.en transcribes only the English narration; the "
        "other languages are there so that the benchmark shows that honestly. Several videos reuse "
        "a photograph, so a visual query names its own video in `vid` and lists the others in "
        "`corpus_windows`. Some photographs (a motion-blurred clock, grey textures, a phase image "
        "of a cell) are hard to name even for people; their visual queries are hard on purpose.",
        "",
        "## Licences of the source images", "",
        "The photographs ship with scikit-image (`skimage.data`) and scikit-learn "
        "(`sklearn.datasets.load_sample_image`); licences as those packages state them:", "",
        "| image | call | shows | licence | credit |", "|---|---|---|---|---|",
    ]
    lines += [f"| {n} | `{IMAGES[n].call}` | {IMAGES[n].shows} | {IMAGES[n].license} | {IMAGES[n].credit} |"
              for n in used]
    lines += ["", "The spec, narration and telop texts and the annotations are Apache-2.0, like the project. "
              "The videos are derived from the photographs above and carry their terms: credit the "
              "CC BY 2.0 photographers and cite the Middlebury data set when you redistribute them.", ""]
    return "\n".join(lines)
