"""Peak memory (and speed) of sample_frames over long synthetic videos, per decoder.

Makes a 720p testsrc video of each requested length (a one-minute low-bitrate segment
joined with ffmpeg's concat demuxer, so a 2-hour file takes seconds to make), then samples
it in a fresh process per (length, decoder) and records that process's peak RSS. Equal
peaks for 10 and 120 minutes show memory does not grow with the video's length.

    python scripts/perf/decode_memory.py --minutes 10 120 --out reports/perf/decode_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys, time
from bench.timing import peak_rss_bytes
import av, decord, numpy  # library baseline before any decoding
from bench.video import probe, sample_frames
path, decoder, short_side = sys.argv[1], sys.argv[2], sys.argv[4]
fps, batch = float(sys.argv[3]), int(sys.argv[5])
base = peak_rss_bytes()
info = probe(path)
t0 = time.perf_counter()
n = 0
largest = 0
for b in sample_frames(path, fps, short_side=None if short_side == "none" else int(short_side),
                       batch_size=batch, decoder=decoder):
    n += len(b)
    largest = max(largest, b.frames.nbytes)
wall = time.perf_counter() - t0
print(json.dumps({"decoder": decoder, "frames": n, "wall_s": wall, "frames_per_s": n / wall,
                  "video_s_per_wall_s": info.duration_s / wall, "duration_s": info.duration_s,
                  "baseline_rss_mb": base / 2**20, "peak_rss_mb": peak_rss_bytes() / 2**20,
                  "largest_batch_mb": largest / 2**20}))
"""


def make_video(out: Path, minutes: int, height: int, work: Path) -> None:
    """``minutes`` of testsrc at ``height``p/30 fps, ~150 kbit/s, from a 1-minute segment."""
    seg = work / f"seg{height}.mp4"
    if not seg.exists():
        width = height * 16 // 9
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc=size={width}x{height}:rate=30:duration=60", "-c:v", "libx264",
                        "-preset", "ultrafast", "-b:v", "150k", "-g", "250", "-pix_fmt", "yuv420p",
                        str(seg)], check=True)
    listing = work / f"list{minutes}.txt"
    listing.write_text("".join(f"file '{seg}'\n" for _ in range(minutes)), encoding="utf-8")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i",
                    str(listing), "-c", "copy", str(out)], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=int, nargs="+", default=[10, 120])
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--decoders", nargs="+", default=["decord", "pyav"])
    ap.add_argument("--fps", type=float, default=1.0, help="sampling rate")
    ap.add_argument("--short-side", default="224", help="pixels, or 'none' for full size")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "perf" / "decode_memory.json")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the generated videos here")
    args = ap.parse_args()

    runs = []
    with tempfile.TemporaryDirectory(prefix="decode-memory-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        for minutes in args.minutes:
            video = work / f"testsrc-{args.height}p-{minutes}min.mp4"
            if not video.exists():
                t0 = time.perf_counter()
                make_video(video, minutes, args.height, work)
                print(f"made {video.name} ({video.stat().st_size / 2**20:.0f} MiB) in "
                      f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
            for decoder in args.decoders:
                proc = subprocess.run([sys.executable, "-c", CHILD, str(video), decoder, str(args.fps),
                                       args.short_side, str(args.batch_size)],
                                      env=env, capture_output=True, text=True, check=True)
                row = {"minutes": minutes, "file_mb": video.stat().st_size / 2**20,
                       **json.loads(proc.stdout.strip().splitlines()[-1])}
                runs.append(row)
                print(f"{minutes:4d} min {decoder:6s}: peak RSS {row['peak_rss_mb']:.0f} MiB "
                      f"(baseline {row['baseline_rss_mb']:.0f}), {row['frames']} frames, "
                      f"{row['video_s_per_wall_s']:.0f}x realtime", file=sys.stderr)

    import av
    import decord

    report = {"benchmark": "decode_memory", "height": args.height, "sample_fps": args.fps,
              "short_side": args.short_side, "batch_size": args.batch_size,
              "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version()},
              "versions": {"av": av.__version__, "decord": decord.__version__,
                           "ffmpeg_in_av": str(getattr(av, "ffmpeg_version_info", "unknown"))},
              "load_average": os.getloadavg(),
              "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
