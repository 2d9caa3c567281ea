"""Speed and timing of the offline multilingual text path, against today's English path.

On videos of a built synthetic set (one or two per narration language by default):
- Whisper base (int8, ``--threads`` CPU threads): real-time factor by wall clock and by CPU
  time, Whisper passes (decodes, language detections), and how far each narration's first
  speech segment starts from the narration's true start (``scenes.jsonl``): the
  ``whisper-base`` preset and, back to back under the same load, the preset at each
  ``--beam`` size, with the share of words they have in common with the preset;
  ``--no-vad-row`` adds the preset without VAD and word timings (the drift baseline);
- one query encoded by USE multilingual (p50 over ``--queries`` calls; 1 and 2 BLAS threads),
  and all-MiniLM-L6-v2 beside it;
- text indexing time (ASR + OCR + embedding of every window and line), today's configuration
  (Whisper tiny.en + MiniLM) against the multilingual one (Whisper base + USE).

Everything runs in a fresh feature store, so nothing comes from a cache.

    python scripts/perf/multilingual_text.py --dataset DIR --out scripts/perf/reports/multilingual_text.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

DEFAULT_VIDEOS = (
    "syn01-space-museum",
    "syn04-kyoto-notes",
    "syn05-summer-palace",
    "syn06-zarya-observatory",
    "syn07-feira-holambra",
    "syn15-volga-ferry",
    "syn16-lisboa-rua",
)
QUERIES = (
    "freeze dried ice cream",
    "горячий кофе и пироги",
    "夜晚发射台上的火箭",
    "オレンジいろの ダリア",
    "o gato dorme entre os vasos de orquídeas",
    "the countdown begins",
)


def narration_truth(dataset: Path, vids: set[str]) -> dict[str, list[tuple[float, float, str]]]:
    out: dict[str, list[tuple[float, float, str]]] = {}
    for line in (dataset / "scenes.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        n = row.get("narration")
        if row["vid"] in vids and n:
            out.setdefault(row["vid"], []).append(
                (n["start"], n["end"], n["lang"])  # seconds from the start of the video
            )
    return out


def start_drift(
    segments: list[Any], truth: list[tuple[float, float, str]]
) -> list[tuple[str, float | None]]:
    """Per narration: |start of the first segment overlapping it - its true start| (None: no segment)."""
    out: list[tuple[str, float | None]] = []
    for start, end, lang in truth:
        over = [s for s in segments if s.start < end and s.end > start]
        out.append((lang, abs(min(s.start for s in over) - start) if over else None))
    return out


def word_agreement(a: list[Any], b: list[Any]) -> float:
    """Share of words two transcripts of one video have in common (difflib matching blocks)."""
    import difflib

    wa = " ".join(s.text for s in a).casefold().split()
    wb = " ".join(s.text for s in b).casefold().split()
    if not wa and not wb:
        return 1.0
    matcher = difflib.SequenceMatcher(None, wa, wb, autojunk=False)
    return 2 * sum(m.size for m in matcher.get_matching_blocks()) / (len(wa) + len(wb))


def transcribe_all(
    config: Any, videos: list[Any], audio: dict[str, np.ndarray], threads: int
) -> tuple[dict[str, list[Any]], float, float, float, dict[str, int]]:
    from bench.text.asr import Transcriber

    asr = Transcriber(config.model_copy(update={"cpu_threads": threads}))
    asr.load()
    segs: dict[str, list[Any]] = {}
    wall = audio_s = cpu = 0.0
    for v in videos:
        if not asr.covers(v.lang):
            segs[v.vid] = []
            continue
        t0, c0 = time.perf_counter(), time.process_time()
        tr = asr.transcribe(audio[v.vid], v.vid, v.lang)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        audio_s += audio[v.vid].shape[0] / 16000
        segs[v.vid] = tr.segments
    return segs, wall, audio_s, cpu, dict(asr.passes)


def p50_ms(fn: Any, items: list[str], rounds: int) -> float:
    fn([items[0]])
    times = []
    for i in range(rounds):
        t0 = time.perf_counter()
        fn([items[i % len(items)]])
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, required=True, help="a built synthetic-v2 folder")
    ap.add_argument("--videos", nargs="*", default=list(DEFAULT_VIDEOS),
                    help="vids of the set, or 'all' for every video of it")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--beam", type=int, action="append", default=[],
                    help="also run the preset at this beam size (1: greedy)")
    ap.add_argument("--best-of", type=int, action="append", default=[],
                    help="also run the preset with this many samples per fallback temperature")
    ap.add_argument("--no-end-to-end", action="store_true",
                    help="skip the end-to-end runs (speech and OCR together, as bench index runs them)")
    ap.add_argument("--no-vad-row", action="store_true",
                    help="also run the preset without VAD and word times")
    ap.add_argument("--out", type=Path, default=Path("scripts/perf/reports/multilingual_text.md"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tmp = tempfile.mkdtemp(prefix="sb-multilingual-")
    os.environ["SCENEBENCH_CACHE"] = tmp  # nothing from a cache; the split model is assembled anew

    from bench.datasets.io import load_query_set
    from bench.modelref import ModelRef, resolve
    from bench.retrievers import get_config
    from bench.retrievers.dense_text import DenseText
    from bench.store import FeatureStore
    from bench.text.asr import AsrConfig
    from bench.text.extract import TextSources, extract_segments
    from bench.text.use_encoder import BUNDLED_USE, UseEncoder
    from bench.text.windows import TextCorpus, WindowConfig
    from bench.video import extract_audio

    qs = load_query_set(args.dataset)
    videos = [v for v in qs.videos.values() if v.vid in set(args.videos) or args.videos == ["all"]]
    audio = {v.vid: extract_audio(v.resolve(qs.root)) for v in videos}
    truth = narration_truth(args.dataset, {v.vid for v in videos})
    load_before = os.getloadavg()

    t0 = time.perf_counter()
    base = AsrConfig.model_validate("whisper-base")
    resolve(base.model)  # joins and checks the two halves of model.bin (fresh cache)
    assemble_s = time.perf_counter() - t0
    assert base.languages is not None
    before_cfg = base.model_copy(
        update={
            "vad_filter": False,
            "word_timestamps": False,
            "languages": base.languages.model_copy(update={"times_from_words": False}),
        }
    )
    preset = f"base, beam {base.beam_size}, VAD + word times (the preset)"
    # today's configuration as it was: faster-whisper's 5 samples per fallback temperature
    variants = [("tiny.en (today)", AsrConfig(best_of=5))]
    if args.no_vad_row:
        variants.append(("base, no VAD/word times", before_cfg))
    variants.append((preset, base))
    variants += [(f"base, beam {b}, VAD + word times", base.model_copy(update={"beam_size": b}))
                 for b in args.beam]
    variants += [(f"base, beam {base.beam_size}, best of {b} per fallback temperature",
                  base.model_copy(update={"best_of": b})) for b in args.best_of]
    rows: dict[str, Any] = {}
    for name, cfg in variants:
        segs, wall, audio_s, cpu_s, passes = transcribe_all(cfg, videos, audio, args.threads)
        drift = [d for v in videos for d in start_drift(segs[v.vid], truth.get(v.vid, []))]
        rows[name] = {"segs": segs, "wall": wall, "audio_s": audio_s, "drift": drift, "cpu": cpu_s,
                      "passes": passes}
        print(f"{name}: {audio_s:.0f} s audio in {wall:.1f} s", file=sys.stderr)

    # OCR once (the same in both configurations), into a fresh store
    store = FeatureStore(Path(tmp) / "store")
    t0, c0 = time.perf_counter(), time.process_time()
    local = [dataclasses.replace(v, path=str(v.resolve(qs.root))) for v in videos]
    ocr = extract_segments(local, store, TextSources(use=["ocr"]))
    ocr_s, ocr_cpu = time.perf_counter() - t0, time.process_time() - c0

    # End to end as `bench index` runs it: speech and OCR together (speech in a second thread),
    # each configuration into a fresh store
    together: dict[str, tuple[float, float]] = {}
    if not args.no_end_to_end:
        for label, cfg in (("today", AsrConfig(best_of=5)), ("multilingual", base)):
            fresh = FeatureStore(Path(tmp) / f"store-{label}")
            t0, c0 = time.perf_counter(), time.process_time()
            asr_cfg = cfg.model_copy(update={"cpu_threads": args.threads})
            extract_segments(local, fresh, TextSources(use=["speech", "ocr"], asr=asr_cfg))
            together[label] = (time.perf_counter() - t0, time.process_time() - c0)
            print(f"end to end, {label}: {together[label][0]:.1f} s", file=sys.stderr)

    use = UseEncoder(resolve(ModelRef(id=BUNDLED_USE)).location)
    use_2 = UseEncoder(use.location, threads=2)
    minilm = DenseText(get_config("dense-text-minilm"))
    use_p50 = {
        1: p50_ms(use.encode, list(QUERIES), args.queries),
        2: p50_ms(use_2.encode, list(QUERIES), args.queries),
    }
    minilm_p50 = p50_ms(lambda t: minilm.encode(t, query=True), list(QUERIES), args.queries)

    def embed_s(encode: Any, segs: dict[str, list[Any]]) -> float:
        merged = {v.vid: sorted(segs[v.vid] + ocr[v.vid], key=lambda s: s.start) for v in videos}
        corpus = TextCorpus.build(merged, WindowConfig(window_s=10.0, stride_s=5.0), videos=videos)
        texts = [w.text for w in corpus.windows] + [s.text for ss in merged.values() for s in ss]
        t0 = time.perf_counter()
        encode(texts)
        return time.perf_counter() - t0

    today = rows["tiny.en (today)"]
    after = rows[preset]
    today_embed = embed_s(lambda t: minilm.encode(t), today["segs"])
    after_embed = embed_s(use.encode, after["segs"])
    today_total = today["wall"] + ocr_s + today_embed
    after_total = after["wall"] + ocr_s + after_embed
    today_cpu = today["cpu"] + ocr_cpu
    after_cpu = after["cpu"] + ocr_cpu
    load_after = os.getloadavg()

    def drift_cells(drift: list[tuple[str, float | None]], lang: str | None) -> str:
        vals = [d for lg, d in drift if (lang is None or lg == lang)]
        found = [d for d in vals if d is not None]
        if not found:
            return f"– (0/{len(vals)} found)"
        return f"{statistics.median(found):.2f} / {max(found):.2f} ({len(found)}/{len(vals)})"

    cmd = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    langs = sorted({lg for v in truth.values() for _, _, lg in v})
    lines = [
        "# Multilingual text path: Whisper base, USE multilingual, text indexing",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs "
        "(2-core AMD EPYC VM, 24 GiB, no GPU, shared with other jobs); load average "
        f"{load_before[0]:.1f} before and {load_after[0]:.1f} after the run. Whisper int8 with "
        f"{args.threads} CPU threads. Videos: {', '.join(v.vid for v in videos)} "
        f"({sum(a.shape[0] for a in audio.values()) / 16000:.0f} s of audio).",
        "",
        f"Reproduce: `{cmd}`",
        "",
        "## Speech recognition",
        "",
        "x real time by CPU time assumes the threads' CPU seconds spread over as many idle cores: "
        "on a machine shared with other jobs the wall-clock figure is lower.",
        "",
        "Words in common with the preset's transcript (difflib matching blocks over each video's "
        "words, averaged over videos with speech in either).",
        "",
        "| configuration | audio s | wall s | x real time (wall) | CPU s | x real time (CPU) "
        "| words as the preset | decodes / detections |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        by_cpu = r["audio_s"] / max(r["cpu"] / args.threads, 1e-9)
        spoken = [v.vid for v in videos if after["segs"][v.vid] or r["segs"][v.vid]]
        agree = [word_agreement(after["segs"][vid], r["segs"][vid]) for vid in spoken]
        cell = f"{statistics.mean(agree):.3f}" if agree and "tiny" not in name else "–"
        lines.append(
            f"| {name} | {r['audio_s']:.0f} | {r['wall']:.1f} | {r['audio_s'] / max(r['wall'], 1e-9):.1f} "
            f"| {r['cpu']:.1f} | {by_cpu:.1f} | {cell} | {r['passes']['decode']} / {r['passes']['detect']} |"
        )
    lines += [
        "",
        f"Assembling the Whisper base model from its two packages (once per cache): {assemble_s:.1f} s.",
        "",
        "## Start-time drift against the synthetic truth",
        "",
        "Per narration: |start of the first speech segment overlapping it − the narration's true start| "
        "(`scenes.jsonl`), median / max in seconds (narrations with a segment / all).",
        "",
        "| language | " + " | ".join(rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    for lang in [*langs, None]:
        lines.append(
            f"| {lang or 'all'} | "
            + " | ".join(drift_cells(r["drift"], lang) for r in rows.values())
            + " |"
        )
    lines += [
        "",
        "## One query encoded",
        "",
        f"p50 over {args.queries} single-query calls (after one warm-up).",
        "",
        "| encoder | p50 ms |",
        "|---|---:|",
        f"| USE multilingual, 1 BLAS thread (the configuration's) | {use_p50[1]:.1f} |",
        f"| USE multilingual, 2 BLAS threads | {use_p50[2]:.1f} |",
        f"| all-MiniLM-L6-v2 (today) | {minilm_p50:.1f} |",
        "",
        "## Text indexing time of these videos",
        "",
        "| configuration | ASR s | OCR s | embedding s | total wall s | ASR + OCR CPU s |",
        "|---|---:|---:|---:|---:|---:|",
        f"| today: tiny.en + MiniLM | {today['wall']:.1f} | {ocr_s:.1f} | {today_embed:.1f} "
        f"| {today_total:.1f} | {today_cpu:.1f} |",
        f"| multilingual: base (the preset) + USE | {after['wall']:.1f} | {ocr_s:.1f} "
        f"| {after_embed:.1f} | {after_total:.1f} | {after_cpu:.1f} |",
        "",
        f"Ratio multilingual / today: {after_total / today_total:.2f} (wall), "
        f"{after_cpu / today_cpu:.2f} (ASR + OCR CPU). Today's tiny.en skips videos "
        "declared in languages it does not cover, so its ASR time covers the English videos only.",
        "",
    ]
    if together:
        (tw, tc), (mw, mc) = together["today"], together["multilingual"]
        lines += [
            "End to end, as `bench index` extracts text (speech transcribed in a second thread while "
            "OCR reads frames; `extract_segments` with speech and OCR, a fresh store each; the "
            "embedding is the same as above and left out):",
            "",
            "| configuration | wall s | CPU s |",
            "|---|---:|---:|",
            f"| today: tiny.en (best of 5, as it was) + OCR | {tw:.1f} | {tc:.1f} |",
            f"| multilingual: base (the preset) + OCR | {mw:.1f} | {mc:.1f} |",
            "",
            f"Ratio multilingual / today, end to end: {mw / tw:.2f} (wall), {mc / tc:.2f} (CPU).",
            "",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    shutil.rmtree(tmp, ignore_errors=True)  # the fresh cache: an assembled model and a store
    print("\n".join(lines))


if __name__ == "__main__":
    main()
