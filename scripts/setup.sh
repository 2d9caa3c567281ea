#!/usr/bin/env bash
# Install what SceneBench needs on a Debian/Ubuntu machine: system packages (ffmpeg,
# espeak-ng, Noto CJK fonts, Chromium for the browser tests) and the pinned CPU Python
# requirements. Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
need_apt=0
for bin in ffmpeg ffprobe espeak-ng chromium; do
  command -v "$bin" >/dev/null 2>&1 || need_apt=1
done
fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || need_apt=1
if [ "$need_apt" = 1 ]; then
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends \
    ffmpeg espeak-ng fonts-noto-cjk fontconfig chromium >/dev/null
fi

pip_install() { python3 -m pip install -q --disable-pip-version-check "$@"; }
# torch first and alone, so the resolver never swaps in a CUDA build.
pip_install torch==2.13.0
pip_install -r requirements.txt
# only its CLIP BPE vocabulary is used; its dependencies would pull torchvision
pip_install --no-deps open_clip_torch==3.3.0
pip_install --no-deps -e .
echo "SceneBench is installed: try 'python -m bench list retrievers'"
