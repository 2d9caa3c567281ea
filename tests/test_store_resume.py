"""A run killed with SIGKILL resumes: finished videos are kept, only unfinished ones recomputed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.store import Extractor, FeatureStore, index_videos
from bench.types import Video
from bench.video import ProbeInfo, sample_frames

REPO = Path(__file__).resolve().parents[1]
COLOURS = ("red", "green", "blue", "yellow", "white")
EX = Extractor("mean-colour", {"fps": 1.0, "short_side": 16})

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path

    import numpy as np

    import bench.store.location as location
    from bench.store import Extractor, FeatureStore, index_videos
    from bench.types import Video
    from bench.video import sample_frames

    root, log, mode, *paths = sys.argv[1:]
    ex = Extractor("mean-colour", {"fps": 1.0, "short_side": 16})

    def note(line):
        with open(log, "a") as fh:
            fh.write(line + "\\n")
            fh.flush()
            os.fsync(fh.fileno())

    def compute(path, info):
        note("start " + path.stem)
        rgb = [b.frames.reshape(len(b), -1, 3).mean(1) for b in sample_frames(path, 1.0, short_side=16)]
        time.sleep(0.5)  # slow enough to be killed in the middle
        return {"rgb": np.concatenate(rgb)}, {"n_frames": sum(len(r) for r in rgb)}

    if mode == "die-after-rename":
        renamed = []
        real = location.fsync_dir

        def fsync_then_die(directory):
            real(directory)
            renamed.append(directory)
            if len(renamed) == 2:  # second artefact is on disk, its row not yet committed
                os.kill(os.getpid(), signal.SIGKILL)

        location.fsync_dir = fsync_then_die

    videos = [Video(vid=Path(p).stem, path=p) for p in paths]
    index_videos(FeatureStore(Path(root)), videos, ex, compute, desc="colour")
    note("finished")
""")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    d = tmp_path_factory.mktemp("resume")
    out = []
    for colour in COLOURS:
        path = d / f"{colour}.mp4"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                        f"color=c={colour}:size=64x48:rate=10:duration=2", "-c:v", "libx264",
                        "-pix_fmt", "yuv420p", str(path)], check=True)
        out.append(path)
    return out


def start_child(tmp_path: Path, root: Path, log: Path, mode: str,
                clips: list[Path]) -> subprocess.Popen[bytes]:
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(script), str(root), str(log), mode, *map(str, clips)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(predicate: Any, proc: subprocess.Popen[bytes], what: str, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if proc.poll() is not None and not predicate():
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"child exited ({proc.returncode}) before {what}: {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def log_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def rerun_counting(root: Path, clips: list[Path]) -> tuple[list[str], dict[str, str]]:
    calls: list[str] = []

    def compute(path: Path, info: ProbeInfo) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        calls.append(path.stem)
        rgb = [b.frames.reshape(len(b), -1, 3).mean(1) for b in sample_frames(path, 1.0, short_side=16)]
        return {"rgb": np.concatenate(rgb)}, {"n_frames": 2}

    videos = [Video(vid=p.stem, path=str(p)) for p in clips]
    return calls, index_videos(FeatureStore(root), videos, EX, compute, desc="colour")


def check_all_load(root: Path, done: dict[str, str]) -> None:
    expected = {"red": (255, 0, 0), "green": (0, 128, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0),
                "white": (255, 255, 255)}
    store = FeatureStore(root)
    assert sorted(done) == sorted(COLOURS)
    for colour, video_id in done.items():
        arrays = store.load(video_id, EX)
        assert arrays is not None, colour
        assert arrays["rgb"].shape == (2, 3)
        np.testing.assert_allclose(arrays["rgb"], [expected[colour]] * 2, atol=6)


def test_sigkill_mid_compute_then_resume(tmp_path: Path, clips: list[Path]) -> None:
    root, log = tmp_path / "store", tmp_path / "calls.log"
    proc = start_child(tmp_path, root, log, "normal", clips)
    # the third compute has started, so the first two were saved; kill it mid-compute
    wait_for(lambda: sum(line.startswith("start") for line in log_lines(log)) >= 3, proc, "third video")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert "finished" not in log_lines(log)

    store = FeatureStore(root)
    statuses = {p.stem: store.status(store.video_id(p), EX) for p in clips}
    assert statuses == {"red": "done", "green": "done", "blue": "missing", "yellow": "missing",
                        "white": "missing"}
    calls, done = rerun_counting(root, clips)
    assert calls == ["blue", "yellow", "white"]
    check_all_load(root, done)


def test_sigkill_between_rename_and_catalog_commit(tmp_path: Path, clips: list[Path]) -> None:
    root, log = tmp_path / "store", tmp_path / "calls.log"
    proc = start_child(tmp_path, root, log, "die-after-rename", clips)
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert [line for line in log_lines(log) if line.startswith("start")] == ["start red", "start green"]
    # green's file reached its final name, but its row never said done: it is not served
    files = list((root / "features" / EX.key).iterdir())
    assert len(files) == 2
    store = FeatureStore(root)
    green = store.video_id(clips[1])
    assert store.status(green, EX) == "missing" and store.load(green, EX) is None

    calls, done = rerun_counting(root, clips)
    assert calls == ["green", "blue", "yellow", "white"]
    check_all_load(root, done)
