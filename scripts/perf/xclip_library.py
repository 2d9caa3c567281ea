"""X-CLIP clip indexing of a library of short clips: streamed across videos vs one at a time.

Uses a random-init model of the microsoft/xclip-base-patch32 architecture (``XCLIPConfig()``
defaults: ViT-B/32 over 8-frame clips, the cross-frame and prompt layers; throughput equals
the real weights', its vectors are noise). Libraries of distinct 480p clips (the same as
``visual_index.py --library``) are indexed whole into a fresh feature store, in each round
both ways, in alternating order, between two measurements of the encoder-only bound:

- streamed (``XClipClips.encode_videos``, what ``index`` does with ``stream_videos: true``):
  decoding runs on across videos in the prefetch thread and an encoder call takes clips of
  several videos (a clip never spans two);
- one ``XClipClips.encode_video`` call per video (the default): each video starts its
  decoder anew, waits for its first 8 frames and ends on a partial call.

Rates are in clips/s (8-frame clips at stride 4; a 10 s clip at 1 fps is 2 clips, a 30 s one
7), so they compare with the bound: clips/s of the video tower on preprocessed tensors.

    python scripts/perf/xclip_library.py            # -> reports/xclip_library-cpu.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from visual_index import (  # noqa: E402  (also sets HF_HUB_OFFLINE and TQDM_DISABLE)
    RANDOM_INIT,
    REPO,
    build_model,
    index_library,
    library_clips,
    library_rounds,
    load_average,
    machine,
    median,
    parse_library,
    retriever,
    timed_calls,
    write_report,
)


def clip_bound(r: Any, calls: int) -> float:
    """Clips/s of the video tower on preprocessed random clips, full encoder calls run as the
    retriever runs them (``encoder_workers`` at a time)."""
    import torch

    per_call = max(1, r.params.batch_for(r.device) // r.clip_len)
    if r.device == "cuda":
        # On a GPU, input already there in the encoder's precision and enough calls that
        # launch overhead and copies do not pass for the encoder (see gpu_check.py).
        x = torch.randn(per_call, r.clip_len, 3, 224, 224, device="cuda", dtype=r.dtype)
        calls = max(calls, 50)
    else:
        x = torch.randn(per_call, r.clip_len, 3, 224, 224)
    wall, _ = timed_calls(lambda: r.encode_clip_pixels(x), calls, r.params.workers_for(r.device))
    return calls * per_call / wall


def measure(r: Any, clips: list[Path], rounds: int, calls: int, label: str) -> dict[str, Any]:
    rows: list[dict[str, float]] = []
    n_clips = n_frames = 0
    for i in range(rounds):
        before = clip_bound(r, calls)
        row: dict[str, float] = {}
        for streamed in ((False, True) if i % 2 == 0 else (True, False)):
            calls_before = r.encoder_calls
            wall, metas = index_library(r, clips, streamed)
            n_clips = sum(int(m["n_clips"]) for m in metas)
            n_frames = sum(int(m["n_frames"]) for m in metas)
            key = "streamed" if streamed else "per_video"
            row[key] = n_clips / wall
            row[f"{key}_calls"] = r.encoder_calls - calls_before
        row["bound"] = (before + clip_bound(r, calls)) / 2
        rows.append(row)
        print(f"{label} round {i + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()), file=sys.stderr)
    return {"label": label, "videos": len(clips), "clips": n_clips, "frames": n_frames, "rounds": rows,
            "bound": median([x["bound"] for x in rows]),
            "streamed": median([x["streamed"] for x in rows]),
            "per_video": median([x["per_video"] for x in rows]),
            "streamed_ratio": median([x["streamed"] / x["bound"] for x in rows]),
            "per_video_ratio": median([x["per_video"] / x["bound"] for x in rows]),
            "speedup": median([x["streamed"] / x["per_video"] for x in rows]),
            "streamed_calls": int(rows[-1]["streamed_calls"]),
            "per_video_calls": int(rows[-1]["per_video_calls"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--library", type=parse_library, nargs="+", default=[(16, 30), (48, 10)],
                    metavar="COUNTxSECONDS", help="libraries of distinct short 480p clips")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds per library")
    ap.add_argument("--calls", type=int, default=4, help="encoder calls per bound measurement")
    ap.add_argument("--batch-size", type=int, default=32, help="frames per encoder call (8 per clip)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep model and videos here")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or REPO / "scripts" / "perf" / "reports" / f"xclip_library-{args.device}.md"
    work_ctx = tempfile.TemporaryDirectory() if args.workdir is None else None
    work = Path(work_ctx.name) if work_ctx else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join(shlex.quote(a) for a in ["scripts/perf/xclip_library.py", *sys.argv[1:]])
    load_before = load_average()
    print("building the random-init X-CLIP base/32 and the clips ...", file=sys.stderr)
    name = RANDOM_INIT["xclip-clips"][1]
    r = retriever(build_model(work / name, "xclip-clips"), args.device, args.batch_size, "xclip-clips")
    results = [measure(r, library_clips(work, count, seconds), args.rounds, args.calls,
                       f"{count} x {seconds} s") for count, seconds in args.library]
    load_after = load_average()

    m = machine()
    per_call = max(1, args.batch_size // r.clip_len)
    workers = r.params.workers_for(r.device)
    lines = [f"# X-CLIP library indexing on {args.device.upper()}: streamed vs one video at a time", "",
             f"Command: `{command}`", "",
             f"Machine: {m['cpu']}, {m['cores']} cores visible, torch {m['torch']} "
             f"({m['torch_threads']} intra-op threads), transformers {m['transformers']}, "
             f"Python {m['python']}" + (f", GPU {m['gpu']}" if "gpu" in m else "") + ".",
             f"Load average (1/5/15 min) before: {load_before}; after: {load_after}.", "",
             "Model: random-init `XCLIPConfig()` defaults = the microsoft/xclip-base-patch32 "
             f"architecture, {str(r.dtype).removeprefix('torch.')}; throughput equals the real "
             "weights', the vectors are noise.", "",
             "Libraries: distinct 480p testsrc2 clips (x264 ultrafast, 30 fps), sampled at 1 fps, "
             f"8-frame clips at stride 4, {per_call} clips per encoder call, {workers} call(s) at a "
             "time (`encoder_workers`, each with its share of torch's intra-op threads; the bound "
             "runs the same way). Each round indexes the "
             "library into a fresh feature store both ways, in alternating order, between two "
             f"bound measurements ({args.calls} full encoder call(s) on preprocessed random clips; "
             "their mean is the round's bound). Clips/s include hashing, probing, decoding and "
             f"store writes. Medians over {args.rounds} rounds:", "",
             "| library | frames | clips | bound, clips/s | one video at a time, clips/s | / bound | "
             "encoder calls | **streamed, clips/s** | **/ bound** | encoder calls | speed-up |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for x in results:
        lines.append(f"| {x['label']} | {x['frames']} | {x['clips']} | {x['bound']:.3f} | "
                     f"{x['per_video']:.3f} | {100 * x['per_video_ratio']:.0f}% | {x['per_video_calls']} | "
                     f"**{x['streamed']:.3f}** | **{100 * x['streamed_ratio']:.0f}%** | "
                     f"{x['streamed_calls']} | {x['speedup']:.2f}x |")
    lines += library_rounds(results, "clips/s", 3)
    write_report(out, lines)
    if work_ctx is not None:
        work_ctx.cleanup()


if __name__ == "__main__":
    main()
