"""Subtitle builder: a folder of videos with .srt/.vtt sidecars becomes a labelled known-item set.

Sidecars share the video's stem (``talk.mp4`` + ``talk.srt``, or ``talk.en.vtt`` whose
``en`` becomes the queries' ``lang``); a sidecar with no video still yields queries (path
``None``). Each query is one subtitle line, or a run of ``lines_per_query`` consecutive
lines, and its truth is that run's time span; the same text said several times in a video
is one query with every span as truth. Lines that are only sound cues (``[Music]``,
``(laughs)``, ``♪``) are skipped. Duration is the video's, else the last cue's end.

With ``hold_out_wording`` the query is a deterministic rewording, so exact string match
is not enough: lowercase; keep word tokens (letters/digits, inner apostrophes), dropping
punctuation; drop English stop words (when ``lang`` is unset or English); drop repeated
words; sort the rest alphabetically; join with spaces. A run with no word left is skipped.
Scripts written without spaces (Chinese, Japanese) only lose their punctuation.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from bench.datasets import BuildOptions
from bench.datasets.jsonl import SetCollector, finish, probe_duration
from bench.errors import BadInput
from bench.text.subtitles import SUBTITLE_SUFFIXES, Cue, read_subtitles
from bench.types import Query, QuerySet, parse_windows

log = logging.getLogger(__name__)

TAGS = ["speech", "subtitle"]
_LANG = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
_SOUND_ONLY = re.compile(r"^(?:\[[^\]]*\]|\([^)]*\)|[♪♫#*\s\-–—.…])+$")
_WORD = re.compile(r"\w+(?:['’]\w+)*")

# The NLTK English stop-word list (lowercase, with and without apostrophes).
_STOP_TEXT = """
a about above after again against ain all am an and any are aren aren't as at be because been
before being below between both but by can couldn couldn't d did didn didn't do does doesn
doesn't doing don don't down during each few for from further had hadn hadn't has hasn hasn't
have haven haven't having he her here hers herself him himself his how i if in into is isn
isn't it it's its itself just ll m ma me mightn mightn't more most mustn mustn't my myself
needn needn't no nor not now o of off on once only or other our ours ourselves out over own re
s same shan shan't she she's should should've shouldn shouldn't so some such t than that
that'll the their theirs them themselves then there these they this those through to too under
until up ve very was wasn wasn't we were weren weren't what when where which while who whom
why will with won won't wouldn wouldn't y you you'd you'll you're you've your yours yourself
yourselves i'm i've i'll i'd he's we're we've they're they've let's
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())


@dataclass(frozen=True)
class Sidecar:
    """A subtitle file and the video (stem) and language it belongs to."""

    path: Path
    vid: str
    lang: str | None


def reword(text: str, lang: str | None = None) -> str:
    """The held-out wording of ``text`` (rule in the module docstring); may be empty."""
    english = lang is None or lang.lower().startswith("en")
    seen: set[str] = set()
    words: list[str] = []
    for token in _WORD.findall(text.casefold()):
        token = token.replace("’", "'")
        if (english and token in STOP_WORDS) or token in seen:
            continue
        seen.add(token)
        words.append(token)
    return " ".join(sorted(words))


def find_sidecars(folder: Path, video_stems: set[str]) -> list[Sidecar]:
    """Subtitle files in ``folder`` matched to a video stem, sorted by (vid, lang)."""
    out: list[Sidecar] = []
    for path in sorted(Path(folder).iterdir()):
        if path.suffix.lower() not in SUBTITLE_SUFFIXES or not path.is_file():
            continue
        base = path.stem
        vid, lang = base, None
        head, dot, tail = base.rpartition(".")
        if base not in video_stems and dot and head and _LANG.match(tail):
            vid, lang = head, tail
        out.append(Sidecar(path, vid, lang))
    return sorted(out, key=lambda s: (s.vid, s.lang is not None, s.lang or ""))


def query_windows(cues: list[Cue], lines_per_query: int) -> list[tuple[str, float, float]]:
    """``(text, start_s, end_s)`` for each run of ``lines_per_query`` spoken lines, in order."""
    spoken = [c for c in cues if not _SOUND_ONLY.match(c.text)]
    runs = [spoken[i:i + lines_per_query] for i in range(0, len(spoken), lines_per_query)]
    return [(" ".join(c.text for c in run), run[0].start, max(c.end for c in run)) for run in runs]


