"""Read subtitle files (.srt, .vtt) into timed cues of plain text.

Robust to what real files contain: a BOM, CRLF or CR line ends, UTF-16 (by BOM) or cp1252
bytes, HTML/VTT/ASS markup, cues out of order. Broken timing lines raise ``BadInput``
naming the file and line.
"""

from __future__ import annotations

import codecs
import html
import re
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BadInput

SUBTITLE_SUFFIXES = (".srt", ".vtt")


@dataclass(frozen=True)
class Cue:
    """Text shown from ``start`` to ``end`` seconds (``end > start``); markup already removed."""

    start: float
    end: float
    text: str


# Markup: HTML/VTT tags (<i>, </b>, <font ...>, <c.yellow>, <v Bob>, <00:00:01.500>) and ASS
# override blocks ({\an8}). A lone "<" followed by a space is text, not a tag, so it stays.
_TAG = re.compile(r"<(?:/?[A-Za-z][^<>\n]*|\d[\d:.]*)>")
_ASS = re.compile(r"\{\\[^{}\n]*\}")
_SPACE = re.compile(r"\s+")
# hh:mm:ss.mmm with optional hours (VTT allows mm:ss.mmm); ',' accepted as in SRT.
_TS = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TS}\s*-->\s*{_TS}(?:\s.*)?$")
_SRT_TIMING_LINE = re.compile(r"^\s*\d+:\d+:\d+[,.:，．。：]\d+\s*-->")


def clean_text(raw: str) -> str:
    """Strip markup, unescape entities and join the lines of a cue with single spaces."""
    text = _ASS.sub("", _TAG.sub("", raw))
    return _SPACE.sub(" ", html.unescape(text)).strip()


def decode_subtitle_bytes(data: bytes, path: Path) -> str:
    """Decode by BOM (UTF-8/16/32), else UTF-8, else cp1252; newlines become ``\\n``."""
    boms = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
            (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
            (codecs.BOM_UTF16_BE, "utf-16"))
    encodings = next(([enc] for bom, enc in boms if data.startswith(bom)), ["utf-8", "cp1252"])
    error: UnicodeDecodeError | None = None
    for encoding in encodings:
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError as exc:
            error = exc
    else:
        assert error is not None
        line = data[: error.start].count(b"\n") + 1
        tried = " nor ".join(encodings)
        raise BadInput(f"{path}:{line}: cannot decode byte {error.start} as {tried}; "
                       "re-encode the file as UTF-8")
    return text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")


def read_subtitles(path: Path) -> list[Cue]:
    """Parse an .srt or .vtt file into cues sorted by ``(start, end)``, times in seconds.

    Cues whose text is empty after removing markup are dropped; consecutive cues with the
    same text that touch in time (the rolling captions of auto-generated VTT) are merged.
    A file starting with ``WEBVTT`` is read as VTT whatever its suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUBTITLE_SUFFIXES:
        raise BadInput(f"{path}: unsupported subtitle type {suffix or '(none)'!r}; "
                       f"use one of {', '.join(SUBTITLE_SUFFIXES)}")
    if not path.is_file():
        raise BadInput(f"{path}: file not found")
    text = decode_subtitle_bytes(path.read_bytes(), path)
    if suffix == ".vtt" or text.lstrip().startswith("WEBVTT"):
        cues = parse_vtt(text, path)
    else:
        cues = parse_srt(text, path)
    return _tidy(cues)


def parse_srt(text: str, path: Path) -> list[Cue]:
    """Parse decoded SubRip text with the ``srt`` library; errors name ``path`` and line."""
    import srt

    cues: list[Cue] = []
    try:
        subtitles = list(srt.parse(text))
    except srt.SRTParseError as exc:
        line = _srt_error_line(text, exc.expected_start, exc.unmatched_content)
        raise BadInput(f"{path}:{line}: not a valid SRT cue (expected an index line, then "
                       "'HH:MM:SS,mmm --> HH:MM:SS,mmm', then text); fix the timing line") from None
    for ordinal, sub in enumerate(subtitles):
        start, end = sub.start.total_seconds(), sub.end.total_seconds()
        if end <= start:
            line = _nth_srt_timing_line(text, ordinal)
            raise BadInput(f"{path}:{line}: cue ends at {end:g}s, not after its start {start:g}s; "
                           "fix the timing line")
        cues.append(Cue(start, end, clean_text(sub.content)))
    return cues


def parse_vtt(text: str, path: Path) -> list[Cue]:
    """Parse decoded WebVTT text; NOTE/STYLE/REGION blocks and cue settings are ignored."""
    blocks: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            current.append((number, line))
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    if blocks and blocks[0][0][1].strip().startswith("WEBVTT"):
        # the header ends at the first blank line; files that omit it start a cue right away
        first_cue = next((i for i, (_, t) in enumerate(blocks[0]) if "-->" in t), None)
        blocks[0] = [] if first_cue is None else blocks[0][first_cue:]
    cues: list[Cue] = []
    for block in blocks:
        if not block:
            continue
        first = block[0][1].strip()
        if "-->" not in first and first.split(" ", 1)[0] in ("NOTE", "STYLE", "REGION"):
            continue
        if "-->" in first:
            timing_at = 0
        elif len(block) > 1 and "-->" in block[1][1]:
            timing_at = 1  # the first line is a cue identifier
        else:
            raise BadInput(f"{path}:{block[0][0]}: expected a cue timing line "
                           "'HH:MM:SS.mmm --> HH:MM:SS.mmm'; fix or remove this block")
        number, timing = block[timing_at]
        match = _TIMING.match(timing)
        if match is None:
            raise BadInput(f"{path}:{number}: malformed timing line {timing.strip()!r}; "
                           "expected 'HH:MM:SS.mmm --> HH:MM:SS.mmm'")
        groups = match.groups()
        start, end = _seconds(*groups[:4]), _seconds(*groups[4:])
        if end <= start:
            raise BadInput(f"{path}:{number}: cue ends at {end:g}s, not after its start {start:g}s; "
                           "fix the timing line")
        cues.append(Cue(start, end, clean_text("\n".join(t for _, t in block[timing_at + 1:]))))
    return cues


def _seconds(hours: str | None, minutes: str, seconds: str, fraction: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + float(f"0.{fraction}")


def _tidy(cues: list[Cue]) -> list[Cue]:
    out: list[Cue] = []
    for cue in sorted((c for c in cues if c.text), key=lambda c: (c.start, c.end)):
        prev = out[-1] if out else None
        if prev is not None and prev.text == cue.text and abs(cue.start - prev.end) < 1e-3:
            out[-1] = Cue(prev.start, max(prev.end, cue.end), prev.text)
        else:
            out.append(cue)
    return out


def _srt_error_line(text: str, offset: int, unmatched: str) -> int:
    """Line of the first timing-like line in the unparsed block (else the block's first line)."""
    skipped = len(unmatched) - len(unmatched.lstrip())
    base = text.count("\n", 0, offset + skipped) + 1
    lines = unmatched.strip().split("\n")
    for i, line in enumerate(lines):
        if "-->" in line:
            return base + i
    return base


def _nth_srt_timing_line(text: str, ordinal: int) -> int:
    seen = -1
    for number, line in enumerate(text.split("\n"), start=1):
        if _SRT_TIMING_LINE.match(line):
            seen += 1
            if seen == ordinal:
                return number
    return 1
