"""Visual index speed and memory: CLIP ViT-B/32 frame indexing on this machine.

Measures, with a random-init model of the exact openai/clip-vit-base-patch32 architecture
(``CLIPConfig()`` defaults; throughput equals the real weights', its vectors are noise):

- the encoder-only bound: frames/s of the image tower on pre-decoded, preprocessed tensors;
- the pipeline: ``ClipFrames.encode_video`` (decode + torch preprocess in a prefetch thread,
  overlapped with batched encoding) on generated 360p, 480p and 720p H.264 videos, as a % of
  that bound, beside the same with FFmpeg's decoder threads, with PyAV, and inline;
- the decode-only bound: decode + preprocess with no encoder, and the CPU seconds per frame
  of both, from which the "no-gap share" follows: the share of the bound a CPU pipeline keeps
  when every CPU second of decoding is taken from the encoder;
- the naive baseline: PyAV decode, each sampled frame opened as a PIL image and run through
  the reference CLIPImageProcessor one by one, encoded in batches of 32, nothing overlapped;
- libraries of short 480p clips indexed whole, with batches and decoding running on across
  videos (as ``ClipFrames.index`` does) and one video at a time;
- peak RSS of a child process indexing a generated 720p video into a fresh feature store,
  at 2, 10 and 120 minutes.

    python scripts/perf/visual_index.py                      # CPU, writes reports/visual_index-cpu.md
    python scripts/perf/visual_index.py --device cuda        # CUDA frames/s incl. decoding
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")  # the indexing loop's bar; read when tqdm is imported


def machine() -> dict[str, Any]:
    import torch

    from bench.eval.runner import cpu_name

    cpu = cpu_name()
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
                            "torch_threads": torch.get_num_threads(), "python": platform.python_version()}
    import transformers

    info["transformers"] = transformers.__version__
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


SOURCES: dict[str, tuple[int, int, str, int]] = {
    # name: (width, height, x264 preset, GOP frames), all 30 fps
    "360p": (640, 360, "ultrafast", 60),
    "480p": (854, 480, "ultrafast", 60),
    "720p": (1280, 720, "ultrafast", 60),
    "720p-bframes": (1280, 720, "medium", 250),
}
"""Throughput sources. ``ultrafast`` (CAVLC, no deblocking, no B-frames, 2 s GOP) is the
cheapest H.264 to decode per pixel; ``medium`` is x264's default (CABAC, deblocking, 3
B-frames, a keyframe at most every 250 frames), closer to what cameras and web video carry."""


def make_video(path: Path, seconds: int, fps: int = 30, size: tuple[int, int] = (1280, 720),
               preset: str = "ultrafast", gop: int = 60) -> Path:
    """Test pattern (testsrc2) as H.264 at CRF 35 (ultrafast) or 23 (other presets). Whole
    minutes are one encoded minute joined by the concat demuxer (seconds to make even for
    2 hours); decoding cost is that of any H.264 of that size and preset."""
    if path.is_file():
        return path
    crf = "35" if preset == "ultrafast" else "23"

    def encode(out: Path, duration: int) -> None:
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
                        "-i", f"testsrc2=size={size[0]}x{size[1]}:rate={fps}:duration={duration}",
                        "-c:v", "libx264", "-preset", preset, "-crf", crf, "-g", str(gop),
                        "-pix_fmt", "yuv420p", str(out)], check=True, timeout=1800)

    if seconds <= 60 or seconds % 60:
        encode(path, seconds)
        return path
    minute = path.with_name(f"{size[1]}p-{preset}-minute-{fps}fps.mp4")
    if not minute.is_file():
        encode(minute, 60)
    listing = path.with_suffix(".txt")
    listing.write_text(f"file '{minute}'\n" * (seconds // 60), encoding="utf-8")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0",
                    "-i", str(listing), "-c", "copy", str(path)], check=True, timeout=600)
    return path


def source_video(work: Path, name: str, seconds: int) -> Path:
    width, height, preset, gop = SOURCES[name]
    return make_video(work / f"{name}-{seconds}s.mp4", seconds, size=(width, height), preset=preset, gop=gop)


RANDOM_INIT: dict[str, tuple[str, str, dict[str, Any]]] = {
    # family: (builder in bench.testing.tiny_models, configuration name, extra params)
    "clip-frames": ("build_tiny_clip", "clip-vit-b32-random", {}),
    "xclip-clips": ("build_tiny_xclip", "xclip-b32-random", {"stride_frames": 4}),
}
"""Random-init models of each visual family's default architecture: ``CLIPConfig()`` and
``XCLIPConfig()`` defaults are openai/clip-vit-base-patch32 and microsoft/xclip-base-patch32."""


def build_model(out: Path, family: str = "clip-frames") -> Path:
    """Random-init model of ``family``'s default architecture, full BPE tokenizer, 224 px
    processor, into ``out`` (kept when already there)."""
    from bench.testing import tiny_models

    if not (out / "model.safetensors").is_file():
        out.mkdir(parents=True, exist_ok=True)
        getattr(tiny_models, RANDOM_INIT[family][0])({"merges": 48894}, out, seed=0)
    return out


def retriever(model_dir: Path, device: str, batch_size: int, family: str = "clip-frames") -> Any:
    from bench.modelref import ModelRef
    from bench.retrievers import FAMILIES
    from bench.retrievers.base import RetrieverConfig

    _, name, extra = RANDOM_INIT[family]
    cfg = RetrieverConfig(name=name, family=family, model=ModelRef(id=f"local-dir:{model_dir}"),
                          params={"fps": 1.0, "batch_size": batch_size, **extra})
    return FAMILIES.get(family)(cfg, device)


def cpu_s() -> float:
    """CPU seconds of this process, every thread (decoder threads included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_calls(call: Any, calls: int, workers: int) -> tuple[float, float]:
    """(wall s, CPU s) of ``calls`` encoder calls run ``workers`` at a time, as the retrievers
    run them (``EncoderWorkers``: each worker with its share of torch's intra-op threads),
    after one warm-up call per worker (allocations, kernels)."""
    from bench.video.stream import EncoderWorkers

    with EncoderWorkers(workers) as pool:
        for future in [pool.submit(call) for _ in range(workers)]:
            future.result()
        t0, c0 = time.perf_counter(), cpu_s()
        for future in [pool.submit(call) for _ in range(calls)]:
            future.result()
        return time.perf_counter() - t0, cpu_s() - c0


def encoder_bound(r: Any, batches: int, batch_size: int, workers: int | None = None) -> tuple[float, float]:
    """(frames/s, CPU seconds per frame) of the image tower on preprocessed random tensors,
    ``workers`` calls at a time (default: what the retriever's pipeline runs)."""
    import torch

    x = torch.randn(batch_size, 3, 224, 224)
    if r.device == "cuda":
        # On a GPU: float16 input already on the device, batches of 256+ and 50+ calls, so
        # that neither PCIe copies nor launch overhead pass for the encoder (gpu_check.py).
        batch_size, batches = max(batch_size, 256), max(batches, 50)
        x = torch.randn(batch_size, 3, 224, 224, device="cuda", dtype=r.dtype)
    workers = r.params.workers_for(r.device) if workers is None else workers
    wall, cpu = timed_calls(lambda: r.encode_pixels(x), batches, workers)
    return batches * batch_size / wall, cpu / (batches * batch_size)


def pipeline(r: Any, video: Path, **params: Any) -> tuple[float, int, dict[str, Any]]:
    """frames/s of ``ClipFrames.encode_video`` (with ``params`` changed for this call)."""
    from bench.timing import TimingRecorder, recording
    from bench.video import probe

    info = probe(video)
    saved = r.params
    r.params = r.params.model_copy(update=params)
    rec = TimingRecorder()
    try:
        with recording(rec):
            t0 = time.perf_counter()
            arrays, _ = r.encode_video(video, info)
            wall = time.perf_counter() - t0
    finally:
        r.params = saved
    n = int(arrays["times_s"].shape[0])
    return n / wall, n, rec.as_dict()["stages"]


def decode_only(r: Any, video: Path, batch_size: int, decoder: str = "auto",
                threads: int = 1) -> tuple[float, float]:
    """(frames/s, CPU seconds per frame) of decoding + preprocessing alone, in this thread."""
    from bench.video.stream import preprocessed_batches

    t0, c0 = time.perf_counter(), cpu_s()
    n = 0
    for _, times in preprocessed_batches(video, fps=1.0, transform=r.transform, batch_size=batch_size,
                                         decoder=decoder, depth=0, threads=threads):
        n += len(times)
    wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    return n / wall, cpu / n


def naive(r: Any, video: Path, model_dir: Path, batch_size: int) -> float:
    """PyAV decode of every frame; each 1-fps frame -> PIL -> reference processor, one by one."""
    import av
    import torch
    from transformers import CLIPImageProcessorPil

    proc = CLIPImageProcessorPil.from_pretrained(model_dir)
    t0 = time.perf_counter()
    pending: list[torch.Tensor] = []
    n = 0
    next_t = 0.0
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        for frame in container.decode(stream):
            if frame.pts is None or tb is None:
                continue
            t = float(frame.pts * tb)
            if t + 1e-3 < next_t:
                continue
            next_t += 1.0
            image = frame.to_image()
            pending.append(torch.from_numpy(proc(images=image, return_tensors="np")["pixel_values"][0]))
            if len(pending) == batch_size:
                r.encode_pixels(torch.stack(pending))
                n += len(pending)
                pending = []
    if pending:
        r.encode_pixels(torch.stack(pending))
        n += len(pending)
    return n / (time.perf_counter() - t0)


def rss_child(model_dir: Path, video: Path, device: str, batch_size: int) -> None:
    """Index one video into a fresh store while a thread samples RSS every 0.2 s; print JSON
    with the peak RSS over each quarter of the frames and overall."""
    import threading

    import psutil

    from bench.store import FeatureStore
    from bench.types import Video
    from bench.video import probe

    r = retriever(model_dir, device, batch_size)
    proc = psutil.Process()
    loaded = proc.memory_info().rss
    info = probe(video)
    expected = max(1, int(info.duration_s))
    samples: list[tuple[int, int, int]] = []  # (frames encoded, frames handed to the encoder, rss)
    span = [0, 0]  # batches vary in size (the first ones are small), so track frames
    lock = threading.Lock()  # encoder workers run calls at once

    encode_pixels = r.encode_pixels

    def counted(pixels: Any) -> Any:
        with lock:
            span[1] += len(pixels)
        out = encode_pixels(pixels)
        with lock:
            span[0] += len(pixels)
        return out

    r.encode_pixels = counted
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            samples.append((span[0], span[1], proc.memory_info().rss))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        r.index([Video(vid="long", path=str(video), duration=info.duration_s)], FeatureStore(Path(tmp)))
        wall = time.perf_counter() - t0
    stop.set()
    thread.join()
    # A sample belongs to every quarter of the frames that the batch being encoded when it
    # was taken overlaps (a batch can span quarters of a short video); between batches, to
    # the next frame's; the tail (all frames encoded, store writes) counts in the last quarter.
    def overlaps(lo: int, hi: int, q: int) -> bool:
        lo = min(lo, expected - 1)
        return lo < (q + 1) * expected / 4 and max(hi, lo + 1) > q * expected / 4

    quarters = [max((rss for lo, hi, rss in samples if overlaps(lo, hi, q)), default=0) for q in range(4)]
    from bench.timing import peak_rss_bytes

    peak = peak_rss_bytes()  # VmHWM: unlike ru_maxrss, not inflated by the parent's memory
    print(json.dumps({"after_model_load_bytes": loaded, "peak_bytes": peak, "quarters_bytes": quarters,
                      "frames": len(r.corpus), "video_s": info.duration_s, "wall_s": wall}))


def decode_rss_child(video: Path, decoder: str, batch_size: int) -> None:
    """Sample one video at 1 fps (224 px short side) with ``decoder``; print peak RSS as JSON."""
    import threading

    import psutil

    from bench.video import sample_frames

    proc = psutil.Process()
    peak = [proc.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            peak[0] = max(peak[0], proc.memory_info().rss)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    n = 0
    t0 = time.perf_counter()
    for batch in sample_frames(video, 1.0, short_side=224, batch_size=batch_size, decoder=decoder):
        n += len(batch)
    wall = time.perf_counter() - t0
    stop.set()
    thread.join()
    print(json.dumps({"decoder": decoder, "frames": n, "peak_bytes": peak[0], "wall_s": wall}))


def write_report(out: Path, lines: list[str]) -> None:
    """Write a report's markdown lines to ``out`` (folders made as needed)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.0f}%"


def median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def measure_source(r: Any, video: Path, args: argparse.Namespace, label: str) -> dict[str, Any]:
    """Interleaved rounds on one source; every ratio compares figures taken back to back."""
    rounds: list[dict[str, float]] = []
    stages: dict[str, Any] = {}
    n_frames = 0
    threads = 0 if args.device == "cuda" else 1  # what ClipFrames picks for decode_threads
    workers = r.params.workers_for(r.device)
    one_call = workers > 1
    for i in range(args.rounds):
        bound0, enc_cpu0 = encoder_bound(r, args.batches, args.batch_size)
        row: dict[str, float] = {}
        row["decode"], row["decode_cpu"] = decode_only(r, video, args.batch_size, threads=threads)
        row["pipeline"], n_frames, stages = pipeline(r, video)
        # Steady state: every frame over the time from the first batch's arrival (decoding it
        # can overlap nothing) to the end: the rate of a long video, whose start-up is a
        # negligible share.
        row["steady"] = n_frames / (n_frames / row["pipeline"] - stages["decode_start"]["wall_s"])
        # The encoder workers' time spent in calls (the rest: waiting for a batch, or for the
        # other workers' last calls); unlike frames/s, it hardly moves with the VM's speed.
        row["busy"] = stages["encode"]["wall_s"] / (n_frames / row["pipeline"] * workers)
        row["ffmpeg_threads"] = pipeline(r, video, decode_threads=0)[0]
        row["decord"] = pipeline(r, video, decoder="decord")[0]
        row["inline"] = pipeline(r, video, prefetch=0)[0]
        if one_call:  # encoder calls one at a time, all intra-op threads on each
            row["one_call"] = pipeline(r, video, encoder_workers=1)[0]
            row["one_call_bound"] = encoder_bound(r, max(1, args.batches // 2), args.batch_size, 1)[0]
        bound1, enc_cpu1 = encoder_bound(r, args.batches, args.batch_size)
        row["bound"] = (bound0 + bound1) / 2
        row["enc_cpu"] = (enc_cpu0 + enc_cpu1) / 2
        # The share of the bound left if every CPU second of decoding were taken from the
        # encoder: the cores kept busy by (encoder + decoder) CPU per frame. A pipeline beats it
        # only by running the decoder in the encoder's gaps (its threads' spinning and waits).
        cores = len(os.sched_getaffinity(0))
        row["no_gap"] = math.nan if args.device == "cuda" else \
            min(1.0, cores / ((row["enc_cpu"] + row["decode_cpu"]) * row["bound"]))
        rounds.append(row)
        print(f"{label} round {i + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()), file=sys.stderr)

    def ratio(key: str) -> float:
        return median([x[key] / x["bound"] for x in rounds])

    return {"label": label, "frames": n_frames, "rounds": rounds, "stages": stages,
            "bound": median([x["bound"] for x in rounds]),
            "enc_cpu_ms": 1000 * median([x["enc_cpu"] for x in rounds]),
            "decode": median([x["decode"] for x in rounds]),
            "decode_cpu_ms": 1000 * median([x["decode_cpu"] for x in rounds]),
            "pipeline": median([x["pipeline"] for x in rounds]), "pipeline_ratio": ratio("pipeline"),
            "steady_ratio": ratio("steady"), "no_gap": median([x["no_gap"] for x in rounds]),
            "busy": median([x["busy"] for x in rounds]),
            "ffmpeg_threads_ratio": ratio("ffmpeg_threads"), "decord_ratio": ratio("decord"),
            "inline_ratio": ratio("inline"),
            **({"one_call_bound": median([x["one_call_bound"] for x in rounds]),
                "one_call": median([x["one_call"] for x in rounds]),
                "one_call_ratio": median([x["one_call"] / x["one_call_bound"] for x in rounds]),
                "workers_speedup": median([x["pipeline"] / x["one_call"] for x in rounds]),
                "bound_speedup": median([x["bound"] / x["one_call_bound"] for x in rounds])}
               if one_call else {})}


def library_clips(work: Path, count: int, seconds: int) -> list[Path]:
    """``count`` distinct 480p clips of ``seconds`` each (the hue turned per clip, so no two
    files share a content id), like a library of short videos (Charades clips average 30 s)."""
    width, height, preset, gop = SOURCES["480p"]
    clips = []
    for i in range(count):
        path = work / f"library-{seconds}s-{i:03d}.mp4"
        if not path.is_file():
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                            f"testsrc2=size={width}x{height}:rate=30:duration={seconds}",
                            "-vf", f"hue=h={(i * 37) % 360}", "-c:v", "libx264", "-preset", preset,
                            "-crf", "35", "-g", str(gop), "-pix_fmt", "yuv420p", str(path)],
                           check=True, timeout=600)
        clips.append(path)
    return clips


def index_library(r: Any, clips: list[Path], streamed: bool) -> tuple[float, list[dict[str, Any]]]:
    """(wall s, stored meta per video) of indexing ``clips`` into a fresh feature store, as the
    retriever's ``index`` does (``streamed``: encoder batches and decoding run on across
    videos) or one ``encode_video`` call per video."""
    from bench.store import FeatureStore, index_videos
    from bench.types import Video

    videos = [Video(vid=p.stem, path=str(p)) for p in clips]
    with tempfile.TemporaryDirectory() as root:
        store = FeatureStore(Path(root))
        t0 = time.perf_counter()
        done = index_videos(store, videos, r.extractor, r.encode_video, desc="library",
                            stream=r.encode_videos if streamed else None)
        wall = time.perf_counter() - t0
        metas = [store.load_meta(vid, r.extractor) or {} for vid in done.values()]
        store.close()
    if len(metas) != len(clips):
        raise RuntimeError(f"{len(clips) - len(metas)} of {len(clips)} clips failed to index")
    return wall, metas


def measure_library(r: Any, clips: list[Path], args: argparse.Namespace, label: str) -> dict[str, Any]:
    """Interleaved rounds: bound, both ways of indexing the library (order alternating), bound."""
    rounds: list[dict[str, float]] = []
    frames = 0
    for i in range(args.rounds):
        bound0 = encoder_bound(r, args.batches, args.batch_size)[0]
        row: dict[str, float] = {}
        for streamed in ((False, True) if i % 2 == 0 else (True, False)):
            wall, metas = index_library(r, clips, streamed)
            frames = sum(int(meta["n_frames"]) for meta in metas)
            row["streamed" if streamed else "per_video"] = frames / wall
        row["bound"] = (bound0 + encoder_bound(r, args.batches, args.batch_size)[0]) / 2
        rounds.append(row)
        print(f"{label} round {i + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()), file=sys.stderr)
    return {"label": label, "clips": len(clips), "frames": frames, "rounds": rounds,
            "bound": median([x["bound"] for x in rounds]),
            "streamed": median([x["streamed"] for x in rounds]),
            "per_video": median([x["per_video"] for x in rounds]),
            "streamed_ratio": median([x["streamed"] / x["bound"] for x in rounds]),
            "per_video_ratio": median([x["per_video"] / x["bound"] for x in rounds]),
            "speedup": median([x["streamed"] / x["per_video"] for x in rounds])}


def library_rounds(libraries: list[dict[str, Any]], unit: str, digits: int) -> list[str]:
    """Report lines: each library's rounds (bound, one video at a time, streamed)."""
    lines = ["", f"Per round ({unit}):", "", "| library | round | bound | one at a time | streamed |",
             "|---|---:|---:|---:|---:|"]
    for lib in libraries:
        for i, rd in enumerate(lib["rounds"], 1):
            lines.append(f"| {lib['label']} | {i} | " +
                         " | ".join(f"{rd[k]:.{digits}f}" for k in ("bound", "per_video", "streamed")) + " |")
    return lines


def parse_library(spec: str) -> tuple[int, int]:
    try:
        count, seconds = (int(x) for x in spec.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"library spec must be COUNTxSECONDS (like 16x30), got {spec!r}") \
            from None
    if count < 1 or seconds < 1:
        raise argparse.ArgumentTypeError(f"library spec needs at least 1 clip of 1 s, got {spec!r}")
    return count, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--seconds", type=int, default=180,
                    help="length of the throughput videos (s); steady state needs a few batches")
    ap.add_argument("--sources", nargs="+", choices=sorted(SOURCES), default=list(SOURCES),
                    help="throughput sources (all 30 fps H.264, sampled at 1 fps)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved measurement rounds per source")
    ap.add_argument("--rss-seconds", type=int, nargs="*", default=[120, 600, 7200],
                    help="lengths (s) of the 720p videos indexed for peak RSS; none skips it")
    ap.add_argument("--library", type=parse_library, nargs="*", default=[(16, 30), (48, 10)],
                    metavar="COUNTxSECONDS",
                    help="libraries of short 480p clips indexed whole, streamed and one video at a "
                         "time; none skips it")
    ap.add_argument("--batches", type=int, default=4, help="encoder batches per bound measurement")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None, help="keep model and videos here")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--decode-rss-seconds", type=int, nargs="*", default=[],
                    help="lengths (s) of 720p videos only decoded (decord, PyAV) for the decoders' peak RSS")
    ap.add_argument("--rss-child", nargs=2, metavar=("MODEL_DIR", "VIDEO"), help=argparse.SUPPRESS)
    ap.add_argument("--decode-rss-child", nargs=2, metavar=("VIDEO", "DECODER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.decode_rss_child:
        decode_rss_child(Path(args.decode_rss_child[0]), args.decode_rss_child[1], args.batch_size)
        return
    if args.rss_child:
        rss_child(Path(args.rss_child[0]), Path(args.rss_child[1]), args.device, args.batch_size)
        return
    out = args.out or REPO / "scripts" / "perf" / "reports" / f"visual_index-{args.device}.md"
    work_ctx = tempfile.TemporaryDirectory() if args.workdir is None else None
    work = Path(work_ctx.name) if work_ctx else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join(shlex.quote(a) for a in ["scripts/perf/visual_index.py", *sys.argv[1:]])
    load_before = load_average()
    print("building the random-init ViT-B/32 and the test videos ...", file=sys.stderr)
    model_dir = build_model(work / "clip-vit-b32-random")
    videos = {name: source_video(work, name, args.seconds) for name in args.sources}
    r = retriever(model_dir, args.device, args.batch_size)
    n_params = sum(p.numel() for p in r.model.vision_model.parameters()) + \
        sum(p.numel() for p in r.model.visual_projection.parameters())

    results = [measure_source(r, video, args, name) for name, video in videos.items()]
    libraries = [measure_library(r, library_clips(work, count, seconds), args, f"{count} x {seconds} s")
                 for count, seconds in args.library]
    naive_fps = naive_bound = None
    piped = 0.0
    naive_source = "720p" if "720p" in videos else next(iter(videos))
    if not args.skip_naive:
        print("naive baseline ...", file=sys.stderr)
        before = encoder_bound(r, args.batches, args.batch_size)[0]
        naive_fps = naive(r, videos[naive_source], model_dir, args.batch_size)
        piped = pipeline(r, videos[naive_source])[0]
        naive_bound = (before + encoder_bound(r, args.batches, args.batch_size)[0]) / 2
        print(f"  naive {naive_fps:.2f}, pipeline {piped:.2f} frames/s", file=sys.stderr)

    rss_rows = []
    for seconds in args.rss_seconds:
        print(f"peak RSS while indexing {seconds} s of 720p ...", file=sys.stderr)
        long_video = source_video(work, "720p", seconds)
        res = subprocess.run([sys.executable, __file__, "--device", args.device, "--batch-size",
                              str(args.batch_size), "--rss-child", str(model_dir), str(long_video)],
                             check=True, capture_output=True, text=True, timeout=4 * 3600)
        rss_rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(f"  {gib(rss_rows[-1]['peak_bytes'])}", file=sys.stderr)
    dec_rows: list[dict[str, Any]] = []
    for seconds in args.decode_rss_seconds:
        long_video = source_video(work, "720p", seconds)
        for decoder in ("decord", "pyav"):
            print(f"decoder-only peak RSS, {seconds} s, {decoder} ...", file=sys.stderr)
            res = subprocess.run([sys.executable, __file__, "--batch-size", str(args.batch_size),
                                  "--decode-rss-child", str(long_video), decoder],
                                 check=True, capture_output=True, text=True, timeout=7200)
            dec_rows.append({"seconds": seconds, **json.loads(res.stdout.strip().splitlines()[-1])})
            print(f"  {gib(dec_rows[-1]['peak_bytes'])}", file=sys.stderr)
    load_after = load_average()

    m = machine()
    cuda = args.device == "cuda"
    workers = r.params.workers_for(r.device)
    workers_text = (f"`encoder_workers` {workers}: each call in its own thread with "
                    f"{max(1, m['torch_threads'] // workers)} of the {m['torch_threads']} intra-op threads"
                    if workers > 1 else "one call at a time, on every intra-op thread")
    lines = [f"# Visual index: CLIP ViT-B/32 frames on {args.device.upper()}", "",
             f"Command: `{command}`", "",
             f"Machine: {m['cpu']}, {m['cores']} cores visible, torch {m['torch']} "
             f"({m['torch_threads']} intra-op threads), transformers {m['transformers']}, "
             f"Python {m['python']}" + (f", GPU {m['gpu']}" if "gpu" in m else "") + ".",
             f"Load average (1/5/15 min) before: {load_before}; after: {load_after}. "
             "Where the CPU is shared with other work, figures move between runs; "
             "compare ratios taken in one run.", "",
             "Model: random-init `CLIPConfig()` defaults = the openai/clip-vit-base-patch32 "
             f"architecture (image tower {n_params / 1e6:.1f} M parameters, 224 px, patch 32), "
             f"{'float16' if cuda else 'float32'}. Throughput equals the real "
             "weights'; the vectors are noise and say nothing about accuracy.", "",
             f"Videos: {args.seconds} s of testsrc2 at 30 fps, H.264, sampled at 1 fps; batch size "
             f"{args.batch_size}. " + "; ".join(
                 f"{name}: {SOURCES[name][0]}x{SOURCES[name][1]}, x264 {SOURCES[name][2]}, GOP "
                 f"{SOURCES[name][3]}" for name in videos) + ".", "",
             f"Encoder calls run {workers} at a time ({workers_text}), in the pipeline and in its "
             "bound alike.", "",
             f"Each of {args.rounds} rounds per source measures, back to back: the encoder-only "
             f"bound ({args.batches} batches of pre-decoded, preprocessed tensors, before and after; "
             "their mean is the round's bound, with the CPU seconds it used per frame), decoding + "
             "preprocessing alone (frames/s and CPU seconds per frame), the pipeline as configured "
             "by default (`ClipFrames.encode_video`: decode and preprocess in a prefetch thread, 2 "
             "batches ahead, overlapped with encoding; the `auto` decoder, which is PyAV decoding "
             "only what the sampled frames need for these sparse H.264 samplings, with "
             + ("FFmpeg's own decoder threads" if cuda else "one decoder thread") +
             "), the same with FFmpeg choosing the decoder threads, with decord as the decoder, and "
             "with decoding inline (nothing overlapped). Medians over rounds; ratios per round, then "
             "the median.", "",
             "| source | encoder bound, frames/s | encoder CPU ms/frame | decode + preprocess, frames/s "
             "| decode CPU ms/frame | no-gap share | **pipeline, frames/s** | **pipeline / bound** | "
             "workers busy | steady state / bound | FFmpeg threads / bound | decord / bound | "
             "inline / bound |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for x in results:
        lines.append(f"| {x['label']} | {x['bound']:.2f} | {x['enc_cpu_ms']:.0f} | {x['decode']:.1f} | "
                     f"{x['decode_cpu_ms']:.1f} | {pct(x['no_gap'])} | {x['pipeline']:.2f} | "
                     f"**{100 * x['pipeline_ratio']:.0f}%** | {pct(x['busy'])} | "
                     f"{100 * x['steady_ratio']:.0f}% | "
                     f"{100 * x['ffmpeg_threads_ratio']:.0f}% | {100 * x['decord_ratio']:.0f}% | "
                     f"{100 * x['inline_ratio']:.0f}% |")
    lines += ["", "\"No-gap share\": the share of the bound a pipeline keeps if every CPU second of "
              "decoding is taken from the encoder, cores / ((encoder CPU + decode CPU) per frame x "
              "bound); where the pipeline reaches it, what separates it from the bound is the "
              "decoder's CPU, not waiting. \"Workers busy\": the share of the encoder workers' "
              "time spent in encoder calls, the `encode` stage's summed wall time / (wall time x "
              "workers); the rest is a worker waiting for a batch, or idle while another runs the "
              "last call. Unlike frames/s, it hardly moves with the VM's speed. "
              "\"Steady state\" leaves out the start-up, the wait for the first batch (decoding it "
              "overlaps nothing): it is the rate of a long video, where start-up is a "
              "negligible share. CPU ms per frame count every thread of the process. The encoder's "
              "include time its threads spend spinning at synchronization points, which a decoder "
              "thread can use without slowing it, so a pipeline can beat the no-gap share. "
              "Sampling 1 fps from a 30 fps H.264 video decodes up to 30 frames per encoded frame: "
              "where that costs a large part of the encoder's CPU (the B-frame source), decoding is "
              "real extra work for the same cores and no overlap can hide all of it. On a GPU the "
              "encoder does not use the decoder's cores and the decode-only rate is the limit."]
    if all("one_call" in x for x in results):
        lines += ["", f"Encoder workers: the bound and the default pipeline ({workers} calls at a time) "
                  f"against encoder calls one at a time, each on all {m['torch_threads']} intra-op threads "
                  "(`encoder_workers: 1`, the default before; its bound is measured in the same rounds, "
                  f"{max(1, args.batches // 2)} batches). Medians over rounds of per-round ratios:", "",
                  "| source | bound, one call at a time | **bound speed-up** | pipeline, one call at a time "
                  "| / its bound | **pipeline speed-up** |",
                  "|---|---:|---:|---:|---:|---:|"]
        for x in results:
            lines.append(f"| {x['label']} | {x['one_call_bound']:.2f} | **{x['bound_speedup']:.2f}x** | "
                         f"{x['one_call']:.2f} | {100 * x['one_call_ratio']:.0f}% | "
                         f"**{x['workers_speedup']:.2f}x** |")
    lines += ["", "Per round (frames/s; CPU ms per frame):", "",
              "| source | round | bound | enc CPU | decode | dec CPU | no-gap share | pipeline | "
              "workers busy | steady state | FFmpeg threads | decord | inline | one call: bound | "
              "one call: pipeline |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for x in results:
        for i, rd in enumerate(x["rounds"], 1):
            lines.append(f"| {x['label']} | {i} | {rd['bound']:.2f} | {1000 * rd['enc_cpu']:.0f} | "
                         f"{rd['decode']:.1f} | {1000 * rd['decode_cpu']:.1f} | {pct(rd['no_gap'])} | "
                         f"{rd['pipeline']:.2f} | {pct(rd['busy'])} | {rd['steady']:.2f} | "
                         f"{rd['ffmpeg_threads']:.2f} | {rd['decord']:.2f} | {rd['inline']:.2f} | "
                         f"{rd.get('one_call_bound', math.nan):.2f} | {rd.get('one_call', math.nan):.2f} |")
    if libraries:
        lines += ["", "Libraries of short clips (480p, x264 ultrafast, 30 fps, sampled at 1 fps, each a "
                  "distinct file), indexed whole into a fresh feature store, as `ClipFrames.index` does: "
                  "**streamed** (encoder batches and decoding run on across video boundaries, so each "
                  "clip costs no start-up and no short final batch), and one `encode_video` call per "
                  "video (each clip starts its decoder anew, ramps its batches up from an eighth of a "
                  "batch and ends on a partial batch). Frames/s include hashing, probing and store "
                  "writes. Each round runs both, in alternating order, between two bound "
                  f"measurements; medians over {args.rounds} rounds:", "",
                  "| library | frames | bound, frames/s | one video at a time, frames/s | / bound | "
                  "**streamed, frames/s** | **/ bound** | speed-up |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for lib in libraries:
            lines.append(f"| {lib['label']} | {lib['frames']} | {lib['bound']:.2f} | "
                         f"{lib['per_video']:.2f} | {100 * lib['per_video_ratio']:.0f}% | "
                         f"**{lib['streamed']:.2f}** | "
                         f"**{100 * lib['streamed_ratio']:.0f}%** | {lib['speedup']:.2f}x |")
        lines += library_rounds(libraries, "frames/s", 2)
    if naive_fps is not None and naive_bound is not None:
        lines += ["", f"Naive baseline on {naive_source} (PyAV decode of every frame, each sampled frame "
                  "to PIL, the reference CLIPImageProcessor one image at a time, encoded in batches of 32, "
                  f"nothing overlapped): {naive_fps:.2f} frames/s = {100 * naive_fps / naive_bound:.0f}% of "
                  f"the bound measured around it ({naive_bound:.2f}); the pipeline right after it: "
                  f"{piped:.2f} frames/s, **{piped / naive_fps:.2f}x** the naive one."]
    last = results[-1]
    lines += ["", f"Pipeline stages of the last {last['label']} round (seconds of wall time; decode and "
              "preprocess run in the prefetch thread, overlapping encode; decode_start and decode_wait "
              "are the encoder's waits for the first batch and for later ones; encode sums the calls "
              "of every encoder worker):", "",
              "| stage | wall s | items |", "|---|---:|---:|"]
    for name in ("decode", "preprocess", "decode_start", "decode_wait", "encode"):
        st = last["stages"].get(name)
        if st:
            lines.append(f"| {name} | {st['wall_s']:.2f} | {int(st['items'])} |")
    if rss_rows:
        lines += ["", "Memory of a process indexing one 720p 30 fps video (x264 ultrafast) into a fresh "
                  "feature store (model loaded, default decoder, 1 fps, batch 32). RSS is sampled every "
                  "0.2 s; \"quarter\" columns are the highest RSS while that quarter of the frames was "
                  "encoded (the last includes writing the store):", "",
                  "| video length | frames | RSS after model load | peak, 1st quarter | 2nd | 3rd | 4th | "
                  "process peak (VmHWM) | indexing wall s |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for mem in rss_rows:
            q = " | ".join(gib(x) for x in mem["quarters_bytes"])
            lines.append(f"| {mem['video_s']:.0f} s | {mem['frames']} | "
                         f"{gib(mem['after_model_load_bytes'])} | {q} | **{gib(mem['peak_bytes'])}** | "
                         f"{mem['wall_s']:.1f} |")
        lines += ["", "Frames are held a few batches at a time; what grows with length is the per-frame "
                  "vectors (2 KiB each: 14 MiB for 2 hours) and the frame-time index (8 bytes per source "
                  "frame: 1.7 MiB for 2 hours at 30 fps). The model's weights count once they are touched "
                  "by the first batch (after load they are partly only mapped)."]
    if dec_rows:
        lines += ["", "Decoding alone (a fresh process sampling 1 fps at 224 px short side, no model), "
                  "peak RSS:", "", "| video length | decord | PyAV |", "|---:|---:|---:|"]
        for seconds in args.decode_rss_seconds:
            by = {d["decoder"]: d for d in dec_rows if d["seconds"] == seconds}
            lines.append(f"| {seconds} s | {gib(by['decord']['peak_bytes'])} | "
                         f"{gib(by['pyav']['peak_bytes'])} |")
    write_report(out, lines)
    if work_ctx is not None:
        work_ctx.cleanup()


if __name__ == "__main__":
    main()