def collect(folder: Path, *, videos: Path | None = None, lines_per_query: int = 1,
            hold_out_wording: bool = False) -> SetCollector:
    """Sidecars in ``folder`` (videos in ``videos``, default ``folder``) -> collector of queries."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput(f"{folder}: not a folder; the subtitles builder takes a folder of videos "
                       "with .srt/.vtt sidecars (--input DIR)")
    if lines_per_query < 1:
        raise BadInput(f"lines_per_query must be >= 1, got {lines_per_query}")
    collector = SetCollector(videos or folder)
    sidecars = find_sidecars(folder, set(collector.files))
    if not sidecars:
        raise BadInput(f"{folder}: no .srt/.vtt sidecars found; put 'NAME.srt' (or NAME.LANG.vtt) "
                       "next to each NAME.mp4")
    cues_of = {sidecar.path: read_subtitles(sidecar.path) for sidecar in sidecars}
    durations = _durations(sidecars, cues_of, collector)
    for sidecar in sidecars:
        cues = cues_of[sidecar.path]
        if not cues:
            log.warning("%s: no cues with text; skipped", sidecar.path)
            continue
        duration = durations[sidecar.vid]
        where = str(sidecar.path)
        # normalized text -> (ordinal of its first run, its wording there, every span)
        found: dict[str, tuple[int, str, list[list[float]]]] = {}
        dropped = 0
        for ordinal, (text, start, end) in enumerate(query_windows(cues, lines_per_query)):
            query = reword(text, sidecar.lang) if hold_out_wording else text
            if not query:
                continue
            if start >= duration:
                dropped += 1
                continue
            key = " ".join(query.casefold().split())
            found.setdefault(key, (ordinal, query, []))[2].append([start, end])
        if dropped:
            log.warning("%s: %d subtitle runs start after the video's end (%.3fs); skipped",
                        sidecar.path, dropped, duration)
        prefix = sidecar.vid if sidecar.lang is None else f"{sidecar.vid}.{sidecar.lang}"
        for ordinal, query, spans in found.values():
            windows = parse_windows(spans, where, "cues", duration)
            collector.add_query(Query(qid=f"{prefix}#{ordinal}", query=query, vid=sidecar.vid,
                                      duration=duration, relevant_windows=windows, lang=sidecar.lang,
                                      tags=list(TAGS)), f"{where} (cue run {ordinal})")
        collector.add_video(sidecar.vid, duration, where, subtitles=str(sidecar.path.resolve()),
                            lang=sidecar.lang)
    return collector


def _durations(sidecars: list[Sidecar], cues_of: dict[Path, list[Cue]],
               collector: SetCollector) -> dict[str, float]:
    """Seconds per vid: the video's probed duration, else the latest cue end over its sidecars."""
    out: dict[str, float] = {}
    for sidecar in sidecars:
        vid = sidecar.vid
        if vid in out:
            continue
        video_file = collector.video_file(vid)
        if video_file is not None:
            out[vid] = probe_duration(video_file)
            continue
        ends = [c.end for s in sidecars if s.vid == vid for c in cues_of[s.path]]
        if ends:
            out[vid] = max(ends)
    return out


def convert(folder: Path, *, videos: Path | None = None, lines_per_query: int = 1,
            hold_out_wording: bool = False, split: str = "test") -> QuerySet:
    """A folder of videos + sidecars -> QuerySet, nothing written."""
    collector = collect(folder, videos=videos, lines_per_query=lines_per_query,
                        hold_out_wording=hold_out_wording)
    return collector.query_set(Path(folder).name, split)


def build(out: Path, options: BuildOptions) -> QuerySet:
    """Builder ``subtitles``: ``--input DIR`` of videos with sidecars [``--videos DIR``]."""
    if options.input is None:
        raise BadInput("builder 'subtitles' needs a folder of videos with .srt/.vtt sidecars: "
                       "pass --input DIR")
    folder = Path(options.input)
    collector = collect(folder, videos=options.videos, lines_per_query=options.lines_per_query,
                        hold_out_wording=options.hold_out_wording)
    wording = ("a held-out rewording (lowercase content words, stop words and punctuation "
               "dropped, sorted)" if options.hold_out_wording else "the exact subtitle text")
    about = (f"Known-item queries from subtitle sidecars: each query is {options.lines_per_query} "
             f"subtitle line(s) worded as {wording}; its truth is when they are on screen.")
    return finish(collector, out, options, source=folder, title=f"Subtitles of {folder.name}",
                  about=about)
