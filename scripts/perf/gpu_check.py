"""The one GPU check of the GPU path: every figure the GPU targets need, in one run of about 8
minutes on one GPU.

Measures, with random-init models of the real architectures (throughput equals the real
weights'; vectors are noise):

- what the machine offers: GPU, driver, CUDA, cuDNN; whether CTranslate2 and faiss can use
  the GPU (and why not); whether torchcodec (NVDEC) is installed;
- CLIP ViT-B/32 and ViT-L/14 float16: the encoder-only bound (float16 input already on the
  device, >= 50 calls of >= 256 frames after warm-up, CUDA events), and apart from it the
  copies (pinned uint8 frames up, resize + normalize on the device, embeddings down);
- the parallel decode-only rate (worker processes, one FFmpeg thread each) and, beside it,
  one decoder with FFmpeg's threads;
- end to end: ``ClipFrames.encode_videos`` over a library of H.264 clips, as configured by
  default on CUDA and with the variants (CPU preprocessing, two encoder workers), as a share
  of min(encoder-only bound, decode-only rate) (target >= 90%);
- X-CLIP B/32 end to end beside it; peak CUDA memory of each.

    python scripts/perf/gpu_check.py --out "$OUT"                      # on a GPU, ~8 min
    python scripts/perf/gpu_check.py --device cpu --quick --out /tmp/x  # smoke test, no GPU

Writes ``gpu_check-<device>.md`` and ``.json`` into ``--out`` (and, on CUDA, the Markdown
also into scripts/perf/reports/).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import gpu_bounds as gb  # noqa: E402  (beside this script)

MODELS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # name: (family, builder, config); CLIPConfig() defaults are ViT-B/32.
    "clip-vit-b32": ("clip-frames", "build_tiny_clip", {"merges": 48894}),
    "clip-vit-l14": ("clip-frames", "build_tiny_clip", {
        "merges": 48894, "projection_dim": 768,
        "text_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
                        "num_hidden_layers": 12},
        "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                          "num_hidden_layers": 24, "patch_size": 14}}),
    "xclip-b32": ("xclip-clips", "build_tiny_xclip", {"merges": 48894}),
}
QUICK_MODELS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "clip-tiny": ("clip-frames", "build_tiny_clip", {
        "merges": 1000, "projection_dim": 32,
        "text_config": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
                        "num_hidden_layers": 2},
        "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
                          "num_hidden_layers": 2, "patch_size": 32}}),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_clip(path: Path, seconds: int, index: int) -> Path:
    if not path.is_file():
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=size=854x480:rate=30:duration={seconds}",
                        "-vf", f"hue=h={(index * 37) % 360}",
                        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "35", "-g", "60",
                        "-pix_fmt", "yuv420p", "-threads", "1", str(path)], check=True, timeout=600)
    return path


def build(work: Path, name: str, spec: tuple[str, str, dict[str, Any]]) -> Path:
    from bench.testing import tiny_models

    out = work / name
    if not (out / "model.safetensors").is_file():
        out.mkdir(parents=True, exist_ok=True)
        getattr(tiny_models, spec[1])(dict(spec[2]), out, seed=0)
    return out


def retriever(model_dir: Path, family: str, device: str, **params: Any) -> Any:
    from bench.modelref import ModelRef
    from bench.retrievers import FAMILIES
    from bench.retrievers.base import RetrieverConfig

    extra = {"stride_frames": 4} if family == "xclip-clips" else {}
    cfg = RetrieverConfig(name=f"{model_dir.name}-random", family=family,
                          model=ModelRef(id=f"local-dir:{model_dir}"), params={"fps": 1.0, **extra, **params})
    return FAMILIES.get(family)(cfg, device)


class Clock:
    """Milliseconds of GPU work between two points (CUDA events), or host time on the CPU."""

    def __init__(self, device: str) -> None:
        import torch

        self.cuda = device == "cuda"
        self.torch = torch

    def time(self, fn: Any) -> float:
        if self.cuda:
            start, end = self.torch.cuda.Event(enable_timing=True), self.torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end))
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1000.0


def encoder_bound(r: Any, args: argparse.Namespace, clock: Clock) -> dict[str, Any]:
    """Image tower alone on float16 (float32 on the CPU) input already on the device."""
    import torch

    batch = args.batch
    x = torch.randn(batch, 3, *r.transform.crop, device=r.device).to(r.dtype)
    with torch.inference_mode():
        def call() -> None:
            r.model.get_image_features(pixel_values=x)

        for _ in range(gb.WARMUP_CALLS):
            clock.time(call)
        one = clock.time(call) / 1000.0
        calls = args.calls or gb.calls_for_budget(args.bound_s, one,
                                                  min_calls=gb.MIN_CALLS if not args.quick else 3)
        times = [clock.time(call) for _ in range(calls)]
    bound = gb.encoder_bound(batch, times) if not args.quick else gb.Bound(batch * calls, sum(times) / 1000)
    return {"batch": batch, "calls": calls, "frames_per_s": bound.frames_per_s,
            "call_ms": sum(times) / calls}


def copies(r: Any, args: argparse.Namespace, clock: Clock) -> dict[str, float]:
    """Per batch: pinned uint8 frames (480p decoded at 224 short side) up, resize + normalize
    on the device, embeddings down; each timed alone."""
    import torch

    from bench.vision.device_input import to_host

    h, w = 224, 398
    frames = torch.randint(0, 256, (args.batch, h, w, 3), dtype=torch.uint8)
    if r.device == "cuda":
        frames = frames.pin_memory()
    on_device: list[Any] = [frames]
    up = clock.time(lambda: on_device.__setitem__(0, frames.to(r.device, non_blocking=True)))
    with torch.inference_mode():
        prep = clock.time(lambda: r.transform(on_device[0], device=r.device).to(r.dtype))
        emb = torch.randn(args.batch, r.dim, device=r.device, dtype=r.dtype)
        t0 = time.perf_counter()
        to_host(emb)
        down = (time.perf_counter() - t0) * 1000.0
    return {"upload_ms": up, "preprocess_ms": prep, "download_ms": down,
            "upload_bytes": float(gb.bytes_per_batch(args.batch, h, w, 1))}


def decode_rate(paths: list[Path], processes: int, batch: int) -> dict[str, float]:
    from bench.video.parallel import DecodeJob, decoded_videos

    job = DecodeJob(fps=1.0, short_side=224, batch_size=batch, threads=1 if processes else 0)
    t0 = time.perf_counter()
    events = decoded_videos(paths, job, processes=processes, depth=4)
    n = sum(len(e[1]) for e in events if isinstance(e, tuple))
    wall = time.perf_counter() - t0
    return {"processes": processes, "frames": n, "wall_s": wall, "frames_per_s": n / wall}


def end_to_end(r: Any, paths: list[Path], **params: Any) -> dict[str, Any]:
    from bench import devices
    from bench.timing import TimingRecorder, recording
    from bench.video import probe

    saved = r.params
    r.params = r.params.model_copy(update=params)
    infos = [(p, probe(p)) for p in paths]
    rec = TimingRecorder()
    try:
        with recording(rec):
            t0 = time.perf_counter()
            outcomes = list(r.encode_videos(infos))
            wall = time.perf_counter() - t0
    finally:
        r.params = saved
    failed = [o for _, o in outcomes if isinstance(o, BaseException)]
    if failed:
        raise RuntimeError(f"{len(failed)} videos failed: {failed[0]}")
    frames = sum(int(o[1]["n_frames"]) for _, o in outcomes)  # type: ignore[index]
    stages = {k: round(v["wall_s"], 3) for k, v in rec.as_dict()["stages"].items()}
    return {"params": params, "frames": frames, "wall_s": wall, "frames_per_s": frames / wall,
            "stages_wall_s": stages, "peak_cuda_bytes": rec.peak_cuda_bytes or devices.peak_cuda_bytes()}


def environment() -> dict[str, Any]:
    import torch

    from bench import devices

    return {"gpu": devices.gpu_info().as_dict(), "torch": torch.__version__,
            "ctranslate2_cuda_problem": devices.ctranslate2_cuda_problem(),
            "faiss_gpu_problem": devices.faiss_gpu_problem(),
            "torchcodec_installed": importlib.util.find_spec("torchcodec") is not None,
            "cpu_count": os.cpu_count()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--out", type=Path, required=True, help="folder for the report (e.g. $OUT)")
    ap.add_argument("--clips", type=int, default=64, help="H.264 480p clips in the library")
    ap.add_argument("--seconds", type=int, default=60, help="length of each clip (s)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--calls", type=int, default=0, help="timed encoder calls (0: fit --bound-s, >= 50)")
    ap.add_argument("--bound-s", type=float, default=10.0, help="seconds of timed calls per bound")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="tiny model, few calls: checks the script runs")
    args = ap.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no GPU")
    t_start = time.perf_counter()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
                           "environment": environment(), "models": {}}
    log(f"environment: {json.dumps(doc['environment'])}")
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        paths = list(pool.map(lambda i: make_clip(work / f"clip-{args.seconds}s-{i:03d}.mp4",
                                                  args.seconds, i), range(args.clips)))
    log(f"{len(paths)} clips ready")
    cores = os.cpu_count() or 1
    doc["decode"] = [decode_rate(paths, 0, args.batch)] + [
        decode_rate(paths, p, args.batch) for p in sorted({min(8, cores), cores}) if p > 0]
    best_decode = max(d["frames_per_s"] for d in doc["decode"])
    log(f"decode-only: {[round(d['frames_per_s'], 1) for d in doc['decode']]} frames/s")
    clock = Clock(args.device)
    for name, spec in (QUICK_MODELS if args.quick else MODELS).items():
        log(f"{name}: building")
        model_dir = build(work, name, spec)
        family = spec[0]
        r = retriever(model_dir, family, args.device, cuda_batch_size=args.batch,
                      batch_size=min(args.batch, 32))
        entry: dict[str, Any] = {"family": family, "dtype": str(r.dtype).removeprefix("torch.")}
        if family == "clip-frames":
            entry["bound"] = encoder_bound(r, args, clock)
            entry["copies"] = copies(r, args, clock)
            log(f"{name}: bound {entry['bound']['frames_per_s']:.0f} frames/s, copies {entry['copies']}")
            variants: list[dict[str, Any]] = [{}, {"preprocess": "producer"}, {"encoder_workers": 2}]
        else:
            variants = [{}]
        entry["end_to_end"] = []
        for params in variants:
            res = end_to_end(r, paths, **params)
            if "bound" in entry:
                res["share_of_lower_bound"] = gb.target_share(res["frames_per_s"],
                                                              entry["bound"]["frames_per_s"], best_decode)
                res["limited_by"] = gb.limiting_bound(entry["bound"]["frames_per_s"], best_decode)
            entry["end_to_end"].append(res)
            log(f"{name} {params}: {res['frames_per_s']:.0f} frames/s")
        doc["models"][name] = entry
        del r
        if args.device == "cuda":
            torch.cuda.empty_cache()
    doc["wall_s"] = time.perf_counter() - t_start
    write(doc, args)


def write(doc: dict[str, Any], args: argparse.Namespace) -> None:
    gpu = doc["environment"]["gpu"]
    lines = [f"# GPU check ({args.device})", "", f"Command: `{doc['command']}`", "",
             f"GPU: {gpu['gpu_name']}, driver {gpu['driver_version']}, CUDA {gpu['cuda_runtime']}, "
             f"cuDNN {gpu['cudnn_version']}; torch {doc['environment']['torch']}; "
             f"{doc['environment']['cpu_count']} CPU cores. CTranslate2 on CUDA: "
             f"{doc['environment']['ctranslate2_cuda_problem'] or 'usable'}; faiss on the GPU: "
             f"{doc['environment']['faiss_gpu_problem'] or 'usable'}; torchcodec (NVDEC) installed: "
             f"{doc['environment']['torchcodec_installed']}.", "",
             f"Library: {args.clips} clips of {args.seconds} s, 854x480 H.264 (x264 ultrafast), 30 fps, "
             "sampled at 1 fps. Random-init models of the real architectures (throughput only).", "",
             "Decode-only (frames/s; 0 processes = one decoder in this process with FFmpeg's threads):", "",
             "| processes | frames | frames/s |", "|---:|---:|---:|"]
    lines += [f"| {d['processes']} | {d['frames']} | {d['frames_per_s']:.1f} |" for d in doc["decode"]]
    lines += ["", "| model | dtype | encoder bound, frames/s (batch, calls) | upload / preprocess / "
              "download ms per batch | end to end | frames/s | share of min(bound, decode) | limited by | "
              "peak CUDA |",
              "|---|---|---:|---:|---|---:|---:|---|---:|"]
    for name, m in doc["models"].items():
        b, c = m.get("bound"), m.get("copies")
        bound = f"{b['frames_per_s']:.0f} ({b['batch']}, {b['calls']})" if b else "-"
        cp = f"{c['upload_ms']:.1f} / {c['preprocess_ms']:.1f} / {c['download_ms']:.1f}" if c else "-"
        for e in m["end_to_end"]:
            share = e.get("share_of_lower_bound")
            peak = e.get("peak_cuda_bytes")
            variant = json.dumps(e["params"]) if e["params"] else "default"
            share_text = "-" if share is None else f"{100 * share:.0f}%"
            peak_text = "-" if peak is None else f"{peak / 2**30:.2f} GiB"
            lines.append(f"| {name} | {m['dtype']} | {bound} | {cp} | {variant} | {e['frames_per_s']:.1f} | "
                         f"{share_text} | {e.get('limited_by', '-')} | {peak_text} |")
    lines += ["", f"Whole check: {doc['wall_s']:.0f} s. Stages of each run are in the JSON beside this file."]
    text = "\n".join(lines) + "\n"
    (args.out / f"gpu_check-{args.device}.md").write_text(text, encoding="utf-8")
    (args.out / f"gpu_check-{args.device}.json").write_text(json.dumps(doc, indent=1, default=str),
                                                             encoding="utf-8")
    if args.device == "cuda" and not args.quick:
        reports = REPO / "scripts" / "perf" / "reports"
        (reports / "gpu_check-cuda.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
