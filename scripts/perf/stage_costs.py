"""CPU cost per frame of each indexing stage of clip-frames on this machine, for the time and
cost model of docs/scaling.md: decoding + preprocessing a 1-fps sampling (the ``auto``
decoder, one thread) of a 720p H.264 minute (x264 ``veryfast``, default groups of pictures),
and the ViT-B/32 image tower (random-init ``CLIPConfig()`` defaults, the cost of the real
weights) on preprocessed batches of 32, one worker.

    nice -n 10 python scripts/perf/stage_costs.py --workdir /tmp/stages
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts" / "perf"))


def main() -> None:
    import torch
    from decode_seek import make_clip
    from visual_index import build_model, decode_only, encoder_bound, retriever

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/stages"))
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--json", type=Path, default=REPO / "scripts/perf/reports/stage_costs.json")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    model = build_model(args.workdir / "clip-b32")
    r = retriever(model, "cpu", 32)
    clip = make_clip(args.workdir / "minute-720p.mp4", "1280x720", 60.0, None)
    decode_fps, decode_cpu = decode_only(r, clip, 32)
    enc_fps, enc_cpu = encoder_bound(r, args.batches, 32, workers=1)
    result = {"command": "nice -n 10 python " + shlex.join(["scripts/perf/stage_costs.py", *sys.argv[1:]]),
              "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
              "decode_preprocess": {"frames_per_s": decode_fps, "cpu_ms_per_frame": 1000 * decode_cpu},
              "encode_vit_b32": {"frames_per_s": enc_fps, "cpu_ms_per_frame": 1000 * enc_cpu},
              "load_before": load_before, "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result))
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
